"""ApiApp remembers decoded Basic credentials, never the verdict: a rotated token, a
removed account or a different password is refused at once on the same connection,
API keys are checked every time, and the memo stays bounded."""

from __future__ import annotations

import base64

import trio
from twilio.base.exceptions import TwilioRestException

from gateway.api import app as app_module
from gateway.io.http_common import Request

from .conftest import AC, AC2, LONG, TOKEN, TOKEN2, call, make_client, raw

TO = "+15005550010"


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def _req(auth: str) -> Request:
    return Request("GET", f"/2010-04-01/Accounts/{AC}/Messages.json",
                   {"authorization": auth}, b"", ("127.0.0.1", 1))


async def _status(app, auth: str) -> int:
    with trio.fail_after(10):
        return (await app.handle(_req(auth))).status


async def _create_status(client) -> int:
    try:
        await call(client.messages.create, to=TO, from_=LONG, body="hi")
    except TwilioRestException as exc:
        assert exc.code == 20003
        return exc.status
    return 201


async def test_rotated_token_is_refused_on_the_same_connection(api, client):
    tokens = {AC: TOKEN, AC2: TOKEN2}
    api.runtime.auth_token = tokens.get
    assert await _create_status(client) == 201
    assert await _create_status(client) == 201           # memo hit, same keep-alive conn
    tokens[AC] = "rotated"
    assert await _create_status(client) == 401           # old token: refused at once
    assert await _create_status(make_client(api.base, AC, "rotated")) == 201
    del tokens[AC]                                        # account removed by a reload
    assert await _create_status(make_client(api.base, AC, "rotated")) == 401


async def test_memo_compares_the_whole_password(api):
    app = api.app
    good = _basic(AC, TOKEN)
    assert await _status(app, good) == 200
    assert good in app._decoded
    for wrong in (TOKEN[:-1], TOKEN + "x", TOKEN.upper(), ""):
        assert await _status(app, _basic(AC, wrong)) == 401
        assert _basic(AC, wrong) not in app._decoded      # failures are not remembered
    assert await _status(app, good) == 200
    assert await _status(app, good + " ") == 200         # other bytes, decoded anew
    status, headers, _ = await raw("GET", f"{api.base}/2010-04-01/Accounts/{AC}/Messages.json",
                                   auth=(AC, "nope"))
    assert status == 401 and headers["WWW-Authenticate"] == 'Basic realm="Twilio API"'


async def test_memo_is_bounded(api):
    app = api.app
    tokens = {AC: TOKEN}
    api.runtime.auth_token = lambda sid: tokens.get(sid, TOKEN) if sid.startswith("AC") else None
    for i in range(app_module._DECODED_MAX + 10):
        sid = f"AC{i:032x}"
        tokens[sid] = TOKEN
        assert await _status(app, _basic(sid, TOKEN)) in (200, 404)
        assert len(app._decoded) <= app_module._DECODED_MAX
