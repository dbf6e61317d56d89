"""Encoding choice, segmentation (UDH 8/16-bit, SAR, message_payload) and MO part decoding."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.codec import gsm, text, udh

MODES = ["udh8", "udh16", "sar", "payload"]


def _body(seg):
    """The text bytes of a segment (UDH stripped / payload TLV)."""
    if seg.tlvs and udh.TLV_MESSAGE_PAYLOAD in seg.tlvs:
        return seg.tlvs[udh.TLV_MESSAGE_PAYLOAD]
    if seg.esm_class & 0x40:
        return seg.short_message[1 + seg.short_message[0]:]
    return seg.short_message


def _rejoin(segments):
    parts = [text.decode_short_message(s.short_message, s.data_coding, s.esm_class, s.tlvs)
             for s in segments]
    joined = "".join(p.text for p in sorted(parts, key=lambda p: p.index))
    # as the reassembler does: pair surrogates cut across parts (none should be)
    return joined.encode("utf-16-be", "surrogatepass").decode("utf-16-be"), parts


# ------------------------------------------------------------------------ encoding choice


def test_gsm_when_it_fits_else_ucs2():
    assert text.encode_for_smpp("Hello {€}") == (0, b"Hello \x1b(\x1be\x1b)", "Hello {€}")
    dc, payload, used = text.encode_for_smpp("Hi 😀")
    assert dc == 8 and payload == "Hi 😀".encode("utf-16-be") and len(payload) == 10
    assert text.encode_for_smpp("naïve")[0] == 8  # ï is not GSM


def test_smart_encoding_replaces_look_alikes():
    body = "\u201cHi\u201d \u2014 it\u2019s\u00a0done\u2026"
    assert text.encode_for_smpp(body)[0] == 8
    dc, payload, used = text.encode_for_smpp(body, smart=True)
    assert dc == 0 and used == '"Hi" - it\'s done...'
    assert gsm.decode(payload) == used
    assert text.count_segments("\u2019" * 100, smart=True) == 1
    assert text.count_segments("\u2019" * 100) == 2


def test_smart_encoding_keeps_original_when_still_ucs2():
    body = "\u201cok\u201d 😀"
    assert text.encode_for_smpp(body, smart=True) == (8, body.encode("utf-16-be"), body)


# --------------------------------------------------------------------------- boundaries


@pytest.mark.parametrize(
    "body, n",
    [
        ("", 1), ("a" * 160, 1), ("a" * 161, 2), ("a" * 306, 2), ("a" * 307, 3),
        ("a" * 158 + "€", 1), ("a" * 159 + "€", 2),  # 160 vs 161 septets
        ("ж" * 70, 1), ("ж" * 71, 2), ("ж" * 134, 2), ("ж" * 135, 3),
        ("😀" * 35, 1), ("😀" * 36, 2),  # 70 / 72 UTF-16 code units
    ],
)
def test_count_segments_at_boundaries(body, n):
    assert text.count_segments(body) == n
    assert len(text.split(body, 1)) == n


def test_escape_at_153_boundary_is_not_split():
    body = "a" * 152 + "€" + "b" * 10  # ESC would be septet 153, its partner 154
    segs = text.split(body, 0x42)
    assert [len(_body(s)) for s in segs] == [152, 2 + 10]
    assert _body(segs[1]).startswith(b"\x1be")
    assert _rejoin(segs)[0] == body
    # one septet earlier the pair fits exactly
    segs = text.split("a" * 151 + "€" + "b" * 10, 1)
    assert [len(_body(s)) for s in segs] == [153, 10]


def test_escape_at_152_boundary_udh16():
    body = "a" * 151 + "€" + "b" * 10
    segs = text.split(body, 0x1234, "udh16")
    assert [len(_body(s)) for s in segs] == [151, 12]
    assert _rejoin(segs)[0] == body


def test_emoji_at_ucs2_67_boundary_is_not_split():
    body = "ж" * 66 + "😀" + "z" * 10  # the pair would straddle code units 67/68
    segs = text.split(body, 7)
    assert [len(_body(s)) // 2 for s in segs] == [66, 2 + 10]
    assert _rejoin(segs)[0] == body
    segs16 = text.split("ж" * 65 + "😀" + "z" * 10, 7, "udh16")
    assert [len(_body(s)) // 2 for s in segs16] == [65, 12]


def test_udh8_layout_and_esm_class():
    segs = text.split("x" * 200, 0x1A5)
    assert [(s.index, s.total, s.esm_class, s.tlvs) for s in segs] == [
        (1, 2, 0x40, None), (2, 2, 0x40, None)]
    assert segs[0].short_message[:6] == bytes([5, 0, 3, 0xA5, 2, 1])
    assert segs[1].short_message[:6] == bytes([5, 0, 3, 0xA5, 2, 2])
    assert len(segs[0].short_message) == 6 + 153


def test_udh16_layout():
    segs = text.split("x" * 200, 0xBEEF, "udh16")
    assert segs[1].short_message[:7] == bytes([6, 8, 4, 0xBE, 0xEF, 2, 2])
    assert len(segs[0].short_message) == 7 + 152


def test_sar_mode_uses_tlvs_not_udh():
    segs = text.split("ж" * 100, 0x10203, "sar")
    assert [s.esm_class for s in segs] == [0, 0]
    assert segs[0].tlvs == {0x020C: 0x0203, 0x020E: 2, 0x020F: 1}
    assert segs[1].tlvs == {0x020C: 0x0203, 0x020E: 2, 0x020F: 2}
    assert len(segs[0].short_message) == 134 and segs[0].data_coding == 8


def test_payload_mode_one_pdu():
    body = "y" * 400
    (seg,) = text.split(body, 1, "payload")
    assert seg.short_message == b"" and seg.tlvs == {0x0424: body.encode()}
    assert seg.esm_class == 0 and (seg.index, seg.total) == (1, 1)
    assert text.split("short", 1, "payload")[0].short_message == b"short"


def test_single_segment_is_plain_in_every_mode():
    for mode in MODES:
        (seg,) = text.split("hello", 9, mode)
        assert (seg.esm_class, seg.tlvs, seg.short_message) == (0, None, b"hello")


def test_unknown_mode_and_too_many_parts():
    with pytest.raises(ValueError):
        text.split("x", 1, "udh9")
    with pytest.raises(ValueError):
        text.split("€" * 20000, 1)


# ---------------------------------------------------------------------------- properties


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=700), st.sampled_from(MODES), st.integers(0, 0xFFFF))
def test_split_then_decode_is_identity(body, mode, ref):
    segs = text.split(body, ref, mode)
    joined, parts = _rejoin(segs)
    assert joined == body
    # every part stands alone: no surrogate pair was cut
    assert not any("\ud800" <= c <= "\udfff" for p in parts for c in p.text)
    assert len({p.ref for p in parts}) == 1
    if len(segs) > 1:
        assert [p.index for p in parts] == list(range(1, len(segs) + 1))
        assert all(p.total == len(segs) for p in parts)


@settings(max_examples=150, deadline=None)
@given(st.text(alphabet=st.sampled_from("a€{ж😀 \u2019"), max_size=600), st.booleans())
def test_count_segments_matches_split(body, smart):
    assert text.count_segments(body, smart) == len(text.split(body, 3, "udh8", smart))
    assert text.count_segments(body, smart, "udh16") == len(text.split(body, 3, "udh16", smart))
    for seg in text.split(body, 3, "udh8", smart):
        limit = 160 if seg.total == 1 else (153 if seg.data_coding == 0 else 134)
        assert len(_body(seg)) <= (limit if seg.data_coding == 0 or seg.total > 1 else 140)


# ------------------------------------------------------------------------- MO decoding


def test_decode_plain_gsm_and_ucs2():
    assert text.decode_short_message(b"hi\x1be", 0, 0, None) == text.Part("hi€")
    assert text.decode_short_message("ok😀".encode("utf-16-be"), 8, 0, {}) == text.Part("ok😀")


def test_decode_udh_skips_other_ies():
    # IE 0x0A (text formatting, 4 octets) before the 16-bit concat IE
    sm = bytes([10, 0x0A, 2, 0, 5, 0x08, 4, 0x12, 0x34, 3, 2]) + b"part"
    assert text.decode_short_message(sm, 0, 0x40, None) == text.Part("part", 0x1234, 3, 2)
    sm = bytes([5, 0, 3, 0x99, 2, 1]) + "é".encode("latin-1")
    assert text.decode_short_message(sm, 3, 0x40, None) == text.Part("é", 0x99, 2, 1)


def test_decode_sar_tlvs_int_or_bytes():
    tlvs = {0x020C: 0x0102, 0x020E: 2, 0x020F: 2}
    assert text.decode_short_message(b"b", 0, 0, tlvs) == text.Part("b", 0x0102, 2, 2)
    tlvs = {0x020C: b"\x01\x02", 0x020E: b"\x02", 0x020F: b"\x01"}
    assert text.decode_short_message(b"a", 0, 0, tlvs) == text.Part("a", 0x0102, 2, 1)


def test_decode_message_payload():
    tlvs = {0x0424: "long ж".encode("utf-16-be")}
    assert text.decode_short_message(b"", 8, 0, tlvs).text == "long ж"


def test_decode_bad_udh_and_bad_index_degrade_to_plain():
    assert text.decode_short_message(bytes([9, 0, 3]), 0, 0x40, None).total == 1
    assert text.decode_short_message(bytes([5, 0, 3, 1, 2, 3]) + b"x", 0, 0x40, None) == (
        text.Part("x"))


@pytest.mark.parametrize(
    "data, dc, expected",
    [
        (b"abc", 1, "abc"),  # IA5
        (b"\xe9t\xe9", 3, "été"),  # Latin-1
        (b"\x10", 0xF0, "Δ"),  # GSM via the 0xF0 group
        (b"\xe9", 0xF4, "é"),  # 8-bit via the 0xF0 group
        (b"\x04\x36", 0x18, "ж"),  # general group, UCS-2 alphabet
        (b"\xe9", 0x05, "é"),  # unknown to us: Latin-1 best effort
        (b"\x00a\x00", 8, "a\ufffd"),  # odd UCS-2 length: no exception
        (b"\xff\xfe", 1, "\ufffd\ufffd"),
    ],
)
def test_decode_text_data_codings(data, dc, expected):
    assert text.decode_text(data, dc) == expected
