-- inv_abort: recovery decided (in PostgreSQL) that a committing attempt did not sell:
-- delete its hold and return the units to the counter.
-- KEYS[1] avail, KEYS[2] holds, KEYS[3] held, KEYS[4] cmt
-- ARGV[1] holder; ARGV[2] attempt token
-- Returns {units returned, 'OK'} or {0, 'GONE'} (not committing for this attempt).
local holder, attempt = ARGV[1], ARGV[2]
if inv_attempt(redis.call('HGET', KEYS[4], holder)) ~= attempt then return {0, 'GONE'} end
redis.call('HDEL', KEYS[4], holder)
return {inv_drop(KEYS[1], KEYS[2], KEYS[3], holder), 'OK'}
