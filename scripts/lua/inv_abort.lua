-- inv_abort: recovery decided (in PostgreSQL) that a committing attempt did not sell:
-- delete its hold and return the units to the counter.
-- KEYS[1] avail, KEYS[2] holds, KEYS[3] held, KEYS[4] cmt
-- ARGV[1] holder; ARGV[2] attempt token
-- Returns {'OK', units returned} or {'GONE', 0} (not committing for this attempt).
local holder, attempt = arg_str(ARGV[1], 'holder'), arg_str(ARGV[2], 'attempt')
if inv_attempt(redis.call('HGET', KEYS[4], holder)) ~= attempt then return {'GONE', 0} end
redis.call('HDEL', KEYS[4], holder)
return {'OK', inv_drop(KEYS[1], KEYS[2], KEYS[3], holder)}
