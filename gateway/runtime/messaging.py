"""Outbound messaging above the pipeline: accepting a message (opt-out, queue capacity,
durable create, enqueue), Messaging Service sender pools, scheduled messages, cancel and
redact, opt-out state, and the status callbacks every status change produces.

Rules:
- 201 only after ``store.create_message`` returned (durable); the message is enqueued
  after that, so a crash in between leaves it ``queued`` in the store and it is loaded
  again at start.
- Status callbacks as Twilio: none for the initial status; ``queued`` only after
  accepted/scheduled; then sent/failed, delivered/undelivered, canceled. The URL is the
  message's StatusCallback, else its service's, else the sender number's.
- Durable callbacks (``runtime.callback_outbox``): the status is due in the store from
  the save of the status on (``Message.advance``); each callback carries the stable
  token ``callback_token(sid, status)``; at start ``restore_callbacks`` rebuilds the
  callbacks still due from the stored message (params as for that status).
- Sticky sender: a recipient keeps the pool number it got first (kv ``sticky``);
  otherwise the pool number whose queue drains soonest for its class, preferring a
  number with the recipient's country/area code; ties go round-robin through the pool.
- Scheduled messages sit in a heap keyed by (SendAt, seq); at SendAt they become
  ``queued``, in creation order for the same SendAt.

Error handling: a scheduled/accepted message whose sender cannot be picked any more
(its service was removed or emptied before a restart) fails alone with that error
code and a callback; nothing raises into the schedule loop or the start-up load.
"""

from __future__ import annotations

import heapq
import logging

import trio

from gateway.core import errors
from gateway.core import message as M
from gateway.core.errors import TwilioError
from gateway.core.ids import new_sid
from gateway.core.message import Message, copy_message
from gateway.runtime.callback_outbox import callback_token
from gateway.runtime.webhooks import Hook
from gateway.store.due import MO_PREFIX

log = logging.getLogger("gateway.messaging")


