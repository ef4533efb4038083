-- idem_finish: end an idempotent request begun by idem_begin, by storing its response or
-- by deleting the record so the client may retry (5xx, dependency down).
-- KEYS[1] record <space>idem:{<scope>:<caller>}:<key>; KEYS[2] the caller's index
-- ARGV[1] owner token given to idem_begin; ARGV[2] mode 'store' | 'abort';
-- ARGV[3] status (or 'too_large': the response was not kept); ARGV[4] body; ARGV[5] TTL ms of the stored response; ARGV[6] member
-- Returns 1 when done, 0 when the record is not this owner's in-flight record any more
-- (its in-flight TTL ran out and another request took the key): nothing is written.
local key, idx, owner, mode, member = KEYS[1], KEYS[2], ARGV[1], ARGV[2], ARGV[6]
local h = redis.call('HMGET', key, 'state', 'owner')
if h[1] ~= 'in_flight' or h[2] ~= owner then return 0 end
if mode == 'abort' then
  redis.call('DEL', key)
  redis.call('ZREM', idx, member)
  return 1
end
local ttl = tonumber(ARGV[5])
if mode ~= 'store' or (tonumber(ARGV[3]) == nil and ARGV[3] ~= 'too_large') or ttl == nil or ttl <= 0 then
  return redis.error_reply('ERR idem_finish: bad arguments')
end
redis.call('HSET', key, 'state', 'done', 'status', ARGV[3], 'body', ARGV[4])
redis.call('HDEL', key, 'owner')
redis.call('PEXPIRE', key, ttl)
local t = redis.call('TIME')
redis.call('ZADD', idx, tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + ttl, member)
if redis.call('PTTL', idx) < ttl then redis.call('PEXPIRE', idx, ttl) end
return 1
