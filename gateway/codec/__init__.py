"""SMPP 3.4 PDU codec facade: picks the Cython twin (``gateway.codec._smpp``) or the
pure-Python twin (``gateway.codec.smpp_py``) once per process and re-exports its API.

Owns: the public names of docs/INTERFACES.md "codec: SMPP PDUs" and ``BACKEND``
("cython" | "python"). Rules: imports nothing else from gateway.codec (the GSM/text/DLR
modules import on their own); ``GATEWAY_NO_EXTENSIONS=1`` forces the pure twin.
"""

from gateway.codec._select import pick
from gateway.codec.smpp_consts import (
    TLV_KINDS,
    CommandId,
    FramingError,
    MessageState,
    PduError,
    Status,
    Tlv,
)

_impl, BACKEND = pick("_smpp", "smpp_py")

_API = (
    "encode", "encode_many", "decode", "Decoder", "resp_for", "CLASSES", "Pdu",
    "GenericNack", "BindReceiver", "BindReceiverResp", "BindTransmitter",
    "BindTransmitterResp", "BindTransceiver", "BindTransceiverResp", "Outbind", "Unbind",
    "UnbindResp", "EnquireLink", "EnquireLinkResp", "SubmitSm", "SubmitSmResp",
    "DeliverSm", "DeliverSmResp", "DataSm", "DataSmResp", "QuerySm", "QuerySmResp",
    "CancelSm", "CancelSmResp", "ReplaceSm", "ReplaceSmResp", "SubmitMulti",
    "SubmitMultiResp", "AlertNotification",
)
globals().update({_n: getattr(_impl, _n) for _n in _API})

__all__ = ["BACKEND", "CommandId", "Status", "Tlv", "MessageState", "TLV_KINDS",
           "PduError", "FramingError", *_API]
