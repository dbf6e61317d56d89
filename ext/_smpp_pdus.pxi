# PDU cdef classes of the Cython SMPP twin (included by _smpp.pyx).
# Same names, constructor signatures and fields as gateway/codec/smpp_pdus*.py; see there
# for the field rules. Integer fields are C ints (range checked by the encoder), text
# fields str, short_message bytes, tlvs None or dict.

cdef class Pdu:
    cdef public unsigned int sequence_number
    cdef public unsigned int command_status
    cdef public object tlvs
    command_id = 0
    FIELDS = ("sequence_number", "command_status", "tlvs")

    def __eq__(self, other):
        if type(other) is not type(self):
            return NotImplemented
        for f in self.FIELDS:
            if getattr(self, f) != getattr(other, f):
                return False
        return True

    def __repr__(self):
        args = ", ".join([f"{f}={getattr(self, f)!r}" for f in self.FIELDS])
        return f"{type(self).__name__}({args})"


cdef class _Empty(Pdu):
    def __init__(self, sequence_number=0, command_status=0, tlvs=None):
        self.sequence_number = sequence_number
        self.command_status = command_status
        self.tlvs = tlvs


cdef class GenericNack(_Empty):
    command_id = 0x80000000

cdef class Unbind(_Empty):
    command_id = 0x00000006

cdef class UnbindResp(_Empty):
    command_id = 0x80000006

cdef class EnquireLink(_Empty):
    command_id = 0x00000015

cdef class EnquireLinkResp(_Empty):
    command_id = 0x80000015

cdef class CancelSmResp(_Empty):
    command_id = 0x80000008

cdef class ReplaceSmResp(_Empty):
    command_id = 0x80000007


cdef class _Bind(Pdu):
    cdef public str system_id, password, system_type, address_range
    cdef public int interface_version, addr_ton, addr_npi
    FIELDS = ("sequence_number", "command_status", "system_id", "password", "system_type",
              "interface_version", "addr_ton", "addr_npi", "address_range", "tlvs")

    def __init__(self, sequence_number=0, str system_id="", str password="",
                 str system_type="", int interface_version=0x34, int addr_ton=0,
                 int addr_npi=0, str address_range="", tlvs=None, command_status=0):
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


cdef class BindReceiver(_Bind):
    command_id = 0x00000001

cdef class BindTransmitter(_Bind):
    command_id = 0x00000002

cdef class BindTransceiver(_Bind):
    command_id = 0x00000009


cdef class _BindResp(Pdu):
    cdef public str system_id
    FIELDS = ("sequence_number", "command_status", "system_id", "tlvs")

    def __init__(self, sequence_number=0, command_status=0, str system_id="", tlvs=None):
        self.sequence_number = sequence_number
        self.command_status = command_status
        self.system_id = system_id
        self.tlvs = tlvs


cdef class BindReceiverResp(_BindResp):
    command_id = 0x80000001

cdef class BindTransmitterResp(_BindResp):
    command_id = 0x80000002

cdef class BindTransceiverResp(_BindResp):
    command_id = 0x80000009


cdef class Outbind(Pdu):
    cdef public str system_id, password
    command_id = 0x0000000B
    FIELDS = ("sequence_number", "command_status", "system_id", "password", "tlvs")

    def __init__(self, sequence_number=0, str system_id="", str password="", tlvs=None,
                 command_status=0):
        self.sequence_number = sequence_number
        self.command_status = command_status
        self.system_id = system_id
        self.password = password
        self.tlvs = tlvs


