-- cart_get: read a cart and slide its TTL.
-- KEYS[1] cart hash
-- ARGV[1] '1' = restore a missing cart from the snapshot first; ARGV[2] TTL ms
-- Returns {'OK', now_ms, field, value, ...}; {'MISSING', now_ms} when the cart does not
-- exist (and needs no restore); {'LOAD_REQUIRED'}.
local key = KEYS[1]
if cart_needs_load(key) then return {'LOAD_REQUIRED'} end
if redis.call('PEXPIRE', key, cart_ttl) == 0 then
  return {'MISSING', now_ms()}
end
return cart_state(key)
