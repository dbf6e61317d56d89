"""Golden byte vectors for every SMPP 3.4 PDU, against both codec twins: encode gives
exactly these bytes, decode gives back an equal object."""

import struct

import pytest

from gateway.codec.smpp_consts import CommandId as C
from gateway.codec.smpp_consts import Tlv

pytestmark = pytest.mark.codec


def frame(cid, status, seq, body=b""):
    return struct.pack(">IIII", 16 + len(body), cid, status, seq) + body


BIND_BODY = b"gw\0pw\0\0\x34\x01\x01\0"
SM_BODY = (b"CMT\0" b"\x01\x01" b"15005550006\0" b"\x01\x01" b"15551234567\0"
           b"\x40\x00\x01" b"\0" b"000001000000000R\0" b"\x01\x00\x08\x00"
           b"\x02\x00\x41" b"\x02\x0c\x00\x02\x12\x34" b"\x14\x00\x00\x01\xff")
DLR_TEXT = b"id:abc sub:001 dlvrd:001 submit date:2401011200 done date:2401011201 stat:DELIVRD err:000 text:hi"
DLR_BODY = (b"\0" b"\x01\x01" b"15551234567\0" b"\x01\x01" b"15005550006\0" b"\x04\x00\x00"
            b"\0\0" b"\x00\x00\x00\x00" + bytes([len(DLR_TEXT)]) + DLR_TEXT
            + b"\x00\x1e\x00\x04abc\0" b"\x04\x27\x00\x01\x02" b"\x04\x23\x00\x03\x03\x00\x00")
SM_FIELDS = dict(service_type="CMT", source_addr_ton=1, source_addr_npi=1,
                 source_addr="15005550006", dest_addr_ton=1, dest_addr_npi=1,
                 destination_addr="15551234567", esm_class=0x40, protocol_id=0,
                 priority_flag=1, schedule_delivery_time="",
                 validity_period="000001000000000R", registered_delivery=1,
                 replace_if_present_flag=0, data_coding=8, sm_default_msg_id=0,
                 short_message=b"\x00\x41", tlvs={Tlv.SAR_MSG_REF_NUM: 0x1234, 0x1400: b"\xff"})
DLR_FIELDS = dict(source_addr_ton=1, source_addr_npi=1, source_addr="15551234567",
                  dest_addr_ton=1, dest_addr_npi=1, destination_addr="15005550006",
                  esm_class=4, short_message=DLR_TEXT,
                  tlvs={Tlv.RECEIPTED_MESSAGE_ID: "abc", Tlv.MESSAGE_STATE: 2,
                        Tlv.NETWORK_ERROR_CODE: b"\x03\x00\x00"})

