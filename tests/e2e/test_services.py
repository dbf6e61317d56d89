"""Messaging Services end to end with the twilio client: pool selection, sticky sender,
scheduled messages (window errors, cancel, due → queued, survives a restart), and the
service's Messaging v1 view."""

import datetime as dt

import pytest
import trio
from twilio.base.exceptions import TwilioRestException

from tests.e2e.harness import LONG, LONG2, SERVICE, gateway_env, wait_status


def send_at(seconds: float) -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(seconds=seconds)


async def test_pool_selection_is_sticky_per_recipient(tmp_path):
    async with gateway_env(tmp_path) as env:
        client = env.client()

        def run():
            out = {}
            for i in range(6):
                to = f"+1555867{5300 + i:04d}"
                first = client.messages.create(to=to, messaging_service_sid=SERVICE, body="a")
                again = client.messages.create(to=to, messaging_service_sid=SERVICE, body="b")
                out[to] = (first, again)
            return out

        pairs = await trio.to_thread.run_sync(run)
        for first, again in pairs.values():
            assert first.status == "accepted" and first.messaging_service_sid == SERVICE
            a = await env.gw.store.get_message(first.sid)
            b = await env.gw.store.get_message(again.sid)
            assert a.from_ in (LONG, LONG2)
            assert a.from_ == b.from_           # sticky sender
        used = {(await env.gw.store.get_message(p[0].sid)).from_ for p in pairs.values()}
        assert used == {LONG, LONG2}            # the pool is spread by queue drain time


async def test_schedule_window_errors(tmp_path):
    async with gateway_env(tmp_path) as env:
        client = env.client()
        cases = [(60, 35114), (36 * 86400, 35115)]
        for seconds, code in cases:
            with pytest.raises(TwilioRestException) as exc:
                await trio.to_thread.run_sync(lambda s=seconds: client.messages.create(
                    to="+15558675310", messaging_service_sid=SERVICE, body="x",
                    schedule_type="fixed", send_at=send_at(s)))
            assert exc.value.code == code
        with pytest.raises(TwilioRestException) as exc:
            await trio.to_thread.run_sync(lambda: client.messages.create(
                to="+15558675310", from_=LONG, body="x", schedule_type="fixed", send_at=send_at(600)))
        assert exc.value.code == 35118


async def test_scheduled_goes_out_at_send_at_and_cancel_works(tmp_path):
    async with gateway_env(tmp_path) as env:
        client = env.client()
        cb = env.sink.url("/st")

        def create(body):
            return client.messages.create(
                to="+15558675310", messaging_service_sid=SERVICE, body=body,
                schedule_type="fixed", send_at=send_at(600), status_callback=cb)

        keep = await trio.to_thread.run_sync(lambda: create("later"))
        drop = await trio.to_thread.run_sync(lambda: create("never"))
        assert keep.status == "scheduled" and drop.status == "scheduled"
        canceled = await trio.to_thread.run_sync(lambda: client.messages(drop.sid).update(status="canceled"))
        assert canceled.status == "canceled"
        # jump the gateway's clock past SendAt
        base = env.gw.clock
        env.gw.clock = lambda: base() + 700
        env.gw.messaging.poke()
        await wait_status(env, keep.sid, "delivered", timeout=10)
        sim = env.sims["a"]
        assert [s.short_message for s in sim.submits] == [b"later"]
        statuses = [(h.form["MessageSid"], h.form["MessageStatus"]) for h in env.sink.at("/st")]
        assert (drop.sid, "canceled") in statuses
        await env.sink.wait_for(lambda: (keep.sid, "delivered") in [
            (h.form["MessageSid"], h.form["MessageStatus"]) for h in env.sink.at("/st")])
        keep_statuses = [s for sid, s in [(h.form["MessageSid"], h.form["MessageStatus"]) for h in env.sink.at("/st")] if sid == keep.sid]
        assert keep_statuses[0] == "queued"


async def test_messaging_v1_services_list(tmp_path):
    async with gateway_env(tmp_path) as env:
        client = env.client()
        services = await trio.to_thread.run_sync(lambda: client.messaging.v1.services.list())
        assert [s.sid for s in services] == [SERVICE]
        one = await trio.to_thread.run_sync(lambda: client.messaging.v1.services(SERVICE).fetch())
        assert one.friendly_name == "notifications"
