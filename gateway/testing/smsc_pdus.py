"""PDU builders of the SMSC simulator: delivery receipts, MO messages, DLR state weights.

Owns: the DLR ``deliver_sm`` (esm_class 0x04, SMPP 3.4 Appendix B text *and* the
receipted_message_id / message_state TLVs, network_error_code on failures), MO
``deliver_sm`` lists (multipart with an 8-bit-reference UDH, IEI 0x00), and parsing of
``DELIVRD=0.9,UNDELIV=0.1``. Rules: pure functions, no I/O, no clock of their own
(``stamp`` is passed in); text is GSM 03.38 unpacked when the whole text allows it, else
UCS-2 (data_coding 8), split on characters so no escape or surrogate pair is cut.
"""

from __future__ import annotations

from gateway import codec

MESSAGE_STATES = {"ENROUTE": 1, "DELIVRD": 2, "EXPIRED": 3, "DELETED": 4, "UNDELIV": 5,
                  "ACCEPTD": 6, "UNKNOWN": 7, "REJECTD": 8}


def parse_dlr_states(text: str) -> dict:
    """``"DELIVRD=0.9,UNDELIV=0.1"`` -> ``{"DELIVRD": 0.9, "UNDELIV": 0.1}``."""
    out = {}
    for item in filter(None, (p.strip() for p in text.split(","))):
        name, _, weight = item.partition("=")
        name = name.strip().upper()
        if name not in MESSAGE_STATES:
            raise ValueError(f"unknown DLR state {name!r}")
        out[name] = float(weight) if weight else 1.0
    if not out:
        raise ValueError("no DLR states")
    return out


def dlr_for(sub, message_id: str, stat: str, stamp: str):
    """The delivery receipt answering submit ``sub`` (sequence_number left 0)."""
    ok = stat == "DELIVRD"
    body = sub.short_message[:20].decode("latin-1")
    text = (f"id:{message_id} sub:001 dlvrd:{'001' if ok else '000'} submit date:{stamp} "
            f"done date:{stamp} stat:{stat} err:{'000' if ok else '001'} text:{body}")
    tlvs = {codec.Tlv.RECEIPTED_MESSAGE_ID: message_id,
            codec.Tlv.MESSAGE_STATE: MESSAGE_STATES[stat]}
    if not ok:
        tlvs[codec.Tlv.NETWORK_ERROR_CODE] = b"\x03\x00\x01"
    return codec.DeliverSm(0, source_addr_ton=sub.dest_addr_ton,
                           source_addr_npi=sub.dest_addr_npi,
                           source_addr=sub.destination_addr,
                           dest_addr_ton=sub.source_addr_ton,
                           dest_addr_npi=sub.source_addr_npi,
                           destination_addr=sub.source_addr, esm_class=0x04,
                           short_message=text.encode("latin-1"), tlvs=tlvs)


def mo_pdus(source: str, dest: str, text: str, parts: int, ref: int) -> list:
    """deliver_sm PDUs carrying ``text``; ``parts`` > 1 splits it with UDH ref ``ref``."""
    if parts <= 1:
        data_coding, payload = encode_text(text)
        return [codec.DeliverSm(0, source_addr=source, destination_addr=dest,
                                data_coding=data_coding, short_message=payload)]
    pdus = []
    per = -(-len(text) // parts)
    for i in range(parts):
        data_coding, chunk = encode_text(text[i * per:(i + 1) * per], text)
        udh = bytes((5, 0, 3, ref & 0xFF, parts, i + 1))
        pdus.append(codec.DeliverSm(0, source_addr=source, destination_addr=dest,
                                    esm_class=0x40, data_coding=data_coding,
                                    short_message=udh + chunk))
    return pdus


def encode_text(text: str, whole: str | None = None) -> tuple[int, bytes]:
    """(data_coding, payload): GSM 03.38 unpacked when ``whole`` allows it, else UCS-2."""
    try:
        from gateway.codec import gsm
    except ImportError:
        from gateway.codec import gsm_py as gsm
    if gsm.is_gsm(whole if whole is not None else text):
        return 0, gsm.encode(text)
    return 8, text.encode("utf-16-be")
