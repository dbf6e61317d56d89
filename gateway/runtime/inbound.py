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

Store before ack (nothing the carrier considers delivered is lost):
- ``on_mo`` answers errors at once (undecodable, unknown number) and otherwise returns
  None: the deliver_sm_resp goes out (``link.answer_deliver``) only after the message
  is committed (``create_message``). A crash before that leaves the PDU unanswered and
  the carrier delivers it again. A crash (or link loss) between commit and answer does
  not store it twice: a single-part MO carries a due token until its answer was handed
  to the link, and a resend of an unacked one is answered and dropped
  (``runtime.mo_dedupe``).
- A part of a multipart MO that does not complete its message is stored in kv
  ``mopart`` (one key per part) before its answer; the completing part is answered
  after the whole message is committed. The message's idempotency key names the group
  (carrier, from, to, ref, total and the wall time its first part was seen), so a part
  set reloaded after a crash never stores the message twice. Stored parts are reloaded
  into the reassembler at start (``expire_loop``) and deleted once their message is
  committed (complete or expired).
- A duplicate part (index already seen) is answered at once without storing.
- DLRs: ``DeliverAcks`` answers them after a store barrier (``store.ping``, a write that
  commits after every write issued before it, FIFO in both backends), one barrier per
  batch of receipts gathered for ``ACK_GATHER_S``: the status a DLR carries is durable
  before the carrier forgets it. (A receipt whose message is not in memory is looked up
  by a task; its save is issued within the gather time with the SQLite store, where the
  lookups do not wait; with Redis a slow lookup may miss its barrier.)
- Store failure: the PDU is answered ESME_RX_T_APPN (temporary), the carrier retries.

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
from gateway.runtime.mo_dedupe import MoDedupe, mo_key
from gateway.runtime.webhooks import Hook, WebhookError
from gateway.store.base import StoreError
from gateway.store.due import MO_PREFIX as M_DUE_PREFIX

log = logging.getLogger("gateway.inbound")

REASSEMBLY_TIMEOUT_S = 120.0
PARTS_NS = "mopart"
ACK_GATHER_S = 0.005
_TEMP_FAIL = codec.Status.ESME_RX_T_APPN
MAX_REDIRECTS = 10
TWIML_TYPES = ("text/xml", "application/xml", "text/html", "")


def _address(addr: str, ton: int) -> str:
    if addr.startswith("+") or len(addr) <= 6 or ton not in (0, 1):
        return addr
    return "+" + addr


def _answer(gw, carrier: str, pdu, status: int) -> bool:
    """deliver_sm_resp for a PDU whose ``on_deliver`` returned None (pending); False
    when it could not be sent (no such link, or its connection is gone)."""
    link = gw.links.get(carrier) if pdu is not None else None
    if link is not None:
        return bool(link.answer_deliver(pdu, status))
    return False


class DeliverAcks:
    """Answers receipts (DLRs) once the status they carried is committed: every write the
    dispatcher issued for them precedes one barrier write per batch (FIFO store)."""

    def __init__(self, gw) -> None:
        self.gw = gw
        self._batch: list[tuple[str, object]] = []
        self._wake = trio.Event()
        self._running = False

    def add(self, carrier: str, pdu) -> bool:
        """Queue the answer; False when no runner can start (answer now instead)."""
        if not self._running:
            nursery = self.gw.nursery
            if nursery is None:
                return False
            self._running = True
            nursery.start_soon(self._run)
        self._batch.append((carrier, pdu))
        self._wake.set()
        return True

    async def _run(self) -> None:
        try:
            while True:
                if not self._batch:
                    self._wake = trio.Event()
                    await self._wake.wait()
                # gather: one barrier per ACK_GATHER_S at most (fewer commits and
                # sends under load); DLR lookups spawned meanwhile issue their saves
                await trio.sleep(ACK_GATHER_S)
                batch, self._batch = self._batch, []
                ok = await self.gw.store.ping()
                status = codec.Status.ESME_ROK if ok else _TEMP_FAIL
                for carrier, pdu in batch:
                    _answer(self.gw, carrier, pdu, status)
        finally:
            self._running = False


