"""UAC-side actions of the SIP user agent core: INVITE (with digest retry), CANCEL and
the OPTIONS probe. A mixin of ``sip_core.UaCore`` (which owns the state these use:
``calls``, ``layer``, ``rng``, ``_via``, ``_contact``, ``_pump``).

Rules: CANCEL is held back until a provisional arrives (§9.1); a digest retry re-sends
the INVITE with CSeq+1 and a new branch (§22.2, §22.3).
Error handling: a challenge that cannot be parsed is a failed call (the core's ``_fail``).
"""

from __future__ import annotations

from gateway.codec.sip import Response
from gateway.proto import sip_auth
from gateway.proto.sip_dialog import Call, cancel_for, invite_request, new_tag, options_request

Addr = tuple[str, int]


class UacActions:
    # --- UAC actions -------------------------------------------------------------
    def invite(self, to_uri: str, dest: Addr, *, from_user: str, sdp: bytes, now: float,
               auth: tuple[str, str] | None = None, transport: str = "UDP",
               headers: list[tuple[str, str]] | None = None, call_id: str | None = None) -> str:
        call_id = call_id or f"{self.rng.getrandbits(96):024x}@{self.public_host}"
        tag = new_tag(self.rng)
        req = invite_request(to_uri, self._via(transport), f"<sip:{from_user}@{self.public_host}>"
                             f";tag={tag}", call_id, self.rng.randint(1, 9999),
                             self._contact(from_user, transport), sdp,
                             [("User-Agent", self.user_agent), ("Supported", "100rel"),
                              *(headers or [])])
        call = Call(call_id, "uac", req, transport, tag, dest=dest, auth=auth, local_sdp=sdp)
        self.calls[call_id] = call
        self._send_invite(call, now)
        return call_id

    def _send_invite(self, call: Call, now: float) -> None:
        call.tx = self.layer.send_request(call.invite, call.dest, call.transport, now)
        call.tx.owner = ("invite", call)

    def _retry_auth(self, call: Call, resp: Response, now: float) -> bool:
        user, password = call.auth  # type: ignore[misc]
        req = sip_auth.retry_request(call.invite, resp, self._via(call.transport), user,
                                     password, f"{self.rng.getrandbits(64):x}")
        if req is None:
            return False
        call.invite, call.auth_tries = req, call.auth_tries + 1
        self._send_invite(call, now)
        return True

    def _send_cancel(self, call: Call, now: float) -> None:
        tx = self.layer.send_request(cancel_for(call.invite), call.dest, call.transport, now)
        tx.owner = ("cancel", call)

    def cancel(self, call_id: str, now: float) -> None:
        call = self.calls.get(call_id)
        if call is None or call.role != "uac" or call.state not in ("init", "early"):
            return
        call.canceled = True
        if call.state == "early":
            self._send_cancel(call, now)
        else:
            call.pending_cancel = True
        self._pump(now)

    # --- OPTIONS probe -----------------------------------------------------------
    def options(self, dest: Addr, now: float, *, transport: str = "UDP") -> str:
        key = f"{self.rng.getrandbits(64):016x}"
        req = options_request(dest, self._via(transport), f"{key}@{self.public_host}",
                              f"<sip:ping@{self.public_host}>;tag={new_tag(self.rng)}")
        req.add("User-Agent", self.user_agent)
        tx = self.layer.send_request(req, dest, transport, now)
        tx.owner = ("options", key)
        return key
