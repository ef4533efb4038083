-- cart_add: add units to one line, atomically checking every limit first.
-- KEYS[1] cart hash; KEYS[2] (optional) the variant's inventory counter (see cart_avail)
-- ARGV[1] restore flag; ARGV[2] TTL ms; ARGV[3] line field `l:<variant>`;
-- ARGV[4] units to add (>= 1); ARGV[5] max units per line; ARGV[6] max lines;
-- ARGV[7] units available now (soft stock check; ignored with KEYS[2])
-- Returns {'OK', now_ms, field, value, ...} after the add, or without writing:
-- {'LOAD_REQUIRED'}; {'LOCKED', checkout_id}; {'QTY_LIMIT', current};
-- {'LINES_LIMIT'}; {'STOCK', resulting_quantity, available}; {'NO_COUNTER'} (KEYS[2] is
-- not loaded).
local key, field = KEYS[1], cart_line_field(ARGV[3])
local add, maxq = arg_int(ARGV[4], 1, 'quantity'), arg_int(ARGV[5], 1, 'max quantity')
local maxl = arg_int(ARGV[6], 1, 'max lines')
if cart_needs_load(key) then return {'LOAD_REQUIRED'} end
local lock = redis.call('HGET', key, 'checkout')
if lock then return {'LOCKED', lock} end
local cur = tonumber(redis.call('HGET', key, field) or '0')
local want = cur + add
if want > maxq then return {'QTY_LIMIT', cur} end
if cur == 0 and cart_line_count(key) >= maxl then return {'LINES_LIMIT'} end
local avail = cart_avail(7)
if not avail then return {'NO_COUNTER'} end
if want > avail then return {'STOCK', want, avail} end
redis.call('HINCRBY', key, field, add)
cart_touch(key)
return cart_state(key)
