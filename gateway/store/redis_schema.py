"""Redis key layout, the Message <-> value codec and the Lua scripts of ``RedisStore``.

Owns: every key name (all under one prefix, default ``gw:``), how a message is encoded,
and the server-side scripts that keep a message and its indexes consistent.

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
                                 by the create/save scripts with the message; ``DUE`` clears

Rules:
- A create (message + indexes + idempotency key + seq) is one script: atomic.
- A save never moves a message out of a final status (except undelivered -> delivered,
  and a rewrite with the same status, e.g. redaction), nor from ``sent`` back to a
  pending one: with several gateways a DLR applied on one must not be undone by a late
  ``sent`` save from another, nor a send by a late ``queued`` save (scheduled/accepted
  promoted on another gateway).
- Cluster sender streams (``P c:q:<from>``, owned by ``runtime.cluster``): a message
  enters one at most once (marker ``P c:r:<sid>``), together with the per-sender counter
  of queued segments ``P c:n:<from>`` that the 21611 check reads (``CREATE``/``ROUTE``).
"""

from __future__ import annotations

import dataclasses

import msgpack

from gateway.core import message as M
from gateway.core.message import Message

_SKIP = ("seq", "status", "due")
_DEFAULTS: dict[str, object] = {}
for _f in dataclasses.fields(Message):
    if _f.name in _SKIP:
        continue
    if _f.default is not dataclasses.MISSING:
        _DEFAULTS[_f.name] = _f.default
    elif _f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        _DEFAULTS[_f.name] = _f.default_factory()  # type: ignore[misc]
    else:
        _DEFAULTS[_f.name] = dataclasses.MISSING          # required: always stored
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
        """KEYS[2..] shared by the create and save scripts."""
        return [self.msg(msg.sid), self.seq, self.acct(msg.account_sid),
                self.acct_to(msg.account_sid, msg.to),
                self.acct_from(msg.account_sid, msg.from_), self.pend, self.sent]


_DUE = """
local function due_apply(old, rm, add)
  local toks, seen, gone = {}, {}, {}
  for t in string.gmatch(rm, '[^;]+') do gone[t] = true end
  if old then
    for t in string.gmatch(old, '[^;]+') do
      if not gone[t] and not seen[t] then toks[#toks + 1] = t; seen[t] = true end
    end
  end
  for t in string.gmatch(add, '[^;]+') do
    if not seen[t] then toks[#toks + 1] = t; seen[t] = true end
  end
  if #toks == 0 then return nil end
  return ';' .. table.concat(toks, ';')
end
local function due_set(key, sid, rm, add)
  if rm == '' and add == '' then return end
  local v = due_apply(redis.call('HGET', key, sid), rm, add)
  if v then redis.call('HSET', key, sid, v) else redis.call('HDEL', key, sid) end
end
"""

_INDEX = """
local function index(seq, sid, pc)
  redis.call('ZADD', KEYS[3], seq, sid)
  redis.call('ZADD', KEYS[4], seq, sid)
  redis.call('ZADD', KEYS[5], seq, sid)
  if pc == 'p' then
    redis.call('ZADD', KEYS[6], seq, sid); redis.call('ZREM', KEYS[7], sid)
  elseif pc == 's' then
    redis.call('ZREM', KEYS[6], sid); redis.call('ZADD', KEYS[7], seq, sid)
  else
    redis.call('ZREM', KEYS[6], sid); redis.call('ZREM', KEYS[7], sid)
  end
end
"""

# KEYS: msg seq acct acct_to acct_from pend sent idem due [stream depth marker]
# ARGV: sid status pclass blob idem_ttl_ms msg_prefix has_idem(0/1) due_add route(0/1)
#       [cap(-1 = unchecked) segments marker_ttl_s]
# -> {1, seq} created | {0, existing value} idempotent repeat | {-2, depth} queue full
# route=1 (cluster): the message also enters its sender stream (XADD sid n) with the
# cluster-wide queued-segment counter and its "routed" marker, all or nothing.
CREATE = _DUE + _INDEX + """
if ARGV[7] == '1' then
  local old = redis.call('GET', KEYS[8])
  if old then
    local v = redis.call('GET', ARGV[6] .. old)
    if v then return {0, v} end
  end
end
if redis.call('EXISTS', KEYS[1]) == 1 then
  return redis.error_reply('ERR message ' .. ARGV[1] .. ' exists')
end
if ARGV[9] == '1' then
  local depth = tonumber(redis.call('GET', KEYS[11]) or '0')
  local cap = tonumber(ARGV[10])
  if cap >= 0 and depth + tonumber(ARGV[11]) > cap then return {-2, depth} end
end
local seq = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], string.format('%d|%s|', seq, ARGV[2]) .. ARGV[4])
index(seq, ARGV[1], ARGV[3])
if ARGV[7] == '1' then redis.call('SET', KEYS[8], ARGV[1], 'PX', ARGV[5]) end
due_set(KEYS[9], ARGV[1], '', ARGV[8])
if ARGV[9] == '1' then
  redis.call('XADD', KEYS[10], '*', 'sid', ARGV[1], 'n', ARGV[11])
  redis.call('INCRBY', KEYS[11], ARGV[11])
  redis.call('SET', KEYS[12], '1', 'EX', ARGV[12])
end
return {1, seq}
"""

