"""The shared RTP send pacer: one task per trio run sends the next 20 ms frame of every
playing ``RtpSession`` on one absolute grid (no drift, one wakeup per tick for all calls).

Owns: ``PlayJob`` (one ``RtpSession.play`` in progress) and ``pacer()`` (the run's
``Pacer``, started on first use as a trio system task, ending when no job is left).

Rules: a job sends through its session's ``_send``/``_resume_timestamp`` (same module
family, private by convention); when the pacer falls more than 100 ms behind (CPU
starved) it re-anchors instead of bursting. Error handling: none here: send errors are
counted by the session; a cancelled pacer finishes every job as stopped.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import trio

from gateway.codec import rtp as rtpc

if TYPE_CHECKING:
    from gateway.io.rtp import RtpSession


class PlayJob:
    """One ``play`` in progress: the pacer calls ``step`` once per 20 ms tick."""

    __slots__ = ("session", "audio", "pos", "done", "stopped", "first")

    def __init__(self, session: RtpSession, audio: bytes) -> None:
        self.session, self.audio, self.pos = session, audio, 0
        self.done = trio.Event()
        self.stopped = False
        self.first = True

    def step(self, tick: float) -> bool:
        """Send the next frame; False once the audio has played out (one tick after the
        last frame was sent)."""
        if self.done.is_set():
            return False
        s, n = self.session, rtpc.FRAME_SAMPLES
        if self.pos >= len(self.audio):
            self.done.set()
            return False
        if self.first:
            s._resume_timestamp(tick)
        s._send(self.audio[self.pos:self.pos + n], s.payload_type, self.first, s._ts)
        s._ts = (s._ts + n) & 0xFFFFFFFF
        s._last_tx = tick
        self.pos += n
        self.first = False
        return True

    def finish(self, stopped: bool) -> None:
        if not self.done.is_set():
            self.stopped = stopped
            self.done.set()


class Pacer:
    """One task per trio run sends the next frame of every playing session on a shared
    absolute 20 ms grid (one wakeup per tick for all calls, no drift). When it falls more
    than 100 ms behind (CPU starved) it re-anchors instead of bursting."""

    def __init__(self) -> None:
        self.jobs: list[PlayJob] = []
        self.running = False

    def add(self, job: PlayJob) -> None:
        self.jobs.append(job)
        if not self.running:
            self.running = True
            trio.lowlevel.spawn_system_task(self._loop, name="rtp-pacer")

    async def _loop(self) -> None:
        try:
            tick = trio.current_time()
            while self.jobs:
                self.jobs = [j for j in self.jobs if j.step(tick)]
                tick += rtpc.FRAME_SECONDS
                now = trio.current_time()
                if now - tick > 0.1:
                    tick = now
                await trio.sleep_until(tick)
        finally:
            self.running = False
            for j in self.jobs:
                j.finish(stopped=True)
            self.jobs = []


_PACER: trio.lowlevel.RunVar = trio.lowlevel.RunVar("rtp_pacer")


def pacer() -> Pacer:
    try:
        return _PACER.get()
    except LookupError:
        p = Pacer()
        _PACER.set(p)
        return p
