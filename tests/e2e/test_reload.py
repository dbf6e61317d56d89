"""Config reload in-process (``Gateway.reload()``, what SIGHUP calls) against the SMSC
simulator: what changes live, that an unchanged carrier keeps its one bind, that an
invalid file changes nothing, and that no message is lost while reloading.

Rules: sockets on 127.0.0.1 port 0; every wait is a condition with a deadline.
"""

from __future__ import annotations

import contextlib
import textwrap

import prometheus_client
import pytest
import trio
from twilio.base.exceptions import TwilioRestException
from twilio.request_validator import RequestValidator

from gateway import settings as settings_mod
from gateway.io.http_server import HttpServer
from gateway.runtime.app import Gateway
from tests.e2e.harness import (
    ACCOUNT,
    LONG,
    LONG2,
    OTHER_ACCOUNT,
    OTHER_TOKEN,
    TOKEN,
    Env,
    Sink,
    config_text,
    start_sim,
    wait_bound,
    wait_status,
    wait_until,
)

RATES = "long_code = 50\ntoll_free = 3\nshort_code = 100\nqueue_hours = 1"
OTHER_NUMBER = "+15005550999"
NEW_NUMBER = "+15005550123"
PHONE = "15558675310"


@contextlib.asynccontextmanager
async def reload_env(tmp_path, n_sims: int = 2, carriers: str = "a", **cfg_kw):
    """Gateway on ``carriers`` of ``n_sims`` simulators; yields (env, write(carriers, **kw))."""
    async with trio.open_nursery() as nursery:
        sink = Sink()
        sink.server = HttpServer(sink.handle, "127.0.0.1", 0)
        sink.port = await nursery.start(sink.server.serve)
        sims = {n: await start_sim(nursery, dlr_delay_ms=10) for n in "ab"[:n_sims]}
        path = tmp_path / "gw.toml"

        def write(names: str = carriers, replace: dict | None = None, **kw) -> None:
            kw = {"rates": RATES, **cfg_kw, **kw}
            text = config_text(tmp_path, [(n, sims[n].port) for n in names], sink.port, **kw)
            for old, new in (replace or {}).items():
                assert old in text, old
                text = text.replace(old, new)
            path.write_text(text)

        write()
        gw = Gateway(settings_mod.load(path), registry=prometheus_client.CollectorRegistry())
        port = await nursery.start(gw.run)
        await wait_bound(gw)
        env = Env(gw, port, sims, sink, nursery)
        try:
            yield env, write
        finally:
            gw.stop()
            await wait_until(lambda: gw.stopped, timeout=30)
            nursery.cancel_scope.cancel()


def binds(sim) -> int:
    return sum(sim.stats["binds"].values())


def metric(gw, name: str) -> float:
    value = gw.metrics.registry.get_sample_value(name, {"result": "error"}) \
        if name.endswith("_total") else gw.metrics.registry.get_sample_value(name)
    return value or 0.0


async def test_reload_applies_live_changes_keeps_the_bind_and_loses_nothing(tmp_path):
    async with reload_env(tmp_path) as (env, write):
        gw, sim_a = env.gw, env.sims["a"]
        link_a = gw.carriers.links["a"]
        assert binds(sim_a) == 1 and gw.dispatcher.capacity[LONG] == (50.0, 50 * 3600)
        other = env.client(OTHER_ACCOUNT, OTHER_TOKEN)
        sids: list[str] = []
        some_sent = trio.Event()

        def send_many():        # another account: its token does not change
            for i in range(40):
                sids.append(other.messages.create(to="+1555867" + f"{5300 + i:04d}",
                                                  from_=OTHER_NUMBER, body=f"r{i}").sid)
                if i == 5:
                    trio.from_thread.run_sync(some_sent.set)

        new_number = textwrap.dedent(f"""
        [[numbers]]
        number = "{NEW_NUMBER}"
        account = "{ACCOUNT}"
        type = "long_code"
        """)
        async with trio.open_nursery() as n:
            n.start_soon(trio.to_thread.run_sync, send_many)
            await some_sent.wait()
            write("ab", numbers_extra=new_number,
                  rates="long_code = 80\ntoll_free = 3\nshort_code = 100\nqueue_hours = 1",
                  replace={f'auth_token = "{TOKEN}"': 'auth_token = "rotated"',
                           f'{env.sink.url("/sms")}"': f'{env.sink.url("/sms2")}"'})
            result = await gw.reload()
        assert result.ok, result.problems
        assert result.needs_restart == []

        # carrier a kept its one bind; b was added and binds
        assert gw.carriers.links["a"] is link_a and binds(sim_a) == 1 and sim_a.bound_count == 1
        await wait_bound(gw)
        assert binds(env.sims["b"]) == 1
        # rates: gate and capacity of every sender
        assert gw.dispatcher.capacity[LONG] == (80.0, 80 * 3600)
        # no message lost: every one sent while reloading is delivered
        for sid in sids:
            await wait_status(env, sid, "delivered", timeout=20)
        assert len(set(sids)) == 40

        # rotated token: the new one works at once, the old one is refused
        with pytest.raises(TwilioRestException) as refused:
            await trio.to_thread.run_sync(lambda: env.client().messages.create(
                to="+15558675310", from_=LONG, body="old token"))
        assert refused.value.status == 401
        fresh = env.client(ACCOUNT, "rotated")
        msg = await trio.to_thread.run_sync(lambda: fresh.messages.create(
            to="+15558675310", from_=NEW_NUMBER, body="from the new number"))
        await wait_status(env, msg.sid, "delivered")

        # the number's new webhook, signed with the new token
        env.sims["a"].inject_mo(PHONE, LONG.lstrip("+"), "ping")
        hit = (await env.sink.wait_for(lambda: env.sink.at("/sms2")))[0]
        assert RequestValidator("rotated").validate(env.sink.url("/sms2"), hit.form,
                                                     hit.headers["x-twilio-signature"])
        assert env.sink.at("/sms") == []
        reg = gw.metrics.registry
        assert reg.get_sample_value("gateway_config_reload_total", {"result": "ok"}) == 1


