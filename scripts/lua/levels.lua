-- levels: read-only snapshot of one variant's counter and holds.
-- KEYS[1] avail, KEYS[2] holds, KEYS[3] held, KEYS[4] cmt
-- Returns {'MISSING'} when the counter is not loaded, else
--   {'OK', avail, holder_1, quantity_1, deadline_ms_1, committing_1 (0/1), holder_2, ...}
local cur = redis.call('GET', KEYS[1])
if not cur then return {'MISSING'} end
local res = {'OK', tonumber(cur)}
local hs = redis.call('ZRANGE', KEYS[2], 0, -1, 'WITHSCORES')
for i = 1, #hs, 2 do
  local h = hs[i]
  res[#res + 1] = h
  res[#res + 1] = tonumber(redis.call('HGET', KEYS[3], h) or '0')
  res[#res + 1] = tonumber(hs[i + 1])
  res[#res + 1] = redis.call('HEXISTS', KEYS[4], h)
end
return res
