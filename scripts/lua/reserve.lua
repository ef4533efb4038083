-- reserve: hold units of one variant for a holder, after reclaiming its expired holds.
-- KEYS[1] avail, KEYS[2] holds, KEYS[3] held, KEYS[4] cmt (see inv_lib); KEYS[5]
-- (optional, single Redis only: another hash tag) the hold index, whose entry ARGV[5]
-- (the variant) is lowered to the new hold's expiry when it is the variant's earliest,
-- in this round trip instead of the caller's next one
-- ARGV[1] holder; ARGV[2] quantity (>= 1); ARGV[3] TTL ms (>= 1);
-- ARGV[4] at most this many expired holds reclaimed first; ARGV[5] index member (with KEYS[5])
-- A second reserve by the same holder REPLACES its hold (quantity and expiry): retrying
-- a reserve never holds twice.
-- Returns, writing nothing but the reclaim unless OK:
--   {'OK', expiry_ms, earliest deadline before this hold or -1, holds reclaimed,
--    available before, available after} (for the low-stock crossing: consecutive
--    reservations see adjacent ranges, so exactly one sees a threshold crossed)
--   {'INSUFFICIENT', units this holder could hold now, holds reclaimed}
--   {'LOAD_REQUIRED'}  the counter is missing: load it from PostgreSQL and retry
--   {'BUSY'}           the holder's hold is being committed: it cannot change
local holder = arg_str(ARGV[1], 'holder')
local q = arg_int(ARGV[2], 1, 'quantity')
local ttl = arg_int(ARGV[3], 1, 'ttl')
local limit = arg_int(ARGV[4], 0, 'limit')
local member = KEYS[5] and arg_str(ARGV[5], 'index member')
if redis.call('EXISTS', KEYS[1]) == 0 then return {'LOAD_REQUIRED'} end
if redis.call('HEXISTS', KEYS[4], holder) == 1 then return {'BUSY'} end
local now = now_ms()
local n = 0
if limit > 0 then n = inv_reclaim(KEYS[1], KEYS[2], KEYS[3], KEYS[4], now, limit) end
local avail = tonumber(redis.call('GET', KEYS[1]))
local old = tonumber(redis.call('HGET', KEYS[3], holder) or '0')
if avail + old < q then return {'INSUFFICIENT', avail + old, n} end
local first = inv_first(KEYS[2])
if q ~= old then redis.call('INCRBY', KEYS[1], old - q) end
redis.call('HSET', KEYS[3], holder, q)
inv_sum_add(KEYS[3], q - old)
local exp = now + ttl
redis.call('ZADD', KEYS[2], exp, holder)
if member and (first < 0 or exp < first) then redis.call('ZADD', KEYS[5], 'LT', exp, member) end
return {'OK', exp, first, n, avail, avail + old - q}
