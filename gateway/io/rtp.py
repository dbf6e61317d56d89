"""RtpSession: one G.711 RTP stream on a trio UDP socket (RFC 3550 / 3551 / 4733).

Owns: binding a port from a configured range, the receive loop (symmetric-RTP latching,
RFC 4733 digits, reorder-and-record), paced playback, barge-in (``stop_play``), sending
digits, silence detection and ``stats`` (``RtpSession.totals()`` sums them process-wide).
Paced playback goes through ``rtp_pacer`` (one shared 20 ms grid for every call).

Rules: one socket per session, remote addresses are IP literals (from SDP; no DNS here).
The receive loop runs in the nursery given to ``open`` (else as a trio system task) and
ends on ``close``. One sender at a time (play and send_digits share a lock). Timestamps
follow wall time across pauses. Symmetric RTP: the first packet from an address other
than the SDP one latches the remote (NAT); later packets from other sources are dropped.
Error handling: undecodable or foreign packets are dropped and counted; send errors (ICMP
unreachable) are counted, never raised; no retries.
"""
from __future__ import annotations

import errno
import math
import random
import socket as _stdsocket

import trio

from gateway.codec import g711
from gateway.codec import rtp as rtpc
from gateway.io.rtp_pacer import PlayJob, pacer

_SILENCE_FRAME = g711.silence(rtpc.FRAME_SAMPLES)
_SILENCE_PCM = bytes(2 * rtpc.FRAME_SAMPLES)
_REORDER_DEPTH = 4               # packets held to put late arrivals back in order
_MAX_GAP_FILL = 50               # lost frames filled with silence (1 s); bigger gap = reset


class PortsExhausted(OSError):
    """Every port in the configured RTP range is in use."""


