"""``kill -9`` loses no status callback: the daemon as a real process, a callback
receiver that never answers (so every callback stays pending), the kill right after
the statuses are committed, a restart on the same store: every committed status's
callback arrives, with the idempotency token of its earlier attempts; once answered,
nothing is due any more."""

from __future__ import annotations

import signal
import sqlite3

import pytest
import trio

from gateway.io.http_server import HttpServer
from gateway.runtime.callback_outbox import callback_token
from tests.e2e.harness import LONG, Sink, config_text, wait_until
from tests.e2e.process_harness import Api, GatewayProcess, start_sim

pytestmark = pytest.mark.slow

FAST = "long_code = 100\ntoll_free = 3\nshort_code = 100\nqueue_hours = 1"
N = 20


class HangingSink(Sink):
    """Records every request; answers none of them while ``hang`` is set."""

    hang: bool = True

    async def handle(self, req):
        resp = await super().handle(req)
        if self.hang:
            await trio.sleep_forever()
        return resp


def committed(db, sids: list[str]) -> dict[str, str]:
    """sid -> status as committed in the store file (a plain read: WAL, no lock)."""
    conn = sqlite3.connect(db)
    try:
        marks = ",".join("?" * len(sids))
        return dict(conn.execute(f"SELECT sid, status FROM messages WHERE sid IN ({marks})",
                                 sids).fetchall())
    finally:
        conn.close()


def due_count(db) -> int:
    conn = sqlite3.connect(db)
    try:
        return conn.execute("SELECT count(*) FROM messages WHERE due IS NOT NULL").fetchone()[0]
    finally:
        conn.close()


def events(hits) -> dict[tuple[str, str], set[str]]:
    out: dict[tuple[str, str], set[str]] = {}
    for h in hits:
        key = (h.form.get("MessageSid", ""), h.form.get("MessageStatus", ""))
        out.setdefault(key, set()).add(h.headers.get("i-twilio-idempotency-token", ""))
    return out


async def test_kill_9_after_commit_loses_no_status_callback(tmp_path):
    db = tmp_path / "gw.db"
    with trio.fail_after(90):
        async with trio.open_nursery() as nursery:
            sink = HangingSink()
            sink.server = HttpServer(sink.handle, "127.0.0.1", 0)
            sink.port = await nursery.start(sink.server.serve)
            sim = await start_sim(nursery, dlr_delay_ms=5)
            cfg = tmp_path / "gw.toml"
            cfg.write_text(config_text(tmp_path, [("a", sim.port)], sink.port, rates=FAST))
            gw = GatewayProcess(cfg, tmp_path / "run1.log")
            gw2 = GatewayProcess(cfg, tmp_path / "run2.log")
            try:
                api = Api(await gw.start())
                sids = []
                for i in range(N):
                    status, body = await api.create(
                        To="+15558675310", From=LONG, Body=f"cb-{i}",
                        StatusCallback=sink.url("/status"))
                    assert status == 201, body
                    sids.append(body["sid"])
                await api.aclose()
                # kill as soon as every final status is committed: no callback answered
                await wait_until(lambda: set(committed(db, sids).values()) == {"delivered"},
                                 timeout=30)
                gw.signal(signal.SIGKILL)
                assert await gw.wait(10) == -signal.SIGKILL
                before = events(sink.hits)
                assert all(n >= 1 for n in map(len, before.values()))

                sink.hang = False
                n_before = len(sink.hits)
                await gw2.start()
                want = {(sid, st) for sid in sids for st in ("sent", "delivered")}
                await wait_until(lambda: want <= set(events(sink.hits[n_before:])), timeout=30)
                after = events(sink.hits[n_before:])
                for sid, st in want:
                    assert after[(sid, st)] == {callback_token(sid, st)}
                    # same token as the attempts before the kill, where there were any
                    assert before.get((sid, st), after[(sid, st)]) == after[(sid, st)]
                assert "loaded due work status_callbacks=" in gw2.log_text()
                # answered: cleared in the store by the running gateway (lazily, a tick)
                await wait_until(lambda: not due_count(db), timeout=10)
            finally:
                await gw.stop()
                await gw2.stop()
                nursery.cancel_scope.cancel()