async def test_invalid_config_keeps_the_old_one_and_counts_an_error(tmp_path, caplog):
    async with reload_env(tmp_path, n_sims=1) as (env, write):
        gw = env.gw
        before = gw.settings
        write(rates="long_code = -1\ntoll_free = 3\nshort_code = 100\nqueue_hours = 1\nbogus = 1",
              replace={f'auth_token = "{TOKEN}"': 'auth_token = "rotated"'})
        result = await gw.reload()
        assert not result.ok
        assert len(result.problems) == 2 and all(str(tmp_path) in p for p in result.problems)
        assert any("rates.long_code" in p for p in result.problems)
        assert any("rates.bogus" in p for p in result.problems)
        assert gw.settings is before
        logged = [r.getMessage() for r in caplog.records if "reload refused" in r.getMessage()]
        assert len(logged) == 2
        assert metric(gw, "gateway_config_reload_total") == 1
        # still the old token, the old link
        page = await trio.to_thread.run_sync(lambda: env.client().messages.list(limit=1))
        assert page == []
        assert binds(env.sims["a"]) == 1 and env.sims["a"].bound_count == 1


async def test_removed_number_refuses_new_messages_while_its_queue_drains(tmp_path):
    slow = "long_code = 4\ntoll_free = 3\nshort_code = 100\nqueue_hours = 1"
    async with reload_env(tmp_path, n_sims=1, rates=slow) as (env, write):
        client = env.client()
        sids = [await trio.to_thread.run_sync(lambda i=i: client.messages.create(
            to="+15558675310", from_=LONG2, body=f"q{i}").sid) for i in range(8)]
        assert env.gw.dispatcher.sched.queued(LONG2) > 0      # 8 at 4/s: still queued
        # LONG2 leaves the config (and the service pool that holds it)
        write(replace={f'numbers = ["{LONG}", "{LONG2}"]': f'numbers = ["{LONG}"]',
                       f'[[numbers]]\nnumber = "{LONG2}"\naccount = "{ACCOUNT}"\ntype = "long_code"\n': ""})
        assert (await env.gw.reload()).ok
        with pytest.raises(TwilioRestException) as refused:
            await trio.to_thread.run_sync(lambda: client.messages.create(
                to="+15558675310", from_=LONG2, body="too late"))
        assert refused.value.code == 21606
        numbers = await trio.to_thread.run_sync(lambda: client.incoming_phone_numbers.list())
        assert LONG2 not in {n.phone_number for n in numbers}
        for sid in sids:
            await wait_status(env, sid, "delivered", timeout=20)


async def test_carriers_removed_and_rebound_others_keep_their_bind(tmp_path):
    async with reload_env(tmp_path, carriers="ab") as (env, write):
        gw, sim_a, sim_b = env.gw, env.sims["a"], env.sims["b"]
        assert binds(sim_a) == binds(sim_b) == 1
        # b's credentials change: b binds again, a keeps its bind
        text = (tmp_path / "gw.toml").read_text()
        head, _, tail = text.partition('name = "b"')
        (tmp_path / "gw.toml").write_text(head + 'name = "b"' +
                                          tail.replace('system_id = "gw"', 'system_id = "gw2"', 1))
        result = await gw.reload()
        assert result.ok and "b: rebind" in result.changes, result.changes
        await wait_until(lambda: binds(sim_b) == 2 and sim_b.bound_count == 1)
        await wait_bound(gw)
        assert binds(sim_a) == 1 and sim_a.bound_count == 1
        # carrier a removed: it unbinds, traffic goes to b
        write("b", replace={'system_id = "gw"': 'system_id = "gw2"'})
        result = await gw.reload()
        assert result.ok and "a: removed" in result.changes, result.changes
        await wait_until(lambda: sim_a.bound_count == 0)
        assert "a" not in gw.carriers.links and binds(sim_b) == 2
        client = env.client()
        msg = await trio.to_thread.run_sync(lambda: client.messages.create(
            to="+15558675310", from_=LONG, body="via b"))
        await wait_status(env, msg.sid, "delivered")
        assert [s.short_message for s in sim_b.submits] == [b"via b"]
        await wait_until(lambda: "a" not in gw.carriers.healths)
        health = await trio.to_thread.run_sync(lambda: __import__("urllib.request").request
                                               .urlopen(env.base_url + "/healthz").read())
        assert b'"a"' not in health and b'"b"' in health
