"""Sans-I/O SIP user agent core (RFC 3261 §8, §9, §11, §12-§15, §22): calls, not sockets.

Owns: per-call state for inbound (UAS) and outbound (UAC) calls on top of
``sip_transaction.TransactionLayer`` and ``sip_dialog.Dialog``: answering OPTIONS
anywhere (200 + Allow/Accept), 481 for requests in unknown dialogs/transactions, CANCEL ->
200 + 487, BYE either way, re-INVITE/UPDATE answered 200 with the current SDP, the 2xx
retransmission until ACK (T1 doubling to T2, BYE after 64*T1, §13.3.1.4), the ACK of a
2xx (and of its retransmissions) as a new request to the remote target, digest retry on
401/407 with CSeq+1, CANCEL held back until a provisional arrives (§9.1).

Driving it: ``receive(data, source, transport, now)``; actions (``invite``, ``ringing``,
``answer``, ``reject``, ``cancel``, ``hangup``, ``options``); then ``data_to_send()``,
``next_events()`` and ``tick(now)`` at ``next_deadline()``. Events: ``IncomingCall``,
``CallProgress``, ``CallAnswered``, ``CallRejected``, ``CallEnded``, ``OptionsDone``.

REGISTER is answered 405 unless ``accept_register`` (then 200 echoing Contact and
Expires, no binding kept: a test aid for phones that must register, e.g. pyVoIP).

Rules: unparseable input is answered 400 when it has enough headers to route a response,
else dropped (``bad_messages`` counts both). Session-Expires, P-Asserted-Identity and other
unknown headers are tolerated and ignored. Actions on an unknown or ended call are no-ops.

Error handling: a timed-out INVITE becomes ``CallRejected(408)``; an unanswered OPTIONS
``OptionsDone(status=0)``; at most two authentication attempts per call.
"""

from __future__ import annotations

import heapq
import random
from typing import Any

from gateway.codec.sip import Request, Response, SipError, error_response, parse
from gateway.proto.sip_dialog import (
    ALLOW,
    Call,
    CallAnswered,
    CallEnded,
    CallProgress,
    CallRejected,
    Dialog,
    IncomingCall,
    OptionsDone,
    new_branch,
    new_tag,
    response_to,
)
from gateway.proto.sip_prack import PrackActions, Reliable
from gateway.proto.sip_transaction import (
    T1,
    T2,
    AckIn,
    ClientTx,
    Outgoing,
    RequestIn,
    ResponseIn,
    StrayResponse,
    TransactionLayer,
    TxTimeout,
)
from gateway.proto.sip_uac import UacActions

Addr = tuple[str, int]