cdef class _Sm(Pdu):
    cdef public str service_type, source_addr, destination_addr
    cdef public str schedule_delivery_time, validity_period
    cdef public int source_addr_ton, source_addr_npi, dest_addr_ton, dest_addr_npi
    cdef public int esm_class, protocol_id, priority_flag, registered_delivery
    cdef public int replace_if_present_flag, data_coding, sm_default_msg_id
    cdef public bytes short_message
    FIELDS = ("sequence_number", "command_status", "service_type", "source_addr_ton",
              "source_addr_npi", "source_addr", "dest_addr_ton", "dest_addr_npi",
              "destination_addr", "esm_class", "protocol_id", "priority_flag",
              "schedule_delivery_time", "validity_period", "registered_delivery",
              "replace_if_present_flag", "data_coding", "sm_default_msg_id",
              "short_message", "tlvs")

    def __init__(self, sequence_number=0, str service_type="", int source_addr_ton=0,
                 int source_addr_npi=0, str source_addr="", int dest_addr_ton=0,
                 int dest_addr_npi=0, str destination_addr="", int esm_class=0,
                 int protocol_id=0, int priority_flag=0, str schedule_delivery_time="",
                 str validity_period="", int registered_delivery=0,
                 int replace_if_present_flag=0, int data_coding=0,
                 int sm_default_msg_id=0, bytes short_message=b"", tlvs=None,
                 command_status=0):
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


cdef class SubmitSm(_Sm):
    command_id = 0x00000004

cdef class DeliverSm(_Sm):
    command_id = 0x00000005


cdef class _MsgIdResp(Pdu):
    cdef public str message_id
    FIELDS = ("sequence_number", "command_status", "message_id", "tlvs")

    def __init__(self, sequence_number=0, command_status=0, str message_id="", tlvs=None):
        self.sequence_number = sequence_number
        self.command_status = command_status
        self.message_id = message_id
        self.tlvs = tlvs


cdef class SubmitSmResp(_MsgIdResp):
    command_id = 0x80000004

cdef class DeliverSmResp(_MsgIdResp):
    command_id = 0x80000005

cdef class DataSmResp(_MsgIdResp):
    command_id = 0x80000103


cdef class DataSm(Pdu):
    cdef public str service_type, source_addr, destination_addr
    cdef public int source_addr_ton, source_addr_npi, dest_addr_ton, dest_addr_npi
    cdef public int esm_class, registered_delivery, data_coding
    command_id = 0x00000103
    FIELDS = ("sequence_number", "command_status", "service_type", "source_addr_ton",
              "source_addr_npi", "source_addr", "dest_addr_ton", "dest_addr_npi",
              "destination_addr", "esm_class", "registered_delivery", "data_coding", "tlvs")

    def __init__(self, sequence_number=0, str service_type="", int source_addr_ton=0,
                 int source_addr_npi=0, str source_addr="", int dest_addr_ton=0,
                 int dest_addr_npi=0, str destination_addr="", int esm_class=0,
                 int registered_delivery=0, int data_coding=0, tlvs=None, command_status=0):
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


cdef class QuerySm(Pdu):
    cdef public str message_id, source_addr
    cdef public int source_addr_ton, source_addr_npi
    command_id = 0x00000003
    FIELDS = ("sequence_number", "command_status", "message_id", "source_addr_ton",
              "source_addr_npi", "source_addr", "tlvs")

    def __init__(self, sequence_number=0, str message_id="", int source_addr_ton=0,
                 int source_addr_npi=0, str source_addr="", tlvs=None, command_status=0):
        self.sequence_number = sequence_number
        self.command_status = command_status
        self.message_id = message_id
        self.source_addr_ton = source_addr_ton
        self.source_addr_npi = source_addr_npi
        self.source_addr = source_addr
        self.tlvs = tlvs


cdef class QuerySmResp(Pdu):
    cdef public str message_id, final_date
    cdef public int message_state, error_code
    command_id = 0x80000003
    FIELDS = ("sequence_number", "command_status", "message_id", "final_date",
              "message_state", "error_code", "tlvs")

    def __init__(self, sequence_number=0, command_status=0, str message_id="",
                 str final_date="", int message_state=0, int error_code=0, tlvs=None):
        self.sequence_number = sequence_number
        self.command_status = command_status
        self.message_id = message_id
        self.final_date = final_date
        self.message_state = message_state
        self.error_code = error_code
        self.tlvs = tlvs
