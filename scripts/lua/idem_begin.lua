-- idem_begin: start an idempotent request, or find how an earlier one with the same key
-- ended (Stripe semantics).
-- KEYS[1] record <space>idem:{<scope>:<caller>:<key>} HASH: state ('in_flight'|'done'),
--         fp (fingerprint of the request), owner (token of the in-flight request),
--         started (ms), status, body
-- ARGV[1] fingerprint; ARGV[2] owner token; ARGV[3] in-flight TTL ms
-- Returns, writing only on BEGIN:
--   {'BEGIN'}           no record: one is stored as in_flight with ARGV[3] TTL
--   {'IN_FLIGHT'}       the first request with this key is still running
--   {'MISMATCH'}        the key was used with another request (different fingerprint)
--   {'DONE', status, body} the stored response of the first request
local key = KEYS[1]
local fp, owner, ttl = ARGV[1], ARGV[2], tonumber(ARGV[3])
if fp == '' or owner == '' or ttl == nil or ttl <= 0 then
  return redis.error_reply('ERR idem_begin: bad arguments')
end
local h = redis.call('HMGET', key, 'state', 'fp', 'status', 'body')
if not h[1] then
  local t = redis.call('TIME')
  redis.call('HSET', key, 'state', 'in_flight', 'fp', fp, 'owner', owner,
    'started', tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000))
  redis.call('PEXPIRE', key, ttl)
  return {'BEGIN'}
end
if h[1] == 'in_flight' then return {'IN_FLIGHT'} end
if h[2] ~= fp then return {'MISMATCH'} end
return {'DONE', h[3] or '', h[4] or ''}
