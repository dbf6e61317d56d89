"""Sans-I/O SMPP 3.4 ESME session: one bind over one byte stream.

Owns: the bind state machine, sequence numbers, the window of in-flight submits, the
automatic answers (enquire_link, unbind, garbage), keepalive and response deadlines
(the control-PDU handlers and the timers are in ``smpp_control.SessionControl``, which
this class inherits).
No sockets, no trio, no clock of its own: every call that cares about time takes ``now``
(seconds, monotonic). The adapter (``gateway.io.smpp_bind``) loops::

    session.start_bind(now); send(session.data_to_send())
    session.receive_data(bytes, now); for ev in session.next_events(): ...
    session.tick(now) at session.next_deadline()

Rules:
- States move only along ``TRANSITIONS`` (closed -> binding -> bound -> unbinding ->
  closed); any other move raises ``LocalProtocolError`` (our bug) — the peer cannot push
  us into an illegal state, its odd PDUs are answered and reported instead.
- Sequence numbers run 1..0x7FFFFFFF and wrap, skipping any still in flight.
- ``submit`` raises ``LocalProtocolError`` when not bound (or bound as receiver) or when
  the window is full (``free_slots()`` says how many it will accept), and ``ValueError``
  when the PDU cannot be encoded (it is encoded at once; nothing is consumed then).
- Every submit gets exactly one outcome event: ``SubmitResp`` (submit_sm_resp, or a
  generic_nack with its sequence number) or membership of one ``SubmitsLost``.
- Tolerant receiver: vendor ``command_status`` values, unknown TLVs and odd data_coding
  never drop the bind. An undecodable request is answered with the status the codec
  error carries (deliver_sm/data_sm with their own ``_resp``, anything else with
  generic_nack); stray responses are reported as ``ProtocolError`` and ignored.
- A ``DeliverReceived`` may be answered later (``answer_deliver``), in any order: SMPP
  allows responses out of order. ``unanswered`` counts the deliver_sm/data_sm received
  and not yet answered on this session (the adapter stops reading above a bound).

Error handling (timers, no retries here — retrying is the link's and dispatcher's job):
- ``response_timeout`` of silence (no byte received) while anything is outstanding
  (submits, bind, enquire_link, unbind) -> ``SubmitsLost(all refs, "response_timeout")``
  then ``LinkDead``; the session is closed.
- A single submit unanswered for ``response_timeout`` while the peer is otherwise
  talking -> ``SubmitsLost([ref], "expired")``; its window slot is freed, the bind stays.
- ``enquire_link`` is sent after ``enquire_link_interval`` seconds without receiving
  anything; its answer counts as traffic.
- ESME_RTHROTTLED / ESME_RMSGQFUL are reported as ``SubmitResp`` with that status (the
  caller re-queues) and set ``throttled_until = now + backoff`` (0.1 s doubling per
  consecutive throttle up to 1 s; a success for a submit sent after the last throttle
  resets it). The session does not enforce it: the adapter should not submit before.
"""

from __future__ import annotations

from gateway import codec
from gateway.proto.smpp_control import BINDING, BOUND, CLOSED, UNBINDING, SessionControl
from gateway.proto.smpp_events import LinkDead, SubmitResp, SubmitsLost

__all__ = ["EsmeSession", "LocalProtocolError", "TRANSITIONS", "CLOSED", "BINDING", "BOUND",
           "UNBINDING"]

#: (state, trigger) -> next state
TRANSITIONS: dict[tuple[str, str], str] = {
    (CLOSED, "bind"): BINDING,
    (BINDING, "bind_ok"): BOUND,
    (BINDING, "bind_failed"): CLOSED,
    (BOUND, "unbind"): UNBINDING,
    (BOUND, "peer_unbind"): CLOSED,
    (UNBINDING, "peer_unbind"): CLOSED,
    (UNBINDING, "unbind_resp"): CLOSED,
}
for _s in (CLOSED, BINDING, BOUND, UNBINDING):
    TRANSITIONS[(_s, "dead")] = CLOSED

MAX_SEQ = 0x7FFFFFFF
THROTTLE_FIRST = 0.1
THROTTLE_MAX = 1.0

BIND_TYPES = ("transceiver", "transmitter", "receiver")


class LocalProtocolError(Exception):
    """We tried something the protocol state does not allow."""


