"""SIP codec: golden vectors, tolerant header forms, RFC 4475 torture messages, TCP
framing, and a fuzz test (any bytes -> a message or SipError, nothing else)."""

import pathlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.codec import sip
from gateway.codec.sip import NameAddr, SipError, StreamDecoder, Uri, Via

FIX = pathlib.Path(__file__).resolve().parents[1] / "fixtures" / "sip"

# RFC 3261 §24.2 (F1), as carried on the wire
INVITE = (b"INVITE sip:bob@biloxi.com SIP/2.0\r\n"
          b"Via: SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bK776asdhds\r\n"
          b"Max-Forwards: 70\r\n"
          b"To: Bob <sip:bob@biloxi.com>\r\n"
          b"From: Alice <sip:alice@atlanta.com>;tag=1928301774\r\n"
          b"Call-ID: a84b4c76e66710@pc33.atlanta.com\r\n"
          b"CSeq: 314159 INVITE\r\n"
          b"Contact: <sip:alice@pc33.atlanta.com>\r\n"
          b"Content-Type: application/sdp\r\n"
          b"Content-Length: 4\r\n\r\nv=0\n")


def test_golden_invite_roundtrip():
    m = sip.parse(INVITE)
    assert isinstance(m, sip.Request) and m.method == "INVITE" and m.uri == "sip:bob@biloxi.com"
    assert m.top_via.branch == "z9hG4bK776asdhds" and m.top_via.transport == "UDP"
    assert m.from_.tag == "1928301774" and m.from_.display == "Alice"
    assert m.to.tag is None and m.to.uri.user == "bob"
    assert (m.cseq.seq, m.cseq.method) == (314159, "INVITE")
    assert m.get("max-forwards") == "70" and m.body == b"v=0\n"
    assert m.encode() == INVITE  # long names, same order, Content-Length last


def test_golden_response_and_encode():
    r = sip.Response(180, None, [("Via", "SIP/2.0/UDP a;branch=z9hG4bK1"), ("From", "<sip:a@b>;tag=1"),
                                 ("To", "<sip:c@d>;tag=2"), ("Call-ID", "x"), ("CSeq", "1 INVITE")])
    data = r.encode()
    assert data.startswith(b"SIP/2.0 180 Ringing\r\n") and data.endswith(b"Content-Length: 0\r\n\r\n")
    back = sip.parse(data)
    assert back.status == 180 and back.to.tag == "2"


def test_compact_case_folded_and_repeated_headers():
    data = (b"BYE sip:a@10.0.0.1 SIP/2.0\r\n"
            b"v: SIP/2.0/UDP 10.0.0.2:5062;branch=z9hG4bKa;rport, SIP/2.0/TCP proxy.example;branch=z9hG4bKb\r\n"
            b"VIA: SIP/2.0/UDP 10.0.0.3;branch=z9hG4bKc;received=1.2.3.4\r\n"
            b"f: <sip:b@x>;tag=f1\r\nt: <sip:a@y>;tag=t1\r\ni: cid\r\n"
            b"cSeQ: 2 BYE\r\nRecord-Route: <sip:p1;lr>,\r\n <sip:p2;lr>\r\nRecord-Route: <sip:p3;lr>\r\n"
            b"Subject: folded\r\n\tline\r\nk: timer, 100rel\r\nl: 0\r\n\r\n")
    m = sip.parse(data)
    vias = m.vias
    assert [v.branch for v in vias] == ["z9hG4bKa", "z9hG4bKb", "z9hG4bKc"]
    assert vias[0].port == 5062 and "rport" in vias[0].params and vias[0].params["rport"] is None
    assert vias[2].response_address() == ("1.2.3.4", 5060)
    assert m.get_all("record-route") == ["<sip:p1;lr>", "<sip:p2;lr>", "<sip:p3;lr>"]
    assert m.get("Subject") == "folded line"
    assert m.get_all("Supported") == ["timer", "100rel"]
    assert m.call_id == "cid" and m.cseq.method == "BYE"


def test_via_rport_and_received():
    v = Via.parse("SIP/2.0/UDP 192.168.1.2:5060;branch=z9hG4bKx;rport=40000;received=203.0.113.9")
    assert v.response_address() == ("203.0.113.9", 40000)
    assert str(Via.parse(str(v))) == str(v)


