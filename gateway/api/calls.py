"""The Calls resource: create (outbound call), list, fetch, update (cancel, hang up,
redirect mid-call), and the Call JSON.

Owns: validating Calls.json parameters into a ``Call`` the voice runtime dials, each
refusal's Twilio code, and the ``CallsContext`` the runtime implements for it.

Rules (codes as Twilio's):
- Create: ``To`` missing -> 21201, not E.164 -> 21211; ``From`` missing -> 21213, not a
  number of the account -> 21210; none of ``Url``/``Twiml``/``ApplicationSid`` -> 21205,
  ``Url``/``FallbackUrl`` not an absolute http(s) URL -> 21205, ``StatusCallback`` ->
  21609; ``ApplicationSid`` -> 21218 (applications are not supported); ``Twiml`` over
  4000 characters -> 32018, not valid voice TwiML -> 12100; ``Url`` wins over ``Twiml``
  when both are given; methods other than GET/POST -> 21209; ``StatusCallbackEvent``
  (repeated) outside initiated/ringing/answered/completed -> 21626; ``Timeout`` is
  clamped to 1..600 (default 60); ``SendDigits`` only ``0-9*#wW``, at most 32 -> 21219.
- The new call is ``queued`` (201); the runtime dials it right away.
- Update: ``Status=canceled`` only while queued/ringing (else the call is unchanged, as
  Twilio), ``Status=completed`` hangs up whatever the state; ``Url``/``Twiml`` redirect
  an in-progress call (a queued/ringing one runs them on answer); a final call -> 21220; another ``Status`` -> 20422.
- List: newest first, filters ``To``, ``From``, ``Status``, ``ParentCallSid``, offset
  paging (``Page``/``PageSize``) over the account's calls; key ``calls``.
- Another account's call is 404 (20404), exactly like a missing one.
"""

from __future__ import annotations

from typing import Any, Protocol
from urllib.parse import quote

from gateway.api import forms, paging, render
from gateway.api.context import ApiContext, ApiLimits
from gateway.codec import twiml_voice
from gateway.core import call as C
from gateway.core import ids
from gateway.core import numbers as nums
from gateway.core.errors import TwilioError
from gateway.io.http_server import Request, Response

MAX_TWIML = 4000
MAX_SEND_DIGITS = 32
EVENT_NAMES = frozenset(C.EVENTS)


class CallsContext(ApiContext, Protocol):
    async def create_call(self, call: C.Call) -> C.Call:
        """Persist and start dialling; the returned call is ``queued`` (or later)."""

    async def get_call(self, sid: str) -> C.Call | None: ...

    async def list_calls(self, account_sid: str) -> list[C.Call]:
        """Every call of the account, newest first."""

    async def update_call(self, call: C.Call, *, status: str | None = None,
                          url: str | None = None, method: str = "POST",
                          twiml: str | None = None) -> C.Call: ...


def _err(code: int, message: str | None = None) -> TwilioError:
    return TwilioError(code, message)


def call_json(call: C.Call) -> dict[str, Any]:
    base = f"{render.account_base(call.account_sid)}/Calls/{call.sid}"
    return {
        "account_sid": call.account_sid,
        "annotation": None,
        "answered_by": call.answered_by,
        "api_version": render.API_VERSION,
        "caller_name": call.caller_name,
        "date_created": render.rfc2822(call.date_created),
        "date_updated": render.rfc2822(call.date_updated),
        "direction": call.direction,
        "duration": str(call.duration) if call.duration is not None else None,
        "end_time": render.rfc2822(call.end_time),
        "forwarded_from": call.forwarded_from,
        "from": call.from_,
        "from_formatted": call.from_,
        "group_sid": None,
        "parent_call_sid": call.parent_call_sid,
        "phone_number_sid": None,
        "price": None,
        "price_unit": "USD",
        "queue_time": "0",
        "sid": call.sid,
        "start_time": render.rfc2822(call.start_time),
        "status": call.status,
        "subresource_uris": {
            "notifications": f"{base}/Notifications.json",
            "recordings": f"{base}/Recordings.json",
            "payments": f"{base}/Payments.json",
            "events": f"{base}/Events.json",
            "siprec": f"{base}/Siprec.json",
            "streams": f"{base}/Streams.json",
            "user_defined_message_subscriptions": f"{base}/UserDefinedMessageSubscriptions.json",
            "user_defined_messages": f"{base}/UserDefinedMessages.json",
        },
        "to": call.to,
        "to_formatted": call.to,
        "trunk_sid": None,
        "uri": f"{base}.json",
    }


def _url(form: forms.Form, name: str, code: int) -> str | None:
    try:
        return forms.url(form, name, code)
    except TwilioError as exc:
        raise _err(code, exc.message) from None


def _twiml(raw: str) -> str:
    if len(raw) > MAX_TWIML:
        raise _err(32018, "Twiml size exceeded maximum allowed value of 4000 characters")
    try:
        twiml_voice.parse(raw)
    except twiml_voice.TwimlError as exc:
        raise _err(12100, f"Document parse failure: {exc}") from None
    return raw


