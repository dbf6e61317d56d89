"""Status callbacks sent from a worker process.

Why: signing, form-encoding, HTTP requests and their responses for two callbacks per
message cost the event loop about a fifth of its time per message. A child process runs
its own event loop with its own ``WebhookSender`` (keep-alive pool, pipelining, retries,
override fragments, SSRF guard) on the second core; the gateway only ships each batch
of callbacks over a pipe and reads back one result per callback.

Rules:
- Only status callbacks go here (fire and forget); calls whose answer the gateway needs
  (inbound SMS TwiML, voice) stay in-process.
- Frames are ``!I`` length + msgpack. Parent → child: a list of hooks
  ``[id, kind, url, method, params, token, idem, attempt]``; child → parent: a list of
  results ``[id, ok, attempts, seconds]`` once a hook succeeded or was given up.
- The parent keeps every hook it shipped until its result arrives: the outbox record,
  metrics and the ``pending`` count are the parent's, exactly as in-process.

Error handling: if the child dies, every hook without a result is shipped again to a new
child (at least once; the receiver sees the same ``I-Twilio-Idempotency-Token``), at
most ``MAX_RESTARTS`` times a minute, then callbacks fall back to the in-process sender.
"""

from __future__ import annotations

import json
import logging
import signal
import struct
import subprocess
import time

import msgpack
import trio

from gateway.io import childproc

log = logging.getLogger("gateway.webhooks")

_LEN = struct.Struct("!I")
MAX_RESTARTS = 5
GATHER_S = 0.002          # results are sent back in batches gathered this long


def _frame(obj) -> bytes:
    data = msgpack.packb(obj, use_bin_type=True)
    return _LEN.pack(len(data)) + data


class _FrameReader:
    """Frames out of a byte stream (either side)."""

    def __init__(self) -> None:
        self.buf = bytearray()

    def feed(self, data: bytes) -> list:
        self.buf += data
        out = []
        while len(self.buf) >= 4:
            n = _LEN.unpack_from(self.buf)[0]
            if len(self.buf) < 4 + n:
                break
            out.append(msgpack.unpackb(bytes(self.buf[4:4 + n]), raw=False))
            del self.buf[:4 + n]
        return out


# -- child ------------------------------------------------------------------------------
def child_main(cfg_json: str, rfd: int, wfd: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)     # the parent decides when we stop
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    trio.run(_child, json.loads(cfg_json), rfd, wfd)


async def _child(cfg: dict, rfd: int, wfd: int) -> None:
    from gateway.io.http_client import ClientLimits, HttpClient
    from gateway.runtime.webhooks import Hook, WebhookSender

    client = HttpClient(limits=ClientLimits(**cfg["limits"]), allow_private=cfg["allow_private"])
    sender = WebhookSender(client, max_attempts=cfg["max_attempts"], workers=cfg["workers"])
    inp, out = trio.lowlevel.FdStream(rfd), trio.lowlevel.FdStream(wfd)
    results: list = []
    ready = trio.Event()
    started: dict[int, float] = {}

    def finished(hook, ok: bool) -> None:
        hid = hook.hid
        results.append([hid, ok, hook.attempt, time.monotonic() - started.pop(hid, 0.0)])
        ready.set()

    sender.on_finish = finished

    async def reader() -> None:
        frames = _FrameReader()
        while True:
            data = await inp.receive_some(65536)
            if not data:
                raise SystemExit(0)                       # parent gone or closing
            for batch in frames.feed(data):
                now = time.monotonic()
                for hid, kind, url, method, params, token, idem, attempt in batch:
                    hook = Hook(kind, url, method, [tuple(p) for p in params], token, idem, attempt)
                    hook.hid = hid
                    started[hid] = now
                    sender.enqueue(hook)

    async def writer() -> None:
        nonlocal ready, results
        while True:
            await ready.wait()
            await trio.sleep(GATHER_S)
            ready = trio.Event()
            batch, results = results, []
            await out.send_all(_frame(batch))

    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(sender.run)
            nursery.start_soon(reader)
            nursery.start_soon(writer)
    except* SystemExit:
        pass
    finally:
        await client.aclose()


# -- parent -----------------------------------------------------------------------------
class RemoteHooks:
    """Ships status hooks to the child; ``on_result(hook, ok, attempts, seconds)``."""

    def __init__(self, cfg: dict, on_result) -> None:
        self.cfg = cfg
        self.on_result = on_result
        self.inflight: dict[int, object] = {}
        self._queue: list = []
        self._wake = trio.Event()
        self._ids = 0
        self._restarts: list[float] = []
        self._proc: subprocess.Popen | None = None
        self._fds: tuple[int, int] | None = None
        self.failed = False

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def submit(self, hook) -> None:
        self._ids += 1
        hook.hid = self._ids
        self.inflight[self._ids] = hook
        self._queue.append(hook)
        self._wake.set()

    async def run(self, task_status=trio.TASK_STATUS_IGNORED) -> None:
        self._spawn()
        task_status.started()
        try:
            while True:
                try:
                    async with trio.open_nursery() as nursery:
                        nursery.start_soon(self._shipper)
                        await self._reader()
                        nursery.cancel_scope.cancel()
                except OSError as exc:
                    log.error("webhook worker pipe failed: %s", exc)
                if not self._respawn():
                    self.failed = True
                    return
        finally:
            self._stop()

    def _spawn(self) -> None:
        self._proc, p_read, p_write = childproc.spawn(
            "gateway.runtime.webhook_proc", "child_main", json.dumps(self.cfg))
        self._fds = (p_read, p_write)

    def _respawn(self) -> bool:
        """A new child after one died; every hook without a result is shipped again."""
        now = time.monotonic()
        self._restarts = [t for t in self._restarts if now - t < 60.0]
        self._stop()
        if len(self._restarts) >= MAX_RESTARTS:
            log.error("webhook worker keeps dying: callbacks go in-process")
            return False
        self._restarts.append(now)
        self._spawn()
        self._queue = list(self.inflight.values())
        self._wake.set()
        log.warning("webhook worker restarted pid=%s resent=%d", self.pid, len(self._queue))
        return True

    def _stop(self) -> None:
        if self._fds is not None:
            childproc.close(*self._fds)
            self._fds = None
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()

    async def _shipper(self) -> None:
        wfd = self._fds[1]
        while True:
            if not self._queue:
                self._wake = trio.Event()
                await self._wake.wait()
            batch, self._queue = self._queue, []
            data = _frame([[h.hid, h.kind, h.url, h.method, h.params, h.token, h.idem,
                            h.attempt] for h in batch])
            await childproc.write_all(wfd, data)

    async def _reader(self) -> None:
        rfd = self._fds[0]
        frames = _FrameReader()
        while True:
            try:
                data = await childproc.read_some(rfd)
            except EOFError:
                log.error("webhook worker exited (pid %s)", self.pid)
                return
            for batch in frames.feed(data):
                for hid, ok, attempts, seconds in batch:
                    hook = self.inflight.pop(hid, None)
                    if hook is not None:
                        hook.attempt = attempts
                        self.on_result(hook, ok, attempts, seconds)