def test_name_addr_forms():
    na = NameAddr.parse('"A \\"quoted\\" name" <sip:+1555@host:5070;user=phone>;tag=abc;x')
    assert na.display == 'A "quoted" name' and na.tag == "abc" and "x" in na.params
    assert na.uri.user == "+1555" and na.uri.port == 5070 and na.uri.params["user"] == "phone"
    spec = NameAddr.parse("sip:alice@atlanta.com;tag=88")  # addr-spec: params are header params
    assert spec.tag == "88" and spec.uri.params == {}
    assert NameAddr.parse("Anonymous <sip:anonymous@anonymous.invalid>").display == "Anonymous"
    u = Uri.parse("sips:[2001:db8::1]:5061;transport=tcp")
    assert u.hostport() == ("2001:db8::1", 5061)
    assert Uri.parse("tel:+15551234").scheme == "tel"


@pytest.mark.parametrize("data,status", [
    (b"", 400),
    (b"garbage\r\n\r\n", 400),
    (b"INVITE sip:a@b SIP/3.0\r\n\r\n", 505),
    (INVITE.replace(b"CSeq: 314159 INVITE", b"CSeq: x INVITE"), 400),
    (INVITE.replace(b"Call-ID: a84b4c76e66710@pc33.atlanta.com\r\n", b""), 400),
    (INVITE.replace(b"Max-Forwards: 70", b"Max-Forwards: seventy"), 400),
    (INVITE.replace(b"Content-Length: 4", b"Content-Length: 40"), 400),
    (INVITE.replace(b"SIP/2.0/UDP pc33", b"SIP/2.0/UDP"), 400),
    (INVITE + b"x" * 70000, 513),
    (b"SIP/2.0 99 Weird\r\n\r\n", 400),
])
def test_errors_carry_status(data, status):
    with pytest.raises(SipError) as ei:
        sip.parse(data)
    assert ei.value.status == status


@pytest.mark.parametrize("path", sorted((FIX / "valid").glob("*.sip")), ids=lambda p: p.stem)
def test_rfc4475_valid(path):
    m = sip.parse(path.read_bytes())
    assert m.call_id and m.vias and m.cseq.seq >= 0
    again = sip.parse(m.encode())  # what we write we can read back
    assert again.call_id == m.call_id and again.body == m.body


def test_rfc4475_wsinv_details():
    m = sip.parse((FIX / "valid" / "wsinv.sip").read_bytes())
    assert m.to.tag == "1918181833n" and m.from_.tag == "98asjd8"
    assert m.from_.display == 'J Rosenberg \\"'
    assert m.cseq.seq == 9 and m.get("Max-Forwards") == "0068"
    assert [v.branch for v in m.vias] == ["390skdjuw", "z9hG4bK9ikj8", "z9hG4bK30239"]
    assert m.get("NewFangledHeader") == "newfangled value continued newfangled value"
    assert m.contact.params["q"] == "0.33" and len(m.body) == int(m.get("l"))


@pytest.mark.parametrize("path", sorted((FIX / "invalid").glob("*.sip")), ids=lambda p: p.stem)
def test_rfc4475_invalid(path):
    with pytest.raises(SipError) as ei:
        sip.parse(path.read_bytes())
    assert ei.value.status == (505 if path.stem == "badvers" else 400)


def test_stream_decoder_framing():
    dec = StreamDecoder()
    two = b"\r\n\r\n" + INVITE + INVITE.replace(b"314159", b"314160")
    out = []
    for i in range(0, len(two), 7):  # byte-dribble across message boundaries
        out += dec.feed(two[i:i + 7])
    assert [m.cseq.seq for m in out] == [314159, 314160]
    assert all(m.body == b"v=0\n" for m in out)
    assert dec.feed(b"\r\n\r\n") == []  # keepalives
    with pytest.raises(SipError):
        StreamDecoder().feed(b"NOT SIP AT ALL\r\n\r\n")
    with pytest.raises(SipError) as ei:
        StreamDecoder(max_message=100).feed(b"X" * 200)
    assert ei.value.status == 513


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=600))
def test_fuzz_bytes_message_or_sip_error(data):
    try:
        sip.parse(data)
    except SipError as e:
        assert 400 <= e.status < 600


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_fuzz_mutated_invite(data):
    """Mutations of a real message: either parse (and re-encode) or SipError."""
    raw = bytearray(INVITE)
    for _ in range(data.draw(st.integers(1, 6))):
        i = data.draw(st.integers(0, len(raw) - 1))
        raw[i] = data.draw(st.sampled_from(b" :;,<>\"\r\n\t/@=0a\x00\xff"))
    try:
        m = sip.parse(bytes(raw))
        m.encode()
        dec = StreamDecoder()
        dec.feed(bytes(raw))
    except SipError:
        pass
