"""Inbound SMS (MO): deliver_sm → reassembly → store (received) → opt-out keywords →
signed webhook to the number's (or its Messaging Service's) ``sms_url`` → TwiML executed.

Rules:
- Multipart MO (UDH 0x00/0x08 or SAR) is reassembled before anything else; parts still
  missing after ``REASSEMBLY_TIMEOUT_S`` are delivered as they are (flagged in the log).
- STOP-family keywords opt the sender out of this number (Twilio's default reply is
  sent, TwiML replies are not); START re-subscribes; HELP answers. The webhook is still
  called for all of them, as Twilio does.
- TwiML: ``<Message>`` (to defaults to the sender, from to our number), several
  messages, ``<Redirect>`` (up to 10 hops, relative URLs resolved); empty
  ``<Response/>`` sends nothing.

Error handling: a webhook that fails (connect error, timeout, HTTP ≥ 400, invalid
TwiML) sends the request to ``sms_fallback_url`` with ``ErrorCode`` and ``ErrorUrl``;
when that fails too, the error is logged and the message stays ``received``.
"""

from __future__ import annotations

import logging
import time
from urllib.parse import urljoin

import trio

from gateway import codec
from gateway.codec import text as textmod
from gateway.codec import twiml
from gateway.core import message as M
from gateway.core import optout
from gateway.core.ids import new_sid
from gateway.core.message import Message
from gateway.core.reassembly import Reassembler
from gateway.runtime.webhooks import Hook, WebhookError

log = logging.getLogger("gateway.inbound")

REASSEMBLY_TIMEOUT_S = 120.0
MAX_REDIRECTS = 10
TWIML_TYPES = ("text/xml", "application/xml", "text/html", "")


def _address(addr: str, ton: int) -> str:
    if addr.startswith("+") or len(addr) <= 6 or ton not in (0, 1):
        return addr
    return "+" + addr


