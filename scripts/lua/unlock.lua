-- unlock: compare-and-delete of a lock taken with SET key token NX PX ttl.
-- KEYS[1] lock key
-- ARGV[1] token of the holder
-- Returns {'OK'} when the lock was held by ARGV[1] and is now deleted, {'NOT_OWNER'}
-- otherwise (expired, or taken over by someone else: never delete another holder's lock).
local token = arg_str(ARGV[1], 'token')
if redis.call('GET', KEYS[1]) ~= token then return {'NOT_OWNER'} end
redis.call('DEL', KEYS[1])
return {'OK'}
