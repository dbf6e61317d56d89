"""SMPP delivery receipts: parsing both forms, and the map to Twilio statuses and codes.

Owns:
- ``parse``: the receipt in a deliver_sm/data_sm with esm_class 0x04 — the SMPP 3.4
  Appendix B text ``id:… sub:… dlvrd:… submit date:… done date:… stat:… err:… text:…``
  (keys case-insensitive, ``submit_date`` spellings, 10- or 12-digit dates, missing
  fields, the text in short_message or message_payload) and the TLVs
  receipted_message_id (0x001E), message_state (0x0427) and network_error_code (0x0423,
  3 octets: network type, 16-bit error). TLVs win over the text when both exist.
- ``twilio_outcome``: a receipt to ``(status, error_code)``.
- ``id_variants``: the forms a carrier may give one message id (hex/decimal, case), so the
  correlation lookup can try each.

Rules: pure functions, never raise on carrier input; ``parse`` returns None for a body
that is not a receipt (no id in text or TLVs).

Twilio status map (the gateway's own; Twilio publishes none for SMPP):

| DLR stat / message_state          | Twilio status | ErrorCode | why                                         |
|-----------------------------------|---------------|-----------|---------------------------------------------|
| DELIVRD / 2 DELIVERED             | delivered     | –         |                                             |
| ACCEPTD / 6 ACCEPTED              | (none)        | –         | intermediate: keep waiting for a final DLR  |
| ENROUTE / 1 ENROUTE, 0 SCHEDULED, BUFFRED | (none) | –       | intermediate                                |
| UNDELIV / 5 UNDELIVERABLE         | undelivered   | by err, below | handset or network refused              |
| EXPIRED / 3 EXPIRED               | undelivered   | 30036     | the SMSC's validity period ran out (SMPP: "message validity period has expired"); Twilio's code for validity expiry |
| REJECTD / 8 REJECTED              | undelivered   | 30007     | carrier filtered / refused the content      |
| DELETED / 4 DELETED, 9 SKIPPED    | undelivered   | 30008     | deleted at the SMSC, cause unknown          |
| UNKNOWN / 7 UNKNOWN, any other    | undelivered   | 30008     | unknown error                               |

UNDELIV error code, from the GSM MAP cause in network_error_code (or the text ``err:``,
read as decimal):

| err (MAP cause)                                                  | ErrorCode | meaning                          |
|------------------------------------------------------------------|-----------|----------------------------------|
| 1 unknown subscriber, 5 unidentified, 9 illegal subscriber, 12 illegal equipment | 30005 | unknown destination handset |
| 6 absent subscriber SM, 27 absent subscriber, 31 busy for MT SMS, 32 delivery failure (memory full), 33 waiting list full | 30003 | unreachable handset |
| 10 bearer / 11 teleservice not provisioned, 21 facility not supported | 30006 | landline or unreachable carrier |
| 13 call barred                                                   | 30004     | message blocked                  |
| 36 unexpected data value                                         | 30007     | message filtered                 |
| anything else, or no err                                         | 30008     | unknown error                    |

"failed" is never produced here: a DLR means the carrier took the message, so Twilio
reports its end as delivered or undelivered.
"""

from __future__ import annotations

import re

TLV_RECEIPTED_MESSAGE_ID = 0x001E
TLV_MESSAGE_STATE = 0x0427
TLV_NETWORK_ERROR_CODE = 0x0423
TLV_MESSAGE_PAYLOAD = 0x0424

# SMPP 3.4 §5.2.28 message_state (0 and 9 from SMPP 5.0) -> Appendix B stat word
MESSAGE_STATES = {
    0: "SCHEDULED", 1: "ENROUTE", 2: "DELIVRD", 3: "EXPIRED", 4: "DELETED", 5: "UNDELIV",
    6: "ACCEPTD", 7: "UNKNOWN", 8: "REJECTD", 9: "SKIPPED",
}

# long or vendor spellings -> the Appendix B word
_STAT_ALIASES = {
    "DELIVERED": "DELIVRD", "UNDELIVERABLE": "UNDELIV", "UNDELIVERED": "UNDELIV",
    "REJECTED": "REJECTD", "ACCEPTED": "ACCEPTD", "BUFFERED": "BUFFRED",
}

INTERMEDIATE = frozenset({"ENROUTE", "ACCEPTD", "SCHEDULED", "BUFFRED"})
FINAL_CODES = {"EXPIRED": 30036, "REJECTD": 30007, "DELETED": 30008, "SKIPPED": 30008,
               "UNKNOWN": 30008}

# GSM MAP error cause -> Twilio error code for UNDELIV
MAP_CAUSE_CODES = {
    1: 30005, 5: 30005, 9: 30005, 12: 30005,
    6: 30003, 27: 30003, 31: 30003, 32: 30003, 33: 30003,
    10: 30006, 11: 30006, 21: 30006,
    13: 30004,
    36: 30007,
}

_KEY = re.compile(
    r"(?i)(?:^|(?<=\s))(id|sub|dlvrd|submit[ _]?date|done[ _]?date|stat|err|text)\s*:")


class Receipt:
    """One delivery receipt. ``stat`` is the Appendix B word (upper case); dates are the raw
    10/12-digit strings (see ``parse_date``)."""

    __slots__ = ("message_id", "stat", "err", "submit_date", "done_date", "text",
                 "message_state", "network_error_code")

    def __init__(self, message_id: str, stat: str = "", err: str = "",
                 submit_date: str | None = None, done_date: str | None = None,
                 text: str = "", message_state: int | None = None,
                 network_error_code: bytes | None = None) -> None:
        self.message_id = message_id
        self.stat = stat
        self.err = err
        self.submit_date = submit_date
        self.done_date = done_date
        self.text = text
        self.message_state = message_state
        self.network_error_code = network_error_code

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Receipt):
            return NotImplemented
        return all(getattr(self, k) == getattr(other, k) for k in self.__slots__)

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={getattr(self, k)!r}" for k in self.__slots__)
        return f"Receipt({fields})"


