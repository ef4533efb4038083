-- cart_merge_drop: after cart_merge, delete the session cart that was merged. When the
-- session cart changed since it was read (a concurrent add), only the merged quantities
-- (and the merged coupon) are taken out, so the later change survives for a next merge.
-- Idempotent: the subtraction is recorded under `merged` = version.
-- KEYS[1] session cart hash
-- ARGV[1] restore flag (unused); ARGV[2] TTL ms; ARGV[3] version that was merged (its
-- updated_at); ARGV[4] coupon that was merged ('' = none); ARGV[5..] pairs of line field,
-- quantity. Every argument is checked before the first write.
-- Returns {'DELETED'}; {'SUBTRACTED'} (the merged part was taken out); {'DONE'} (nothing
-- to do: gone, or done already); {'LOCKED'} (the session cart was frozen by a checkout
-- meanwhile: left as it is).
local key, version, coupon = KEYS[1], arg_str(ARGV[3], 'version'), ARGV[4]
if coupon == nil or (#ARGV - 4) % 2 ~= 0 then bad_arg('argument count') end
local drop = {}
for i = 5, #ARGV, 2 do
  drop[#drop + 1] = {cart_line_field(ARGV[i]), arg_int(ARGV[i + 1], 1, 'quantity')}
end
if redis.call('EXISTS', key) == 0 then return {'DONE'} end
if redis.call('HGET', key, 'checkout') then return {'LOCKED'} end
if redis.call('HGET', key, 'updated_at') == version then
  redis.call('DEL', key)
  return {'DELETED'}
end
if redis.call('HGET', key, 'merged') == version then return {'DONE'} end
for _, d in ipairs(drop) do
  local left = redis.call('HINCRBY', key, d[1], -d[2])
  if left <= 0 then redis.call('HDEL', key, d[1]) end
end
if coupon ~= '' and redis.call('HGET', key, 'coupon') == coupon then
  redis.call('HDEL', key, 'coupon')
end
if cart_line_count(key) == 0 and redis.call('HEXISTS', key, 'coupon') == 0 then
  redis.call('DEL', key)
  return {'DELETED'}
end
redis.call('HSET', key, 'merged', version)
cart_touch(key)
return {'SUBTRACTED'}
