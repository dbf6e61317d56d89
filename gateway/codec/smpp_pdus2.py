"""SMPP 3.4 PDU classes of the pure-Python twin, part 2: the rarely used operations
(cancel_sm, replace_sm, submit_multi(+resp), alert_notification).

Same rules as ``smpp_pdus``: names, signatures and fields match the Cython twin.
``dest_addresses`` is a list of (dest_flag, ton, npi, address) tuples (dest_flag 2 = a
distribution list name in ``address``, ton/npi 0); ``unsuccess_sme`` a list of
(ton, npi, address, error_status_code) tuples.
"""

from __future__ import annotations

from gateway.codec.smpp_consts import CommandId as C
from gateway.codec.smpp_pdus import Pdu


class CancelSm(Pdu):
    __slots__ = ("service_type", "message_id", "source_addr_ton", "source_addr_npi",
                 "source_addr", "dest_addr_ton", "dest_addr_npi", "destination_addr")
    command_id = C.CANCEL_SM
    FIELDS = ("sequence_number", "command_status") + __slots__ + ("tlvs",)

    def __init__(self, sequence_number=0, service_type="", message_id="", source_addr_ton=0,
                 source_addr_npi=0, source_addr="", dest_addr_ton=0, dest_addr_npi=0,
                 destination_addr="", tlvs=None, command_status=0):
        self.sequence_number = sequence_number
        self.command_status = command_status
        self.service_type = service_type
        self.message_id = message_id
        self.source_addr_ton = source_addr_ton
        self.source_addr_npi = source_addr_npi
        self.source_addr = source_addr
        self.dest_addr_ton = dest_addr_ton
        self.dest_addr_npi = dest_addr_npi
        self.destination_addr = destination_addr
        self.tlvs = tlvs


class ReplaceSm(Pdu):
    __slots__ = ("message_id", "source_addr_ton", "source_addr_npi", "source_addr",
                 "schedule_delivery_time", "validity_period", "registered_delivery",
                 "sm_default_msg_id", "short_message")
    command_id = C.REPLACE_SM
    FIELDS = ("sequence_number", "command_status") + __slots__ + ("tlvs",)

    def __init__(self, sequence_number=0, message_id="", source_addr_ton=0,
                 source_addr_npi=0, source_addr="", schedule_delivery_time="",
                 validity_period="", registered_delivery=0, sm_default_msg_id=0,
                 short_message=b"", tlvs=None, command_status=0):
        self.sequence_number = sequence_number
        self.command_status = command_status
        self.message_id = message_id
        self.source_addr_ton = source_addr_ton
        self.source_addr_npi = source_addr_npi
        self.source_addr = source_addr
        self.schedule_delivery_time = schedule_delivery_time
        self.validity_period = validity_period
        self.registered_delivery = registered_delivery
        self.sm_default_msg_id = sm_default_msg_id
        self.short_message = short_message
        self.tlvs = tlvs


class SubmitMulti(Pdu):
    __slots__ = ("service_type", "source_addr_ton", "source_addr_npi", "source_addr",
                 "dest_addresses", "esm_class", "protocol_id", "priority_flag",
                 "schedule_delivery_time", "validity_period", "registered_delivery",
                 "replace_if_present_flag", "data_coding", "sm_default_msg_id",
                 "short_message")
    command_id = C.SUBMIT_MULTI
    FIELDS = ("sequence_number", "command_status") + __slots__ + ("tlvs",)

    def __init__(self, sequence_number=0, service_type="", source_addr_ton=0,
                 source_addr_npi=0, source_addr="", dest_addresses=None, esm_class=0,
                 protocol_id=0, priority_flag=0, schedule_delivery_time="",
                 validity_period="", registered_delivery=0, replace_if_present_flag=0,
                 data_coding=0, sm_default_msg_id=0, short_message=b"", tlvs=None,
                 command_status=0):
        self.sequence_number = sequence_number
        self.command_status = command_status
        self.service_type = service_type
        self.source_addr_ton = source_addr_ton
        self.source_addr_npi = source_addr_npi
        self.source_addr = source_addr
        self.dest_addresses = list(dest_addresses) if dest_addresses else []
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


class SubmitMultiResp(Pdu):
    __slots__ = ("message_id", "unsuccess_sme")
    command_id = C.SUBMIT_MULTI_RESP
    FIELDS = ("sequence_number", "command_status", "message_id", "unsuccess_sme", "tlvs")

    def __init__(self, sequence_number=0, command_status=0, message_id="",
                 unsuccess_sme=None, tlvs=None):
        self.sequence_number = sequence_number
        self.command_status = command_status
        self.message_id = message_id
        self.unsuccess_sme = list(unsuccess_sme) if unsuccess_sme else []
        self.tlvs = tlvs


class AlertNotification(Pdu):
    __slots__ = ("source_addr_ton", "source_addr_npi", "source_addr", "esme_addr_ton",
                 "esme_addr_npi", "esme_addr")
    command_id = C.ALERT_NOTIFICATION
    FIELDS = ("sequence_number", "command_status") + __slots__ + ("tlvs",)

    def __init__(self, sequence_number=0, source_addr_ton=0, source_addr_npi=0,
                 source_addr="", esme_addr_ton=0, esme_addr_npi=0, esme_addr="", tlvs=None,
                 command_status=0):
        self.sequence_number = sequence_number
        self.command_status = command_status
        self.source_addr_ton = source_addr_ton
        self.source_addr_npi = source_addr_npi
        self.source_addr = source_addr
        self.esme_addr_ton = esme_addr_ton
        self.esme_addr_npi = esme_addr_npi
        self.esme_addr = esme_addr
        self.tlvs = tlvs
