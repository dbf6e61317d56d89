"""JSON shapes of the Twilio resources, and their date formats.

Owns: Message, IncomingPhoneNumber (2010-04-01) and Messaging v1 Service JSON, the
error body, RFC 2822 / ISO 8601 dates.

Rules:
- 2010-04-01 dates are RFC 2822 with ``+0000`` (the twilio library ignores the offset
  and parses with ``email.utils.parsedate``); English day/month names, never the locale.
- Messaging v1 dates are ISO 8601 UTC ``YYYY-MM-DDTHH:MM:SSZ``.
- ``num_segments``/``num_media`` are strings, ``error_code`` an int or null, ``price``
  null (the gateway does not rate messages), ``price_unit`` ``USD``.
- Every field is present (null when unknown): clients index, they don't ``get``.
"""

from __future__ import annotations

import time
from typing import Any

from gateway.api.context import NumberView, ServiceView
from gateway.core.message import Message

API_VERSION = "2010-04-01"
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


_RFC2822_LAST: list = [None, None]      # [whole second, its text]: most dates are "now"


def rfc2822(ts: float | None) -> str | None:
    if ts is None:
        return None
    sec = int(ts // 1)          # gmtime's second (it floors)
    last = _RFC2822_LAST
    if last[0] == sec:
        return last[1]
    t = time.gmtime(ts)
    text = (
        f"{_DAYS[t.tm_wday]}, {t.tm_mday:02d} {_MONTHS[t.tm_mon - 1]} {t.tm_year:04d} "
        f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} +0000"
    )
    last[0], last[1] = sec, text
    return text


def iso8601(ts: float | None) -> str | None:
    if ts is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def account_base(account_sid: str) -> str:
    return f"/{API_VERSION}/Accounts/{account_sid}"


def message_uri(msg: Message) -> str:
    return f"{account_base(msg.account_sid)}/Messages/{msg.sid}.json"


def message_json(msg: Message) -> dict[str, Any]:
    base = f"{account_base(msg.account_sid)}/Messages/{msg.sid}"
    return {
        "account_sid": msg.account_sid,
        "api_version": API_VERSION,
        "body": msg.body,
        "date_created": rfc2822(msg.date_created),
        "date_sent": rfc2822(msg.date_sent),
        "date_updated": rfc2822(msg.date_updated),
        "direction": msg.direction,
        "error_code": msg.error_code,
        "error_message": msg.error_message,
        "from": msg.from_ or None,
        "messaging_service_sid": msg.messaging_service_sid,
        "num_media": str(msg.num_media),
        "num_segments": str(msg.num_segments),
        "price": None,
        "price_unit": "USD",
        "sid": msg.sid,
        "status": msg.status,
        "subresource_uris": {
            "media": f"{base}/Media.json",
            "feedback": f"{base}/Feedback.json",
        },
        "to": msg.to,
        "uri": f"{base}.json",
    }


def number_uri(view: NumberView) -> str:
    return f"{account_base(view.account_sid)}/IncomingPhoneNumbers/{view.pn_sid}.json"


def number_json(view: NumberView) -> dict[str, Any]:
    sid = view.pn_sid
    base = f"{account_base(view.account_sid)}/IncomingPhoneNumbers/{sid}"
    return {
        "account_sid": view.account_sid,
        "address_requirements": "none",
        "address_sid": None,
        "api_version": API_VERSION,
        "beta": False,
        "bundle_sid": None,
        "capabilities": {
            "fax": False,
            "mms": False,
            "sms": True,
            "voice": view.type != "short_code",
        },
        "date_created": rfc2822(view.date_created),
        "date_updated": rfc2822(view.date_updated),
        "emergency_address_sid": None,
        "emergency_address_status": "unregistered",
        "emergency_status": "Inactive",
        "friendly_name": view.friendly_name or view.phone_number,
        "identity_sid": None,
        "origin": "hosted",
        "phone_number": view.phone_number,
        "sid": sid,
        "sms_application_sid": None,
        "sms_fallback_method": view.sms_fallback_method,
        "sms_fallback_url": view.sms_fallback_url,
        "sms_method": view.sms_method,
        "sms_url": view.sms_url,
        "status": "in-use",
        "status_callback": view.status_callback,
        "status_callback_method": view.status_callback_method,
        "subresource_uris": {"assigned_add_ons": f"{base}/AssignedAddOns.json"},
        "trunk_sid": None,
        "type": view.type,
        "uri": f"{base}.json",
        "voice_application_sid": None,
        "voice_caller_id_lookup": False,
        "voice_fallback_method": view.voice_fallback_method,
        "voice_fallback_url": view.voice_fallback_url,
        "voice_method": view.voice_method,
        "voice_receive_mode": "voice",
        "voice_url": view.voice_url,
    }


def service_json(view: ServiceView, origin: str) -> dict[str, Any]:
    """Messaging v1 Service; ``origin`` is ``scheme://host[:port]`` of the request."""
    url = f"{origin}/v1/Services/{view.sid}"
    return {
        "account_sid": view.account_sid,
        "area_code_geomatch": False,
        "date_created": iso8601(view.date_created),
        "date_updated": iso8601(view.date_updated),
        "fallback_method": "POST",
        "fallback_to_long_code": False,
        "fallback_url": view.fallback_url or None,
        "friendly_name": view.friendly_name,
        "inbound_method": view.sms_method,
        "inbound_request_url": view.sms_url or None,
        "links": {
            "phone_numbers": f"{url}/PhoneNumbers",
            "short_codes": f"{url}/ShortCodes",
            "alpha_senders": f"{url}/AlphaSenders",
            "messages": f"{url}/Messages",
            "us_app_to_person": f"{url}/Compliance/Usa2p",
            "us_app_to_person_usecases": f"{url}/Compliance/Usa2p/Usecases",
            "channel_senders": f"{url}/ChannelSenders",
        },
        "mms_converter": False,
        "scan_message_content": "inherit",
        "sid": view.sid,
        "smart_encoding": view.smart_encoding,
        "status_callback": view.status_callback or None,
        "sticky_sender": view.sticky_sender,
        "synchronous_validation": False,
        "url": url,
        "us_app_to_person_registered": False,
        "use_inbound_webhook_on_number": not view.sms_url,
        "usecase": "undeclared",
        "validity_period": view.validity_period,
    }


def alpha_sender_json(alpha: Any, service_sid: str, origin: str) -> dict[str, Any]:
    """Messaging v1 AlphaSender of a service (``alpha``: ``runtime.numbers.AlphaSender``)."""
    return {
        "account_sid": alpha.view.account_sid,
        "alpha_sender": alpha.sender_id,
        "capabilities": ["SMS"],
        "date_created": iso8601(alpha.date_created),
        "date_updated": iso8601(alpha.date_created),
        "service_sid": service_sid,
        "sid": alpha.sid,
        "url": f"{origin}/v1/Services/{service_sid}/AlphaSenders/{alpha.sid}",
    }


def error_json(code: int, message: str, status: int) -> dict[str, Any]:
    return {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }
