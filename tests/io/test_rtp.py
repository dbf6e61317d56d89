"""RtpSession on 127.0.0.1: paced playback, recording, RFC 4733 both ways, symmetric RTP
latching, reordering/loss stats, barge-in, silence detection, port range handling.
Pacing is checked in virtual time (autojump MockClock) and by RTP timestamps."""

from __future__ import annotations

import math
import socket
import struct
from contextlib import asynccontextmanager

import pytest
import trio

from gateway.codec import g711
from gateway.codec import rtp as rtpc
from gateway.io.rtp import PortsExhausted, RtpSession


def tone(seconds: float, freq: float = 440.0, amp: int = 8000) -> bytes:
    n = int(8000 * seconds)
    pcm = struct.pack(f"<{n}h", *(int(amp * math.sin(2 * math.pi * freq * i / 8000))
                                  for i in range(n)))
    return g711.ulaw_encode(pcm)


@asynccontextmanager
async def pair(pt: int = 0):
    async with trio.open_nursery() as nursery:
        a, b = RtpSession("127.0.0.1"), RtpSession("127.0.0.1")
        pa, pb = await a.open(nursery), await b.open(nursery)
        a.set_remote(("127.0.0.1", pb), pt)
        b.set_remote(("127.0.0.1", pa), pt)
        try:
            yield a, b
        finally:
            await a.close()
            await b.close()


class RawPeer:
    """A bare UDP socket that captures (virtual time, packet) and can send packets."""

    def __init__(self) -> None:
        self.sock = trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.got: list[tuple[float, rtpc.RtpPacket]] = []

    async def bind(self) -> int:
        await self.sock.bind(("127.0.0.1", 0))
        return self.sock.getsockname()[1]

    async def capture(self) -> None:
        while True:
            data, _ = await self.sock.recvfrom(2048)
            self.got.append((trio.current_time(), rtpc.parse(data)))

    async def wait_for(self, n: int) -> None:
        while len(self.got) < n:
            await trio.sleep(0.005)


async def wait_until(pred, step: float = 0.005) -> None:
    while not pred():
        await trio.sleep(step)


async def test_play_is_paced_every_20ms_with_continuous_timestamps(autojump_clock):
    peer = RawPeer()
    port = await peer.bind()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(peer.capture)
        s = RtpSession("127.0.0.1")
        await s.open(nursery)
        s.set_remote(("127.0.0.1", port), 0)
        audio = tone(1.0)
        with trio.fail_after(5):
            t0 = trio.current_time()
            assert await s.play(audio) is True
            assert trio.current_time() - t0 == pytest.approx(1.0)
            await peer.wait_for(50)
            await s.play(audio[:1600])                 # second talk-spurt after a pause
            await peer.wait_for(60)
        await s.close()
        nursery.cancel_scope.cancel()
    times = [t for t, _ in peer.got]
    pkts = [p for _, p in peer.got]
    assert len(pkts) == 60
    gaps = [b - a for a, b in zip(times[:50], times[1:50], strict=False)]
    assert all(g == pytest.approx(0.02, abs=1e-6) for g in gaps)
    assert [p.marker for p in pkts[:50]] == [True] + [False] * 49
    assert pkts[50].marker
    assert all(p.payload_type == 0 and len(p.payload) == 160 for p in pkts)
    assert b"".join(p.payload for p in pkts[:50]) == audio
    for p, q in zip(pkts, pkts[1:], strict=False):
        assert q.sequence == (p.sequence + 1) & 0xFFFF
        assert q.ssrc == p.ssrc == s.ssrc
    assert all(pkts[i + 1].timestamp - pkts[i].timestamp == 160 for i in range(49))
    # the pause between the talk-spurts advanced the media clock with wall time
    assert pkts[50].timestamp - pkts[49].timestamp >= 160
    assert s.stats["packets_out"] == 60


