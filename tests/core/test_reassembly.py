"""MO reassembly: order, duplicates, timeouts with an injected clock, bounded memory."""

import random

import pytest
import trio

from gateway.codec import text
from gateway.core.reassembly import Reassembler

KEY = ("+15550001", "+15550002", 7)


def parts_of(body, ref=7, mode="udh8"):
    segs = text.split(body, ref, mode)
    return [text.decode_short_message(s.short_message, s.data_coding, s.esm_class, s.tlvs)
            for s in segs]


def test_single_part_passes_through():
    r = Reassembler(timeout=60)
    assert r.add(KEY, text.Part("hi"), now=0.0) == "hi"
    assert len(r) == 0


@pytest.mark.parametrize("mode", ["udh8", "udh16", "sar"])
def test_out_of_order_parts_complete(mode):
    body = "Zażółć gęślą jaźń 😀 " * 20
    parts = parts_of(body, mode=mode)
    assert len(parts) > 3
    random.Random(5).shuffle(parts)
    r = Reassembler(timeout=60)
    results = [r.add(KEY, p, now=float(i)) for i, p in enumerate(parts)]
    assert results[:-1] == [None] * (len(parts) - 1)
    assert results[-1] == body
    assert len(r) == 0


def test_duplicates_are_ignored_also_after_completion():
    parts = parts_of("a" * 400)  # 3 parts
    r = Reassembler(timeout=60)
    assert r.add(KEY, parts[0], 0.0) is None
    assert r.add(KEY, parts[0], 0.1) is None  # duplicate
    assert r.add(KEY, parts[2], 0.2) is None
    assert r.add(KEY, parts[1], 0.3) == "a" * 400
    assert r.add(KEY, parts[1], 0.4) is None  # late duplicate of a completed message
    assert len(r) == 0 and r.expire(1000.0) == []
    assert r.duplicates_total == 2


def test_same_ref_from_other_sender_is_separate():
    p1, p2 = parts_of("x" * 200)
    q1, q2 = parts_of("y" * 200)
    r = Reassembler(timeout=60)
    assert r.add(("a", "b", 7), p1, 0) is None
    assert r.add(("c", "b", 7), q2, 0) is None
    assert r.add(("c", "b", 7), q1, 0) == "y" * 200
    assert r.add(("a", "b", 7), p2, 0) == "x" * 200


def test_timeout_returns_partial_with_missing_count():
    parts = parts_of("0123456789" * 50)  # 4 parts of 153 septets
    assert len(parts) == 4
    r = Reassembler(timeout=30)
    r.add(KEY, parts[2], now=100.0)
    r.add(KEY, parts[0], now=110.0)
    assert r.next_expiry() == 130.0
    assert r.expire(129.9) == []
    [(key, partial, missing)] = r.expire(130.0)
    assert key == KEY and missing == 2
    assert partial == parts[0].text + parts[2].text  # index order
    assert len(r) == 0 and r.next_expiry() is None


def test_bounded_memory_evicts_oldest_and_reports_it():
    r = Reassembler(timeout=60, max_entries=3)
    for ref in range(5):
        p = text.Part(f"p{ref}", ref=ref, total=2, index=1)
        assert r.add(("s", "d", ref), p, now=float(ref)) is None
    assert len(r) == 3
    assert r.evicted_total == 2
    gone = r.expire(now=5.0)
    assert gone == [(("s", "d", 0), "p0", 1), (("s", "d", 1), "p1", 1)]
    assert r.add(("s", "d", 4), text.Part("q", ref=4, total=2, index=2), 6.0) == "p4q"


def test_surrogate_pair_cut_by_the_sender_is_joined():
    raw = "ab😀".encode("utf-16-be")  # 8 octets: cut inside the pair, as some SMSCs do
    first = bytes([5, 0, 3, 9, 2, 1]) + raw[:6]
    second = bytes([5, 0, 3, 9, 2, 2]) + raw[6:]
    p1 = text.decode_short_message(first, 8, 0x40, None)
    p2 = text.decode_short_message(second, 8, 0x40, None)
    r = Reassembler(timeout=60)
    assert r.add(KEY, p2, 0) is None
    assert r.add(KEY, p1, 0) == "ab😀"
    # an unpaired half left after a timeout becomes U+FFFD, never a lone surrogate
    other = ("+15550003", "+15550002", 9)
    assert r.add(other, p1, 1.0) is None
    [(key, partial, missing)] = r.expire(100.0)
    assert key == other
    assert partial == "ab\ufffd" and missing == 1


def test_bad_index_ignored_and_bad_config_rejected():
    r = Reassembler(timeout=1)
    assert r.add(KEY, text.Part("x", ref=1, total=2, index=3), 0) is None
    assert len(r) == 0
    with pytest.raises(ValueError):
        Reassembler(timeout=0)


async def test_with_trio_mock_clock(autojump_clock):
    """Driven the way the runtime drives it: ``now`` from trio's clock (pytest-trio's
    autojump MockClock, so the 120 s timeout passes instantly)."""
    parts = parts_of("m" * 300)
    with trio.fail_after(300):  # mock seconds
        r = Reassembler(timeout=120)
        r.add(KEY, parts[0], trio.current_time())
        await trio.sleep(119)
        assert r.expire(trio.current_time()) == []
        await trio.sleep(1)
        assert r.expire(trio.current_time()) == [(KEY, "m" * 153, 1)]