class UaCore(UacActions, PrackActions):
    def __init__(self, host: str, port: int, *, public_host: str | None = None,
                 rng: random.Random | None = None, user_agent: str = "gateway-sip",
                 accept_register: bool = False):
        self.host, self.port = host, port
        self.tls_port: int | None = None   # the TLS listener's port (Via/Contact over TLS)
        self.accept_register = accept_register
        self.public_host = public_host or host
        self.rng = rng or random.SystemRandom()
        self.user_agent = user_agent
        self.layer = TransactionLayer()
        self.calls: dict[str, Call] = {}
        self.bad_messages = 0
        self._events: list[Any] = []
        self._due: list[tuple[float, int, str]] = []   # (when, seq, call_id): check then
        self._seq = 0

    def _check_at(self, when: float, call: Call) -> None:
        self._seq += 1
        heapq.heappush(self._due, (when, self._seq, call.call_id))

    # --- plumbing ----------------------------------------------------------------
    def data_to_send(self) -> list[Outgoing]:  # what to put on the wire, in order
        return self.layer.data_to_send()

    def next_events(self) -> list[Any]:
        ev, self._events = self._events, []
        return ev

    def next_deadline(self) -> float | None:
        dues = [d for d in (self.layer.next_deadline(),) if d is not None]
        if self._due:                       # may be stale: costs one early tick at most
            dues.append(self._due[0][0])
        return min(dues) if dues else None

    def _port(self, transport: str) -> int:
        return self.tls_port or self.port if transport == "TLS" else self.port

    def _via(self, transport: str) -> str:
        return (f"SIP/2.0/{transport} {self.public_host}:{self._port(transport)}"
                f";branch={new_branch(self.rng)};rport")

    def _contact(self, user: str | None, transport: str, scheme: str = "sip") -> str:
        """Our Contact; ``scheme`` "sips" when the request's URI was sips (§19.1.4)."""
        u = f"{user}@" if user else ""
        tp = f";transport={transport.lower()}" if transport in ("TCP", "TLS") else ""
        return f"<{scheme}:{u}{self.public_host}:{self._port(transport)}{tp}>"

    def transport_error(self, dest: Addr, transport: str, now: float) -> None:
        """A connection to ``dest`` could not be made (refused, TLS handshake or
        certificate failure): its pending requests fail now (§8.1.3.1: as a 503)."""
        self.layer.transport_error(dest, transport)
        self._pump(now)

    def receive(self, data: bytes, source: Addr, transport: str, now: float) -> None:
        try:
            msg = parse(data)
        except SipError as e:
            return self.answer_garbage(data, e, source, transport)
        self.receive_message(msg, source, transport, now)

    def receive_message(self, msg: Request | Response, source: Addr, transport: str,
                        now: float) -> None:
        self.layer.receive(msg, source, transport, now)
        self._pump(now)

    def answer_garbage(self, data: bytes, err: SipError, source: Addr, transport: str) -> None:
        """Count it; answer statelessly with err.status when a Via lets us route it."""
        self.bad_messages += 1
        if (resp := error_response(data, err)) is not None:
            self.layer.send_stateless(resp, source, transport)

    def tick(self, now: float) -> None:
        self.layer.tick(now)
        due = self._due
        while due and due[0][0] <= now:
            call = self.calls.get(heapq.heappop(due)[2])
            if call is not None:
                self._tick_call(call, now)
        self._pump(now)

    def _tick_call(self, call: Call, now: float) -> None:
        if call.state == "early" and isinstance(call.prack, Reliable):
            return self._tick_reliable(call, now)
        if call.state == "ended":  # keep it a while to re-ACK / absorb, then drop
            if call.forget_at is None:
                call.forget_at = now + 64 * T1
                self._check_at(call.forget_at, call)
            elif now >= call.forget_at:
                del self.calls[call.call_id]
            return
        if call.ok is not None and now >= call.ok_giveup:  # no ACK: hang up (§13.3.1.4)
            call.ok = None
            self._send_bye(call, now)
            self._end(call, "timeout")
        elif call.ok is not None and now >= call.ok_due:
            self.layer._out.append(Outgoing(call.ok, call.tx.dest, call.transport))
            call.ok_interval = min(call.ok_interval * 2, T2)
            call.ok_due += call.ok_interval
            self._check_at(min(call.ok_due, call.ok_giveup), call)
        elif call.ok is not None:
            self._check_at(min(call.ok_due, call.ok_giveup), call)

    def _end(self, call: Call, reason: str) -> None:
        if call.state != "ended":
            call.state = "ended"
            call.ok = None
            self._check_at(0.0, call)          # next tick starts its forget timer
            self._events.append(CallEnded(call.call_id, reason))

    # --- layer events ------------------------------------------------------------
    def _pump(self, now: float) -> None:
        for ev in self.layer.next_events():
            if isinstance(ev, RequestIn):
                self._on_request(ev, now)
            elif isinstance(ev, ResponseIn):
                self._on_response(ev.tx, ev.response, now)
            elif isinstance(ev, AckIn):
                call = self.calls.get(ev.request.call_id)
                if call and call.role == "uas" and call.state == "answered":
                    call.state = "confirmed"
                    call.ok = None
            elif isinstance(ev, StrayResponse):
                self._on_stray(ev.response)
            elif isinstance(ev, TxTimeout):
                self._on_timeout(ev.tx, now, ev.timer)

    def _respond(self, tx, req: Request, status: int, reason: str | None = None, *,
                 now: float, **kw) -> Response:
        resp = response_to(req, status, reason, **kw)
        resp.add("Server", self.user_agent)
        self.layer.respond(tx, resp, now)
        return resp

    def _on_request(self, ev: RequestIn, now: float) -> None:
        req, tx = ev.request, ev.tx
        m = req.method
        to_tag = req.to.tag
        call = self.calls.get(req.call_id)
        if m == "OPTIONS":
            self._respond(tx, req, 200, now=now, to_tag=to_tag or new_tag(self.rng),
                          headers=[("Allow", ALLOW), ("Accept", "application/sdp"),
                                   ("Supported", "100rel")])
        elif m == "REGISTER" and self.accept_register and not to_tag:
            # Not a registrar (carriers are configured, not registered): phones that
            # insist on registering first (pyVoIP) get a 200 binding nothing.
            expires = req.get("Expires") or "3600"
            hdrs = [("Expires", expires if expires.strip().isdigit() else "3600")]
            hdrs += [("Contact", c) for c in req.get_all("Contact")]
            self._respond(tx, req, 200, now=now, to_tag=new_tag(self.rng), headers=hdrs)
        elif m == "CANCEL":
            inv = self.layer.find_server(req, "INVITE")
            if inv is None:
                self._respond(tx, req, 481, now=now, to_tag=new_tag(self.rng))
                return
            c = self.calls.get(req.call_id)
            tag = c.local_tag if c else new_tag(self.rng)
            self._respond(tx, req, 200, now=now, to_tag=tag)
            if inv.state == "proceeding":
                self._respond(inv, inv.request, 487, now=now, to_tag=tag)
                if c is not None:
                    c.canceled = True
                    self._end(c, "cancel")
        elif m == "INVITE" and not to_tag:
            if call is not None:
                self._respond(tx, req, 482, now=now, to_tag=new_tag(self.rng))
                return
            call = Call(req.call_id, "uas", req, ev.tx.transport, new_tag(self.rng), tx=tx)
            call.state = "early"
            self.calls[req.call_id] = call
            self._events.append(IncomingCall(req.call_id, req, ev.source))
        elif m == "PRACK":
            self._on_prack(tx, req, call, now)
        elif (call is None or call.dialog is None or call.state == "ended"
              or (to_tag, req.from_.tag) != (call.dialog.local_tag, call.dialog.remote_tag)):
            if m in ("INVITE", "BYE", "INFO", "UPDATE") or to_tag:
                self._respond(tx, req, 481, now=now, to_tag=to_tag or new_tag(self.rng))
            else:
                self._respond(tx, req, 405, now=now, to_tag=new_tag(self.rng),
                              headers=[("Allow", ALLOW)])
        elif not call.dialog.accept_remote(req):
            self._respond(tx, req, 500, "Out Of Order", now=now)
        elif m == "BYE":
            self._respond(tx, req, 200, now=now)
            self._end(call, "bye")
        elif m in ("INVITE", "UPDATE"):  # re-INVITE (hold/refresh): current SDP again
            self._respond(tx, req, 200, now=now, body=call.local_sdp,
                          headers=[("Contact", call.dialog.local_contact)])
        elif m in ("INFO", "NOTIFY"):
            self._respond(tx, req, 200, now=now)
        else:
            self._respond(tx, req, 405, now=now, headers=[("Allow", ALLOW)])

    def _on_response(self, tx: ClientTx, resp: Response, now: float) -> None:
        kind, ref = tx.owner if tx.owner else (None, None)
        if kind == "options":
            if resp.status >= 200:
                self._events.append(OptionsDone(ref, resp.status))
            return
        if kind != "invite":
            return
        call: Call = ref
        code = resp.status
        if code < 200:
            if code > 100 and call.state == "init":
                call.state = "early"
            if call.pending_cancel:
                call.pending_cancel = False
                self._send_cancel(call, now)
            if code > 100 and self._uac_provisional(call, resp, now):
                self._events.append(CallProgress(call.call_id, code, resp.reason, resp.body))
        elif code < 300:
            self._on_2xx(call, resp, now)
        elif code in (401, 407) and call.auth and call.auth_tries < 2 and not call.canceled:
            if not self._retry_auth(call, resp, now):
                self._fail(call, code, resp.reason, resp.headers)
        else:
            self._fail(call, code, resp.reason, resp.headers)

    def _fail(self, call: Call, code: int, reason: str, headers=()) -> None:
        if call.state == "ended":
            return
        self._events.append(CallRejected(call.call_id, code, reason, list(headers)))
        self._end(call, "cancel" if call.canceled else "rejected")

    def _on_2xx(self, call: Call, resp: Response, now: float) -> None:
        contact = self._contact(call.invite.from_.uri.user, call.transport)
        call.dialog = Dialog.as_uac(call.invite, resp, contact, call.transport)
        self._after_prack_seq(call)
        ack, dest = call.dialog.request("ACK", self._via(call.transport),
                                        seq=call.invite.cseq.seq)
        call.ack, call.ack_dest = ack.encode(), dest
        self.layer._out.append(Outgoing(call.ack, dest, call.transport))
        if call.canceled or call.state == "ended":
            self._send_bye(call, now)
            self._end(call, "cancel")
            return
        call.state = "confirmed"
        self._events.append(CallAnswered(call.call_id, resp.body, list(resp.headers)))

    def _on_stray(self, resp: Response) -> None:
        try:
            call = self.calls.get(resp.call_id)
            if (call and call.ack and resp.status < 300 and resp.cseq.method == "INVITE"
                    and resp.cseq.seq == call.invite.cseq.seq):
                self.layer._out.append(Outgoing(call.ack, call.ack_dest, call.transport))
        except SipError:
            pass

    def _on_timeout(self, tx, now: float, ev_timer: str = "") -> None:
        kind, ref = tx.owner if tx.owner else (None, None)
        if kind == "options":
            self._events.append(OptionsDone(ref, 0))
        elif kind == "invite" and tx is ref.tx:
            if ev_timer == "transport":
                self._fail(ref, 503, "Service Unavailable")
            else:
                self._fail(ref, 408, "Request Timeout")

    # --- UAS actions -------------------------------------------------------------
    def _uas(self, call_id: str) -> Call | None:
        call = self.calls.get(call_id)
        if call is None or call.role != "uas" or call.state != "early":
            return None
        return call

    def ringing(self, call_id: str, now: float, *, sdp: bytes = b"") -> None:
        call = self._uas(call_id)
        if call:
            self._provisional(call, 183 if sdp else 180, sdp, now)   # 100rel: reliably
            self._pump(now)

    def answer(self, call_id: str, sdp: bytes, now: float) -> None:
        call = self._uas(call_id)
        if not call or self._hold_answer(call, sdp):   # held: sent on the PRACK
            return
        scheme = "sips" if call.invite.uri.lower().startswith("sips:") else "sip"
        contact = self._contact(call.invite.to.uri.user, call.transport, scheme)
        resp = self._respond(call.tx, call.invite, 200, now=now, to_tag=call.local_tag,
                             body=sdp, headers=[("Contact", contact), ("Allow", ALLOW)])
        call.local_sdp = sdp
        call.dialog = Dialog.as_uas(call.invite, call.local_tag, contact, call.transport)
        if isinstance(call.prack, Reliable):   # PRACKs used CSeqs after the INVITE's
            call.dialog.remote_seq = max(call.dialog.remote_seq or 0, call.prack.prack_seq)
        call.state = "answered"
        call.ok, call.ok_interval = resp.encode(), T1
        call.ok_due, call.ok_giveup = now + T1, now + 64 * T1
        self._check_at(call.ok_due, call)
        self._pump(now)

    def reject(self, call_id: str, status: int, reason: str | None, now: float) -> None:
        call = self._uas(call_id)
        if call:
            self._respond(call.tx, call.invite, status, reason or None, now=now,
                          to_tag=call.local_tag)
            self._end(call, "rejected")
            self._pump(now)

    def _send_bye(self, call: Call, now: float) -> None:
        if call.dialog is None:
            return
        bye, dest = call.dialog.request("BYE", self._via(call.transport),
                                        headers=[("User-Agent", self.user_agent)])
        tx = self.layer.send_request(bye, dest, call.transport, now)
        tx.owner = ("bye", call)

    def hangup(self, call_id: str, now: float) -> None:
        call = self.calls.get(call_id)
        if call is None or call.state == "ended":
            return
        if call.state in ("answered", "confirmed"):
            self._send_bye(call, now)
            self._end(call, "hangup")
        elif call.role == "uac":
            self.cancel(call_id, now)
        else:
            self.reject(call_id, 480, None, now)
        self._pump(now)
