"""Auth, routing, IncomingPhoneNumbers, Messaging v1 Services, /healthz, /metrics, admin."""

from __future__ import annotations

import trio
from twilio.base.exceptions import TwilioRestException

from gateway.api.context import number_sid
from gateway.core.ids import stable_sid

from .conftest import AC, AC2, LONG, MG, MG2, SHORT, TOKEN, TOLL, call, make_client, raw

MSGS = f"/2010-04-01/Accounts/{AC}/Messages.json"


async def _exc(fn, *args, **kwargs) -> TwilioRestException:
    try:
        await call(fn, *args, **kwargs)
    except TwilioRestException as exc:
        return exc
    raise AssertionError("no error")


# -- auth and routing ---------------------------------------------------------------------
async def test_wrong_token_is_20003(api):
    # (the library raises TwilioRestException with a code for create/fetch; list pages
    # only say "Unable to fetch page")
    bad = make_client(api.base, AC, "wrong")
    exc = await _exc(bad.messages.create, to="+15005550001", from_=LONG, body="x")
    assert (exc.status, exc.code) == (401, 20003)
    exc = await _exc(make_client(api.base, "AC" + "5" * 32, TOKEN).messages("SM" + "0" * 32).fetch)
    assert (exc.status, exc.code) == (401, 20003)


async def test_missing_and_malformed_auth(api):
    for headers, auth in (({}, None), ({"Authorization": "Basic !!!"}, None),
                          ({"Authorization": "Bearer x"}, None), ({}, (AC, ""))):
        status, hdrs, body = await raw("GET", api.base + MSGS, headers=headers, auth=auth)
        assert (status, body["code"]) == (401, 20003)
        assert hdrs["WWW-Authenticate"] == 'Basic realm="Twilio API"'


async def test_other_account_path_is_404(api):
    status, _, body = await raw("GET", f"{api.base}/2010-04-01/Accounts/{AC2}/Messages.json")
    assert (status, body["code"]) == (404, 20404)


async def test_unknown_route_and_method(api):
    status, _, body = await raw("GET", f"{api.base}/2010-04-01/Accounts/{AC}/Nope.json")
    assert (status, body["code"], body["status"]) == (404, 20404, 404)
    status, hdrs, body = await raw("DELETE", api.base + MSGS)
    assert (status, body["code"]) == (405, 20004)
    assert hdrs["Allow"] == "GET, HEAD, POST"


async def test_concurrency_cap_20429(api):
    gate = trio.Event()
    entered = trio.Event()

    async def slow(req, account):
        entered.set()
        await gate.wait()
        from gateway.io.http_server import Response
        return Response.json({"ok": True})

    api.app.limits = type(api.app.limits)(max_inflight_per_account=1)
    api.app.route(r"^/2010-04-01/Accounts/(?P<account>AC[0-9a-f]{32})/Slow\.json$",
                  {"GET": slow})
    results = []
    async with trio.open_nursery() as nursery:
        async def first():
            results.append(await raw("GET", f"{api.base}/2010-04-01/Accounts/{AC}/Slow.json"))
        nursery.start_soon(first)
        with trio.fail_after(5):
            await entered.wait()
        status, _, body = await raw("GET", api.base + MSGS)
        assert (status, body["code"]) == (429, 20429)
        gate.set()
    assert results[0][0] == 200
    assert api.app.inflight(AC) == 0
    status, _, _ = await raw("GET", api.base + MSGS)
    assert status == 200


# -- IncomingPhoneNumbers ------------------------------------------------------------------
async def test_numbers_list_fetch_update(api, client):
    nums = await call(client.incoming_phone_numbers.list)
    assert [n.phone_number for n in nums] == [LONG, TOLL, SHORT]
    first = nums[0]
    assert first.sid == stable_sid("PN", AC, LONG) == number_sid(AC, LONG)
    assert first.account_sid == AC and first.sms_url == "http://127.0.0.1:9/sms"
    assert first.capabilities == {"fax": False, "mms": False, "sms": True, "voice": True}
    assert first.date_created is not None and first.api_version == "2010-04-01"
    assert first.uri == f"/2010-04-01/Accounts/{AC}/IncomingPhoneNumbers/{first.sid}.json"
    fetched = await call(client.incoming_phone_numbers(first.sid).fetch)
    assert fetched.phone_number == LONG
    updated = await call(client.incoming_phone_numbers(first.sid).update,
                         sms_url="https://app.example.com/sms", sms_method="GET",
                         voice_url="https://app.example.com/voice")
    assert updated.sms_url == "https://app.example.com/sms" and updated.sms_method == "GET"
    assert (await call(client.incoming_phone_numbers(first.sid).fetch)).voice_url == \
        "https://app.example.com/voice"
    assert await api.store.kv_get("number", f"{AC}:{LONG}") == {
        "sms_url": "https://app.example.com/sms", "sms_method": "GET",
        "voice_url": "https://app.example.com/voice"}
    exc = await _exc(client.incoming_phone_numbers(first.sid).update, sms_url="not a url")
    assert (exc.status, exc.code) == (400, 21502)
    exc = await _exc(client.incoming_phone_numbers(first.sid).update, sms_method="PUT")
    assert (exc.status, exc.code) == (400, 21209)