class Inbound:
    def __init__(self, gw):
        self.gw = gw
        self.reasm = Reassembler(timeout=REASSEMBLY_TIMEOUT_S)

    def on_mo(self, carrier: str, pdu) -> int:
        """Called by the link for every non-receipt deliver_sm; returns the resp status."""
        sm = pdu.short_message
        tlvs = pdu.tlvs or {}
        if not sm and codec.Tlv.MESSAGE_PAYLOAD in tlvs:
            sm = tlvs[codec.Tlv.MESSAGE_PAYLOAD]
        try:
            part = textmod.decode_short_message(sm, pdu.data_coding, pdu.esm_class, tlvs)
        except Exception:  # noqa: BLE001 - an undecodable body is answered, never fatal
            log.warning("undecodable MO carrier=%s", carrier)
            return codec.Status.ESME_RSYSERR
        src = _address(pdu.source_addr, pdu.source_addr_ton)
        dst = _address(pdu.destination_addr, pdu.dest_addr_ton)
        if self.gw.registry.get(dst) is None:
            log.warning("MO for unknown number carrier=%s to=%s", carrier, dst)
            return codec.Status.ESME_RINVDSTADR
        now = trio.current_time()
        segments = 1
        body = part.text
        if part.total > 1:
            body = self.reasm.add((src, dst, part.ref, part.total, carrier), part, now)
            if body is None:
                return codec.Status.ESME_ROK
            segments = part.total
        self.gw.nursery.start_soon(self.handle, src, dst, body, segments, carrier)
        return codec.Status.ESME_ROK

    async def expire_loop(self) -> None:
        """Deliver what arrived of multipart messages whose parts never all came."""
        while True:
            await trio.sleep(5)
            for key, text, missing in self.reasm.expire(trio.current_time()):
                src, dst, _ref, total, carrier = key
                self.gw.metrics.mo_reassembly_expired.labels(carrier).inc()
                log.warning("MO reassembly timeout to=%s missing=%d", dst, missing)
                self.gw.nursery.start_soon(self.handle, src, dst, text, total, carrier)

    async def handle(self, src: str, dst: str, body: str, segments: int, carrier: str = "") -> None:
        gw = self.gw
        number = gw.registry.get(dst)
        if number is None:
            return
        wall = time.time()
        svc = gw.service_for_number(dst)
        msg = Message(
            sid=new_sid("SM"), account_sid=number.account_sid, from_=src, to=dst, body=body,
            status=M.RECEIVED, direction=M.INBOUND, num_segments=segments,
            messaging_service_sid=svc.sid if svc else None,
            date_created=wall, date_updated=wall, date_sent=wall,
        )
        await gw.store.create_message(msg)
        gw.count_message(M.INBOUND, M.RECEIVED)
        gw.metrics.mo_messages.labels(carrier or "none").inc()
        kind = optout.classify(body)
        if kind is not None:
            await self._keyword(kind, number, src, dst)
        url = (svc.sms_url if svc and svc.sms_url else None) or number.sms_url
        if not url:
            return
        method = ((svc.sms_method if svc and svc.sms_url else None) or number.sms_method or "POST").upper()
        fallback = (svc.fallback_url if svc and svc.sms_url else None) or number.sms_fallback_url
        params = self._params(msg)
        actions = await self._fetch_twiml("inbound", url, method, params, number.account_sid, fallback)
        if actions is None or kind == "stop":
            return
        await self._execute(actions, msg, params, number.account_sid, url)

    async def _keyword(self, kind: str, number, src: str, dst: str) -> None:
        gw = self.gw
        if kind == "stop":
            await gw.set_opt_out(dst, src, True)
        elif kind == "start":
            await gw.set_opt_out(dst, src, False)
        reply = optout.REPLIES.get(kind)
        if reply:
            await gw.send_reply(number.account_sid, dst, src, reply, None, bypass_opt_out=True)

    def _params(self, msg: Message) -> list[tuple[str, str]]:
        return [
            ("ToCountry", ""), ("ToState", ""), ("SmsMessageSid", msg.sid),
            ("NumMedia", "0"), ("ToCity", ""), ("FromZip", ""), ("SmsSid", msg.sid),
            ("FromState", ""), ("SmsStatus", "received"), ("FromCity", ""),
            ("Body", msg.body), ("FromCountry", ""), ("To", msg.to),
            ("MessagingServiceSid", msg.messaging_service_sid or ""),
            ("ToZip", ""), ("NumSegments", str(msg.num_segments)), ("MessageSid", msg.sid),
            ("AccountSid", msg.account_sid), ("From", msg.from_), ("ApiVersion", "2010-04-01"),
        ]

    async def _fetch_twiml(self, kind, url, method, params, account, fallback):
        """Fetch and parse TwiML from ``url``; on failure try ``fallback``. None = give up."""
        token = self.gw.auth_token(account)
        try:
            return await self._fetch_once(kind, url, method, params, token)
        except WebhookError as e:
            log.warning("sms webhook failed code=%s reason=%s", e.code, e)
            if not fallback:
                return None
            fb_params = params + [("ErrorCode", str(e.code)), ("ErrorUrl", url)]
            try:
                return await self._fetch_once("fallback", fallback, "POST", fb_params, token)
            except WebhookError as e2:
                log.warning("sms fallback failed code=%s reason=%s", e2.code, e2)
                return None

    async def _fetch_once(self, kind, url, method, params, token):
        res = await self.gw.webhooks.call(Hook(kind, url, method, list(params), token))
        ctype = res.content_type.split(";")[0].strip().lower()
        if not res.body.strip():
            return []
        if ctype not in TWIML_TYPES and not ctype.endswith("+xml"):
            raise WebhookError(12300, f"invalid content type {ctype!r}")
        try:
            return twiml.parse(res.body)
        except twiml.TwimlError as e:
            raise WebhookError(12100, f"invalid TwiML: {e}") from e

    async def _execute(self, actions, msg: Message, params, account: str, base_url: str) -> None:
        hops = 0
        while actions:
            redirect = None
            for act in actions:
                if isinstance(act, twiml.Redirect):
                    redirect = act
                    break
                if isinstance(act, twiml.Message):
                    body = act.body or ""
                    if not body.strip():
                        continue
                    cb = act.status_callback or act.action
                    await self.gw.send_reply(
                        account, act.from_ or msg.to, act.to or msg.from_, body,
                        urljoin(base_url, cb) if cb else None,
                    )
            if redirect is None or hops >= MAX_REDIRECTS:
                return
            hops += 1
            base_url = urljoin(base_url, redirect.url)
            actions = await self._fetch_twiml(
                "inbound", base_url, (redirect.method or "POST").upper(), params, account, None
            )
