"""Delivery receipts: text and TLV forms, the Twilio outcome map, id variants."""

from datetime import datetime

import pytest
from aiosmpplib.protocol import DeliverSm
from hypothesis import given
from hypothesis import strategies as st

from gateway.codec import dlr

# the reference DLR of /work/shared/reference/perf.md (deliver_sm fixture)
REFERENCE = (b"id:6B1F0C3A9E4D2B78 sub:001 dlvrd:001 submit date:2611221200 "
             b"done date:2611221201 stat:DELIVRD err:000 text:hello")


def test_reference_receipt_text_and_tlvs():
    r = dlr.parse(REFERENCE, {0x001E: "6B1F0C3A9E4D2B78", 0x0427: 2})
    assert r == dlr.Receipt(
        message_id="6B1F0C3A9E4D2B78", stat="DELIVRD", err="000",
        submit_date="2611221200", done_date="2611221201", text="hello", message_state=2)
    assert dlr.twilio_outcome(r) == ("delivered", None)
    assert dlr.parse_date(r.submit_date) == (2026, 11, 22, 12, 0, 0)


def test_text_only_reference():
    r = dlr.parse(REFERENCE, None)
    assert (r.message_id, r.stat, r.err, r.message_state) == ("6B1F0C3A9E4D2B78", "DELIVRD",
                                                                "000", None)


def test_twelve_digit_dates_and_case_variants():
    sm = (b"id:0123456789 Sub:001 Dlvrd:000 Submit Date:261122120005 "
          b"Done Date:261122120107 Stat:UNDELIV Err:027 Text:Your code is 1234 stat:X")
    r = dlr.parse(sm, {})
    assert r.message_id == "0123456789"
    assert (r.submit_date, r.done_date) == ("261122120005", "261122120107")
    assert dlr.parse_date(r.done_date) == (2026, 11, 22, 12, 1, 7)
    assert r.stat == "UNDELIV" and r.err == "027"
    assert r.text == "Your code is 1234 stat:X"  # text is last and taken whole
    assert dlr.twilio_outcome(r) == ("undelivered", 30003)


def test_missing_fields_and_underscore_dates():
    r = dlr.parse(b"id:abc stat:EXPIRED submit_date:2611221200", None)
    assert r == dlr.Receipt(message_id="abc", stat="EXPIRED", submit_date="2611221200")
    assert r.done_date is None and r.err == "" and r.text == ""
    assert dlr.twilio_outcome(r) == ("undelivered", 30036)


def test_long_stat_spellings():
    assert dlr.parse(b"id:1 stat:DELIVERED", None).stat == "DELIVRD"
    assert dlr.parse(b"id:1 stat:rejected", None).stat == "REJECTD"


def test_tlvs_win_over_text():
    tlvs = {0x001E: b"9f00\x00", 0x0427: 5, 0x0423: b"\x03\x00\x01"}
    r = dlr.parse(REFERENCE, tlvs)
    assert r.message_id == "9f00"
    assert r.stat == "UNDELIV" and r.message_state == 5
    assert r.err == "001" and r.network_error_code == b"\x03\x00\x01"
    assert dlr.twilio_outcome(r) == ("undelivered", 30005)


def test_tlv_only_receipt_and_message_state_as_bytes():
    r = dlr.parse(b"", {0x001E: "77", 0x0427: b"\x03"})
    assert (r.message_id, r.stat, r.message_state) == ("77", "EXPIRED", 3)


def test_receipt_in_message_payload():
    r = dlr.parse(b"", {0x0424: b"id:55 stat:DELIVRD err:0"})
    assert (r.message_id, r.stat) == ("55", "DELIVRD")


@pytest.mark.parametrize("sm", [b"", b"hello there", b"stat:DELIVRD err:000"])
def test_not_a_receipt(sm):
    assert dlr.parse(sm, None) is None