async def test_two_sessions_record_one_second(autojump_clock):
    audio = tone(1.0)
    async with pair() as (a, b):
        b.start_recording()
        with trio.fail_after(5):
            await a.play(audio)
            await wait_until(lambda: b.stats["packets_in"] >= 50)
        pcm = b.stop_recording()
    assert len(pcm) == 2 * 8000
    assert pcm == g711.ulaw_decode(audio)
    assert b.stats["lost"] == b.stats["late"] == 0


async def test_pcma_is_transcoded_on_the_wire(autojump_clock):
    peer = RawPeer()
    port = await peer.bind()
    audio = tone(0.2)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(peer.capture)
        s = RtpSession("127.0.0.1")
        await s.open(nursery)
        s.set_remote(("127.0.0.1", port), 8)
        with trio.fail_after(5):
            await s.play(audio)
            await peer.wait_for(10)
        await s.close()
        nursery.cancel_scope.cancel()
    wire = b"".join(p.payload for _, p in peer.got)
    assert {p.payload_type for _, p in peer.got} == {8}
    assert wire == g711.ulaw_to_alaw(audio)
    async with pair(pt=8) as (a, b):
        b.start_recording()
        with trio.fail_after(5):
            await a.play(audio)
            await wait_until(lambda: b.stats["packets_in"] >= 10)
        pcm = b.stop_recording()
    assert pcm == g711.alaw_decode(g711.ulaw_to_alaw(audio))


async def test_dtmf_both_ways_with_pause(autojump_clock):
    async with pair() as (a, b):
        with trio.fail_after(10):
            t0 = trio.current_time()
            await a.send_digits("12w#")
            elapsed = trio.current_time() - t0
            got = [await b.digits.receive() for _ in range(3)]
            await b.send_digits("9*")
            back = [await a.digits.receive() for _ in range(2)]
    assert got == ["1", "2", "#"]
    assert back == ["9", "*"]
    # 3 digits x (5 + 2 extra end packets) x 20 ms + gaps + 0.5 s pause
    assert elapsed >= 0.5 + 3 * 0.14
    assert a.stats["dtmf_out"] == 3 and b.stats["dtmf_in"] == 3


async def test_dtmf_wire_format_and_receiver_dedupe(autojump_clock):
    peer = RawPeer()
    port = await peer.bind()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(peer.capture)
        s = RtpSession("127.0.0.1")
        sport = await s.open(nursery)
        s.set_remote(("127.0.0.1", port), 0, 96)
        with trio.fail_after(5):
            await s.send_digits("5", duration_ms=100)
            await peer.wait_for(7)
        pkts = [p for _, p in peer.got]
        assert len(pkts) == 7
        assert all(p.payload_type == 96 for p in pkts)
        assert len({p.timestamp for p in pkts}) == 1
        assert [p.marker for p in pkts] == [True] + [False] * 6
        evs = [rtpc.parse_event(p.payload) for p in pkts]
        assert [e.duration for e in evs] == [160, 320, 480, 640, 800, 800, 800]
        assert [e.end for e in evs] == [False] * 4 + [True] * 3
        assert {e.event for e in evs} == {5}
        # replay the same event twice (as SIPp's pcap replay does): one digit only
        for p in pkts + pkts:
            await peer.sock.sendto(rtpc.pack_packet(p), ("127.0.0.1", sport))
        with trio.fail_after(2):
            assert await s.digits.receive() == "5"
            await wait_until(lambda: s.stats["packets_in"] >= 14)
        assert s.stats["dtmf_in"] == 1
        await s.close()
        nursery.cancel_scope.cancel()


async def test_symmetric_rtp_latches_to_first_source(autojump_clock):
    decoy = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    decoy.bind(("127.0.0.1", 0))            # the SDP address; NAT means nothing comes from it
    try:
        async with pair() as (a, b):
            b.set_remote(decoy.getsockname(), 0)
            with trio.fail_after(5):
                await a.play(tone(0.1))
                await wait_until(lambda: b.latched)
            assert b.remote == ("127.0.0.1", a.port)
            a.start_recording()
            with trio.fail_after(5):
                await b.play(tone(0.1))
                await wait_until(lambda: a.stats["packets_in"] >= 5)
            assert len(a.stop_recording()) == 2 * 800
            # after latching, a third party is ignored
            stranger = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            stranger.sendto(rtpc.pack(0, 1, 1, 7, b"\xff" * 160), ("127.0.0.1", b.port))
            stranger.close()
            with trio.fail_after(2):
                await wait_until(lambda: b.stats["dropped"] >= 1)
            assert b.remote == ("127.0.0.1", a.port)
    finally:
        decoy.close()


