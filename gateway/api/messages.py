"""The Messages resource: create, list, fetch, update (cancel/redact), delete.

Owns: validating Messages.json parameters into a ``Message`` the runtime can queue,
and mapping each refusal to Twilio's code.

Rules (codes as Twilio's; see ``reference/twilio.md``):
- Create: ``To`` missing -> 21604, not E.164 / short code -> 21211; neither ``From``
  nor ``MessagingServiceSid`` -> 21603; ``From`` neither a number (E.164 / short code
  after normalising) nor a well-formed alphanumeric sender ID -> 21212; not a number of
  the account (config numbers or a service pool) nor one of its ``[[alpha_senders]]``
  -> 21606; unknown service -> 21701, empty pool -> 21704;
  ``Body`` missing/empty -> 21602, over 1600 characters -> 21617; ``MediaUrl`` -> 21620
  and ``ContentSid`` -> 21655 (not supported by this gateway); ``StatusCallback`` not an
  http(s) URL -> 21609; ``ValidityPeriod`` outside 1..36000 -> 21624.
- Scheduling: ``ScheduleType`` other than ``fixed`` -> 35126, without a service ->
  35118, no ``SendAt`` -> 35111, unparseable -> 35117, less than 300 s ahead -> 35114,
  more than 35 days -> 35115. The message is ``scheduled``; its validity counts from
  ``SendAt``.
- Alphanumeric ``From`` (it holds a letter): matched case-insensitively, sent and
  answered with the configured spelling; ``To`` in +1 (US/CA), a short code, or outside
  the sender's ``prefixes`` -> 21612 (Twilio's "not currently reachable using the 'From'
  phone number ... via SMS"). A service whose pool is empty but has an ``alpha_sender``
  accepts what that sender reaches, else 21612 too.
- Status at create: ``queued`` with a ``From``; ``accepted`` with a service and no
  ``From`` (``from_ == ""``, the runtime picks from the pool); ``scheduled``.
- ``Idempotency-Key`` / ``I-Twilio-Idempotency-Token``: scoped per account; the same
  key returns the first message (201 both times).
- Update: ``Status=canceled`` only while ``scheduled`` or ``accepted`` (else 30409);
  ``Body=""`` redacts a message in a final state (else 20009); any other value 20422.
- Delete: only final messages (else 20009 "Cannot delete this resource before it is
  complete"), 204.
- Another account's message is 404 (20404), exactly like a missing one.
"""

from __future__ import annotations

from datetime import date, timedelta
from urllib.parse import quote

from gateway.api import forms, paging, render
from gateway.api.context import ApiContext, ApiLimits, NumberView, ServiceView
from gateway.codec.text import count_segments
from gateway.core import ids
from gateway.core import message as m
from gateway.core import numbers as nums
from gateway.core.errors import TwilioError
from gateway.io.http_server import Request, Response
from gateway.store.base import MessageFilter

MAX_BODY = 1600
MAX_VALIDITY = 36000
SCHEDULE_MIN = 300.0
SCHEDULE_MAX = 35 * 86400.0
IDEMPOTENCY_HEADERS = ("idempotency-key", "i-twilio-idempotency-token")


def _plain_number(s: str) -> bool:
    """Digits with an optional leading '+': ``nums.normalize`` would not change it and
    ``nums.looks_alpha`` is false (the common case, so both are skipped)."""
    return s.isdigit() or (s[:1] == "+" and s[1:].isdigit())


def _err(code: int, message: str | None = None) -> TwilioError:
    return TwilioError(code, message)


def _not_found(path: str) -> TwilioError:
    return TwilioError(20404, f"The requested resource {path} was not found", 404)


