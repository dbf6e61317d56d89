"""Reliable provisional responses (RFC 3262, "100rel", PRACK) for the SIP UA core.

Owns: a mixin of ``sip_core.UaCore`` (uses its ``calls``, ``layer``, ``rng``, ``_via``,
``_contact``, ``_respond``, ``_check_at``, ``_end``, ``answer``) with both sides:

- UAS: an INVITE with ``Require: 100rel`` gets its 18x reliably: ``Require: 100rel`` and
  ``RSeq`` (first value random in 1..2**31-1, +1 each), retransmitted at T1, 2*T1, 4*T1 ...
  until the matching PRACK (``RAck: rseq cseq INVITE``), which is answered 200. One
  reliable 18x is outstanding at a time (a later one queues, §3), and the 2xx waits for the
  PRACK of the last one. No PRACK within 64*T1: the INVITE is answered 504 and the call
  ends ("timeout"). A PRACK matching nothing outstanding gets 481. ``Supported: 100rel``
  alone (or nothing) -> unreliable 18x as before.
- UAC: INVITEs carry ``Supported: 100rel``; each reliable 18x (per To tag, RSeq in order)
  gets a PRACK in its early dialog; retransmitted or out-of-order ones are dropped (not
  reported again, not PRACKed); the confirmed dialog continues after the PRACK's CSeq.

Rules: pure state and messages, time is the ``now`` argument; state lives in
``Call.prack`` (``Reliable`` for a UAS call, ``EarlyUac`` for a UAC call).
Error handling: an unparseable RSeq/RAck is treated as absent (unreliable 18x / 481).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gateway.codec.sip import Request, Response
from gateway.proto.sip_dialog import Call, Dialog, new_tag
from gateway.proto.sip_transaction import T1, Outgoing

GIVEUP = 64 * T1


def has_100rel(msg: Request | Response, header: str = "Require") -> bool:
    return any(t.strip().lower() == "100rel" for t in msg.get_all(header))


@dataclass
class Reliable:
    """UAS: the reliable provisionals of one INVITE."""
    rseq: int                                   # last RSeq sent
    unacked: bytes | None = None                # the 18x waiting for its PRACK
    due: float = 0.0
    interval: float = T1
    giveup: float = 0.0
    queue: list[tuple[int, bytes]] = field(default_factory=list)  # (status, sdp) after it
    answer: bytes | None = None                 # 2xx SDP held until the PRACK
    prack_seq: int = 0                          # highest PRACK CSeq seen


@dataclass
class EarlyUac:
    """UAC: early dialogs (by To tag) and the last RSeq acknowledged in each."""
    dialogs: dict[str, Dialog] = field(default_factory=dict)
    rseq: dict[str, int] = field(default_factory=dict)
    local_seq: int = 0                          # highest CSeq used by a PRACK


class PrackActions:
    # --- UAS -----------------------------------------------------------------------
    def _provisional(self, call: Call, status: int, sdp: bytes, now: float) -> None:
        """Send 18x for ``call``: reliably when its INVITE requires 100rel."""
        scheme = "sips" if call.invite.uri.lower().startswith("sips:") else "sip"
        hdrs = [("Contact", self._contact(None, call.transport, scheme))]
        if not has_100rel(call.invite):
            self._respond(call.tx, call.invite, status, now=now, to_tag=call.local_tag,
                          body=sdp, headers=hdrs)
            return
        rel = call.prack
        if rel is None:
            rel = call.prack = Reliable(rseq=self.rng.randint(1, 2**31 - 1) - 1)
        if rel.unacked is not None:
            rel.queue.append((status, sdp))
            return
        rel.rseq += 1
        hdrs += [("Require", "100rel"), ("RSeq", str(rel.rseq))]
        resp = self._respond(call.tx, call.invite, status, now=now, to_tag=call.local_tag,
                             body=sdp, headers=hdrs)
        rel.unacked, rel.interval = resp.encode(), T1
        rel.due, rel.giveup = now + T1, now + GIVEUP
        self._check_at(rel.due, call)

    def _hold_answer(self, call: Call, sdp: bytes) -> bool:
        """True when the 2xx must wait for a PRACK (kept and sent on its arrival)."""
        rel = call.prack
        if isinstance(rel, Reliable) and (rel.unacked is not None or rel.queue):
            rel.answer = sdp
            return True
        return False

    def _tick_reliable(self, call: Call, now: float) -> None:
        rel = call.prack
        if rel.unacked is None:
            return
        if now >= rel.giveup:   # §3: no PRACK for 64*T1 -> reject with a 5xx
            rel.unacked = None
            self._respond(call.tx, call.invite, 504, now=now, to_tag=call.local_tag)
            self._end(call, "timeout")
            return
        if now >= rel.due:
            self.layer._out.append(Outgoing(rel.unacked, call.tx.dest, call.transport))
            rel.interval *= 2
            rel.due += rel.interval
        self._check_at(min(rel.due, rel.giveup), call)

    def _on_prack(self, tx, req: Request, call: Call | None, now: float) -> None:
        rel = call.prack if call is not None and call.role == "uas" else None
        try:
            rseq, cseq, method = (req.get("RAck") or "").split()
            ok = (isinstance(rel, Reliable) and rel.unacked is not None
                  and call.state == "early" and req.to.tag == call.local_tag
                  and int(rseq) == rel.rseq and int(cseq) == call.invite.cseq.seq
                  and method.upper() == "INVITE")
        except ValueError:
            ok = False
        if not ok:
            self._respond(tx, req, 481, now=now, to_tag=req.to.tag or new_tag(self.rng))
            return
        rel.unacked = None
        rel.prack_seq = max(rel.prack_seq, req.cseq.seq)
        self._respond(tx, req, 200, now=now)
        if rel.queue:
            status, sdp = rel.queue.pop(0)
            self._provisional(call, status, sdp, now)
        elif rel.answer is not None:
            sdp, rel.answer = rel.answer, None
            self.answer(call.call_id, sdp, now)

    # --- UAC -----------------------------------------------------------------------
    def _uac_provisional(self, call: Call, resp: Response, now: float) -> bool:
        """PRACK a reliable 18x; False = a repeat or out of order: ignore it."""
        if not has_100rel(resp) or not (resp.get("RSeq") or "").strip().isdigit():
            return True
        tag = resp.to.tag
        if not tag:
            return True
        st = call.prack
        if st is None:
            st = call.prack = EarlyUac(local_seq=call.invite.cseq.seq)
        rseq = int(resp.get("RSeq").strip())
        last = st.rseq.get(tag)
        if last is not None and rseq != last + 1:
            return False
        st.rseq[tag] = rseq
        dialog = st.dialogs.get(tag)
        if dialog is None:
            contact = self._contact(call.invite.from_.uri.user, call.transport)
            dialog = st.dialogs[tag] = Dialog.as_uac(call.invite, resp, contact,
                                                     call.transport)
        elif resp.contact is not None:
            dialog.remote_target = resp.contact.uri
        dialog.local_seq = max(dialog.local_seq, st.local_seq)
        prack, dest = dialog.request(
            "PRACK", self._via(call.transport),
            headers=[("RAck", f"{rseq} {call.invite.cseq.seq} INVITE"),
                     ("User-Agent", self.user_agent)])
        st.local_seq = dialog.local_seq
        tx = self.layer.send_request(prack, dest, call.transport, now)
        tx.owner = ("prack", call)
        return True

    def _after_prack_seq(self, call: Call) -> None:
        """The confirmed dialog's CSeq continues after the PRACKs sent in early ones."""
        if isinstance(call.prack, EarlyUac) and call.dialog is not None:
            call.dialog.local_seq = max(call.dialog.local_seq, call.prack.local_seq)
