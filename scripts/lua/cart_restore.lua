-- cart_restore: recreate a customer cart (or a customer's preferences hash) from its
-- PostgreSQL snapshot, only if missing.
-- KEYS[1] cart hash
-- ARGV[1] restore flag (unused); ARGV[2] TTL ms; ARGV[3] updated_at ms of the snapshot
-- (0 = none); ARGV[4] coupon ('' = none); ARGV[5..] pairs of field, value (`l:<variant>`,
-- quantity for a cart). Every argument is checked before the first write.
-- Returns {'OK'} when restored (an empty snapshot still creates the cart, marked `r`),
-- {'EXISTS'} when the cart already existed (someone restored or wrote it first).
local key = KEYS[1]
local updated = arg_int(ARGV[3], 0, 'updated_at')
if ARGV[4] == nil or (#ARGV - 4) % 2 ~= 0 then bad_arg('argument count') end
for i = 5, #ARGV, 2 do arg_str(ARGV[i], 'field') end
if redis.call('EXISTS', key) == 1 then return {'EXISTS'} end
redis.call('HSET', key, 'r', '1')
if updated > 0 then redis.call('HSET', key, 'updated_at', ARGV[3]) end
if ARGV[4] ~= '' then redis.call('HSET', key, 'coupon', ARGV[4]) end
for i = 5, #ARGV, 2 do redis.call('HSET', key, ARGV[i], ARGV[i + 1]) end
redis.call('PEXPIRE', key, cart_ttl)
return {'OK'}
