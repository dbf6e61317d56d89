"""Events produced by :class:`gateway.proto.smpp_session.EsmeSession`.

Owns: the small ``__slots__`` value classes the session hands to its I/O adapter through
``next_events()``. Rules: plain data, no behaviour, no I/O; times are seconds on the
session's injected clock.
"""

from __future__ import annotations


class Event:
    __slots__ = ()

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={getattr(self, k)!r}" for k in self.__slots__)
        return f"{type(self).__name__}({fields})"

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and all(
            getattr(self, k) == getattr(other, k) for k in self.__slots__
        )

    __hash__ = None  # type: ignore[assignment]


class Bound(Event):
    """bind_*_resp with ESME_ROK: submits may flow."""

    __slots__ = ("system_id",)

    def __init__(self, system_id: str = "") -> None:
        self.system_id = system_id


class BindFailed(Event):
    """bind_*_resp (or generic_nack) with an error status; the session is closed."""

    __slots__ = ("status",)

    def __init__(self, status: int) -> None:
        self.status = status


class SubmitResp(Event):
    """The answer to one submit: submit_sm_resp, or a generic_nack naming its sequence."""

    __slots__ = ("ref", "status", "message_id", "latency")

    def __init__(self, ref: object, status: int, message_id: str, latency: float) -> None:
        self.ref = ref
        self.status = status
        self.message_id = message_id
        self.latency = latency


class SubmitsLost(Event):
    """Submits whose answer will never come (link dead, peer unbind, or expired).

    ``refs`` are in submit order. The application must resend them (at least once).
    """

    __slots__ = ("refs", "reason")

    def __init__(self, refs: list, reason: str) -> None:
        self.refs = refs
        self.reason = reason


class DeliverReceived(Event):
    """deliver_sm or data_sm from the SMSC (MO or DLR); answer with ``answer_deliver``."""

    __slots__ = ("pdu",)

    def __init__(self, pdu: object) -> None:
        self.pdu = pdu


class EnquireLinkRtt(Event):
    __slots__ = ("rtt",)

    def __init__(self, rtt: float) -> None:
        self.rtt = rtt


class Unbound(Event):
    """The bind ended cleanly (our unbind answered, or the peer's unbind answered)."""

    __slots__ = ("by_peer",)

    def __init__(self, by_peer: bool) -> None:
        self.by_peer = by_peer


class LinkDead(Event):
    """The connection must be closed: silence past the deadline, framing lost, or closed."""

    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason


class ProtocolError(Event):
    """The peer sent something we could not use (answered where the protocol allows).

    ``command_status`` is the status we answered with (or would have); the bind stays up.
    """

    __slots__ = ("command_id", "sequence_number", "command_status", "detail")

    def __init__(self, command_id: int, sequence_number: int, command_status: int,
                 detail: str) -> None:
        self.command_id = command_id
        self.sequence_number = sequence_number
        self.command_status = command_status
        self.detail = detail
