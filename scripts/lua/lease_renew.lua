-- lease_renew: extend a lease taken with SET key token NX PX ttl, only by its holder.
-- KEYS[1] lease key
-- ARGV[1] token of the holder; ARGV[2] new TTL ms
-- Returns 1 when the lease was held by ARGV[1] and now lives ARGV[2] ms more, 0 when it is
-- gone (expired, or Redis lost it) or held by someone else: the holder has lost it.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
