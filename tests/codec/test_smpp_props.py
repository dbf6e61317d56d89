"""Property tests for the SMPP codec twins: decode(encode(x)) == x for generated PDUs of
every operation, the two twins agree byte for byte, and arbitrary or mutated bytes only
ever produce PDUs or PduError (never another exception)."""

import importlib
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.codec import smpp_py
from gateway.codec.smpp_consts import LAYOUTS, RESP_BIT, TLV_KINDS, FramingError, PduError

pytestmark = pytest.mark.codec

try:
    cy = importlib.import_module("gateway.codec._smpp")
except ImportError:
    cy = None

u8 = st.integers(0, 255)
u32 = st.integers(0, 2**32 - 1)
text = st.text(st.characters(min_codepoint=1, max_codepoint=255), max_size=25)


def tlv_value(tag):
    kind = TLV_KINDS.get(tag)
    if kind in (1, 2, 4):
        return st.integers(0, 2 ** (8 * kind) - 1)
    if kind == 0:
        return text
    return st.binary(max_size=40)


known_tags = st.sampled_from(sorted(TLV_KINDS))
unknown_tags = st.integers(0, 0xFFFF).filter(lambda t: t not in TLV_KINDS)
tlv_pair = st.one_of(known_tags, unknown_tags).flatmap(
    lambda t: st.tuples(st.just(t), tlv_value(t)))
tlvs = st.one_of(st.none(), st.lists(tlv_pair, min_size=1, max_size=5, unique_by=lambda p: p[0])
                 .map(dict))
dests = st.lists(st.one_of(st.tuples(st.just(1), u8, u8, text),
                           st.tuples(st.just(2), st.just(0), st.just(0), text)), max_size=4)
unsucc = st.lists(st.tuples(u8, u8, text, u32), max_size=4)
FIELD = {"c": text, "B": u8, "sm": st.binary(max_size=255), "dests": dests, "unsucc": unsucc}


def fields_for(cid):
    kw = {name: FIELD[kind] for name, kind in LAYOUTS[cid]}
    kw["sequence_number"] = u32
    kw["command_status"] = u32 if cid & RESP_BIT else st.just(0)
    kw["tlvs"] = tlvs
    return st.tuples(st.just(cid), st.fixed_dictionaries(kw))


any_pdu = st.sampled_from(sorted(LAYOUTS)).flatmap(fields_for)
sm_pdu = st.sampled_from([4, 5]).flatmap(fields_for)


def twins():
    return [smpp_py] + ([cy] if cy is not None else [])


def as_dict(pdu):
    return {f: getattr(pdu, f) for f in pdu.FIELDS}


@settings(max_examples=300, deadline=None)
@given(any_pdu)
def test_round_trip_every_operation(case):
    cid, kw = case
    wires = []
    for m in twins():
        pdu = m.CLASSES[cid](**kw)
        wire = m.encode(pdu)
        back = m.decode(wire)
        assert back == pdu
        assert as_dict(back) == kw
        assert m.Decoder().feed(wire + wire[:7]) == [pdu]
        wires.append(wire)
    assert len(set(wires)) == 1  # the twins agree byte for byte


@settings(max_examples=200, deadline=None)
@given(sm_pdu)
def test_round_trip_submit_and_deliver(case):
    cid, kw = case
    for m in twins():
        pdu = m.CLASSES[cid](**kw)
        assert m.decode(m.encode(pdu)) == pdu


def outcome(m, data):
    try:
        pdu = m.decode(data)
    except PduError as e:
        return ("err", e.command_status, e.command_id, e.sequence_number)
    return ("ok", type(pdu).__name__, repr(as_dict(pdu)))


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_only_pdu_error(data):
    results = {outcome(m, data) for m in twins()}
    assert len(results) == 1


@settings(max_examples=400, deadline=None)
@given(any_pdu, st.data())
def test_mutated_pdus_only_pdu_error_and_twins_agree(case, data):
    cid, kw = case
    wire = bytearray(smpp_py.encode(smpp_py.CLASSES[cid](**kw)))
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(4, len(wire) - 1))  # keep command_length consistent
        wire[i] = data.draw(u8)
    cut = data.draw(st.integers(16, len(wire)))
    wire = bytes(wire[:cut])
    wire = struct.pack(">I", len(wire)) + wire[4:]
    results = {outcome(m, wire) for m in twins()}
    assert len(results) == 1


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=60), max_size=6), st.integers(16, 300))
def test_feed_arbitrary_stream(chunks, max_length):
    for m in twins():
        dec = m.Decoder(max_length=max_length)
        try:
            for chunk in chunks:
                for item in dec.feed(chunk):
                    assert isinstance(item, (PduError, m.Pdu))
        except FramingError:
            pass
