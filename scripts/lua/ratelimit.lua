-- ratelimit: GCRA (generic cell rate algorithm) admission of one request, time from Redis.
-- KEYS[1] the caller's limiter key: it holds the theoretical arrival time (TAT, µs since
--         the epoch) and expires when the caller's allowance is full again.
-- ARGV[1] emission interval in µs (1e6 / rate per second), integer >= 1
-- ARGV[2] burst: requests that may arrive at once, integer >= 1
-- ARGV[3] cost of this request, integer 1..burst
-- Returns {'OK', remaining, 0} when admitted (remaining: requests that would still be
-- admitted right now), {'LIMITED', 0, retry_after_us} when refused (nothing is written).
local interval, burst = arg_int(ARGV[1], 1, 'interval'), arg_int(ARGV[2], 1, 'burst')
local cost = arg_int(ARGV[3], 1, 'cost')
if cost > burst then bad_arg('cost') end
local now = now_us()
local tat = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
if tat < now then tat = now end
local new_tat = tat + cost * interval
local allow_at = new_tat - burst * interval
if allow_at > now then
  return {'LIMITED', 0, allow_at - now}
end
local ttl_ms = math.ceil((new_tat - now) / 1000)
if ttl_ms < 1 then ttl_ms = 1 end
redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', ttl_ms)
return {'OK', math.floor((now - allow_at) / interval), 0}
