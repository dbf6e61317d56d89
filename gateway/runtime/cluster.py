"""Scale-out: several gateways on one Redis store share the sender queues.

Owns: which gateway drains which sender queue, the hand-over of queued work when a
gateway stops or dies, the carrier-wide TPS share, and once-per-status callbacks.

Design (``RedisCluster``; ``LocalCluster`` is the single-gateway case with the same hooks):
- Senders are hashed into ``SLOTS`` slots. Each slot has one lease ``P lease:<slot>`` =
  ``"<gateway id>:<fencing token>"`` (token from INCR ``P fence``), PX ``LEASE_MS``,
  renewed every ``LEASE_MS/3`` by one Lua call (``TICK``) that also refreshes the member
  set and takes free slots up to this gateway's fair share (ceil(SLOTS / members)). A
  gateway above its share releases slots whose senders have no local work.
- A message accepted on any gateway is XADDed (field ``sid``) to its sender's stream
  ``P q:<number>``: queued ones in the same pipeline as the create, so the 201 is sent
  only after both were acknowledged. The slot owner reads its senders' streams with
  XREADGROUP (group ``g``), loads the message and feeds its local dispatcher; the entry
  is XACKed when the message reaches ``sent`` or a final status. The ack is fenced: a
  Lua script acks only while the lease still holds this gateway's token.
- A new owner XAUTOCLAIMs every pending entry of its new senders (the lease was free, so
  the old owner is gone or has released it) and sends them again: at least once.
  Duplicate entries (idempotent repeats, claims) are dropped while the sid is live.
- A slot lost to lease expiry (pause, partition) stops being read and its queued local
  messages are dropped from the dispatcher (the new owner claims them).
- Carrier ``max_tps``: each gateway enforces ``max_tps / members`` locally, so N
  gateways never exceed the cap (they may under-use it while one is idle).
- Status callbacks go out once per (message, status): ``SET NX P cb:<sid>:<status>``.
- Lua scripts touch keys derived from their arguments: one Redis primary, not Redis
  Cluster.

Error handling: a failed tick or read is logged and retried after ``LEASE_MS/3``; if the
leases lapse meanwhile, another gateway takes the senders (at least once). Callback
dedupe errors send the callback anyway (at least once).
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
from gateway.store.base import StoreError

log = logging.getLogger("gateway.cluster")

SLOTS = 16
LEASE_MS = 3000
READ_BLOCK_MS = 200
PEL_RECHECK_S = 5.0
CB_TTL_S = 3 * 86400
GROUP = "g"

TICK = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local n = redis.call('ZCARD', KEYS[1])
local nslots = tonumber(ARGV[3])
local share = math.ceil(nslots / n)
local held, free = {}, {}
for s = 0, nslots - 1 do
  local k = ARGV[4] .. s
  local v = redis.call('GET', k)
  if v then
    local owner, tok = string.match(v, '^(.-):(%d+)$')
    if owner == ARGV[1] then
      redis.call('PEXPIRE', k, ttl)
      table.insert(held, s); table.insert(held, tonumber(tok))
    end
  else
    table.insert(free, s)
  end
end
if ARGV[5] == '1' then
  for _, s in ipairs(free) do
    if #held / 2 >= share then break end
    local tok = redis.call('INCR', KEYS[2])
    redis.call('SET', ARGV[4] .. s, ARGV[1] .. ':' .. tok, 'PX', ttl)
    table.insert(held, s); table.insert(held, tok)
  end
end
return {n, held}
"""

RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

