"""``RedisStore``: the shared durable store for one or more gateways (Redis 7, coredis).

Owns: the connection to Redis, the durability check at open, and the write pipeline.
Key layout, codec and scripts live in ``redis_schema``.

Rules:
- Durability: ``open`` reads ``CONFIG GET appendonly appendfsync`` and refuses to run
  (``StoreError``) unless ``appendonly yes`` and ``appendfsync always``: only then is an
  acknowledged write on disk. An operator may accept ``everysec`` (up to ~1 s of
  acknowledged writes lost on a Redis/host crash) with ``?allow_everysec=1`` on the store
  url; that is logged at open. A server where CONFIG is disabled is refused likewise.
- Replication and failover (Sentinel, managed Redis) replicate asynchronously: a failover
  can lose writes the old primary acknowledged. ``WAITAOF`` would close that gap but needs
  Redis 7.2; this store does not use it. Run one primary with AOF on a reliable disk.
- Every write (awaited or ``*_nowait``) goes into one FIFO; a single flusher task sends
  what has accumulated as one pipeline (group commit: with ``appendfsync always`` Redis
  fsyncs once per event-loop turn, so a batch costs about one fsync). Awaited writes
  return after their pipeline answered; writes from one task apply in issue order.
- Read-your-writes on this gateway: a message saved with ``save_message_nowait`` and a
  DLR map entry written with ``map_carrier_id_nowait`` are visible to ``get_message`` /
  ``sid_for_carrier_id`` at once (kept in memory until their batch is answered).
- A create may carry a ``StreamRoute`` (``on_create``, cluster): the message enters its
  sender stream in the same script, refused with ``TwilioError(21611)`` when the
  cluster-wide queued-segment counter would pass the cap.
- TTLs (idempotency keys 24 h, DLR map 72 h) are Redis key expiries (server time).
- Url query parameters of our own (removed before connecting): ``allow_everysec=1``,
  ``prefix=<key prefix>`` (default ``gw:``; several gateway deployments may share one
  Redis with different prefixes).

Error handling: a failed pipeline raises ``StoreError`` in every waiting caller and is
logged for ``nowait`` writes (the state machine redoes that work); the next batch is tried
afresh (coredis reconnects). Scripts missing after a Redis restart are loaded again and the
affected writes retried once. A caller cancelled while waiting does not retract its write.
"""

from __future__ import annotations

import logging
from typing import NamedTuple
from urllib.parse import parse_qsl, urlencode

import coredis
import orjson
import trio
from coredis.exceptions import NoScriptError, RedisError
from coredis.tokens import PureToken

from gateway.core import errors
from gateway.core.errors import TwilioError
from gateway.core.message import QUEUED, SENDING, Message
from gateway.store import redis_schema as R
from gateway.store.base import DLR_TTL, MessageFilter, Store, StoreError
from gateway.store.sqlite_schema import day_start

log = logging.getLogger("gateway.store.redis")

IDEMPOTENCY_TTL = 24 * 3600.0
MAX_BATCH = 2000
SCAN_CHUNK = 500


def parse_url(url: str) -> tuple[str, dict[str, str]]:
    """Split our own query parameters off a redis url: (url for coredis, ours)."""
    base, _, query = url.partition("?")
    ours, theirs = {}, []
    for k, v in parse_qsl(query, keep_blank_values=True):
        if k in ("allow_everysec", "prefix"):
            ours[k] = v
        else:
            theirs.append((k, v))
    return (f"{base}?{urlencode(theirs)}" if theirs else base), ours


class StreamRoute(NamedTuple):
    """Where a message is queued in a cluster (keys of ``runtime.cluster``)."""
    stream: str
    depth: str
    marker: str
    cap: int            # segments; -1 = not checked
    segments: int
    marker_ttl: int     # s