# (class name, constructor kwargs, expected frame)
VECTORS = [
    ("BindTransmitter", dict(sequence_number=1, system_id="gw", password="pw", addr_ton=1,
                             addr_npi=1), frame(C.BIND_TRANSMITTER, 0, 1, BIND_BODY)),
    ("BindReceiver", dict(sequence_number=1, system_id="gw", password="pw", addr_ton=1,
                          addr_npi=1), frame(C.BIND_RECEIVER, 0, 1, BIND_BODY)),
    ("BindTransceiver", dict(sequence_number=1, system_id="gw", password="pw", addr_ton=1,
                             addr_npi=1), frame(C.BIND_TRANSCEIVER, 0, 1, BIND_BODY)),
    ("BindTransceiverResp", dict(sequence_number=1, system_id="smsc",
                                 tlvs={Tlv.SC_INTERFACE_VERSION: 0x34}),
     frame(C.BIND_TRANSCEIVER_RESP, 0, 1, b"smsc\0\x02\x10\x00\x01\x34")),
    ("BindTransmitterResp", dict(sequence_number=1, command_status=0x0E),
     frame(C.BIND_TRANSMITTER_RESP, 0x0E, 1, b"\0")),
    ("BindReceiverResp", dict(sequence_number=1, system_id="s"),
     frame(C.BIND_RECEIVER_RESP, 0, 1, b"s\0")),
    ("Outbind", dict(sequence_number=2, system_id="smsc", password="pw"),
     frame(C.OUTBIND, 0, 2, b"smsc\0pw\0")),
    ("Unbind", dict(sequence_number=3), frame(C.UNBIND, 0, 3)),
    ("UnbindResp", dict(sequence_number=3), frame(C.UNBIND_RESP, 0, 3)),
    ("EnquireLink", dict(sequence_number=0xFFFFFFFF), frame(C.ENQUIRE_LINK, 0, 0xFFFFFFFF)),
    ("EnquireLinkResp", dict(sequence_number=4), frame(C.ENQUIRE_LINK_RESP, 0, 4)),
    ("GenericNack", dict(sequence_number=5, command_status=3), frame(C.GENERIC_NACK, 3, 5)),
    ("SubmitSm", dict(sequence_number=6, **SM_FIELDS), frame(C.SUBMIT_SM, 0, 6, SM_BODY)),
    ("SubmitSmResp", dict(sequence_number=6, message_id="abc123"),
     frame(C.SUBMIT_SM_RESP, 0, 6, b"abc123\0")),
    ("DeliverSm", dict(sequence_number=7, **DLR_FIELDS), frame(C.DELIVER_SM, 0, 7, DLR_BODY)),
    ("DeliverSmResp", dict(sequence_number=7), frame(C.DELIVER_SM_RESP, 0, 7, b"\0")),
    ("DataSm", dict(sequence_number=8, source_addr="a", dest_addr_ton=1, dest_addr_npi=1,
                    destination_addr="b", registered_delivery=1,
                    tlvs={Tlv.MESSAGE_PAYLOAD: b"hello"}),
     frame(C.DATA_SM, 0, 8, b"\0\0\0a\0\x01\x01b\0\x00\x01\x00\x04\x24\x00\x05hello")),
    ("DataSmResp", dict(sequence_number=8, message_id="id9"),
     frame(C.DATA_SM_RESP, 0, 8, b"id9\0")),
    ("QuerySm", dict(sequence_number=9, message_id="id9", source_addr_ton=1,
                     source_addr_npi=1, source_addr="123"),
     frame(C.QUERY_SM, 0, 9, b"id9\0\x01\x01123\0")),
    ("QuerySmResp", dict(sequence_number=9, message_id="id9", final_date="240101120000000+",
                         message_state=2),
     frame(C.QUERY_SM_RESP, 0, 9, b"id9\x00240101120000000+\0\x02\x00")),
    ("CancelSm", dict(sequence_number=10, message_id="id9", source_addr_ton=1,
                      source_addr_npi=1, source_addr="123", dest_addr_ton=1,
                      dest_addr_npi=1, destination_addr="456"),
     frame(C.CANCEL_SM, 0, 10, b"\0id9\0\x01\x01123\0\x01\x01456\0")),
    ("CancelSmResp", dict(sequence_number=10), frame(C.CANCEL_SM_RESP, 0, 10)),
    ("ReplaceSm", dict(sequence_number=11, message_id="id9", source_addr_ton=1,
                       source_addr_npi=1, source_addr="123", registered_delivery=1,
                       short_message=b"new"),
     frame(C.REPLACE_SM, 0, 11, b"id9\0\x01\x01123\0\0\0\x01\x00\x03new")),
    ("ReplaceSmResp", dict(sequence_number=11), frame(C.REPLACE_SM_RESP, 0, 11)),
    ("SubmitMulti", dict(sequence_number=12, source_addr_ton=1, source_addr_npi=1,
                         source_addr="123",
                         dest_addresses=[(1, 1, 1, "456"), (2, 0, 0, "list")],
                         short_message=b"hi"),
     frame(C.SUBMIT_MULTI, 0, 12, b"\0\x01\x01123\0\x02\x01\x01\x01456\0\x02list\0"
           b"\x00\x00\x00\0\0\x00\x00\x00\x00\x02hi")),
    ("SubmitMultiResp", dict(sequence_number=12, message_id="m1",
                             unsuccess_sme=[(1, 1, "456", 0x0B)]),
     frame(C.SUBMIT_MULTI_RESP, 0, 12, b"m1\0\x01\x01\x01456\0\x00\x00\x00\x0b")),
    ("AlertNotification", dict(sequence_number=13, source_addr_ton=1, source_addr_npi=1,
                               source_addr="123", esme_addr_ton=1, esme_addr_npi=1,
                               esme_addr="456", tlvs={Tlv.MS_AVAILABILITY_STATUS: 0}),
     frame(C.ALERT_NOTIFICATION, 0, 13, b"\x01\x01123\0\x01\x01456\0\x04\x22\x00\x01\x00")),
]


