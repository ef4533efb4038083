-- levels: one variant's counter, its held total and hold count in O(1), and one page of
-- its holds, the soonest deadlines first (O(page)).
-- KEYS[1] avail, KEYS[2] holds, KEYS[3] held, KEYS[4] cmt
-- ARGV[1] page size (0-100)
-- Returns {'MISSING'} when the counter is not loaded, else
--   {'OK', avail, held total, holds count,
--    holder_1, quantity_1, deadline_ms_1, committing_1 (0/1), holder_2, ...}
local page = arg_int(ARGV[1], 0, 'page size')
if page > 100 then bad_arg('page size') end
local cur = redis.call('GET', KEYS[1])
if not cur then return {'MISSING'} end
local count = redis.call('ZCARD', KEYS[2])
local total = inv_sum(KEYS[3])
local res = {'OK', tonumber(cur), total, count}
if page == 0 then return res end
local hs = redis.call('ZRANGE', KEYS[2], 0, page - 1, 'WITHSCORES')
for i = 1, #hs, 2 do
  local h = hs[i]
  res[#res + 1] = h
  res[#res + 1] = tonumber(redis.call('HGET', KEYS[3], h) or '0')
  res[#res + 1] = tonumber(hs[i + 1])
  res[#res + 1] = redis.call('HEXISTS', KEYS[4], h)
end
return res
