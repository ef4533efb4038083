-- chk_confirm: mark a claimed checkout transition as confirmed (its PostgreSQL half
-- committed), so other transitions may run.
-- KEYS[1] checkout hash <space>chk:{<id>}
-- ARGV[1] the version the claim produced
-- Returns 1 when the hash held that pending claim and it is now confirmed, 0 otherwise
-- (the hash was reloaded from PostgreSQL meanwhile, or expired: nothing to do).
local v = tonumber(ARGV[1])
if v == nil then return redis.error_reply('ERR chk_confirm: bad version') end
local h = redis.call('HMGET', KEYS[1], 'version', 'pending')
if tonumber(h[1]) ~= v or h[2] ~= '1' then return 0 end
redis.call('HSET', KEYS[1], 'pending', '0')
redis.call('HDEL', KEYS[1], 'prev_state', 'claimed_at')
return 1
