-- discount_publish: move the discount ruleset version pointer forward, never back.
-- The writer has already stored the bundle discount:ruleset:<ARGV[1]> (a different key,
-- possibly another Cluster slot), so a reader that sees the new pointer finds its bundle.
-- KEYS[1] the pointer key (<space>discount:ruleset:version), a decimal version
-- ARGV[1] the version just published (positive integer)
-- ARGV[2] pointer TTL in milliseconds (positive integer)
-- Returns  1 when the pointer moved to ARGV[1] (or was absent),
--          0 when it already held ARGV[1] (its TTL is refreshed),
--         -1 when it holds a newer version (nothing changes),
--         -2 when an argument is not a positive integer (nothing changes).
local v = tonumber(ARGV[1])
local ttl = tonumber(ARGV[2])
if not v or v < 1 or v % 1 ~= 0 or not ttl or ttl < 1 or ttl % 1 ~= 0 then
  return -2
end
local cur = tonumber(redis.call('GET', KEYS[1]))
if cur and cur > v then
  return -1
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ttl)
if cur == v then
  return 0
end
return 1
