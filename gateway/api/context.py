"""What the REST API needs from the running gateway: the ``ApiContext`` protocol.

Owns: the exact surface between ``gateway.api`` (pure request -> response) and the
runtime, plus the small read-only views the API renders (numbers, services).

Rules:
- The API never touches sockets, SQL or settings; everything goes through this protocol.
- ``numbers()``/``services()`` return the *effective* view (config merged with the
  overrides saved through ``update_number``), synchronously, from the runtime's memory.
- ``submit_message`` gets a fully validated ``Message`` (status ``queued``, ``accepted``
  or ``scheduled``; ``from_ == ""`` when a Messaging Service must pick the sender); it
  checks opt-out (21610) and queue capacity (21611), stores durably (idempotency key in
  the same transaction), enqueues, and returns ``(message, created)``. It raises
  ``gateway.core.errors.TwilioError`` for any refusal.
- ``cancel_message``/``redact_message`` get a message the API already found in the
  caller's account and whose state allows it; they persist and return the new row.
- Times are float epoch seconds (UTC).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from gateway.core.ids import stable_sid
from gateway.core.message import Message
from gateway.store.base import Store

#: form fields of IncomingPhoneNumbers update the API accepts -> NumberView attribute
NUMBER_UPDATE_FIELDS = {
    "FriendlyName": "friendly_name",
    "SmsUrl": "sms_url",
    "SmsMethod": "sms_method",
    "SmsFallbackUrl": "sms_fallback_url",
    "SmsFallbackMethod": "sms_fallback_method",
    "VoiceUrl": "voice_url",
    "VoiceMethod": "voice_method",
    "VoiceFallbackUrl": "voice_fallback_url",
    "VoiceFallbackMethod": "voice_fallback_method",
    "StatusCallback": "status_callback",
    "StatusCallbackMethod": "status_callback_method",
}


def number_sid(account_sid: str, number: str) -> str:
    """The stable ``PN`` sid of a configured number (same on every gateway, every start)."""
    return stable_sid("PN", account_sid, number)


@dataclass(frozen=True, slots=True)
class NumberView:
    account_sid: str
    phone_number: str
    type: str = "long_code"                # long_code | toll_free | short_code
    friendly_name: str = ""
    sms_url: str = ""
    sms_method: str = "POST"
    sms_fallback_url: str = ""
    sms_fallback_method: str = "POST"
    voice_url: str = ""
    voice_method: str = "POST"
    voice_fallback_url: str = ""
    voice_fallback_method: str = "POST"
    status_callback: str = ""
    status_callback_method: str = "POST"
    date_created: float = 0.0
    date_updated: float = 0.0
    sid: str = ""                          # "" -> number_sid(account_sid, phone_number)

    @property
    def pn_sid(self) -> str:
        return self.sid or number_sid(self.account_sid, self.phone_number)


@dataclass(frozen=True, slots=True)
class ServiceView:
    sid: str
    account_sid: str
    friendly_name: str = ""
    numbers: tuple[str, ...] = ()
    sticky_sender: bool = True
    sms_url: str = ""                      # inbound_request_url
    sms_method: str = "POST"
    fallback_url: str = ""
    status_callback: str = ""
    validity_period: int = 36000
    smart_encoding: bool = False
    alpha_sender: str = ""                 # alphanumeric sender ID for non-+1 destinations
    date_created: float = 0.0
    date_updated: float = 0.0


@dataclass(frozen=True, slots=True)
class ApiLimits:
    max_inflight_per_account: int = 100    # concurrent requests per account; over -> 20429
    max_page_size: int = 1000
    default_page_size: int = 50
    max_offset_rows: int = 10000           # Page=N without PageToken walks at most this far


@dataclass(slots=True)
class Health:
    """What /healthz answers; ``http_status`` 503 when the store cannot commit."""

    body: dict[str, Any]
    http_status: int = 200


class ApiContext(Protocol):
    store: Store

    def now(self) -> float:
        """Epoch seconds."""

    def auth_token(self, account_sid: str) -> str | None:
        """The account's auth token; None for an unknown account."""

    def numbers(self, account_sid: str) -> list[NumberView]: ...

    # optional: ``number(account_sid, phone_number) -> NumberView | None`` — an O(1)
    # lookup the create path uses when present (else it scans ``numbers()``)
    # optional: ``alpha_sender(account_sid, sender_id)`` -> an object with ``view``
    # (NumberView, type "alphanumeric"), ``sender_id``, ``sid``, ``prefixes``,
    # ``date_created`` and ``reaches(to) -> bool``, or None (``runtime.numbers.AlphaSender``)

    def services(self, account_sid: str) -> list[ServiceView]: ...

    async def submit_message(
        self, msg: Message, idempotency_key: str | None
    ) -> tuple[Message, bool]: ...

    async def cancel_message(self, msg: Message) -> Message: ...

    async def redact_message(self, msg: Message) -> Message: ...

    async def update_number(
        self, account_sid: str, phone_number: str, fields: dict[str, str]
    ) -> NumberView:
        """``fields`` keys are NumberView attribute names (see NUMBER_UPDATE_FIELDS)."""

    async def health(self) -> Health: ...

    def carriers_admin(self) -> list[dict[str, Any]]: ...

    def metrics_exposition(self) -> tuple[bytes, str]:
        """(body, content type) of the Prometheus text exposition."""

