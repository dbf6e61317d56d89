"""Cluster rates: per-sender class rates and carrier ``max_tps`` as token buckets in Redis.

Owns: the ``RATE`` Lua token bucket (one hash per sender / carrier under ``P c:tb:``:
``k`` tokens, ``t`` stamp, ``e`` when its TTL was last set: refreshed every 30 s, not on
every round; an idle bucket is gone 60 to 90 s + its refill time after its last use,
when it would be full anyway),
the local ``CreditBucket`` (a ``core.rate_gate.RateGate``) that the sender scheduler and
the router use on a Redis-backed gateway (``install`` hands them this module's gate
factories through their ``set_gate_factory``), and the loop that fetches credit.

Rules:
- A Redis bucket works like the local one (``core.rates``: ``rate`` per second, starts
  full, a request larger than the burst is granted when the bucket is full and leaves
  it in debt) but its burst is ``cluster_burst(rate)`` (about ``rate * BURST_S``, at
  least 2 above 1/s), not a full second: the flow
  stays even, and the tokens saved up while a sender moves between gateways add at
  most that burst, so any 1 s window carries at most ``rate + burst`` (long codes at
  1/s: exactly the local behaviour). Time is the Redis server's (``TIME``), so the
  gateways' clocks do not matter. One script call serves every bucket of one round.
- A sender gate grants nothing past the slot leases' local deadline
  (``RedisCluster.lease_valid``), also with credit left (see ``cluster_slots``).
- A gateway sends a segment only with credit granted by that script: the sum over all
  gateways is what Redis granted, so N gateways together never exceed a sender's class
  rate or a carrier's cap, also while a sender moves between gateways.
- Credit is asked for when needed: a sender's queued segments (its owner only), a
  carrier's refused takes plus last round's use. Sender credit is dropped when the
  sender's slot leaves this gateway; carrier credit unused for ``CARRIER_CREDIT_S`` is
  dropped (it must not pile up and come out in a burst later). Dropped credit is lost
  (the cluster under-uses the rate for a moment), never returned.

Error handling: a failed round is logged and retried after ``ROUND_S``; without credit
nothing is sent meanwhile (queues wait, nothing is lost).
"""

from __future__ import annotations

import logging
import math

import trio
from coredis.exceptions import RedisError

from gateway.store.base import StoreError

log = logging.getLogger("gateway.cluster")

ROUND_S = 0.02              # at most one credit round per this many seconds
RETRY_S = 0.25              # a bucket without credit asks the scheduler to look again then
CARRIER_CREDIT_S = 0.25
BURST_S = 0.1
_EPS = 1e-9

RATE = """
local EXPIRE_EVERY = 30
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local out = {}
for i, key in ipairs(KEYS) do
  local rate = tonumber(ARGV[3 * i - 2])
  local burst = tonumber(ARGV[3 * i - 1])
  local want = tonumber(ARGV[3 * i])
  local v = redis.call('HMGET', key, 'k', 't', 'e')
  local tokens = tonumber(v[1]) or burst
  local stamp = tonumber(v[2]) or now
  if now > stamp and tokens < burst then tokens = math.min(burst, tokens + (now - stamp) * rate) end
  local g = 0
  if tokens >= math.min(want, burst) - 1e-9 then
    g = want
  elseif tokens >= 1 then
    g = math.floor(tokens + 1e-9)
  end
  tokens = tokens - g
  local k, t = string.format('%.6f', tokens), string.format('%.6f', now)
  local e = tonumber(v[3])
  if e and now >= e and now - e < EXPIRE_EVERY then
    redis.call('HSET', key, 'k', k, 't', t)
  else
    redis.call('HSET', key, 'k', k, 't', t, 'e', string.format('%d', now))
    redis.call('EXPIRE', key, math.ceil(burst / rate) + 60 + EXPIRE_EVERY)
  end
  out[i] = g
end
return out
"""


def cluster_burst(rate: float) -> float:
    """1 for rates up to 1/s (as the local bucket), else 2 .. ``rate * BURST_S``."""
    return max(1.0, min(rate, max(2.0, rate * BURST_S)))


