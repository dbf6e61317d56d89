"""Redis key layout and the Message <-> value codec of ``RedisStore``.

Owns: every key name (all under one prefix, default ``gw:``), how a message is encoded,
and the rules the server-side writes (``redis_batch.BATCH``) keep.

Keys (``P`` = prefix):
- ``P seq``                      INCR counter: ``Message.seq``
- ``P m:<sid>``                  string ``"<seq>|<status>|<msgpack map>"``; the map holds
                                 every field except seq/status that differs from its default
- ``P a:<account>``              zset sid by seq (list); ``P at:<acct>:<to>``,
                                 ``P af:<acct>:<from>`` the To/From filters
- ``P pend`` / ``P sent``        zsets sid by seq: not yet handed to a carrier / waiting for
                                 a DLR (``pending_messages``, ``unfinished_sent``)
- ``P i:<account>:<key>``        idempotency key -> sid, PX ``IDEMPOTENCY_TTL``
- ``P d:<carrier>:<id>``         DLR map -> sid, PX ``DLR_TTL``
- ``P kv:<ns>``                  hash key -> JSON
- ``P due``                      hash sid -> due tokens (``gateway.store.due``), written
                                 with the message by the create/save sub-ops

Rules:
- A create (message + indexes + idempotency key + seq) is one sub-op of one script
  call: atomic.
- A save never moves a message out of a final status (except undelivered -> delivered,
  and a rewrite with the same status, e.g. redaction), nor from ``sent`` back to a
  pending one: with several gateways a DLR applied on one must not be undone by a late
  ``sent`` save from another, nor a send by a late ``queued`` save (scheduled/accepted
  promoted on another gateway).
- Cluster sender streams (``P c:q:<from>``, owned by ``runtime.cluster``): a message
  enters one at most once, together with the per-sender counter of queued segments
  ``P c:n:<from>`` that the 21611 check reads (create/route sub-ops). The marker
  ``P c:r:<sid>`` makes a route happen once: written by a route, and by a create only
  when a route may follow (``StreamRoute.mark``: accepted, not queued messages).
"""

from __future__ import annotations

import msgpack

from gateway.core import message as M
from gateway.core.message import Message, field_defaults

_SKIP = ("seq", "status", "due")
_DEFAULTS = field_defaults(_SKIP)
_FIELDS = tuple(_DEFAULTS.items())
_pack = msgpack.Packer(use_bin_type=True).pack

PENDING = frozenset({M.ACCEPTED, M.SCHEDULED, M.QUEUED, M.SENDING})


def pclass(status: str) -> str:
    """Which recovery set a status belongs to: ``p`` pending, ``s`` sent, ``""`` none."""
    return "p" if status in PENDING else "s" if status == M.SENT else ""


def blob_of(msg: Message) -> bytes:
    out = {}
    for name, default in _FIELDS:
        value = getattr(msg, name)
        if value != default:
            out[name] = value
    return _pack(out)


def msg_of(value: bytes) -> Message:
    """Decode a stored ``"<seq>|<status>|<map>"`` value."""
    i = value.index(b"|")
    j = value.index(b"|", i + 1)
    fields = msgpack.unpackb(value[j + 1:], raw=False)
    kwargs = {k: v for k, v in fields.items() if k in _DEFAULTS}
    return Message(seq=int(value[:i]), status=value[i + 1:j].decode(), **kwargs)


class Keys:
    def __init__(self, prefix: str) -> None:
        self.p = prefix
        self.seq = prefix + "seq"
        self.pend = prefix + "pend"
        self.sent = prefix + "sent"
        self.ping = prefix + "ping"
        self.due = prefix + "due"
        self.msg_prefix = prefix + "m:"

    def msg(self, sid: str) -> str:
        return self.msg_prefix + sid

    def acct(self, account: str) -> str:
        return f"{self.p}a:{account}"

    def acct_to(self, account: str, to: str) -> str:
        return f"{self.p}at:{account}:{to}"

    def acct_from(self, account: str, from_: str) -> str:
        return f"{self.p}af:{account}:{from_}"

    def idem(self, account: str, key: str) -> str:
        return f"{self.p}i:{account}:{key}"

    def dlr(self, carrier: str, cmid: str) -> str:
        return f"{self.p}d:{carrier}:{cmid}"

    def kv(self, ns: str) -> str:
        return f"{self.p}kv:{ns}"

    def msg_keys(self, msg: Message) -> list[str]:
        """The first keys of the create, save and delete sub-ops (``redis_batch``)."""
        return [self.msg(msg.sid), self.acct(msg.account_sid),
                self.acct_to(msg.account_sid, msg.to),
                self.acct_from(msg.account_sid, msg.from_)]
