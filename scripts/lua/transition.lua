-- transition: the Redis half of a checkout state transition, a compare-and-set that
-- claims the transition before its PostgreSQL half (a conditional UPDATE on the same
-- version) runs. The claim stays "pending" until chk_confirm marks it done; a pending
-- claim older than the lease (a crashed claimer) makes the hash stale.
-- KEYS[1] checkout hash <space>chk:{<id>}: state, version, pending ('1' while claimed and
--         not confirmed), prev_state, claimed_at (ms, Redis TIME)
-- ARGV[1] from state; ARGV[2] to state; ARGV[3] lease ms; ARGV[4] hash TTL ms;
-- ARGV[5] the version the caller saw (the claim fails unless the hash is at it)
-- Returns {code, state, version} and writes only on code 1:
--   1  OK: state = to, version + 1, pending; the new state and version
--   0  MISMATCH: the state is not `from` or the version not ARGV[5]; the current state
--      and version
--   2  BUSY: another transition is pending (not yet confirmed); the current state and version
--  -1  LOAD_REQUIRED: the hash is missing or holds a claim older than the lease
local key = KEYS[1]
local from, to = ARGV[1], ARGV[2]
local lease, ttl, expect = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
if from == '' or to == '' or lease == nil or ttl == nil or ttl <= 0 or expect == nil then
  return redis.error_reply('ERR transition: bad arguments')
end
local h = redis.call('HMGET', key, 'state', 'version', 'pending', 'claimed_at')
local state, version = h[1], tonumber(h[2])
if not state or not version then return {-1, '', 0} end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if h[3] == '1' then
  if now - (tonumber(h[4]) or 0) >= lease then return {-1, state, version} end
  return {2, state, version}
end
if state ~= from or version ~= expect then return {0, state, version} end
redis.call('HSET', key, 'state', to, 'version', version + 1, 'pending', '1',
  'prev_state', state, 'claimed_at', now)
redis.call('PEXPIRE', key, ttl)
return {1, to, version + 1}