# KEYS: msg stream depth marker   ARGV: sid segments cap(-1 = unchecked) marker_ttl_s
# -> 1 added | 0 already routed or no longer pending | -1 queue full
# A stored message enters its sender stream at most once (scheduled/accepted ones are
# routed by whichever gateway gets there first; the rest find the marker).
ROUTE = """
local v = redis.call('GET', KEYS[1])
if not v then return 0 end
local i = string.find(v, '|', 1, true)
local j = string.find(v, '|', i + 1, true)
local st = string.sub(v, i + 1, j - 1)
if st ~= 'accepted' and st ~= 'scheduled' and st ~= 'queued' then return 0 end
if not redis.call('SET', KEYS[4], '1', 'NX', 'EX', ARGV[4]) then return 0 end
local depth = tonumber(redis.call('GET', KEYS[3]) or '0')
local cap = tonumber(ARGV[3])
if cap >= 0 and depth + tonumber(ARGV[2]) > cap then return -1 end
redis.call('XADD', KEYS[2], '*', 'sid', ARGV[1], 'n', ARGV[2])
redis.call('INCRBY', KEYS[3], ARGV[2])
return 1
"""

# KEYS: msg seq acct acct_to acct_from pend sent due
# ARGV: sid status pclass blob seq(0 = keep/allocate) due_remove due_add
# -> seq written, or -seq when refused (stored status is final); due_remove applies
# either way, due_add only with the write
SAVE = _DUE + _INDEX + """
local FINAL = {delivered=1, undelivered=1, failed=1, canceled=1, received=1}
local PEND = {accepted='p', scheduled='p', queued='p', sending='p', sent='s'}
local seq = tonumber(ARGV[5])
local cur = redis.call('GET', KEYS[1])
if cur then
  local i = string.find(cur, '|', 1, true)
  local j = string.find(cur, '|', i + 1, true)
  local st = string.sub(cur, i + 1, j - 1)
  local cseq = tonumber(string.sub(cur, 1, i - 1))
  if (FINAL[st] and st ~= ARGV[2] and not (st == 'undelivered' and ARGV[2] == 'delivered'))
      or (st == 'sent' and ARGV[3] == 'p') then
    due_set(KEYS[8], ARGV[1], ARGV[6], '')
    return -cseq
  end
  if seq == 0 then seq = cseq end
  redis.call('SET', KEYS[1], string.format('%d|%s|', seq, ARGV[2]) .. ARGV[4])
  -- existing row: account/To indexes hold it already; From may have been picked now
  redis.call('ZADD', KEYS[5], seq, ARGV[1])
  if (PEND[st] or '') ~= ARGV[3] then
    if ARGV[3] == 'p' then redis.call('ZADD', KEYS[6], seq, ARGV[1]) else redis.call('ZREM', KEYS[6], ARGV[1]) end
    if ARGV[3] == 's' then redis.call('ZADD', KEYS[7], seq, ARGV[1]) else redis.call('ZREM', KEYS[7], ARGV[1]) end
  end
  due_set(KEYS[8], ARGV[1], ARGV[6], ARGV[7])
  return seq
end
if seq == 0 then seq = redis.call('INCR', KEYS[2]) end
redis.call('SET', KEYS[1], string.format('%d|%s|', seq, ARGV[2]) .. ARGV[4])
index(seq, ARGV[1], ARGV[3])
due_set(KEYS[8], ARGV[1], ARGV[6], ARGV[7])
return seq
"""

# KEYS: msg acct acct_to acct_from pend sent due -> 1 deleted, 0 missing
DELETE = """
if redis.call('DEL', KEYS[1]) == 0 then return 0 end
for i = 2, 6 do redis.call('ZREM', KEYS[i], ARGV[1]) end
redis.call('HDEL', KEYS[7], ARGV[1])
return 1
"""

# KEYS: due   ARGV: sid, remove, sid, remove, ... (buffered clears, one script per flush)
DUE = _DUE + """
for i = 1, #ARGV, 2 do due_set(KEYS[1], ARGV[i], ARGV[i + 1], '') end
return 1
"""

SCRIPTS = ("CREATE", "SAVE", "DELETE", "ROUTE", "DUE")
