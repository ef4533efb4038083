-- idem_begin: start an idempotent request, or find how an earlier one with the same key
-- ended (Stripe semantics).
-- KEYS[1] record <space>idem:{<scope>:<caller>}:<key> HASH: state ('in_flight'|'done'),
--         fp (fingerprint of the request), owner (token of the in-flight request),
--         started (ms), status, body
-- KEYS[2] the caller's index <space>idem:{<scope>:<caller>} ZSET: member <key>, score the
--         time (ms) its record expires; it counts the caller's live keys
-- ARGV[1] fingerprint; ARGV[2] owner token; ARGV[3] in-flight TTL ms; ARGV[4] member
-- (<key>); ARGV[5] most live keys of one caller; ARGV[6] replay TTL ms
-- Returns, writing only on BEGIN:
--   {'BEGIN'}           no record: one is stored as in_flight with ARGV[3] TTL
--   {'IN_FLIGHT'}       the first request with this key is still running
--   {'MISMATCH'}        the key was used with another request (different fingerprint)
--   {'DONE', status, body} the stored response of the first request
--   {'LIMIT'}           the caller already has ARGV[5] live keys: nothing is written
local key, idx = KEYS[1], KEYS[2]
local fp, owner = arg_str(ARGV[1], 'fingerprint'), arg_str(ARGV[2], 'owner')
local ttl, member = arg_int(ARGV[3], 1, 'ttl'), arg_str(ARGV[4], 'member')
local maxKeys, replayTTL = arg_int(ARGV[5], 1, 'max keys'), arg_int(ARGV[6], 1, 'replay ttl')
local h = redis.call('HMGET', key, 'state', 'fp', 'status', 'body')
if not h[1] then
  local now = now_ms()
  redis.call('ZREMRANGEBYSCORE', idx, '-inf', now)
  if redis.call('ZCARD', idx) >= maxKeys then return {'LIMIT'} end
  redis.call('HSET', key, 'state', 'in_flight', 'fp', fp, 'owner', owner, 'started', now)
  redis.call('PEXPIRE', key, ttl)
  redis.call('ZADD', idx, now + ttl, member)
  if redis.call('PTTL', idx) < replayTTL + ttl then redis.call('PEXPIRE', idx, replayTTL + ttl) end
  return {'BEGIN'}
end
if h[1] == 'in_flight' then return {'IN_FLIGHT'} end
if h[2] ~= fp then return {'MISMATCH'} end
return {'DONE', h[3] or '', h[4] or ''}
