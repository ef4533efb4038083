-- chk_load: (re)build a checkout hash from its PostgreSQL row, the truth. It never moves
-- the hash backwards over a live claim or a newer confirmed state.
-- KEYS[1] checkout hash <space>chk:{<id>}
-- ARGV[1] state and ARGV[2] version of the row; ARGV[3] version of the caller's own claim
-- to undo (0 for none); ARGV[4] lease ms; ARGV[5] hash TTL ms
-- Writes the row when the hash is missing; or holds the caller's claim (pending, version
-- ARGV[3]); or holds a claim older than the lease; or is confirmed and older than the row.
-- Returns {'OK'} when written, {'KEPT'} when the hash was left as it was.
local key = KEYS[1]
local state, version = arg_str(ARGV[1], 'state'), arg_int(ARGV[2], 0, 'version')
local claim, lease = arg_int(ARGV[3], 0, 'claim'), arg_int(ARGV[4], 0, 'lease')
local ttl = arg_int(ARGV[5], 1, 'ttl')
local h = redis.call('HMGET', key, 'state', 'version', 'pending', 'claimed_at')
local cur = tonumber(h[2])
local write = false
if not h[1] or not cur then
  write = true
elseif h[3] == '1' then
  write = (claim > 0 and cur == claim) or (now_ms() - (tonumber(h[4]) or 0) >= lease)
else
  write = version > cur
end
if not write then return {'KEPT'} end
redis.call('DEL', key)
redis.call('HSET', key, 'state', state, 'version', ARGV[2], 'pending', '0')
redis.call('PEXPIRE', key, ttl)
return {'OK'}
