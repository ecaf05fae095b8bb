"""The Redis backend's scripts: each operation is one atomic Lua script.

Only commands Redis 7 and Valkey both have (strings, sets, lists, sorted sets,
PUBLISH, TIME, cjson).  Keys are built from the prefix in ``ARGV[1]``, so the
scripts suit one primary (with replicas or Sentinel), not Redis Cluster.
Time is the engine's ``TIME``: every process shares one clock.

Keys (``P`` = prefix): ``owner:<peer>`` connection id, ``ident:<peer>`` identity
JSON, ``deadlines`` zset peer → ms, ``room:<room>`` set of peers,
``rooms:<peer>`` set of rooms (the index per peer), ``roomset``, ``seq``,
``recent:<peer>`` zset room → ms it was left (kept ``RECENT_KEEP``);
queues: ``q:<peer>`` list of entry ids per receiver, ``qs:<sender>`` per sender,
``qe:<id>`` hash, ``qexp`` zset id → ms, ``qbs`` zset sender → queued bytes,
``qbytes`` and ``qn`` totals.  Channels: ``ch:<peer>`` (its frames; PUBLISH's count
says whether it is connected) and ``proc:<server>``.  The queue's bounds are
:class:`~volli_nb.net.signaling.backend.Limits`'.
"""

from __future__ import annotations

from volli_nb.net.signaling.backend import RECENT_KEEP

LIBRARY = (
    f"local RECENT_KEEP_MS = {int(RECENT_KEEP * 1000)}\n"
    + """
local P = ARGV[1]
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function publish(peer, msg) return redis.call('PUBLISH', P .. 'ch:' .. peer, msg) end
local function drop_entry(id)
  local key = P .. 'qe:' .. id
  local e = redis.call('HMGET', key, 'to', 'from', 'bytes')
  redis.call('ZREM', P .. 'qexp', id)
  if not e[1] then return end
  redis.call('DEL', key)
  redis.call('LREM', P .. 'q:' .. e[1], 1, id)
  redis.call('LREM', P .. 'qs:' .. e[2], 1, id)
  local size = tonumber(e[3])
  if tonumber(redis.call('ZINCRBY', P .. 'qbs', -size, e[2])) <= 0 then
    redis.call('ZREM', P .. 'qbs', e[2])
  end
  redis.call('DECRBY', P .. 'qbytes', size)
  redis.call('DECR', P .. 'qn')
end
local function expire_queue(now, limit)
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', P .. 'qexp', '-inf', now, 'LIMIT', 0, limit)) do
    drop_entry(id)
  end
end
local function share_room(a, b)
  return #redis.call('SINTER', P .. 'rooms:' .. a, P .. 'rooms:' .. b) > 0
end
local function left_recently(peer, sender, since)
  local key, after = P .. 'recent:' .. peer, string.format('(%d', since)
  local rooms = redis.call('ZRANGEBYSCORE', key, after, '+inf')
  for _, room in ipairs(rooms) do
    if redis.call('SISMEMBER', P .. 'rooms:' .. sender, room) == 1 then return true end
  end
  return false
end
local function leave(room, peer)
  local rkey = P .. 'room:' .. room
  if redis.call('SREM', rkey, peer) == 0 then return 0 end
  redis.call('SREM', P .. 'rooms:' .. peer, room)
  local recent, now = P .. 'recent:' .. peer, now_ms()
  redis.call('ZADD', recent, now, room)
  redis.call('ZREMRANGEBYSCORE', recent, '-inf', now - RECENT_KEEP_MS)
  redis.call('PEXPIRE', recent, RECENT_KEEP_MS)
  local seq = redis.call('INCR', P .. 'seq')
  local left = redis.call('SMEMBERS', rkey)
  if #left == 0 then redis.call('SREM', P .. 'roomset', room) end
  local msg = cjson.encode({k = 'leave', room = room, seq = seq, peer_id = peer})
  for _, m in ipairs(left) do publish(m, msg) end
  return 1
end
local function forget(peer)
  for _, room in ipairs(redis.call('SMEMBERS', P .. 'rooms:' .. peer)) do leave(room, peer) end
  redis.call('DEL', P .. 'owner:' .. peer, P .. 'ident:' .. peer, P .. 'rooms:' .. peer)
  redis.call('ZREM', P .. 'deadlines', peer)
end
local function take(peer, room)
  local out = {}
  local qkey = P .. 'q:' .. peer
  for _, id in ipairs(redis.call('LRANGE', qkey, 0, -1)) do
    local e = redis.call('HMGET', P .. 'qe:' .. id, 'from', 'frame')
    if not e[1] then
      redis.call('LREM', qkey, 1, id)
    else
      local ok
      if room ~= '' then ok = redis.call('SISMEMBER', P .. 'room:' .. room, e[1]) == 1
      else ok = share_room(peer, e[1]) end
      if ok then
        out[#out + 1] = e[2]
        drop_entry(id)
      end
    end
  end
  return out
end
"""
)

