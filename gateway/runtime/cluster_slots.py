"""Cluster slot leases: which gateway owns which sender slot, and moving slots safely.

Owns: the ``TICK`` script (membership, drainer set, slot leases with fencing tokens,
taking free slots up to the fair share), ``RELEASE`` (delete a lease only if still
ours, optionally marking it ``handoff:<slot>`` for another gateway), the lease loop,
rebalancing/handover (the safe point: queued messages dropped locally, in-flight ones
acked, then the lease deleted) and dropping a slot whose lease was lost. Part of
``RedisCluster`` (see ``cluster`` for the design); state lives on the cluster object.

Rules:
- A lease is renewed every ``LEASE_MS/3``. The local deadline ``_valid_until`` is the
  last successful renewal's *send* time (local monotonic clock) + ``VALID_FRACTION`` of
  ``LEASE_MS``: never later than Redis' expiry. Past it this gateway drains none of its
  slots: ``serving`` is False (no read, no accept), the sender credit gates refuse
  (``lease_valid``: nothing is submitted even before the watch ran, e.g. right after an
  event-loop stall) and ``watch_slots`` (a task that wakes at the deadline) drops every
  slot, whether the renewal failed, hangs (frozen connection) or the process was frozen.
  A renewal answered after its own deadline counts as failed (its slots are dropped and
  taken again, same token, at the next tick). Another gateway may take a slot only
  after Redis' expiry, so two gateways never drain one sender at once.
- Slots are hashed from sender numbers (``slot_of``): CRC32 mod ``SLOTS``.

Error handling: a failed tick is logged and retried after ``LEASE_MS/3``; a failed
release on stop is left to expire.
"""

from __future__ import annotations

import logging
import math
import zlib

import trio
from coredis.exceptions import RedisError

from gateway.core import message as M
from gateway.runtime.cluster_binds import VALID_FRACTION
from gateway.store.base import StoreError

log = logging.getLogger("gateway.cluster")

SLOTS = 16
LEASE_MS = 3000
DRAIN_S = 10.0
HANDOFF_MS = 5000

TICK = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if ARGV[6] == '1' then redis.call('ZADD', KEYS[3], now + ttl, ARGV[1])
else redis.call('ZREM', KEYS[3], ARGV[1]) end
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
local n = redis.call('ZCARD', KEYS[1])
local d = redis.call('ZCARD', KEYS[3])
local nslots = tonumber(ARGV[3])
local share = 0
if ARGV[6] == '1' and d > 0 then share = math.ceil(nslots / d) end
local held, free = {}, {}
for s = 0, nslots - 1 do
  local k = ARGV[4] .. 'lease:' .. s
  local v = redis.call('GET', k)
  if v then
    local owner, tok = string.match(v, '^(.-):(%d+)$')
    if owner == ARGV[1] then
      redis.call('PEXPIRE', k, ttl)
      table.insert(held, s); table.insert(held, tonumber(tok))
    end
  else
    local h = redis.call('GET', ARGV[4] .. 'handoff:' .. s)
    if h ~= ARGV[1] then table.insert(free, {s, h}) end
  end
end
if ARGV[5] == '1' and share > 0 then
  for _, f in ipairs(free) do
    if #held / 2 < share or f[2] then
      local tok = redis.call('INCR', KEYS[2])
      redis.call('SET', ARGV[4] .. 'lease:' .. f[1], ARGV[1] .. ':' .. tok, 'PX', ttl)
      redis.call('DEL', ARGV[4] .. 'handoff:' .. f[1])
      table.insert(held, f[1]); table.insert(held, tok)
    end
  end
end
return {n, d, held}
"""

RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  if ARGV[2] ~= '' then redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3]) end
  return redis.call('DEL', KEYS[1])
end
return 0
"""


def slot_of(number: str) -> int:
    return zlib.crc32(number.encode()) % SLOTS