def test_vectors_cover_every_operation(smpp):
    assert {name for name, _, _ in VECTORS} == {c.__name__ for c in smpp.CLASSES.values()}
    assert len(smpp.CLASSES) == 27


@pytest.mark.parametrize("name,kwargs,wire", VECTORS, ids=[v[0] for v in VECTORS])
def test_golden_encode_decode(smpp, name, kwargs, wire):
    cls = getattr(smpp, name)
    pdu = cls(**kwargs)
    assert smpp.encode(pdu) == wire
    back = smpp.decode(wire)
    assert type(back) is cls
    assert back == pdu
    assert back.command_id == struct.unpack_from(">I", wire, 4)[0]
    for key, value in kwargs.items():
        assert getattr(back, key) == value


def test_dlr_fields_typed(smpp):
    dlr = smpp.decode(frame(C.DELIVER_SM, 0, 7, DLR_BODY))
    assert dlr.esm_class == 4 and dlr.short_message == DLR_TEXT
    assert dlr.tlvs == {0x001E: "abc", 0x0427: 2, 0x0423: b"\x03\x00\x00"}
    assert list(dlr.tlvs) == [0x001E, 0x0427, 0x0423]  # wire order kept
    assert isinstance(dlr.source_addr, str)


def test_bodyless_error_responses_decode(smpp):
    for cls_name, cid in (("SubmitSmResp", C.SUBMIT_SM_RESP),
                          ("BindTransceiverResp", C.BIND_TRANSCEIVER_RESP),
                          ("DataSmResp", C.DATA_SM_RESP), ("QuerySmResp", C.QUERY_SM_RESP),
                          ("SubmitMultiResp", C.SUBMIT_MULTI_RESP),
                          ("DeliverSmResp", C.DELIVER_SM_RESP)):
        pdu = smpp.decode(frame(cid, 0x58, 42))
        assert type(pdu) is getattr(smpp, cls_name)
        assert (pdu.command_status, pdu.sequence_number, pdu.tlvs) == (0x58, 42, None)
        assert getattr(pdu, "message_id", getattr(pdu, "system_id", "")) == ""


def test_vendor_status_and_unknown_data_coding_are_plain_ints(smpp):
    resp = smpp.decode(frame(C.SUBMIT_SM_RESP, 0x401, 1, b"x\0"))
    assert resp.command_status == 0x401 and type(resp.command_status) is int
    sm = smpp.SubmitSm(1, data_coding=0xF0, short_message=b"\x01")
    back = smpp.decode(smpp.encode(sm))
    assert back.data_coding == 0xF0 and type(back.data_coding) is int


def test_unknown_and_malformed_tlvs_round_trip_unchanged(smpp):
    tlvs = (b"\x14\x00\x00\x03abc"          # vendor tag: raw bytes
            b"\x04\x27\x00\x02\x00\x02"     # message_state with a 2-octet value: raw
            b"\x00\x1e\x00\x03abc"          # receipted_message_id without NUL: raw
            b"\x02\x0c\x00\x02\x00\x07")    # sar_msg_ref_num well formed: int
    wire = frame(C.DELIVER_SM, 0, 3, DLR_BODY[:DLR_BODY.index(b"\x00\x1e")] + tlvs)
    pdu = smpp.decode(wire)
    assert pdu.tlvs == {0x1400: b"abc", 0x0427: b"\x00\x02", 0x001E: b"abc", 0x020C: 7}
    assert smpp.encode(pdu) == wire


def test_encode_many_is_concatenation(smpp):
    pdus = [smpp.EnquireLink(1), smpp.SubmitSmResp(2, 0, "a"), smpp.SubmitSm(3)]
    assert smpp.encode_many(pdus) == b"".join(smpp.encode(p) for p in pdus)
    assert smpp.encode_many([]) == b""
