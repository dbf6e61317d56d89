"""The outbound pipeline: sender queues → router → SMPP links → store and callbacks.

Owns every outbound message between "accepted by the API" and its final status, and is
the handler of every SMPP link (``on_submit_resp``, ``on_submit_lost``, ``on_deliver``,
``on_link_state``).

Rules:
- The carrier is chosen when a message leaves its sender queue, never at accept time,
  so queued traffic follows carrier health.
- A message is split into segments at that moment; each segment is one submit_sm with
  ref ``(Outbound, index)``. The message is ``sent`` when every segment was accepted.
- A segment lost with its link (drop or response timeout) puts the whole message back
  at the *front* of its sender queue (at least once; the count of possible duplicates
  is a metric). THROTTLED/MSGQFUL do the same without counting a duplicate.
- Sender queues are keyed by ``core.numbers.sender_key``: the number, or ``"AC…|ID"``
  for an alphanumeric sender ID (``From`` stays ``ID``). SMPP ``source_addr_ton/npi``
  come from ``core.numbers.source_ton_npi`` (alphanumeric: TON 5, NPI 0).
- Final status and callbacks are decided here; the store is written with
  ``save_message_nowait`` on the hot path (the status machine redoes lost work).
"""

from __future__ import annotations

import itertools
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass, field

import trio

from gateway import codec
from gateway.codec import dlr as dlrmod
from gateway.codec import text as textmod
from gateway.core import errors
from gateway.core import message as M
from gateway.core.message import Message
from gateway.core.numbers import sender_key, source_ton_npi
from gateway.core.scheduler import SenderScheduler
from gateway.store.base import StoreError

log = logging.getLogger("gateway.dispatcher")

DLR_CACHE_MAX = 500_000
POP_BATCH = 256


@dataclass(slots=True, eq=False)
class Outbound:
    msg: Message
    sender_number: str
    segments: list = field(default_factory=list)     # textmod.Segment
    acked: int = 0
    failed: bool = False
    carrier: str | None = None
    dlr_final: int = 0
    lost: bool = False


