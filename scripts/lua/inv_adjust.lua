-- inv_adjust: apply an increase of on_hand, already committed in PostgreSQL, to the
-- counter. (Decreases go through reserve/commit/finalize: they must be held first.)
-- KEYS[1] avail, KEYS[2] ver
-- ARGV[1] units added (>= 1); ARGV[2] inventory version written by the adjustment
-- Returns:
--   {'OK', avail}   applied
--   {'SKIP', avail} the counter was computed from that version or a newer one, which
--                   already includes the units
--   {'MISSING'}     no counter: left missing (the next load reads a version at least
--                   this new, see load's STALE)
local delta = arg_int(ARGV[1], 1, 'delta')
local version = arg_int(ARGV[2], 1, 'version')
if redis.call('EXISTS', KEYS[1]) == 0 then
  inv_bump(KEYS[2], version)
  return {'MISSING'}
end
local b = tonumber(redis.call('HGET', KEYS[2], 'b') or '0')
inv_bump(KEYS[2], version)
if version <= b then return {'SKIP', tonumber(redis.call('GET', KEYS[1]))} end
return {'OK', redis.call('INCRBY', KEYS[1], delta)}
