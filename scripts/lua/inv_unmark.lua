-- inv_unmark: undo commit (step 1) when the attempt's PostgreSQL transaction did not
-- commit: the hold is `held` again with the expiry it had before it was marked (which
-- may have passed: then the next sweep or reserve returns it).
-- KEYS[1] holds, KEYS[2] cmt
-- ARGV[1] holder; ARGV[2] attempt token
-- Returns {'OK', expiry_ms} or {'GONE'} (not committing for this attempt: nothing done).
local holder, attempt = arg_str(ARGV[1], 'holder'), arg_str(ARGV[2], 'attempt')
local marker = redis.call('HGET', KEYS[2], holder)
if inv_attempt(marker) ~= attempt then return {'GONE'} end
local exp = string.match(marker, '|(%d+)$')
redis.call('HDEL', KEYS[2], holder)
redis.call('ZADD', KEYS[1], exp, holder)
return {'OK', tonumber(exp)}