class Dispatcher:
    def __init__(self, gw):
        self.gw = gw                      # runtime.app.Gateway: store, settings, router, links…
        self.sched = SenderScheduler(trio.current_time())
        self.wake = trio.Event()
        self.live: dict[str, Outbound] = {}           # sid -> in the pipeline (queued..sent)
        self.by_carrier_id: OrderedDict[tuple[str, str], str] = OrderedDict()
        self.early_dlrs: OrderedDict[tuple[str, str], tuple] = OrderedDict()
        self._ref = itertools.count(1)
        self.possible_duplicates = 0
        self.capacity: dict[str, tuple[float, int]] = {}   # number -> (rate, segments)

    # -- intake -------------------------------------------------------------------------
    def add_sender(self, number: str, sender_class: str) -> None:
        rate = self.gw.class_rate(sender_class)
        cap = int(rate * 3600 * self.gw.settings.rates.queue_hours)
        self.capacity[number] = (rate, cap)
        self.sched.add_sender(number, rate, cap, sender_class)

    def has_room(self, number: str, segments: int, account: str = "") -> bool:
        """Room for ``segments`` more on ``number``'s queue (``account`` given: ``number``
        is a ``From`` that may be an alphanumeric sender ID, keyed per account)."""
        if account:
            number = sender_key(account, number)
        rate_cap = self.capacity.get(number)
        return rate_cap is not None and self.sched.depth(number) + segments <= rate_cap[1]

    def drain_time(self, number: str) -> float:
        """Seconds until ``number``'s queue would be empty at its class rate."""
        rate_cap = self.capacity.get(number)
        return self.sched.depth(number) / rate_cap[0] if rate_cap else float("inf")

    def enqueue(self, msg: Message, front: bool = False) -> bool:
        """Queue ``msg`` on its sender; False when the sender queue is full (21611)."""
        ob = self.live.get(msg.sid) or Outbound(msg, sender_key(msg.account_sid, msg.from_))
        self.live[msg.sid] = ob
        if front:
            self.sched.push_front(ob.sender_number, ob, msg.num_segments)
            ok = True
        else:
            ok = self.sched.push(ob.sender_number, ob, msg.num_segments, trio.current_time())
            if not ok:
                del self.live[msg.sid]
        self.wake.set()
        return ok

    def remove(self, sid: str) -> bool:
        """Take a queued message out (cancel); False if it already left its queue."""
        ob = self.live.get(sid)
        if ob is None or ob.msg.status != M.QUEUED:
            return False
        removed = self.sched.remove(ob.sender_number, lambda o: o is ob)
        if removed:
            del self.live[sid]
        return bool(removed)

    # -- main loop ----------------------------------------------------------------------
    async def run(self, task_status=trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        while True:
            free = self.gw.free_slots()
            if free <= 0:
                await self._sleep_until(trio.current_time() + 0.5)
                continue
            now = trio.current_time()
            ready = self.sched.pop_ready(now, min(POP_BATCH, free))
            if not ready:
                await self._sleep_until(self.sched.next_ready_at())
                continue
            undispatched = [item for item in ready if not self._dispatch(item[1], now)]
            for number, ob, segs in reversed(undispatched):
                self.sched.push_front(number, ob, segs, now, refund=True)
            if len(undispatched) == len(ready):
                # no carrier could take anything: wait for a slot, a link or 50 ms
                await self._sleep_until(trio.current_time() + 0.05)
            else:
                await trio.lowlevel.checkpoint()

    async def _sleep_until(self, when: float | None) -> None:
        self.wake = trio.Event()
        if when is None:
            await self.wake.wait()
            return
        with trio.move_on_at(when):
            await self.wake.wait()

    def _dispatch(self, ob: Outbound, now: float) -> bool:
        """Hand one message to a carrier. False when no carrier can take it right now."""
        msg = ob.msg
        wall = time.time()
        if msg.status in M.FINAL:
            self.live.pop(msg.sid, None)
            return True
        if msg.valid_until and wall > msg.valid_until:
            self._finish(ob, M.FAILED, errors.VALIDITY_EXPIRED, wall)
            return True
        gw = self.gw
        for name in gw.router.choose(msg.to, gw.healths, now):
            link = gw.links.get(name)
            if link is None or link.state != "bound":
                continue
            if not ob.segments:
                ob.segments = textmod.split(
                    msg.body, next(self._ref) & 0xFF, gw.split_mode(name), msg.smart_encoded
                )
            if link.free_slots() < len(ob.segments):
                continue
            if gw.router.take_carrier_token(name, now, len(ob.segments)) > 0:
                continue
            if ob.carrier and ob.carrier != name:
                gw.count_reroute(ob.carrier, name)
            ob.carrier = name
            ob.acked = 0
            ob.lost = False
            submitted = True
            ton, npi = source_ton_npi(msg.from_)
            for i, seg in enumerate(ob.segments):
                pdu = codec.SubmitSm(
                    source_addr=msg.from_.lstrip("+"),
                    source_addr_ton=ton,
                    source_addr_npi=npi,
                    destination_addr=msg.to.lstrip("+"),
                    dest_addr_ton=1,
                    dest_addr_npi=1,
                    esm_class=seg.esm_class,
                    registered_delivery=1,
                    data_coding=seg.data_coding,
                    short_message=seg.short_message,
                    tlvs=seg.tlvs,
                )
                if not link.submit((ob, i), pdu):
                    submitted = False
                    break
            if not submitted:
                # the link refused mid-message (throttled or gone): the parts already
                # written are ignored when answered; the message goes back to the queue
                self._requeue(ob, count_duplicate=i > 0)
                return True
            msg.attempts += 1
            msg.carrier = name
            # ``sending`` stays in memory: persisting it would not change what a crash
            # does (the stored row is ``queued`` either way and is sent again)
            msg.advance(M.SENDING, wall)
            return True
        return False

    # -- link handler ---------------------------------------------------------------------
    def on_link_state(self, carrier: str, up: bool, reason: str) -> None:
        self.gw.on_link_state(carrier, up, reason)
        self.wake.set()

    def on_submit_resp(self, carrier, ref, command_status, message_id, latency_s) -> None:
        ob, idx = ref
        gw = self.gw
        gw.health_submit(carrier, latency_s, command_status)
        self.wake.set()
        if ob.lost or ob.msg.status in M.FINAL:
            return
        if command_status == 0:
            mid = message_id or ""
            if mid:
                self._remember(carrier, mid, ob.msg.sid)
                ob.msg.carrier_message_ids.append(mid)
                gw.store.map_carrier_id_nowait(carrier, mid, ob.msg.sid)
            ob.acked += 1
            if ob.acked == len(ob.segments):
                wall = time.time()
                ob.msg.date_sent = wall
                if ob.msg.advance(M.SENT, wall):
                    gw.store.save_message_nowait(ob.msg)
                    gw.status_changed(ob.msg)
                for mid in ob.msg.carrier_message_ids:
                    early = self.early_dlrs.pop((carrier, mid), None)
                    if early is not None:
                        self._apply_dlr(ob.msg, *early)
            return
        if errors.is_retryable_smpp_status(command_status):
            # throttled / queue full / system error: back to the front, no duplicate risk
            self._requeue(ob, count_duplicate=False)
            return
        if ob.failed:
            return
        ob.failed = True
        self._finish(ob, M.FAILED, errors.error_for_smpp_status(command_status) or errors.UNKNOWN_ERROR, time.time())

    def on_submit_lost(self, carrier, refs, reason) -> None:
        self.gw.health_lost(carrier, reason)
        seen = set()
        for ob, _idx in refs:
            if id(ob) in seen or ob.msg.status in M.FINAL or ob.lost:
                continue
            seen.add(id(ob))
            self._requeue(ob, count_duplicate=True)
        self.wake.set()

    def _requeue(self, ob: Outbound, count_duplicate: bool) -> None:
        ob.lost = True
        msg = ob.msg
        if count_duplicate:
            self.possible_duplicates += 1
            self.gw.count_duplicate(ob.carrier or "")
        msg.status = M.QUEUED
        msg.date_updated = time.time()
        msg.carrier_message_ids.clear()
        ob_new = Outbound(msg, ob.sender_number, ob.segments, carrier=ob.carrier)
        self.live[msg.sid] = ob_new
        self.sched.push_front(ob.sender_number, ob_new, msg.num_segments)
        self.wake.set()

    def on_deliver(self, carrier: str, pdu) -> int | None:
        """deliver_sm_resp status, or None: answered (``link.answer_deliver``) once what
        the PDU carried is durable — a receipt after a store barrier that follows the
        status save (``inbound.DeliverAcks``), an MO after its commit (``Inbound``)."""
        if pdu.esm_class & 0x3C == 0x04 or pdu.esm_class & 0x3C == 0x08:
            status = self._on_dlr(carrier, pdu)
            if status == 0 and self.gw.inbound.acks.add(carrier, pdu):
                return None
            return status
        return self.gw.inbound.on_mo(carrier, pdu)

    # -- DLRs -----------------------------------------------------------------------------
    def _remember(self, carrier: str, mid: str, sid: str) -> None:
        self.by_carrier_id[(carrier, mid)] = sid
        if len(self.by_carrier_id) > DLR_CACHE_MAX:
            self.by_carrier_id.popitem(last=False)

    def _on_dlr(self, carrier: str, pdu) -> int:
        receipt = dlrmod.parse(pdu.short_message, pdu.tlvs)
        if receipt is None:
            return codec.Status.ESME_ROK      # unparseable receipt: ack it, nothing to do
        status, code = dlrmod.twilio_outcome(receipt)
        self.gw.count_dlr(carrier, status or "intermediate")
        if status is None:
            return codec.Status.ESME_ROK
        by_id = self.by_carrier_id
        sid = by_id.get((carrier, receipt.message_id))    # the id as we got it: the usual case
        if not sid:
            for mid in dlrmod.id_variants(receipt.message_id):
                sid = by_id.get((carrier, mid))
                if sid:
                    break
        if sid is None:
            self.gw.nursery.start_soon(self._dlr_lookup, carrier, receipt, status, code)
            return codec.Status.ESME_ROK
        ob = self.live.get(sid)
        if ob is not None:
            self._apply_dlr(ob.msg, receipt, status, code)
        else:
            self.gw.nursery.start_soon(self._dlr_for_sid, sid, receipt, status, code)
        return codec.Status.ESME_ROK

    async def _dlr_lookup(self, carrier, receipt, status, code) -> None:
        try:   # cluster: a shared store can be unreachable for a moment; never crash here
            await self._dlr_lookup_inner(carrier, receipt, status, code)
        except StoreError as exc:
            log.warning("DLR dropped, store unavailable carrier=%s: %s", carrier, exc)

    async def _dlr_lookup_inner(self, carrier, receipt, status, code) -> None:
        for mid in dlrmod.id_variants(receipt.message_id):
            sid = await self.gw.store.sid_for_carrier_id(carrier, mid)
            if sid:
                await self._dlr_for_sid(sid, receipt, status, code)
                return
        # DLR before its submit_sm_resp: hold it briefly, applied when the resp arrives
        self.early_dlrs[(carrier, receipt.message_id)] = (receipt, status, code)
        if len(self.early_dlrs) > 10_000:
            self.early_dlrs.popitem(last=False)

    async def _dlr_for_sid(self, sid, receipt, status, code) -> None:
        ob = self.live.get(sid)
        try:   # cluster: see _dlr_lookup
            msg = ob.msg if ob else await self.gw.store.get_message(sid)
        except StoreError as exc:
            log.warning("DLR dropped, store unavailable sid=%s: %s", sid, exc)
            return
        if msg is not None:
            self._apply_dlr(msg, receipt, status, code)

    def _apply_dlr(self, msg: Message, receipt, status: str, code) -> None:
        ob = self.live.get(msg.sid)
        if ob is not None and status == M.DELIVERED and len(ob.segments) > 1:
            ob.dlr_final += 1
            if ob.dlr_final < len(ob.segments):
                return
        wall = time.time()
        if not msg.advance(status, wall):
            return
        msg.error_code = code
        msg.error_message = errors.MESSAGES.get(code) if code else None
        msg.raw_dlr_done_date = receipt.done_date
        self.live.pop(msg.sid, None)
        self.gw.store.save_message_nowait(msg)
        self.gw.status_changed(msg)

    def _finish(self, ob: Outbound, status: str, code: int | None, wall: float) -> None:
        msg = ob.msg
        if not msg.advance(status, wall):
            return
        msg.error_code = code
        msg.error_message = errors.MESSAGES.get(code) if code else None
        self.live.pop(msg.sid, None)
        self.gw.store.save_message_nowait(msg)
        self.gw.status_changed(msg)
