"""Messages.json through the official twilio library against the real HTTP server."""

from __future__ import annotations

import email.utils
import re
from datetime import UTC, datetime

import pytest
from twilio.base.exceptions import TwilioRestException

from gateway.core import message as m
from gateway.store.base import MessageFilter, StoreError

from .conftest import (
    AC,
    AC2,
    LONG,
    MG,
    NOW,
    OTHER_ACCOUNT_NUMBER,
    SHORT,
    TOKEN2,
    call,
    make_client,
    raw,
)

SID_RE = re.compile(r"^SM[0-9a-f]{32}$")
RFC2822_RE = re.compile(r"^[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} \+0000$")


async def test_create_fields_and_types(api, client):
    msg = await call(client.messages.create, to="+15005550001", from_=LONG, body="hello")
    assert SID_RE.match(msg.sid)
    assert msg.status == "queued"
    assert msg.account_sid == AC
    assert msg.from_ == LONG and msg.to == "+15005550001" and msg.body == "hello"
    assert msg.num_segments == "1" and msg.num_media == "0"
    assert msg.direction == "outbound-api"
    assert msg.api_version == "2010-04-01"
    assert msg.price is None and msg.price_unit == "USD"
    assert msg.error_code is None and msg.date_sent is None
    assert msg.date_created == datetime.fromtimestamp(NOW, UTC)
    assert msg.uri == f"/2010-04-01/Accounts/{AC}/Messages/{msg.sid}.json"
    assert msg.subresource_uris["media"].endswith(f"/Messages/{msg.sid}/Media.json")
    # durably stored before the 201
    row = await api.store.get_message(msg.sid)
    assert row is not None and row.status == "queued" and row.valid_until == NOW + 36000
    assert row.sender_class == "long_code"


async def test_raw_json_shape_dates(api):
    status, _, body = await raw("POST", f"{api.base}/2010-04-01/Accounts/{AC}/Messages.json",
                                {"To": "+15005550001", "From": LONG, "Body": "x"})
    assert status == 201
    assert RFC2822_RE.match(body["date_created"]) and body["date_created"] == body["date_updated"]
    assert email.utils.parsedate_to_datetime(body["date_created"]).timestamp() == NOW
    assert body["from"] == LONG and body["messaging_service_sid"] is None
    for key in ("sid", "account_sid", "to", "body", "status", "direction", "num_segments",
                "num_media", "price", "price_unit", "error_code", "error_message",
                "date_sent", "uri", "api_version", "subresource_uris"):
        assert key in body


@pytest.mark.parametrize("body,segments", [
    ("a" * 160, "1"), ("a" * 161, "2"), ("x" * 1600, "11"),
    ("\u00e9t\u00e9 \U0001f600" * 11, "1"),   # 66 UTF-16 units: one UCS-2 segment
    ("\u00e9t\u00e9 \U0001f600" * 12, "2"),
])
async def test_num_segments_counts_real_segments(client, body, segments):
    msg = await call(client.messages.create, to="+15005550001", from_=LONG, body=body)
    assert msg.num_segments == segments


async def test_options_are_stored(api, client):
    msg = await call(client.messages.create, to="+1 500 555 0001", from_=SHORT, body="hi",
                     status_callback="https://example.com/cb", validity_period=600,
                     smart_encoded=True)
    assert msg.to == "+15005550001"
    row = await api.store.get_message(msg.sid)
    assert row.status_callback == "https://example.com/cb"
    assert row.valid_until == NOW + 600 and row.smart_encoded is True
    assert row.sender_class == "short_code"


async def _code(fn, **kwargs):
    with pytest.raises(TwilioRestException) as info:
        await call(fn, **kwargs)
    return info.value.status, info.value.code