class _Op:
    __slots__ = ("build", "done", "result", "error", "on_done")

    def __init__(self, build, on_done=None, waited=True):
        self.build = build                 # (pipeline) -> request
        self.done = trio.Event() if waited else None
        self.result = None
        self.error: BaseException | None = None
        self.on_done = on_done


class RedisStore(Store):
    backend = "redis"

    def __init__(self, url: str, *, password: str | None = None, tls: bool = False,
                 prefix: str | None = None, allow_everysec: bool | None = None,
                 max_batch: int = MAX_BATCH) -> None:
        conn_url, ours = parse_url(url)
        if tls and conn_url.startswith("redis://"):
            conn_url = "rediss://" + conn_url[len("redis://"):]
        self.url = conn_url
        self._password = password or None
        self.prefix = prefix if prefix is not None else ours.get("prefix", "gw:")
        self.allow_everysec = (allow_everysec if allow_everysec is not None
                               else ours.get("allow_everysec", "") in ("1", "true", "yes"))
        self.keys = R.Keys(self.prefix)
        self._max_batch = max_batch
        self.client: coredis.Redis | None = None
        self._ops: list[_Op] = []
        self._wake = trio.Event()
        self._idle = trio.Event()
        self._closing = False
        self._pending_map: dict[str, str] = {}
        self._pending_rows: dict[str, bytes] = {}   # sid -> value saved nowait, not answered
        self._sha: dict[str, str] = {}
        self._scripts: dict[str, str] = {n: getattr(R, n)
                                         for n in ("CREATE", "SAVE", "DELETE", "ROUTE")}
        self.batches = 0
        self.ops_written = 0
        #: ``(msg) -> StreamRoute | None`` (cluster): the sender stream a created message
        #: enters in the same script as its create
        self.on_create = None

    # -- lifecycle ------------------------------------------------------------------------
    async def open(self) -> None:
        if self.client is not None:
            return
        kw = {"password": self._password} if self._password else {}
        client = coredis.Redis.from_url(self.url, stream_timeout=10.0, connect_timeout=5.0,
                                        **kw)
        self._closing = False
        self._stop, self._stopped = trio.Event(), trio.Event()
        ready, box = trio.Event(), {}
        # the client's task group and the flusher live in a task of their own: callers
        # may close() from inside other cancel scopes (e.g. a shielded finally)
        trio.lowlevel.spawn_system_task(self._host, client, ready, box,
                                        name=f"redis-store:{self.prefix}")
        await ready.wait()
        exc = box.get("error")
        if exc is not None:
            if isinstance(exc, (RedisError, OSError)):
                raise StoreError(f"cannot open redis store {self.url}: {exc}") from exc
            raise exc

    async def _host(self, client, ready: trio.Event, box: dict) -> None:
        try:
            async with client:
                await self._check_durability(client)
                await self._load_scripts(client)
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._flusher)
                    self.client = client
                    ready.set()
                    await self._stop.wait()
                    nursery.cancel_scope.cancel()
        except Exception as exc:  # noqa: BLE001 - reported to open() or logged
            if ready.is_set():
                log.error("redis store connection task ended: %s", exc)
            while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
                exc = exc.exceptions[0]              # the task group wraps what we raised
            box["error"] = exc
        finally:
            self.client = None
            ready.set()
            self._stopped.set()

    async def _check_durability(self, client) -> None:
        try:
            cfg = await client.config_get(["appendonly", "appendfsync"])
        except RedisError as exc:
            raise StoreError(f"redis store: CONFIG GET refused ({exc}); cannot verify "
                             "appendonly/appendfsync, refusing to run") from exc
        aof = cfg.get(b"appendonly", b"").decode()
        fsync = cfg.get(b"appendfsync", b"").decode()
        if aof == "yes" and fsync == "always":
            return
        if aof == "yes" and fsync == "everysec" and self.allow_everysec:
            log.warning("redis store: appendfsync everysec accepted by allow_everysec: a "
                        "Redis or host crash can lose up to ~1 s of acknowledged writes")
            return
        raise StoreError(
            f"redis store: the server runs appendonly={aof} appendfsync={fsync}; acknowledged"
            " writes would not be durable. Configure 'appendonly yes' and 'appendfsync "
            "always' (or accept a ~1 s loss window with ?allow_everysec=1 on the store url)")

    async def _load_scripts(self, client) -> None:
        for name, source in self._scripts.items():
            sha = await client.script_load(source)
            self._sha[name] = sha.decode() if isinstance(sha, bytes) else sha

    async def register_script(self, name: str, source: str) -> str:
        """Load a Lua script now and again after a Redis restart; returns its sha."""
        self._scripts[name] = source
        await self._load_scripts(self._c())
        return self._sha[name]

    async def evalsha(self, name: str, keys: list, args: list):
        """Run a registered script now (not batched), reloading it after NOSCRIPT."""
        try:
            return await self._c().evalsha(self._sha[name], keys, args)
        except NoScriptError:
            await self._load_scripts(self._c())
            return await self._c().evalsha(self._sha[name], keys, args)

    async def close(self) -> None:
        if self.client is None:
            return
        self._closing = True
        self._wake.set()
        with trio.move_on_after(10):
            while self._ops:
                self._idle = trio.Event()
                await self._idle.wait()
        self._stop.set()
        await self._stopped.wait()

    def _c(self) -> coredis.Redis:
        if self.client is None or self._closing:
            raise StoreError("store is not open")
        return self.client

    # -- write pipeline -------------------------------------------------------------------
    def _push(self, op: _Op) -> _Op:
        self._c()
        self._ops.append(op)
        self._wake.set()
        return op

    def push_nowait(self, build, on_done=None) -> None:
        """Queue ``build(pipeline) -> request`` for the next batch; ``on_done(result,
        error)`` runs when it was answered (cluster steps: XADD, XACK, SET NX)."""
        self._push(_Op(build, on_done, waited=False))

    async def _submit(self, build, on_done=None):
        op = self._push(_Op(build, on_done))
        await op.done.wait()
        if op.error is not None:
            raise op.error
        return op.result

    async def _flusher(self) -> None:
        while True:
            if not self._ops:
                self._idle.set()
                if self._closing:
                    return
                self._wake = trio.Event()
                await self._wake.wait()
                continue
            batch, self._ops = self._ops[:self._max_batch], self._ops[self._max_batch:]
            try:
                await self._run_batch(batch)
            except Exception as exc:  # noqa: BLE001 - never let the flusher die
                err = exc if isinstance(exc, StoreError) else StoreError(f"redis write: {exc}")
                log.error("redis store batch of %d failed: %s", len(batch), exc)
                for op in batch:
                    self._finish(op, None, err)

    async def _run_batch(self, batch: list[_Op]) -> None:
        results = await self._pipeline(batch)
        retry = [(op, i) for i, (op, r) in enumerate(zip(batch, results, strict=True))
                 if isinstance(r, NoScriptError)]
        if retry:
            await self._load_scripts(self.client)
            again = await self._pipeline([op for op, _ in retry])
            for (_, i), r in zip(retry, again, strict=True):
                results[i] = r
        self.batches += 1
        self.ops_written += len(batch)
        for op, r in zip(batch, results, strict=True):
            if isinstance(r, BaseException):
                self._finish(op, None, StoreError(f"redis write failed: {r}"))
            else:
                self._finish(op, r, None)

    async def _pipeline(self, ops: list[_Op]) -> list:
        async with self.client.pipeline(transaction=False, raise_on_error=False) as pipe:
            reqs = [op.build(pipe) for op in ops]
        del reqs
        return list(pipe.results or ())

    def _finish(self, op: _Op, result, error) -> None:
        op.result, op.error = result, error
        if op.on_done is not None:
            try:
                op.on_done(result, error)
            except Exception:  # noqa: BLE001
                log.exception("redis store completion hook failed")
        elif error is not None and op.done is None:
            log.warning("redis store nowait write lost: %s", error)
        if op.done is not None:
            op.done.set()

    def _eval(self, name: str, keys: list, args: list):
        # EVAL, not EVALSHA: after a Redis restart the script cache is empty, and a
        # NOSCRIPT retry would reorder this write behind later ones of the same batch
        source = self._scripts[name]
        return lambda p: p.eval(source, keys, args)

    async def ping(self, timeout: float = 5.0) -> bool:
        with trio.move_on_after(timeout):
            try:
                await self._submit(lambda p: p.incr(self.keys.ping))
            except StoreError:
                return False
            return True
        return False

    # -- messages -------------------------------------------------------------------------
    async def create_message(self, msg: Message, idempotency_key: str | None = None
                             ) -> tuple[Message, bool]:
        keys = self.keys.msg_keys(msg)
        keys.append(self.keys.idem(msg.account_sid, idempotency_key or "-"))
        args = [msg.sid, msg.status, R.pclass(msg.status), R.blob_of(msg),
                int(IDEMPOTENCY_TTL * 1000), self.keys.msg_prefix,
                "1" if idempotency_key is not None else "0"]
        route = self.on_create(msg) if self.on_create is not None else None
        if route is None:
            args.append("0")
        else:                                    # one script: created and queued together
            keys += [route.stream, route.depth, route.marker]
            args += ["1", route.cap, route.segments, route.marker_ttl]
        op = self._push(_Op(self._eval("CREATE", keys, args)))
        await op.done.wait()
        if op.error is not None:
            raise op.error
        res = op.result
        if int(res[0]) == -2:
            raise TwilioError(errors.QUEUE_FULL)
        if int(res[0]) == 1:
            msg.seq = int(res[1])
            return msg, True
        return R.msg_of(res[1]), False

    def route_nowait(self, msg: Message, route: StreamRoute, on_done=None) -> None:
        """Queue ``msg`` on its sender stream unless it was already (``ROUTE``);
        ``on_done(result, error)``: result 1 added, 0 already routed/not pending, -1 full."""
        keys = [self.keys.msg(msg.sid), route.stream, route.depth, route.marker]
        args = [msg.sid, route.segments, route.cap, route.marker_ttl]
        self._push(_Op(self._eval("ROUTE", keys, args), on_done, waited=False))

    def _save_build(self, msg: Message):
        keys = self.keys.msg_keys(msg)
        args = [msg.sid, msg.status, R.pclass(msg.status), R.blob_of(msg), max(0, msg.seq)]
        return self._eval("SAVE", keys, args)

    async def save_message(self, msg: Message) -> None:
        seq = int(await self._submit(self._save_build(msg)))
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

        self._push(_Op(self._save_build(msg), done, waited=False))

    async def delete_message(self, sid: str) -> bool:
        msg = await self.get_message(sid)
        if msg is None:
            return False
        k = self.keys
        keys = [k.msg(sid), k.acct(msg.account_sid), k.acct_to(msg.account_sid, msg.to),
                k.acct_from(msg.account_sid, msg.from_), k.pend, k.sent]
        return int(await self._submit(self._eval("DELETE", keys, [sid]))) == 1

    async def _read(self, req):
        self._c()
        try:
            return await req
        except RedisError as exc:
            raise StoreError(f"redis read failed: {exc}") from exc

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

    # -- DLR map --------------------------------------------------------------------------
    def map_carrier_id_nowait(self, carrier: str, carrier_message_id: str, sid: str) -> None:
        key = self.keys.dlr(carrier, carrier_message_id)
        self._c()
        self._pending_map[key] = sid

        def done(_result, _error):
            if self._pending_map.get(key) == sid:
                del self._pending_map[key]

        ttl = int(DLR_TTL * 1000)
        self._push(_Op(lambda p: p.set(key, sid, px=ttl), done, waited=False))

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
