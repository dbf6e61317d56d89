"""RTP header pack/parse (hypothesis round trips, CSRC/extension/padding, errors) and
RFC 4733 telephone-event payloads, send plan and receiver dedupe."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.codec import rtp


def test_pack_known_bytes():
    pkt = rtp.pack(0, 0x1234, 0xDEADBEEF, 0x01020304, b"\xff" * 4, marker=True)
    assert pkt[:12] == bytes.fromhex("80801234deadbeef01020304")
    assert pkt[12:] == b"\xff" * 4
    p = rtp.parse(pkt)
    assert (p.payload_type, p.sequence, p.timestamp, p.ssrc, p.marker) == (
        0, 0x1234, 0xDEADBEEF, 0x01020304, True)


def test_pack_wraps_counters():
    p = rtp.parse(rtp.pack(8, 0x10000 + 5, 2**32 + 7, 1, b""))
    assert (p.payload_type, p.sequence, p.timestamp, p.marker) == (8, 5, 7, False)


packets = st.builds(
    rtp.RtpPacket,
    payload_type=st.integers(0, 127), sequence=st.integers(0, 0xFFFF),
    timestamp=st.integers(0, 2**32 - 1), ssrc=st.integers(0, 2**32 - 1),
    payload=st.binary(max_size=200), marker=st.booleans(),
    csrc=st.lists(st.integers(0, 2**32 - 1), max_size=15).map(tuple),
    extension=st.none() | st.tuples(st.integers(0, 0xFFFF),
                                    st.binary(max_size=40).map(lambda b: b[:len(b) // 4 * 4])),
)


@given(packets)
def test_round_trip(p):
    data = rtp.pack_packet(p)
    assert rtp.parse(data) == p
    assert data[rtp.payload_offset(data):] == p.payload


def test_padding_is_removed():
    body = rtp.pack(0, 1, 2, 3, b"abcd") + b"\x00\x00\x03"
    data = bytes([body[0] | 0x20]) + body[1:]
    assert rtp.parse(data).payload == b"abcd"


@pytest.mark.parametrize("data", [
    b"", b"\x80" * 11,                                   # too short
    bytes([0x40]) + b"\x00" * 11,                        # version 1
    bytes([0x82]) + b"\x00" * 15,                        # 2 CSRCs announced, 1 present
    bytes([0x90]) + b"\x00" * 11 + b"\x00\x00\x00\x05",  # extension longer than packet
    bytes([0xA0]) + b"\x00" * 11 + b"\x00",              # padding count 0
])
def test_malformed_packets_raise(data):
    with pytest.raises(rtp.RtpError):
        rtp.parse(data)


def test_event_payload_parse_build():
    # digit 1, end, volume 10, duration 1600 (RFC 4733 §2.3 layout)
    raw = bytes([1, 0x80 | 10]) + struct.pack("!H", 1600)
    ev = rtp.parse_event(raw)
    assert (ev.event, ev.end, ev.volume, ev.duration, ev.digit) == (1, True, 10, 1600, "1")
    assert rtp.build_event(1, True, 10, 1600) == raw
    assert rtp.parse_event(rtp.build_event(11, False, 63, 80)).digit == "#"
    assert rtp.parse_event(rtp.build_event(16, False, 0, 1)).digit is None   # flash
    with pytest.raises(rtp.RtpError):
        rtp.parse_event(b"\x01\x02")


def test_send_plan_for_one_digit():
    plan = rtp.dtmf_event_packets("*", duration_ms=100)
    evs = [rtp.parse_event(p) for _, p in plan]
    assert [m for m, _ in plan] == [True, False, False, False, False, False, False]
    assert [e.duration for e in evs] == [160, 320, 480, 640, 800, 800, 800]
    assert [e.end for e in evs] == [False] * 4 + [True] * 3
    assert {e.digit for e in evs} == {"*"}
    short = rtp.dtmf_event_packets("a", duration_ms=20)
    assert [m for m, _ in short] == [True, False, False]
    assert rtp.parse_event(short[0][1]).digit == "A"
    with pytest.raises(ValueError):
        rtp.dtmf_event_packets("x")


def test_receiver_reports_each_event_once():
    rx = rtp.DtmfReceiver()
    plan = rtp.dtmf_event_packets("7")
    got = [rx.feed(99, 1000, p) for _, p in plan]
    assert got == ["7"] + [None] * 6
    # lost first packets: the first one that arrives still reports the digit
    assert [rx.feed(99, 2600, p) for _, p in plan[3:]] == ["7", None, None, None]
    # a replay of the first event (same timestamp) is not reported again
    assert [rx.feed(99, 1000, p) for _, p in plan] == [None] * 7
    # same digit pressed again = new timestamp = new event; other SSRC = other stream
    assert rx.feed(99, 4000, plan[0][1]) == "7"
    assert rx.feed(98, 4000, plan[0][1]) == "7"


def test_receiver_memory_is_bounded():
    rx = rtp.DtmfReceiver(memory=4)
    payload = rtp.build_event(5, True, 10, 800)
    for ts in range(10):
        assert rx.feed(1, ts, payload) == "5"
    assert rx.feed(1, 9, payload) is None
    assert rx.feed(1, 0, payload) == "5"                  # forgotten, long ago