@pytest.mark.parametrize("kwargs,code", [
    ({"to": "5551234567", "from_": LONG, "body": "x"}, 21211),
    ({"to": "+0123", "from_": LONG, "body": "x"}, 21211),
    ({"to": "+15005550001", "from_": LONG}, 21602),
    ({"to": "+15005550001", "from_": LONG, "body": ""}, 21602),
    ({"to": "+15005550001", "body": "x"}, 21603),
    ({"to": "+15005550001", "from_": "+15005550999", "body": "x"}, 21606),
    ({"to": "+15005550001", "from_": LONG, "body": "x" * 1601}, 21617),
    ({"to": "+15005550001", "from_": LONG, "body": "x",
      "media_url": ["https://e.com/a.jpg"]}, 21620),
    ({"to": "+15005550001", "from_": LONG, "content_sid": "HX" + "0" * 32}, 21655),
    ({"to": "+15005550001", "from_": LONG, "body": "x", "status_callback": "ftp://x"}, 21609),
    ({"to": "+15005550001", "from_": LONG, "body": "x", "validity_period": 0}, 21624),
    ({"to": "+15005550001", "from_": LONG, "body": "x", "validity_period": 36001}, 21624),
    ({"to": "+15005550001", "messaging_service_sid": "MG" + "9" * 32, "body": "x"}, 21701),
    ({"to": "+15005550001", "messaging_service_sid": "MG" + "1" * 32, "body": "x"}, 21704),
])
async def test_create_errors(client, kwargs, code):
    assert await _code(client.messages.create, **kwargs) == (400, code)


async def test_to_required_21604(api):
    status, _, body = await raw("POST", f"{api.base}/2010-04-01/Accounts/{AC}/Messages.json",
                                {"From": LONG, "Body": "x"})
    assert (status, body["code"]) == (400, 21604)
    assert body["more_info"] == "https://www.twilio.com/docs/errors/21604"
    assert set(body) == {"code", "message", "more_info", "status"} and body["status"] == 400


async def test_runtime_refusals_surface(api, client):
    api.runtime.opted_out.add((LONG, "+15005550002"))
    assert await _code(client.messages.create, to="+15005550002", from_=LONG,
                       body="x") == (400, 21610)
    api.runtime.capacity = 0
    assert await _code(client.messages.create, to="+15005550001", from_=LONG,
                       body="x") == (400, 21611)


async def test_messaging_service_accepted(api, client):
    msg = await call(client.messages.create, to="+15005550001", messaging_service_sid=MG,
                     body="pool")
    assert msg.status == "accepted" and msg.from_ is None
    assert msg.messaging_service_sid == MG
    row = await api.store.get_message(msg.sid)
    assert row.from_ == "" and row.messaging_service_sid == MG


async def test_scheduled_create_and_cancel(api, client):
    send_at = datetime.fromtimestamp(NOW + 3600, UTC)
    msg = await call(client.messages.create, to="+15005550001", messaging_service_sid=MG,
                     body="later", schedule_type="fixed", send_at=send_at)
    assert msg.status == "scheduled"
    row = await api.store.get_message(msg.sid)
    assert row.send_at == NOW + 3600 and row.valid_until == NOW + 3600 + 36000
    canceled = await call(client.messages(msg.sid).update, status="canceled")
    assert canceled.status == "canceled"
    assert (await api.store.get_message(msg.sid)).status == "canceled"
    # a canceled message cannot be canceled again
    assert await _code(client.messages(msg.sid).update, status="canceled") == (400, 30409)


@pytest.mark.parametrize("offset,extra,code", [
    (3600, {"from_": LONG}, 35118),
    (299, {"messaging_service_sid": MG}, 35114),
    (35 * 86400 + 1, {"messaging_service_sid": MG}, 35115),
])
async def test_schedule_errors(client, offset, extra, code):
    send_at = datetime.fromtimestamp(NOW + offset, UTC)
    assert await _code(client.messages.create, to="+15005550001", body="x",
                       schedule_type="fixed", send_at=send_at, **extra) == (400, code)


async def test_schedule_bounds_inclusive(client):
    for offset in (300, 35 * 86400):
        send_at = datetime.fromtimestamp(NOW + offset, UTC)
        msg = await call(client.messages.create, to="+15005550001", body="x",
                         messaging_service_sid=MG, schedule_type="fixed", send_at=send_at)
        assert msg.status == "scheduled"


async def test_cancel_queued_message_refused(client):
    msg = await call(client.messages.create, to="+15005550001", from_=LONG, body="x")
    assert await _code(client.messages(msg.sid).update, status="canceled") == (400, 30409)


