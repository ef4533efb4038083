-- reconcile: repair the counter from a PostgreSQL read (on_hand, version) made BEFORE
-- this script runs (O(1): the held total is kept). If an operation newer than that read
-- already reached the counter,
-- the read is stale and nothing is written; otherwise avail = on_hand - sum(held).
-- KEYS[1] avail, KEYS[2] holds, KEYS[3] held, KEYS[4] ver
-- ARGV[1] on_hand (>= 0); ARGV[2] version (>= 1); ARGV[3] '1' = dry run (write nothing)
-- Returns {code, avail or -1, expected avail, units held, earliest deadline or -1}:
--   'OK'      the counter agreed (b and v now = version unless dry run)
--   'FIXED'   it differed and was set
--   'DRIFT'   it differs (dry run: not set)
--   'STALE'   skipped: v > version
--   'MISSING' no counter: nothing to repair (the next load computes it)
local onhand = arg_int(ARGV[1], 0, 'on_hand')
local version = arg_int(ARGV[2], 1, 'version')
if ARGV[3] ~= '0' and ARGV[3] ~= '1' then bad_arg('dry run flag') end
local dry = ARGV[3] == '1'
local held = inv_sum(KEYS[3])
local expected = onhand - held
local first = inv_first(KEYS[2])
local cur = redis.call('GET', KEYS[1])
if not cur then return {'MISSING', -1, expected, held, first} end
cur = tonumber(cur)
local v = tonumber(redis.call('HGET', KEYS[4], 'v') or '-1')
if v > version then return {'STALE', cur, expected, held, first} end
if dry then
  if cur == expected then return {'OK', cur, expected, held, first} end
  return {'DRIFT', cur, expected, held, first}
end
redis.call('HSET', KEYS[4], 'v', ARGV[2], 'b', ARGV[2])
if cur == expected then return {'OK', cur, expected, held, first} end
redis.call('SET', KEYS[1], expected)
return {'FIXED', cur, expected, held, first}
