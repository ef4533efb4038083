-- idem_finish: end an idempotent request begun by idem_begin, by storing its response or
-- by deleting the record so the client may retry (5xx, dependency down).
-- KEYS[1] record <space>idem:{<scope>:<caller>}:<key>; KEYS[2] the caller's index
-- ARGV[1] owner token given to idem_begin; ARGV[2] mode 'store' | 'abort';
-- ARGV[3] status (or 'too_large': the response was not kept); ARGV[4] body;
-- ARGV[5] TTL ms of the stored response; ARGV[6] member
-- (ARGV[3..5] are ignored in abort mode.)
-- Returns {'OK'} when done, {'NOT_OWNER'} when the record is not this owner's in-flight
-- record any more (its in-flight TTL ran out and another request took the key): nothing
-- is written.
local key, idx = KEYS[1], KEYS[2]
local owner, mode, member = arg_str(ARGV[1], 'owner'), ARGV[2], arg_str(ARGV[6], 'member')
local ttl = 0
if mode == 'store' then
  if ARGV[3] ~= 'too_large' then arg_int(ARGV[3], 100, 'status') end
  if ARGV[4] == nil then bad_arg('body') end
  ttl = arg_int(ARGV[5], 1, 'ttl')
elseif mode ~= 'abort' then
  bad_arg('mode')
end
local h = redis.call('HMGET', key, 'state', 'owner')
if h[1] ~= 'in_flight' or h[2] ~= owner then return {'NOT_OWNER'} end
if mode == 'abort' then
  redis.call('DEL', key)
  redis.call('ZREM', idx, member)
  return {'OK'}
end
redis.call('HSET', key, 'state', 'done', 'status', ARGV[3], 'body', ARGV[4])
redis.call('HDEL', key, 'owner')
redis.call('PEXPIRE', key, ttl)
redis.call('ZADD', idx, now_ms() + ttl, member)
if redis.call('PTTL', idx) < ttl then redis.call('PEXPIRE', idx, ttl) end
return {'OK'}
