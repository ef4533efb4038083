-- cart_merge: merge a session cart's content (read by the caller) into a customer cart.
-- Quantities are summed per variant, capped at the per-line maximum and at the available
-- stock (a line the customer already had is never reduced), new lines stop at the line
-- limit, the customer's coupon wins else the session's. Idempotent: the session cart's
-- version is recorded under `m:<session hash>`; the same version merged again is a no-op.
-- KEYS[1] customer cart hash
-- ARGV[1] restore flag; ARGV[2] TTL ms; ARGV[3] marker field `m:<hash of session>`;
-- ARGV[4] session cart version (its updated_at); ARGV[5] session coupon ('' = none);
-- ARGV[6] max units per line; ARGV[7] max lines;
-- ARGV[8..] triples: line field `l:<variant>`, session quantity, available units
-- Returns {'OK', now_ms, field, value, ...}, or without writing: {'LOAD_REQUIRED'};
-- {'LOCKED', checkout_id}. Every argument is checked before the first write.
local key, coupon = KEYS[1], ARGV[5]
local marker, version = ARGV[3], arg_str(ARGV[4], 'version')
if type(marker) ~= 'string' or string.sub(marker, 1, 2) ~= 'm:' or #marker < 3 then bad_arg('marker') end
local maxq, maxl = arg_int(ARGV[6], 1, 'max quantity'), arg_int(ARGV[7], 1, 'max lines')
if coupon == nil or (#ARGV - 7) % 3 ~= 0 then bad_arg('argument count') end
local merged = {}
for i = 8, #ARGV, 3 do
  merged[#merged + 1] = {cart_line_field(ARGV[i]), arg_int(ARGV[i + 1], 1, 'quantity'),
    arg_int(ARGV[i + 2], 0, 'available')}
end
if cart_needs_load(key) then return {'LOAD_REQUIRED'} end
local lock = redis.call('HGET', key, 'checkout')
if lock then return {'LOCKED', lock} end
if redis.call('HGET', key, marker) == version then return cart_state(key) end
local lines = cart_line_count(key)
for _, m in ipairs(merged) do
  local field, q, avail = m[1], m[2], m[3]
  local cur = tonumber(redis.call('HGET', key, field) or '0')
  local cap = math.min(maxq, avail)
  local total = cur + q
  if total > cap then total = math.max(cur, cap) end
  if total > cur and (cur > 0 or lines < maxl) then
    if cur == 0 then lines = lines + 1 end
    redis.call('HSET', key, field, total)
  end
end
if coupon ~= '' and redis.call('HEXISTS', key, 'coupon') == 0 then
  redis.call('HSET', key, 'coupon', coupon)
end
redis.call('HSET', key, marker, version)
-- keep the 8 most recent merge markers
local markers = {}
for _, f in ipairs(redis.call('HKEYS', key)) do
  if string.sub(f, 1, 2) == 'm:' then markers[#markers + 1] = f end
end
while #markers > 8 do
  local oldest, ov = 1, tonumber(redis.call('HGET', key, markers[1])) or 0
  for j = 2, #markers do
    local v = tonumber(redis.call('HGET', key, markers[j])) or 0
    if v < ov then oldest, ov = j, v end
  end
  redis.call('HDEL', key, markers[oldest])
  table.remove(markers, oldest)
end
cart_touch(key)
return cart_state(key)
