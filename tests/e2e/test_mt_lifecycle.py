"""MT lifecycle end to end: twilio client → API → store → queue → SMSC simulator → DLR →
signed status callbacks (sent, delivered) that twilio's RequestValidator accepts."""

import trio
from twilio.request_validator import RequestValidator

from tests.e2e.harness import ACCOUNT, LONG, SHORT, TOKEN, gateway_env, wait_status, wait_until


async def test_send_to_delivered_with_signed_callbacks(tmp_path):
    async with gateway_env(tmp_path) as env:
        client = env.client()
        cb = env.sink.url("/status")
        msg = await trio.to_thread.run_sync(
            lambda: client.messages.create(to="+15558675310", from_=SHORT, body="hello", status_callback=cb)
        )
        assert msg.status == "queued"
        assert msg.sid.startswith("SM") and len(msg.sid) == 34
        hits = await env.sink.wait_for(lambda: len(env.sink.at("/status")) >= 2 and env.sink.at("/status"))
        statuses = [h.form["MessageStatus"] for h in hits]
        assert statuses == ["sent", "delivered"]
        validator = RequestValidator(TOKEN)
        for h in hits:
            assert validator.validate(cb, h.form, h.headers["x-twilio-signature"])
            assert h.form["MessageSid"] == msg.sid
            assert h.form["AccountSid"] == ACCOUNT
        sim = env.sims["a"]
        assert len(sim.submits) == 1
        fetched = await trio.to_thread.run_sync(lambda: client.messages(msg.sid).fetch())
        assert fetched.status == "delivered"
        assert fetched.date_sent is not None


async def test_multipart_message_sends_udh_segments(tmp_path):
    async with gateway_env(tmp_path) as env:
        client = env.client()
        body = "x" * 200
        msg = await trio.to_thread.run_sync(
            lambda: client.messages.create(to="+15558675310", from_=SHORT, body=body)
        )
        assert msg.num_segments == "2"
        sim = env.sims["a"]
        await wait_until(lambda: len(sim.submits) == 2)
        stored = await wait_status(env, msg.sid, "delivered")
        assert stored.num_segments == 2


async def test_long_code_rate_one_per_second(tmp_path):
    async with gateway_env(tmp_path) as env:
        client = env.client()
        for i in range(3):
            await trio.to_thread.run_sync(
                lambda i=i: client.messages.create(to="+15558675310", from_=LONG, body=f"m{i}")
            )
        sim = env.sims["a"]
        await wait_until(lambda: len(sim.submits) == 3, timeout=10)
        times = [s.time for s in sim.submits]
        # 1 segment/s for a long code: three messages span at least ~2 s
        assert times[2] - times[0] >= 1.8
        assert [s.short_message for s in sim.submits] == [b"m0", b"m1", b"m2"]
