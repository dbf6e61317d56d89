"""Carrier health and reroute end to end with two simulators (carrier a preferred,
carrier b second): link loss, recovery, latency, DLR failure wave, throttling, and a
single-carrier route that keeps queueing while down."""

import trio

from tests.e2e.harness import SHORT, gateway_env, wait_until

FAST = "long_code = 1\ntoll_free = 3\nshort_code = 500\nqueue_hours = 1"


async def _flow(env, n, prefix="f"):
    client = env.client()

    def send():
        return [client.messages.create(to="+15558675310", from_=SHORT, body=f"{prefix}{i}").sid
                for i in range(n)]

    return await trio.to_thread.run_sync(send)


def bodies(*sims):
    return {s.short_message for sim in sims for s in sim.submits}


async def test_drop_carrier_a_moves_traffic_to_b_without_loss(tmp_path):
    # a response delay keeps submits in flight when a drops: they are resent through b
    async with gateway_env(tmp_path, n_carriers=2, rates=FAST, sim_kw={"response_delay_ms": 50}) as env:
        a, b = env.sims["a"], env.sims["b"]
        async with trio.open_nursery() as n:
            n.start_soon(_flow, env, 500)
            await wait_until(lambda: len(a.submits) >= 100, timeout=20)
            a.set_down(True)
            t_down = trio.current_time()
            # new traffic lands on b within 2 s
            await wait_until(lambda: len(b.submits) > 0, timeout=2)
            assert trio.current_time() - t_down < 2.0
            a_count = len(a.submits)
        await wait_until(lambda: bodies(a, b) >= {f"f{i}".encode() for i in range(500)}, timeout=30)
        assert len(a.submits) == a_count       # nothing more went to the dead carrier
        # a recovers: once bound, probe traffic reaches it again and then its share
        a.set_down(False)
        await wait_until(lambda: env.gw.carriers.healthz()["a"]["smpp"] == "bound", timeout=10)
        before = len(a.submits)
        with trio.fail_after(30):
            k = 0
            while len(a.submits) <= before:
                await _flow(env, 5, prefix=f"r{k}-")
                k += 1
                await trio.sleep(0.25)   # pace the probe-seeking flow (a rate, not a wait)
        assert ("a", "b") in env.gw.carriers.reroutes


async def test_dlr_failure_wave_shifts_traffic(tmp_path):
    async with gateway_env(tmp_path, n_carriers=2, rates=FAST) as env:
        a, b = env.sims["a"], env.sims["b"]
        a.set_faults(dlr_states={"UNDELIV": 1.0})
        await _flow(env, 300)
        await wait_until(lambda: bodies(a, b) >= {f"f{i}".encode() for i in range(300)}, timeout=30)
        # a's delivery ratio collapses; the later part of the flow goes to b
        assert len(b.submits) > 0
        assert env.gw.healths["a"].score(trio.current_time()) < env.gw.healths["b"].score(trio.current_time())


async def test_single_carrier_route_keeps_queueing_while_down(tmp_path):
    async with gateway_env(tmp_path, n_carriers=1, rates=FAST) as env:
        a = env.sims["a"]
        a.set_down(True)
        await wait_until(lambda: env.gw.carriers.healthz()["a"]["smpp"] == "down", timeout=5)
        sids = await _flow(env, 20)
        assert len(sids) == 20
        a.set_down(False)
        await wait_until(lambda: bodies(a) >= {f"f{i}".encode() for i in range(20)}, timeout=30)
