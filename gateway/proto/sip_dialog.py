"""SIP dialog state (RFC 3261 §12) and the message builders around it.

Owns: ``Dialog`` — Call-ID, local/remote tags, local/remote CSeq, route set (from
Record-Route: as-is for the UAS, reversed for the UAC, §12.1.1/§12.1.2), remote target
(the peer's Contact, refreshed by target-refresh requests), loose/strict routing of
in-dialog requests (§12.2.1.1, §16.12) — plus ``response_to`` (a response that copies
Via/From/To/Call-ID/CSeq and adds the To tag) and ``new_branch``.

Rules: pure data + functions, no I/O, no clock; randomness comes from the caller's
``random.Random``. Also holds ``Call`` (one call's record in the UA core) and the
core's event types (``IncomingCall``, ``CallProgress``, ``CallAnswered``,
``CallRejected``, ``CallEnded``, ``OptionsDone``). In-dialog requests get ``local_seq + 1``; a request whose CSeq is
lower than the remote CSeq seen so far is out of order (the core answers 500).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from gateway.codec.sip import NameAddr, Request, Response, Uri
from gateway.proto.sip_transaction import T1

Addr = tuple[str, int]

ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE, PRACK"


def new_branch(rng: random.Random) -> str:
    return f"z9hG4bK{rng.getrandbits(64):016x}"


def new_tag(rng: random.Random) -> str:
    return f"{rng.getrandbits(48):012x}"


def response_to(req: Request, status: int, reason: str | None = None, *,
                to_tag: str | None = None, body: bytes = b"",
                headers: list[tuple[str, str]] | None = None) -> Response:
    resp = Response(status, reason)
    for name in ("Via", "From", "To", "Call-ID", "CSeq"):
        for n, v in req.headers:
            if n == name:
                if name == "To" and to_tag and ";tag=" not in v.replace(" ", "").lower():
                    v = f"{v};tag={to_tag}"
                resp.add(n, v)
    if req.method == "INVITE" and 100 < status < 300:
        for rr in req.get_all("Record-Route"):
            resp.add("Record-Route", rr)
    for n, v in headers or []:
        resp.add(n, v)
    if body:
        resp.add("Content-Type", "application/sdp")
        resp.body = body
    return resp


def cancel_for(inv: Request) -> Request:
    """CANCEL for a pending INVITE (§9.1): same Request-URI, top Via, Route, From, To,
    Call-ID and CSeq number."""
    cancel = Request("CANCEL", inv.uri)
    cancel.add("Via", inv.get_all("Via")[0])
    for r in inv.get_all("Route"):
        cancel.add("Route", r)
    cancel.add("Max-Forwards", "70")
    for n in ("From", "To", "Call-ID"):
        cancel.add(n, inv.get(n) or "")
    cancel.add("CSeq", f"{inv.cseq.seq} CANCEL")
    return cancel


def invite_request(to_uri: str, via: str, from_: str, call_id: str, seq: int, contact: str,
                   sdp: bytes, headers: list[tuple[str, str]]) -> Request:
    req = Request("INVITE", to_uri)
    for n, v in [("Via", via), ("Max-Forwards", "70"), ("From", from_), ("To", f"<{to_uri}>"),
                 ("Call-ID", call_id), ("CSeq", f"{seq} INVITE"), ("Contact", contact),
                 ("Allow", ALLOW), *headers, ("Content-Type", "application/sdp")]:
        req.add(n, v)
    req.body = sdp
    return req


def options_request(dest: tuple[str, int], via: str, call_id: str, from_: str) -> Request:
    req = Request("OPTIONS", f"sip:{dest[0]}:{dest[1]}")
    req.add("Via", via)
    req.add("Max-Forwards", "70")
    req.add("From", from_)
    req.add("To", f"<sip:{dest[0]}:{dest[1]}>")
    req.add("Call-ID", call_id)
    req.add("CSeq", "1 OPTIONS")
    req.add("Accept", "application/sdp")
    return req


@dataclass
class Dialog:
    call_id: str
    local_tag: str
    remote_tag: str
    local_party: str        # From/To value of our side, without tag
    remote_party: str
    remote_target: Uri
    local_contact: str
    transport: str = "UDP"
    local_seq: int = 0
    remote_seq: int | None = None
    route_set: list[str] = field(default_factory=list)

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.call_id, self.local_tag, self.remote_tag)

    @classmethod
    def as_uas(cls, invite: Request, local_tag: str, local_contact: str,
               transport: str = "UDP") -> Dialog:
        contact = invite.contact
        frm, to = invite.from_, invite.to
        return cls(invite.call_id, local_tag, frm.tag or "", _untagged(to),
                   _untagged(frm), contact.uri if contact else frm.uri, local_contact,
                   transport, local_seq=0, remote_seq=invite.cseq.seq,
                   route_set=list(invite.get_all("Record-Route")))

    @classmethod
    def as_uac(cls, invite: Request, resp: Response, local_contact: str,
               transport: str = "UDP") -> Dialog:
        contact = resp.contact
        return cls(invite.call_id, invite.from_.tag or "", resp.to.tag or "",
                   _untagged(invite.from_), _untagged(resp.to),
                   contact.uri if contact else Uri.parse(invite.uri), local_contact,
                   transport, local_seq=invite.cseq.seq,
                   route_set=list(reversed(resp.get_all("Record-Route"))))

    def accept_remote(self, req: Request) -> bool:
        """Update the remote CSeq (and target on re-INVITE); False = out of order."""
        seq = req.cseq.seq
        if req.method not in ("ACK", "CANCEL"):
            if self.remote_seq is not None and seq <= self.remote_seq:
                return False
            self.remote_seq = seq
        if req.method in ("INVITE", "UPDATE") and req.contact:
            self.remote_target = req.contact.uri
        return True

    def next_hop(self) -> tuple[str, list[str], tuple[str, int]]:
        """(Request-URI, Route header values, destination host/port) per §12.2.1.1."""
        if not self.route_set:
            return str(self.remote_target), [], self.remote_target.hostport()
        first = NameAddr.parse(self.route_set[0]).uri
        if "lr" in first.params:
            return str(self.remote_target), list(self.route_set), first.hostport()
        rest = self.route_set[1:] + [f"<{self.remote_target}>"]
        strict = Uri.parse(str(first))
        strict.params = {k: v for k, v in strict.params.items() if k in ("transport",)}
        return str(strict), rest, first.hostport()

    def request(self, method: str, via: str, *, seq: int | None = None, body: bytes = b"",
                headers: list[tuple[str, str]] | None = None) -> tuple[Request, tuple[str, int]]:
        if seq is None:
            self.local_seq += 1
            seq = self.local_seq
        ruri, routes, dest = self.next_hop()
        req = Request(method, ruri)
        req.add("Via", via)
        for r in routes:
            req.add("Route", r)
        req.add("Max-Forwards", "70")
        req.add("From", f"{self.local_party};tag={self.local_tag}")
        req.add("To", f"{self.remote_party};tag={self.remote_tag}")
        req.add("Call-ID", self.call_id)
        req.add("CSeq", f"{seq} {method}")
        if method in ("INVITE", "UPDATE"):
            req.add("Contact", self.local_contact)
        for n, v in headers or []:
            req.add(n, v)
        if body:
            req.add("Content-Type", "application/sdp")
            req.body = body
        return req, dest


def _untagged(na: NameAddr) -> str:
    params = {k: v for k, v in na.params.items() if k != "tag"}
    return str(NameAddr(na.uri, na.display, params))


# --- call records and the UA core's events (gateway.proto.sip_core) -------------------
@dataclass
class IncomingCall:
    call_id: str
    request: Request
    source: Addr


@dataclass
class CallProgress:
    call_id: str
    status: int
    reason: str
    sdp: bytes


@dataclass
class CallAnswered:
    call_id: str
    sdp: bytes
    headers: list[tuple[str, str]] = field(default_factory=list)   # of the 2xx


@dataclass
class CallRejected:
    call_id: str
    status: int
    reason: str
    headers: list[tuple[str, str]] = field(default_factory=list)   # of the final response


@dataclass
class CallEnded:
    call_id: str
    reason: str  # "bye" | "cancel" | "hangup" | "timeout" | "rejected"


@dataclass
class OptionsDone:
    key: str
    status: int  # 0 = no answer


@dataclass(eq=False)
class Call:
    call_id: str
    role: str  # "uas" | "uac"
    invite: Request
    transport: str
    local_tag: str
    state: str = "init"  # init, early, answered, confirmed, ended
    tx: Any = None
    dialog: Dialog | None = None
    local_sdp: bytes = b""
    dest: Addr = ("", 0)
    auth: tuple[str, str] | None = None
    auth_tries: int = 0
    pending_cancel: bool = False
    canceled: bool = False
    ack: bytes | None = None
    ack_dest: Addr = ("", 0)
    ok: bytes | None = None  # UAS 2xx being retransmitted
    ok_due: float = 0.0
    ok_interval: float = T1
    ok_giveup: float = 0.0
    forget_at: float | None = None
    prack: Any = None  # sip_prack.Reliable (UAS) / EarlyUac (UAC): 100rel state
