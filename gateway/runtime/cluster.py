"""Scale-out: several gateways on one Redis store share sender queues, rates and binds.

Owns: which gateway drains which sender queue, the hand-over of queued work when a
gateway stops, dies or rebalances, and once-per-status callbacks. Rates live in
``cluster_rates``, carrier bind leases in ``cluster_binds``; ``LocalCluster`` is the
single-gateway (SQLite) case with the same hooks, each the plain local action.

Design (``RedisCluster``, keys under ``P c:``):
- Binds: each carrier's system_id has ``[carriers.smpp] cluster_binds`` leases (default
  1); a link connects only while its gateway holds one (``cluster_binds``). Only
  gateways holding a bind lease ("drainers") own sender queues, so queued work always
  sits on a gateway that can send it.
- Senders are hashed into ``SLOTS`` slots; slot lease ``lease:<slot>`` =
  ``"<gateway id>:<fencing token>"`` (token from INCR ``fence``), PX ``LEASE_MS``,
  renewed every ``LEASE_MS/3`` by ``TICK``, which also refreshes the member and drainer
  sets and takes free slots up to the fair share ceil(SLOTS / drainers).
- A message enters its sender stream ``q:<from>`` (entry ``sid``, ``n`` segments) at most
  once (marker ``r:<sid>``), with the sender's queued-segment counter ``n:<from>``:
  queued and accepted (Messaging Service) messages inside the create script, so before
  the 201; scheduled ones when due (``ROUTE``; the first gateway wins, the others find
  the marker). The counter is the cluster-wide depth the 21611 check uses (the create
  script refuses atomically).
- The slot owner XREADGROUPs its senders' streams, loads each message and queues it on
  its local dispatcher; the entry is XACKed + XDELed (and the counter decremented) when
  the message is ``sent`` or final, by ``ACK``, which refuses unless the lease still
  holds this gateway's token (a stale owner's ack is refused; the entry stays pending).
- Rates: every segment needs credit from Redis token buckets (per sender, per capped
  carrier), see ``cluster_rates``: N gateways never exceed a class rate or ``max_tps``.
- Rebalancing: a gateway above its share drains extra slots (idle ones first, busy ones
  too under constant load): it stops reading them, takes their queued messages out of
  its dispatcher (their entries stay pending), waits until its in-flight ones are acked
  (at most ``DRAIN_S``), then deletes the lease. The next owner XAUTOCLAIMs every
  pending entry of the slot. ``handover(slot)`` does the same on request and marks the
  slot for another gateway (``handoff:<slot>``, taken even above share).
- Death: leases of a dead gateway expire; its slots are taken and their pending entries
  claimed and sent again (at least once); its bind lease moves within ~4 s.
- A gateway whose lease renewals fail for ``VALID_FRACTION`` of ``LEASE_MS`` stops
  sending for those slots and closes its binds before another gateway may take them.
- Status callbacks once per (message, status): ``SET NX cb:<sid>:<status>``.

Guarantees: a 201-acknowledged message is in Redis (message + stream entry) with
``appendfsync always``, and is sent at least once by exactly one sender-queue owner at a
time; duplicates are possible only when a gateway dies or stalls with submits in
flight, or a drain times out. Callbacks: at least once, deduplicated per status.

What Redis replication/failover can lose: replicas are asynchronous. A failover to a
replica loses acknowledged writes not yet replicated: created messages (the 201 was
sent), stream entries, acks (those messages are sent again), lease values (two gateways
may briefly own a slot or a bind: duplicates, rates exceeded for ~one lease time) and
bucket state (one burst extra). Run one primary with AOF on a reliable disk; with
Sentinel, ``min-replicas-to-write`` narrows but does not close the window.
Lua scripts derive keys from their arguments: one Redis primary, not Redis Cluster.

Error handling: a failed tick, read or claim is logged and retried after ``LEASE_MS/3``;
callback dedupe errors send the callback anyway (at least once).
"""

from __future__ import annotations

import logging
import math
import secrets
import zlib

import trio
from coredis.exceptions import RedisError, StreamDuplicateConsumerGroupError
from coredis.tokens import PureToken