class CreditBucket:
    """A ``RateGate`` filled only by Redis grants (no refill by time)."""

    __slots__ = ("rate", "burst", "tokens", "need", "used", "last_use", "wake", "valid")

    def __init__(self, rate: float, wake, valid=None) -> None:
        self.rate = float(rate)
        self.burst = cluster_burst(self.rate)
        self.tokens = 0.0
        self.need = 0.0          # shortfall seen since the last round
        self.used = 0.0          # taken since the last round
        self.last_use = 0.0
        self.wake = wake         # () -> None: a round is wanted
        self.valid = valid       # (now) -> bool: may spend credit now (slot lease valid)

    def wait_time(self, n: float, now: float) -> float:
        if self.valid is not None and not self.valid(now):
            return RETRY_S       # the slot lease may have moved: no submit from here
        if self.rate <= 0 or self.tokens >= n - _EPS:
            return 0.0
        self.need = max(self.need, n - self.tokens)
        self.wake()
        return RETRY_S

    def take(self, n: float, now: float) -> float:
        wait = self.wait_time(n, now)
        if wait == 0.0 and self.rate > 0:
            self.tokens -= n
            self.used += n
            self.last_use = now
        return wait

    def give_back(self, n: float) -> None:
        if self.rate > 0:
            self.tokens += n
            self.used = max(0.0, self.used - n)

    def set_rate(self, rate: float, burst: float, now: float) -> None:
        # the scheduler passes its local burst; the cluster keeps its own (BURST_S)
        self.rate = float(rate)
        self.burst = cluster_burst(self.rate)

    def __repr__(self) -> str:
        return f"CreditBucket(rate={self.rate}, burst={self.burst}, tokens={self.tokens:.3f})"


class ClusterRates:
    """Gives one gateway's scheduler and router credit gates and keeps them filled."""

    def __init__(self, cluster) -> None:
        self.cluster = cluster
        self.gw = cluster.gw
        self.p = cluster.p + "tb:"
        self._wake = trio.Event()
        self.senders: dict[str, CreditBucket] = {}
        self.carriers: dict[str, CreditBucket] = {}
        self.rounds = 0

    def wake(self) -> None:
        self._wake.set()

    def sender_gate(self, number: str, rate: float, burst: float, now: float) -> CreditBucket:
        """``GateFactory`` for the sender scheduler (``burst``: replaced by ours)."""
        b = self.senders[number] = CreditBucket(rate, self.wake, self.cluster.lease_valid)
        return b

    def carrier_gate(self, name: str, rate: float, burst: float, now: float) -> CreditBucket:
        """``GateFactory`` for the router's ``max_tps`` caps."""
        b = self.carriers[name] = CreditBucket(rate, self.wake)
        return b

    def install(self) -> None:
        """Credit gates for every sender (also ones added later) and capped carrier."""
        now = trio.current_time()
        self.gw.dispatcher.sched.set_gate_factory(self.sender_gate, now)
        self.gw.router.set_gate_factory(self.carrier_gate, now)

    def drop_sender(self, number: str) -> None:
        b = self.senders.get(number)
        if b is not None:
            b.tokens = min(b.tokens, 0.0)
            b.need = 0.0

    async def run(self) -> None:
        again = RETRY_S
        while True:
            with trio.move_on_after(again):
                await self._wake.wait()
            self._wake = trio.Event()
            try:
                again = await self.round()
            except (RedisError, OSError, StoreError) as exc:
                log.warning("cluster rate round failed: %s", exc)
                again = RETRY_S
            await trio.sleep(ROUND_S)

    def _wants(self) -> tuple[list[str], list, list[tuple[str, CreditBucket, bool]]]:
        keys, args, who = [], [], []
        sched, cl = self.gw.dispatcher.sched, self.cluster
        for number, b in self.senders.items():
            depth = sched.depth(number)
            if b.rate <= 0 or not cl.serving(number):
                b.need = 0.0
                continue
            want = max(b.need, min(depth, b.burst) - b.tokens)
            b.need = 0.0
            if want > _EPS:
                keys.append(f"{self.p}s:{number}")
                args += [b.rate, b.burst, math.ceil(want)]
                who.append((number, b, True))
        now = trio.current_time()
        for name, b in self.carriers.items():
            if b.tokens > 0 and now - b.last_use > CARRIER_CREDIT_S:
                b.tokens = 0.0                # stale credit: never a late burst
            want = min(max(b.need, b.used), max(b.burst, b.need)) - b.tokens
            b.need = b.used = 0.0
            if want > _EPS:
                keys.append(f"{self.p}c:{name}")
                args += [b.rate, b.burst, math.ceil(want)]
                who.append((name, b, False))
        return keys, args, who

    async def round(self) -> float:
        """One script call for every bucket short of credit; returns when to ask again
        (soon when a bucket got less than it wanted: about when its next token is due)."""
        keys, args, who = self._wants()
        if not keys:
            return RETRY_S
        again = RETRY_S
        grants = await self.cluster.store.evalsha("cluster_RATE", keys, args)
        self.rounds += 1
        disp = self.gw.dispatcher
        now = trio.current_time()
        for i, ((name, b, is_sender), g) in enumerate(zip(who, grants, strict=True)):
            g = int(g)
            if g < int(args[3 * i + 2]):
                again = min(again, max(0.0, 1.0 / b.rate - ROUND_S))
            if g <= 0:
                continue
            if is_sender and not self.cluster.serving(name):
                continue                              # slot left meanwhile: drop it
            b.tokens += g
            if is_sender:
                disp.sched.refresh(name, now)         # eligible again: reschedule its head
            else:
                b.last_use = now
        disp.wake.set()
        return again
