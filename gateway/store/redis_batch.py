"""The one Lua script every data write of ``RedisStore`` runs through (``BATCH``), and the
sub-op encoders that feed it.

Owns: the sub-ops (create, save, route, delete, due clears, DLR map entry), their
argument layout, and how one script call applies many of them.

Why: a group commit used to send one EVAL per message write, each doing its own GET,
SET, ZADD/ZREM and HGET/HSET. Now the consecutive data writes of a pipeline batch go
into one EVAL: message values are read with one MGET and written back with one MSET,
index (zset) changes are merged per key into one ZADD and one ZREM, due tokens into one
HMGET/HSET/HDEL, the ``seq`` counter and the sender depth counters into one read and one
write per key. The result is identical to applying the sub-ops one by one (the script
runs atomically; every read inside it sees the earlier sub-ops' cached writes).

Rules:
- Sub-op semantics are those documented in ``redis_schema`` (final-status guard, at most
  once into a sender stream, due tokens with the message write).
- Each sub-op runs under ``pcall``: a failing one answers ``{"ERR", text}`` (raised as
  ``StoreError`` to its caller) and the others go on, as separate scripts did. Its cached
  writes made before the failure are kept (Redis does not roll back a script either).
  The write-back at the end runs outside ``pcall``: an error there (only a key of the
  wrong type, i.e. foreign data under our prefix) fails every sub-op of the call.
- The script is sent with EVAL (not EVALSHA): after a Redis restart there is no NOSCRIPT
  retry that could reorder it behind later writes of the same pipeline.
"""

from __future__ import annotations