# ARGV: prefix, peer, conn, identity JSON, presence ttl ms, reclaim (1/0)
CLAIM = """
local okey = P .. 'owner:' .. ARGV[2]
local old = redis.call('GET', okey)
if ARGV[6] == '1' and old and old ~= ARGV[3] then return 0 end
redis.call('SET', okey, ARGV[3])
redis.call('SET', P .. 'ident:' .. ARGV[2], ARGV[4])
redis.call('ZADD', P .. 'deadlines', now_ms() + tonumber(ARGV[5]), ARGV[2])
if old and old ~= ARGV[3] then publish(ARGV[2], cjson.encode({k = 'replaced', conn = old})) end
return 1
"""

# ARGV: prefix, peer, conn
RELEASE = """
if redis.call('GET', P .. 'owner:' .. ARGV[2]) ~= ARGV[3] then return 0 end
forget(ARGV[2])
return 1
"""

# ARGV: prefix, room, peer, max room size, max rooms per peer
JOIN = """
local room, peer = ARGV[2], ARGV[3]
local rkey = P .. 'room:' .. room
local ident = redis.call('GET', P .. 'ident:' .. peer)
if not ident then return {'gone'} end
local seq
if redis.call('SISMEMBER', rkey, peer) == 0 then
  if redis.call('SCARD', rkey) >= tonumber(ARGV[4]) then return {'room-full'} end
  if redis.call('SCARD', P .. 'rooms:' .. peer) >= tonumber(ARGV[5]) then
    return {'too-many-rooms'}
  end
  seq = redis.call('INCR', P .. 'seq')
  local msg = cjson.encode({k = 'join', room = room, seq = seq, ident = ident})
  for _, m in ipairs(redis.call('SMEMBERS', rkey)) do publish(m, msg) end
  redis.call('SADD', rkey, peer)
  redis.call('SADD', P .. 'rooms:' .. peer, room)
  redis.call('SADD', P .. 'roomset', room)
else
  seq = tonumber(redis.call('GET', P .. 'seq') or '0')
end
local idents = {}
for _, m in ipairs(redis.call('SMEMBERS', rkey)) do
  if m ~= peer then idents[#idents + 1] = redis.call('GET', P .. 'ident:' .. m) or '' end
end
expire_queue(now_ms(), 100)
return {'ok', tostring(seq), idents, take(peer, room)}
"""

# ARGV: prefix, room, peer
LEAVE = """
return leave(ARGV[2], ARGV[3])
"""

# ARGV: prefix, room, peer
MEMBERS = """
local rkey = P .. 'room:' .. ARGV[2]
if redis.call('SISMEMBER', rkey, ARGV[3]) == 0 then return {0, {}} end
return {1, redis.call('SMEMBERS', rkey)}
"""

