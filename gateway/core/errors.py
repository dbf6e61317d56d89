"""Twilio error codes, the error body, and the SMPP ``command_status`` → Twilio code map.

Owns: ``TwilioError`` (raised by the API layer and turned into Twilio's legacy error JSON
``{"code", "message", "more_info", "status"}``), the code constants with default
messages and HTTP statuses, and the table that says what a *final* ``submit_sm_resp``
status means for the message.

Rules:
- ``more_info`` is always ``https://www.twilio.com/docs/errors/<code>``.
- HTTP status is Twilio's for the code (401 for 20003, 404 for 20404, 429 for 20429),
  400 otherwise, unless the caller passes one.

Error handling: ``is_retryable_smpp_status`` names the submit_sm_resp statuses that are
*not* final: the message goes back to its sender queue and is resent (possibly through
another carrier). Every other non-zero status fails the message with
``error_for_smpp_status(status)``. The map is ours (Twilio publishes none):

==========================================  ==========  ===============================
SMPP command_status                          Twilio      why
==========================================  ==========  ===============================
0x00 ESME_ROK                                —           accepted (``sent``)
0x08 RSYSERR, 0x14 RMSGQFUL, 0x58 RTHROTTLED retry       temporary on the carrier side
0x64 RX_T_APPN, 0x04 RINVBNDSTS              retry       temporary / our bind is off
0x0B RINVDSTADR, 0x50 RINVDSTTON,            21211       the 'To' address is refused
0x51 RINVDSTNPI, 0x33 RINVNUMDESTS
0x0A RINVSRCADR, 0x48 RINVSRCTON,            21606       the 'From' is refused
0x49 RINVSRCNPI
0x66 RX_R_APPN (reject message)              30007       filtered by the carrier
0x62 RINVEXPIRY                              30036       validity period refused
0x01 RINVMSGLEN                              30008       (a bug on our side)
0x45 RSUBMITFAIL, 0xFE, 0xFF, vendor 0x400+, 30008       unknown error
anything else
==========================================  ==========  ===============================
"""

from __future__ import annotations

MORE_INFO = "https://www.twilio.com/docs/errors/{code}"

AUTHENTICATE = 20003
NOT_FOUND = 20404
TOO_MANY_REQUESTS = 20429
INVALID_TO = 21211
BODY_REQUIRED = 21602
FROM_REQUIRED = 21603
TO_REQUIRED = 21604
FROM_NOT_OWNED = 21606
UNSUBSCRIBED = 21610
QUEUE_FULL = 21611
BODY_TOO_LONG = 21617
BODY_OR_MEDIA_REQUIRED = 21619
INVALID_MEDIA_URL = 21620
QUEUE_OVERFLOW = 30001
UNREACHABLE_HANDSET = 30003
UNKNOWN_HANDSET = 30005
LANDLINE_OR_UNREACHABLE_CARRIER = 30006
FILTERED = 30007
UNKNOWN_ERROR = 30008
VALIDITY_EXPIRED = 30036
SEND_AT_TOO_SOON = 35114
SEND_AT_TOO_LATE = 35115
SCHEDULE_NEEDS_SERVICE = 35118

MESSAGES: dict[int, str] = {
    AUTHENTICATE: "Authenticate",
    NOT_FOUND: "The requested resource was not found",
    TOO_MANY_REQUESTS: "Too Many Requests",
    INVALID_TO: "The 'To' number is not a valid phone number.",
    BODY_REQUIRED: "Message body is required.",
    FROM_REQUIRED: "A 'From' phone number is required.",
    TO_REQUIRED: "A 'To' phone number is required.",
    FROM_NOT_OWNED: "The 'From' phone number provided is not a valid message-capable "
    "phone number for this destination/account.",
    UNSUBSCRIBED: "Attempt to send to unsubscribed recipient",
    QUEUE_FULL: "This 'From' number has exceeded the maximum number of queued messages",
    BODY_TOO_LONG: "The concatenated message body exceeds the 1600 character limit.",
    BODY_OR_MEDIA_REQUIRED: "A text message body or media urls must be specified.",
    INVALID_MEDIA_URL: "Media messages (MediaUrl) are not supported by this gateway.",
    QUEUE_OVERFLOW: "Queue overflow",
    UNREACHABLE_HANDSET: "Unreachable destination handset",
    UNKNOWN_HANDSET: "Unknown destination handset",
    LANDLINE_OR_UNREACHABLE_CARRIER: "Landline or unreachable carrier",
    FILTERED: "Message filtered",
    UNKNOWN_ERROR: "Unknown error",
    VALIDITY_EXPIRED: "Message validity period expired",
    SEND_AT_TOO_SOON: "SendAt must be at least 300 seconds in the future",
    SEND_AT_TOO_LATE: "SendAt must be at most 35 days (3024000 seconds) in the future",
    SCHEDULE_NEEDS_SERVICE: "A MessagingServiceSid is required to schedule a message",
}

