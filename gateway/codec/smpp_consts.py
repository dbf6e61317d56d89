"""SMPP 3.4 constants and errors shared by both codec twins.

Owns: command ids, command_status codes, TLV tags and their value kinds, message_state
values, the mandatory-field layout of every PDU body, and the PduError/FramingError
exceptions. Plain ints in class namespaces (not Enum): unknown and vendor values are
ordinary ints everywhere.

Rules: no I/O, no imports beyond the standard library. Both twins (``smpp_py`` and the
Cython ``_smpp``) import these, so an error raised by either twin is ``codec.PduError``.
"""

from __future__ import annotations


class CommandId:
    GENERIC_NACK = 0x80000000
    BIND_RECEIVER = 0x00000001
    BIND_RECEIVER_RESP = 0x80000001
    BIND_TRANSMITTER = 0x00000002
    BIND_TRANSMITTER_RESP = 0x80000002
    QUERY_SM = 0x00000003
    QUERY_SM_RESP = 0x80000003
    SUBMIT_SM = 0x00000004
    SUBMIT_SM_RESP = 0x80000004
    DELIVER_SM = 0x00000005
    DELIVER_SM_RESP = 0x80000005
    UNBIND = 0x00000006
    UNBIND_RESP = 0x80000006
    REPLACE_SM = 0x00000007
    REPLACE_SM_RESP = 0x80000007
    CANCEL_SM = 0x00000008
    CANCEL_SM_RESP = 0x80000008
    BIND_TRANSCEIVER = 0x00000009
    BIND_TRANSCEIVER_RESP = 0x80000009
    OUTBIND = 0x0000000B
    ENQUIRE_LINK = 0x00000015
    ENQUIRE_LINK_RESP = 0x80000015
    SUBMIT_MULTI = 0x00000021
    SUBMIT_MULTI_RESP = 0x80000021
    ALERT_NOTIFICATION = 0x00000102
    DATA_SM = 0x00000103
    DATA_SM_RESP = 0x80000103


RESP_BIT = 0x80000000


class Status:
    ESME_ROK = 0x00
    ESME_RINVMSGLEN = 0x01
    ESME_RINVCMDLEN = 0x02
    ESME_RINVCMDID = 0x03
    ESME_RINVBNDSTS = 0x04
    ESME_RALYBND = 0x05
    ESME_RINVPRTFLG = 0x06
    ESME_RINVREGDLVFLG = 0x07
    ESME_RSYSERR = 0x08
    ESME_RINVSRCADR = 0x0A
    ESME_RINVDSTADR = 0x0B
    ESME_RINVMSGID = 0x0C
    ESME_RBINDFAIL = 0x0D
    ESME_RINVPASWD = 0x0E
    ESME_RINVSYSID = 0x0F
    ESME_RCANCELFAIL = 0x11
    ESME_RREPLACEFAIL = 0x13
    ESME_RMSGQFUL = 0x14
    ESME_RINVSERTYP = 0x15
    ESME_RINVNUMDESTS = 0x33
    ESME_RINVDLNAME = 0x34
    ESME_RINVDESTFLAG = 0x40
    ESME_RINVSUBREP = 0x42
    ESME_RINVESMCLASS = 0x43
    ESME_RCNTSUBDL = 0x44
    ESME_RSUBMITFAIL = 0x45
    ESME_RINVSRCTON = 0x48
    ESME_RINVSRCNPI = 0x49
    ESME_RINVDSTTON = 0x50
    ESME_RINVDSTNPI = 0x51
    ESME_RINVSYSTYP = 0x53
    ESME_RINVREPFLAG = 0x54
    ESME_RINVNUMMSGS = 0x55
    ESME_RTHROTTLED = 0x58
    ESME_RINVSCHED = 0x61
    ESME_RINVEXPIRY = 0x62
    ESME_RINVDFTMSGID = 0x63
    ESME_RX_T_APPN = 0x64
    ESME_RX_P_APPN = 0x65
    ESME_RX_R_APPN = 0x66
    ESME_RQUERYFAIL = 0x67
    ESME_RINVOPTPARSTREAM = 0xC0
    ESME_ROPTPARNOTALLWD = 0xC1
    ESME_RINVPARLEN = 0xC2
    ESME_RMISSINGOPTPARAM = 0xC3
    ESME_RINVOPTPARAMVAL = 0xC4
    ESME_RDELIVERYFAILURE = 0xFE
    ESME_RUNKNOWNERR = 0xFF


