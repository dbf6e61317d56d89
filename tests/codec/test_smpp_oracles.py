"""Differential tests of both SMPP codec twins against code we did not write: aiosmpplib
and smpplib encode -> we decode, we encode -> they decode, on generated submit_sm,
deliver_sm and DLR deliver_sm. Inputs avoid only their documented bugs
(reference/smpp.md §4/§5): aiosmpplib's strict TON/NPI enums, 12-digit DLR dates and
UDHI parsing; smpplib's ignored ``sequence`` keyword (set as an attribute instead)."""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytestmark = pytest.mark.codec

aio = pytest.importorskip("aiosmpplib")
aio_proto = pytest.importorskip("aiosmpplib.protocol")
smpplib_smpp = pytest.importorskip("smpplib.smpp")

CFG = settings(max_examples=60, deadline=None,
               suppress_health_check=[HealthCheck.function_scoped_fixture])
TONS = [int(t) for t in aio.TON]
NPIS = [int(n) for n in aio.NPI]
addr = st.text(st.sampled_from("0123456789+"), max_size=15)
ascii_text = st.text(st.characters(min_codepoint=32, max_codepoint=126), min_size=1,
                     max_size=70)
u8 = st.integers(0, 255)
seq = st.integers(1, 2**31 - 1)
sm_case = st.fixed_dictionaries(dict(
    seq=seq, src=addr, dst=addr, ston=st.sampled_from(TONS), snpi=st.sampled_from(NPIS),
    dton=st.sampled_from(TONS), dnpi=st.sampled_from(NPIS), esm=st.sampled_from([0, 3]),
    pid=u8, prio=st.integers(0, 3), rd=st.integers(0, 1), text=ascii_text,
    ref=st.integers(0, 0xFFFF)))
dlr_case = st.fixed_dictionaries(dict(
    seq=seq, src=addr, dst=addr, msgid=st.text("0123456789abcdef", min_size=1, max_size=20),
    stat=st.sampled_from(["DELIVRD", "UNDELIV", "EXPIRED", "REJECTD"]),
    state=st.integers(1, 8)))


def _aio_decode(wire):
    header = aio_proto.SmppMessage.parse_header(wire)
    cls = aio_proto.DeliverSm if wire[7] == 5 else aio_proto.SubmitSm
    return cls.from_pdu(wire, header)


@CFG
@given(sm_case)
def test_aiosmpplib_submit_sm_both_ways(smpp, c):
    theirs = aio.SubmitSm(
        sequence_num=c["seq"], short_message=c["text"], encoding="ucs2",
        source=aio.PhoneNumber(c["src"], aio.TON(c["ston"]), aio.NPI(c["snpi"])),
        destination=aio.PhoneNumber(c["dst"], aio.TON(c["dton"]), aio.NPI(c["dnpi"])),
        esm_class=c["esm"], protocol_id=c["pid"], priority_flag=c["prio"],
        registered_delivery=c["rd"],
        optional_params=[aio.OptionalParam(0x020C, c["ref"])])
    ours = smpp.decode(theirs.pdu())
    assert type(ours) is smpp.SubmitSm
    assert (ours.sequence_number, ours.source_addr, ours.destination_addr) == (
        c["seq"], c["src"], c["dst"])
    assert (ours.source_addr_ton, ours.source_addr_npi, ours.dest_addr_ton,
            ours.dest_addr_npi) == (c["ston"], c["snpi"], c["dton"], c["dnpi"])
    assert (ours.esm_class, ours.protocol_id, ours.priority_flag, ours.registered_delivery,
            ours.data_coding) == (c["esm"], c["pid"], c["prio"], c["rd"], 8)
    assert ours.short_message == c["text"].encode("utf-16-be")
    assert ours.tlvs == {0x020C: c["ref"]}
    back = _aio_decode(smpp.encode(ours))
    assert (back.sequence_num, back.short_message, back.source, back.destination) == (
        theirs.sequence_num, theirs.short_message, theirs.source, theirs.destination)
    assert (back.esm_class, back.protocol_id, back.priority_flag,
            back.registered_delivery) == (c["esm"], c["pid"], c["prio"], c["rd"])
    assert [(p.tag, p.value) for p in back.optional_params] == [(0x020C, c["ref"])]