class SlotLeases:
    """Slot-lease half of ``RedisCluster`` (mixin: uses its keys, store and dispatcher)."""

    async def _evalsha(self, name: str, keys: list, args: list):
        return await self.store.evalsha("cluster_" + name, keys, args)

    async def _lease_loop(self) -> None:
        await trio.sleep(LEASE_MS / 3000)            # siblings starting now join first
        while True:
            try:
                await self.binds.tick()
                await self._tick(acquire=True)
                await self._rebalance()
            except (RedisError, OSError, StoreError) as exc:
                log.warning("cluster lease tick failed: %s", exc)
                self.binds.expire_check()
                self._expire_check()
            await trio.sleep(LEASE_MS / 3000)

    def lease_valid(self, now: float) -> bool:
        """The slot leases may still be ours at ``now`` (local deadline ahead)."""
        return now < self._valid_until

    def _expire_check(self) -> None:
        """Drop every slot once the local deadline passed (another gateway may own them
        soon): their queued messages leave the dispatcher, their entries stay pending."""
        if self.held and trio.current_time() >= self._valid_until:
            log.warning("cluster slot leases not renewed in time: dropping %d slots",
                        len(self.held))
            for slot in list(self.held):
                self._drop_slot(slot)
            self.held, self.draining = {}, {}
            self._handoff.clear()
            self._changed.set()

    async def watch_slots(self) -> None:
        """Drop the slots at the local deadline when no renewal succeeded by then (it
        failed, hangs, or this process was frozen)."""
        while True:
            self._expire_check()
            if self.held:
                await trio.sleep_until(self._valid_until)
            else:
                self._held_changed = trio.Event()
                await self._held_changed.wait()

    async def _tick(self, acquire: bool) -> None:
        started = trio.current_time()
        n, d, flat = await self._evalsha(
            "TICK", [self.p + "members", self.p + "fence", self.p + "drainers"],
            [self.id, LEASE_MS, SLOTS, self.p, "1" if acquire else "0",
             "1" if self.binds.holds_any() else "0"])
        valid_until = started + LEASE_MS / 1000 * VALID_FRACTION
        if trio.current_time() >= valid_until:       # answered too late: as a failure
            log.warning("cluster slot lease renewal answered after its deadline")
            self._expire_check()
            return
        self._valid_until = valid_until
        self._held_changed.set()
        held = {int(flat[i]): int(flat[i + 1]) for i in range(0, len(flat), 2)}
        self.members, self.drainers = int(n), int(d)
        lost = [s for s in self.held if held.get(s) != self.held[s]]
        new = [s for s in held if self.held.get(s) != held[s]]
        for slot in lost:
            self._drop_slot(slot)
            self.draining.pop(slot, None)
            self._handoff.discard(slot)
        self.held = held
        for slot in new:
            await self._claim(slot)
        if lost or new:
            log.info("cluster slots id=%s members=%d drainers=%d held=%d new=%d lost=%d",
                     self.id, self.members, self.drainers, len(held), len(new), len(lost))
            self._changed.set()

    def share(self) -> int:
        if not self.binds.holds_any():
            return 0 if self.drainers else len(self.held)   # nobody can send: keep them
        return math.ceil(SLOTS / max(1, self.drainers))

    def _slot_work(self, slot: int) -> int:
        disp = self.gw.dispatcher
        return sum(disp.sched.depth(n) for n in self.senders_of(slot)) + \
            sum(1 for e in self.entry_of.values() if e[0] == slot)

    async def _rebalance(self) -> None:
        extra = len(self.held) - self.share()
        busy = sorted((s for s in self.held if s not in self.draining),
                      key=lambda s: (self._slot_work(s), -s))
        for slot in busy[:max(0, extra - len(self.draining))]:
            self._start_drain(slot)
        keep = [s for s in self.draining if s not in self._handoff]
        for slot in keep[:max(0, len(self.draining) - max(0, extra))]:
            del self.draining[slot]                  # the share grew meanwhile: keep it
            await self._claim(slot)
        await self._finish_drains()

    def _start_drain(self, slot: int, handoff: bool = False) -> None:
        self.draining[slot] = trio.current_time() + DRAIN_S
        if handoff:
            self._handoff.add(slot)
        self._drop_queued(slot)
        self._changed.set()

    async def handover(self, slot: int) -> bool:
        """Move ``slot`` to another gateway now (same safe point as rebalancing)."""
        if slot not in self.held:
            return False
        self._start_drain(slot, handoff=True)
        await self._finish_drains()
        return True

    async def _finish_drains(self) -> None:
        now = trio.current_time()
        for slot, deadline in list(self.draining.items()):
            if slot not in self.held:
                continue
            self._drop_queued(slot)                  # re-queued ones (lost link) go too
            inflight = any(e[0] == slot for e in self.entry_of.values())
            if inflight and now < deadline:
                continue                             # safe point: in-flight ones acked
            if inflight:
                log.warning("cluster slot %d released with submits in flight", slot)
            for sid in [s for s, e in self.entry_of.items() if e[0] == slot]:
                del self.entry_of[sid]
            handoff = slot in self._handoff
            self._handoff.discard(slot)
            self.handovers += 1
            await self._release(slot, handoff=handoff)

    def _drop_queued(self, slot: int) -> None:
        """Take the slot's queued (not in-flight) messages out of the local dispatcher;
        their stream entries stay pending for the next owner."""
        disp = self.gw.dispatcher
        for sid, entry in list(self.entry_of.items()):
            if entry[0] != slot:
                continue
            ob = disp.live.get(sid)
            if ob is None or ob.msg.status == M.QUEUED:
                if ob is not None:
                    disp.remove(sid)
                del self.entry_of[sid]
        for number in self.senders_of(slot):
            self.rates.drop_sender(number)

    def _drop_slot(self, slot: int) -> None:
        disp = self.gw.dispatcher
        for sid, ob in list(disp.live.items()):
            if slot_of(ob.sender_number) == slot and ob.msg.status == M.QUEUED:
                disp.remove(sid)
        for sid, entry in list(self.entry_of.items()):
            if entry[0] == slot:
                del self.entry_of[sid]
        for number in self.senders_of(slot):
            self.rates.drop_sender(number)

    async def _release(self, slot: int, handoff: bool = False, acks: bool = True) -> None:
        if acks:
            await self._acks_written()               # acks first: after it they are refused
        token = self.held.pop(slot, None)
        self.draining.pop(slot, None)
        if token is None:
            return                                   # dropped meanwhile (deadline passed)
        self._changed.set()
        await self._evalsha("RELEASE", [self.lease(slot), f"{self.p}handoff:{slot}"],
                            [f"{self.id}:{token}", self.id if handoff else "", HANDOFF_MS])

    async def _release_all(self) -> None:
        try:
            await self._acks_written()
            for slot in list(self.held):
                await self._release(slot, acks=False)
            await self.binds.tick(want=False)
        except (RedisError, OSError, StoreError):
            return