from gateway.core import errors
from gateway.core import message as M
from gateway.runtime.cluster_binds import BIND, VALID_FRACTION, BindLeases
from gateway.runtime.cluster_rates import RATE, ClusterRates
from gateway.store.base import StoreError
from gateway.store.redis import StreamRoute

log = logging.getLogger("gateway.cluster")

SLOTS = 16
LEASE_MS = 3000
READ_BLOCK_MS = 200
PEL_RECHECK_S = 5.0
DRAIN_S = 10.0
HANDOFF_MS = 5000
CB_TTL_S = 3 * 86400
MARKER_TTL_S = 3 * 86400
GROUP = "g"

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

ACK = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
local r = redis.call('XACK', KEYS[2], ARGV[2], ARGV[3])
if r == 1 then
  redis.call('XDEL', KEYS[2], ARGV[3])
  if redis.call('DECRBY', KEYS[3], ARGV[4]) < 0 then redis.call('SET', KEYS[3], '0') end
end
return r
"""


def make_cluster(gw):
    """``RedisCluster`` when the store is Redis, else ``LocalCluster``."""
    if getattr(gw.store, "backend", "") == "redis":
        return RedisCluster(gw)
    return LocalCluster(gw)


class LocalCluster:
    """One gateway owns everything; every hook is the plain local action."""

    members = 1
    bind_gate = None            # SmppLink.gate: bind always

    def __init__(self, gw) -> None:
        self.gw = gw

    async def run(self, task_status=trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()

    def should_load(self, msg) -> bool:
        """Place this stored pending message at start (``Gateway._load``)?"""
        return True

    def route(self, msg) -> bool:
        """Queue a stored message on its sender; False when that queue is full."""
        return self.gw.dispatcher.enqueue(msg)

    def on_status(self, msg) -> None:
        """Every status change of a message handled on this gateway."""

    def deliver_callback(self, msg, hook) -> None:
        self.gw.webhooks.enqueue(hook)


def slot_of(number: str) -> int:
    return zlib.crc32(number.encode()) % SLOTS


class RedisCluster(LocalCluster):
    def __init__(self, gw) -> None:
        super().__init__(gw)
        self.store = gw.store
        self.id = secrets.token_hex(6)
        self.p = self.store.prefix + "c:"
        self.held: dict[int, int] = {}                 # slot -> fencing token
        self.draining: dict[int, float] = {}           # slot -> release deadline
        self._handoff: set[int] = set()                # draining on request (handover)
        self.entry_of: dict[str, tuple[int, str, bytes, int]] = {}  # sid -> slot,key,id,n
        self.members = 1
        self.drainers = 0
        self.claimed = 0
        self.handovers = 0
        self._changed = trio.Event()
        self._valid_until = 0.0
        #: False simulates a crash in tests: leases are left to expire, not released
        self.release_on_stop = True
        self._created_routed: set[str] = set()
        self.binds = BindLeases(self, LEASE_MS)
        self.bind_gate = self.binds.gate
        self.rates = ClusterRates(self)
        self.store.on_create = self._route_on_create

    # -- keys -----------------------------------------------------------------------------
    def stream(self, number: str) -> str:
        return f"{self.p}q:{number}"

    def depth_key(self, number: str) -> str:
        return f"{self.p}n:{number}"

    def lease(self, slot: int) -> str:
        return f"{self.p}lease:{slot}"

    def senders(self) -> list[str]:
        return list(self.gw.dispatcher.capacity)

    def senders_of(self, slot: int) -> list[str]:
        return [n for n in self.senders() if slot_of(n) == slot]

    def serving(self, number: str) -> bool:
        """This gateway reads and sends ``number``'s queue now."""
        slot = slot_of(number)
        return slot in self.held and slot not in self.draining

    def sender_class(self, number: str) -> str:
        return self.gw.dispatcher.sched._senders[number].cls   # noqa: SLF001

    # -- lifecycle ------------------------------------------------------------------------
    async def run(self, task_status=trio.TASK_STATUS_IGNORED) -> None:
        c = self.store.client
        scripts = {"TICK": TICK, "RELEASE": RELEASE, "ACK": ACK, "BIND": BIND, "RATE": RATE}
        for name, source in scripts.items():
            await self.store.register_script("cluster_" + name, source)
        for number in self.senders():
            try:
                await c.xgroup_create(self.stream(number), GROUP, "0", mkstream=True)
            except StreamDuplicateConsumerGroupError:
                pass                                 # another gateway created it
        self.rates.install()
        await self.binds.tick()                      # links built next bind at once
        await self._tick(acquire=False)              # announce ourselves, take nothing yet
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._lease_loop)
                nursery.start_soon(self._read_loop)
                nursery.start_soon(self.rates.run)
                task_status.started()
        finally:
            if self.release_on_stop:
                with trio.CancelScope(shield=True), trio.move_on_after(2):
                    await self._release_all()

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
                if self.held and trio.current_time() >= self._valid_until:
                    for slot in list(self.held):     # another gateway may own them soon
                        self._drop_slot(slot)
                    self.held, self.draining = {}, {}
            await trio.sleep(LEASE_MS / 3000)

    async def _tick(self, acquire: bool) -> None:
        started = trio.current_time()
        n, d, flat = await self._evalsha(
            "TICK", [self.p + "members", self.p + "fence", self.p + "drainers"],
            [self.id, LEASE_MS, SLOTS, self.p, "1" if acquire else "0",
             "1" if self.binds.holds_any() else "0"])
        self._valid_until = started + LEASE_MS / 1000 * VALID_FRACTION
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

    async def _release(self, slot: int, handoff: bool = False) -> None:
        token = self.held.pop(slot)
        self.draining.pop(slot, None)
        self._changed.set()
        await self._evalsha("RELEASE", [self.lease(slot), f"{self.p}handoff:{slot}"],
                            [f"{self.id}:{token}", self.id if handoff else "", HANDOFF_MS])

    async def _release_all(self) -> None:
        try:
            for slot in list(self.held):
                await self._release(slot)
            await self.binds.tick(want=False)
        except (RedisError, OSError, StoreError):
            return

    # -- intake ---------------------------------------------------------------------------
    def should_load(self, msg) -> bool:
        # queued work lives in the streams; only not-yet-routed messages are placed here
        return msg.status in (M.SCHEDULED, M.ACCEPTED)

    def _stream_route(self, msg, check_cap: bool) -> StreamRoute | None:
        cap = self.gw.dispatcher.capacity.get(msg.from_)
        if cap is None:
            return None
        return StreamRoute(self.stream(msg.from_), self.depth_key(msg.from_),
                           f"{self.p}r:{msg.sid}", cap[1] if check_cap else -1,
                           max(1, msg.num_segments), MARKER_TTL_S)

    def _route_on_create(self, msg) -> StreamRoute | None:
        """``RedisStore.on_create``: queued and accepted messages enter their stream in
        the create script (before the 201); queued ones are refused when full."""
        if msg.status not in (M.QUEUED, M.ACCEPTED) or not msg.from_:
            return None
        route = self._stream_route(msg, check_cap=msg.status == M.QUEUED)
        if route is not None:
            if len(self._created_routed) > 100_000:
                self._created_routed.clear()         # leftovers of failed creates
            self._created_routed.add(msg.sid)
        return route

    def route(self, msg) -> bool:
        if msg.sid in self._created_routed:
            self._created_routed.discard(msg.sid)
            return True
        route = self._stream_route(msg, check_cap=True)
        if route is None:
            return False
        gw = self.gw

        def done(result, error) -> None:
            if error is None and int(result) == -1:       # cluster-wide queue full
                msg.advance(M.FAILED, gw.now())
                msg.error_code = errors.QUEUE_OVERFLOW
                msg.error_message = errors.MESSAGES[errors.QUEUE_OVERFLOW]
                self.store.save_message_nowait(msg)
                gw.status_changed(msg)

        self.store.route_nowait(msg, route, done)
        return True

    async def _read_loop(self) -> None:
        c = self.store.client
        reread_at = trio.current_time() + PEL_RECHECK_S
        while True:
            # normally only new entries (">"); after an error and every PEL_RECHECK_S our own
            # pending entries ("0") too: a reply lost on a broken connection left them there
            start = ">"
            if trio.current_time() >= reread_at:
                start, reread_at = "0", trio.current_time() + PEL_RECHECK_S
            streams = {self.stream(n): start for n in self.senders() if self.serving(n)}
            if not streams:
                self._changed = trio.Event()
                with trio.move_on_after(1.0):
                    await self._changed.wait()
                continue
            try:
                res = await c.xreadgroup(GROUP, self.id, streams=streams, count=256,
                                         block=READ_BLOCK_MS)
                for key, entries in (res or {}).items():
                    await self._accept(key.decode() if isinstance(key, bytes) else key,
                                       entries)
            except (RedisError, OSError, StoreError) as exc:
                log.warning("cluster read failed: %s", exc)
                reread_at = trio.current_time()
                await trio.sleep(LEASE_MS / 3000)

    async def _claim(self, slot: int) -> None:
        c = self.store.client
        for number in self.senders_of(slot):
            key, start = self.stream(number), "0-0"
            while True:
                nxt, entries, *_ = await c.xautoclaim(key, GROUP, self.id, 0, start, count=500)
                self.claimed += len(entries)
                await self._accept(key, entries)
                if nxt in (b"0-0", "0-0") or not entries:
                    break
                start = nxt

    async def _accept(self, key: str, entries) -> None:
        number = key[len(self.p) + 2:]
        slot = slot_of(number)
        if not self.serving(number) or not entries:
            return                                  # stays pending: the next owner claims
        fields = [e.field_values for e in entries]
        sids = [f[b"sid"].decode() for f in fields]
        msgs = {m.sid: m for m in await self.store.get_messages(sids)}
        if not self.serving(number):
            return
        disp = self.gw.dispatcher
        for entry, f, sid in zip(entries, fields, sids, strict=True):
            msg = msgs.get(sid)
            n = int(f.get(b"n", b"0")) or (msg.num_segments if msg else 1)
            known = self.entry_of.get(sid)
            if known is not None and known[2] == entry.identifier:
                continue                                    # re-read of our own pending
            if known is not None or sid in disp.live or msg is None \
                    or msg.status not in (M.QUEUED, M.SENDING, M.ACCEPTED):
                self._ack(slot, key, entry.identifier, n)   # duplicate or already done
                continue
            self.entry_of[sid] = (slot, key, entry.identifier, n)
            msg.status = M.QUEUED
            if not disp.enqueue(msg):
                msg.advance(M.FAILED, self.gw.now())
                msg.error_code = errors.QUEUE_OVERFLOW
                msg.error_message = errors.MESSAGES[errors.QUEUE_OVERFLOW]
                self.store.save_message_nowait(msg)
                self.gw.status_changed(msg)

    def _ack(self, slot: int, key: str, entry_id, n: int) -> None:
        token = self.held.get(slot)
        if token is None:
            return
        number = key[len(self.p) + 2:]
        keys = [self.lease(slot), key, self.depth_key(number)]
        args = [f"{self.id}:{token}", GROUP, entry_id, n]
        sha = self.store._sha["cluster_ACK"]                 # noqa: SLF001
        self.store.push_nowait(lambda p: p.evalsha(sha, keys, args))

    # -- status hooks ---------------------------------------------------------------------
    def on_status(self, msg) -> None:
        if msg.status == M.SENT or msg.status in M.FINAL:
            entry = self.entry_of.pop(msg.sid, None)
            if entry is not None:
                self._ack(*entry)

    def deliver_callback(self, msg, hook) -> None:
        key = f"{self.p}cb:{msg.sid}:{msg.status}"
        webhooks = self.gw.webhooks

        def done(result, error) -> None:
            if error is not None or result:
                webhooks.enqueue(hook)

        self.store.push_nowait(lambda p: p.set(key, "1", condition=PureToken.NX, ex=CB_TTL_S),
                               on_done=done)
