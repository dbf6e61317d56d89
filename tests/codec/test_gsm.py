"""GSM 03.38 twins (pure ``gsm_py`` and Cython ``_gsm``): tables, leniency, packing, and
aiosmpplib's GSM codec as an independent oracle."""

import glob
import importlib
import os

import pytest
from aiosmpplib.codec import GSM7BitCodec, GSM7BitPackedCodec
from hypothesis import given
from hypothesis import strategies as st

from gateway.codec import _select, gsm, gsm_py

_TWINS = {"python": "gateway.codec.gsm_py", "cython": "gateway.codec._gsm"}
_GSM_SO = glob.glob(os.path.join(os.path.dirname(_select.__file__), "_gsm.*.so"))

BASIC_CHARS = [c for i, c in enumerate(gsm_py.BASIC) if i != gsm_py.ESC]
EXT_CHARS = list(gsm_py.EXTENSION.values())
ALL_CHARS = "".join(BASIC_CHARS + EXT_CHARS)
gsm_text = st.text(alphabet=st.sampled_from(BASIC_CHARS + EXT_CHARS), max_size=400)


@pytest.fixture(params=sorted(_TWINS))
def twin(request):
    if request.param == "cython" and _select.FORCED_PURE:
        pytest.skip("GATEWAY_NO_EXTENSIONS=1")
    try:
        return importlib.import_module(_TWINS[request.param])
    except ImportError:
        if _GSM_SO and not _select.FORCED_PURE:
            raise
        pytest.skip("Cython twin not built")


def test_facade_uses_extension_when_built():
    if _select.FORCED_PURE:
        assert gsm.BACKEND == "python"
    elif _GSM_SO:
        assert gsm.BACKEND == "cython"
        assert gsm.encode is importlib.import_module("gateway.codec._gsm").encode


def test_every_basic_char_round_trips(twin):
    for code, ch in enumerate(gsm_py.BASIC):
        if code == gsm_py.ESC:
            continue
        assert twin.encode(ch) == bytes([code]), (code, ch)
        assert twin.decode(bytes([code])) == ch
        assert twin.septets(ch) == 1
    assert len(BASIC_CHARS) == 127 and len(set(BASIC_CHARS)) == 127


def test_every_extension_char_is_an_escape_pair(twin):
    assert set(EXT_CHARS) == set("^{}\\[~]|€\f")
    for code, ch in gsm_py.EXTENSION.items():
        assert twin.encode(ch) == bytes([0x1B, code])
        assert twin.decode(bytes([0x1B, code])) == ch
        assert twin.septets(ch) == 2
    assert twin.encode("a€b") == b"a\x1beb"


def test_aiosmpplib_oracle_unpacked_and_packed(twin):
    ours = twin.encode(ALL_CHARS)
    oracle, _ = GSM7BitCodec().encode(ALL_CHARS)
    assert ours == oracle
    assert twin.decode(oracle) == GSM7BitCodec().decode(ours)[0] == ALL_CHARS
    packed, _ = GSM7BitPackedCodec().encode(ALL_CHARS)
    assert twin.pack(ours) == packed
    assert twin.unpack(packed, len(ours)) == ours


@given(gsm_text)
def test_aiosmpplib_oracle_property(text):
    ours = gsm.encode(text)
    assert ours == GSM7BitCodec().encode(text)[0]
    assert gsm.decode(ours) == text
    assert gsm.septets(text) == len(ours)


@pytest.mark.parametrize("bad", ["😀", "é`", "a\x1bb", "ç", "\t", "Ω\u0391", "日本"])
def test_non_gsm_raises_value_error(twin, bad):
    assert not twin.is_gsm(bad)
    with pytest.raises(ValueError, match="not in GSM"):
        twin.encode(bad)
    with pytest.raises(ValueError):
        twin.septets(bad)


def test_error_names_the_position(twin):
    with pytest.raises(ValueError, match="position 3"):
        twin.encode("abc😀")


@pytest.mark.parametrize(
    "data, text",
    [
        (b"", ""),
        (b"ab\x1b", "ab"),  # trailing lone ESC dropped
        (b"\x1b\x41", "A"),  # ESC + code not in the extension table: the basic char
        (b"\x1b\x1b\x65", "€"),  # ESC ESC: the first is dropped
        (b"a\x80b", "a\ufffdb"),  # not a septet
        (b"\x1b\xff", "\ufffd"),
        (b"\x00\x02\x10", "@$Δ"),
    ],
)
def test_decode_is_lenient(twin, data, text):
    assert twin.decode(data) == text


def test_decode_takes_bytes_likes_and_results_are_canonical(twin):
    assert twin.decode(bytearray(b"abc")) == "abc"
    assert twin.decode(memoryview(b"\x1b\x65")) == "€"
    assert twin.decode(b"abc").isascii()
    assert twin.decode(b"\x1f") == "É" and not twin.decode(b"\x1f").isascii()
    assert hash(twin.decode(b"abc")) == hash("abc")


def test_pack_known_vector(twin):
    septets = twin.encode("hellohello")
    assert twin.pack(septets).hex().upper() == "E8329BFD4697D9EC37"
    assert twin.unpack(bytes.fromhex("E8329BFD4697D9EC37"), 10) == septets
    assert twin.pack(b"") == b"" and twin.unpack(b"", 0) == b""


def test_pack_unpack_errors(twin):
    with pytest.raises(ValueError):
        twin.pack(b"a\x80")
    with pytest.raises(ValueError):
        twin.unpack(b"\x00" * 7, 9)
    assert len(twin.unpack(b"\x00" * 7, 8)) == 8


@given(st.binary(max_size=300).map(lambda b: bytes(x & 0x7F for x in b)))
def test_pack_unpack_round_trip(septets):
    packed = gsm_py.pack(septets)
    assert len(packed) == (len(septets) * 7 + 7) // 8
    assert gsm_py.unpack(packed, len(septets)) == septets
    assert gsm.unpack(gsm.pack(septets), len(septets)) == septets
    assert gsm.pack(septets) == packed


@given(st.binary(max_size=400))
def test_twins_agree_on_any_bytes(data):
    assert gsm.decode(data) == gsm_py.decode(data)


@given(st.text(max_size=200))
def test_twins_agree_on_any_text(text):
    assert gsm.is_gsm(text) == gsm_py.is_gsm(text)
    if gsm_py.is_gsm(text):
        assert gsm.encode(text) == gsm_py.encode(text)
    else:
        with pytest.raises(ValueError):
            gsm.encode(text)


def test_long_text_beyond_stack_buffer(twin):
    text = "€a" * 2000
    data = twin.encode(text)
    assert len(data) == 6000 and twin.decode(data) == text
    assert twin.decode(b"\x10" * 5000) == "Δ" * 5000
