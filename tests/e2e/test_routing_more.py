"""Carrier health routing end to end, measured at the simulators: latency on carrier a
shifts traffic to b, a THROTTLED storm on a overflows to b with nothing lost, a's share
goes to 0 within 2 s of link loss and comes back ramped (no stampede) after its breaker
closes, and the operator views (/admin/carriers, /metrics).

Carrier a is priority 1, b priority 2 (harness config): a healthy a takes everything.
Shares come from ``SubmitRecord.time`` (trio.current_time() of this process: the
simulators run in-process). Traffic is a paced flow of API creates (a rate, not a wait).
"""

from __future__ import annotations

import base64
import contextlib
import json
from urllib.parse import urlencode

import prometheus_client
import trio

from gateway import settings as settings_mod
from gateway.io.http_client import HttpClient
from gateway.io.http_server import HttpServer
from gateway.runtime.app import Gateway
from tests.e2e.harness import (
    ACCOUNT,
    SHORT,
    TOKEN,
    Env,
    Sink,
    config_text,
    start_sim,
    wait_bound,
    wait_until,
)

FAST = "long_code = 1\ntoll_free = 3\nshort_code = 1000\nqueue_hours = 1"


@contextlib.asynccontextmanager
async def routing_env(tmp_path, n_carriers=2, window=256, extra="", sim_kw=None,
                      response_timeout=2):
    """Like harness.gateway_env, with a bigger window (so window overflow does not mask
    health routing) and extra config ([health], [routing])."""
    async with trio.open_nursery() as nursery:
        sink = Sink()
        sink.server = HttpServer(sink.handle, "127.0.0.1", 0)
        sink.port = await nursery.start(sink.server.serve)
        sims = {}
        for name in "abc"[:n_carriers]:
            sims[name] = await start_sim(nursery, **{"dlr_delay_ms": 10, **(sim_kw or {})})
        text = config_text(tmp_path, [(n, s.port) for n, s in sims.items()], sink.port,
                           rates=FAST, extra=extra)
        path = tmp_path / "gw.toml"
        path.write_text(text.replace("window = 64", f"window = {window}")
                        .replace("response_timeout = 2", f"response_timeout = {response_timeout}"))
        gw = Gateway(settings_mod.load(path), registry=prometheus_client.CollectorRegistry())
        port = await nursery.start(gw.run)
        await wait_bound(gw)
        try:
            yield Env(gw, port, sims, sink, nursery)
        finally:
            gw.stop()
            await wait_until(lambda: gw.stopped, timeout=30)
            nursery.cancel_scope.cancel()


class Flow:
    """POSTs messages from the short code at ``rate`` per second (``workers`` concurrent
    clients, each paced at rate/workers) until stopped."""

    def __init__(self, env: Env, rate: float, prefix: str = "f", workers: int = 4):
        self.env, self.rate, self.prefix, self.workers = env, rate, prefix, workers
        self.sent: list[bytes] = []
        self._n = 0
        self._stop = False
        self._done = trio.Event()
        self.error: Exception | None = None

    async def run(self) -> None:
        try:
            async with trio.open_nursery() as n:
                for _ in range(self.workers):
                    n.start_soon(self._worker)
        except Exception as exc:      # reported by stop(); a gateway going away ends it
            self.error = exc
        finally:
            self._done.set()

    async def _worker(self) -> None:
        auth = base64.b64encode(f"{ACCOUNT}:{TOKEN}".encode()).decode()
        url = f"{self.env.base_url}/2010-04-01/Accounts/{ACCOUNT}/Messages.json"
        headers = [("Authorization", f"Basic {auth}"),
                   ("Content-Type", "application/x-www-form-urlencoded")]
        client = HttpClient()
        try:
            slot = trio.current_time()
            while not self._stop:
                body = f"{self.prefix}{self._n}"
                self._n += 1
                form = urlencode({"To": "+15558675310", "From": SHORT, "Body": body})
                r = await client.request("POST", url, headers=headers, body=form.encode())
                assert r.status == 201, r.body
                self.sent.append(body.encode())
                slot = max(slot + self.workers / self.rate, trio.current_time() - 0.05)
                await trio.sleep_until(slot)        # pacing: a rate, not a wait
        finally:
            with trio.CancelScope(shield=True):
                await client.aclose()

    async def stop(self) -> None:
        self._stop = True
        with trio.fail_after(10):
            await self._done.wait()
        assert self.error is None, self.error


def accepted(sim, t0=float("-inf"), t1=float("inf")) -> list:
    return [s for s in sim.submits if s.message_id is not None and t0 <= s.time < t1]


def share(env, name, t0, t1) -> tuple[float, int]:
    counts = {n: len(accepted(sim, t0, t1)) for n, sim in env.sims.items()}
    total = sum(counts.values())
    return (counts[name] / total if total else 0.0), total


