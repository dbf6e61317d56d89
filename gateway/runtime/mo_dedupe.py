"""An MO stored but not known acknowledged is not stored twice when the carrier sends it
again (after our crash, or after the link dropped before its deliver_sm_resp went out).

Owns: the dedupe key of a single-part deliver_sm, the set of stored-but-unacked MOs, and
their ``mo:<key>`` due tokens (``gateway.store.due``).

Rules:
- ``Inbound.handle`` stores a single-part MO with the due token ``mo:<key>`` in the
  same write as the message. Once its deliver_sm_resp was handed to the link
  (``answered(ok=True)``) the token is cleared lazily (buffered; written with the next
  due flush, ``callback_outbox``), never with a write of its own.
- Unacked = the token is still due at start (``restore``, stored within ``WINDOW_S``),
  or the resp could not be sent (``answered(ok=False)``: the link is gone, the carrier
  will resend). An identical deliver_sm (same carrier, source, destination, data
  coding, UDHI and payload bytes incl. UDH / message_payload / SAR TLVs) within
  ``WINDOW_S`` of the stored one is answered ESME_ROK and not stored or webhooked
  again (``take``), counted in ``gateway_mo_duplicates_total``; each stored MO absorbs
  one resend at most. A repeat of an MO that was acknowledged ("YES" twice) is a new
  message.
- Multipart MOs are not handled here: their parts and idempotency key do it.
- Entries older than ``WINDOW_S`` are forgotten and their tokens cleared (``expire``).

Gap (accepted): the token is cleared a tick after the resp was *queued*, not after the
carrier read it; a resp lost after that is a duplicate MO, as before.
"""

from __future__ import annotations

import hashlib
from collections import deque

from gateway import codec
from gateway.store.due import MO_PREFIX

WINDOW_S = 600.0

_SAR = (codec.Tlv.SAR_MSG_REF_NUM, codec.Tlv.SAR_TOTAL_SEGMENTS, codec.Tlv.SAR_SEGMENT_SEQNUM)


def mo_key(carrier: str, src: str, dst: str, pdu) -> str:
    """Hex digest over what makes two deliver_sm the same MO."""
    h = hashlib.blake2b(digest_size=12)
    h.update(f"{carrier}\x1f{src}\x1f{dst}\x1f{pdu.data_coding}\x1f{pdu.esm_class & 0x40}"
             .encode())
    h.update(b"\x1f" + bytes(pdu.short_message or b""))
    tlvs = pdu.tlvs or {}
    for tag in (codec.Tlv.MESSAGE_PAYLOAD, *_SAR):
        value = tlvs.get(tag)
        if value is not None:
            h.update(b"\x1f%d=" % tag + (value if isinstance(value, bytes) else str(value).encode()))
    return h.hexdigest()


class MoDedupe:
    def __init__(self, store, window: float = WINDOW_S) -> None:
        self.store = store
        self.window = window
        self._unacked: dict[str, deque[tuple[str, float]]] = {}   # key -> (sid, stored at)
        self.absorbed = 0

    def __len__(self) -> int:
        return sum(len(q) for q in self._unacked.values())

    def _add(self, key: str, sid: str, at: float) -> None:
        self._unacked.setdefault(key, deque()).append((sid, at))

    def restore(self, due, now: float) -> int:
        """Take the ``mo:`` tokens of ``store.messages_due()``; returns how many are kept."""
        n = 0
        for msg, tokens in due:
            for tok in tokens:
                if not tok.startswith(MO_PREFIX):
                    continue
                if msg.date_created >= now - self.window:
                    self._add(tok[len(MO_PREFIX):], msg.sid, msg.date_created)
                    n += 1
                else:
                    self.store.clear_due_nowait(msg.sid, tok)
        return n

    def take(self, key: str, now: float) -> str | None:
        """The sid of a stored, unacked MO this deliver_sm repeats (it is acked now)."""
        q = self._unacked.get(key)
        while q:
            sid, at = q.popleft()
            if not q:
                del self._unacked[key]
            self.store.clear_due_nowait(sid, MO_PREFIX + key)
            if at >= now - self.window:
                self.absorbed += 1
                return sid
        return None

    def answered(self, sid: str, key: str, ok: bool, now: float) -> None:
        """The deliver_sm_resp of a stored MO was queued (``ok``) or could not be sent."""
        if ok:
            self.store.clear_due_nowait(sid, MO_PREFIX + key)
        else:
            self._add(key, sid, now)

    def expire(self, now: float) -> None:
        limit = now - self.window
        for key in [k for k, q in self._unacked.items() if q[0][1] < limit]:
            q = self._unacked[key]
            while q and q[0][1] < limit:
                sid, _ = q.popleft()
                self.store.clear_due_nowait(sid, MO_PREFIX + key)
            if not q:
                del self._unacked[key]
