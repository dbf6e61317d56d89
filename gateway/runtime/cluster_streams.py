"""Cluster sender streams: queued work in Redis streams, read by the slot owner.

Owns: putting a message into its sender stream (``q:<from>``, at most once, with the
cluster-wide depth counter ``n:<from>``: in the create script or by ``route``), the
owner's read loop (XREADGROUP; its own pending entries re-read every
``PEL_RECHECK_S`` and after an error), claiming a new slot's pending entries
(XAUTOCLAIM), handing read messages to the local dispatcher, the fenced ``ACK`` when a
message is sent or final, and once-per-status callbacks (``SET NX cb:<sid>:<status>``).
Part of ``RedisCluster`` (see ``cluster`` for the design).

Rules:
- An entry is acked only by ``ACK``, which refuses unless the slot lease still holds
  this gateway's fencing token: a stale owner's ack leaves the entry pending. Acks are
  gathered per scheduling step and written as one script call through the store's
  write pipeline, behind the status saves pushed before them; a release waits for them.
  Inside it the fencing is per entry, the stream writes per stream (one XACK, one XDEL,
  one DECRBY each).
- Entries of a slot this gateway no longer serves are left pending for the next owner.

Error handling: a failed read is logged and retried after ``LEASE_MS/3`` (then our
pending entries are re-read); a callback dedupe error sends the callback anyway.
"""

from __future__ import annotations

import logging
from functools import partial

import trio
from coredis.exceptions import RedisError
from coredis.tokens import PureToken

from gateway.core import errors
from gateway.core import message as M
from gateway.core.numbers import sender_key
from gateway.runtime.cluster_slots import LEASE_MS, slot_of
from gateway.store.base import StoreError
from gateway.store.redis import StreamRoute

log = logging.getLogger("gateway.cluster")

READ_BLOCK_MS = 200
PEL_RECHECK_S = 5.0
CB_TTL_S = 3 * 86400
MARKER_TTL_S = 3 * 86400
GROUP = "g"

ACK_BATCH = 256          # entries per ACK script call

# KEYS: per entry (lease, stream, depth); ARGV[1] group, then per entry (lease value, id, n).
# Returns per entry 1 (acked), 0 (not pending, or a repeat of an id earlier in this call)
# or -1 (fenced: the lease does not hold that value; checked entry by entry, one GET per
# distinct lease). The entries that pass are acked per stream: one XACK and one XDEL with
# all their ids and one DECRBY by the sum of their segments. When XACK acks fewer than it
# was given (rare: a repeated ack), the per-entry answer comes from XDEL id by id: an entry
# is deleted in the same call that acks it, so the ones still in the stream were the
# pending ones (we only ack ids we read, i.e. ids delivered to the group).
ACK = """
local out, lease, streams, order = {}, {}, {}, {}
for i = 1, #KEYS / 3 do
  local lk, sk = KEYS[3 * i - 2], KEYS[3 * i - 1]
  local cur = lease[lk]
  if cur == nil then cur = redis.call('GET', lk) or false; lease[lk] = cur end
  if cur ~= ARGV[3 * i - 1] then
    out[i] = -1
  else
    local s = streams[sk]
    if s == nil then
      s = {depth = KEYS[3 * i], ids = {}, at = {}, n = {}, seen = {}}
      streams[sk] = s; order[#order + 1] = sk
    end
    local id = ARGV[3 * i]
    out[i] = 0
    if not s.seen[id] then
      s.seen[id] = true
      s.ids[#s.ids + 1] = id; s.at[#s.at + 1] = i; s.n[#s.n + 1] = tonumber(ARGV[3 * i + 1])
    end
  end
end
for _, sk in ipairs(order) do
  local s = streams[sk]
  local dec = 0
  if redis.call('XACK', sk, ARGV[1], unpack(s.ids)) == #s.ids then
    redis.call('XDEL', sk, unpack(s.ids))
    for j = 1, #s.ids do out[s.at[j]] = 1; dec = dec + s.n[j] end
  else
    for j = 1, #s.ids do
      local r = redis.call('XDEL', sk, s.ids[j])
      out[s.at[j]] = r
      if r == 1 then dec = dec + s.n[j] end
    end
  end
  if dec > 0 and redis.call('DECRBY', s.depth, dec) < 0 then redis.call('SET', s.depth, '0') end
end
return out
"""