def all_arrived(env, flow) -> bool:
    got = {s.short_message for sim in env.sims.values() for s in accepted(sim)}
    return got >= set(flow.sent)


async def test_latency_on_a_shifts_traffic_to_b(tmp_path):
    # a 0.5 s recent-latency window (default 3 s) keeps the test short
    extra = "\n[health]\nlatency_fast_s = 0.5\n"
    async with routing_env(tmp_path, extra=extra) as env:
        a, b = env.sims["a"], env.sims["b"]
        flow = Flow(env, rate=250)
        env.nursery.start_soon(flow.run)
        await wait_until(lambda: len(accepted(a)) >= 500, timeout=15)   # baseline on a
        assert accepted(b) == []                                      # healthy a takes all
        ha = env.gw.healths["a"]
        assert ha.components(trio.current_time())["latency"] == 1.0
        a.set_faults(response_delay_ms=500)
        t_slow = trio.current_time()
        await wait_until(lambda: ha.components(trio.current_time())["latency"] < 0.8, timeout=10)
        t_shift = trio.current_time()
        # over the next 300 submits, b carries most of the traffic
        await wait_until(lambda: share(env, "b", t_shift, float("inf"))[1] >= 300, timeout=10)
        b_share, total = share(env, "b", t_shift, float("inf"))
        await flow.stop()
        assert b_share > 0.8, (b_share, total)
        assert t_shift - t_slow < 5.0
        now = trio.current_time()
        assert env.gw.healths["a"].score(now) < env.gw.healths["b"].score(now)
        await wait_until(lambda: all_arrived(env, flow), timeout=20)


async def test_throttled_storm_on_a_overflows_to_b_nothing_lost(tmp_path):
    async with routing_env(tmp_path) as env:
        a, b = env.sims["a"], env.sims["b"]
        a.set_faults(throttle=0.9)
        flow = Flow(env, rate=300)
        env.nursery.start_soon(flow.run)
        await wait_until(lambda: len(flow.sent) >= 600, timeout=15)
        await flow.stop()
        await wait_until(lambda: all_arrived(env, flow), timeout=20)
        throttled = a.stats["resps"][0x58]
        assert throttled > 0
        assert len(accepted(b)) > len(accepted(a))                    # b took the overflow
        # each message accepted exactly once (throttled answers are not acceptances)
        bodies = [s.short_message for sim in (a, b) for s in accepted(sim)]
        assert len(bodies) == len(set(bodies)) == len(flow.sent)
        inputs = env.gw.healths["a"].inputs(trio.current_time())
        assert inputs["throttle_rate"] > 0 and inputs["state"] == "closed"   # back-pressure


async def test_link_loss_share_to_zero_within_2s_and_ramped_return(tmp_path):
    extra = "\n[health]\ncooldown_s = 1\nprobe_rate = 4\nramp_s = 3\n"
    async with routing_env(tmp_path, extra=extra, sim_kw={"response_delay_ms": 20}) as env:
        a, b = env.sims["a"], env.sims["b"]
        ha = env.gw.healths["a"]
        flow = Flow(env, rate=200)
        env.nursery.start_soon(flow.run)
        await wait_until(lambda: len(accepted(a)) >= 100, timeout=10)
        a.set_down(True)
        t_down = trio.current_time()
        await wait_until(lambda: accepted(b, t_down), timeout=2)
        first_b = accepted(b, t_down)[0].time
        assert first_b - t_down < 2.0
        # a full second of traffic after the 2 s mark: none of it on a
        await wait_until(lambda: len(accepted(b, t_down + 2.0)) >= 100, timeout=10)
        a_share, total = share(env, "a", t_down + 2.0, float("inf"))
        assert a_share == 0.0 and total >= 100
        assert ha.breaker_state(trio.current_time()) == "open"
        opened = [t.at for t in ha.transitions if t.new == "open" and t.at >= t_down]
        assert opened and opened[0] - t_down < 2.0                   # out within 2 s
        # a comes back: breaker half-open (probes) → closed with a ramp
        a.set_down(False)
        t_up = trio.current_time()

        def closed_at():
            return [t.at for t in ha.transitions if t.new == "closed" and t.at > t_up]

        await wait_until(closed_at, timeout=15)
        t_close = closed_at()[0]
        await wait_until(lambda: trio.current_time() > t_close + 4.2 and
                         share(env, "a", t_close + 3.2, float("inf"))[1] >= 100, timeout=15)
        await flow.stop()
        first_second, n1 = share(env, "a", t_close, t_close + 1.0)
        settled, n2 = share(env, "a", t_close + 3.2, float("inf"))
        assert n1 >= 50 and n2 >= 50
        assert first_second < 0.5, first_second        # ramp: no stampede onto a
        assert settled > 0.9, settled                  # full share again after the ramp
        assert first_second < settled
        await wait_until(lambda: all_arrived(env, flow), timeout=20)
        assert env.gw.carriers.reroutes.get(("a", "b"), 0) >= 1


