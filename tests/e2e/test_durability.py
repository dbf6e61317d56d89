"""Durability of what the carrier and the webhook receiver were promised (issue 4,
CONTRACT §5): MO stored before its deliver_sm_resp, multipart parts kept across a
restart, receipts answered after their status is durable, and status callbacks that
survive ``kill -9`` (same idempotency token)."""

import signal
import sqlite3

import pytest
import trio
import trio.testing
from twilio.request_validator import RequestValidator

from gateway import codec
from gateway.io.http_server import HttpServer
from gateway.store.base import StoreError
from gateway.testing.smsc_pdus import mo_pdus
from tests.e2e.harness import LONG, SHORT, TOKEN, Sink, config_text, gateway_env, wait_until
from tests.e2e.process_harness import Api, GatewayProcess, start_sim

PHONE = "15558675310"
S = codec.Status


def resps(sim, status=0) -> int:
    return sim.stats["deliver_resps"][status]


def gate_store(store, name):
    """Make ``store.<name>`` wait for the returned event (or raise if ``fail``)."""
    orig = getattr(store, name)
    state = {"gate": trio.Event(), "entered": 0, "fail": False}

    async def gated(*a, **kw):
        state["entered"] += 1
        await state["gate"].wait()
        if state["fail"]:
            raise StoreError("disk on fire")
        return await orig(*a, **kw)

    setattr(store, name, gated)
    return state


async def test_mo_answered_only_after_it_is_committed(tmp_path):
    async with gateway_env(tmp_path) as env:
        sim = env.sims["a"]
        g = gate_store(env.gw.store, "create_message")
        sim.inject_mo(PHONE, LONG.lstrip("+"), "keep me")
        await wait_until(lambda: g["entered"] == 1)
        await trio.testing.wait_all_tasks_blocked(0.05)
        assert sum(sim.stats["deliver_resps"].values()) == 0      # not answered yet
        assert env.gw.links["a"].pending_delivers == 1
        g["gate"].set()
        await wait_until(lambda: resps(sim) == 1)
        hit = (await env.sink.wait_for(lambda: env.sink.at("/sms")))[0]
        assert await env.gw.store.get_message(hit.form["MessageSid"]) is not None


async def test_mo_store_failure_answers_temporary_error(tmp_path):
    async with gateway_env(tmp_path) as env:
        sim = env.sims["a"]
        g = gate_store(env.gw.store, "create_message")
        g["fail"] = True
        g["gate"].set()
        sim.inject_mo(PHONE, LONG.lstrip("+"), "retry me")
        await wait_until(lambda: resps(sim, S.ESME_RX_T_APPN) == 1)
        assert resps(sim) == 0 and env.sink.at("/sms") == []


async def test_dlr_answered_after_its_status_is_durable(tmp_path):
    async with gateway_env(tmp_path) as env:
        sim = env.sims["a"]
        g = gate_store(env.gw.store, "ping")
        client = env.client()
        m = await trio.to_thread.run_sync(
            lambda: client.messages.create(to="+" + PHONE, from_=SHORT, body="dlr"))
        await wait_until(lambda: sim.stats["dlrs_sent"] == 1)
        await wait_until(lambda: g["entered"] >= 1)
        await trio.testing.wait_all_tasks_blocked(0.05)
        assert resps(sim) == 0                                     # barrier not passed
        g["gate"].set()
        await wait_until(lambda: resps(sim) == 1)
        assert (await env.gw.store.get_message(m.sid)).status == "delivered"


async def test_multipart_part_kept_across_a_restart(tmp_path):
    text = "".join(chr(ord("a") + i % 26) for i in range(300))
    pdus = mo_pdus(PHONE, LONG.lstrip("+"), text, 2, ref=77)
    async with gateway_env(tmp_path) as env:
        sim = env.sims["a"]
        sim._schedule(trio.current_time(), "rx", None, pdus[0])
        await wait_until(lambda: resps(sim) == 1)                  # acked: part stored
        assert len(await env.gw.store.kv_items("mopart")) == 1
    async with gateway_env(tmp_path) as env:                       # same database
        sim = env.sims["a"]
        sim._schedule(trio.current_time(), "rx", None, pdus[1])
        hit = (await env.sink.wait_for(lambda: env.sink.at("/sms")))[0]
        assert hit.form["Body"] == text and hit.form["NumSegments"] == "2"
        await wait_until(lambda: resps(sim) == 1)
        await wait_until(lambda: not env.gw.store._pending_rows)
        assert await env.gw.store.kv_items("mopart") == []


def free_port() -> int:
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def recorded_tokens(db) -> set[str]:
    """Idempotency tokens of the status callbacks due in the store (``messages.due``)."""
    from gateway.runtime.callback_outbox import callback_token
    from gateway.store.due import MO_PREFIX, split

    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        rows = conn.execute("SELECT sid, due FROM messages WHERE due IS NOT NULL").fetchall()
    except sqlite3.OperationalError:
        return set()
    finally:
        conn.close()
    return {callback_token(sid, st) for sid, due in rows for st in split(due)
            if not st.startswith(MO_PREFIX)}


@pytest.mark.slow
async def test_status_callbacks_survive_kill_9(tmp_path):
    n = 10
    sink_port = free_port()                      # nothing listens yet: connection refused
    with trio.fail_after(90):
        async with trio.open_nursery() as nursery:
            sim = await start_sim(nursery, dlr_delay_ms=10)
            cfg = tmp_path / "gw.toml"
            cfg.write_text(config_text(tmp_path, [("a", sim.port)], sink_port)
                           .replace("max_attempts = 3", "max_attempts = 30"))
            db = tmp_path / "gw.db"
            gw = GatewayProcess(cfg, tmp_path / "gw1.log")
            try:
                api = Api(await gw.start())
                sids = []
                for i in range(n):
                    status, body = await api.create(To="+" + PHONE, From=SHORT, Body=f"cb {i}")
                    assert status == 201, body
                    sids.append(body["sid"])
                await api.aclose()
                await wait_until(lambda: sim.stats["dlrs_sent"] == n, timeout=20)
                # every sent + delivered callback recorded before the crash
                await wait_until(lambda: len(recorded_tokens(db)) == 2 * n, timeout=20)
                before = recorded_tokens(db)
                gw.signal(signal.SIGKILL)
                assert await gw.wait(10) == -signal.SIGKILL
            finally:
                await gw.stop()
            sink = Sink(port=sink_port)
            sink.server = HttpServer(sink.handle, "127.0.0.1", sink_port)
            await nursery.start(sink.server.serve)
            gw2 = GatewayProcess(cfg, tmp_path / "gw2.log")
            try:
                await gw2.start()
                hits = await sink.wait_for(
                    lambda: {(h.form["MessageSid"], h.form["MessageStatus"])
                             for h in sink.at("/status-default")} >=
                    {(s, st) for s in sids for st in ("sent", "delivered")} or None,
                    timeout=30)
                assert hits
                got = sink.at("/status-default")
                assert {h.headers["i-twilio-idempotency-token"] for h in got} == before
                for h in got:
                    assert RequestValidator(TOKEN).validate(
                        sink.url("/status-default"), h.form, h.headers["x-twilio-signature"])
                await wait_until(lambda: not recorded_tokens(db), timeout=10)
            finally:
                await gw2.stop()
            nursery.cancel_scope.cancel()
