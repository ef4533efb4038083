-- ratelimit: GCRA (generic cell rate algorithm) admission of one request, time from Redis.
-- KEYS[1] the caller's limiter key: it holds the theoretical arrival time (TAT, µs since
--         the epoch) and expires when the caller's allowance is full again.
-- ARGV[1] emission interval in µs (1e6 / rate per second), integer >= 1
-- ARGV[2] burst: requests that may arrive at once, integer >= 1
-- ARGV[3] cost of this request, integer 1..burst
-- Returns {1, remaining, 0} when admitted (remaining: requests that would still be admitted
-- right now), {0, 0, retry_after_us} when refused (nothing is written), or an error reply
-- 'ERR ratelimit: bad arguments' before any write.
local interval, burst, cost = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
if not interval or not burst or not cost or interval < 1 or burst < 1 or cost < 1 or cost > burst then
  return redis.error_reply('ERR ratelimit: bad arguments')
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
if tat < now then tat = now end
local new_tat = tat + cost * interval
local allow_at = new_tat - burst * interval
if allow_at > now then
  return {0, 0, allow_at - now}
end
local ttl_ms = math.ceil((new_tat - now) / 1000)
if ttl_ms < 1 then ttl_ms = 1 end
redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', ttl_ms)
return {1, math.floor((now - allow_at) / interval), 0}
