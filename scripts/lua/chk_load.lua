-- chk_load: (re)build a checkout hash from its PostgreSQL row, the truth. It never moves
-- the hash backwards over a live claim or a newer confirmed state.
-- KEYS[1] checkout hash <space>chk:{<id>}
-- ARGV[1] state and ARGV[2] version of the row; ARGV[3] version of the caller's own claim
-- to undo (0 for none); ARGV[4] lease ms; ARGV[5] hash TTL ms
-- Writes the row when the hash is missing; or holds the caller's claim (pending, version
-- ARGV[3]); or holds a claim older than the lease; or is confirmed and older than the row.
-- Returns 1 when written, 0 when the hash was left as it was.
local key = KEYS[1]
local state, version, claim = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local lease, ttl = tonumber(ARGV[4]), tonumber(ARGV[5])
if state == '' or version == nil or claim == nil or lease == nil or ttl == nil or ttl <= 0 then
  return redis.error_reply('ERR chk_load: bad arguments')
end
local h = redis.call('HMGET', key, 'state', 'version', 'pending', 'claimed_at')
local cur = tonumber(h[2])
local write = false
if not h[1] or not cur then
  write = true
elseif h[3] == '1' then
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  write = (claim > 0 and cur == claim) or (now - (tonumber(h[4]) or 0) >= lease)
else
  write = version > cur
end
if not write then return 0 end
redis.call('DEL', key)
redis.call('HSET', key, 'state', state, 'version', version, 'pending', '0')
redis.call('PEXPIRE', key, ttl)
return 1
