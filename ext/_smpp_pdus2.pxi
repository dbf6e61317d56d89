# PDU cdef classes of the Cython SMPP twin, part 2 (included by _smpp.pyx): cancel_sm,
# replace_sm, submit_multi(+resp), alert_notification. Mirrors smpp_pdus2.py.

cdef class CancelSm(Pdu):
    cdef public str service_type, message_id, source_addr, destination_addr
    cdef public int source_addr_ton, source_addr_npi, dest_addr_ton, dest_addr_npi
    command_id = 0x00000008
    FIELDS = ("sequence_number", "command_status", "service_type", "message_id",
              "source_addr_ton", "source_addr_npi", "source_addr", "dest_addr_ton",
              "dest_addr_npi", "destination_addr", "tlvs")

    def __init__(self, sequence_number=0, str service_type="", str message_id="",
                 int source_addr_ton=0, int source_addr_npi=0, str source_addr="",
                 int dest_addr_ton=0, int dest_addr_npi=0, str destination_addr="",
                 tlvs=None, command_status=0):
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


cdef class ReplaceSm(Pdu):
    cdef public str message_id, source_addr, schedule_delivery_time, validity_period
    cdef public int source_addr_ton, source_addr_npi, registered_delivery, sm_default_msg_id
    cdef public bytes short_message
    command_id = 0x00000007
    FIELDS = ("sequence_number", "command_status", "message_id", "source_addr_ton",
              "source_addr_npi", "source_addr", "schedule_delivery_time", "validity_period",
              "registered_delivery", "sm_default_msg_id", "short_message", "tlvs")

    def __init__(self, sequence_number=0, str message_id="", int source_addr_ton=0,
                 int source_addr_npi=0, str source_addr="", str schedule_delivery_time="",
                 str validity_period="", int registered_delivery=0,
                 int sm_default_msg_id=0, bytes short_message=b"", tlvs=None,
                 command_status=0):
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


cdef class SubmitMulti(Pdu):
    cdef public str service_type, source_addr, schedule_delivery_time, validity_period
    cdef public int source_addr_ton, source_addr_npi, esm_class, protocol_id
    cdef public int priority_flag, registered_delivery, replace_if_present_flag
    cdef public int data_coding, sm_default_msg_id
    cdef public list dest_addresses
    cdef public bytes short_message
    command_id = 0x00000021
    FIELDS = ("sequence_number", "command_status", "service_type", "source_addr_ton",
              "source_addr_npi", "source_addr", "dest_addresses", "esm_class",
              "protocol_id", "priority_flag", "schedule_delivery_time", "validity_period",
              "registered_delivery", "replace_if_present_flag", "data_coding",
              "sm_default_msg_id", "short_message", "tlvs")

    def __init__(self, sequence_number=0, str service_type="", int source_addr_ton=0,
                 int source_addr_npi=0, str source_addr="", dest_addresses=None,
                 int esm_class=0, int protocol_id=0, int priority_flag=0,
                 str schedule_delivery_time="", str validity_period="",
                 int registered_delivery=0, int replace_if_present_flag=0,
                 int data_coding=0, int sm_default_msg_id=0, bytes short_message=b"",
                 tlvs=None, command_status=0):
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


cdef class SubmitMultiResp(Pdu):
    cdef public str message_id
    cdef public list unsuccess_sme
    command_id = 0x80000021
    FIELDS = ("sequence_number", "command_status", "message_id", "unsuccess_sme", "tlvs")

    def __init__(self, sequence_number=0, command_status=0, str message_id="",
                 unsuccess_sme=None, tlvs=None):
        self.sequence_number = sequence_number
        self.command_status = command_status
        self.message_id = message_id
        self.unsuccess_sme = list(unsuccess_sme) if unsuccess_sme else []
        self.tlvs = tlvs


cdef class AlertNotification(Pdu):
    cdef public str source_addr, esme_addr
    cdef public int source_addr_ton, source_addr_npi, esme_addr_ton, esme_addr_npi
    command_id = 0x00000102
    FIELDS = ("sequence_number", "command_status", "source_addr_ton", "source_addr_npi",
              "source_addr", "esme_addr_ton", "esme_addr_npi", "esme_addr", "tlvs")

    def __init__(self, sequence_number=0, int source_addr_ton=0, int source_addr_npi=0,
                 str source_addr="", int esme_addr_ton=0, int esme_addr_npi=0,
                 str esme_addr="", tlvs=None, command_status=0):
        self.sequence_number = sequence_number
        self.command_status = command_status
        self.source_addr_ton = source_addr_ton
        self.source_addr_npi = source_addr_npi
        self.source_addr = source_addr
        self.esme_addr_ton = esme_addr_ton
        self.esme_addr_npi = esme_addr_npi
        self.esme_addr = esme_addr
        self.tlvs = tlvs