@pytest.mark.parametrize(
    "stat, err, outcome",
    [
        ("DELIVRD", "000", ("delivered", None)),
        ("ACCEPTD", "000", (None, None)),
        ("ENROUTE", "000", (None, None)),
        ("UNDELIV", "001", ("undelivered", 30005)),
        ("UNDELIV", "005", ("undelivered", 30005)),
        ("UNDELIV", "027", ("undelivered", 30003)),
        ("UNDELIV", "031", ("undelivered", 30003)),
        ("UNDELIV", "011", ("undelivered", 30006)),
        ("UNDELIV", "013", ("undelivered", 30004)),
        ("UNDELIV", "036", ("undelivered", 30007)),
        ("UNDELIV", "000", ("undelivered", 30008)),
        ("UNDELIV", "", ("undelivered", 30008)),
        ("UNDELIV", "x9", ("undelivered", 30008)),
        ("EXPIRED", "000", ("undelivered", 30036)),
        ("REJECTD", "000", ("undelivered", 30007)),
        ("DELETED", "000", ("undelivered", 30008)),
        ("UNKNOWN", "000", ("undelivered", 30008)),
        ("WHATEVER", "000", ("undelivered", 30008)),
    ],
)
def test_twilio_outcome_map(stat, err, outcome):
    r = dlr.parse(f"id:1 stat:{stat} err:{err}".encode(), None)
    assert dlr.twilio_outcome(r) == outcome


@pytest.mark.parametrize(
    "state, outcome",
    [(1, (None, None)), (2, ("delivered", None)), (3, ("undelivered", 30036)),
     (4, ("undelivered", 30008)), (5, ("undelivered", 30008)), (6, (None, None)),
     (7, ("undelivered", 30008)), (8, ("undelivered", 30007)), (99, ("undelivered", 30008))],
)
def test_message_state_ints_map_the_same(state, outcome):
    r = dlr.parse(b"", {0x001E: "1", 0x0427: state})
    assert dlr.twilio_outcome(r) == outcome


def test_id_variants_hex_and_decimal():
    v = dlr.id_variants("6B1F0C3A9E4D2B78")
    assert v[0] == "6B1F0C3A9E4D2B78"
    assert "6b1f0c3a9e4d2b78" in v and str(0x6B1F0C3A9E4D2B78) in v
    d = dlr.id_variants(str(0x6B1F0C3A9E4D2B78))
    assert "6b1f0c3a9e4d2b78" in d and "6B1F0C3A9E4D2B78" in d
    assert "1a" in dlr.id_variants("0001A") and "26" in dlr.id_variants("1a")
    assert dlr.id_variants("msg-1") == ("msg-1", "MSG-1")
    assert len(set(v)) == len(v)


@given(st.integers(0, 2**64 - 1))
def test_id_variants_meet_in_the_middle(n):
    """A carrier answering in hex and reporting in decimal (or the reverse) still matches."""
    assert set(dlr.id_variants(format(n, "X"))) & set(dlr.id_variants(str(n)))


@given(
    mid=st.text("0123456789abcdef", min_size=1, max_size=20),
    stat=st.sampled_from(["DELIVRD", "UNDELIV", "EXPIRED", "REJECTD", "ACCEPTD"]),
    err=st.integers(0, 999),
    when=st.datetimes(datetime(2000, 1, 1), datetime(2099, 12, 31)),
    body=st.text("abc XYZ:019", max_size=20),
)
def test_aiosmpplib_encoded_receipts_parse(mid, stat, err, when, body):
    when = when.replace(second=0, microsecond=0)
    encoded = DeliverSm.encode_receipt({"id": mid, "sub": 1, "dlvrd": 1, "submit date": when,
                                        "done date": when, "stat": stat, "err": err,
                                        "text": body})
    r = dlr.parse(encoded.encode(), None)
    assert (r.message_id, r.stat, int(r.err)) == (mid, stat, err)
    assert dlr.parse_date(r.done_date)[:5] == (when.year, when.month, when.day, when.hour,
                                                when.minute)
    assert r.text == body.strip()
