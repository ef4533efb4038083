-- cart_merge_drop: after cart_merge, delete the session cart that was merged. When the
-- session cart changed since it was read (a concurrent add), only the merged quantities
-- (and the merged coupon) are taken out, so the later change survives for a next merge.
-- Idempotent: the subtraction is recorded under `merged` = version.
-- KEYS[1] session cart hash
-- ARGV[1] unused; ARGV[2] TTL ms; ARGV[3] version that was merged (its updated_at);
-- ARGV[4] coupon that was merged ('' = none); ARGV[5..] pairs of line field, quantity
-- Returns 1 deleted; 2 merged part subtracted; 0 nothing to do (gone or already done);
-- -1 the session cart was frozen by a checkout meanwhile (left as it is).
local key, version, coupon = KEYS[1], ARGV[3], ARGV[4]
if redis.call('EXISTS', key) == 0 then return 0 end
if redis.call('HGET', key, 'checkout') then return -1 end
if redis.call('HGET', key, 'updated_at') == version then
  redis.call('DEL', key)
  return 1
end
if redis.call('HGET', key, 'merged') == version then return 0 end
for i = 5, #ARGV - 1, 2 do
  local left = redis.call('HINCRBY', key, ARGV[i], -tonumber(ARGV[i + 1]))
  if left <= 0 then redis.call('HDEL', key, ARGV[i]) end
end
if coupon ~= '' and redis.call('HGET', key, 'coupon') == coupon then
  redis.call('HDEL', key, 'coupon')
end
if cart_line_count(key) == 0 and redis.call('HEXISTS', key, 'coupon') == 0 then
  redis.call('DEL', key)
  return 1
end
redis.call('HSET', key, 'merged', version)
cart_touch(key)
return 2
