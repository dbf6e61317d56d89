"""Outgoing webhooks: signed status callbacks (fire and forget, retried) and signed
request/response calls (inbound SMS, TwiML redirects) whose answer the caller needs.

Rules:
- Every request is form-encoded and carries ``X-Twilio-Signature`` computed with the
  account's auth token over the URL *without* its connection-override fragment, and the
  same ``I-Twilio-Idempotency-Token`` on every attempt of one event.
- Status callbacks never block the sender: ``enqueue`` appends to an in-memory queue
  drained by a fixed pool of worker tasks over the keep-alive client pool.
- Durable (optional ``outbox``, ``runtime.callback_outbox``): each status callback is
  recorded in the store when enqueued and cleared on 2xx or when given up; ``run``
  re-enqueues the recorded ones (same idempotency token) before reporting started.

Error handling: status callbacks are retried on connect errors, timeouts and 5xx with
exponential backoff (0.5 s doubling, cap 30 s) up to ``[webhooks] max_attempts``
attempts; a Twilio override fragment (``#rc=..&rp=..&ct=..&rt=..&tt=..``) on the URL
wins (``rc`` retries = attempts - 1, ``rp`` picks what is retried). Retries wait in a
timer heap, not in a worker, so one dead endpoint never starves the others.
"""

from __future__ import annotations

import functools
import heapq
import itertools
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import trio

from gateway.core import signature
from gateway.core.ids import new_token
from gateway.io.http_client import HttpClient, HttpClientError
from gateway.io.http_pipeline import request_many
from gateway.observability.metrics import labelled, observe_many
from gateway.runtime.webhook_encoding import form_encode, sign  # noqa: F401 (re-exported)
from gateway.runtime.webhook_proc import RemoteHooks

log = logging.getLogger("gateway.webhooks")

PIPELINE_MAX = 32         # status callbacks written per connection per send
RETRY_BASE_S = 0.5
RETRY_CAP_S = 30.0
_DEFAULT_POLICY = frozenset(("ct", "rt", "5xx"))     # what is retried without ``rp``


@dataclass(slots=True)
class Hook:
    kind: str                 # status | inbound | fallback | voice
    url: str                  # as configured, fragment included
    method: str
    params: list[tuple[str, str]]
    token: str                # auth token used to sign
    idem: str = field(default_factory=new_token)
    attempt: int = 0
    hid: int = 0              # id while shipped to the worker process (webhook_proc)


@dataclass(slots=True)
class HookResult:
    status: int
    body: bytes
    content_type: str


class WebhookError(Exception):
    """The webhook could not be retrieved: ``code`` is Twilio's (11200, 11205, 11217…)."""

    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code = code


@functools.lru_cache(maxsize=4096)
def _split(url: str):
    """(URL without its override fragment, parsed overrides); cached per URL."""
    return signature.strip_fragment(url)[0], signature.parse_overrides(url)


@functools.lru_cache(maxsize=4096)
def _origin(url: str) -> str | None:
    """``scheme://host:port`` of a plain http(s) URL, None when it carries an override
    fragment (its own timeouts and retry policy: never pipelined)."""
    if "#" in url or not url.startswith(("http://", "https://")):
        return None
    end = url.find("/", url.find("//") + 2)
    return url if end < 0 else url[:end]


def _retry_kind(exc: BaseException | None, status: int | None) -> str | None:
    """Classify a failure in Twilio's ``rp`` vocabulary (ct, rt, 5xx, 4xx)."""
    if exc is not None:
        name = type(exc).__name__
        if name in ("ConnectError", "ConnectTimeout", "BlockedAddress"):
            return "ct"
        return "rt"
    if status is not None and status >= 500:
        return "5xx"
    if status is not None and status >= 400:
        return "4xx"
    return None


