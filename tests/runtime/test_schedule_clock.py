"""Messaging's schedule loop under trio's MockClock (autojump): scheduled messages are
released at SendAt, never before, in (SendAt, creation) order; a message scheduled
earlier than the one being waited for wakes the loop; a canceled one is skipped.

Small fakes stand in for the gateway around ``Messaging`` (store, registry, cluster,
dispatcher); the loop itself is the real one.
"""

from __future__ import annotations

import trio
import trio.testing

from gateway.core import message as M
from gateway.core.message import Message
from gateway.runtime.messaging import Messaging

EPOCH = 1_700_000_000.0
ACCOUNT = "AC" + "0" * 32
SERVICE = "MG" + "1" * 32
POOL = ("+15005550006", "+15005550007")


class FakeStore:
    def __init__(self):
        self.saved: list[tuple[str, str]] = []

    def save_message_nowait(self, msg):
        self.saved.append((msg.sid, msg.status))


class FakeNumber:
    type = "long_code"
    status_callback = ""


class FakeRegistry:
    def get(self, number):
        return FakeNumber() if number in POOL else None


class FakeService:
    sid = SERVICE
    numbers = POOL
    sticky_sender = False
    status_callback = ""


class FakeCluster:
    def __init__(self, gw):
        self.gw = gw
        self.released: list[tuple[float, str, str]] = []   # (epoch now, sid, status)

    def route(self, msg):
        self.released.append((EPOCH + trio.current_time(), msg.sid, msg.status))
        return True

    def on_status(self, msg):
        pass


class FakeDispatcher:
    def drain_time(self, number):
        return 0.0


class FakeGateway:
    """The epoch clock is EPOCH + trio's (mock) clock."""

    def __init__(self):
        self.store = FakeStore()
        self.registry = FakeRegistry()
        self.cluster = FakeCluster(self)
        self.dispatcher = FakeDispatcher()
        self.counted: list[str] = []

    def now(self) -> float:
        return EPOCH + trio.current_time()

    def service(self, sid):
        return FakeService() if sid == SERVICE else None

    def count_message(self, direction, status):
        self.counted.append(status)

    def auth_token(self, account):
        return None           # no callbacks in this unit test

    def store_nowait_kv(self, *a):
        pass


def scheduled(i: int, at: float, seq: int) -> Message:
    return Message(sid=f"SM{i:032d}", account_sid=ACCOUNT, from_="", to="+15558675310",
                   body=f"m{i}", status=M.SCHEDULED, messaging_service_sid=SERVICE,
                   send_at=EPOCH + at, seq=seq)


def test_due_messages_released_at_send_at_in_order():
    clock = trio.testing.MockClock(autojump_threshold=0)

    async def main():
        gw = FakeGateway()
        ms = Messaging(gw)
        # out of creation order on purpose; three share the same second
        plan = [(0, 600.0, 1), (1, 300.0, 2), (2, 600.0, 3), (3, 600.0, 4), (4, 3600.0, 5),
                (5, 450.5, 6)]
        msgs = {i: scheduled(i, at, seq) for i, at, seq in plan}
        for m in msgs.values():
            ms.place(m)
        ms.place(msgs[2])           # placed twice (reload + live): released once
        async with trio.open_nursery() as n:
            n.start_soon(ms.schedule_loop)
            with trio.fail_after(4000):
                while len(gw.cluster.released) < len(plan):
                    await trio.sleep(1)
            # nothing more shows up later
            await trio.sleep(7200)
            n.cancel_scope.cancel()
        released = gw.cluster.released
        assert [sid for _, sid, _ in released] == [msgs[i].sid for i in (1, 5, 0, 2, 3, 4)]
        for at, sid, status in released:
            m = next(x for x in msgs.values() if x.sid == sid)
            assert status == M.QUEUED and m.from_ in POOL
            assert at >= m.send_at                 # never before SendAt
            assert at - m.send_at < 1e-3           # and not late (mock clock: exact)
        assert [s for _, s in gw.store.saved] == [M.QUEUED] * len(plan)

    trio.run(main, clock=clock)


def test_earlier_schedule_wakes_loop_and_canceled_is_skipped():
    clock = trio.testing.MockClock(autojump_threshold=0)

    async def main():
        gw = FakeGateway()
        ms = Messaging(gw)
        late = scheduled(1, 3000.0, 1)
        gone = scheduled(2, 400.0, 2)
        ms.place(late)
        ms.place(gone)
        async with trio.open_nursery() as n:
            n.start_soon(ms.schedule_loop)
            await trio.sleep(100)                  # the loop is waiting for "gone" (t=400)
            gone.status = M.CANCELED               # canceled meanwhile (API path)
            ms.scheduled_msgs.pop(gone.sid)
            await trio.sleep(100)                  # t=200: a new one due at t=350
            early = scheduled(3, 350.0, 3)
            ms.place(early)
            with trio.fail_after(5000):
                while len(gw.cluster.released) < 2:
                    await trio.sleep(1)
            await trio.sleep(3600)
            n.cancel_scope.cancel()
        released = gw.cluster.released
        assert [sid for _, sid, _ in released] == [early.sid, late.sid]
        assert abs(released[0][0] - early.send_at) < 1e-3
        assert abs(released[1][0] - late.send_at) < 1e-3

    trio.run(main, clock=clock)
