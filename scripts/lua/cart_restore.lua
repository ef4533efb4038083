-- cart_restore: recreate a customer cart (or a customer's preferences hash) from its
-- PostgreSQL snapshot, only if missing.
-- KEYS[1] cart hash
-- ARGV[1] unused; ARGV[2] TTL ms; ARGV[3] updated_at ms of the snapshot (0 = none);
-- ARGV[4] coupon ('' = none); ARGV[5..] pairs of field, value (`l:<variant>`, quantity for a cart)
-- Returns 1 when restored (an empty snapshot still creates the cart, marked `r`), 0 when
-- the cart already existed (someone restored or wrote it first).
local key = KEYS[1]
if redis.call('EXISTS', key) == 1 then return 0 end
redis.call('HSET', key, 'r', '1')
if tonumber(ARGV[3]) > 0 then redis.call('HSET', key, 'updated_at', ARGV[3]) end
if ARGV[4] ~= '' then redis.call('HSET', key, 'coupon', ARGV[4]) end
for i = 5, #ARGV - 1, 2 do redis.call('HSET', key, ARGV[i], ARGV[i + 1]) end
redis.call('PEXPIRE', key, tonumber(ARGV[2]))
return 1