ACK = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
return redis.call('XACK', KEYS[2], ARGV[2], ARGV[3])
"""


def make_cluster(gw):
    """``RedisCluster`` when the store is Redis, else ``LocalCluster``."""
    if getattr(gw.store, "backend", "") == "redis":
        return RedisCluster(gw)
    return LocalCluster(gw)


class LocalCluster:
    """One gateway owns everything; every hook is the plain local action."""

    members = 1

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

    def may_bind(self, carrier: str) -> bool:
        return True

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
        self.entry_of: dict[str, tuple[int, str, bytes]] = {}   # sid -> (slot, stream, id)
        self.members = 1
        self.claimed = 0
        self._changed = trio.Event()
        #: False simulates a crash in tests: leases are left to expire, not released
        self.release_on_stop = True
        self._created_routed: set[str] = set()
        self.store.on_create = self._xadd_on_create

    # -- keys -----------------------------------------------------------------------------
    def stream(self, number: str) -> str:
        return f"{self.p}q:{number}"

    def lease(self, slot: int) -> str:
        return f"{self.p}lease:{slot}"

    def senders(self) -> list[str]:
        return list(self.gw.dispatcher.capacity)

    def senders_of(self, slot: int) -> list[str]:
        return [n for n in self.senders() if slot_of(n) == slot]

    # -- lifecycle ------------------------------------------------------------------------
    async def run(self, task_status=trio.TASK_STATUS_IGNORED) -> None:
        c = self.store.client
        for name in ("TICK", "RELEASE", "ACK"):
            await self.store.register_script("cluster_" + name, globals()[name])
        for number in self.senders():
            try:
                await c.xgroup_create(self.stream(number), GROUP, "0", mkstream=True)
            except StreamDuplicateConsumerGroupError:
                pass                                 # another gateway created it
        await self._tick(acquire=False)              # announce ourselves, take nothing yet
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._lease_loop)
                nursery.start_soon(self._read_loop)
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
                await self._tick(acquire=True)
                await self._release_extras()
            except (RedisError, OSError, StoreError) as exc:
                log.warning("cluster lease tick failed: %s", exc)
            await trio.sleep(LEASE_MS / 3000)

    async def _tick(self, acquire: bool) -> None:
        n, flat = await self._evalsha(
            "TICK", [self.p + "members", self.p + "fence"],
            [self.id, LEASE_MS, SLOTS, self.p + "lease:", "1" if acquire else "0"])
        held = {int(flat[i]): int(flat[i + 1]) for i in range(0, len(flat), 2)}
        if int(n) != self.members:
            self.members = int(n)
            self._share_carrier_tps()
        lost = [s for s in self.held if held.get(s) != self.held[s]]
        new = [s for s in held if self.held.get(s) != held[s]]
        for slot in lost:
            self._drop_slot(slot)
        self.held = held
        for slot in new:
            await self._claim(slot)
        if lost or new:
            log.info("cluster slots id=%s members=%d held=%d new=%d lost=%d", self.id,
                     self.members, len(held), len(new), len(lost))
            self._changed.set()

    def _drop_slot(self, slot: int) -> None:
        disp = self.gw.dispatcher
        for sid, ob in list(disp.live.items()):
            if slot_of(ob.sender_number) == slot and ob.msg.status == M.QUEUED:
                disp.remove(sid)
        for sid, entry in list(self.entry_of.items()):
            if entry[0] == slot:
                del self.entry_of[sid]

    async def _release_extras(self) -> None:
        share = math.ceil(SLOTS / max(1, self.members))
        busy = {e[0] for e in self.entry_of.values()}
        for slot in sorted(self.held, reverse=True):
            if len(self.held) <= share:
                break
            if slot in busy or any(self.gw.dispatcher.sched.depth(n) for n in self.senders_of(slot)):
                continue
            await self._release(slot)

    async def _release(self, slot: int) -> None:
        token = self.held.pop(slot)
        self._changed.set()
        await self._evalsha("RELEASE", [self.lease(slot)], [f"{self.id}:{token}"])

    async def _release_all(self) -> None:
        for slot in list(self.held):
            try:
                await self._release(slot)
            except (RedisError, OSError):
                return

    def _share_carrier_tps(self) -> None:
        router = self.gw.router
        for c in self.gw.settings.carriers:
            tps = getattr(getattr(c, "smpp", None), "max_tps", 0) or 0
            bucket = getattr(router, "_buckets", {}).get(c.name)
            if tps and bucket is not None:
                bucket.rate = tps / self.members
                bucket.burst = max(1.0, bucket.rate)

    # -- intake ---------------------------------------------------------------------------
    def should_load(self, msg) -> bool:
        # queued work lives in the streams; only not-yet-routed messages are placed here
        return msg.status in (M.SCHEDULED, M.ACCEPTED)

    def _xadd_on_create(self, msg):
        """Pipeline step added to a create: queued messages enter their stream with it."""
        if msg.status != M.QUEUED or not msg.from_:
            return None
        self._created_routed.add(msg.sid)
        key, sid = self.stream(msg.from_), msg.sid
        return lambda p: p.xadd(key, {"sid": sid})

    def route(self, msg) -> bool:
        if msg.sid in self._created_routed:
            self._created_routed.discard(msg.sid)
            return True
        key, sid = self.stream(msg.from_), msg.sid
        self.store.push_nowait(lambda p: p.xadd(key, {"sid": sid}))
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
            streams = {self.stream(n): start for n in self.senders() if slot_of(n) in self.held}
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
        if slot not in self.held or not entries:
            return
        sids = [e.field_values[b"sid"].decode() for e in entries]
        msgs = {m.sid: m for m in await self.store.get_messages(sids)}
        disp = self.gw.dispatcher
        for entry, sid in zip(entries, sids, strict=True):
            msg = msgs.get(sid)
            known = self.entry_of.get(sid)
            if known is not None and known[2] == entry.identifier:
                continue                                    # re-read of our own pending
            if known is not None or sid in disp.live or msg is None \
                    or msg.status not in (M.QUEUED, M.SENDING):
                self._ack(slot, key, entry.identifier)      # duplicate or already done
                continue
            self.entry_of[sid] = (slot, key, entry.identifier)
            msg.status = M.QUEUED
            if not disp.enqueue(msg):
                msg.advance(M.FAILED, self.gw.now())
                msg.error_code = errors.QUEUE_OVERFLOW
                msg.error_message = errors.MESSAGES[errors.QUEUE_OVERFLOW]
                self.store.save_message_nowait(msg)
                self.gw.status_changed(msg)

    def _ack(self, slot: int, key: str, entry_id) -> None:
        token = self.held.get(slot)
        if token is None:
            return
        lease, value, store = self.lease(slot), f"{self.id}:{token}", self.store
        self.store.push_nowait(lambda p: p.evalsha(store._sha["cluster_ACK"], [lease, key],
                                                   [value, GROUP, entry_id]))

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