HTTP_STATUS: dict[int, int] = {AUTHENTICATE: 401, NOT_FOUND: 404, TOO_MANY_REQUESTS: 429}


def more_info(code: int) -> str:
    return MORE_INFO.format(code=code)


class TwilioError(Exception):
    """An error the API answers with Twilio's JSON body.

    ``message`` defaults to ``MESSAGES[code]``; ``status`` to Twilio's HTTP status for
    the code (400 unless listed in ``HTTP_STATUS``).
    """

    def __init__(
        self,
        code: int,
        message: str | None = None,
        status: int | None = None,
        more_info: str | None = None,
    ) -> None:
        self.code = int(code)
        self.message = message if message is not None else MESSAGES.get(self.code, "Error")
        self.status = status if status is not None else HTTP_STATUS.get(self.code, 400)
        self.more_info = more_info or MORE_INFO.format(code=self.code)
        super().__init__(self.code, self.message)

    def as_dict(self) -> dict:
        return {
            "code": self.code,
            "message": self.message,
            "more_info": self.more_info,
            "status": self.status,
        }

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


# --- SMPP submit_sm_resp command_status -----------------------------------------------

ESME_ROK = 0x00
ESME_RINVMSGLEN = 0x01
ESME_RINVBNDSTS = 0x04
ESME_RSYSERR = 0x08
ESME_RINVSRCADR = 0x0A
ESME_RINVDSTADR = 0x0B
ESME_RMSGQFUL = 0x14
ESME_RINVNUMDESTS = 0x33
ESME_RSUBMITFAIL = 0x45
ESME_RINVSRCTON = 0x48
ESME_RINVSRCNPI = 0x49
ESME_RINVDSTTON = 0x50
ESME_RINVDSTNPI = 0x51
ESME_RTHROTTLED = 0x58
ESME_RINVEXPIRY = 0x62
ESME_RX_T_APPN = 0x64
ESME_RX_P_APPN = 0x65
ESME_RX_R_APPN = 0x66

#: not final: resend later (maybe elsewhere)
RETRYABLE_SMPP_STATUSES = frozenset(
    {ESME_RSYSERR, ESME_RMSGQFUL, ESME_RTHROTTLED, ESME_RX_T_APPN, ESME_RINVBNDSTS}
)
#: the carrier asks us to slow down (counted as throttling by carrier health)
THROTTLE_SMPP_STATUSES = frozenset({ESME_RMSGQFUL, ESME_RTHROTTLED})

SMPP_STATUS_TO_ERROR: dict[int, int] = {
    ESME_RINVDSTADR: INVALID_TO,
    ESME_RINVDSTTON: INVALID_TO,
    ESME_RINVDSTNPI: INVALID_TO,
    ESME_RINVNUMDESTS: INVALID_TO,
    ESME_RINVSRCADR: FROM_NOT_OWNED,
    ESME_RINVSRCTON: FROM_NOT_OWNED,
    ESME_RINVSRCNPI: FROM_NOT_OWNED,
    ESME_RX_R_APPN: FILTERED,
    ESME_RINVEXPIRY: VALIDITY_EXPIRED,
    ESME_RINVMSGLEN: UNKNOWN_ERROR,
    ESME_RSUBMITFAIL: UNKNOWN_ERROR,
    ESME_RX_P_APPN: UNKNOWN_ERROR,
}

#: statuses that blame the message (its addresses), not the carrier: carrier health
#: counts them as answered, not as carrier errors
MESSAGE_FAULT_SMPP_STATUSES = frozenset(
    {
        ESME_RINVDSTADR, ESME_RINVDSTTON, ESME_RINVDSTNPI, ESME_RINVNUMDESTS,
        ESME_RINVSRCADR, ESME_RINVSRCTON, ESME_RINVSRCNPI, ESME_RX_R_APPN,
        ESME_RINVEXPIRY, ESME_RINVMSGLEN,
    }
)


def is_retryable_smpp_status(status: int) -> bool:
    """True when a submit_sm_resp with ``status`` is not final (resend the message)."""
    return status in RETRYABLE_SMPP_STATUSES


def is_throttle_smpp_status(status: int) -> bool:
    return status in THROTTLE_SMPP_STATUSES


def error_for_smpp_status(status: int) -> int | None:
    """Twilio error code for a *final* submit_sm_resp status; None for ESME_ROK.

    Retryable statuses also map (to 30008) so a caller that gives up retrying has a code.
    """
    if status == ESME_ROK:
        return None
    return SMPP_STATUS_TO_ERROR.get(status, UNKNOWN_ERROR)
