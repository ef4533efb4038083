-- discount_publish: move the discount ruleset version pointer forward, never back.
-- The writer has already stored the bundle discount:ruleset:<ARGV[1]> (a different key,
-- possibly another Cluster slot), so a reader that sees the new pointer finds its bundle.
-- KEYS[1] the pointer key (<space>discount:ruleset:version), a decimal version
-- ARGV[1] the version just published (positive integer)
-- ARGV[2] pointer TTL in milliseconds (positive integer)
-- Returns  {'OK'} when the pointer moved to ARGV[1] (or was absent),
--          {'SAME'} when it already held ARGV[1] (its TTL is refreshed),
--          {'NEWER'} when it holds a newer version (nothing changes).
local v = arg_int(ARGV[1], 1, 'version')
local ttl = arg_int(ARGV[2], 1, 'ttl')
local cur = tonumber(redis.call('GET', KEYS[1]))
if cur and cur > v then
  return {'NEWER'}
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ttl)
if cur == v then
  return {'SAME'}
end
return {'OK'}
