-- cart_unfreeze: compare-and-clear of the checkout lock.
-- KEYS[1] cart hash
-- ARGV[1] restore flag (unused); ARGV[2] TTL ms; ARGV[3] checkout id
-- Returns {'OK'} when ARGV[3] held the lock and it is now cleared, {'NOT_LOCKED'}
-- otherwise (nothing written: it never clears another checkout's lock).
local key, id = KEYS[1], arg_str(ARGV[3], 'checkout id')
if redis.call('HGET', key, 'checkout') ~= id then return {'NOT_LOCKED'} end
redis.call('HDEL', key, 'checkout')
cart_touch(key)
return {'OK'}