def _acked(done: trio.Event, result, error) -> None:
    if error is not None:        # the entries stay pending: re-read and sent again later
        log.warning("cluster ack failed: %s", error)
    done.set()


class SenderStreams:
    """Stream half of ``RedisCluster`` (mixin: uses its keys, leases and dispatcher)."""

    # -- intake ---------------------------------------------------------------------------
    def should_load(self, msg) -> bool:
        # queued work lives in the streams; only not-yet-routed messages are placed here
        return msg.status in (M.SCHEDULED, M.ACCEPTED)

    def _stream_route(self, msg, check_cap: bool) -> StreamRoute | None:
        key = sender_key(msg.account_sid, msg.from_)      # "AC…|ID" for a sender ID
        cap = self.gw.dispatcher.capacity.get(key)
        if cap is None:
            return None
        return StreamRoute(self.stream(key), self.depth_key(key),
                           f"{self.p}r:{msg.sid}", cap[1] if check_cap else -1,
                           max(1, msg.num_segments), MARKER_TTL_S)

    def _route_on_create(self, msg) -> StreamRoute | None:
        """``RedisStore.on_create``: queued and accepted messages enter their stream in
        the create script (before the 201); queued ones are refused when full."""
        if msg.status not in (M.QUEUED, M.ACCEPTED) or not msg.from_:
            return None
        route = self._stream_route(msg, check_cap=msg.status == M.QUEUED)
        if route is not None:
            # queued ones never go through ROUTE (route() finds them below), so no marker
            route = route._replace(mark=msg.status == M.ACCEPTED)
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
        """Queue a fenced ack (the token is the one held now); ``_ack_loop`` writes the
        queued ones as one ``ACK`` call after the current step, so always after the
        status saves pushed before it (an ack may come later than its save, never
        earlier: a crash in between re-sends, never loses)."""
        token = self.held.get(slot)
        if token is None:
            return
        number = key[len(self.p) + 2:]
        self._acks.append((self.lease(slot), key, self.depth_key(number),
                           f"{self.id}:{token}", entry_id, n))
        self._ack_wake.set()

    def _flush_acks(self) -> trio.Event | None:
        """Push the queued acks now; returns an event set once the last one was answered."""
        done = None
        sha = self.store._sha["cluster_ACK"] if self._acks else ""   # noqa: SLF001
        while self._acks:
            batch, self._acks = self._acks[:ACK_BATCH], self._acks[ACK_BATCH:]
            keys: list = []
            args: list = [GROUP]
            for lease, key, depth, value, entry_id, n in batch:
                keys += (lease, key, depth)
                args += (value, entry_id, n)
            done = trio.Event()
            self.store.push_nowait(lambda p, k=keys, a=args, h=sha: p.evalsha(h, k, a),
                                   on_done=partial(_acked, done))
            self.ack_calls += 1
        if done is not None:
            self._acks_done = done
        return done

    async def _acks_written(self, timeout: float = 1.0) -> None:
        """Wait (bounded) until every ack queued so far was answered (before a release:
        an ack arriving after the lease is gone would be refused)."""
        self._flush_acks()
        with trio.move_on_after(timeout):
            await self._acks_done.wait()

    async def _ack_loop(self) -> None:
        while True:
            await self._ack_wake.wait()
            self._ack_wake = trio.Event()
            await trio.lowlevel.checkpoint()         # let this round's acks gather
            self._flush_acks()

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
