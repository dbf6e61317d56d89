"""SMPP 3.4 PDU classes of the pure-Python codec twin (``__slots__`` objects).

Owns: one class per operation, with the same names, constructor signatures and fields
as the Cython twin's cdef classes (``ext/_smpp.pyx``). ``FIELDS`` lists a class's public
fields in order; ``command_id`` is a class attribute. Requests take ``command_status``
as their last keyword (it is always 0 on the wire for requests); responses take it
second. Rules: C-octet strings are ``str`` (latin-1), ``short_message`` is ``bytes``,
``tlvs`` is ``None`` or a dict tag -> value in wire order. No validation here: the
encoder reports values that do not fit.
"""

from __future__ import annotations

from gateway.codec.smpp_consts import CommandId as C


class Pdu:
    __slots__ = ("sequence_number", "command_status", "tlvs")
    command_id = 0
    FIELDS: tuple = ("sequence_number", "command_status", "tlvs")

    def __eq__(self, other):
        if type(other) is not type(self):
            return NotImplemented
        return all(getattr(self, f) == getattr(other, f) for f in self.FIELDS)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        args = ", ".join(f"{f}={getattr(self, f)!r}" for f in self.FIELDS)
        return f"{type(self).__name__}({args})"


class _Empty(Pdu):
    __slots__ = ()

    def __init__(self, sequence_number=0, command_status=0, tlvs=None):
        self.sequence_number = sequence_number
        self.command_status = command_status
        self.tlvs = tlvs


class GenericNack(_Empty):
    __slots__ = ()
    command_id = C.GENERIC_NACK


class Unbind(_Empty):
    __slots__ = ()
    command_id = C.UNBIND


class UnbindResp(_Empty):
    __slots__ = ()
    command_id = C.UNBIND_RESP


class EnquireLink(_Empty):
    __slots__ = ()
    command_id = C.ENQUIRE_LINK


class EnquireLinkResp(_Empty):
    __slots__ = ()
    command_id = C.ENQUIRE_LINK_RESP


class CancelSmResp(_Empty):
    __slots__ = ()
    command_id = C.CANCEL_SM_RESP


class ReplaceSmResp(_Empty):
    __slots__ = ()
    command_id = C.REPLACE_SM_RESP


class _Bind(Pdu):
    __slots__ = ("system_id", "password", "system_type", "interface_version", "addr_ton",
                 "addr_npi", "address_range")
    FIELDS = ("sequence_number", "command_status") + __slots__ + ("tlvs",)

    def __init__(self, sequence_number=0, system_id="", password="", system_type="",
                 interface_version=0x34, addr_ton=0, addr_npi=0, address_range="",
                 tlvs=None, command_status=0):
        self.sequence_number = sequence_number
        self.command_status = command_status
        self.system_id = system_id
        self.password = password
        self.system_type = system_type
        self.interface_version = interface_version
        self.addr_ton = addr_ton
        self.addr_npi = addr_npi
        self.address_range = address_range
        self.tlvs = tlvs


class BindReceiver(_Bind):
    __slots__ = ()
    command_id = C.BIND_RECEIVER


class BindTransmitter(_Bind):
    __slots__ = ()
    command_id = C.BIND_TRANSMITTER


class BindTransceiver(_Bind):
    __slots__ = ()
    command_id = C.BIND_TRANSCEIVER


class _BindResp(Pdu):
    __slots__ = ("system_id",)
    FIELDS = ("sequence_number", "command_status", "system_id", "tlvs")

    def __init__(self, sequence_number=0, command_status=0, system_id="", tlvs=None):
        self.sequence_number = sequence_number
        self.command_status = command_status
        self.system_id = system_id
        self.tlvs = tlvs


class BindReceiverResp(_BindResp):
    __slots__ = ()
    command_id = C.BIND_RECEIVER_RESP


class BindTransmitterResp(_BindResp):
    __slots__ = ()
    command_id = C.BIND_TRANSMITTER_RESP


class BindTransceiverResp(_BindResp):
    __slots__ = ()
    command_id = C.BIND_TRANSCEIVER_RESP


class Outbind(Pdu):
    __slots__ = ("system_id", "password")
    command_id = C.OUTBIND
    FIELDS = ("sequence_number", "command_status", "system_id", "password", "tlvs")

    def __init__(self, sequence_number=0, system_id="", password="", tlvs=None,
                 command_status=0):
        self.sequence_number = sequence_number
        self.command_status = command_status
        self.system_id = system_id
        self.password = password
        self.tlvs = tlvs


