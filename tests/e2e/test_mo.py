"""Inbound SMS end to end: simulator MO → gateway → signed webhook → TwiML executed →
reply MT back at the simulator; multipart MO; fallback URL; STOP/START opt-out."""

import pytest
import trio
from twilio.base.exceptions import TwilioRestException
from twilio.request_validator import RequestValidator
from twilio.twiml.messaging_response import MessagingResponse

from tests.e2e.harness import ACCOUNT, LONG, TOKEN, gateway_env, wait_until

PHONE = "15558675310"


def twiml(*bodies: str) -> bytes:
    r = MessagingResponse()
    for b in bodies:
        r.message(b)
    return str(r).encode()


async def test_mo_webhook_twiml_reply(tmp_path):
    async with gateway_env(tmp_path) as env:
        env.sink.replies["/sms"] = (200, "text/xml", twiml("pong 1", "pong 2"))
        sim = env.sims["a"]
        sim.inject_mo(PHONE, LONG.lstrip("+"), "ping")
        hit = (await env.sink.wait_for(lambda: env.sink.at("/sms")))[0]
        assert hit.form["Body"] == "ping"
        assert hit.form["From"] == "+" + PHONE
        assert hit.form["To"] == LONG
        assert hit.form["AccountSid"] == ACCOUNT
        assert hit.form["MessageSid"].startswith("SM")
        assert RequestValidator(TOKEN).validate(env.sink.url("/sms"), hit.form, hit.headers["x-twilio-signature"])
        # the two replies go out from our number to the sender, in order
        await wait_until(lambda: len(sim.submits) >= 2, timeout=15)
        assert [s.short_message for s in sim.submits] == [b"pong 1", b"pong 2"]
        assert {s.dest for s in sim.submits} == {PHONE}
        assert {s.source for s in sim.submits} == {LONG.lstrip("+")}
        # the inbound message is stored as received
        client = env.client()
        inbound = await trio.to_thread.run_sync(lambda: client.messages.list(to=LONG))
        assert any(m.direction == "inbound" and m.status == "received" and m.body == "ping" for m in inbound)


async def test_multipart_mo_reassembled(tmp_path):
    async with gateway_env(tmp_path) as env:
        text = "".join(chr(ord("a") + i % 26) for i in range(300))
        env.sims["a"].inject_mo(PHONE, LONG.lstrip("+"), text, parts=2)
        hit = (await env.sink.wait_for(lambda: env.sink.at("/sms")))[0]
        assert hit.form["Body"] == text
        assert hit.form["NumSegments"] == "2"


async def test_fallback_on_webhook_error(tmp_path):
    async with gateway_env(tmp_path) as env:
        env.sink.replies["/sms"] = (500, "text/plain", b"boom")
        env.sink.replies["/fallback"] = (200, "text/xml", twiml("from fallback"))
        env.sims["a"].inject_mo(PHONE, LONG.lstrip("+"), "hi")
        fb = (await env.sink.wait_for(lambda: env.sink.at("/fallback")))[0]
        assert fb.form["ErrorUrl"] == env.sink.url("/sms")
        assert fb.form["ErrorCode"] in ("11200", "11217")
        await wait_until(lambda: env.sims["a"].submits, timeout=10)
        assert env.sims["a"].submits[0].short_message == b"from fallback"


async def test_stop_then_send_fails_21610_and_start_resubscribes(tmp_path):
    async with gateway_env(tmp_path) as env:
        sim = env.sims["a"]
        client = env.client()
        sim.inject_mo(PHONE, LONG.lstrip("+"), " Stop ")
        # Twilio's default confirmation goes back to the handset
        await wait_until(lambda: sim.submits, timeout=10)
        assert b"unsubscribed" in sim.submits[0].short_message
        await env.sink.wait_for(lambda: env.sink.at("/sms"))
        with pytest.raises(TwilioRestException) as exc:
            await trio.to_thread.run_sync(
                lambda: client.messages.create(to="+" + PHONE, from_=LONG, body="hello?")
            )
        assert exc.value.code == 21610
        sim.inject_mo(PHONE, LONG.lstrip("+"), "START")
        await wait_until(lambda: len(sim.submits) >= 2, timeout=10)
        msg = await trio.to_thread.run_sync(
            lambda: client.messages.create(to="+" + PHONE, from_=LONG, body="welcome back")
        )
        assert msg.status == "queued"
