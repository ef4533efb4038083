-- unlock: compare-and-delete of a lock taken with SET key token NX PX ttl.
-- KEYS[1] lock key
-- ARGV[1] token of the holder
-- Returns 1 when the lock was held by ARGV[1] and is now deleted, 0 otherwise
-- (expired, or taken over by someone else: never delete another holder's lock).
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
