"""Calls.json through the official twilio library against the real HTTP server, with a
small stand-in for the voice runtime that keeps calls in the store's kv (namespace
"call"), as ``gateway.runtime.voice`` does."""

from __future__ import annotations

import email.utils
import re

import pytest
from twilio.base.exceptions import TwilioRestException

from gateway.core import call as C

from .conftest import AC, AC2, LONG, NOW, OTHER_ACCOUNT_NUMBER, TOKEN2, call, make_client, raw

SID_RE = re.compile(r"^CA[0-9a-f]{32}$")
RFC2822_RE = re.compile(r"^[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} \+0000$")


class VoiceStandIn:
    def __init__(self, runtime):
        self.rt = runtime
        self.updates = []

    async def create_call(self, c):
        await self.rt.store.kv_put("call", c.sid, c.to_dict())
        return c

    async def get_call(self, sid):
        d = await self.rt.store.kv_get("call", sid)
        return C.Call.from_dict(d) if d else None

    async def list_calls(self, account):
        rows = [C.Call.from_dict(d) for _, d in await self.rt.store.kv_items("call")]
        rows = [c for c in rows if c.account_sid == account]
        return sorted(rows, key=lambda c: c.date_created, reverse=True)

    async def update_call(self, c, *, status=None, url=None, method="POST", twiml=None):
        self.updates.append((c.sid, status, url, method, twiml))
        if status == C.CANCELED and c.status in (C.QUEUED, C.INITIATED, C.RINGING):
            C.advance(c, C.CANCELED, self.rt.clock)
        elif status == C.COMPLETED:
            if c.status == C.IN_PROGRESS:
                C.advance(c, C.COMPLETED, self.rt.clock)
            else:
                C.advance(c, C.CANCELED, self.rt.clock)
        await self.rt.store.kv_put("call", c.sid, c.to_dict())
        return c


@pytest.fixture
def voice(api):
    v = VoiceStandIn(api.runtime)
    for name in ("create_call", "get_call", "list_calls", "update_call"):
        setattr(api.runtime, name, getattr(v, name))
    return v


async def test_create_fields_and_types(api, client, voice):
    c = await call(client.calls.create, to="+15005550001", from_=LONG,
                   url="http://127.0.0.1:9/voice", status_callback="http://127.0.0.1:9/cb",
                   status_callback_event=["initiated", "ringing", "answered", "completed"],
                   timeout=20)
    assert SID_RE.match(c.sid)
    assert c.status == "queued" and c.direction == "outbound-api"
    assert c.account_sid == AC and c.to == "+15005550001" and c._from == LONG
    assert c.api_version == "2010-04-01" and c.price_unit == "USD"
    assert c.uri == f"/2010-04-01/Accounts/{AC}/Calls/{c.sid}.json"
    assert c.start_time is None and c.end_time is None
    stored = await voice.get_call(c.sid)
    assert stored.url == "http://127.0.0.1:9/voice" and stored.timeout == 20
    assert stored.status_callback_events == ("initiated", "ringing", "answered", "completed")
    assert stored.method == "POST" and stored.twiml is None


async def test_dates_are_rfc2822(api, voice):
    status, _, body = await raw("POST", f"{api.base}/2010-04-01/Accounts/{AC}/Calls.json",
                                {"To": "+15005550001", "From": LONG,
                                 "Twiml": "<Response><Say>hi</Say></Response>"})
    assert status == 201
    assert RFC2822_RE.match(body["date_created"])
    assert email.utils.parsedate_to_datetime(body["date_created"]).timestamp() == NOW
    assert body["duration"] is None and body["status"] == "queued"
    assert set(body) >= {"parent_call_sid", "answered_by", "caller_name", "forwarded_from",
                         "queue_time", "trunk_sid", "subresource_uris", "to_formatted"}
    stored = await voice.get_call(body["sid"])
    assert stored.twiml == "<Response><Say>hi</Say></Response>"
    assert stored.status_callback_events == ("completed",) and stored.timeout == 60


