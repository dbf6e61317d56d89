"""The slow paths of ``EsmeSession`` (gateway.proto.smpp_session): every PDU other than
submit_sm_resp, and the timers.

Owns: answering and reporting control traffic (bind answers, enquire_link, unbind,
generic_nack, undecodable and stray PDUs, requests an ESME does not serve) and the
deadline logic (``next_deadline`` / ``tick``: silence and per-submit response timeouts,
enquire_link keepalive). ``EsmeSession`` inherits these methods; the rules are in
smpp_session's docstring. Sans-I/O like the session: time comes in as ``now``.
"""

from __future__ import annotations

from gateway import codec
from gateway.proto.smpp_events import (
    BindFailed,
    Bound,
    DeliverReceived,
    EnquireLinkRtt,
    ProtocolError,
    SubmitResp,
    SubmitsLost,
    Unbound,
)

CLOSED, BINDING, BOUND, UNBINDING = "closed", "binding", "bound", "unbinding"


class SessionControl:
    """Mixin of EsmeSession: control PDUs and timers (uses the session's attributes)."""

    def _on_other(self, pdu, cid: int, now: float) -> None:
        C = codec.CommandId
        seq = pdu.sequence_number
        if cid == C.DELIVER_SM or cid == C.DATA_SM:
            self.unanswered += 1
            self._events.append(DeliverReceived(pdu))
        elif cid == C.ENQUIRE_LINK:
            self._send(codec.resp_for(pdu, 0))
        elif cid == C.ENQUIRE_LINK_RESP:
            if seq == self._enquire_seq:
                self._enquire_seq = 0
                self._events.append(EnquireLinkRtt(now - self._enquire_sent))
            else:
                self._stray(pdu)
        elif cid in (C.BIND_TRANSCEIVER_RESP, C.BIND_TRANSMITTER_RESP, C.BIND_RECEIVER_RESP):
            if self.state != BINDING or seq != self._control_seq:
                self._stray(pdu)
            else:
                self._bind_answered(pdu.command_status, getattr(pdu, "system_id", ""))
        elif cid == C.GENERIC_NACK:
            self._on_generic_nack(pdu, now)
        elif cid == C.UNBIND:
            self._send(codec.resp_for(pdu, 0))
            self._peer_unbind()
        elif cid == C.UNBIND_RESP:
            if self.state == UNBINDING and seq == self._control_seq:
                self._control_seq = 0
                self._unbound(by_peer=False, reason="unbound")
            else:
                self._stray(pdu)
        elif cid == C.ALERT_NOTIFICATION:
            pass                                  # no response defined; nothing to do
        elif cid & 0x80000000:
            self._stray(pdu)
        else:                                     # a request an ESME does not serve
            status = codec.Status.ESME_RINVCMDID
            self._send(codec.resp_for(pdu, status))
            self._report(cid, seq, status, "unsupported request")

    def _bind_answered(self, status: int, system_id: str) -> None:
        self._control_seq = 0
        if status == 0:
            self._move("bind_ok")
            self.peer_system_id = system_id or ""
            self._events.append(Bound(self.peer_system_id))
        else:
            self._move("bind_failed")
            self._events.append(BindFailed(status))

    def _on_generic_nack(self, pdu, now: float) -> None:
        seq, status = pdu.sequence_number, pdu.command_status
        entry = self._inflight.pop(seq, None)
        if entry is not None:
            self._events.append(SubmitResp(entry[0], status, "", now - entry[1]))
            if status:
                self._on_submit_error(status, entry[1], now)
        elif seq and seq == self._control_seq and self.state == BINDING:
            self._bind_answered(status or codec.Status.ESME_RBINDFAIL, "")
        elif seq and seq == self._enquire_seq:
            self._enquire_seq = 0                  # the peer is alive, just odd
            self._report(pdu.command_id, seq, status, "enquire_link nacked")
        elif seq and seq == self._control_seq and self.state == UNBINDING:
            self._control_seq = 0
            self._unbound(by_peer=False, reason="unbind nacked")
        else:
            self._report(pdu.command_id, seq, status, "generic_nack")

    def _peer_unbind(self) -> None:
        self._unbound(by_peer=True, reason="peer unbind")

    def _unbound(self, by_peer: bool, reason: str) -> None:
        refs = [ref for ref, _ in self._inflight.values()]
        self._inflight.clear()
        self._enquire_seq = self._control_seq = 0
        if refs:
            self._events.append(SubmitsLost(refs, reason))
        self._events.append(Unbound(by_peer))
        self._move("peer_unbind" if by_peer else "unbind_resp")

    def _on_bad_pdu(self, err) -> None:
        cid, seq, status = err.command_id, err.sequence_number, err.command_status
        C = codec.CommandId
        if cid & 0x80000000:
            # an undecodable response: if it answers a submit, settle it with a system error
            entry = self._inflight.pop(seq, None) if cid == C.SUBMIT_SM_RESP else None
            if entry is not None:
                self._events.append(SubmitResp(entry[0], codec.Status.ESME_RSYSERR, "", 0.0))
        elif cid == C.DELIVER_SM:
            self._send(codec.DeliverSmResp(seq, command_status=status))
        elif cid == C.DATA_SM:
            self._send(codec.DataSmResp(seq, command_status=status))
        else:
            self._send(codec.GenericNack(seq, command_status=status))
        self._report(cid, seq, status, str(err))

    def _stray(self, pdu) -> None:
        self._report(pdu.command_id, pdu.sequence_number, pdu.command_status,
                     "unexpected response")

    def _report(self, cid: int, seq: int, status: int, detail: str) -> None:
        self.protocol_errors += 1
        self._events.append(ProtocolError(cid, seq, status, detail))

    # ------------------------------------------------------------------ timers
    def next_deadline(self) -> float | None:
        """When ``tick`` next has work to do (None: nothing armed)."""
        if self.state == CLOSED:
            return None
        best = None
        if self._outstanding():
            best = self._silence_since + self.response_timeout
            if self._inflight:
                oldest = self._inflight[next(iter(self._inflight))][1] + self.response_timeout
                best = min(best, oldest)
        if self.state == BOUND and not self._enquire_seq:
            t = self._last_rx + self.enquire_link_interval
            best = t if best is None else min(best, t)
        return best

    def tick(self, now: float) -> None:
        if self.state == CLOSED:
            return
        rt = self.response_timeout
        if self._outstanding() and now >= self._silence_since + rt:
            if self.state == BINDING:
                reason = "bind timeout"
            elif self.state == UNBINDING:
                reason = "unbind timeout"
            elif self._inflight:
                reason = "response_timeout"
            else:
                reason = "enquire_link timeout"
            self._die(reason)
            return
        inflight = self._inflight
        if inflight:
            expired = []
            for seq, (ref, sent) in inflight.items():
                if now < sent + rt:
                    break
                expired.append((seq, ref))
            if expired:
                for seq, _ in expired:
                    del inflight[seq]
                self._events.append(SubmitsLost([r for _, r in expired], "expired"))
        if self.state == BOUND and not self._enquire_seq \
                and now >= self._last_rx + self.enquire_link_interval:
            self.enquire_link(now)