class CallsResource:
    def __init__(self, ctx: CallsContext, limits: ApiLimits) -> None:
        self.ctx = ctx
        self.limits = limits

    # -- create ---------------------------------------------------------------------
    async def create(self, req: Request, account: str) -> Response:
        call = self.build(account, req.form())
        call = await self.ctx.create_call(call)
        return Response.json(call_json(call), 201)

    def build(self, account: str, form: forms.Form) -> C.Call:
        """Validate create parameters into a new queued Call (no I/O)."""
        now = self.ctx.now()
        to_raw = (forms.value(form, "To") or "").strip()
        if not to_raw:
            raise _err(21201, "No 'To' number is specified")
        to = nums.normalize(to_raw)
        if not nums.is_valid_address(to):
            raise _err(21211, f"The 'To' number {to_raw} is not a valid phone number.")
        from_raw = (forms.value(form, "From") or "").strip()
        if not from_raw:
            raise _err(21213, "No 'From' number is specified")
        from_ = nums.normalize(from_raw)
        if not any(v.phone_number == from_ for v in self.ctx.numbers(account)):
            raise _err(21210, f"The source phone number provided, {from_raw}, is not yet "
                              "verified for your account.")
        if forms.value(form, "ApplicationSid"):
            raise _err(21218, "ApplicationSid is not supported by this gateway; use Url or Twiml.")
        url = _url(form, "Url", 21205)
        twiml = None
        raw_twiml = forms.value(form, "Twiml")
        if url is None:
            if raw_twiml is None or not raw_twiml.strip():
                raise _err(21205, "Url parameter is required (or Twiml)")
            twiml = _twiml(raw_twiml)
        events = forms.all_values(form, "StatusCallbackEvent")
        flat = [e.strip().lower() for ev in events for e in ev.split(" ") if e.strip()]
        if any(e not in EVENT_NAMES for e in flat):
            raise _err(21626, "Invalid 'StatusCallbackEvent': use initiated, ringing, "
                              "answered, completed")
        digits = (forms.value(form, "SendDigits") or "").strip()
        if len(digits) > MAX_SEND_DIGITS or any(ch not in "0123456789*#wW" for ch in digits):
            raise _err(21219, "SendDigits may hold at most 32 of 0-9, *, #, w and W")
        timeout = forms.integer(form, "Timeout", 60, -(10**9), 10**9)
        return C.Call(
            sid=ids.new_sid("CA"),
            account_sid=account,
            from_=from_,
            to=to,
            direction=C.OUTBOUND_API,
            status=C.QUEUED,
            date_created=now,
            date_updated=now,
            url=url,
            method=forms.method(form, "Method") or "POST",
            twiml=twiml,
            fallback_url=_url(form, "FallbackUrl", 21205),
            fallback_method=forms.method(form, "FallbackMethod") or "POST",
            status_callback=_url(form, "StatusCallback", 21609),
            status_callback_method=forms.method(form, "StatusCallbackMethod") or "POST",
            status_callback_events=tuple(dict.fromkeys(flat)) or C.DEFAULT_EVENTS,
            timeout=max(1, min(600, timeout)),
            time_limit=forms.integer(form, "TimeLimit", 14400, 1, 86400),
            send_digits=digits,
        )

    # -- list -----------------------------------------------------------------------
    async def list(self, req: Request, account: str) -> Response:
        query = req.query_params()
        page = paging.parse_page(query, self.limits.default_page_size, self.limits.max_page_size)
        filters: list[tuple[str, str]] = []
        want: dict[str, str] = {}
        for name, attr in (("To", "to"), ("From", "from_"), ("Status", "status"),
                           ("ParentCallSid", "parent_call_sid")):
            val = forms.value(query, name)
            if val:
                filters.append((name, val))
                want[attr] = nums.normalize(val) if attr in ("to", "from_") else val
        rows = [c for c in await self.ctx.list_calls(account)
                if all(getattr(c, k) == v for k, v in want.items())]
        start = page.page * page.page_size
        chunk = rows[start:start + page.page_size]
        has_more = len(rows) > start + page.page_size
        path = f"{render.account_base(account)}/Calls.json"
        env = paging.envelope_2010("calls", [call_json(c) for c in chunk], path, filters,
                                   paging.PageRequest(page.page_size, page.page, None), has_more)
        return Response.json(env)

    # -- fetch / update -------------------------------------------------------------
    async def _get(self, req: Request, account: str, sid: str) -> C.Call:
        if not ids.is_sid(sid, "CA"):
            raise TwilioError(20404, f"The requested resource {quote(req.path)} was not found", 404)
        call = await self.ctx.get_call(sid)
        if call is None or call.account_sid != account:
            raise TwilioError(20404, f"The requested resource {quote(req.path)} was not found", 404)
        return call

    async def fetch(self, req: Request, account: str, sid: str) -> Response:
        return Response.json(call_json(await self._get(req, account, sid)))

    async def update(self, req: Request, account: str, sid: str) -> Response:
        call = await self._get(req, account, sid)
        form = req.form()
        status = forms.value(form, "Status")
        url = _url(form, "Url", 21205)
        raw_twiml = forms.value(form, "Twiml")
        twiml = _twiml(raw_twiml) if raw_twiml and raw_twiml.strip() and url is None else None
        method = forms.method(form, "Method") or "POST"
        if status is not None and status not in (C.CANCELED, C.COMPLETED):
            raise _err(20422, "Status can only be updated to 'canceled' or 'completed'.")
        if call.final:
            raise _err(21220, f"Call is not in-progress (status '{call.status}'); cannot "
                              "redirect or end it.")
        if status is None and not (url or twiml):
            return Response.json(call_json(call))
        call = await self.ctx.update_call(call, status=status, url=url, method=method,
                                          twiml=twiml)
        return Response.json(call_json(call))
