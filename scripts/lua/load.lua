-- load: create a missing counter from PostgreSQL, like SET NX: avail = on_hand - sum of
-- the holds still in Redis.
-- KEYS[1] avail, KEYS[2] held, KEYS[3] ver
-- ARGV[1] on_hand (>= 0); ARGV[2] its inventory version (>= 1); ARGV[3] a new random epoch
-- Returns:
--   {'OK', avail}      created
--   {'EXISTS', avail}  someone else created it first: nothing written
--   {'STALE', v}       an operation of version v > ARGV[2] already reached Redis: read
--                      PostgreSQL again (nothing written)
local onhand = arg_int(ARGV[1], 0, 'on_hand')
local version = arg_int(ARGV[2], 1, 'version')
local epoch = arg_str(ARGV[3], 'epoch')
local cur = redis.call('GET', KEYS[1])
if cur then return {'EXISTS', tonumber(cur)} end
local v = tonumber(redis.call('HGET', KEYS[3], 'v') or '-1')
if v > version then return {'STALE', v} end
local avail = onhand - inv_sum(KEYS[2])
redis.call('SET', KEYS[1], avail)
redis.call('HSET', KEYS[3], 'v', ARGV[2], 'b', ARGV[2], 'e', epoch)
return {'OK', avail}
