-- cart_freeze: lock the cart for a checkout (idempotent for the same checkout).
-- KEYS[1] cart hash
-- ARGV[1] restore flag; ARGV[2] TTL ms; ARGV[3] checkout id
-- Returns {'OK', now_ms, field, value, ...} with the lock set, or without writing:
-- {'LOAD_REQUIRED'}; {'LOCKED', other_checkout_id}; {'EMPTY'} when the cart has no lines.
local key, id = KEYS[1], arg_str(ARGV[3], 'checkout id')
if cart_needs_load(key) then return {'LOAD_REQUIRED'} end
local lock = redis.call('HGET', key, 'checkout')
if lock then
  if lock ~= id then return {'LOCKED', lock} end
  return cart_state(key)
end
if cart_line_count(key) == 0 then return {'EMPTY'} end
redis.call('HSET', key, 'checkout', id)
cart_touch(key)
return cart_state(key)
