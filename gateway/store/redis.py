"""``RedisStore``: the shared durable store for one or more gateways (Redis 7, coredis).

Owns: the data operations (messages, DLR map, kv, due tokens). The connection, the
durability check at open and the write pipeline are ``redis_conn.RedisConnection`` (the
base class; its rules apply to every write here); key layout, codec and scripts live in
``redis_schema``.

Rules:
- Read-your-writes on this gateway: a message saved with ``save_message_nowait`` and a
  DLR map entry written with ``map_carrier_id_nowait`` are visible to ``get_message`` /
  ``sid_for_carrier_id`` at once (kept in memory until their batch is answered).
- A create may carry a ``StreamRoute`` (``on_create``, cluster): the message enters its
  sender stream in the same script, refused with ``TwilioError(21611)`` when the
  cluster-wide queued-segment counter would pass the cap.
- Due tokens (``gateway.store.due``) live in the hash ``P due`` (sid -> tokens), written
  by the same script as the message create/save; the hash is also the index
  ``messages_due`` reads. Buffered clears ride on the message's next save or go out in
  one ``DUE`` script per ``flush_due``.
- TTLs (idempotency keys 24 h, DLR map 72 h) are Redis key expiries (server time).
"""

from __future__ import annotations

from typing import NamedTuple

import orjson
from coredis.tokens import PureToken

from gateway.core import errors
from gateway.core.errors import TwilioError
from gateway.core.message import QUEUED, SENDING, Message
from gateway.store import due as D
from gateway.store import redis_schema as R
from gateway.store.base import DLR_TTL, MessageFilter, Store, StoreError
from gateway.store.redis_conn import MAX_BATCH, RedisConnection, _Op, parse_url
from gateway.store.sqlite_schema import day_start

__all__ = ["IDEMPOTENCY_TTL", "RedisStore", "StreamRoute", "parse_url"]

IDEMPOTENCY_TTL = 24 * 3600.0
SCAN_CHUNK = 500


class StreamRoute(NamedTuple):
    """Where a message is queued in a cluster (keys of ``runtime.cluster``)."""
    stream: str
    depth: str
    marker: str
    cap: int            # segments; -1 = not checked
    segments: int
    marker_ttl: int     # s
    #: write the "routed" marker in the create: only needed when ``ROUTE`` may later be
    #: called for this message (accepted ones, at a restart); queued ones never are
    mark: bool = True