#: the Appendix B layout most SMSCs send verbatim: one anchored match instead of a scan
_STANDARD = re.compile(
    r"id:(\S*) sub:(\S*) dlvrd:(\S*) submit date:(\d*) done date:(\d*) stat:(\S*) err:(\S*)"
    r"(?: [Tt]ext:(.*))?\Z", re.S)


def _scan_fields(body: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    matches = list(_KEY.finditer(body))
    for k, m in enumerate(matches):
        key = m.group(1).lower().replace("_", " ")
        if key in ("submitdate", "donedate"):
            key = key[:-4] + " date"
        if key == "text":
            fields.setdefault("text", body[m.end():].strip())
            break
        end = matches[k + 1].start() if k + 1 < len(matches) else len(body)
        value = body[m.end():end].strip()
        fields.setdefault(key, value.split()[0] if value else "")
    return fields


def _as_str(value: object) -> str:
    if isinstance(value, (bytes, bytearray, memoryview)):
        value = bytes(value).decode("latin-1")
    return str(value).rstrip("\x00").strip()


def _as_int(value: object) -> int | None:
    if isinstance(value, int):
        return value
    if isinstance(value, (bytes, bytearray, memoryview)) and len(value):
        return int.from_bytes(value, "big")
    return None


def parse(short_message: bytes, tlvs: dict | None) -> Receipt | None:
    """The receipt in a deliver_sm body and TLVs, or None if neither holds a message id."""
    tlvs = tlvs or {}
    raw = short_message
    if not raw and tlvs.get(TLV_MESSAGE_PAYLOAD):
        raw = tlvs[TLV_MESSAGE_PAYLOAD]
    if isinstance(raw, str):
        body = raw
    else:
        body = bytes(raw or b"").decode("latin-1")
    m = _STANDARD.match(body)
    if m is not None:        # the usual layout: no dict of fields
        message_id, _, _, submit_date, done_date, stat, err, text = m.groups()
        text = text.strip() if text is not None else ""
    else:
        fields = _scan_fields(body)
        message_id = fields.get("id", "")
        submit_date, done_date = fields.get("submit date"), fields.get("done date")
        stat, err, text = fields.get("stat", ""), fields.get("err", ""), fields.get("text", "")
    if tlvs.get(TLV_RECEIPTED_MESSAGE_ID) not in (None, b"", ""):
        message_id = _as_str(tlvs[TLV_RECEIPTED_MESSAGE_ID])
    if not message_id:
        return None

    stat = stat.upper()
    stat = _STAT_ALIASES.get(stat, stat)
    state = _as_int(tlvs.get(TLV_MESSAGE_STATE))
    if state is not None:
        stat = MESSAGE_STATES.get(state, "UNKNOWN")

    nec = tlvs.get(TLV_NETWORK_ERROR_CODE)
    if isinstance(nec, int):
        nec = nec.to_bytes(3, "big")
    elif nec is not None:
        nec = bytes(nec)
    if nec and len(nec) == 3:
        err = f"{int.from_bytes(nec[1:], 'big'):03d}"

    return Receipt(message_id, stat, err, submit_date or None, done_date or None, text, state,
                   nec or None)


def parse_date(value: str | None) -> tuple[int, int, int, int, int, int] | None:
    """(year, month, day, hour, minute, second) of a ``YYMMDDhhmm[ss]`` DLR date, or None."""
    if not value or not value.isdigit() or len(value) not in (10, 12):
        return None
    parts = [int(value[i:i + 2]) for i in range(0, len(value), 2)]
    if len(parts) == 5:
        parts.append(0)
    yy, mo, dd, hh, mi, ss = parts
    if not (1 <= mo <= 12 and 1 <= dd <= 31 and hh < 24 and mi < 60 and ss < 61):
        return None
    return 2000 + yy, mo, dd, hh, mi, ss


def _err_int(err: str) -> int | None:
    err = err.strip()
    if err.isdigit():
        return int(err)
    return None


def twilio_outcome(receipt: Receipt) -> tuple[str | None, int | None]:
    """(Twilio status, ErrorCode) for a receipt; (None, None) for an intermediate state."""
    stat = receipt.stat.upper()
    stat = _STAT_ALIASES.get(stat, stat)
    if stat == "DELIVRD":
        return "delivered", None
    if stat in INTERMEDIATE:
        return None, None
    if stat == "UNDELIV":
        cause = _err_int(receipt.err)
        return "undelivered", MAP_CAUSE_CODES.get(cause, 30008) if cause else 30008
    return "undelivered", FINAL_CODES.get(stat, 30008)


_HEX = frozenset("0123456789abcdefABCDEF")


def id_variants(message_id: str) -> tuple[str, ...]:
    """The forms of ``message_id`` a carrier may use: as given first, then lower/upper case,
    without leading zeros, and the hex<->decimal conversions where the id parses."""
    mid = message_id.strip().rstrip("\x00")
    out = [message_id, mid, mid.lower(), mid.upper()]
    stripped = mid.lstrip("0") or "0"
    out += [stripped, stripped.lower(), stripped.upper()]
    if mid and len(mid) <= 64:
        if mid.isdigit():
            as_hex = format(int(mid), "x")
            out += [as_hex, as_hex.upper()]
        if set(mid) <= _HEX:
            out.append(str(int(mid, 16)))
    seen: dict[str, None] = {}
    for v in out:
        if v:
            seen.setdefault(v, None)
    return tuple(seen)