async def test_silent_carrier_is_out_soon_after_response_timeout_nothing_lost(tmp_path):
    async with routing_env(tmp_path, response_timeout=1) as env:
        a, b = env.sims["a"], env.sims["b"]
        ha = env.gw.healths["a"]
        flow = Flow(env, rate=200)
        env.nursery.start_soon(flow.run)
        await wait_until(lambda: len(accepted(a)) >= 100, timeout=10)
        a.set_faults(withhold=1.0)                 # bound, but answers nothing any more
        t_silent = trio.current_time()
        await wait_until(lambda: [t for t in ha.transitions if t.new == "open"
                                  and t.at > t_silent], timeout=5)
        t_open = [t.at for t in ha.transitions if t.new == "open" and t.at > t_silent][0]
        assert t_open - t_silent < 1.0 + 2.0       # response_timeout + 2 s
        await wait_until(lambda: len(accepted(b, t_open)) >= 100, timeout=10)
        assert [s for s in a.submits if s.time > t_open + 0.1] == []
        await flow.stop()
        await wait_until(lambda: all_arrived(env, flow), timeout=20)


async def test_admin_carriers_and_metrics_show_health(tmp_path):
    async with routing_env(tmp_path, extra="\n[health]\ncooldown_s = 30\n",
                           sim_kw={"response_delay_ms": 30}) as env:
        a = env.sims["a"]
        flow = Flow(env, rate=200)
        env.nursery.start_soon(flow.run)
        await wait_until(lambda: len(accepted(a)) >= 50, timeout=10)
        a.set_down(True)                                   # in-flight submits reroute to b
        await wait_until(lambda: len(accepted(env.sims["b"])) >= 50, timeout=10)
        await flow.stop()
        await wait_until(lambda: all_arrived(env, flow), timeout=20)
        auth = base64.b64encode(f"{ACCOUNT}:{TOKEN}".encode()).decode()
        client = HttpClient()
        try:
            r = await client.request("GET", f"{env.base_url}/admin/carriers",
                                     headers=[("Authorization", f"Basic {auth}")])
            m = await client.request("GET", f"{env.base_url}/metrics")
        finally:
            await client.aclose()
        assert r.status == 200
        rows = {row["name"]: row for row in json.loads(r.body)}
        assert set(rows) == {"a", "b"}
        assert rows["a"]["breaker"] == "open" and rows["b"]["breaker"] == "closed"
        assert rows["a"]["score"] == 0.0 and rows["b"]["score"] > 0.9
        assert rows["a"]["inputs"]["link_up"] is False
        assert set(rows["b"]["inputs"]["components"]) >= {"errors", "latency", "throttle", "dlr"}
        # traffic share: of the submits each carrier acknowledged (a's last in-flight
        # ones were never answered: they went out again through b)
        submitted = {n: row["submitted"] for n, row in rows.items()}
        sent_a = len(accepted(a))
        assert sent_a - 64 <= submitted["a"] <= sent_a
        assert submitted["b"] <= len(accepted(env.sims["b"])) and submitted["b"] > 0
        total = sum(submitted.values())
        for n, row in rows.items():
            assert abs(row["traffic_share"] - submitted[n] / total) < 1e-3
        text = m.body.decode()
        assert 'gateway_carrier_health_score{carrier="a"} 0.0' in text
        assert 'gateway_carrier_health_score{carrier="b"}' in text
        reroutes = [line for line in text.splitlines()
                    if line.startswith("gateway_reroutes_total{")]
        assert any('from_carrier="a"' in ln and 'to_carrier="b"' in ln and float(ln.split()[-1]) >= 1
                   for ln in reroutes), reroutes


def test_slow_spell_does_not_become_the_baseline():
    """Core check behind the latency test: 500 fast answers, then 300 at 0.5 s (3 s at
    100/s): the recent latency stays judged against the fast baseline."""
    from gateway.core.health import CarrierHealth

    h = CarrierHealth("a", now=0.0)
    h.on_link(True, 0.0)
    t = 0.0
    for _ in range(500):
        t += 0.01
        h.on_submit_resp(0.001, 0, t)
    for _ in range(300):
        t += 0.01
        h.on_submit_resp(0.5, 0, t)
    assert h.latency_ratio(t) > 5.0
    assert h.components(t)["latency"] < 0.7
    assert h.inputs(t)["latency_baseline_s"] < 0.05