class MessagesResource:
    def __init__(self, ctx: ApiContext, limits: ApiLimits) -> None:
        self.ctx = ctx
        self.limits = limits

    # -- create ---------------------------------------------------------------------
    async def create(self, req: Request, account: str) -> Response:
        form = req.form()
        msg = self.build(account, form)
        key = None
        for name in IDEMPOTENCY_HEADERS:
            if req.headers.get(name):
                key = req.headers[name].strip()
                break
        msg, _created = await self.ctx.submit_message(msg, key)
        return Response.json(render.message_json(msg), 201)

    def build(self, account: str, form: forms.Form) -> m.Message:
        """Validate create parameters into a new Message (no I/O)."""
        now = self.ctx.now()
        to_raw = (forms.value(form, "To") or "").strip()
        if not to_raw:
            raise _err(21604)
        to = to_raw if _plain_number(to_raw) else nums.normalize(to_raw)
        if not nums.is_valid_address(to):
            raise _err(21211, f"The 'To' number {to_raw} is not a valid phone number.")
        if forms.all_values(form, "MediaUrl"):
            raise _err(21620, "Media messages (MediaUrl) are not supported by this gateway; "
                              "send text only.")
        if forms.value(form, "ContentSid"):
            raise _err(21655, "Content templates (ContentSid) are not supported by this "
                              "gateway; send a Body.")
        body = forms.value(form, "Body")
        if not body:
            raise _err(21602)
        if len(body) > MAX_BODY:
            raise _err(21617)
        from_raw = (forms.value(form, "From") or "").strip()
        mg = (forms.value(form, "MessagingServiceSid") or "").strip()
        if not from_raw and not mg:
            raise _err(21603, "A 'From' phone number or a 'MessagingServiceSid' is required.")
        service = self._service(account, mg) if mg else None
        number = self._sender(account, from_raw, to) if from_raw else None
        if service is not None and number is None and not service.numbers:
            alpha = getattr(service, "alpha_sender", "")
            if not alpha:
                raise _err(21704, f"The Messaging Service {mg} contains no phone numbers.")
            self._alpha(account, alpha, to)
        status_callback = forms.url(form, "StatusCallback", 21609)
        if status_callback is None and service is not None and service.status_callback:
            status_callback = service.status_callback
        if status_callback is None and number is not None and number.status_callback:
            status_callback = number.status_callback
        validity = forms.integer(form, "ValidityPeriod", MAX_VALIDITY, 1, MAX_VALIDITY, 21624)
        smart_default = service.smart_encoding if service is not None else False
        smart = forms.boolean(form, "SmartEncoded", smart_default)
        send_at = self._schedule(form, service, now)
        if send_at is not None:
            status = m.SCHEDULED
        elif number is None:
            status = m.ACCEPTED
        else:
            status = m.QUEUED
        return m.Message(
            sid=ids.new_sid("SM"),
            account_sid=account,
            from_=number.phone_number if number is not None else "",
            to=to,
            body=body,
            status=status,
            direction=m.OUTBOUND_API,
            num_segments=count_segments(body, smart),
            num_media=0,
            messaging_service_sid=service.sid if service is not None else None,
            status_callback=status_callback,
            sender_class=number.type if number is not None else nums.LONG_CODE,
            smart_encoded=smart,
            date_created=now,
            date_updated=now,
            valid_until=(send_at if send_at is not None else now) + validity,
            send_at=send_at,
        )

    def _service(self, account: str, mg: str) -> ServiceView:
        for svc in self.ctx.services(account):
            if svc.sid == mg:
                return svc
        raise _err(21701, f"The Messaging Service {mg} does not exist.")

    def _alpha(self, account: str, sender_id: str, to: str) -> NumberView:
        """The account's alphanumeric sender ``sender_id`` (21606) reaching ``to`` (21612)."""
        lookup = getattr(self.ctx, "alpha_sender", None)
        alpha = lookup(account, sender_id) if lookup is not None else None
        if alpha is None:
            raise _err(21606, f"The From phone number {sender_id} is not a valid, SMS-capable "
                              "inbound phone number or short code for your account.")
        if not alpha.reaches(to):
            raise _err(21612, f"The 'To' phone number: {to}, is not currently reachable using "
                              f"the 'From' phone number: {alpha.sender_id} via SMS.")
        return alpha.view

    def _sender(self, account: str, from_raw: str, to: str) -> NumberView:
        if _plain_number(from_raw):
            from_ = from_raw
        elif nums.looks_alpha(from_raw):
            if not nums.is_alpha_sender(from_raw):
                raise _err(21212, f"The 'From' number {from_raw} is not a valid phone number, "
                                  "shortcode, or alphanumeric sender ID.")
            return self._alpha(account, from_raw, to)
        else:
            from_ = nums.normalize(from_raw)
        if not nums.is_valid_address(from_):
            raise _err(21212, f"The 'From' number {from_raw} is not a valid phone number, "
                              "shortcode, or alphanumeric sender ID.")
        lookup = getattr(self.ctx, "number", None)      # O(1) when the runtime offers it
        if lookup is not None:
            view = lookup(account, from_)
            if view is not None:
                return view
        else:
            for view in self.ctx.numbers(account):
                if view.phone_number == from_:
                    return view
        for svc in self.ctx.services(account):
            if from_ in svc.numbers:
                return NumberView(account_sid=account, phone_number=from_,
                                  type=nums.guess_sender_class(from_))
        raise _err(21606, f"The From phone number {from_raw} is not a valid, SMS-capable "
                          "inbound phone number or short code for your account.")

    def _schedule(self, form: forms.Form, service: ServiceView | None, now: float
                  ) -> float | None:
        kind = forms.value(form, "ScheduleType")
        raw = forms.value(form, "SendAt")
        if not kind and not raw:
            return None
        if kind != "fixed":
            raise _err(35126, f"ScheduleType {kind!r} is not supported; use 'fixed' with SendAt.")
        if service is None:
            raise _err(35118)
        if not raw:
            raise _err(35111, "SendAt timestamp is missing")
        send_at = forms.timestamp(raw, "SendAt", 35117)
        if send_at - now < SCHEDULE_MIN:
            raise _err(35114)
        if send_at - now > SCHEDULE_MAX:
            raise _err(35115)
        return send_at

    # -- list -----------------------------------------------------------------------
    async def list(self, req: Request, account: str) -> Response:
        query = req.query_params()
        page = paging.parse_page(query, self.limits.default_page_size, self.limits.max_page_size)
        filters: list[tuple[str, str]] = []
        to = forms.value(query, "To")
        from_ = forms.value(query, "From")
        if to:
            filters.append(("To", to))
        if from_:
            filters.append(("From", from_))
        on = forms.day(query, "DateSent")
        before = forms.day(query, "DateSent<")
        after = forms.day(query, "DateSent>")
        for name, val in (("DateSent", on), ("DateSent<", before), ("DateSent>", after)):
            if val:
                filters.append((name, val))
        flt = MessageFilter(
            account_sid=account,
            to=nums.normalize(to) if to else None,
            from_=nums.normalize(from_) if from_ else None,
            date_sent=on,
            # Twilio's DateSent<= is "on or before" the day; the store's bound is exclusive
            date_sent_before=_next_day(before) if before else None,
            date_sent_after=after,
        )
        rows = await self._rows(flt, page)
        has_more = len(rows) > page.page_size
        rows = rows[: page.page_size]
        path = f"{render.account_base(account)}/Messages.json"
        env = paging.envelope_2010(
            "messages", [render.message_json(r) for r in rows], path, filters, page,
            has_more, rows[-1].seq if has_more and rows else None,
        )
        return Response.json(env)

    async def _rows(self, flt: MessageFilter, page: paging.PageRequest) -> list[m.Message]:
        want = page.page_size + 1
        if page.before_seq is not None or page.page == 0:
            return await self.ctx.store.list_messages(flt, want, page.before_seq)
        skip = page.page * page.page_size
        if skip > self.limits.max_offset_rows:
            raise TwilioError(paging.INVALID_PAGE_TOKEN,
                              f"Page without PageToken is limited to the first "
                              f"{self.limits.max_offset_rows} records; follow next_page_uri.")
        rows = await self.ctx.store.list_messages(flt, skip + want, None)
        return rows[skip:]

    # -- fetch / update / delete -----------------------------------------------------
    async def _get(self, req: Request, account: str, sid: str) -> m.Message:
        if not (ids.is_sid(sid, "SM") or ids.is_sid(sid, "MM")):
            raise _not_found(quote(req.path))
        msg = await self.ctx.store.get_message(sid)
        if msg is None or msg.account_sid != account:
            raise _not_found(quote(req.path))
        return msg

    async def fetch(self, req: Request, account: str, sid: str) -> Response:
        return Response.json(render.message_json(await self._get(req, account, sid)))

    async def update(self, req: Request, account: str, sid: str) -> Response:
        msg = await self._get(req, account, sid)
        form = req.form()
        status = forms.value(form, "Status")
        body = forms.value(form, "Body")
        if status is not None:
            if status != m.CANCELED:
                raise _err(20422, "Status can only be updated to 'canceled'.")
            if msg.status not in (m.SCHEDULED, m.ACCEPTED):
                raise _err(30409, f"Message is not in a cancelable state (status "
                                  f"'{msg.status}'); only scheduled messages can be canceled.")
            msg = await self.ctx.cancel_message(msg)
        if body is not None:
            if body != "":
                raise _err(20422, "Body can only be updated to an empty string (redaction).")
            if msg.status not in m.FINAL:
                raise _err(20009, "Cannot redact this message before it is complete.")
            msg = await self.ctx.redact_message(msg)
        return Response.json(render.message_json(msg))

    async def delete(self, req: Request, account: str, sid: str) -> Response:
        msg = await self._get(req, account, sid)
        if msg.status not in m.FINAL:
            raise _err(20009, "Cannot delete this resource before it is complete")
        await self.ctx.store.delete_message(msg.sid)
        return Response.empty(204)


def _next_day(day: str) -> str:
    return (date.fromisoformat(day) + timedelta(days=1)).isoformat()