async def test_numbers_filter_paging_and_isolation(api, client):
    got = await call(client.incoming_phone_numbers.list, phone_number="800555")
    assert [n.phone_number for n in got] == [TOLL]
    paged = await call(client.incoming_phone_numbers.list, page_size=2)
    assert [n.phone_number for n in paged] == [LONG, TOLL, SHORT]
    other = make_client(api.base, AC2, "other-secret")
    exc = await _exc(other.incoming_phone_numbers(number_sid(AC, LONG)).fetch)
    assert (exc.status, exc.code) == (404, 20404)


# -- Messaging v1 services -------------------------------------------------------------
async def test_services_list_and_fetch(api, client):
    svcs = await call(client.messaging.v1.services.list)
    assert [s.sid for s in svcs] == [MG, "MG" + "1" * 32]
    svc = svcs[0]
    assert svc.friendly_name == "notifications" and svc.sticky_sender is True
    assert svc.url == f"{api.base}/v1/Services/{MG}"
    assert svc.validity_period == 36000 and svc.date_created is not None
    fetched = await call(client.messaging.v1.services(MG).fetch)
    assert fetched.account_sid == AC
    exc = await _exc(client.messaging.v1.services(MG2).fetch)
    assert (exc.status, exc.code) == (404, 20404)
    paged = await call(client.messaging.v1.services.list, page_size=1)
    assert [s.sid for s in paged] == [MG, "MG" + "1" * 32]


async def test_services_meta_shape(api):
    status, _, body = await raw("GET", f"{api.base}/v1/Services?PageSize=1")
    assert status == 200 and set(body) == {"services", "meta"}
    meta = body["meta"]
    assert meta["key"] == "services" and meta["page"] == 0 and meta["page_size"] == 1
    assert meta["next_page_url"] == f"{api.base}/v1/Services?PageSize=1&Page=1"
    assert meta["previous_page_url"] is None


# -- operational endpoints -----------------------------------------------------------------
async def test_healthz_metrics_admin(api):
    status, _, body = await raw("GET", f"{api.base}/healthz", auth=None)
    assert status == 200 and body["status"] == "ok" and body["store"] == "ok"
    assert body["carriers"]["carrier-a"]["smpp"] == "bound"
    api.runtime.store_ok = False
    status, _, body = await raw("GET", f"{api.base}/healthz", auth=None)
    assert status == 503 and body["status"] == "failing"
    status, hdrs, text = await raw("GET", f"{api.base}/metrics", auth=None)
    assert status == 200 and b"gateway_up 1" in text
    assert hdrs["Content-Type"].startswith("text/plain")
    status, _, body = await raw("GET", f"{api.base}/admin/carriers", auth=None)
    assert status == 401
    status, _, body = await raw("GET", f"{api.base}/admin/carriers", auth=(AC2, "other-secret"))
    assert status == 200 and body[0]["name"] == "carrier-a"


async def test_observer_sees_route_templates_and_codes(api, client):
    seen = []
    api.app.observe = lambda route, status, seconds, code: seen.append((route, status, code))
    msg = await call(client.messages.create, to="+15005550001", from_=LONG, body="x")
    await call(client.messages(msg.sid).fetch)
    await raw("GET", f"{api.base}/nowhere", auth=None)
    await raw("GET", api.base + MSGS, auth=(AC, "bad"))
    msgs = "/2010-04-01/Accounts/{Account}/Messages"
    assert seen == [
        (msgs + ".json", 201, None),
        (msgs + "/{Sid}.json", 200, None),
        ("unmatched", 404, 20404),
        (msgs + ".json", 401, 20003),
    ]