async def test_fetch_redact_delete(api, client):
    msg = await call(client.messages.create, to="+15005550001", from_=LONG, body="secret")
    fetched = await call(client.messages(msg.sid).fetch)
    assert fetched.sid == msg.sid and fetched.body == "secret"
    # not final yet: neither redact nor delete
    assert await _code(client.messages(msg.sid).update, body="") == (400, 20009)
    assert await _code(client.messages(msg.sid).delete) == (400, 20009)
    row = await api.store.get_message(msg.sid)
    for status in (m.SENDING, m.SENT, m.DELIVERED):
        assert row.advance(status, NOW + 1)
    row.date_sent = NOW + 1
    await api.store.save_message(row)
    redacted = await call(client.messages(msg.sid).update, body="")
    assert redacted.body == "" and redacted.status == "delivered"
    assert (await api.store.get_message(msg.sid)).body == ""
    assert await call(client.messages(msg.sid).delete) is True
    assert await api.store.get_message(msg.sid) is None
    assert await _code(client.messages(msg.sid).fetch) == (404, 20404)


async def test_unknown_and_foreign_messages_404(api, client):
    assert await _code(client.messages("SM" + "0" * 32).fetch) == (404, 20404)
    assert await _code(client.messages("nonsense").fetch) == (404, 20404)
    msg = await call(client.messages.create, to="+15005550001", from_=LONG, body="mine")
    other = make_client(api.base, AC2, TOKEN2)
    assert await _code(other.messages(msg.sid).fetch) == (404, 20404)
    assert await _code(other.messages(msg.sid).delete) == (404, 20404)
    # and the other account's listing does not show it
    assert await call(other.messages.list) == []


async def test_idempotency_headers(api):
    url = f"{api.base}/2010-04-01/Accounts/{AC}/Messages.json"
    form = {"To": "+15005550001", "From": LONG, "Body": "once"}
    for header in ("Idempotency-Key", "I-Twilio-Idempotency-Token"):
        s1, _, b1 = await raw("POST", url, form, {header: f"k-{header}"})
        s2, _, b2 = await raw("POST", url, form, {header: f"k-{header}"})
        assert s1 == s2 == 201 and b1["sid"] == b2["sid"]
    s3, _, b3 = await raw("POST", url, form, {"Idempotency-Key": "another"})
    assert s3 == 201 and b3["sid"] != b1["sid"]
    rows = await api.store.list_messages(MessageFilter(account_sid=AC), 100)
    assert len(rows) == 3


async def test_idempotency_key_is_per_account(api):
    form = {"To": "+15005550001", "Body": "x"}
    s1, _, b1 = await raw("POST", f"{api.base}/2010-04-01/Accounts/{AC}/Messages.json",
                          {**form, "From": LONG}, {"Idempotency-Key": "shared"})
    s2, _, b2 = await raw("POST", f"{api.base}/2010-04-01/Accounts/{AC2}/Messages.json",
                          {**form, "From": OTHER_ACCOUNT_NUMBER}, {"Idempotency-Key": "shared"},
                          auth=(AC2, TOKEN2))
    assert s1 == s2 == 201 and b1["sid"] != b2["sid"] and b2["account_sid"] == AC2


async def test_store_failure_is_503_and_bugs_are_500(api, client, monkeypatch):
    async def broken(msg, key):
        raise StoreError("disk full")

    monkeypatch.setattr(api.runtime, "submit_message", broken)
    exc = await _exc_of(client.messages.create, to="+15005550001", from_=LONG, body="x")
    assert (exc.status, exc.code) == (503, 20503)

    async def buggy(msg, key):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(api.runtime, "submit_message", buggy)
    status, _, body = await raw("POST", f"{api.base}/2010-04-01/Accounts/{AC}/Messages.json",
                                {"To": "+15005550001", "From": LONG, "Body": "x"})
    assert (status, body["code"]) == (500, 20500)
    assert "secret" not in str(body)


async def _exc_of(fn, **kwargs) -> TwilioRestException:
    with pytest.raises(TwilioRestException) as info:
        await call(fn, **kwargs)
    return info.value
