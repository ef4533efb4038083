-- chk_confirm: mark a claimed checkout transition as confirmed (its PostgreSQL half
-- committed), so other transitions may run.
-- KEYS[1] checkout hash <space>chk:{<id>}
-- ARGV[1] the version the claim produced
-- Returns {'OK'} when the hash held that pending claim and it is now confirmed,
-- {'GONE'} otherwise (the hash was reloaded from PostgreSQL meanwhile, or expired:
-- nothing to do).
local v = arg_int(ARGV[1], 0, 'version')
local h = redis.call('HMGET', KEYS[1], 'version', 'pending')
if tonumber(h[1]) ~= v or h[2] ~= '1' then return {'GONE'} end
redis.call('HSET', KEYS[1], 'pending', '0')
redis.call('HDEL', KEYS[1], 'prev_state', 'claimed_at')
return {'OK'}
