"""Decode errors, stream framing and resp_for, against both SMPP codec twins."""

import struct

import pytest

from gateway import codec
from gateway.codec import _select
from gateway.codec.smpp_consts import CommandId as C
from gateway.codec.smpp_consts import FramingError, PduError, Status

pytestmark = pytest.mark.codec


def frame(cid, status, seq, body=b""):
    return struct.pack(">IIII", 16 + len(body), cid, status, seq) + body


def sm_frame(smpp, seq=1, **kw):
    return smpp.encode(smpp.SubmitSm(seq, source_addr="123", destination_addr="456",
                                     short_message=b"hello", **kw))


def test_extension_loaded_when_built():
    if _select.EXTENSIONS_EXPECTED:
        assert codec.BACKEND == "cython"
    else:
        assert codec.BACKEND == "python"


def test_unknown_command_id(smpp):
    with pytest.raises(PduError) as ei:
        smpp.decode(frame(0x00000077, 0, 9, b"xx"))
    e = ei.value
    assert (e.command_status, e.command_id, e.sequence_number) == (Status.ESME_RINVCMDID,
                                                                  0x77, 9)
    nack = smpp.resp_for(e)
    assert type(nack) is smpp.GenericNack
    assert (nack.sequence_number, nack.command_status) == (9, Status.ESME_RINVCMDID)


@pytest.mark.parametrize("cut", [1, 5, 16, 21])
def test_truncated_submit_sm_body(smpp, cut):
    wire = sm_frame(smpp, seq=4)
    body = wire[16:16 + cut]
    with pytest.raises(PduError) as ei:
        smpp.decode(frame(C.SUBMIT_SM, 0, 4, body))
    assert ei.value.command_status == Status.ESME_RINVCMDLEN
    assert ei.value.sequence_number == 4 and ei.value.command_id == C.SUBMIT_SM


def test_sm_length_past_end(smpp):
    wire = bytearray(sm_frame(smpp, seq=5))
    wire[-6] = 200  # sm_length of the 5-byte short message
    with pytest.raises(PduError) as ei:
        smpp.decode(bytes(wire))
    assert ei.value.command_status == Status.ESME_RINVMSGLEN


@pytest.mark.parametrize("tail", [b"\x04", b"\x04\x27\x00", b"\x04\x27\x00\x05\x01"])
def test_broken_tlv_stream(smpp, tail):
    wire = sm_frame(smpp, seq=6)[16:] + tail
    with pytest.raises(PduError) as ei:
        smpp.decode(frame(C.SUBMIT_SM, 0, 6, wire))
    assert ei.value.command_status == Status.ESME_RINVOPTPARSTREAM


def test_bad_submit_multi_dest_flag(smpp):
    body = b"\0\x01\x01123\0\x01\x07"
    with pytest.raises(PduError) as ei:
        smpp.decode(frame(C.SUBMIT_MULTI, 0, 3, body + b"\0" * 20))
    assert ei.value.command_status == Status.ESME_RINVDESTFLAG


def test_decode_length_mismatch_and_short(smpp):
    wire = sm_frame(smpp)
    for bad in (wire[:10], wire[:-1], wire + b"\0"):
        with pytest.raises(PduError) as ei:
            smpp.decode(bad)
        assert ei.value.command_status == Status.ESME_RINVCMDLEN


def test_decoder_byte_by_byte_equals_whole(smpp):
    pdus = [smpp.SubmitSm(i, source_addr="1", short_message=b"x" * i) for i in range(1, 6)]
    pdus.append(smpp.EnquireLink(99))
    wire = smpp.encode_many(pdus)
    dec = smpp.Decoder()
    got = []
    for i in range(len(wire)):
        got.extend(dec.feed(wire[i:i + 1]))
    assert got == pdus and dec.buffered == 0
    dec2 = smpp.Decoder()
    assert dec2.feed(wire[:50]) == pdus[:1] and dec2.buffered == 50 - len(smpp.encode(pdus[0]))
    assert dec2.feed(bytearray(wire[50:])) == pdus[1:]


