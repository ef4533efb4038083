-- cart_unfreeze: compare-and-clear of the checkout lock.
-- KEYS[1] cart hash
-- ARGV[1] unused; ARGV[2] TTL ms; ARGV[3] checkout id
-- Returns 1 when ARGV[3] held the lock and it is now cleared, 0 otherwise (never clears
-- another checkout's lock).
local key, id = KEYS[1], ARGV[3]
if redis.call('HGET', key, 'checkout') ~= id then return 0 end
redis.call('HDEL', key, 'checkout')
cart_touch(key)
return 1