class Tlv:
    DEST_ADDR_SUBUNIT = 0x0005
    DEST_NETWORK_TYPE = 0x0006
    DEST_BEARER_TYPE = 0x0007
    DEST_TELEMATICS_ID = 0x0008
    SOURCE_ADDR_SUBUNIT = 0x000D
    SOURCE_NETWORK_TYPE = 0x000E
    SOURCE_BEARER_TYPE = 0x000F
    SOURCE_TELEMATICS_ID = 0x0010
    QOS_TIME_TO_LIVE = 0x0017
    PAYLOAD_TYPE = 0x0019
    ADDITIONAL_STATUS_INFO_TEXT = 0x001D
    RECEIPTED_MESSAGE_ID = 0x001E
    MS_MSG_WAIT_FACILITIES = 0x0030
    PRIVACY_INDICATOR = 0x0201
    SOURCE_SUBADDRESS = 0x0202
    DEST_SUBADDRESS = 0x0203
    USER_MESSAGE_REFERENCE = 0x0204
    USER_RESPONSE_CODE = 0x0205
    SOURCE_PORT = 0x020A
    DESTINATION_PORT = 0x020B
    SAR_MSG_REF_NUM = 0x020C
    LANGUAGE_INDICATOR = 0x020D
    SAR_TOTAL_SEGMENTS = 0x020E
    SAR_SEGMENT_SEQNUM = 0x020F
    SC_INTERFACE_VERSION = 0x0210
    CALLBACK_NUM_PRES_IND = 0x0302
    CALLBACK_NUM_ATAG = 0x0303
    NUMBER_OF_MESSAGES = 0x0304
    CALLBACK_NUM = 0x0381
    DPF_RESULT = 0x0420
    SET_DPF = 0x0421
    MS_AVAILABILITY_STATUS = 0x0422
    NETWORK_ERROR_CODE = 0x0423
    MESSAGE_PAYLOAD = 0x0424
    DELIVERY_FAILURE_REASON = 0x0425
    MORE_MESSAGES_TO_SEND = 0x0426
    MESSAGE_STATE = 0x0427
    USSD_SERVICE_OP = 0x0501
    DISPLAY_TIME = 0x1201
    SMS_SIGNAL = 0x1203
    MS_VALIDITY = 0x1204
    ALERT_ON_MESSAGE_DELIVERY = 0x130C
    ITS_REPLY_TYPE = 0x1380
    ITS_SESSION_INFO = 0x1383


class MessageState:
    ENROUTE = 1
    DELIVERED = 2
    EXPIRED = 3
    DELETED = 4
    UNDELIVERABLE = 5
    ACCEPTED = 6
    UNKNOWN = 7
    REJECTED = 8


# TLV value kinds: 1/2/4 = unsigned big-endian int of that size, 0 = C-octet string (str,
# NUL on the wire), -1 = octet string (bytes). Tags not listed stay raw bytes. A known tag
# whose wire value is malformed for its kind (wrong int size, C-string without NUL) is
# also kept as raw bytes, so it re-encodes unchanged.
TLV_CSTR = 0
TLV_OCTETS = -1
_INT1 = ("DEST_ADDR_SUBUNIT DEST_NETWORK_TYPE DEST_BEARER_TYPE SOURCE_ADDR_SUBUNIT "
         "SOURCE_NETWORK_TYPE SOURCE_BEARER_TYPE PAYLOAD_TYPE MS_MSG_WAIT_FACILITIES "
         "PRIVACY_INDICATOR USER_RESPONSE_CODE LANGUAGE_INDICATOR SAR_TOTAL_SEGMENTS "
         "SAR_SEGMENT_SEQNUM SC_INTERFACE_VERSION CALLBACK_NUM_PRES_IND NUMBER_OF_MESSAGES "
         "DPF_RESULT SET_DPF MS_AVAILABILITY_STATUS DELIVERY_FAILURE_REASON "
         "MORE_MESSAGES_TO_SEND MESSAGE_STATE USSD_SERVICE_OP DISPLAY_TIME MS_VALIDITY "
         "ITS_REPLY_TYPE")
_INT2 = ("DEST_TELEMATICS_ID SOURCE_TELEMATICS_ID USER_MESSAGE_REFERENCE SOURCE_PORT "
         "DESTINATION_PORT SAR_MSG_REF_NUM SMS_SIGNAL")
_INT4 = "QOS_TIME_TO_LIVE"
_CSTR = "ADDITIONAL_STATUS_INFO_TEXT RECEIPTED_MESSAGE_ID"
_OCTETS = ("SOURCE_SUBADDRESS DEST_SUBADDRESS CALLBACK_NUM_ATAG CALLBACK_NUM "
           "NETWORK_ERROR_CODE MESSAGE_PAYLOAD ALERT_ON_MESSAGE_DELIVERY ITS_SESSION_INFO")
TLV_KINDS: dict[int, int] = {}
for _names, _kind in ((_INT1, 1), (_INT2, 2), (_INT4, 4), (_CSTR, TLV_CSTR),
                      (_OCTETS, TLV_OCTETS)):
    for _n in _names.split():
        TLV_KINDS[getattr(Tlv, _n)] = _kind
del _names, _kind, _n

