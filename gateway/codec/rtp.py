"""RTP packets (RFC 3550 §5.1) and RFC 4733 telephone-events, sans-I/O.

Owns: the 12-byte RTP header (pack / parse, CSRC list and header extension skipped,
padding removed), payload type numbers for PCMU/PCMA, the 20 ms frame constants, the
telephone-event payload (parse / build), ``DtmfReceiver`` (dedupe by timestamp) and
``dtmf_event_packets`` (the packet plan for sending one digit).

Rules: pure functions and small state machines, no I/O, no clock. Error handling:
malformed packets raise ``RtpError``; callers drop them and count.
"""

from __future__ import annotations

import struct
from collections import deque
from dataclasses import dataclass

PT_PCMU = 0
PT_PCMA = 8
DEFAULT_DTMF_PT = 101
CLOCK_RATE = 8000
FRAME_SAMPLES = 160              # 20 ms at 8 kHz
FRAME_SECONDS = 0.020

DIGITS = "0123456789*#ABCD"      # event code = index (RFC 4733 §3.2)
DIGIT_TO_EVENT = {d: i for i, d in enumerate(DIGITS)}
DIGIT_TO_EVENT.update({d.lower(): i for i, d in enumerate(DIGITS) if d.isalpha()})

_HDR = struct.Struct("!BBHII")
_EVENT = struct.Struct("!BBH")


class RtpError(ValueError):
    """Not a valid RTP version-2 packet."""


@dataclass(slots=True)
class RtpPacket:
    payload_type: int
    sequence: int
    timestamp: int
    ssrc: int
    payload: bytes
    marker: bool = False
    csrc: tuple[int, ...] = ()
    extension: tuple[int, bytes] | None = None   # (profile, data) when present


def pack(payload_type: int, sequence: int, timestamp: int, ssrc: int, payload: bytes,
         marker: bool = False) -> bytes:
    """One RTP packet: V=2, no padding/extension/CSRC."""
    return _HDR.pack(0x80, (0x80 if marker else 0) | (payload_type & 0x7F),
                     sequence & 0xFFFF, timestamp & 0xFFFFFFFF, ssrc & 0xFFFFFFFF) + payload


def pack_packet(p: RtpPacket) -> bytes:
    """Full encoder (CSRC list, extension) — used by tests and tools."""
    first = 0x80 | len(p.csrc) | (0x10 if p.extension is not None else 0)
    out = [_HDR.pack(first, (0x80 if p.marker else 0) | (p.payload_type & 0x7F),
                     p.sequence & 0xFFFF, p.timestamp & 0xFFFFFFFF, p.ssrc & 0xFFFFFFFF)]
    out.extend(struct.pack("!I", c) for c in p.csrc)
    if p.extension is not None:
        profile, data = p.extension
        if len(data) % 4:
            raise RtpError("extension length must be a multiple of 4")
        out.append(struct.pack("!HH", profile, len(data) // 4) + data)
    out.append(p.payload)
    return b"".join(out)


def parse(data: bytes) -> RtpPacket:
    """Parse one datagram; raises RtpError for anything that is not RTP v2."""
    n = len(data)
    if n < 12:
        raise RtpError("shorter than the RTP header")
    b0, b1, seq, ts, ssrc = _HDR.unpack_from(data)
    if b0 >> 6 != 2:
        raise RtpError(f"RTP version {b0 >> 6}")
    cc = b0 & 0x0F
    off = 12 + 4 * cc
    if off > n:
        raise RtpError("truncated CSRC list")
    csrc = struct.unpack_from(f"!{cc}I", data, 12) if cc else ()
    ext = None
    if b0 & 0x10:
        if off + 4 > n:
            raise RtpError("truncated header extension")
        profile, words = struct.unpack_from("!HH", data, off)
        end = off + 4 + 4 * words
        if end > n:
            raise RtpError("truncated header extension")
        ext = (profile, bytes(data[off + 4:end]))
        off = end
    end = n
    if b0 & 0x20:
        pad = data[-1]
        if pad == 0 or off + pad > n:
            raise RtpError("bad padding")
        end = n - pad
    return RtpPacket(b1 & 0x7F, seq, ts, ssrc, bytes(data[off:end]), bool(b1 & 0x80),
                     tuple(csrc), ext)


def payload_offset(data: bytes) -> int:
    """Fast path for the receive loop: offset of the payload (padding not removed)."""
    b0 = data[0]
    off = 12 + 4 * (b0 & 0x0F)
    if b0 & 0x10:
        if off + 4 > len(data):
            raise RtpError("truncated header extension")
        off += 4 + 4 * int.from_bytes(data[off + 2:off + 4], "big")
    if off > len(data):
        raise RtpError("truncated header")
    return off


# -- RFC 4733 telephone-event payload ------------------------------------------------

@dataclass(slots=True, frozen=True)
class TelephoneEvent:
    event: int
    end: bool
    volume: int          # 0..63, -dBm0
    duration: int        # timestamp units (8 kHz samples)

    @property
    def digit(self) -> str | None:
        return DIGITS[self.event] if 0 <= self.event < 16 else None


def parse_event(payload: bytes) -> TelephoneEvent:
    if len(payload) < 4:
        raise RtpError("telephone-event payload shorter than 4 bytes")
    ev, flags, duration = _EVENT.unpack_from(payload)
    return TelephoneEvent(ev, bool(flags & 0x80), flags & 0x3F, duration)


def build_event(event: int, end: bool, volume: int, duration: int) -> bytes:
    return _EVENT.pack(event & 0xFF, (0x80 if end else 0) | (volume & 0x3F),
                       min(duration, 0xFFFF))


def dtmf_event_packets(digit: str, duration_ms: int = 100, volume: int = 10,
                       end_repeats: int = 3) -> list[tuple[bool, bytes]]:
    """The packets for one digit, one per 20 ms: ``[(marker, payload), ...]``.

    All share one RTP timestamp (the event start, chosen by the caller). Duration grows by
    160 per packet; the last state is sent ``end_repeats`` times with the E bit; the marker
    is set on the first packet only (RFC 4733 §2.5.1).
    """
    try:
        event = DIGIT_TO_EVENT[digit]
    except KeyError:
        raise ValueError(f"not a DTMF digit: {digit!r}") from None
    steps = max(1, round(duration_ms / 20))
    out = [(i == 0, build_event(event, False, volume, FRAME_SAMPLES * (i + 1)))
           for i in range(steps - 1)]
    final = build_event(event, True, volume, FRAME_SAMPLES * steps)
    out.extend((steps == 1 and i == 0, final) for i in range(end_repeats))
    return out


class DtmfReceiver:
    """Turns telephone-event packets into digits, once per event.

    An event is identified by (SSRC, RTP timestamp); the digit is reported on the first
    packet seen for it (whether or not the marker or E bit arrived), so a lost first packet
    or the three redundant end packets never add or lose a digit, and a replayed event with
    the same timestamp is reported once.
    """

    def __init__(self, memory: int = 32) -> None:
        self._seen: deque[tuple[int, int]] = deque(maxlen=memory)
        self._seen_set: set[tuple[int, int]] = set()

    def feed(self, ssrc: int, timestamp: int, payload: bytes) -> str | None:
        ev = parse_event(payload)
        key = (ssrc, timestamp)
        if key in self._seen_set:
            return None
        if len(self._seen) == self._seen.maxlen:
            self._seen_set.discard(self._seen[0])
        self._seen.append(key)
        self._seen_set.add(key)
        return ev.digit
