-- cart_set: set the quantity of one line; 0 removes the line.
-- KEYS[1] cart hash; KEYS[2] (optional) the variant's inventory counter (see cart_avail)
-- ARGV[1] restore flag; ARGV[2] TTL ms; ARGV[3] line field `l:<variant>`;
-- ARGV[4] quantity (0 = remove, else 1..max per line, checked by the caller);
-- ARGV[5] max lines; ARGV[6] units available now (ignored when removing, or with KEYS[2])
-- Returns {'OK', now_ms, field, value, ...}, or without writing: {'LOAD_REQUIRED'};
-- {'LOCKED', checkout_id}; {'LINES_LIMIT'}; {'STOCK', quantity, available};
-- {'MISSING', now_ms} when removing from a cart that does not exist; {'NO_COUNTER'}
-- (KEYS[2] is not loaded).
local key, field = KEYS[1], cart_line_field(ARGV[3])
local q, maxl = arg_int(ARGV[4], 0, 'quantity'), arg_int(ARGV[5], 1, 'max lines')
if cart_needs_load(key) then return {'LOAD_REQUIRED'} end
if q == 0 and redis.call('EXISTS', key) == 0 then return {'MISSING', now_ms()} end
local lock = redis.call('HGET', key, 'checkout')
if lock then return {'LOCKED', lock} end
if q == 0 then
  redis.call('HDEL', key, field)
else
  if redis.call('HEXISTS', key, field) == 0 and cart_line_count(key) >= maxl then
    return {'LINES_LIMIT'}
  end
  local avail = cart_avail(6)
  if not avail then return {'NO_COUNTER'} end
  if q > avail then return {'STOCK', q, avail} end
  redis.call('HSET', key, field, q)
end
cart_touch(key)
return cart_state(key)
