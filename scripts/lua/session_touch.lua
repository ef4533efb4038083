-- session_touch: slide a session's record, or put it back after Redis lost it.
-- KEYS[1] sess:{id}
-- ARGV[1] sliding lifetime in ms
-- ARGV[2] value of a record put back (the time it was put back, RFC 3339)
-- Returns 1 when the record was there (its lifetime slid), 2 when it was missing and is
-- put back (the credential's MAC already proved the session), 0 when it was revoked.
local v = redis.call('GET', KEYS[1])
if v == 'revoked' then
  return 0
end
if v then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  return 1
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[1])
return 2
