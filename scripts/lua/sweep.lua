-- sweep: return the expired held holds of one variant and list its expired committing
-- holds (their attempt is decided by recovery in Go, never here).
-- KEYS[1] avail, KEYS[2] holds, KEYS[3] held, KEYS[4] cmt
-- ARGV[1] at most this many holds returned per call (>= 1)
-- Returns {status, holds returned, units returned, earliest remaining deadline or -1,
--          holder_1, attempt_1, quantity_1, holder_2, ...  (expired committing holds)}
-- where status is 'OK', or 'MORE' when the limit stopped it (call again).
local limit = arg_int(ARGV[1], 1, 'limit')
local now = now_ms()
local n, units, more, offset = 0, 0, 0, 0
local out = {}
while true do
  -- entries before `offset` are expired committing holds already listed: the ones
  -- returned are deleted, so the listed ones stay a prefix of the sorted set
  local due = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', offset, 100)
  if #due == 0 then break end
  for i = 1, #due do
    local h = due[i]
    local a = inv_attempt(redis.call('HGET', KEYS[4], h))
    if a then
      offset = offset + 1
      out[#out + 1] = h
      out[#out + 1] = a
      out[#out + 1] = tonumber(redis.call('HGET', KEYS[3], h) or '0')
    elseif n < limit then
      units = units + inv_drop(KEYS[1], KEYS[2], KEYS[3], h)
      n = n + 1
    else
      more = 1
      break
    end
  end
  if more == 1 or offset >= limit then break end
end
local status = 'OK'
if more == 1 then status = 'MORE' end
local res = {status, n, units, inv_first(KEYS[2])}
for i = 1, #out do res[#res + 1] = out[i] end
return res