# KEYS: seq pend sent due, then each sub-op's keys.  ARGV: per sub-op: code nkeys nargs args...
# Sub-ops (k = its first key, a = its first arg):
#  C create  KEYS msg acct acct_to acct_from idem [stream depth marker]
#            ARGV sid status pclass blob idem_ttl_ms msg_prefix has_idem due_add route(0/1)
#                 [cap(-1 = unchecked) segments marker_ttl_s write_marker(0/1)]
#            -> {1, seq} | {0, existing value} idempotent repeat | {-2, depth} queue full
#  S save    KEYS msg acct acct_to acct_from  ARGV sid status pclass blob seq due_rm due_add
#            -> seq written, or -seq when refused (stored status final)
#  R route   KEYS msg stream depth marker  ARGV sid segments cap marker_ttl_s
#            -> 1 added | 0 already routed or not pending | -1 queue full
#  X delete  KEYS msg acct acct_to acct_from  ARGV sid -> 1 deleted | 0 missing
#  U due     ARGV sid remove sid remove ... -> 1
#  M map     KEYS dlr  ARGV sid ttl_ms -> 1
BATCH = """
local SEQ, PEND, SENT, DUE = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local FINAL = {delivered=1, undelivered=1, failed=1, canceled=1, received=1}
local PC = {accepted='p', scheduled='p', queued='p', sending='p', sent='s'}
local ROUTABLE = {accepted=1, scheduled=1, queued=1}
local ops, ki, ai = {}, 5, 1
while ai <= #ARGV do
  ops[#ops + 1] = {ARGV[ai], ki, ai + 3}
  ki = ki + tonumber(ARGV[ai + 1]); ai = ai + 3 + tonumber(ARGV[ai + 2])
end

local function run(cmd, key, list, step)
  for i = 1, #list, step do
    local j = math.min(i + step - 1, #list)
    if key then redis.call(cmd, key, unpack(list, i, j))
    else redis.call(cmd, unpack(list, i, j)) end
  end
end

-- message values: prefetched with MGET, written back with MSET / DEL
local val, vorder, vdirty = {}, {}, {}
local function vget(k)
  local v = val[k]
  if v == nil then v = redis.call('GET', k) or false; val[k] = v end
  return v
end
local function vset(k, v)
  val[k] = v
  if not vdirty[k] then vdirty[k] = true; vorder[#vorder + 1] = k end
end
-- due tokens: prefetched with HMGET, written back with HSET / HDEL
local due, dorder, ddirty = {}, {}, {}
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
  if #toks == 0 then return false end
  return ';' .. table.concat(toks, ';')
end
local function due_put(sid, v)
  due[sid] = v
  if not ddirty[sid] then ddirty[sid] = true; dorder[#dorder + 1] = sid end
end
local function due_set(sid, rm, add)
  if rm == '' and add == '' then return end
  local old = due[sid]
  if old == nil then old = redis.call('HGET', DUE, sid) or false end
  due_put(sid, due_apply(old, rm, add))
end
-- zsets: member -> score (false = remove), one ZADD and one ZREM per key at the end
local zs, zorder = {}, {}
local function zset(key, member, score)
  local t = zs[key]
  if not t then t = {}; zs[key] = t; zorder[#zorder + 1] = key end
  t[member] = score
end
-- counters (seq, sender depth): one read and one write per key
local cnt, corder = {}, {}
local function cget(k)
  local c = cnt[k]
  if not c then
    c = {tonumber(redis.call('GET', k) or '0'), 0}; cnt[k] = c; corder[#corder + 1] = k
  end
  return c
end
local function next_seq()
  local c = cget(SEQ); c[2] = c[2] + 1
  return c[1] + c[2]
end
local function parse(v)
  local i = string.find(v, '|', 1, true)
  local j = string.find(v, '|', i + 1, true)
  return string.sub(v, i + 1, j - 1), tonumber(string.sub(v, 1, i - 1))
end
-- recovery sets: leave the old class's set, enter the new one's (nil old = unknown: both)
local function classes(sid, seq, pc, old)
  if old == nil or old == 'p' or pc == 'p' then zset(PEND, sid, pc == 'p' and seq) end
  if old == nil or old == 's' or pc == 's' then zset(SENT, sid, pc == 's' and seq) end
end

local OP = {}
OP.C = function(k, a)
  local sid = ARGV[a]
  if ARGV[a + 6] == '1' then
    local old = redis.call('GET', KEYS[k + 4])
    if old then
      local v = vget(ARGV[a + 5] .. old)
      if v then return {0, v} end
    end
  end
  if vget(KEYS[k]) then return {'ERR', 'message ' .. sid .. ' exists'} end
  local route = ARGV[a + 8] == '1'
  local n = 0
  if route then
    n = tonumber(ARGV[a + 10])
    local c, cap = cget(KEYS[k + 6]), tonumber(ARGV[a + 9])
    if cap >= 0 and c[1] + c[2] + n > cap then return {-2, c[1] + c[2]} end
  end
  local seq = next_seq()
  vset(KEYS[k], string.format('%d|%s|', seq, ARGV[a + 1]) .. ARGV[a + 3])
  for i = 1, 3 do zset(KEYS[k + i], sid, seq) end
  if ARGV[a + 2] == 'p' then zset(PEND, sid, seq)
  elseif ARGV[a + 2] == 's' then zset(SENT, sid, seq) end
  if ARGV[a + 6] == '1' then redis.call('SET', KEYS[k + 4], sid, 'PX', ARGV[a + 4]) end
  due_set(sid, '', ARGV[a + 7])
  if route then
    redis.call('XADD', KEYS[k + 5], '*', 'sid', sid, 'n', ARGV[a + 10])
    local c = cget(KEYS[k + 6]); c[2] = c[2] + n
    if ARGV[a + 12] == '1' then redis.call('SET', KEYS[k + 7], '1', 'EX', ARGV[a + 11]) end
  end
  return {1, seq}
end
OP.S = function(k, a)
  local sid, status, pc = ARGV[a], ARGV[a + 1], ARGV[a + 2]
  local seq = tonumber(ARGV[a + 4])
  local cur = vget(KEYS[k])
  if cur then
    local st, cseq = parse(cur)
    if (FINAL[st] and st ~= status and not (st == 'undelivered' and status == 'delivered'))
        or (st == 'sent' and pc == 'p') then
      due_set(sid, ARGV[a + 5], '')
      return -cseq
    end
    if seq == 0 then seq = cseq end
    vset(KEYS[k], string.format('%d|%s|', seq, status) .. ARGV[a + 3])
    -- existing row: account/To indexes hold it already; From is picked only while
    -- accepted/scheduled (messaging._release), or the seq given may differ
    if st == 'accepted' or st == 'scheduled' or seq ~= cseq then zset(KEYS[k + 3], sid, seq) end
    if (PC[st] or '') ~= pc then classes(sid, seq, pc, PC[st] or '') end
    due_set(sid, ARGV[a + 5], ARGV[a + 6])
    return seq
  end
  if seq == 0 then seq = next_seq() end
  vset(KEYS[k], string.format('%d|%s|', seq, status) .. ARGV[a + 3])
  for i = 1, 3 do zset(KEYS[k + i], sid, seq) end
  classes(sid, seq, pc, nil)
  due_set(sid, ARGV[a + 5], ARGV[a + 6])
  return seq
end
OP.R = function(k, a)
  local v = vget(KEYS[k])
  if not v then return 0 end
  if not ROUTABLE[parse(v)] then return 0 end
  if not redis.call('SET', KEYS[k + 3], '1', 'NX', 'EX', ARGV[a + 3]) then return 0 end
  local n = tonumber(ARGV[a + 1])
  local c, cap = cget(KEYS[k + 2]), tonumber(ARGV[a + 2])
  if cap >= 0 and c[1] + c[2] + n > cap then return -1 end
  redis.call('XADD', KEYS[k + 1], '*', 'sid', ARGV[a], 'n', ARGV[a + 1])
  c[2] = c[2] + n
  return 1
end
OP.X = function(k, a)
  local sid = ARGV[a]
  if not vget(KEYS[k]) then return 0 end
  vset(KEYS[k], false)
  for i = 1, 3 do zset(KEYS[k + i], sid, false) end
  classes(sid, 0, '', nil)
  due_put(sid, false)
  return 1
end
OP.M = function(k, a)
  redis.call('SET', KEYS[k], ARGV[a], 'PX', ARGV[a + 1])
  return 1
end

-- prefetch: every message value, counter and due entry the sub-ops read, one MGET and
-- one HMGET
local mkeys, ckeys, dsids, seen = {}, {}, {}, {}
local function want(list, key)
  if not seen[key] then seen[key] = true; list[#list + 1] = key end
end
for _, op in ipairs(ops) do
  local code, k, a = op[1], op[2], op[3]
  if code == 'C' or code == 'S' or code == 'R' or code == 'X' then want(mkeys, KEYS[k]) end
  if code == 'C' then
    want(ckeys, SEQ)
    if ARGV[a + 8] == '1' then want(ckeys, KEYS[k + 6]) end
  elseif code == 'R' then
    want(ckeys, KEYS[k + 2])
  end
  if code == 'S' and (ARGV[a + 5] ~= '' or ARGV[a + 6] ~= '') then
    dsids[#dsids + 1] = ARGV[a]
  elseif code == 'C' and ARGV[a + 7] ~= '' then
    dsids[#dsids + 1] = ARGV[a]
  elseif code == 'U' then
    for x = a, a + tonumber(ARGV[a - 1]) - 1, 2 do dsids[#dsids + 1] = ARGV[x] end
  end
end
local nm = #mkeys
for _, key in ipairs(ckeys) do mkeys[#mkeys + 1] = key end
for i = 1, #mkeys, 1000 do
  local j = math.min(i + 999, #mkeys)
  local vs = redis.call('MGET', unpack(mkeys, i, j))
  for x = i, j do
    local v = vs[x - i + 1]
    if x <= nm then val[mkeys[x]] = v or false
    else cnt[mkeys[x]] = {tonumber(v or '0'), 0}; corder[#corder + 1] = mkeys[x] end
  end
end
for i = 1, #dsids, 1000 do
  local j = math.min(i + 999, #dsids)
  local vs = redis.call('HMGET', DUE, unpack(dsids, i, j))
  for x = i, j do
    if due[dsids[x]] == nil then due[dsids[x]] = vs[x - i + 1] or false end
  end
end

local out = {}
for i, op in ipairs(ops) do
  local code, k, a = op[1], op[2], op[3]
  local ok, r
  if code == 'U' then
    local na = tonumber(ARGV[a - 1])
    ok, r = pcall(function()
      for x = a, a + na - 1, 2 do due_set(ARGV[x], ARGV[x + 1], '') end
      return 1
    end)
  else
    ok, r = pcall(OP[code], k, a)
  end
  if not ok then
    if type(r) == 'table' then r = r.err end
    r = {'ERR', tostring(r)}
  end
  out[i] = r
end

-- write back
local sets, dels = {}, {}
for _, k in ipairs(vorder) do
  local v = val[k]
  if v then sets[#sets + 1] = k; sets[#sets + 1] = v else dels[#dels + 1] = k end
end
run('MSET', nil, sets, 1000)
run('DEL', nil, dels, 1000)
for _, key in ipairs(zorder) do
  local add, rem = {}, {}
  for member, score in pairs(zs[key]) do
    if score then add[#add + 1] = score; add[#add + 1] = member
    else rem[#rem + 1] = member end
  end
  run('ZADD', key, add, 1000)
  run('ZREM', key, rem, 1000)
end
local hset, hdel = {}, {}
for _, sid in ipairs(dorder) do
  local v = due[sid]
  if v then hset[#hset + 1] = sid; hset[#hset + 1] = v else hdel[#hdel + 1] = sid end
end
run('HSET', DUE, hset, 1000)
run('HDEL', DUE, hdel, 1000)
for _, k in ipairs(corder) do
  local c = cnt[k]
  if c[2] ~= 0 then redis.call('INCRBY', k, c[2]) end
end
return out
"""

#: sub-ops per EVAL (bounds the time one script holds the server)
MAX_SUBOPS = 500


def encode(subs: list[tuple[str, list, list]], head: list) -> tuple[list, list]:
    """KEYS and ARGV of one ``BATCH`` call for ``subs`` = [(code, keys, args)];
    ``head`` = [seq, pend, sent, due] keys."""
    keys = list(head)
    args: list = []
    for code, k, a in subs:
        keys += k
        args += (code, len(k), len(a))
        args += a
    return keys, args