class _Sm(Pdu):
    __slots__ = ("service_type", "source_addr_ton", "source_addr_npi", "source_addr",
                 "dest_addr_ton", "dest_addr_npi", "destination_addr", "esm_class",
                 "protocol_id", "priority_flag", "schedule_delivery_time",
                 "validity_period", "registered_delivery", "replace_if_present_flag",
                 "data_coding", "sm_default_msg_id", "short_message")
    FIELDS = ("sequence_number", "command_status") + __slots__ + ("tlvs",)

    def __init__(self, sequence_number=0, service_type="", source_addr_ton=0,
                 source_addr_npi=0, source_addr="", dest_addr_ton=0, dest_addr_npi=0,
                 destination_addr="", esm_class=0, protocol_id=0, priority_flag=0,
                 schedule_delivery_time="", validity_period="", registered_delivery=0,
                 replace_if_present_flag=0, data_coding=0, sm_default_msg_id=0,
                 short_message=b"", tlvs=None, command_status=0):
        self.sequence_number = sequence_number
        self.command_status = command_status
        self.service_type = service_type
        self.source_addr_ton = source_addr_ton
        self.source_addr_npi = source_addr_npi
        self.source_addr = source_addr
        self.dest_addr_ton = dest_addr_ton
        self.dest_addr_npi = dest_addr_npi
        self.destination_addr = destination_addr
        self.esm_class = esm_class
        self.protocol_id = protocol_id
        self.priority_flag = priority_flag
        self.schedule_delivery_time = schedule_delivery_time
        self.validity_period = validity_period
        self.registered_delivery = registered_delivery
        self.replace_if_present_flag = replace_if_present_flag
        self.data_coding = data_coding
        self.sm_default_msg_id = sm_default_msg_id
        self.short_message = short_message
        self.tlvs = tlvs


class SubmitSm(_Sm):
    __slots__ = ()
    command_id = C.SUBMIT_SM


class DeliverSm(_Sm):
    __slots__ = ()
    command_id = C.DELIVER_SM


class _MsgIdResp(Pdu):
    __slots__ = ("message_id",)
    FIELDS = ("sequence_number", "command_status", "message_id", "tlvs")

    def __init__(self, sequence_number=0, command_status=0, message_id="", tlvs=None):
        self.sequence_number = sequence_number
        self.command_status = command_status
        self.message_id = message_id
        self.tlvs = tlvs


class SubmitSmResp(_MsgIdResp):
    __slots__ = ()
    command_id = C.SUBMIT_SM_RESP


class DeliverSmResp(_MsgIdResp):
    __slots__ = ()
    command_id = C.DELIVER_SM_RESP


class DataSmResp(_MsgIdResp):
    __slots__ = ()
    command_id = C.DATA_SM_RESP


class DataSm(Pdu):
    __slots__ = ("service_type", "source_addr_ton", "source_addr_npi", "source_addr",
                 "dest_addr_ton", "dest_addr_npi", "destination_addr", "esm_class",
                 "registered_delivery", "data_coding")
    command_id = C.DATA_SM
    FIELDS = ("sequence_number", "command_status") + __slots__ + ("tlvs",)

    def __init__(self, sequence_number=0, service_type="", source_addr_ton=0,
                 source_addr_npi=0, source_addr="", dest_addr_ton=0, dest_addr_npi=0,
                 destination_addr="", esm_class=0, registered_delivery=0, data_coding=0,
                 tlvs=None, command_status=0):
        self.sequence_number = sequence_number
        self.command_status = command_status
        self.service_type = service_type
        self.source_addr_ton = source_addr_ton
        self.source_addr_npi = source_addr_npi
        self.source_addr = source_addr
        self.dest_addr_ton = dest_addr_ton
        self.dest_addr_npi = dest_addr_npi
        self.destination_addr = destination_addr
        self.esm_class = esm_class
        self.registered_delivery = registered_delivery
        self.data_coding = data_coding
        self.tlvs = tlvs


class QuerySm(Pdu):
    __slots__ = ("message_id", "source_addr_ton", "source_addr_npi", "source_addr")
    command_id = C.QUERY_SM
    FIELDS = ("sequence_number", "command_status") + __slots__ + ("tlvs",)

    def __init__(self, sequence_number=0, message_id="", source_addr_ton=0,
                 source_addr_npi=0, source_addr="", tlvs=None, command_status=0):
        self.sequence_number = sequence_number
        self.command_status = command_status
        self.message_id = message_id
        self.source_addr_ton = source_addr_ton
        self.source_addr_npi = source_addr_npi
        self.source_addr = source_addr
        self.tlvs = tlvs


class QuerySmResp(Pdu):
    __slots__ = ("message_id", "final_date", "message_state", "error_code")
    command_id = C.QUERY_SM_RESP
    FIELDS = ("sequence_number", "command_status") + __slots__ + ("tlvs",)

    def __init__(self, sequence_number=0, command_status=0, message_id="", final_date="",
                 message_state=0, error_code=0, tlvs=None):
        self.sequence_number = sequence_number
        self.command_status = command_status
        self.message_id = message_id
        self.final_date = final_date
        self.message_state = message_state
        self.error_code = error_code
        self.tlvs = tlvs
