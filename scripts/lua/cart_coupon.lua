-- cart_coupon: set or remove the cart's coupon code.
-- KEYS[1] cart hash
-- ARGV[1] restore flag; ARGV[2] TTL ms; ARGV[3] code ('' removes it)
-- Returns {'OK', now_ms, field, value, ...}, or without writing: {'LOAD_REQUIRED'};
-- {'LOCKED', checkout_id}; {'MISSING', now_ms} when removing from a cart that does not exist.
local key, code = KEYS[1], ARGV[3]
if cart_needs_load(key) then return {'LOAD_REQUIRED'} end
if code == '' and redis.call('EXISTS', key) == 0 then return {'MISSING', now_ms()} end
local lock = redis.call('HGET', key, 'checkout')
if lock then return {'LOCKED', lock} end
if code == '' then
  redis.call('HDEL', key, 'coupon')
else
  redis.call('HSET', key, 'coupon', code)
end
cart_touch(key)
return cart_state(key)