# ARGV: prefix, sender, to, frame JSON, queue ttl ms, max queue, max per sender (bytes),
# max total (bytes), max per pair (frames), recent ttl ms
RELAY = """
local sender, to, frame = ARGV[2], ARGV[3], ARGV[4]
local now = now_ms()
expire_queue(now, 100)
if redis.call('EXISTS', P .. 'owner:' .. to) == 1 then
  if not share_room(sender, to) then return 'not-in-room' end
  if publish(to, cjson.encode({k = 'sig', frame = frame})) > 0 then return 'sent' end
elseif not share_room(sender, to) and not left_recently(to, sender, now - tonumber(ARGV[10])) then
  return 'stranger'
end
local size = #frame
if tonumber(redis.call('ZSCORE', P .. 'qbs', sender) or '0') + size > tonumber(ARGV[7]) then
  return 'sender-full'
end
local qkey = P .. 'q:' .. to
local ids, from, counts = redis.call('LRANGE', qkey, 0, -1), {}, {}
for i, id in ipairs(ids) do
  from[i] = redis.call('HGET', P .. 'qe:' .. id, 'from') or ''
  counts[from[i]] = (counts[from[i]] or 0) + 1
end
local function oldest_of(who)
  for i, id in ipairs(ids) do if from[i] == who then return id end end
end
if (counts[sender] or 0) >= tonumber(ARGV[9]) then
  drop_entry(oldest_of(sender))
elseif #ids >= tonumber(ARGV[6]) then  -- the sender holding most of the queue pays
  local biggest, most = sender, counts[sender] or 0
  for i = 1, #ids do
    if counts[from[i]] > most then biggest, most = from[i], counts[from[i]] end
  end
  drop_entry(oldest_of(biggest))
end
while tonumber(redis.call('GET', P .. 'qbytes') or '0') + size > tonumber(ARGV[8]) do
  local top = redis.call('ZREVRANGE', P .. 'qbs', 0, 0)
  local victim = top[1] and redis.call('LINDEX', P .. 'qs:' .. top[1], 0)
  if not victim then return 'full' end
  drop_entry(victim)
end
local id = tostring(redis.call('INCR', P .. 'qid'))
redis.call('HSET', P .. 'qe:' .. id, 'to', to, 'from', sender, 'bytes', size, 'frame', frame)
redis.call('RPUSH', qkey, id)
redis.call('RPUSH', P .. 'qs:' .. sender, id)
redis.call('ZADD', P .. 'qexp', now + tonumber(ARGV[5]), id)
redis.call('ZINCRBY', P .. 'qbs', size, sender)
redis.call('INCRBY', P .. 'qbytes', size)
redis.call('INCR', P .. 'qn')
return 'queued'
"""

# ARGV: prefix, peer
DRAIN = """
expire_queue(now_ms(), 100)
return take(ARGV[2], '')
"""

# ARGV: prefix, presence ttl ms, then peer, conn, peer, conn, ...
HEARTBEAT = """
local now, ttl = now_ms(), tonumber(ARGV[2])
local missing, replaced = {}, {}
for i = 3, #ARGV, 2 do
  local owner = redis.call('GET', P .. 'owner:' .. ARGV[i])
  if owner == ARGV[i + 1] then
    redis.call('ZADD', P .. 'deadlines', now + ttl, ARGV[i])
  elseif owner then
    replaced[#replaced + 1] = ARGV[i]
  else
    missing[#missing + 1] = ARGV[i]
  end
end
return {missing, replaced}
"""

# ARGV: prefix, how many expired peers to forget at most
SWEEP = """
local now = now_ms()
expire_queue(now, 1000)
local limit = tonumber(ARGV[2])
local dead = redis.call('ZRANGEBYSCORE', P .. 'deadlines', '-inf', now, 'LIMIT', 0, limit)
for _, peer in ipairs(dead) do forget(peer) end
return #dead
"""
