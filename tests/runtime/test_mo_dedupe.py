"""MoDedupe: the key tells MOs apart (text, UDH/SAR reference, carrier, addresses); an MO
whose answer could not be sent absorbs one resend; an answered one absorbs none; entries
expire after the window; every outcome clears the ``mo:`` token."""

from gateway import codec
from gateway.runtime.mo_dedupe import MoDedupe, mo_key
from gateway.testing.smsc_pdus import mo_pdus


class Clears:
    def __init__(self) -> None:
        self.cleared: list[tuple[str, str]] = []

    def clear_due_nowait(self, sid: str, token: str) -> None:
        self.cleared.append((sid, token))


def pdu(text: str = "YES", parts: int = 1, ref: int = 0, index: int = 0):
    return mo_pdus("15558675310", "15005550006", text, parts, ref)[index]


def test_key_covers_text_udh_reference_sar_carrier_and_addresses():
    base = mo_key("a", "+1", "+2", pdu())
    assert base == mo_key("a", "+1", "+2", pdu())
    assert base != mo_key("b", "+1", "+2", pdu())
    assert base != mo_key("a", "+3", "+2", pdu())
    assert base != mo_key("a", "+1", "+2", pdu("NO"))
    long = "x" * 200
    assert mo_key("a", "+1", "+2", pdu(long, 2, 1)) != mo_key("a", "+1", "+2", pdu(long, 2, 2))
    sar = pdu()
    sar.tlvs = {codec.Tlv.SAR_MSG_REF_NUM: 7}
    assert mo_key("a", "+1", "+2", sar) != base


def test_unsent_answer_absorbs_one_resend_answered_none_and_expiry():
    store = Clears()
    d = MoDedupe(store, window=600)
    d.answered("SM1", "k1", True, 1000.0)           # acked: a repeat is a new message
    assert store.cleared == [("SM1", "mo:k1")]
    assert d.take("k1", 1001.0) is None
    d.answered("SM2", "k2", False, 1000.0)          # link gone: the carrier resends
    assert d.take("k2", 1001.0) == "SM2" and d.absorbed == 1
    assert store.cleared[-1] == ("SM2", "mo:k2")
    assert d.take("k2", 1002.0) is None             # one resend per stored MO
    d.answered("SM3", "k3", False, 1000.0)
    d.expire(1700.0)
    assert len(d) == 0 and store.cleared[-1] == ("SM3", "mo:k3")
    assert d.take("k3", 1701.0) is None
