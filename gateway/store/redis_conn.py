"""The connection half of ``RedisStore``: opening and checking the server, Lua script
loading, and the write pipeline every write goes through (``RedisConnection``, the base
class of ``redis.RedisStore``, which holds the data operations).

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
  fsyncs once per event-loop turn, so a batch costs about one fsync). Consecutive data
  writes (sub-ops) in it are one ``redis_batch.BATCH`` script call. Awaited writes
  return after their pipeline answered; writes from one task apply in issue order.
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
from urllib.parse import parse_qsl, urlencode

import coredis
import trio
from coredis.exceptions import NoScriptError, RedisError

from gateway.store import redis_batch as B
from gateway.store import redis_schema as R
from gateway.store.base import StoreError

log = logging.getLogger("gateway.store.redis")

MAX_BATCH = 2000


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

class _Op:
    __slots__ = ("build", "sub", "done", "result", "error", "on_done")

    def __init__(self, build, on_done=None, waited=True, sub=None):
        self.build = build                 # (pipeline) -> request
        self.sub = sub                     # or (code, keys, args): a ``BATCH`` sub-op
        self.done = trio.Event() if waited else None
        self.result = None
        self.error: BaseException | None = None
        self.on_done = on_done

class RedisConnection:
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
        self._sha: dict[str, str] = {}
        self._scripts: dict[str, str] = {}         # registered (cluster) scripts
        self.batches = 0
        self.ops_written = 0
        self.script_calls = 0                      # BATCH calls (several sub-ops each)
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

    async def _submit(self, build, on_done=None, sub=None):
        op = self._push(_Op(build, on_done, sub=sub))
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
        # consecutive sub-ops share one BATCH script call; other ops are sent as they are
        calls: list = []
        group = None
        for op in batch:
            if op.sub is None:
                calls.append(op)
                group = None
            else:
                if group is None or len(group) >= B.MAX_SUBOPS:
                    group = []
                    calls.append(group)
                group.append(op)
        results = await self._pipeline(calls)
        retry = [(op, i) for i, (op, r) in enumerate(zip(calls, results, strict=True))
                 if isinstance(r, NoScriptError)]
        if retry:                                # registered scripts (cluster) only
            await self._load_scripts(self.client)
            again = await self._pipeline([op for op, _ in retry])
            for (_, i), r in zip(retry, again, strict=True):
                results[i] = r
        self.batches += 1
        self.ops_written += len(batch)
        self.script_calls += sum(1 for c in calls if isinstance(c, list))
        for call, r in zip(calls, results, strict=True):
            if isinstance(call, _Op):
                self._result(call, r)
            elif isinstance(r, BaseException) or len(r) != len(call):
                for op in call:
                    self._result(op, r if isinstance(r, BaseException)
                                 else RuntimeError(f"batch answered {len(r)}/{len(call)}"))
            else:
                for op, sub in zip(call, r, strict=True):
                    if isinstance(sub, list) and sub and sub[0] == b"ERR":
                        sub = RuntimeError(sub[1].decode(errors="replace"))
                    self._result(op, sub)

    def _result(self, op: _Op, r) -> None:
        if isinstance(r, BaseException):
            self._finish(op, None, StoreError(f"redis write failed: {r}"))
        else:
            self._finish(op, r, None)

    async def _pipeline(self, calls: list) -> list:
        head = [self.keys.seq, self.keys.pend, self.keys.sent, self.keys.due]
        async with self.client.pipeline(transaction=False, raise_on_error=False) as pipe:
            for call in calls:
                if isinstance(call, _Op):
                    call.build(pipe)
                else:
                    keys, args = B.encode([op.sub for op in call], head)
                    pipe.eval(B.BATCH, keys, args)
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

    async def ping(self, timeout: float = 5.0) -> bool:
        with trio.move_on_after(timeout):
            try:
                await self._submit(lambda p: p.incr(self.keys.ping))
            except StoreError:
                return False
            return True
        return False

    async def _read(self, req):
        self._c()
        try:
            return await req
        except RedisError as exc:
            raise StoreError(f"redis read failed: {exc}") from exc
