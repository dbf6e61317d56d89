"""Conference audio mixing, sans-I/O: G.711 frames in, one mixed G.711 frame per
participant out per 20 ms tick.

Owns: ``Mixer`` — participants by key (call SID), each with its codec (μ-law/A-law) and a
mute flag; ``push`` (a received frame of any length, decoded to linear and cut into
160-sample frames), ``inject`` (a tone everyone hears: join/leave beeps), ``tick`` (the
next 20 ms for everyone).

Rules: no trio, no clock, no sockets: the caller decides when a tick happens. Each
participant hears the sum of every *other* unmuted participant's current frame plus the
injected tone, clipped to 16 bits, encoded in its own law (so nobody hears themself).
A participant with nothing buffered this tick contributes silence (no waiting for late
frames: a conference must not stall on one bad link). Each input queue holds at most
``max_frames`` frames; older ones are dropped (bounded latency when a sender runs fast).
Muted participants still hear the room; their pushes are discarded.
Error handling: none needed; unknown keys in ``push`` are ignored (a frame racing a
leave).
"""

from __future__ import annotations

from collections import deque

import numpy as np

from gateway.codec import g711

FRAME = 160                              # samples per 20 ms at 8 kHz
_SILENT = np.zeros(FRAME, dtype=np.int32)


class _Part:
    __slots__ = ("alaw", "muted", "queue", "partial")

    def __init__(self, alaw: bool, muted: bool) -> None:
        self.alaw, self.muted = alaw, muted
        self.queue: deque[np.ndarray] = deque()
        self.partial = np.zeros(0, dtype=np.int16)


class Mixer:
    def __init__(self, max_frames: int = 5) -> None:
        self.max_frames = max_frames
        self.parts: dict[str, _Part] = {}
        self._tone: deque[np.ndarray] = deque()
        self.dropped = 0                 # input frames dropped for latency

    def __len__(self) -> int:
        return len(self.parts)

    def add(self, key: str, *, alaw: bool = False, muted: bool = False) -> None:
        self.parts[key] = _Part(alaw, muted)

    def remove(self, key: str) -> None:
        self.parts.pop(key, None)

    def set_muted(self, key: str, muted: bool) -> None:
        part = self.parts.get(key)
        if part is not None:
            part.muted = muted
            if muted:
                part.queue.clear()

    def push(self, key: str, payload: bytes, alaw: bool) -> None:
        """A received G.711 frame from ``key``."""
        part = self.parts.get(key)
        if part is None or part.muted or not payload:
            return
        pcm = g711.alaw_decode(payload) if alaw else g711.ulaw_decode(payload)
        samples = np.frombuffer(pcm, dtype="<i2")
        if len(part.partial):
            samples = np.concatenate((part.partial, samples))
        whole = len(samples) - len(samples) % FRAME
        for i in range(0, whole, FRAME):
            part.queue.append(samples[i:i + FRAME])
        part.partial = samples[whole:].copy()
        while len(part.queue) > self.max_frames:
            part.queue.popleft()
            self.dropped += 1

    def inject(self, pcm16: bytes) -> None:
        """Linear audio (8 kHz PCM16 LE) that every participant hears, mixed in frame by
        frame from the next tick on (queued after any tone still playing)."""
        samples = np.frombuffer(pcm16[: len(pcm16) & ~1], dtype="<i2")
        pad = (-len(samples)) % FRAME
        if pad:
            samples = np.concatenate((samples, np.zeros(pad, dtype=np.int16)))
        for i in range(0, len(samples), FRAME):
            self._tone.append(samples[i:i + FRAME].astype(np.int32))

    def tick(self) -> dict[str, bytes]:
        """The next 20 ms: {key: a 160-byte G.711 frame in that participant's law}."""
        own: dict[str, np.ndarray] = {}
        total = self._tone.popleft() if self._tone else _SILENT
        for key, part in self.parts.items():
            if part.queue:
                frame = part.queue.popleft().astype(np.int32)
                own[key] = frame
                total = total + frame
        out: dict[str, bytes] = {}
        cache: dict[tuple[bool, int], bytes] = {}
        for key, part in self.parts.items():
            mine = own.get(key)
            if mine is None:                         # hears the whole mix: shared encode
                ck = (part.alaw, 0)
                enc = cache.get(ck)
                if enc is None:
                    enc = cache[ck] = _encode(total, part.alaw)
                out[key] = enc
            else:
                out[key] = _encode(total - mine, part.alaw)
        return out


def _encode(mix: np.ndarray, alaw: bool) -> bytes:
    pcm = np.clip(mix, -32768, 32767).astype("<i2").tobytes()
    return g711.alaw_encode(pcm) if alaw else g711.ulaw_encode(pcm)
