-- transition: the Redis half of a checkout state transition, a compare-and-set that
-- claims the transition before its PostgreSQL half (a conditional UPDATE on the same
-- version) runs. The claim stays "pending" until chk_confirm marks it done; a pending
-- claim older than the lease (a crashed claimer) makes the hash stale.
-- KEYS[1] checkout hash <space>chk:{<id>}: state, version, pending ('1' while claimed and
--         not confirmed), prev_state, claimed_at (ms, Redis TIME)
-- ARGV[1] from state; ARGV[2] to state; ARGV[3] lease ms; ARGV[4] hash TTL ms;
-- ARGV[5] the version the caller saw (the claim fails unless the hash is at it)
-- Returns {status, state, version} and writes only on OK:
--   'OK'             state = to, version + 1, pending; the new state and version
--   'MISMATCH'       the state is not `from` or the version not ARGV[5]; the current
--                    state and version
--   'BUSY'           another transition is pending (not yet confirmed); the current
--                    state and version
--   'LOAD_REQUIRED'  the hash is missing ('' and 0) or holds a claim older than the lease
local key = KEYS[1]
local from, to = arg_str(ARGV[1], 'from state'), arg_str(ARGV[2], 'to state')
local lease, ttl = arg_int(ARGV[3], 0, 'lease'), arg_int(ARGV[4], 1, 'ttl')
local expect = arg_int(ARGV[5], 0, 'version')
local h = redis.call('HMGET', key, 'state', 'version', 'pending', 'claimed_at')
local state, version = h[1], tonumber(h[2])
if not state or not version then return {'LOAD_REQUIRED', '', 0} end
local now = now_ms()
if h[3] == '1' then
  if now - (tonumber(h[4]) or 0) >= lease then return {'LOAD_REQUIRED', state, version} end
  return {'BUSY', state, version}
end
if state ~= from or version ~= expect then return {'MISMATCH', state, version} end
redis.call('HSET', key, 'state', to, 'version', version + 1, 'pending', '1',
  'prev_state', state, 'claimed_at', now)
redis.call('PEXPIRE', key, ttl)
return {'OK', to, version + 1}