class Messaging:
    def __init__(self, gw):
        self.gw = gw
        self.opt_outs: set[tuple[str, str]] = set()     # (our number, recipient)
        self.sticky: dict[tuple[str, str], str] = {}    # (service, recipient) -> number
        self.scheduled: list[tuple[float, int, str]] = []
        self.scheduled_msgs: dict[str, Message] = {}
        self._turn: dict[str, int] = {}                 # service -> round-robin offset
        self._sched_wake = trio.Event()

    async def load(self) -> None:
        store = self.gw.store
        for key, _ in await store.kv_items("optout"):
            sender, _, to = key.partition("|")
            self.opt_outs.add((sender, to))
        for key, value in await store.kv_items("sticky"):
            svc, _, to = key.partition("|")
            self.sticky[(svc, to)] = value["number"]

    # -- accept -------------------------------------------------------------------------
    async def submit(
        self, msg: Message, idem: str | None, bypass_opt_out: bool = False
    ) -> tuple[Message, bool]:
        gw = self.gw
        if msg.status == M.ACCEPTED and not msg.from_:
            msg.from_ = self._pick_sender(msg)
        if not bypass_opt_out and msg.from_ and (msg.from_, msg.to) in self.opt_outs:
            raise TwilioError(errors.UNSUBSCRIBED)
        number = gw.registry.get(msg.from_) if msg.from_ else None
        if number is not None:
            msg.sender_class = number.type
        if not msg.status_callback:
            msg.status_callback = self._default_callback(msg) or None
        if msg.status == M.QUEUED and not gw.dispatcher.has_room(msg.from_, msg.num_segments,
                                                                 msg.account_sid):
            raise TwilioError(errors.QUEUE_FULL)
        stored, created = await gw.store.create_message(msg, idem)
        if not created:
            return stored, False
        gw.count_message(M.OUTBOUND_API if stored.direction != M.OUTBOUND_REPLY else stored.direction,
                         stored.status)
        # the API answers with the status as created (accepted/scheduled/queued), not
        # with what place() moves it to a moment later
        answer = copy_message(stored)   # dataclasses.replace costs ~10x more
        answer.carrier_message_ids = []
        answer.due = []
        if answer.status == M.ACCEPTED:
            answer.from_ = ""
        self.place(stored)
        return answer, True

    def place(self, msg: Message) -> None:
        """Put a stored, not-yet-sent message where it waits: the schedule heap, or (for
        accepted ones, right away) its sender queue."""
        if msg.status == M.SCHEDULED:
            self.scheduled_msgs[msg.sid] = msg
            heapq.heappush(self.scheduled, (msg.send_at or 0.0, msg.seq, msg.sid))
            self._sched_wake.set()
            return
        if msg.status == M.ACCEPTED:
            self._release(msg)
            return
        if not self.gw.cluster.route(msg):   # cluster: local queue or the sender's stream
            self._fail(msg, errors.QUEUE_OVERFLOW, errors.MESSAGES[errors.QUEUE_OVERFLOW])

    def _release(self, msg: Message) -> None:
        """accepted/scheduled → queued on its sender (picked now if it has none). A
        sender that cannot be picked any more (the service was removed or emptied since)
        fails this message alone: never raise into the schedule loop or the load."""
        if not msg.from_:
            try:
                msg.from_ = self._pick_sender(msg)
            except TwilioError as exc:
                log.warning("message %s: no sender from its service: %s", msg.sid, exc.message)
                self._fail(msg, exc.code, exc.message)
                return
        number = self.gw.registry.get(msg.from_)
        if number is not None:
            msg.sender_class = number.type
        msg.advance(M.QUEUED, self.gw.now())
        self.gw.store.save_message_nowait(msg)
        self.status_changed(msg)
        if not self.gw.cluster.route(msg):   # cluster: local queue or the sender's stream
            self._fail(msg, errors.QUEUE_OVERFLOW, errors.MESSAGES[errors.QUEUE_OVERFLOW])

    def _fail(self, msg: Message, code: int, text: str | None) -> None:
        if not msg.advance(M.FAILED, self.gw.now()):
            return
        msg.error_code = code
        msg.error_message = text
        self.gw.store.save_message_nowait(msg)
        self.status_changed(msg)

    def _pick_sender(self, msg: Message) -> str:
        """The service's sender for ``msg``: its alphanumeric sender when that reaches
        the recipient (never +1; sets ``msg.sender_class``), else a pool number."""
        svc = self.gw.service(msg.messaging_service_sid)
        alpha_id = getattr(svc, "alpha_sender", "")    # (test doubles may lack it)
        if alpha_id:
            alpha = self.gw.registry.alpha(svc.account_sid, alpha_id)
            if alpha is not None and alpha.reaches(msg.to):
                msg.sender_class = alpha.view.type
                return alpha.sender_id
        if svc is None or not svc.numbers:
            raise TwilioError(errors.FROM_REQUIRED)
        key = (svc.sid, msg.to)
        if svc.sticky_sender and key in self.sticky and self.sticky[key] in svc.numbers:
            return self.sticky[key]
        pool = [n for n in svc.numbers if (n, msg.to) not in self.opt_outs] or list(svc.numbers)
        prefix = msg.to[:5] if msg.to.startswith("+1") else msg.to[:3]
        local = [n for n in pool if n.startswith(prefix)]
        candidates = local or pool
        # the shortest drain time wins; ties (idle queues drain in no time) rotate
        # through the pool so an idle service still spreads its recipients
        turn = self._turn.get(svc.sid, 0)
        self._turn[svc.sid] = turn + 1
        k = turn % len(candidates)
        choice = min(candidates[k:] + candidates[:k], key=self.gw.dispatcher.drain_time)
        if svc.sticky_sender:
            self.sticky[key] = choice
            self.gw.store_nowait_kv("sticky", f"{svc.sid}|{msg.to}", {"number": choice})
        return choice

    def _default_callback(self, msg: Message) -> str:
        svc = self.gw.service(msg.messaging_service_sid) if msg.messaging_service_sid else None
        if svc is not None and svc.status_callback:
            return svc.status_callback
        number = self.gw.registry.get(msg.from_) if msg.from_ else None
        return number.status_callback if number is not None else ""

    # -- scheduled ----------------------------------------------------------------------
    def poke(self) -> None:
        """Re-check the schedule now (after the clock was changed, in tests)."""
        self._sched_wake.set()

    async def schedule_loop(self) -> None:
        released = 0
        while True:
            if not self.scheduled:
                self._sched_wake = trio.Event()
                await self._sched_wake.wait()
                continue
            due = self.scheduled[0][0]
            wait = due - self.gw.now()
            if wait > 0:
                self._sched_wake = trio.Event()
                with trio.move_on_after(min(wait, 60.0)):
                    await self._sched_wake.wait()
                continue
            _, _, sid = heapq.heappop(self.scheduled)
            msg = self.scheduled_msgs.pop(sid, None)
            if msg is None or msg.status != M.SCHEDULED:
                continue
            self._release(msg)
            released += 1
            if released % 256 == 0:   # a large batch due at once: let the loop breathe
                await trio.lowlevel.checkpoint()

    # -- cancel / redact ----------------------------------------------------------------
    async def cancel(self, msg: Message) -> Message:
        live = self.scheduled_msgs.pop(msg.sid, None)
        target = live or msg
        if target.status not in (M.SCHEDULED, M.ACCEPTED, M.QUEUED):
            raise TwilioError(20009, "Message can no longer be canceled")
        if target.status == M.QUEUED and not self.gw.dispatcher.remove(target.sid):
            raise TwilioError(20009, "Message can no longer be canceled")
        target.advance(M.CANCELED, self.gw.now())
        await self.gw.store.save_message(target)
        self.status_changed(target)
        return target

    async def redact(self, msg: Message) -> Message:
        msg.body = ""
        msg.date_updated = self.gw.now()
        await self.gw.store.save_message(msg)
        return msg

    # -- opt-out ------------------------------------------------------------------------
    async def set_opt_out(self, sender: str, recipient: str, out: bool) -> None:
        key = f"{sender}|{recipient}"
        if out:
            self.opt_outs.add((sender, recipient))
            await self.gw.store.kv_put("optout", key, {"at": self.gw.now()})
        else:
            self.opt_outs.discard((sender, recipient))
            await self.gw.store.kv_delete("optout", key)

    async def send_reply(self, account, from_, to, body, status_callback, bypass_opt_out=False):
        gw = self.gw
        if not bypass_opt_out and (from_, to) in self.opt_outs:
            log.info("reply to opted-out recipient dropped")
            return None
        wall = self.gw.now()
        number = gw.registry.get(from_)
        msg = Message(
            sid=new_sid("SM"), account_sid=account, from_=from_, to=to, body=body,
            status=M.QUEUED, direction=M.OUTBOUND_REPLY,
            num_segments=gw.count_segments(body, False),
            status_callback=status_callback, sender_class=number.type if number else "long_code",
            date_created=wall, date_updated=wall, valid_until=wall + 36000,
        )
        try:
            stored, _ = await self.submit(msg, None, bypass_opt_out)
        except TwilioError as e:
            log.warning("reply not sent code=%s", e.code)
            return None
        return stored

    # -- callbacks ----------------------------------------------------------------------
    def status_changed(self, msg: Message) -> None:
        gw = self.gw
        gw.count_message(M.INBOUND if msg.direction == M.INBOUND else "outbound", msg.status)
        gw.cluster.on_status(msg)   # cluster: ack the stream entry once sent/final
        if msg.status not in M.CALLBACK_STATUSES or not msg.status_callback:
            return
        hook = self.callback_hook(msg, msg.status)
        if hook is None:
            return
        # cluster: once per (message, status) across gateways
        gw.cluster.deliver_callback(msg, hook)

    def callback_hook(self, msg: Message, status: str) -> Hook | None:
        """The status callback of ``msg`` for ``status`` (None: its account has no auth
        token any more; the due token is cleared)."""
        token = self.gw.auth_token(msg.account_sid)
        if not token:
            outbox = self.gw.webhooks.outbox
            if outbox is not None:
                outbox.settle(msg.sid, status)
            return None
        params = [
            ("AccountSid", msg.account_sid), ("ApiVersion", "2010-04-01"),
            ("From", msg.from_), ("To", msg.to), ("MessageSid", msg.sid),
            ("SmsSid", msg.sid), ("MessageStatus", status), ("SmsStatus", status),
        ]
        if msg.messaging_service_sid:
            params.append(("MessagingServiceSid", msg.messaging_service_sid))
        if msg.error_code and status in (M.FAILED, M.UNDELIVERED):
            params.append(("ErrorCode", str(msg.error_code)))
        if msg.raw_dlr_done_date and status in (M.DELIVERED, M.UNDELIVERED):
            params.append(("RawDlrDoneDate", msg.raw_dlr_done_date))
        return Hook("status", msg.status_callback or "", "POST", params, token,
                    idem=callback_token(msg.sid, status))

    def restore_callbacks(self, due: list[tuple[Message, list[str]]]) -> int:
        """Hand the status callbacks found due at start to the outbox (sent before the
        gateway reports started); returns how many."""
        outbox = self.gw.webhooks.outbox
        hooks = []
        for msg, tokens in due:
            for status in tokens:
                if status.startswith(MO_PREFIX):
                    continue
                if status not in M.CALLBACK_STATUSES or not msg.status_callback:
                    self.gw.store.clear_due_nowait(msg.sid, status)
                    continue
                hook = self.callback_hook(msg, status)
                if hook is not None:
                    hooks.append(hook)
        if outbox is not None:
            outbox.restore(hooks)
        return len(hooks)
