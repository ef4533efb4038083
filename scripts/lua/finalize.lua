-- finalize: step 3 of a sale whose PostgreSQL transaction committed: delete the hold
-- WITHOUT returning its units (they left on_hand) and record the version.
-- KEYS[1] avail, KEYS[2] holds, KEYS[3] held, KEYS[4] cmt, KEYS[5] ver
-- ARGV[1] holder; ARGV[2] attempt token; ARGV[3] quantity sold (>= 1);
-- ARGV[4] inventory version written by the sale; ARGV[5] epoch returned by commit
-- ('' when unknown: recovery, which only finalizes holds it sees)
-- Let b be the version the counter was computed from:
--   hold present, version > b: delete it; avail unchanged (the counter counted it held).
--   hold present, version <= b: the counter was computed after the sale, from an on_hand
--     already without these units AND minus this hold: delete it and add its units back.
--   hold gone and the epoch changed since step 1: the hold was lost with Redis and the
--     counter reloaded; if version > b that load saw the units still on hand: avail -= q.
--   hold gone, same epoch: finalized already (recovery and commit raced): nothing.
-- With the counter missing, only v is recorded, so the next load must read a PostgreSQL
-- state that includes the sale (load answers STALE otherwise).
-- Returns {'OK' | 'GONE' | 'MISSING', change applied to avail}.
local holder, attempt = arg_str(ARGV[1], 'holder'), arg_str(ARGV[2], 'attempt')
local q = arg_int(ARGV[3], 1, 'quantity')
local version = arg_int(ARGV[4], 1, 'version')
local seen = ARGV[5]
local has = redis.call('EXISTS', KEYS[1]) == 1
local present = inv_attempt(redis.call('HGET', KEYS[4], holder)) == attempt
local b = tonumber(redis.call('HGET', KEYS[5], 'b') or '0')
local change, code = 0, 'GONE'
if present then
  local held = tonumber(redis.call('HGET', KEYS[3], holder) or '0')
  redis.call('HDEL', KEYS[4], holder)
  redis.call('HDEL', KEYS[3], holder)
  inv_sum_add(KEYS[3], -held)
  redis.call('ZREM', KEYS[2], holder)
  if has and version <= b then
    redis.call('INCRBY', KEYS[1], held)
    change = held
  end
  code = 'OK'
elseif has and seen ~= '' and version > b and (redis.call('HGET', KEYS[5], 'e') or '') ~= seen then
  redis.call('DECRBY', KEYS[1], q)
  change = -q
end
if not has then code = 'MISSING' end
inv_bump(KEYS[5], version)
return {code, change}