class Inbound:
    def __init__(self, gw):
        self.gw = gw
        self.reasm = Reassembler(timeout=REASSEMBLY_TIMEOUT_S)
        self.acks = DeliverAcks(gw)
        self.dedupe = MoDedupe(gw.store)
        self._stamp: dict[tuple, float] = {}   # part group -> wall time of its first part

    def on_mo(self, carrier: str, pdu) -> int | None:
        """Called by the link for every non-receipt deliver_sm: the resp status, or None
        (answered with ``link.answer_deliver`` once stored)."""
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
            if self.gw.registry.alpha_mo(dst, carrier):   # to a sender ID: ack, drop
                return codec.Status.ESME_ROK
            log.warning("MO for unknown number carrier=%s to=%s", carrier, dst)
            return codec.Status.ESME_RINVDSTADR
        nursery = self.gw.nursery
        if part.total <= 1:
            key = mo_key(carrier, src, dst, pdu)
            if self.dedupe.take(key, time.time()) is not None:
                self.gw.metrics.mo_duplicates.labels(carrier).inc()
                log.info("MO resent before its ack, not stored again carrier=%s", carrier)
                return codec.Status.ESME_ROK
            nursery.start_soon(self.handle, src, dst, part.text, 1, carrier, pdu, None, None,
                               key)
            return None
        key = (src, dst, part.ref, part.total, carrier)
        if not 1 <= part.index <= part.total:
            return codec.Status.ESME_ROK     # malformed part: nothing to keep
        dups = self.reasm.duplicates_total
        body = self.reasm.add(key, part, trio.current_time())
        if self.reasm.duplicates_total != dups:
            return codec.Status.ESME_ROK     # a copy of a part already seen
        if body is None:
            stamp = self._stamp.setdefault(key, time.time())
            nursery.start_soon(self._keep_part, key, part, stamp, pdu)
            return None
        stamp = self._stamp.pop(key, None) or time.time()
        nursery.start_soon(self.handle, src, dst, body, part.total, carrier, pdu, key, stamp)
        return None

    @staticmethod
    def _part_key(key: tuple, index: int) -> str:
        src, dst, ref, total, carrier = key
        return f"{carrier}|{src}|{dst}|{ref}|{total}|{index}"

    async def _keep_part(self, key: tuple, part, stamp: float, pdu) -> None:
        src, dst, ref, total, carrier = key
        value = {"carrier": carrier, "src": src, "dst": dst, "ref": ref, "total": total,
                 "index": part.index, "text": part.text, "at": stamp}
        try:
            await self.gw.store.kv_put(PARTS_NS, self._part_key(key, part.index), value)
            status = codec.Status.ESME_ROK
        except StoreError as exc:
            log.warning("MO part not stored carrier=%s: %s", carrier, exc)
            status = _TEMP_FAIL
        _answer(self.gw, carrier, pdu, status)

    async def load_parts(self) -> int:
        """Put the parts stored before a restart back into the reassembler; messages they
        complete are handled (without an answer: theirs went out before the crash)."""
        n = 0
        for _k, v in await self.gw.store.kv_items(PARTS_NS):
            try:
                key = (v["src"], v["dst"], v["ref"], int(v["total"]), v["carrier"])
                part = textmod.Part(v["text"], v["ref"], int(v["total"]), int(v["index"]))
                at = float(v["at"])
            except (KeyError, TypeError, ValueError):
                continue
            n += 1
            self._stamp[key] = min(at, self._stamp.get(key, at))
            body = self.reasm.add(key, part, trio.current_time())
            if body is not None:
                stamp = self._stamp.pop(key)
                self.gw.nursery.start_soon(self.handle, key[0], key[1], body, key[3],
                                           key[4], None, key, stamp)
        return n

    async def expire_loop(self) -> None:
        """Reload stored parts, then deliver what arrived of multipart messages whose
        parts never all came."""
        try:
            n = await self.load_parts()
            if n:
                log.info("MO parts reloaded count=%d", n)
        except StoreError as exc:
            log.error("MO parts not reloaded: %s", exc)
        while True:
            await trio.sleep(5)
            self.dedupe.expire(time.time())
            for key, text, missing in self.reasm.expire(trio.current_time()):
                src, dst, _ref, total, carrier = key
                self.gw.metrics.mo_reassembly_expired.labels(carrier).inc()
                log.warning("MO reassembly timeout to=%s missing=%d", dst, missing)
                stamp = self._stamp.pop(key, None)
                self.gw.nursery.start_soon(self.handle, src, dst, text, total, carrier,
                                           None, key, stamp)

    async def handle(self, src: str, dst: str, body: str, segments: int, carrier: str = "",
                     pdu=None, group: tuple | None = None, stamp: float | None = None,
                     dedupe_key: str | None = None) -> None:
        """Store the MO (then answer ``pdu``), drop its stored parts, call the webhook."""
        gw = self.gw
        number = gw.registry.get(dst)
        if number is None:
            _answer(gw, carrier, pdu, codec.Status.ESME_RINVDSTADR)
            return
        wall = time.time()
        svc = gw.service_for_number(dst)
        msg = Message(
            sid=new_sid("SM"), account_sid=number.account_sid, from_=src, to=dst, body=body,
            status=M.RECEIVED, direction=M.INBOUND, num_segments=segments,
            messaging_service_sid=svc.sid if svc else None,
            date_created=wall, date_updated=wall, date_sent=wall,
        )
        if dedupe_key is not None and pdu is not None:
            msg.due.append(M_DUE_PREFIX + dedupe_key)
        idem = None
        if group is not None and stamp is not None:
            src_, dst_, ref, total, _c = group
            idem = f"mo|{carrier}|{src_}|{dst_}|{ref}|{total}|{stamp:.6f}"
        try:
            stored, created = await gw.store.create_message(msg, idem)
        except StoreError as exc:
            log.error("MO not stored carrier=%s: %s", carrier, exc)
            _answer(gw, carrier, pdu, _TEMP_FAIL)
            return
        sent = _answer(gw, carrier, pdu, codec.Status.ESME_ROK)
        if dedupe_key is not None and pdu is not None:
            self.dedupe.answered(stored.sid, dedupe_key, sent, time.time())
        if group is not None:
            try:
                for i in range(1, group[3] + 1):
                    await gw.store.kv_delete(PARTS_NS, self._part_key(group, i))
            except StoreError as exc:
                log.warning("MO parts not deleted: %s", exc)
        if not created:
            return
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
