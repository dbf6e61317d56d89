"""A test phone: the project's own SipUA + RtpSession calling the gateway's number on
loopback, recording what it hears (8 kHz PCM16) and able to talk (paced μ-law).

Rules: 127.0.0.1, ports 0; the caller bounds every wait (``trio.fail_after``).
"""

from __future__ import annotations

import contextlib
import math
import struct

import trio

from gateway.codec import g711
from gateway.codec import sdp as sdpc
from gateway.io.rtp import RtpSession
from gateway.io.sip_endpoint import SipUA


class Phone:
    def __init__(self, ua: SipUA, rtp: RtpSession, call) -> None:
        self.ua, self.rtp, self.call = ua, rtp, call

    async def hangup(self) -> None:
        await self.call.hangup()


@contextlib.asynccontextmanager
async def phone(sip_port: int, number: str, *, from_user: str = "15557654321",
                pt: int = sdpc.PT_PCMU, transport: str = "udp", tls=None,
                host: str = "127.0.0.1", scheme: str = "sip",
                headers: list[tuple[str, str]] | None = None):
    """Call ``number`` at the gateway; yields an answered ``Phone`` that records from the
    first RTP packet on. ``transport="tls"`` with ``tls`` (a ``sip_tls.SipTls`` whose client
    context trusts the gateway) and ``host`` the name its certificate is for."""
    async with trio.open_nursery() as n:
        ua = SipUA("127.0.0.1", 0, tcp=False, tls=tls)
        await n.start(ua.serve)
        rtp = RtpSession("127.0.0.1")
        await rtp.open(n)
        rtp.start_recording()
        out = await ua.invite(f"{scheme}:{number.lstrip('+')}@{host}:{sip_port}",
                              (host, sip_port), from_user=from_user,
                              sdp_offer=sdpc.offer("127.0.0.1", rtp.port, codecs=(pt,)),
                              timeout=10, transport=transport, headers=headers)
        ans = sdpc.parse(await out.wait_answer())
        rtp.set_remote((ans.connection_host or "127.0.0.1", ans.audio_port), pt,
                       ans.telephone_event_pt)
        try:
            yield Phone(ua, rtp, out)
        finally:
            with trio.CancelScope(shield=True):
                if not out.ended.is_set():
                    with trio.move_on_after(2):
                        await out.hangup()
                await rtp.close()
            n.cancel_scope.cancel()


def tone_ulaw(seconds: float, freq: float, amp: int = 8000) -> bytes:
    n = int(8000 * seconds)
    pcm = struct.pack(f"<{n}h", *(int(amp * math.sin(2 * math.pi * freq * i / 8000))
                                  for i in range(n)))
    return g711.ulaw_encode(pcm)


def tone_power(pcm16: bytes, freq: float, rate: int = 8000) -> float:
    """Goertzel power of ``freq`` in ``pcm16``, normalised per sample (≈ amp²/4 for a pure
    sine of amplitude ``amp``)."""
    s = struct.unpack(f"<{len(pcm16) // 2}h", pcm16[: len(pcm16) & ~1])
    if not s:
        return 0.0
    w = 2 * math.cos(2 * math.pi * freq / rate)
    a = b = 0.0
    for x in s:
        a, b = x + w * a - b, a
    return (a * a + b * b - w * a * b) / (len(s) ** 2)


def loud_span(pcm16: bytes, threshold: int = 1000) -> bytes:
    """``pcm16`` from the first to the last sample above ``threshold``."""
    s = struct.unpack(f"<{len(pcm16) // 2}h", pcm16[: len(pcm16) & ~1])
    idx = [i for i, v in enumerate(s) if abs(v) > threshold]
    return pcm16[2 * idx[0]: 2 * idx[-1] + 2] if idx else b""
