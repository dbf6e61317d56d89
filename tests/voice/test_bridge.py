"""The ``<Dial>`` bridge relays RTP frame by frame between two real RtpSessions on
loopback, transcoding PCMU -> PCMA, and stops when either side's dialog ends."""

from __future__ import annotations

from types import SimpleNamespace

import trio

from gateway.codec import g711
from gateway.codec import rtp as rtpc
from gateway.io.rtp import RtpSession
from gateway.voice.leg import bridge


async def _pair(nursery, pt_a: int, pt_b: int) -> tuple[RtpSession, RtpSession]:
    a, b = RtpSession("127.0.0.1"), RtpSession("127.0.0.1")
    pa, pb = await a.open(nursery), await b.open(nursery)
    a.set_remote(("127.0.0.1", pb), pt_a)
    b.set_remote(("127.0.0.1", pa), pt_b)
    return a, b


def _leg(rtp: RtpSession):
    return SimpleNamespace(rtp=rtp, ended=False, sip=SimpleNamespace(ended=trio.Event()))


async def test_bridge_relays_each_frame_and_transcodes():
    with trio.fail_after(10):
        async with trio.open_nursery() as n:
            caller, leg_a = await _pair(n, rtpc.PT_PCMU, rtpc.PT_PCMU)
            leg_b, callee = await _pair(n, rtpc.PT_PCMA, rtpc.PT_PCMA)   # far side is PCMA
            a, b = _leg(leg_a), _leg(leg_b)
            callee.start_recording()
            n.start_soon(lambda: bridge(a, b, time_limit=30, hangup_on_star=False))
            await trio.sleep(0)
            tone = bytes((i * 37) & 0xFF for i in range(160 * 10))            # 10 frames
            await caller.play(tone)
            with trio.fail_after(2):
                while callee.stats["packets_in"] < 10:
                    await trio.sleep(0.005)
            assert leg_b.stats["packets_out"] == 10 and callee.stats["lost"] == 0
            got = callee.stop_recording()
            # PCMU -> PCMA -> PCM equals the PCMU source decoded (through A-law)
            assert got == g711.alaw_decode(g711.ulaw_to_alaw(tone))
            b.sip.ended.set()                                   # callee hangs up
            with trio.fail_after(1):
                while leg_a.on_audio is not None:
                    await trio.sleep(0.005)
            await caller.play(tone[:160])
            with trio.fail_after(2):                            # leg A got the frame...
                while leg_a.stats["packets_in"] < 11:
                    await trio.sleep(0.005)
            assert leg_b.stats["packets_out"] == 10             # ...and relayed nothing
            for s in (caller, leg_a, leg_b, callee):
                await s.close()
            n.cancel_scope.cancel()