async def test_reorder_late_dup_and_loss_in_recording(autojump_clock):
    peer = RawPeer()
    await peer.bind()
    async with trio.open_nursery() as nursery:
        s = RtpSession("127.0.0.1")
        sport = await s.open(nursery)
        s.set_remote(peer.sock.getsockname(), 0)
        s.start_recording()
        frames = {n: bytes([n]) * 160 for n in range(1, 12)}
        order = [1, 3, 2, 2, 4, 6, 7, 8, 9, 10, 11, 2]   # 3/2 swapped, 2 dup, 5 lost, 2 late
        for seq in order:
            await peer.sock.sendto(rtpc.pack(0, 65530 + seq, seq * 160, 42, frames[seq]),
                                   ("127.0.0.1", sport))
        with trio.fail_after(2):
            await wait_until(lambda: s.stats["packets_in"] == len(order))
        pcm = s.stop_recording()
        await s.close()
        nursery.cancel_scope.cancel()
    expect = b"".join(frames[n] if n != 5 else b"\xff" * 160 for n in range(1, 12))
    assert pcm == g711.ulaw_decode(expect)        # seq wrapped 65535 -> 0 in the middle
    assert s.stats["lost"] == 1
    assert s.stats["dup"] + s.stats["late"] == 2


async def test_stop_play_barges_in(autojump_clock):
    async with pair() as (a, b):
        results = []

        async def player():
            results.append(await a.play(tone(2.0)))

        with trio.fail_after(5):
            async with trio.open_nursery() as n:
                n.start_soon(player)
                await trio.sleep(0.5)
                a.stop_play()
        assert results == [False]
        assert 24 <= a.stats["packets_out"] <= 27


async def test_silence_for_measures_quiet_tail(autojump_clock):
    async with pair() as (a, b):
        b.start_recording()
        with trio.fail_after(10):
            await a.play(tone(0.5, amp=12000) + g711.silence(8000 * 2))
            await wait_until(lambda: b.stats["packets_in"] >= 125)
        assert b.silence_for() == pytest.approx(2.0, abs=0.05)
        assert b.stop_recording()


def _free_port() -> int:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


async def test_port_range_skips_busy_ports_and_reports_exhaustion():
    holder = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    holder.bind(("127.0.0.1", 0))
    busy = holder.getsockname()[1]
    try:
        with pytest.raises(PortsExhausted):
            await RtpSession("127.0.0.1", busy, busy).open()
        if busy + 1 > 65535:
            return
        probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            probe.bind(("127.0.0.1", busy + 1))
        except OSError:
            pytest.skip("neighbouring port taken by someone else")
        probe.close()
        s = RtpSession("127.0.0.1", busy, busy + 1)
        async with trio.open_nursery() as n:
            assert await s.open(n) == busy + 1
            await s.close()
    finally:
        holder.close()


async def test_open_without_nursery_receives_and_close_stops(autojump_clock):
    a, b = RtpSession("127.0.0.1"), RtpSession("127.0.0.1")
    pa, pb = await a.open(), await b.open()          # receive loops as system tasks
    try:
        a.set_remote(("127.0.0.1", pb), 0)
        b.set_remote(("127.0.0.1", pa), 0)
        with trio.fail_after(5):
            await a.send_digits("4")
            assert await b.digits.receive() == "4"
    finally:
        await a.close()
        await b.close()
    with pytest.raises(trio.EndOfChannel):
        await b.digits.receive()                     # closed with the session
