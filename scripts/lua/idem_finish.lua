-- idem_finish: end an idempotent request begun by idem_begin, by storing its response or
-- by deleting the record so the client may retry (5xx, dependency down).
-- KEYS[1] record <space>idem:{<scope>:<caller>:<key>}
-- ARGV[1] owner token given to idem_begin; ARGV[2] mode 'store' | 'abort';
-- ARGV[3] status; ARGV[4] body; ARGV[5] TTL ms of the stored response
-- Returns 1 when done, 0 when the record is not this owner's in-flight record any more
-- (its in-flight TTL ran out and another request took the key): nothing is written.
local key, owner, mode = KEYS[1], ARGV[1], ARGV[2]
local h = redis.call('HMGET', key, 'state', 'owner')
if h[1] ~= 'in_flight' or h[2] ~= owner then return 0 end
if mode == 'abort' then
  redis.call('DEL', key)
  return 1
end
local ttl = tonumber(ARGV[5])
if mode ~= 'store' or tonumber(ARGV[3]) == nil or ttl == nil or ttl <= 0 then
  return redis.error_reply('ERR idem_finish: bad arguments')
end
redis.call('HSET', key, 'state', 'done', 'status', ARGV[3], 'body', ARGV[4])
redis.call('HDEL', key, 'owner')
redis.call('PEXPIRE', key, ttl)
return 1
