-- commit: step 1 of a sale, mark a held hold `committing` for one commit attempt. It
-- keeps counting as held; sweep, reserve and release never return it; only finalize
-- (sold), inv_abort (not sold, decided in PostgreSQL) or inv_unmark (the attempt's
-- transaction failed) end that state.
-- KEYS[1] avail, KEYS[2] holds, KEYS[3] held, KEYS[4] cmt, KEYS[5] ver; KEYS[6]
-- (optional, single Redis only: another hash tag) the hold index, whose entry ARGV[5]
-- (the variant) is lowered to the recovery deadline when marked, in this round trip
-- ARGV[1] holder; ARGV[2] attempt token; ARGV[3] quantity to sell (>= 1);
-- ARGV[4] ms after which recovery may decide the attempt (>= 1); ARGV[5] index member
-- (with KEYS[6])
-- Returns:
--   {'OK', epoch of the counter or '', recovery deadline ms}  marked (or already
--                        marked by this attempt)
--   {'MISSING'}          no hold (nothing written)
--   {'EXPIRED'}          the hold had expired: it is returned now, as a sweep would
--   {'QTY', held}        the hold is for another quantity (nothing written)
--   {'BUSY'}             another attempt is committing this hold (nothing written)
local holder, attempt = arg_str(ARGV[1], 'holder'), arg_str(ARGV[2], 'attempt')
local q = arg_int(ARGV[3], 1, 'quantity')
local timeout = arg_int(ARGV[4], 1, 'timeout')
local member = KEYS[6] and arg_str(ARGV[5], 'index member')
-- lower the index entry to the deadline d (see KEYS[6]) and answer OK
local function marked(epoch, d)
  if member then redis.call('ZADD', KEYS[6], 'LT', d, member) end
  return {'OK', epoch, d}
end
local held = redis.call('HGET', KEYS[3], holder)
if not held then return {'MISSING'} end
local a = inv_attempt(redis.call('HGET', KEYS[4], holder))
local epoch = redis.call('HGET', KEYS[5], 'e') or ''
if a then
  if a == attempt then return marked(epoch, tonumber(redis.call('ZSCORE', KEYS[2], holder))) end
  return {'BUSY'}
end
if tonumber(held) ~= q then return {'QTY', tonumber(held)} end
local now = now_ms()
local exp = tonumber(redis.call('ZSCORE', KEYS[2], holder) or '0')
if exp <= now then
  inv_drop(KEYS[1], KEYS[2], KEYS[3], holder)
  return {'EXPIRED'}
end
redis.call('HSET', KEYS[4], holder, attempt .. '|' .. string.format('%d', exp))
redis.call('ZADD', KEYS[2], now + timeout, holder)
return marked(epoch, now + timeout)
