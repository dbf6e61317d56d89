"""REGISTER handling of the SIP core: 405 by default (carriers are configured, never
registered); with ``accept_register`` a 200 echoing Contact and Expires (pyVoIP must
register before it calls), retransmissions absorbed by the transaction layer."""

from __future__ import annotations

from gateway.codec.sip import parse
from gateway.proto.sip_core import UaCore

REGISTER = (
    b"REGISTER sip:127.0.0.1 SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 127.0.0.1:5099;branch=z9hG4bKreg1;rport\r\n"
    b'From: "u" <sip:u@127.0.0.1>;tag=abc\r\n'
    b'To: "u" <sip:u@127.0.0.1>\r\n'
    b"Call-ID: reg-1@127.0.0.1\r\n"
    b"CSeq: 1 REGISTER\r\n"
    b"Contact: <sip:u@127.0.0.1:5099;transport=UDP>\r\n"
    b"Expires: 120\r\n"
    b"Content-Length: 0\r\n\r\n")


def _answers(core: UaCore, data: bytes, now: float = 0.0):
    core.receive(data, ("127.0.0.1", 5099), "UDP", now)
    return [parse(o.data) for o in core.data_to_send()]


def test_register_refused_by_default():
    (resp,) = _answers(UaCore("127.0.0.1", 5060), REGISTER)
    assert resp.status == 405 and "INVITE" in (resp.get("Allow") or "")


def test_register_accepted_when_enabled_and_retransmission_absorbed():
    core = UaCore("127.0.0.1", 5060, accept_register=True)
    (resp,) = _answers(core, REGISTER)
    assert resp.status == 200 and resp.get("Expires") == "120"
    assert resp.get("Contact") == "<sip:u@127.0.0.1:5099;transport=UDP>"
    assert resp.to.tag and resp.call_id == "reg-1@127.0.0.1"
    (again,) = _answers(core, REGISTER, now=0.5)             # same branch: same answer
    assert again.status == 200 and again.to.tag == resp.to.tag
    assert core.next_events() == []                            # nothing for the TU
