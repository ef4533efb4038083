-- cart_lib: helpers prepended (after base_lib, by internal/cart) to every cart_*.lua
-- script; not a script on its own. A cart is one HASH: `l:<variant uuid>` -> quantity, `coupon` -> code,
-- `checkout` -> id of the checkout that froze it, `updated_at` -> ms (Redis TIME, strictly
-- increasing per cart, so it doubles as the version of the PostgreSQL snapshot), `r` ->
-- marker that keeps an empty cart existing, `m:<hash>` -> session version merged in.
-- Every script takes ARGV[1] = '1' when a missing key must be restored from the snapshot
-- first (customer carts: the script answers {'LOAD_REQUIRED'} and writes nothing) and
-- ARGV[2] = TTL in ms, slid on every write; it is checked here, before any script runs.

if ARGV[1] ~= '0' and ARGV[1] ~= '1' then bad_arg('restore flag') end
local cart_ttl = arg_int(ARGV[2], 1, 'ttl')

-- cart_line_field: s when it is a line field `l:<variant>`, else bad_arg
local function cart_line_field(s)
  if type(s) ~= 'string' or string.sub(s, 1, 2) ~= 'l:' or #s < 3 then bad_arg('line field') end
  return s
end

-- cart_avail: units of the line's variant available now, for the soft stock check. With
-- KEYS[2] (the variant's inventory counter, passed only when it lives on this node) the
-- counter is read here, in the same round trip, and nil means it is not loaded (the
-- caller reads it its own way and runs the script again without KEYS[2]); otherwise the
-- caller read it and passed it as ARGV[i].
local function cart_avail(i)
  local passed = arg_int(ARGV[i], 0, 'available')
  if not KEYS[2] then return passed end
  local v = redis.call('GET', KEYS[2])
  if not v then return nil end
  v = tonumber(v)
  if not v or v < 0 then return 0 end
  return v
end

-- true when the key is missing and must be restored before the script may write
local function cart_needs_load(key)
  return ARGV[1] == '1' and redis.call('EXISTS', key) == 0
end

local function cart_line_count(key)
  local n = 0
  for _, f in ipairs(redis.call('HKEYS', key)) do
    if string.sub(f, 1, 2) == 'l:' then n = n + 1 end
  end
  return n
end

-- bump updated_at (strictly increasing) and slide the TTL; returns the new updated_at
local function cart_touch(key)
  local now = now_ms()
  local prev = tonumber(redis.call('HGET', key, 'updated_at') or '0') or 0
  if now <= prev then now = prev + 1 end
  redis.call('HSET', key, 'updated_at', now)
  redis.call('PEXPIRE', key, cart_ttl)
  return now
end

-- {'OK', now_ms, field1, value1, ...}: the whole cart after the script
local function cart_state(key)
  local r = {'OK', now_ms()}
  local all = redis.call('HGETALL', key)
  for i = 1, #all do r[#r + 1] = all[i] end
  return r
end
