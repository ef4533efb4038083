-- cart_prefs_patch: shallow merge into a customer's preferences hash, refused when the
-- merged object would exceed the size limit. The hash holds one field per top-level key:
-- the JSON-encoded key (it always starts with '"') -> compact JSON value, plus
-- `updated_at` (ms, strictly increasing: the version of the PostgreSQL copy) and `r`.
-- The size is that of `{"k1":v1,"k2":v2}`, exactly what Go renders from the hash.
-- KEYS[1] preferences hash
-- ARGV[1] restore flag ('1': a missing hash must be loaded from PostgreSQL first);
-- ARGV[2] TTL ms; ARGV[3] max bytes; ARGV[4] n = number of keys to set;
-- ARGV[5 .. 4+2n] pairs of encoded key, encoded value; ARGV[5+2n ..] encoded keys to delete
-- Returns {'OK', now_ms, field, value, ...}, or without writing: {'LOAD_REQUIRED'};
-- {'TOO_LARGE', size_after_merge}.
local key, maxb, nset = KEYS[1], arg_int(ARGV[3], 1, 'max bytes'), arg_int(ARGV[4], 0, 'key count')
if #ARGV < 4 + 2 * nset then bad_arg('argument count') end
if cart_needs_load(key) then return {'LOAD_REQUIRED'} end
local len = {}
local cur = redis.call('HGETALL', key)
for i = 1, #cur, 2 do
  if string.sub(cur[i], 1, 1) == '"' then len[cur[i]] = #cur[i + 1] end
end
local last = 4 + 2 * nset
for i = 5, last, 2 do len[ARGV[i]] = #ARGV[i + 1] end
for i = last + 1, #ARGV do len[ARGV[i]] = nil end
local size, n = 2, 0
for f, l in pairs(len) do
  size = size + #f + 1 + l
  n = n + 1
end
if n > 1 then size = size + n - 1 end
if size > maxb then return {'TOO_LARGE', size} end
for i = 5, last, 2 do redis.call('HSET', key, ARGV[i], ARGV[i + 1]) end
for i = last + 1, #ARGV do redis.call('HDEL', key, ARGV[i]) end
redis.call('HSET', key, 'r', '1')
cart_touch(key)
return cart_state(key)