@pytest.mark.parametrize("form,code", [
    ({"From": LONG, "Url": "http://a/v"}, 21201),
    ({"To": "nope", "From": LONG, "Url": "http://a/v"}, 21211),
    ({"To": "+15005550001", "Url": "http://a/v"}, 21213),
    ({"To": "+15005550001", "From": "+15005550777", "Url": "http://a/v"}, 21210),
    ({"To": "+15005550001", "From": OTHER_ACCOUNT_NUMBER, "Url": "http://a/v"}, 21210),
    ({"To": "+15005550001", "From": LONG}, 21205),
    ({"To": "+15005550001", "From": LONG, "Url": "ftp://a/v"}, 21205),
    ({"To": "+15005550001", "From": LONG, "Url": "http://a/v", "StatusCallback": "x"}, 21609),
    ({"To": "+15005550001", "From": LONG, "Url": "http://a/v", "Method": "PUT"}, 21209),
    ({"To": "+15005550001", "From": LONG, "Url": "http://a/v",
      "StatusCallbackEvent": "exploded"}, 21626),
    ({"To": "+15005550001", "From": LONG, "Twiml": "<Response>" + "x" * 4000 + "</Response>"}, 32018),
    ({"To": "+15005550001", "From": LONG, "Twiml": "<Response><Say>"}, 12100),
    ({"To": "+15005550001", "From": LONG, "Url": "http://a/v", "SendDigits": "12x"}, 21219),
    ({"To": "+15005550001", "From": LONG, "ApplicationSid": "AP" + "0" * 32}, 21218),
])
async def test_create_errors(api, voice, form, code):
    status, _, body = await raw("POST", f"{api.base}/2010-04-01/Accounts/{AC}/Calls.json", form)
    assert (status, body["code"]) == (400, code), body
    assert body["more_info"].endswith(str(code))
    assert await voice.list_calls(AC) == []


async def test_library_raises_with_code(client, voice):
    with pytest.raises(TwilioRestException) as info:
        await call(client.calls.create, to="+15005550001", from_="+19999999999", url="http://a/v")
    assert info.value.status == 400 and info.value.code == 21210


async def test_list_paging_filters_and_fetch(api, client, voice):
    sids = []
    for i in range(5):
        api.runtime.clock = NOW + i
        c = await call(client.calls.create, to=f"+1500555000{i % 2}", from_=LONG, url="http://a/v")
        sids.append(c.sid)
    listed = await call(client.calls.list, page_size=2)
    assert [c.sid for c in listed] == sids[::-1]          # newest first, across pages
    only = await call(client.calls.list, to="+15005550000")
    assert {c.sid for c in only} == {sids[0], sids[2], sids[4]}
    status, _, body = await raw("GET", f"{api.base}/2010-04-01/Accounts/{AC}/Calls.json?PageSize=2")
    assert status == 200 and len(body["calls"]) == 2
    assert body["next_page_uri"].startswith(f"/2010-04-01/Accounts/{AC}/Calls.json?")
    fetched = await call(client.calls(sids[1]).fetch)
    assert fetched.sid == sids[1] and fetched.to == "+15005550001"
    other = make_client(api.base, AC2, TOKEN2)
    with pytest.raises(TwilioRestException) as info:
        await call(other.api.accounts(AC2).calls(sids[1]).fetch)
    assert info.value.status == 404
    assert await call(other.api.accounts(AC2).calls.list) == []


async def test_update_cancel_complete_redirect(api, client, voice):
    c = await call(client.calls.create, to="+15005550001", from_=LONG, url="http://a/v")
    updated = await call(client.calls(c.sid).update, status="canceled")
    assert updated.status == "canceled" and updated.end_time is not None
    with pytest.raises(TwilioRestException) as info:
        await call(client.calls(c.sid).update, url="http://a/other")
    assert info.value.code == 21220
    c2 = await call(client.calls.create, to="+15005550001", from_=LONG, url="http://a/v")
    stored = await voice.get_call(c2.sid)
    C.advance(stored, C.IN_PROGRESS, NOW)
    await api.store.kv_put("call", c2.sid, stored.to_dict())
    await call(client.calls(c2.sid).update, twiml="<Response><Say>new</Say></Response>")
    assert voice.updates[-1] == (c2.sid, None, None, "POST", "<Response><Say>new</Say></Response>")
    await call(client.calls(c2.sid).update, url="http://a/next", method="GET")
    assert voice.updates[-1] == (c2.sid, None, "http://a/next", "GET", None)
    done = await call(client.calls(c2.sid).update, status="completed")
    assert done.status == "completed"
    status, _, body = await raw("POST", f"{api.base}/2010-04-01/Accounts/{AC}/Calls/{c2.sid}.json",
                                {"Status": "ringing"})
    assert (status, body["code"]) == (400, 20422)


async def test_unknown_and_malformed_sids_are_404(api, voice):
    for sid in ("CA" + "0" * 32, "SM" + "0" * 32, "bogus"):
        status, _, body = await raw("GET", f"{api.base}/2010-04-01/Accounts/{AC}/Calls/{sid}.json")
        assert (status, body["code"]) == (404, 20404)