class RtpSession:
    _cursor: dict[tuple[str, int, int], int] = {}
    _live: set[RtpSession] = set()                 # open sessions (process-wide)
    _closed_totals: dict[str, int] = {}            # stats of closed sessions, summed

    @classmethod
    def totals(cls) -> dict[str, int]:
        """Process-wide ``stats`` summed over every session, open or closed (benchmarks,
        diagnostics)."""
        out = dict(cls._closed_totals)
        for s in cls._live:
            for k, v in s.stats.items():
                out[k] = out.get(k, 0) + v
        out["open_sessions"] = len(cls._live)
        return out

    def __init__(self, host: str, port_min: int = 0, port_max: int = 0, *,
                 silence_threshold: float = 300.0, ssrc: int | None = None) -> None:
        self.host = host
        self.port_min, self.port_max = port_min, max(port_min, port_max)
        self.port = 0
        self.silence_threshold = silence_threshold
        self.ssrc = random.getrandbits(32) if ssrc is None else ssrc
        self.remote: tuple[str, int] | None = None
        self.payload_type = rtpc.PT_PCMU
        self.dtmf_pt: int | None = rtpc.DEFAULT_DTMF_PT
        self.latched = False
        self.stats = {"packets_in": 0, "packets_out": 0, "bytes_in": 0, "bytes_out": 0,
                      "lost": 0, "late": 0, "dup": 0, "dropped": 0, "dtmf_in": 0,
                      "dtmf_out": 0, "send_errors": 0}
        self._sock: trio.socket.SocketType | None = None
        self._raw: _stdsocket.socket | None = None
        self._seq = random.getrandbits(16)
        self._ts = random.getrandbits(32)
        self._last_tx: float | None = None        # trio time of the last frame's slot
        self._tx_lock = trio.Lock()
        self._recv_scope = trio.CancelScope()
        self._closed = False
        self._dtmf = rtpc.DtmfReceiver()
        self._digits_tx, self.digits = trio.open_memory_channel[str](64)
        # receive ordering (extended sequence numbers)
        self._rx_ssrc: int | None = None
        self._rx_max: int | None = None            # highest extended seq seen
        self._rx_flushed: int | None = None        # last extended seq released in order
        self._pending: dict[int, tuple[bytes, bool]] = {}   # ext seq -> (payload, alaw)
        # recording
        self._recording = False
        self._rec: list[bytes] = []
        self._last_voice = 0.0

    # -- setup ----------------------------------------------------------------------

    async def open(self, nursery: trio.Nursery | None = None) -> int:
        """Bind a port from the range (next one on EADDRINUSE); start receiving."""
        raw = _stdsocket.socket(_stdsocket.AF_INET6 if ":" in self.host
                                else _stdsocket.AF_INET, _stdsocket.SOCK_DGRAM)
        try:
            raw.setblocking(False)
            self._bind(raw)
        except BaseException:
            raw.close()
            raise
        self._raw = raw                       # sync, non-blocking sendto from play()
        self._sock = trio.socket.from_stdlib_socket(raw)
        self.port = raw.getsockname()[1]
        RtpSession._live.add(self)
        await trio.lowlevel.checkpoint()
        if nursery is not None:
            nursery.start_soon(self._recv_loop)
        else:
            trio.lowlevel.spawn_system_task(self._recv_loop)
        return self.port

    def _bind(self, sock: _stdsocket.socket) -> None:
        if self.port_min == 0:
            sock.bind((self.host, 0))
            return
        key = (self.host, self.port_min, self.port_max)
        span = self.port_max - self.port_min + 1
        start = self._cursor.get(key, 0)
        for i in range(span):
            port = self.port_min + (start + i) % span
            try:
                sock.bind((self.host, port))
            except OSError as exc:
                if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                    continue
                raise
            self._cursor[key] = (start + i + 1) % span
            return
        raise PortsExhausted(errno.EADDRINUSE, f"no free RTP port in {self.port_min}-"
                             f"{self.port_max} on {self.host}")

    def set_remote(self, addr: tuple[str, int], payload_type: int,
                   dtmf_pt: int | None = rtpc.DEFAULT_DTMF_PT, *,
                   codec: str | None = None) -> None:
        """Where to send (from the SDP) and the negotiated payload types. ``codec``
        ("PCMU"/"PCMA") is needed only for a dynamic payload type."""
        self.remote = (addr[0], int(addr[1]))
        self.payload_type = payload_type
        self.dtmf_pt = dtmf_pt
        name = (codec or ("PCMA" if payload_type == rtpc.PT_PCMA else "PCMU")).upper()
        self._alaw = name == "PCMA"
        self.latched = False

    _alaw = False

    @property
    def alaw(self) -> bool:
        """The negotiated audio codec is PCMA (else PCMU)."""
        return self._alaw

    #: called with (payload, is_alaw) for every new audio frame as it arrives, before
    #: reordering (a relay: the far end's jitter buffer orders); exceptions drop the frame
    on_audio = None

    def _is_new(self, data: bytes) -> bool:
        """Not a duplicate or a frame already released (cheap pre-check for relays)."""
        if self._rx_max is None or int.from_bytes(data[8:12], "big") != self._rx_ssrc:
            return True
        seq = (data[2] << 8) | data[3]
        ext = self._rx_max + ((seq - self._rx_max + 0x8000) & 0xFFFF) - 0x8000
        return ext > self._rx_flushed and ext not in self._pending

    # -- receive --------------------------------------------------------------------

    async def _recv_loop(self) -> None:
        with self._recv_scope:
            raw, burst = self._raw, 0
            try:
                while True:
                    try:
                        data, src = raw.recvfrom(2048)
                    except BlockingIOError:
                        burst = 0
                        await trio.lowlevel.wait_readable(raw)
                        continue
                    try:
                        self._on_datagram(data, src)
                    except Exception:                  # a bug must not end the call's media
                        self.stats["dropped"] += 1
                    burst += 1
                    if burst >= 64:                     # a flood must not starve others
                        burst = 0
                        await trio.lowlevel.checkpoint()
            except (OSError, trio.ClosedResourceError):
                pass
            finally:
                self._flush(all_=True)

    def _on_datagram(self, data: bytes, src) -> None:
        remote = self.remote
        if remote is None:
            self.stats["dropped"] += 1
            return
        if (src[0], src[1]) != remote:
            if self.latched:
                self.stats["dropped"] += 1
                return
            self.remote = (src[0], src[1])      # symmetric RTP: follow the NAT mapping
        self.latched = True
        if len(data) < 12 or data[0] >> 6 != 2:
            self.stats["dropped"] += 1
            return
        self.stats["packets_in"] += 1
        self.stats["bytes_in"] += len(data)
        pt = data[1] & 0x7F
        if pt == self.dtmf_pt:
            try:
                pkt = rtpc.parse(data)
                digit = self._dtmf.feed(pkt.ssrc, pkt.timestamp, pkt.payload)
            except rtpc.RtpError:
                self.stats["dropped"] += 1
                return
            if digit is not None:
                self.stats["dtmf_in"] += 1
                try:
                    self._digits_tx.send_nowait(digit)
                except (trio.WouldBlock, trio.ClosedResourceError):
                    pass
            return
        if pt not in (self.payload_type, rtpc.PT_PCMU, rtpc.PT_PCMA):
            self.stats["dropped"] += 1                 # comfort noise, unknown codecs
            return
        if data[0] & 0xF0 == 0x80:
            payload = data[12 + 4 * (data[0] & 0x0F):]
        else:
            try:
                payload = rtpc.parse(data).payload
            except rtpc.RtpError:
                self.stats["dropped"] += 1
                return
        alaw = pt == rtpc.PT_PCMA or (pt == self.payload_type and self._alaw)
        if self.on_audio is not None and self._is_new(data):
            self.on_audio(payload, alaw)
        self._on_audio(int.from_bytes(data[8:12], "big"),
                       (data[2] << 8) | data[3], payload, alaw)

    def _on_audio(self, ssrc: int, seq: int, payload: bytes, alaw: bool) -> None:
        if ssrc != self._rx_ssrc or self._rx_max is None:
            self._flush(all_=True)
            self._rx_ssrc, self._rx_max, self._rx_flushed = ssrc, seq, seq - 1
            ext = seq
        else:
            # extend the 16-bit seq to the value closest to the highest seen
            ext = self._rx_max + ((seq - self._rx_max + 0x8000) & 0xFFFF) - 0x8000
            if ext <= self._rx_flushed:
                self.stats["late"] += 1
                return
            if ext in self._pending:
                self.stats["dup"] += 1
                return
            if ext - self._rx_max > 0x1000:             # sender jumped: resync
                self._flush(all_=True)
                self._rx_flushed = ext - 1
            self._rx_max = max(self._rx_max, ext)
        self._pending[ext] = (payload, alaw)
        if self._recording and g711.rms(payload, alaw) >= self.silence_threshold:
            self._last_voice = trio.current_time()
        self._flush(all_=False)

    def _flush(self, all_: bool) -> None:
        """Release pending frames in seq order; keep the newest ``_REORDER_DEPTH``."""
        pend = self._pending
        if not pend or self._rx_flushed is None:
            return
        limit = self._rx_max if all_ else self._rx_max - _REORDER_DEPTH
        for ext in sorted(k for k in pend if k <= limit):
            gap = ext - self._rx_flushed - 1
            if gap > 0:
                self.stats["lost"] += gap
                if self._recording and gap <= _MAX_GAP_FILL:
                    self._rec.append(_SILENCE_PCM * gap)
            payload, alaw = pend.pop(ext)
            if self._recording:
                self._rec.append(g711.alaw_decode(payload) if alaw
                                 else g711.ulaw_decode(payload))
            self._rx_flushed = ext

    # -- recording ------------------------------------------------------------------

    def start_recording(self) -> None:
        self._rec = []
        self._recording = True
        self._last_voice = trio.current_time()

    def stop_recording(self) -> bytes:
        """Everything recorded since ``start_recording`` as 8 kHz PCM16 LE mono."""
        self._flush(all_=True)
        self._recording = False
        data, self._rec = b"".join(self._rec), []
        return data

    def silence_for(self) -> float:
        """Seconds since the last frame above the energy threshold (or since recording
        started)."""
        return max(0.0, trio.current_time() - self._last_voice)

    # -- send -----------------------------------------------------------------------

    def _send(self, payload: bytes, pt: int, marker: bool, ts: int) -> None:
        if self.remote is None or self._raw is None:
            return
        pkt = rtpc.pack(pt, self._seq, ts, self.ssrc, payload, marker)
        self._seq = (self._seq + 1) & 0xFFFF
        try:
            self._raw.sendto(pkt, self.remote)
        except (BlockingIOError, OSError):
            self.stats["send_errors"] += 1
            return
        self.stats["packets_out"] += 1
        self.stats["bytes_out"] += len(pkt)

    def relay(self, payload: bytes, alaw: bool) -> None:
        """Send one received G.711 frame on now (bridges), transcoded to our codec; the
        timestamp follows the frames, re-anchored to wall time after a 100 ms pause."""
        now = trio.current_time()
        first = self._last_tx is None or now - self._last_tx > 0.1
        if first:
            self._resume_timestamp(now)
        if alaw != self._alaw:
            payload = g711.ulaw_to_alaw(payload) if self._alaw else g711.alaw_to_ulaw(payload)
        self._send(payload, self.payload_type, first, self._ts)
        self._ts = (self._ts + len(payload)) & 0xFFFFFFFF
        self._last_tx = now

    def _resume_timestamp(self, now: float) -> None:
        """Advance the media clock by the time since the last frame (RFC 3550 §5.1)."""
        if self._last_tx is not None:
            frames = max(1, math.floor((now - self._last_tx) / rtpc.FRAME_SECONDS))
            self._ts = (self._ts + frames * rtpc.FRAME_SAMPLES) & 0xFFFFFFFF

    async def play(self, ulaw: bytes) -> bool:
        """Send μ-law audio in 20 ms frames (PCMA transcoded) on the shared pacer's
        absolute 20 ms grid; returns when the last frame has played out, or False at
        once when cut short by ``stop_play``."""
        frame = rtpc.FRAME_SAMPLES
        if len(ulaw) % frame:
            ulaw = bytes(ulaw) + _SILENCE_FRAME[: frame - len(ulaw) % frame]
        if self._alaw:
            ulaw = g711.ulaw_to_alaw(ulaw)
        if not ulaw:
            await trio.lowlevel.checkpoint()
            return True
        async with self._tx_lock:
            job = self._job = PlayJob(self, ulaw)
            pacer().add(job)
            try:
                await job.done.wait()
            finally:
                job.finish(stopped=True)
                self._job = None
            return not job.stopped

    _job: PlayJob | None = None

    def stop_play(self) -> None:
        """Barge-in: end the current ``play`` now (no further frames are sent)."""
        if self._job is not None:
            self._job.finish(stopped=True)

    async def send_digits(self, digits: str, duration_ms: int = 100,
                          gap_ms: int = 60) -> None:
        """RFC 4733 events, one per digit; ``w`` pauses 0.5 s (``W`` 1 s)."""
        if self.dtmf_pt is None:
            raise RuntimeError("remote did not negotiate telephone-event")
        async with self._tx_lock:
            t = trio.current_time()
            for ch in digits:
                if ch in "wW":
                    t += 0.5 if ch == "w" else 1.0
                    continue
                plan = rtpc.dtmf_event_packets(ch, duration_ms)
                await trio.sleep_until(t)
                self._resume_timestamp(t)
                event_ts = self._ts
                for i, (marker, payload) in enumerate(plan):
                    slot = t + i * rtpc.FRAME_SECONDS
                    await trio.sleep_until(slot)
                    self._send(payload, self.dtmf_pt, marker, event_ts)
                    self._last_tx = slot
                self.stats["dtmf_out"] += 1
                t += len(plan) * rtpc.FRAME_SECONDS + gap_ms / 1000
            await trio.sleep_until(t)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self in RtpSession._live:
            RtpSession._live.discard(self)
            for k, v in self.stats.items():
                RtpSession._closed_totals[k] = RtpSession._closed_totals.get(k, 0) + v
        self.stop_play()
        self._recv_scope.cancel()
        if self._sock is not None:
            self._sock.close()
        await self._digits_tx.aclose()
        await trio.lowlevel.checkpoint()
