"""Sans-I/O SIP transaction layer (RFC 3261 §17, RFC 6026 "Accepted", RFC 3581 rport).

Owns: INVITE and non-INVITE client and server transactions, their matching (top Via
branch + sent-by + method, §17.1.3/§17.2.3), retransmission and timeout timers A, B, D,
E, F, G, H, I, J, K (and L for accepted INVITEs), the immediate 100 Trying for INVITE,
absorption of retransmitted requests (the last response is sent again), the ACK for
non-2xx final responses, and Via ``received``/``rport`` stamping on incoming requests.

No sockets, no trio, no clock: every call takes ``now`` (monotonic seconds). The UA core
loops: ``receive(msg, source, transport, now)`` / ``send_request`` / ``respond``, then
drains ``data_to_send()`` (``Outgoing`` datagrams/segments) and ``next_events()``, and
calls ``tick(now)`` at ``next_deadline()``.

Rules:
- Retransmissions (A, E, G) only over unreliable transports (UDP); over TCP the
  completed-state waits (D, I, J, K) are zero, as §17 says.
- Events for the core: ``RequestIn`` (new server transaction), ``ResponseIn`` (response
  matched to a client transaction, retransmissions of finals filtered), ``TxTimeout``
  (B/F: no final answer; H: no ACK; "transport": ``transport_error``), ``AckIn`` (ACK that matches no transaction, i.e. the
  ACK of a 2xx), ``StrayResponse`` (no client transaction, e.g. a retransmitted 2xx).

Error handling: no retries beyond the RFC's timers; a timeout is reported once as
``TxTimeout`` and the transaction is gone.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import Any

from gateway.codec.sip import Request, Response, SipError, Via, split_commas

T1, T2, T4 = 0.5, 4.0, 5.0
Addr = tuple[str, int]


@dataclass
class Outgoing:
    data: bytes
    dest: Addr
    transport: str  # "UDP" | "TCP" | "TLS"


@dataclass
class RequestIn:
    tx: ServerTx
    request: Request
    source: Addr


@dataclass
class ResponseIn:
    tx: ClientTx
    response: Response


@dataclass
class TxTimeout:
    tx: ClientTx | ServerTx
    timer: str


@dataclass
class AckIn:
    request: Request
    source: Addr


@dataclass
class StrayResponse:
    response: Response
    source: Addr


@dataclass(eq=False)
class _Tx:
    key: tuple
    request: Request
    dest: Addr
    transport: str
    state: str
    timers: dict[str, float] = field(default_factory=dict)
    interval: float = T1
    last: bytes | None = None
    owner: Any = None  # free slot for the UA core

    @property
    def reliable(self) -> bool:
        return self.transport != "UDP"

    @property
    def is_invite(self) -> bool:
        return self.request.method == "INVITE"


class ClientTx(_Tx):
    pass


class ServerTx(_Tx):
    last_response: Response | None = None


def _server_key(req: Request, method: str) -> tuple:
    via = req.top_via
    branch = via.branch or ""
    if branch.startswith("z9hG4bK"):
        return (branch, via.host.lower(), via.port, method)
    return ("2543", req.call_id, req.from_.tag, req.cseq.seq, method, str(via))


def stamp_via(req: Request, source: Addr) -> None:
    """RFC 3261 §18.2.1 ``received`` and RFC 3581 ``rport`` on the top Via."""
    idx = next(i for i, (n, _) in enumerate(req.headers) if n == "Via")
    items = split_commas(req.headers[idx][1])
    via = Via.parse(items[0])
    if via.host.strip("[]") != source[0]:
        via.params["received"] = source[0]
    if "rport" in via.params:
        via.params["rport"] = str(source[1])
    items[0] = str(via)
    req.headers[idx] = ("Via", ", ".join(items))


def ack_for(req: Request, resp: Response) -> Request:
    """The ACK for a non-2xx final response (§17.1.1.3): same branch, To with tag."""
    ack = Request("ACK", req.uri)
    ack.add("Via", req.get_all("Via")[0])
    for r in req.get_all("Route"):
        ack.add("Route", r)
    ack.add("Max-Forwards", "70")
    ack.add("From", req.get("From") or "")
    ack.add("To", resp.get("To") or "")
    ack.add("Call-ID", req.call_id)
    ack.add("CSeq", f"{req.cseq.seq} ACK")
    return ack


class TransactionLayer:
    def __init__(self) -> None:
        self.client: dict[tuple, ClientTx] = {}
        self.server: dict[tuple, ServerTx] = {}
        self._out: list[Outgoing] = []
        self._events: list[Any] = []
        # (due, seq, timer name, tx, table): every timer ever armed; an entry is stale
        # (skipped) once the tx left its table or the timer was re-armed/cancelled
        self._heap: list[tuple] = []
        self._seq = 0

    def _arm(self, tx: _Tx, table: dict) -> None:
        """Index ``tx``'s current timers (call after changing them)."""
        for name, due in tx.timers.items():
            self._seq += 1
            heapq.heappush(self._heap, (due, self._seq, name, tx, table))

    @staticmethod
    def _live(entry: tuple) -> bool:
        due, _, name, tx, table = entry
        return table.get(tx.key) is tx and tx.timers.get(name) == due

    # --- output ------------------------------------------------------------------
    def data_to_send(self) -> list[Outgoing]:
        out, self._out = self._out, []
        return out

    def next_events(self) -> list[Any]:
        ev, self._events = self._events, []
        return ev

    def send_stateless(self, msg: Request | Response, dest: Addr, transport: str) -> None:
        self._out.append(Outgoing(msg.encode(), dest, transport))

    def next_deadline(self) -> float | None:
        heap = self._heap
        while heap and not self._live(heap[0]):
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    # --- client side -------------------------------------------------------------
    def send_request(self, req: Request, dest: Addr, transport: str, now: float) -> ClientTx:
        key = (req.top_via.branch, req.method)
        tx = ClientTx(key, req, dest, transport, "calling" if req.method == "INVITE" else "trying")
        tx.last = req.encode()
        self._out.append(Outgoing(tx.last, dest, transport))
        if not tx.reliable:
            tx.timers["A" if tx.is_invite else "E"] = now + T1
        tx.timers["B" if tx.is_invite else "F"] = now + 64 * T1
        self.client[key] = tx
        self._arm(tx, self.client)
        return tx

    def transport_error(self, dest: Addr, transport: str) -> None:
        """§17.1.4: the transport failed for ``dest``: its client transactions that have
        no final answer end now with ``TxTimeout(tx, "transport")``."""
        for key, tx in list(self.client.items()):
            if (tx.dest == dest and tx.transport == transport
                    and tx.state in ("calling", "trying", "proceeding")):
                del self.client[key]
                tx.timers.clear()
                tx.state = "terminated"
                self._events.append(TxTimeout(tx, "transport"))

    def _client_response(self, resp: Response, source: Addr, now: float) -> None:
        try:
            key = (resp.top_via.branch, resp.cseq.method)
        except SipError:
            return
        tx = self.client.get(key)
        if tx is None:
            self._events.append(StrayResponse(resp, source))
            return
        code = resp.status
        if tx.state == "completed":
            if tx.is_invite and code >= 300 and tx.last is not None:
                self._out.append(Outgoing(tx.last, tx.dest, tx.transport))  # re-ACK
            return
        if code < 200:
            tx.state = "proceeding"
            if tx.is_invite:
                tx.timers.pop("A", None)
                tx.timers.pop("B", None)
            elif "E" in tx.timers:
                tx.interval = T2
            self._events.append(ResponseIn(tx, resp))
            return
        tx.timers.clear()
        self._events.append(ResponseIn(tx, resp))
        if tx.is_invite and code < 300:
            del self.client[key]  # 2xx: the TU ACKs; retransmits arrive as StrayResponse
            return
        tx.state = "completed"
        if tx.is_invite:
            tx.last = ack_for(tx.request, resp).encode()
            self._out.append(Outgoing(tx.last, tx.dest, tx.transport))
        wait = 0.0 if tx.reliable else (32.0 if tx.is_invite else T4)
        tx.timers["D" if tx.is_invite else "K"] = now + wait
        self._arm(tx, self.client)

    # --- server side -------------------------------------------------------------
    def respond(self, tx: ServerTx, resp: Response, now: float) -> None:
        if tx.state in ("completed", "confirmed", "terminated"):
            return
        tx.last = resp.encode()
        tx.last_response = resp
        self._out.append(Outgoing(tx.last, tx.dest, tx.transport))
        code = resp.status
        if code < 200:
            if not tx.is_invite:
                tx.state = "proceeding"
            return
        if tx.is_invite and code < 300:
            tx.state = "accepted"
            tx.timers = {"L": now + 64 * T1}
            self._arm(tx, self.server)
            return
        tx.state = "completed"
        if tx.is_invite:
            if not tx.reliable:
                tx.interval = T1
                tx.timers["G"] = now + T1
            tx.timers["H"] = now + 64 * T1
        else:
            tx.timers["J"] = now + (0.0 if tx.reliable else 64 * T1)
        self._arm(tx, self.server)

    def find_server(self, req: Request, method: str) -> ServerTx | None:
        try:
            return self.server.get(_server_key(req, method))
        except SipError:
            return None

    def _server_request(self, req: Request, source: Addr, transport: str, now: float) -> None:
        stamp_via(req, source)
        method = "INVITE" if req.method == "ACK" else req.method
        key = _server_key(req, method)
        tx = self.server.get(key)
        if req.method == "ACK":
            if tx is None or tx.state == "accepted":
                self._events.append(AckIn(req, source))
            elif tx.state == "completed":
                tx.state = "confirmed"
                tx.timers = {"I": now + (0.0 if tx.reliable else T4)}
                self._arm(tx, self.server)
            return
        if tx is not None:  # retransmission: absorb, repeat the last response
            if tx.last is not None:
                self._out.append(Outgoing(tx.last, tx.dest, tx.transport))
            return
        dest = source if transport != "UDP" else req.top_via.response_address()
        tx = ServerTx(key, req, dest, transport, "proceeding" if method == "INVITE" else "trying")
        self.server[key] = tx
        if tx.is_invite:
            trying = Response(100, "Trying")
            for name in ("Via", "From", "To", "Call-ID", "CSeq"):
                for n, v in req.headers:
                    if n == name:
                        trying.add(n, v)
            self.respond(tx, trying, now)
        self._events.append(RequestIn(tx, req, source))

    # --- input and timers --------------------------------------------------------
    def receive(self, msg: Request | Response, source: Addr, transport: str, now: float) -> None:
        if isinstance(msg, Response):
            self._client_response(msg, source, now)
        else:
            self._server_request(msg, source, transport, now)

    def tick(self, now: float) -> None:
        """Fire every timer due by ``now``, earliest first (O(log n) per timer)."""
        heap = self._heap
        while heap and heap[0][0] <= now:
            entry = heapq.heappop(heap)
            if not self._live(entry):
                continue
            due, _, name, tx, table = entry
            del tx.timers[name]
            self._fire(table, tx.key, tx, name, due)
            if table.get(tx.key) is tx:
                self._arm_one(tx, table, name)

    def _arm_one(self, tx: _Tx, table: dict, name: str) -> None:
        due = tx.timers.get(name)
        if due is not None:
            self._seq += 1
            heapq.heappush(self._heap, (due, self._seq, name, tx, table))

    def _fire(self, table: dict, key: tuple, tx: _Tx, name: str, now: float) -> None:
        # ``now`` is the timer's due time, so a late tick does not shift the schedule
        if name in ("A", "G"):
            if tx.last is not None:
                self._out.append(Outgoing(tx.last, tx.dest, tx.transport))
            tx.interval = tx.interval * 2 if name == "A" else min(tx.interval * 2, T2)
            tx.timers[name] = now + tx.interval
        elif name == "E":
            self._out.append(Outgoing(tx.last or b"", tx.dest, tx.transport))
            tx.interval = T2 if tx.state == "proceeding" else min(tx.interval * 2, T2)
            tx.timers["E"] = now + tx.interval
        elif name in ("B", "F", "H"):
            table.pop(key, None)
            tx.timers.clear()
            tx.state = "terminated"
            self._events.append(TxTimeout(tx, name))
        else:  # D, I, J, K, L: quiet end of the transaction
            table.pop(key, None)
            tx.timers.clear()
            tx.state = "terminated"
