-- cache_fill: a versioned cache-aside fill. Writes a cache value only when the copy already
-- cached is not newer, so a reader that loaded an old version from PostgreSQL before a
-- write committed can never overwrite the writer's newer value (the delete-after-commit race).
--
-- A value is "<version>\n<payload>": a decimal version, a newline, then anything (JSON of
-- the product, or nothing for a cached "not found", which uses version 0).
--
-- KEYS[1]  the cache key, e.g. <space>product:{<id>}:details
-- ARGV[1]  the version being written: an integer >= 0
-- ARGV[2]  the value: "<version>\n<payload>", carrying the same version as ARGV[1]
-- ARGV[3]  time to live in milliseconds: an integer > 0
--
-- Returns  {'OK'} written; {'KEPT'} skipped (the cached version is newer). A cached
--          value whose version cannot be read is overwritten.
local v = arg_int(ARGV[1], 0, 'version')
local ttl = arg_int(ARGV[3], 1, 'ttl')
if ARGV[2] == nil or tonumber(string.match(ARGV[2], '^(%d+)\n')) ~= v then bad_arg('value') end
local cur = redis.call('GET', KEYS[1])
if cur then
  local cv = tonumber(string.match(cur, '^(%d+)\n'))
  if cv ~= nil and cv > v then
    return {'KEPT'}
  end
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ttl)
return {'OK'}
