"""errors, numbers and optout: small pure tables."""

import pytest

from gateway.core import errors, numbers, optout


def test_twilio_error_body_shape():
    e = errors.TwilioError(errors.INVALID_TO, "The 'To' number 123 is not a valid phone number.")
    assert e.as_dict() == {
        "code": 21211,
        "message": "The 'To' number 123 is not a valid phone number.",
        "more_info": "https://www.twilio.com/docs/errors/21211",
        "status": 400,
    }


@pytest.mark.parametrize(
    "code,status", [(20003, 401), (20404, 404), (20429, 429), (21211, 400), (21611, 400),
                    (21610, 400), (35118, 400)],
)
def test_default_status_and_message(code, status):
    e = errors.TwilioError(code)
    assert e.status == status
    assert e.message == errors.MESSAGES[code]
    assert e.as_dict()["more_info"].endswith(f"/errors/{code}")


def test_explicit_status_wins():
    assert errors.TwilioError(21211, status=422).as_dict()["status"] == 422


def test_every_named_code_has_a_message():
    for code in (20003, 20404, 20429, 21211, 21602, 21603, 21604, 21606, 21610, 21611,
                 21617, 21619, 21620, 30001, 30003, 30005, 30006, 30007, 30008, 30036,
                 35114, 35115, 35118):
        assert errors.MESSAGES[code]


@pytest.mark.parametrize(
    "status,retry,code",
    [
        (0x00, False, None),
        (0x58, True, 30008),   # THROTTLED: not final
        (0x14, True, 30008),   # MSGQFUL: not final
        (0x08, True, 30008),   # SYSERR: not final
        (0x0B, False, 21211),  # RINVDSTADR
        (0x51, False, 21211),  # RINVDSTNPI
        (0x0A, False, 21606),  # RINVSRCADR
        (0x45, False, 30008),  # RSUBMITFAIL
        (0x66, False, 30007),  # RX_R_APPN
        (0x62, False, 30036),  # RINVEXPIRY
        (0x400, False, 30008),  # vendor
        (0x402, False, 30008),
    ],
)
def test_smpp_status_map(status, retry, code):
    assert errors.is_retryable_smpp_status(status) is retry
    assert errors.error_for_smpp_status(status) == code


@pytest.mark.parametrize(
    "raw,norm,e164,short",
    [
        ("+15005550006", "+15005550006", True, False),
        ("+1 (500) 555-0006", "+15005550006", True, False),
        ("+1.500.555.0006", "+15005550006", True, False),
        ("5005550006", "5005550006", False, False),
        ("+05005550006", "+05005550006", False, False),
        ("+1234567890123456", "+1234567890123456", False, False),  # 16 digits
        ("+12", "+12", True, False),
        ("+1", "+1", False, False),
        ("12345", "12345", False, True),
        ("123456", "123456", False, True),
        ("1234", "1234", False, False),
        ("1234567", "1234567", False, False),
        ("", "", False, False),
        ("+1500555000a", "+1500555000a", False, False),
    ],
)
def test_numbers(raw, norm, e164, short):
    assert numbers.normalize(raw) == norm
    assert numbers.is_e164(norm) is e164
    assert numbers.is_short_code(norm) is short
    assert numbers.is_valid_address(norm) is (e164 or short)


def test_sender_class():
    assert numbers.sender_class("12345") == "short_code"
    assert numbers.sender_class("+18005550100") == "toll_free"
    assert numbers.sender_class("+15005550006") == "long_code"
    assert numbers.sender_class("+15005550006", {"+15005550006": "toll_free"}) == "toll_free"
    assert numbers.sender_class("+4915112345678", {}) == "long_code"


@pytest.mark.parametrize(
    "body,kind",
    [
        ("STOP", "stop"), ("stop", "stop"), ("  Stop \n", "stop"), ("STOPALL", "stop"),
        ("unsubscribe", "stop"), ("Cancel", "stop"), ("END", "stop"), ("quit", "stop"),
        ("START", "start"), ("yes", "start"), ("Unstop", "start"),
        ("HELP", "help"), ("info", "help"),
        ("please stop", None), ("STOP!", None), ("stopp", None), ("", None), (None, None),
        ("hello", None),
    ],
)
def test_optout_classify(body, kind):
    assert optout.classify(body) == kind


def test_optout_replies():
    assert "START" in optout.REPLIES["stop"]
    assert "STOP" in optout.REPLIES["start"]
    assert "STOP" in optout.REPLIES["help"]