def test_decoder_returns_errors_as_items(smpp):
    wire = (smpp.encode(smpp.EnquireLink(1)) + frame(0x99, 0, 2) +
            frame(C.DELIVER_SM, 0, 3, b"\0\x01") + smpp.encode(smpp.UnbindResp(4)))
    items = smpp.Decoder().feed(wire)
    assert [type(i) for i in items] == [smpp.EnquireLink, PduError, PduError, smpp.UnbindResp]
    assert (items[1].command_status, items[1].sequence_number) == (Status.ESME_RINVCMDID, 2)
    assert (items[2].command_status, items[2].command_id) == (Status.ESME_RINVCMDLEN,
                                                             C.DELIVER_SM)
    resp = smpp.resp_for(items[2])  # an unparseable deliver_sm gets an error deliver_sm_resp
    assert type(resp) is smpp.DeliverSmResp
    assert (resp.sequence_number, resp.command_status) == (3, Status.ESME_RINVCMDLEN)


@pytest.mark.parametrize("length", [0, 8, 15, 70000])
def test_framing_error(smpp, length):
    good = smpp.encode(smpp.EnquireLink(1))
    bad = struct.pack(">IIII", length, C.SUBMIT_SM, 0, 7)
    dec = smpp.Decoder(max_length=65536)
    with pytest.raises(FramingError) as ei:
        dec.feed(good + bad)
    e = ei.value
    assert isinstance(e, PduError) and e.command_status == Status.ESME_RINVCMDLEN
    assert e.pdus == [smpp.EnquireLink(1)] and e.sequence_number == 7
    with pytest.raises(FramingError):  # the stream cannot be resynchronised
        dec.feed(good)


def test_max_length_is_configurable(smpp):
    wire = sm_frame(smpp)
    assert len(smpp.Decoder(max_length=len(wire)).feed(wire)) == 1
    with pytest.raises(FramingError):
        smpp.Decoder(max_length=len(wire) - 1).feed(wire)


def test_resp_for_every_request(smpp):
    expected = {C.BIND_RECEIVER: C.BIND_RECEIVER_RESP, C.BIND_TRANSMITTER:
                C.BIND_TRANSMITTER_RESP, C.BIND_TRANSCEIVER: C.BIND_TRANSCEIVER_RESP,
                C.UNBIND: C.UNBIND_RESP, C.ENQUIRE_LINK: C.ENQUIRE_LINK_RESP,
                C.SUBMIT_SM: C.SUBMIT_SM_RESP, C.DELIVER_SM: C.DELIVER_SM_RESP,
                C.DATA_SM: C.DATA_SM_RESP, C.QUERY_SM: C.QUERY_SM_RESP,
                C.CANCEL_SM: C.CANCEL_SM_RESP, C.REPLACE_SM: C.REPLACE_SM_RESP,
                C.SUBMIT_MULTI: C.SUBMIT_MULTI_RESP, C.OUTBIND: C.GENERIC_NACK,
                C.ALERT_NOTIFICATION: C.GENERIC_NACK, C.SUBMIT_SM_RESP: C.GENERIC_NACK}
    for cid, rid in expected.items():
        req = smpp.CLASSES[cid](1234)
        resp = smpp.resp_for(req, Status.ESME_RTHROTTLED)
        assert resp.command_id == rid
        assert (resp.sequence_number, resp.command_status) == (1234, Status.ESME_RTHROTTLED)
        back = smpp.decode(smpp.encode(resp))
        assert back == resp


@pytest.mark.parametrize("kwargs", [dict(source_addr_ton=256), dict(esm_class=-1),
                                    dict(source_addr="\u20ac"), dict(short_message=b"x" * 256),
                                    dict(tlvs={0x1400: 5}), dict(tlvs={0x0427: 256}),
                                    dict(tlvs={0x0424: b"x" * 70000})])
def test_encode_rejects_values_that_do_not_fit(smpp, kwargs):
    try:
        pdu = smpp.SubmitSm(1, **kwargs)
    except OverflowError:  # the Cython twin's C int fields refuse at construction
        return
    with pytest.raises(ValueError):
        smpp.encode(pdu)