class RedisStore(RedisConnection, D.BufferedDueClears, Store):
    backend = "redis"

    def __init__(self, url: str, *, password: str | None = None, tls: bool = False,
                 prefix: str | None = None, allow_everysec: bool | None = None,
                 max_batch: int = MAX_BATCH) -> None:
        super().__init__(url, password=password, tls=tls, prefix=prefix,
                         allow_everysec=allow_everysec, max_batch=max_batch)
        self._pending_map: dict[str, str] = {}
        self._pending_rows: dict[str, bytes] = {}   # sid -> value saved nowait, not answered
        self._due = D.DueBuffer(coalescing=False)
        #: ``(msg) -> StreamRoute | None`` (cluster): the sender stream a created message
        #: enters in the same script as its create
        self.on_create = None
        #: ``(sid) -> None`` (cluster): a create ``on_create`` routed did not store it
        self.on_create_undo = None

    # -- messages -------------------------------------------------------------------------
    async def create_message(self, msg: Message, idempotency_key: str | None = None
                             ) -> tuple[Message, bool]:
        keys = self.keys.msg_keys(msg)
        keys.append(self.keys.idem(msg.account_sid, idempotency_key or "-"))
        args = [msg.sid, msg.status, R.pclass(msg.status), R.blob_of(msg),
                int(IDEMPOTENCY_TTL * 1000), self.keys.msg_prefix,
                "1" if idempotency_key is not None else "0", D.join(msg.due)]
        msg.due.clear()
        route = self.on_create(msg) if self.on_create is not None else None
        if route is None:
            args.append("0")
        else:                                    # one script: created and queued together
            keys += [route.stream, route.depth, route.marker]
            args += ["1", route.cap, route.segments, route.marker_ttl,
                     "1" if route.mark else "0"]
        created = False
        try:
            res = await self._submit(None, sub=("C", keys, args))
            if int(res[0]) == -2:
                raise TwilioError(errors.QUEUE_FULL)
            if int(res[0]) == 1:
                msg.seq = int(res[1])
                created = True
                return msg, True
            return R.msg_of(res[1]), False
        finally:
            if route is not None and not created and self.on_create_undo is not None:
                self.on_create_undo(msg.sid)

    def route_nowait(self, msg: Message, route: StreamRoute, on_done=None) -> None:
        """Queue ``msg`` on its sender stream unless it was already (``ROUTE``);
        ``on_done(result, error)``: result 1 added, 0 already routed/not pending, -1 full."""
        keys = [self.keys.msg(msg.sid), route.stream, route.depth, route.marker]
        args = [msg.sid, route.segments, route.cap, route.marker_ttl]
        self._push(_Op(None, on_done, waited=False, sub=("R", keys, args)))

    def _save_sub(self, msg: Message):
        remove, add = self._due.for_write(msg.sid, msg.due)
        args = [msg.sid, msg.status, R.pclass(msg.status), R.blob_of(msg), max(0, msg.seq),
                remove, add]
        return ("S", self.keys.msg_keys(msg), args)

    async def save_message(self, msg: Message) -> None:
        seq = int(await self._submit(None, sub=self._save_sub(msg)))
        if msg.seq <= 0:
            msg.seq = abs(seq)

    def save_message_nowait(self, msg: Message) -> None:
        sid = msg.sid
        # read-your-writes: get_message sees this value before its batch is answered
        value = b"%d|%s|" % (max(0, msg.seq), msg.status.encode()) + R.blob_of(msg)
        self._pending_rows[sid] = value

        def done(result, error):
            if self._pending_rows.get(sid) is value:
                del self._pending_rows[sid]
            if error is None and msg.seq <= 0:
                msg.seq = abs(int(result))

        self._push(_Op(None, done, waited=False, sub=self._save_sub(msg)))

    async def delete_message(self, sid: str) -> bool:
        msg = await self.get_message(sid)
        if msg is None:
            return False
        keys = self.keys.msg_keys(msg)
        return int(await self._submit(None, sub=("X", keys, [sid]))) == 1

    async def get_message(self, sid: str) -> Message | None:
        value = self._pending_rows.get(sid)
        if value is None:
            value = await self._read(self._c().get(self.keys.msg(sid)))
        return R.msg_of(value) if value is not None else None

    async def get_messages(self, sids) -> list[Message]:
        """The stored messages among ``sids`` (missing ones left out), in that order."""
        return await self._fetch(sids)

    async def _fetch(self, sids) -> list[Message]:
        out = []
        sids = [s.decode() if isinstance(s, bytes) else s for s in sids]
        for i in range(0, len(sids), SCAN_CHUNK):
            chunk = sids[i:i + SCAN_CHUNK]
            values = await self._read(self._c().mget([self.keys.msg(s) for s in chunk]))
            out.extend(R.msg_of(v) for v in values if v is not None)
        return out

    async def list_messages(self, flt: MessageFilter, limit: int,
                            before_seq: int | None = None) -> list[Message]:
        k = self.keys
        if flt.to is not None:
            index = k.acct_to(flt.account_sid, flt.to)
        elif flt.from_ is not None:
            index = k.acct_from(flt.account_sid, flt.from_)
        else:
            index = k.acct(flt.account_sid)
        lo_day = hi_day = None
        if flt.date_sent is not None:
            lo_day = day_start(flt.date_sent)
            hi_day = lo_day + 86400.0
        if flt.date_sent_after is not None:
            lo_day = max(lo_day or float("-inf"), day_start(flt.date_sent_after))
        if flt.date_sent_before is not None:
            hi_day = min(hi_day or float("inf"), day_start(flt.date_sent_before))
        limit = max(0, int(limit))
        out: list[Message] = []
        top = "+inf" if before_seq is None else f"({before_seq}"
        while len(out) < limit:
            scored = await self._read(self._c().zrange(
                index, top, "-inf", PureToken.BYSCORE, rev=True, offset=0, count=SCAN_CHUNK,
                withscores=True))
            if not scored:
                break
            msgs = await self._fetch([sm.member for sm in scored])
            for m in msgs:
                if m.account_sid != flt.account_sid or (flt.to is not None and m.to != flt.to) \
                        or (flt.from_ is not None and m.from_ != flt.from_):
                    continue
                if lo_day is not None or hi_day is not None:
                    if m.date_sent is None:
                        continue
                    if lo_day is not None and m.date_sent < lo_day:
                        continue
                    if hi_day is not None and m.date_sent >= hi_day:
                        continue
                out.append(m)
                if len(out) == limit:
                    break
            if len(scored) < SCAN_CHUNK:
                break
            top = f"({int(scored[-1].score)}"
        return out

    async def pending_messages(self) -> list[Message]:
        sids = await self._read(self._c().zrange(self.keys.pend, 0, -1))
        out = await self._fetch(sids)
        for m in out:
            if m.status == SENDING:
                m.status = QUEUED
        return [m for m in out if m.status in R.PENDING]

    async def unfinished_sent(self, since: float) -> list[Message]:
        sids = await self._read(self._c().zrange(self.keys.sent, 0, -1))
        return [m for m in await self._fetch(sids)
                if m.status == "sent" and (m.date_sent or m.date_updated) >= since]

    async def close(self) -> None:
        if self.client is not None and not self._closing and self._due:
            try:
                await self.flush_due()
            except StoreError:
                pass   # the tokens stay due (re-sent at start)
        await super().close()

    # -- due tokens (gateway.store.due) -------------------------------------------------
    async def flush_due(self) -> None:
        pairs = self._due.drain()
        if not pairs:
            return
        args = [x for pair in pairs for x in pair]
        try:
            await self._submit(None, sub=("U", [], args))
        except StoreError:
            self._due.restore(pairs)
            raise

    async def messages_due(self) -> list[tuple[Message, list[str]]]:
        due = await self._read(self._c().hgetall(self.keys.due))
        tokens = {(k.decode() if isinstance(k, bytes) else k): D.split(v)
                  for k, v in due.items()}
        msgs = await self._fetch(sorted(tokens))
        msgs.sort(key=lambda m: m.seq)
        return [(m, tokens[m.sid]) for m in msgs if tokens[m.sid]]

    # -- DLR map --------------------------------------------------------------------------
    def map_carrier_id_nowait(self, carrier: str, carrier_message_id: str, sid: str) -> None:
        key = self.keys.dlr(carrier, carrier_message_id)
        self._c()
        self._pending_map[key] = sid

        def done(_result, _error):
            if self._pending_map.get(key) == sid:
                del self._pending_map[key]

        ttl = int(DLR_TTL * 1000)
        self._push(_Op(None, done, waited=False, sub=("M", [key], [sid, ttl])))

    async def sid_for_carrier_id(self, carrier: str, carrier_message_id: str) -> str | None:
        key = self.keys.dlr(carrier, carrier_message_id)
        sid = self._pending_map.get(key)
        if sid is not None:
            return sid
        value = await self._read(self._c().get(key))
        return value.decode() if value is not None else None

    # -- kv -------------------------------------------------------------------------------
    async def kv_put(self, ns: str, key: str, value: dict) -> None:
        data = orjson.dumps(value)
        await self._submit(lambda p: p.hset(self.keys.kv(ns), {key: data}))

    async def kv_get(self, ns: str, key: str) -> dict | None:
        value = await self._read(self._c().hget(self.keys.kv(ns), key))
        return orjson.loads(value) if value is not None else None

    async def kv_delete(self, ns: str, key: str) -> None:
        await self._submit(lambda p: p.hdel(self.keys.kv(ns), [key]))

    async def kv_items(self, ns: str) -> list[tuple[str, dict]]:
        items = await self._read(self._c().hgetall(self.keys.kv(ns)))
        return sorted((k.decode(), orjson.loads(v)) for k, v in items.items())