class EsmeSession(SessionControl):
    """One ESME bind. See the module docstring for the rules."""

    def __init__(self, system_id: str, password: str, *, bind_type: str = "transceiver",
                 system_type: str = "", window: int = 64, response_timeout: float = 5.0,
                 enquire_link_interval: float = 30.0, max_pdu_length: int = 65536) -> None:
        if bind_type not in BIND_TYPES:
            raise ValueError(f"bind_type must be one of {BIND_TYPES}, not {bind_type!r}")
        if window < 1:
            raise ValueError("window must be >= 1")
        self.system_id = system_id
        self.password = password
        self.bind_type = bind_type
        self.system_type = system_type
        self.window = window
        self.response_timeout = float(response_timeout)
        self.enquire_link_interval = float(enquire_link_interval)
        self.state = CLOSED
        self.peer_system_id = ""
        self.throttled_until = 0.0
        self._throttle_backoff = 0.0
        self._throttle_at = -1.0
        self._decoder = codec.Decoder(max_length=max_pdu_length)
        self._seq = 0
        self._inflight: dict[int, tuple[object, float]] = {}   # seq -> (ref, sent_at)
        self._out: list = []
        self._events: list = []
        self._last_rx = 0.0
        self._silence_since = 0.0
        self._control_seq = 0          # seq of the outstanding bind / unbind
        self._control_sent = 0.0
        self._enquire_seq = 0          # seq of the outstanding enquire_link, 0 = none
        self._enquire_sent = 0.0
        self.protocol_errors = 0
        self.unanswered = 0            # DeliverReceived not yet answer_deliver'ed

    @classmethod
    def from_cfg(cls, cfg: object, bind_type: str | None = None) -> EsmeSession:
        """Build from an object with the ``[carriers.smpp]`` attributes."""
        bt = bind_type or getattr(cfg, "bind", "transceiver")
        if bt == "tx_rx":
            bt = "transceiver"
        return cls(cfg.system_id, cfg.password, bind_type=bt,
                   system_type=getattr(cfg, "system_type", "") or "",
                   window=getattr(cfg, "window", 64),
                   response_timeout=getattr(cfg, "response_timeout", 5.0),
                   enquire_link_interval=getattr(cfg, "enquire_link_interval", 30.0) or 30.0)

    # ------------------------------------------------------------------ state helpers
    def _move(self, trigger: str) -> None:
        try:
            self.state = TRANSITIONS[(self.state, trigger)]
        except KeyError:
            raise LocalProtocolError(f"{trigger!r} not allowed in state {self.state!r}") from None

    def _next_seq(self) -> int:
        seq = self._seq
        inflight = self._inflight
        while True:
            seq = seq + 1 if seq < MAX_SEQ else 1
            if seq not in inflight and seq != self._enquire_seq and seq != self._control_seq:
                self._seq = seq
                return seq

    def _outstanding(self) -> bool:
        return bool(self._inflight) or self._enquire_seq != 0 or self._control_seq != 0

    def _arm_silence(self, now: float) -> None:
        """Called before a request is queued: start the silence clock if idle."""
        if not self._outstanding():
            self._silence_since = now

    @property
    def in_flight(self) -> int:
        return len(self._inflight)

    def in_flight_refs(self) -> list:
        return [ref for ref, _ in self._inflight.values()]

    def free_slots(self) -> int:
        if self.state != BOUND or self.bind_type == "receiver":
            return 0
        return self.window - len(self._inflight)

    # ------------------------------------------------------------------ commands
    def start_bind(self, now: float) -> None:
        self._move("bind")
        self._last_rx = now
        self._arm_silence(now)
        seq = self._next_seq()
        cls = {"transceiver": codec.BindTransceiver, "transmitter": codec.BindTransmitter,
               "receiver": codec.BindReceiver}[self.bind_type]
        self._control_seq, self._control_sent = seq, now
        self._send(cls(seq, self.system_id, self.password, system_type=self.system_type))

    def submit(self, ref: object, pdu, now: float) -> int:
        """Queue ``pdu`` (a SubmitSm/DataSm), numbering it; returns its sequence number."""
        if self.state != BOUND or self.bind_type == "receiver":
            raise LocalProtocolError(f"cannot submit in state {self.state!r} ({self.bind_type})")
        inflight = self._inflight
        if len(inflight) >= self.window:
            raise LocalProtocolError("window full")
        seq = self._next_seq()
        pdu.sequence_number = seq
        data = codec.encode(pdu)          # ValueError here: the caller's PDU, window untouched
        if not inflight and not self._enquire_seq:
            self._silence_since = now
        inflight[seq] = (ref, now)
        self._out.append(data)
        return seq

    def answer_deliver(self, pdu, status: int = 0) -> None:
        """Answer a deliver_sm / data_sm received in a ``DeliverReceived`` event (now or
        later, in any order). Once per PDU; nothing is sent when the session is closed."""
        if self.unanswered > 0:
            self.unanswered -= 1
        if self.state == CLOSED:
            return
        self._send(codec.resp_for(pdu, status))

    def enquire_link(self, now: float) -> None:
        if self.state != BOUND or self._enquire_seq:
            return
        self._arm_silence(now)
        seq = self._next_seq()
        self._enquire_seq, self._enquire_sent = seq, now
        self._send(codec.EnquireLink(seq))

    def unbind(self, now: float) -> None:
        """Start a clean unbind; in-flight submits are still answered until unbind_resp."""
        self._move("unbind")
        self._arm_silence(now)
        seq = self._next_seq()
        self._control_seq, self._control_sent = seq, now
        self._send(codec.Unbind(seq))

    def connection_lost(self, reason: str) -> None:
        """The transport closed: every unanswered submit is lost."""
        if self.state != CLOSED:
            self._die(reason)

    def _die(self, reason: str) -> None:
        refs = [ref for ref, _ in self._inflight.values()]
        self._inflight.clear()
        self._enquire_seq = self._control_seq = 0
        if refs:
            self._events.append(SubmitsLost(refs, reason))
        self._events.append(LinkDead(reason))
        self._move("dead")

    # ------------------------------------------------------------------ output / events
    def _send(self, pdu) -> None:
        self._out.append(codec.encode(pdu))

    @property
    def has_output(self) -> bool:
        return bool(self._out)

    def data_to_send(self) -> bytes:
        """Every queued PDU, encoded, in one buffer (one send_all)."""
        out = self._out
        if not out:
            return b""
        self._out = []
        return b"".join(out)

    def next_events(self) -> list:
        ev = self._events
        self._events = []
        return ev

    # ------------------------------------------------------------------ input
    def receive_data(self, data: bytes, now: float) -> None:
        if self.state == CLOSED or not data:
            return
        self._last_rx = now
        self._silence_since = now
        try:
            items = self._decoder.feed(data)
        except codec.PduError as exc:     # FramingError: the stream cannot be resynchronised
            self._handle(getattr(exc, "pdus", None) or [], now)
            if self.state != CLOSED:
                self._send(codec.GenericNack(exc.sequence_number,
                                                   command_status=exc.command_status))
                self._report(exc.command_id, exc.sequence_number, exc.command_status, str(exc))
                self._die(f"framing error: {exc}")
            return
        self._handle(items, now)

    def _handle(self, items: list, now: float) -> None:
        submit_resp_id = codec.CommandId.SUBMIT_SM_RESP
        inflight = self._inflight
        events = self._events
        for pdu in items:
            if isinstance(pdu, codec.PduError):
                self._on_bad_pdu(pdu)
                continue
            cid = pdu.command_id
            if cid == submit_resp_id:
                entry = inflight.pop(pdu.sequence_number, None)
                if entry is None:
                    self._stray(pdu)
                    continue
                status = pdu.command_status
                events.append(SubmitResp(entry[0], status, pdu.message_id, now - entry[1]))
                if status:
                    self._on_submit_error(status, entry[1], now)
                elif self._throttle_backoff and entry[1] > self._throttle_at:
                    self._throttle_backoff = 0.0
            else:
                self._on_other(pdu, cid, now)
            if self.state == CLOSED:
                return

    def _on_submit_error(self, status: int, sent_at: float, now: float) -> None:
        if status == codec.Status.ESME_RTHROTTLED or status == codec.Status.ESME_RMSGQFUL:
            if sent_at > self._throttle_at or not self._throttle_backoff:
                b = self._throttle_backoff
                self._throttle_backoff = THROTTLE_FIRST if not b else min(THROTTLE_MAX, b * 2)
            self._throttle_at = now
            self.throttled_until = now + self._throttle_backoff

