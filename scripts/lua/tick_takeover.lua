-- tick_takeover: take over a job tick whose claimant died before finishing it.
-- KEYS[1] tick claim <space>job:{<name>}:tick:<T>; KEYS[2] the job's run lease
-- ARGV[1] the claimant's token, as read by the caller; ARGV[2] the caller's token
-- Returns 1 when the claim still names ARGV[1] and no run lease exists: the claim now
-- names ARGV[2] (its TTL kept). Returns 0 otherwise (done, expired, taken over by someone
-- else, or a run is in progress), writing nothing.
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'KEEPTTL')
return 1