@CFG
@given(dlr_case)
def test_aiosmpplib_dlr_both_ways(smpp, c):
    text = (f"id:{c['msgid']} sub:001 dlvrd:001 submit date:2401011200 "
            f"done date:2401011201 stat:{c['stat']} err:000 text:hello")
    theirs = aio.DeliverSm(
        sequence_num=c["seq"], short_message=text, encoding="ascii", esm_class=4,
        source=aio.PhoneNumber(c["src"]), destination=aio.PhoneNumber(c["dst"]),
        optional_params=[aio.OptionalParam(0x001E, c["msgid"]),
                         aio.OptionalParam(0x0427, c["state"])])
    ours = smpp.decode(theirs.pdu())
    assert type(ours) is smpp.DeliverSm and ours.esm_class == 4 and ours.data_coding == 1
    assert ours.short_message == text.encode()
    assert ours.tlvs == {0x001E: c["msgid"], 0x0427: c["state"]}
    back = _aio_decode(smpp.encode(ours))
    assert back.is_receipt()
    receipt = back.parse_receipt()
    assert (receipt["id"], receipt["stat"]) == (c["msgid"], c["stat"])
    assert [(p.tag, p.value) for p in back.optional_params] == [
        (0x001E, c["msgid"]), (0x0427, c["state"])]


def _smpplib_make(name, seq_no, **kw):
    pdu = smpplib_smpp.make_pdu(name, sequence=0, **kw)
    pdu.sequence = seq_no  # smpplib ignores the sequence keyword
    return pdu.generate()


@CFG
@given(sm_case, st.binary(max_size=140), st.sampled_from(["submit_sm", "deliver_sm"]))
def test_smpplib_submit_and_deliver_both_ways(smpp, c, body, name):
    wire = _smpplib_make(
        name, c["seq"], source_addr_ton=c["ston"], source_addr_npi=c["snpi"],
        source_addr=c["src"], dest_addr_ton=c["dton"], dest_addr_npi=c["dnpi"],
        destination_addr=c["dst"], esm_class=c["esm"], protocol_id=c["pid"],
        priority_flag=c["prio"], registered_delivery=c["rd"], data_coding=0xF5,
        short_message=body, sar_msg_ref_num=c["ref"])
    ours = smpp.decode(wire)
    assert type(ours) is (smpp.SubmitSm if name == "submit_sm" else smpp.DeliverSm)
    assert (ours.sequence_number, ours.source_addr, ours.destination_addr, ours.short_message,
            ours.data_coding, ours.tlvs) == (c["seq"], c["src"], c["dst"], body, 0xF5,
                                             {0x020C: c["ref"]})
    assert smpp.encode(ours) == wire
    back = smpplib_smpp.parse_pdu(smpp.encode(ours), sequence=0)
    assert (back.command, back.sequence, back.source_addr, back.destination_addr) == (
        name, c["seq"], c["src"].encode(), c["dst"].encode())
    assert (back.short_message, back.sar_msg_ref_num, back.esm_class, back.protocol_id) == (
        body, c["ref"], c["esm"], c["pid"])


@CFG
@given(dlr_case)
def test_smpplib_dlr_and_resps_both_ways(smpp, c):
    wire = _smpplib_make("deliver_sm", c["seq"], source_addr=c["src"],
                         destination_addr=c["dst"], esm_class=4,
                         short_message=f"id:{c['msgid']} stat:{c['stat']}".encode(),
                         receipted_message_id=c["msgid"], message_state=c["state"],
                         network_error_code=b"\x03\x00\x01")
    ours = smpp.decode(wire)
    assert ours.tlvs == {0x0423: b"\x03\x00\x01", 0x0427: c["state"], 0x001E: c["msgid"]}
    assert smpp.encode(ours) == wire
    resp = smpp.resp_for(ours)
    back = smpplib_smpp.parse_pdu(smpp.encode(resp), sequence=0)
    assert (back.command, back.sequence, back.status) == ("deliver_sm_resp", c["seq"], 0)
    sresp = _smpplib_make("submit_sm_resp", c["seq"], message_id=c["msgid"])
    assert smpp.decode(sresp) == smpp.SubmitSmResp(c["seq"], 0, c["msgid"])
    assert smpp.encode(smpp.SubmitSmResp(c["seq"], 0, c["msgid"])) == sresp
