"""Messaging Services end to end, the parts that need volume or a restart: a thousand
schedules due in the same second, schedules and sticky senders surviving a graceful
restart on the same SQLite file, cancel before/after SendAt, and the service's inbound
webhook overriding the pool number's.

Rules: sockets on 127.0.0.1 port 0; the gateway's epoch clock (``gw.clock``) is moved
instead of waiting for SendAt; every wait is a condition with a deadline.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from dataclasses import dataclass

import prometheus_client
import pytest
import trio
from twilio.base.exceptions import TwilioRestException

from gateway import settings as settings_mod
from gateway.io.http_server import HttpServer
from gateway.runtime.app import Gateway
from gateway.store.base import MessageFilter
from tests.e2e.harness import (
    ACCOUNT,
    LONG,
    LONG2,
    SERVICE,
    Env,
    Sink,
    config_text,
    start_sim,
    wait_bound,
    wait_status,
    wait_until,
)

RATES = "long_code = 2000\ntoll_free = 3\nshort_code = 100\nqueue_hours = 1"


def send_at(seconds: float) -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(seconds=seconds)


@dataclass
class World:
    """Simulator + webhook sink that outlive gateways; gateways start and stop on them."""

    tmp_path: object
    nursery: trio.Nursery
    sink: Sink
    sims: dict
    cfg_kw: dict

    async def start(self) -> Env:
        path = self.tmp_path / "gw.toml"
        if not path.exists():
            kw = dict(self.cfg_kw)
            extra = kw.pop("extra", "")
            if callable(extra):
                extra = extra(self.sink)
            carriers = [(n, s.port) for n, s in self.sims.items()]
            path.write_text(config_text(self.tmp_path, carriers, self.sink.port, extra=extra, **kw))
        gw = Gateway(settings_mod.load(path), registry=prometheus_client.CollectorRegistry())
        port = await self.nursery.start(gw.run)
        await wait_bound(gw)
        return Env(gw, port, self.sims, self.sink, self.nursery)

    async def stop(self, env: Env) -> None:
        env.gw.stop()
        await wait_until(lambda: env.gw.stopped, timeout=30)


@contextlib.asynccontextmanager
async def world(tmp_path, **cfg_kw):
    async with trio.open_nursery() as nursery:
        sink = Sink()
        sink.server = HttpServer(sink.handle, "127.0.0.1", 0)
        sink.port = await nursery.start(sink.server.serve)
        sims = {"a": await start_sim(nursery, dlr_delay_ms=10)}
        w = World(tmp_path, nursery, sink, sims, cfg_kw)
        try:
            yield w
        finally:
            nursery.cancel_scope.cancel()


def jump_clock(gw, seconds: float) -> None:
    base = gw.clock
    gw.clock = lambda: base() + seconds
    gw.messaging.poke()


def statuses(sink, path="/st") -> list[tuple[str, str]]:
    return [(h.form["MessageSid"], h.form["MessageStatus"]) for h in sink.at(path)]


def schedule(client, cb, body, when, to="+15558675310"):
    return client.messages.create(to=to, messaging_service_sid=SERVICE, body=body,
                                  schedule_type="fixed", send_at=when, status_callback=cb)


async def test_thousand_schedules_due_in_same_second_go_out_in_order(tmp_path):
    n = 1000
    async with world(tmp_path, rates=RATES) as w:
        env = await w.start()
        client, cb = env.client(), env.sink.url("/st")
        when = send_at(600)
        recipients = [f"+1555867{5300 + r:04d}" for r in range(7)]

        def create_all():
            return [schedule(client, cb, f"s{i:04d}", when, recipients[i % 7]).sid
                    for i in range(n)]

        with trio.fail_after(40):
            sids = await trio.to_thread.run_sync(create_all)
        assert len(set(sids)) == n
        sim = env.sims["a"]
        assert sim.submits == [] and statuses(env.sink) == []   # nothing before SendAt
        # the gateway's clock reaches SendAt exactly: all thousand are due at once
        env.gw.clock = lambda: when.timestamp()
        env.gw.messaging.poke()
        want = {f"s{i:04d}".encode() for i in range(n)}
        await wait_until(lambda: {s.short_message for s in sim.submits} >= want, timeout=20)
        assert len(sim.submits) == n                             # each exactly once
        by_sender: dict[str, list[bytes]] = {}
        for s in sim.submits:
            by_sender.setdefault(s.source, []).append(s.short_message)
        assert set(by_sender) <= {LONG.lstrip("+"), LONG2.lstrip("+")}
        for bodies in by_sender.values():
            assert bodies == sorted(bodies)                      # creation order per sender
        # sticky sender: a recipient kept one number for all its scheduled messages
        pairs = {(s.dest, s.source) for s in sim.submits}
        assert len(pairs) == len(recipients)
        await env.sink.wait_for(
            lambda: {sid for sid, st in statuses(env.sink) if st == "queued"} >= set(sids), timeout=20)
        queued = [sid for sid, st in statuses(env.sink) if st == "queued"]
        assert len(queued) == n                                  # one queued callback each
        await w.stop(env)


async def test_schedule_and_cancel_survive_a_restart(tmp_path):
    async with world(tmp_path) as w:
        env = await w.start()
        client, cb = env.client(), env.sink.url("/st")
        when = send_at(900)
        keep = await trio.to_thread.run_sync(lambda: schedule(client, cb, "keep", when))
        drop = await trio.to_thread.run_sync(lambda: schedule(client, cb, "drop", when))
        early = await trio.to_thread.run_sync(lambda: schedule(client, cb, "early", send_at(400)))
        assert {keep.status, drop.status, early.status} == {"scheduled"}
        await w.stop(env)                                         # graceful stop

        env = await w.start()                                     # same SQLite file
        client = env.client()
        for m in (keep, drop, early):
            assert (await env.gw.store.get_message(m.sid)).status == "scheduled"
        canceled = await trio.to_thread.run_sync(
            lambda: client.messages(drop.sid).update(status="canceled"))
        assert canceled.status == "canceled"
        await env.sink.wait_for(lambda: (drop.sid, "canceled") in statuses(env.sink))
        # past the first SendAt only: "early" goes out, the others still wait
        jump_clock(env.gw, 500)
        await wait_status(env, early.sid, "delivered")
        assert (await env.gw.store.get_message(keep.sid)).status == "scheduled"
        # cancel after SendAt (already queued/sent): refused, the message is untouched
        with pytest.raises(TwilioRestException) as exc:
            await trio.to_thread.run_sync(
                lambda: client.messages(early.sid).update(status="canceled"))
        assert exc.value.status == 400 and exc.value.code == 30409
        assert (await env.gw.store.get_message(early.sid)).status == "delivered"
        jump_clock(env.gw, 500)                                   # now past keep's SendAt
        await wait_status(env, keep.sid, "delivered")
        sent = [s.short_message for s in env.sims["a"].submits]
        assert sent == [b"early", b"keep"]                        # "drop" never went out
        keep_st = [st for sid, st in statuses(env.sink) if sid == keep.sid]
        assert keep_st[0] == "queued" and "canceled" not in keep_st
        await w.stop(env)


async def test_sticky_sender_across_many_recipients_and_a_restart(tmp_path):
    recipients = [f"+1555867{6000 + r:04d}" for r in range(40)]
    async with world(tmp_path, rates=RATES) as w:
        env = await w.start()
        client = env.client()

        def first_round():
            return [client.messages.create(to=to, messaging_service_sid=SERVICE, body="1")
                    for to in recipients]

        firsts = await trio.to_thread.run_sync(first_round)
        chosen = {}
        for m in firsts:
            stored = await wait_status(env, m.sid, "delivered")
            chosen[m.to] = stored.from_
        assert set(chosen.values()) == {LONG, LONG2}              # the pool is used
        # the sticky map is persisted before a graceful stop returns
        await w.stop(env)

        env = await w.start()
        client = env.client()

        def second_round():
            return [client.messages.create(to=to, messaging_service_sid=SERVICE, body="2")
                    for to in reversed(recipients)]

        seconds = await trio.to_thread.run_sync(second_round)
        for m in seconds:
            stored = await wait_status(env, m.sid, "delivered")
            assert stored.from_ == chosen[m.to], m.to             # same sender after restart
        await w.stop(env)


@pytest.mark.parametrize("service_url", [True, False])
async def test_inbound_to_pool_number_uses_service_webhook_when_set(tmp_path, service_url):
    extra = (lambda sink: f'sms_url = "{sink.url("/svc")}"\n') if service_url else ""
    async with world(tmp_path, extra=extra) as w:
        env = await w.start()
        sim = env.sims["a"]
        sim.inject_mo("15558675310", LONG.lstrip("+"), "to long")
        sim.inject_mo("15558675311", LONG2.lstrip("+"), "to long2")
        if service_url:
            hits = await env.sink.wait_for(lambda: len(env.sink.at("/svc")) >= 2 and env.sink.at("/svc"))
            assert sorted(h.form["Body"] for h in hits) == ["to long", "to long2"]
            assert all(h.form["MessagingServiceSid"] == SERVICE for h in hits)
            assert env.sink.at("/sms") == []                     # the number's URL is overridden
        else:
            hits = await env.sink.wait_for(lambda: env.sink.at("/sms"))
            assert [h.form["Body"] for h in hits] == ["to long"]
            assert hits[0].form["MessagingServiceSid"] == SERVICE
            # LONG2 has no sms_url and the service none: stored with the service, no webhook
            flt = MessageFilter(account_sid=ACCOUNT, to=LONG2)
            got = []
            with trio.fail_after(10):
                while not got:
                    got = await env.gw.store.list_messages(flt, 5)
                    await trio.sleep(0.02)
            assert got[0].body == "to long2" and got[0].messaging_service_sid == SERVICE
            assert [h.form["Body"] for h in env.sink.hits] == ["to long"]
        await w.stop(env)


async def test_scheduled_message_whose_service_was_removed_fails_alone(tmp_path):
    async with world(tmp_path) as w:
        env = await w.start()
        client, cb = env.client(), env.sink.url("/st")
        when = send_at(600)
        orphan = await trio.to_thread.run_sync(lambda: schedule(client, cb, "orphan", when))
        await w.stop(env)
        # the operator removes the service from the config, then restarts
        path = tmp_path / "gw.toml"
        text = path.read_text()
        head, _, tail = text.partition("[[messaging_services]]")
        path.write_text(head + tail.partition("sticky_sender = true\n")[2])
        env = await w.start()
        jump_clock(env.gw, 700)
        failed = await wait_status(env, orphan.sid, "failed")
        assert failed.error_code == 21603
        await env.sink.wait_for(lambda: (orphan.sid, "failed") in statuses(env.sink))
        # the gateway still works
        client = env.client()
        ok = await trio.to_thread.run_sync(lambda: client.messages.create(
            to="+15558675310", from_=LONG, body="still up"))
        await wait_status(env, ok.sid, "delivered")
        await w.stop(env)
