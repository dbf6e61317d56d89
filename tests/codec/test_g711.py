"""G.711 against known vectors, exhaustive table properties, and (while Python still ships
it) CPython's audioop as an independent oracle."""

from __future__ import annotations

import struct
import warnings

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.codec import g711

ALL_PCM = struct.pack("<65536h", *range(-32768, 32768))


def pcm(*samples: int) -> bytes:
    return struct.pack(f"<{len(samples)}h", *samples)


def test_known_vectors():
    assert g711.ulaw_encode(pcm(0)) == b"\xff"
    assert g711.ulaw_encode(pcm(32767, -32768)) == b"\x80\x00"
    assert g711.alaw_encode(pcm(0)) == b"\xd5"
    assert g711.alaw_encode(pcm(32767, -32768)) == b"\xaa\x2a"
    assert g711.ulaw_decode(b"\xff\x7f\x80\x00") == pcm(0, 0, 32124, -32124)
    assert g711.alaw_decode(b"\xd5\x55\xaa\x2a") == pcm(8, -8, 32256, -32256)
    assert g711.silence(3) == b"\xff\xff\xff"
    assert g711.silence(2, alaw=True) == b"\xd5\xd5"


def test_encoders_are_monotonic_over_all_inputs():
    lin_u = [g711.ULAW_TO_LINEAR[c] for c in g711.ulaw_encode(ALL_PCM)]
    lin_a = [g711.ALAW_TO_LINEAR[c] for c in g711.alaw_encode(ALL_PCM)]
    assert lin_u == sorted(lin_u) and lin_a == sorted(lin_a)
    assert len(set(lin_u)) == 255            # 0x7F and 0xFF both decode to 0
    assert len(set(lin_a)) == 256


def test_decode_then_encode_is_identity_on_codes():
    codes = bytes(range(256))
    assert g711.alaw_encode(g711.alaw_decode(codes)) == codes
    # μ-law has two zeros (0x7F = -0, 0xFF = +0); everything else round-trips
    back = g711.ulaw_encode(g711.ulaw_decode(codes))
    assert [c for c, b in zip(codes, back, strict=True) if c != b] == [0x7F]


def test_quantisation_error_is_bounded():
    for encode, decode in ((g711.ulaw_encode, g711.ulaw_decode),
                           (g711.alaw_encode, g711.alaw_decode)):
        out = struct.unpack("<65536h", decode(encode(ALL_PCM)))
        for x, y in zip(range(-32768, 32768, 7), out[::7], strict=True):
            assert abs(x - y) <= max(16, abs(x) // 16 + 8), (x, y)


def test_transcoding_tables_match_decode_encode():
    codes = bytes(range(256))
    assert g711.ulaw_to_alaw(codes) == g711.alaw_encode(g711.ulaw_decode(codes))
    assert g711.alaw_to_ulaw(codes) == g711.ulaw_encode(g711.alaw_decode(codes))


def test_odd_trailing_byte_is_ignored_and_rms():
    assert g711.ulaw_encode(pcm(0, 0) + b"\x01") == b"\xff\xff"
    assert g711.rms(b"") == 0.0
    assert g711.rms(g711.silence(160)) == 0.0
    loud = g711.ulaw_encode(pcm(*([10000, -10000] * 80)))
    assert g711.rms(loud) == pytest.approx(10000, rel=0.05)
    assert g711.pcm16_rms(pcm(3, -3)) == pytest.approx(3.0)


@given(st.binary(max_size=400))
def test_decode_length(data):
    assert len(g711.ulaw_decode(data)) == len(g711.alaw_decode(data)) == 2 * len(data)


def test_matches_audioop_when_available():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        audioop = pytest.importorskip("audioop")
    codes = bytes(range(256))
    assert g711.ulaw_encode(ALL_PCM) == audioop.lin2ulaw(ALL_PCM, 2)
    assert g711.alaw_encode(ALL_PCM) == audioop.lin2alaw(ALL_PCM, 2)
    assert g711.ulaw_decode(codes) == audioop.ulaw2lin(codes, 2)
    assert g711.alaw_decode(codes) == audioop.alaw2lin(codes, 2)
