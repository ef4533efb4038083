-- release: return a held hold to the counter. The script that deletes a hold is the one
-- that returns its units, so release, sweep, reserve's reclaim and commit race safely.
-- KEYS[1] avail, KEYS[2] holds, KEYS[3] held, KEYS[4] cmt
-- ARGV[1] holder
-- Returns {'OK', units returned}; {'GONE', 0} (no hold); {'BUSY', 0} (committing: left
-- alone). With the counter missing the hold is deleted all the same (the next load
-- counts only the holds that remain) and its units are reported as returned.
local holder = arg_str(ARGV[1], 'holder')
if redis.call('HEXISTS', KEYS[4], holder) == 1 then return {'BUSY', 0} end
if redis.call('HEXISTS', KEYS[3], holder) == 0 then
  redis.call('ZREM', KEYS[2], holder)
  return {'GONE', 0}
end
return {'OK', inv_drop(KEYS[1], KEYS[2], KEYS[3], holder)}