# Mandatory body fields per command, in wire order. Kinds: "c" C-octet string (str,
# latin-1), "B" one-octet int, "sm" sm_length + short_message (bytes), "dests"
# submit_multi destinations: list of (dest_flag, ton, npi, address) where dest_flag 1 =
# SME address, 2 = distribution list name (ton/npi then 0 and ignored), "unsucc"
# submit_multi_resp unsuccess_sme: list of (ton, npi, address, error_status_code).
# Every body may be followed by TLVs.
_C = CommandId
_BIND = (("system_id", "c"), ("password", "c"), ("system_type", "c"),
         ("interface_version", "B"), ("addr_ton", "B"), ("addr_npi", "B"),
         ("address_range", "c"))
_SM = (("service_type", "c"), ("source_addr_ton", "B"), ("source_addr_npi", "B"),
       ("source_addr", "c"), ("dest_addr_ton", "B"), ("dest_addr_npi", "B"),
       ("destination_addr", "c"), ("esm_class", "B"), ("protocol_id", "B"),
       ("priority_flag", "B"), ("schedule_delivery_time", "c"), ("validity_period", "c"),
       ("registered_delivery", "B"), ("replace_if_present_flag", "B"),
       ("data_coding", "B"), ("sm_default_msg_id", "B"), ("short_message", "sm"))
_MSGID = (("message_id", "c"),)
_SRC = (("source_addr_ton", "B"), ("source_addr_npi", "B"), ("source_addr", "c"))
_DST = (("dest_addr_ton", "B"), ("dest_addr_npi", "B"), ("destination_addr", "c"))
LAYOUTS: dict[int, tuple] = {
    _C.GENERIC_NACK: (),
    _C.BIND_RECEIVER: _BIND, _C.BIND_TRANSMITTER: _BIND, _C.BIND_TRANSCEIVER: _BIND,
    _C.BIND_RECEIVER_RESP: (("system_id", "c"),),
    _C.BIND_TRANSMITTER_RESP: (("system_id", "c"),),
    _C.BIND_TRANSCEIVER_RESP: (("system_id", "c"),),
    _C.OUTBIND: (("system_id", "c"), ("password", "c")),
    _C.UNBIND: (), _C.UNBIND_RESP: (), _C.ENQUIRE_LINK: (), _C.ENQUIRE_LINK_RESP: (),
    _C.SUBMIT_SM: _SM, _C.DELIVER_SM: _SM,
    _C.SUBMIT_SM_RESP: _MSGID, _C.DELIVER_SM_RESP: _MSGID, _C.DATA_SM_RESP: _MSGID,
    _C.DATA_SM: (("service_type", "c"),) + _SRC + _DST + (
        ("esm_class", "B"), ("registered_delivery", "B"), ("data_coding", "B")),
    _C.QUERY_SM: _MSGID + _SRC,
    _C.QUERY_SM_RESP: _MSGID + (("final_date", "c"), ("message_state", "B"),
                                ("error_code", "B")),
    _C.CANCEL_SM: (("service_type", "c"),) + _MSGID + _SRC + _DST,
    _C.CANCEL_SM_RESP: (),
    _C.REPLACE_SM: _MSGID + _SRC + (
        ("schedule_delivery_time", "c"), ("validity_period", "c"),
        ("registered_delivery", "B"), ("sm_default_msg_id", "B"), ("short_message", "sm")),
    _C.REPLACE_SM_RESP: (),
    _C.SUBMIT_MULTI: (("service_type", "c"),) + _SRC + (("dest_addresses", "dests"),)
    + _SM[7:],
    _C.SUBMIT_MULTI_RESP: _MSGID + (("unsuccess_sme", "unsucc"),),
    _C.ALERT_NOTIFICATION: _SRC + (("esme_addr_ton", "B"), ("esme_addr_npi", "B"),
                                   ("esme_addr", "c")),
}
del _C

# request command_id -> its response command_id (outbind and alert_notification have none)
RESP_OF: dict[int, int] = {
    c: c | RESP_BIT for c in LAYOUTS if not c & RESP_BIT and c | RESP_BIT in LAYOUTS}


class PduError(Exception):
    """A PDU that cannot be decoded (or encoded). Carries what is needed to answer it:
    ``command_id``, ``command_status`` (the ESME_R* error to send back) and
    ``sequence_number`` (0 when the header itself was unreadable)."""

    def __init__(self, message: str, command_status: int = Status.ESME_RSYSERR,
                 command_id: int = 0, sequence_number: int = 0):
        super().__init__(message)
        self.message = message
        self.command_status = command_status
        self.command_id = command_id
        self.sequence_number = sequence_number

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({self.message!r}, command_status=0x{self.command_status:X},"
                f" command_id=0x{self.command_id:X}, sequence_number={self.sequence_number})")


class FramingError(PduError):
    """command_length outside [16, max_length]: the byte stream cannot be resynchronised.
    ``pdus`` holds the PDUs decoded from the same feed() call before the bad header."""

    def __init__(self, message: str, command_id: int = 0, sequence_number: int = 0,
                 pdus: list | None = None):
        super().__init__(message, Status.ESME_RINVCMDLEN, command_id, sequence_number)
        self.pdus = pdus if pdus is not None else []
