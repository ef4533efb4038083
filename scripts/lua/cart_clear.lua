-- cart_clear: delete every line and the coupon. Two modes:
--   ARGV[3] == ''          a shopper clears an unlocked cart (a locked one is refused);
--   ARGV[3] == checkout id after an order: clears the cart and its lock only when that
--                          checkout holds the lock (idempotent: otherwise nothing happens).
-- KEYS[1] cart hash
-- ARGV[1] restore flag; ARGV[2] TTL ms; ARGV[3] '' or checkout id
-- Returns {'OK', now_ms, field, value, ...}, or without writing: {'LOAD_REQUIRED'};
-- {'LOCKED', checkout_id} (shopper mode); {'NOT_LOCKED'} (checkout mode, lock not held);
-- {'MISSING', now_ms} when the cart does not exist.
local key, owner = KEYS[1], ARGV[3]
if cart_needs_load(key) then return {'LOAD_REQUIRED'} end
if redis.call('EXISTS', key) == 0 then return {'MISSING', now_ms()} end
local lock = redis.call('HGET', key, 'checkout')
if owner == '' then
  if lock then return {'LOCKED', lock} end
else
  if lock ~= owner then return {'NOT_LOCKED'} end
  redis.call('HDEL', key, 'checkout')
end
for _, f in ipairs(redis.call('HKEYS', key)) do
  if string.sub(f, 1, 2) == 'l:' or f == 'coupon' then redis.call('HDEL', key, f) end
end
redis.call('HSET', key, 'r', '1')
cart_touch(key)
return cart_state(key)