class WebhookSender:
    def __init__(
        self,
        client: HttpClient,
        *,
        max_attempts: int = 5,
        workers: int = 64,
        metrics=None,
        clock: Callable[[], float] = time.monotonic,
        outbox=None,
        remote_cfg: dict | None = None,
    ):
        """``remote_cfg``: send status callbacks from a worker process
        (``runtime.webhook_proc``) configured with it; None sends them in-process."""
        self.client = client
        self.remote = RemoteHooks(remote_cfg, self._remote_done) if remote_cfg else None
        #: ``fn(hook, ok)`` when a status hook succeeded or was given up (worker side)
        self.on_finish: Callable[[Hook, bool], None] | None = None
        self.outbox = outbox          # runtime.callback_outbox.CallbackOutbox | None
        self.max_attempts = max(1, max_attempts)
        self.workers = workers
        self.metrics = metrics
        self._queue: deque[Hook] = deque()
        self._idle = trio.lowlevel.ParkingLot()   # workers waiting for a hook
        self._waking = 0          # workers unparked that have not run yet
        self._timers: list[tuple[float, int, Hook]] = []
        self._timer_wake = trio.Event()
        self._counter = itertools.count()
        self.pending = 0          # hooks enqueued or waiting for a retry
        self._m_requests = labelled(metrics.webhook_requests) if metrics is not None else None
        self._m_duration = labelled(metrics.webhook_duration) if metrics is not None else None
        self._m_retries = labelled(metrics.webhook_retries) if metrics is not None else None
        self.delivered = 0
        self.failed = 0

    # -- status callbacks ---------------------------------------------------------------
    def enqueue(self, hook: Hook) -> None:
        if self.outbox is not None and hook.kind == "status":
            self.outbox.record(hook)
        if self.remote is not None and hook.kind == "status" and not self.remote.failed:
            self.pending += 1
            self.remote.submit(hook)
            return
        self._push(hook)

    def _push(self, hook: Hook) -> None:
        self.pending += 1
        self._queue.append(hook)
        self._wake()

    def _wake(self) -> None:
        """Unpark a worker when the ones already woken cannot take all that is queued
        (each takes up to PIPELINE_MAX): a burst of N hooks wakes ~N/32 workers, not N
        that mostly find the queue empty and park again."""
        if self._idle and self._waking * PIPELINE_MAX < len(self._queue):
            self._waking += 1
            self._idle.unpark(count=1)

    async def run(self, task_status=trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            if self.outbox is not None:
                await nursery.start(self.outbox.run)
                restored = await self.outbox.load(Hook)
                for hook in restored:
                    if self.remote is not None:
                        self.pending += 1
                        self.remote.submit(hook)
                    else:
                        self._push(hook)
                if restored:
                    log.info("status callbacks restored count=%d", len(restored))
            if self.remote is not None:
                await nursery.start(self._run_remote)
            for _ in range(self.workers):
                nursery.start_soon(self._worker)
            nursery.start_soon(self._timer_loop)
            task_status.started()

    async def _run_remote(self, task_status=trio.TASK_STATUS_IGNORED) -> None:
        await self.remote.run(task_status=task_status)
        # the worker kept dying: what it still held is sent in-process from now on
        for hook in list(self.remote.inflight.values()):
            self.pending -= 1
            self._push(hook)
        self.remote.inflight.clear()

    def _remote_done(self, hook: Hook, ok: bool, attempts: int, seconds: float) -> None:
        if self.outbox is not None:
            self.outbox.done(hook)
        self.pending -= 1
        retries = max(0, attempts - 1)
        if retries:
            self._count(hook.kind, "retry", retries)
            if self._m_retries is not None:
                self._m_retries(hook.kind).inc(retries)
        self._observe(hook.kind, seconds / max(1, attempts))
        if ok:
            self.delivered += 1
            self._count(hook.kind, "ok")
        else:
            self.failed += 1
            self._count(hook.kind, "failed")
            log.warning("webhook failed kind=%s attempts=%d", hook.kind, attempts)

    async def wait_idle(self, timeout: float) -> bool:
        """Wait until nothing is queued or retrying (graceful stop); False on timeout."""
        with trio.move_on_after(timeout):
            while self.pending:
                await trio.sleep(0.02)
            return True
        return False

    async def _worker(self) -> None:
        queue = self._queue
        while True:
            while not queue:
                await self._idle.park()
                self._waking -= 1           # (an unparked task is not cancelled)
            hook = queue.popleft()
            origin = _origin(hook.url)
            if origin is None or not queue:
                if queue:
                    self._wake()            # what is left needs another worker
                await self._attempt([hook])
                continue
            # pipeline: the hooks queued right behind it for the same receiver
            batch = [hook]
            while queue and len(batch) < PIPELINE_MAX and _origin(queue[0].url) == origin:
                batch.append(queue.popleft())
            if queue:
                self._wake()
            await self._attempt(batch)

    async def _attempt(self, hooks: list[Hook]) -> None:
        url0, ov = _split(hooks[0].url)
        t0 = time.perf_counter()
        if len(hooks) == 1:
            try:
                results: list = [await self._send(hooks[0], url0, ov)]
            except HttpClientError as e:
                results = [e]
        else:
            reqs = []
            for hook in hooks:
                url = _split(hook.url)[0]
                reqs.append((url, self._headers(hook, url, True), form_encode(hook.params)))
            results = await request_many(
                self.client, "POST", reqs, connect_timeout=ov.ct / 1000.0,
                read_timeout=ov.rt / 1000.0, total_timeout=ov.tt / 1000.0,
            )
        n = len(hooks)
        elapsed = (time.perf_counter() - t0) / n
        kind0 = hooks[0].kind
        if all(h.kind == kind0 for h in hooks):     # one metric update per batch
            if self._m_duration is not None:
                observe_many(self._m_duration(kind0), elapsed, n)
            ok = 0
            for hook, res in zip(hooks, results, strict=True):
                ok += self._outcome(hook, res)
            if ok:
                self._count(kind0, "ok", ok)
            return
        for hook, res in zip(hooks, results, strict=True):
            self._observe(hook.kind, elapsed)
            if self._outcome(hook, res):
                self._count(hook.kind, "ok")

    def _outcome(self, hook: Hook, res) -> bool:
        """Settle one attempt; True when it succeeded (the caller counts those)."""
        hook.attempt += 1
        if isinstance(res, HttpClientError):
            exc, status = res, None
        else:
            exc, status = None, res.status
        kind = None if status is not None and status < 400 else _retry_kind(exc, status)
        outbox = self.outbox if hook.kind == "status" else None
        if kind is None:
            if outbox is not None:
                outbox.done(hook)
            self.pending -= 1
            self.delivered += 1
            if self.on_finish is not None:
                self.on_finish(hook, True)
            return True
        _, ov = _split(hook.url)
        attempts = ov.rc + 1 if "rc" in ov.present else self.max_attempts
        policy = ov.rp if "rp" in ov.present else _DEFAULT_POLICY
        if (kind in policy or "all" in policy) and hook.attempt < attempts:
            self._count(hook.kind, "retry")
            if self._m_retries is not None:
                self._m_retries(hook.kind).inc()
            delay = min(RETRY_CAP_S, RETRY_BASE_S * (2 ** (hook.attempt - 1)))
            heapq.heappush(self._timers, (trio.current_time() + delay, next(self._counter), hook))
            self._timer_wake.set()
            return False
        if outbox is not None:
            outbox.done(hook)
        self.pending -= 1
        self.failed += 1
        self._count(hook.kind, "failed")
        if self.on_finish is not None:
            self.on_finish(hook, False)
        log.warning(
            "webhook failed kind=%s attempts=%d reason=%s",
            hook.kind, hook.attempt, exc.__class__.__name__ if exc else f"http {status}",
        )
        return False

    async def _timer_loop(self) -> None:
        while True:
            if not self._timers:
                self._timer_wake = trio.Event()
                await self._timer_wake.wait()
                continue
            due = self._timers[0][0]
            now = trio.current_time()
            if due > now:
                self._timer_wake = trio.Event()
                with trio.move_on_after(due - now):
                    await self._timer_wake.wait()
                continue
            _, _, hook = heapq.heappop(self._timers)
            self._queue.append(hook)
            self._wake()

    # -- request/response (inbound SMS, redirects) -------------------------------------
    async def call(self, hook: Hook) -> HookResult:
        """One signed request whose response the caller needs; retried only as the URL's
        override fragment asks (Twilio's default: one retry on connect failure)."""
        url, ov = _split(hook.url)
        attempts = ov.rc + 1
        policy = ov.rp
        last: WebhookError | None = None
        for _ in range(attempts):
            hook.attempt += 1
            t0 = time.perf_counter()
            try:
                resp = await self._send(hook, url, ov)
            except HttpClientError as e:
                self._observe(hook.kind, time.perf_counter() - t0)
                kind = _retry_kind(e, None)
                last = WebhookError(11205 if kind == "ct" else 11200, f"{type(e).__name__}: {e}")
                if kind in policy or "all" in policy:
                    self._count(hook.kind, "retry")
                    continue
                break
            self._observe(hook.kind, time.perf_counter() - t0)
            if resp.status >= 400:
                last = WebhookError(11200 if resp.status >= 500 else 11217, f"HTTP {resp.status}")
                kind = _retry_kind(None, resp.status)
                if kind in policy or "all" in policy:
                    self._count(hook.kind, "retry")
                    continue
                break
            self._count(hook.kind, "ok")
            ctype = resp.headers.get("content-type", "")
            return HookResult(resp.status, resp.body, ctype)
        self._count(hook.kind, "failed")
        raise last or WebhookError(11200, "no attempt made")

    # -- shared ----------------------------------------------------------------------
    def _headers(self, hook: Hook, url: str, form: bool) -> list[tuple[str, str]]:
        sig = sign(hook.token, url, hook.params if hook.method == "POST" else [])
        headers = [
            ("X-Twilio-Signature", sig),
            ("I-Twilio-Idempotency-Token", hook.idem),
            ("User-Agent", "TwilioProxy/1.1"),
            ("Accept", "*/*"),
        ]
        if form:
            headers.append(("Content-Type", "application/x-www-form-urlencoded; charset=utf-8"))
        return headers

    async def _send(self, hook: Hook, url: str, ov):
        timeouts = dict(
            connect_timeout=ov.ct / 1000.0, read_timeout=ov.rt / 1000.0, total_timeout=ov.tt / 1000.0
        )
        if hook.method == "GET":
            headers = self._headers(hook, url, False)
            sep = "&" if "?" in url else "?"
            target = url + sep + form_encode(hook.params).decode() if hook.params else url
            return await self.client.request("GET", target, headers=headers, body=b"", **timeouts)
        headers = self._headers(hook, url, True)
        body = form_encode(hook.params)
        return await self.client.request("POST", url, headers=headers, body=body, **timeouts)

    def _count(self, kind: str, outcome: str, n: int = 1) -> None:
        if self._m_requests is not None:
            self._m_requests(kind, outcome).inc(n)

    def _observe(self, kind: str, seconds: float) -> None:
        if self._m_duration is not None:
            self._m_duration(kind).observe(seconds)
