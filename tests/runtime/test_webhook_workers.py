"""WebhookSender's worker pool: a burst of status callbacks wakes a few workers (each
pipelines up to PIPELINE_MAX hooks), a blocked receiver does not hold back another one
queued behind it, and every hook is counted once in the metrics."""

import trio
import trio.testing

from gateway.io.http_client import HttpClient
from gateway.io.http_server import HttpServer, Response
from gateway.observability.metrics import Metrics
from gateway.runtime.webhooks import PIPELINE_MAX, Hook, WebhookSender


class CountingLot:
    """Wraps the workers' ParkingLot and counts unparks (worker wake-ups)."""

    def __init__(self, lot):
        self.lot, self.unparks = lot, 0

    def __bool__(self):
        return bool(self.lot)

    async def park(self):
        await self.lot.park()

    def unpark(self, count=1):
        self.unparks += count
        return self.lot.unpark(count=count)


async def _sink(nursery, gate: trio.Event | None, got: list, arrived: list | None = None):
    async def handle(req):
        if arrived is not None:
            arrived.append(req.path)
        if gate is not None:
            await gate.wait()
        got.append(req.form()["MessageSid"][0])
        return Response.text("")
    port = await nursery.start(HttpServer(handle, "127.0.0.1", 0).serve)
    return f"http://127.0.0.1:{port}/cb"


def _hook(url: str, i: int) -> Hook:
    return Hook("status", url, "POST", [("MessageSid", f"SM{i}"), ("To", "+15550001")], "tok")


async def test_burst_wakes_few_workers_and_blocked_receiver_holds_back_nothing():
    metrics = Metrics()
    sender = WebhookSender(HttpClient(), max_attempts=1, workers=16, metrics=metrics)
    lot = sender._idle = CountingLot(sender._idle)
    slow_gate = trio.Event()
    slow_got: list = []
    fast_got: list = []
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            slow = await _sink(nursery, slow_gate, slow_got)
            fast = await _sink(nursery, None, fast_got)
            await nursery.start(sender.run)
            await trio.testing.wait_all_tasks_blocked()     # every worker parked
            for i in range(5):
                sender.enqueue(_hook(slow, i))
            for i in range(5, 5 + 2 * PIPELINE_MAX):
                sender.enqueue(_hook(fast, i))
            # every fast hook arrives while the slow receiver still holds its batch
            while len(fast_got) < 2 * PIPELINE_MAX:
                await trio.sleep(0.01)
            assert slow_got == []
            assert lot.unparks <= 4          # not one per hook
            slow_gate.set()
            while sender.pending:
                await trio.sleep(0.01)
            nursery.cancel_scope.cancel()
    n = 5 + 2 * PIPELINE_MAX
    assert sorted(slow_got + fast_got) == sorted(f"SM{i}" for i in range(n))
    assert sender.delivered == n and sender.failed == 0
    assert sender._waking == 0
    reg = metrics.registry
    assert reg.get_sample_value("gateway_webhook_requests_total",
                                {"kind": "status", "outcome": "ok"}) == n
    assert reg.get_sample_value("gateway_webhook_duration_seconds_count", {"kind": "status"}) == n
    assert reg.get_sample_value("gateway_webhook_duration_seconds_bucket",
                                {"kind": "status", "le": "+Inf"}) == n


async def test_hooks_left_after_a_batch_wake_another_worker():
    """Hooks for many receivers queued at once: all are sent concurrently, not one
    receiver after the other by a single woken worker."""
    sender = WebhookSender(HttpClient(), max_attempts=1, workers=8)
    gates = [trio.Event() for _ in range(4)]
    got: list = []
    arrived: list = []
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            urls = [await _sink(nursery, g, got, arrived) for g in gates]
            await nursery.start(sender.run)
            await trio.testing.wait_all_tasks_blocked()
            for i, url in enumerate(urls):
                sender.enqueue(_hook(url, i))
            # all four are in flight at once (each receiver blocks until released)
            while len(arrived) < 4:
                await trio.sleep(0.01)
            for g in gates:
                g.set()
            while sender.pending:
                await trio.sleep(0.01)
            nursery.cancel_scope.cancel()
    assert sorted(got) == ["SM0", "SM1", "SM2", "SM3"]
