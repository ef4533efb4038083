-- inv_lib: helpers prepended (after base_lib, by internal/inventory) to every inventory
-- script; not a script on its own. The keys of one variant share the hash tag {<variant uuid>}:
--   avail  STRING units that may still be reserved; absent = counter not loaded (every
--                 script that needs it answers LOAD_REQUIRED and writes nothing)
--   holds  ZSET   holder -> deadline ms (Redis TIME): the expiry of a held hold, the
--                 recovery deadline of a committing one
--   held   HASH   holder -> quantity, for held and committing holds alike, and the
--                 field '#sum' (never a holder: holders have no '#') = their total, kept
--                 by every script that changes a quantity, so the total reads in O(1)
--   cmt    HASH   holder -> '<attempt>|<expiry ms before marking>' while committing
--   ver    HASH   v = newest PostgreSQL inventory version applied to the counter,
--                 b = version the counter was last computed from (load, reconcile),
--                 e = random epoch of the load that created the counter
-- Invariant: avail + sum(held) == on_hand in PostgreSQL, except in the documented
-- windows where avail is lower, never higher (see docs/inventory.md).
-- Holders are [A-Za-z0-9_-]{1,100} (checked in Go), so they never contain '|'.

-- the field of the held hash that keeps the total of its quantities
local INV_SUM = '#sum'

-- the total of the held hash's quantities counted one by one (O(holds); writes nothing)
local function inv_sum_all(kheld)
  local s = 0
  local all = redis.call('HGETALL', kheld)
  for i = 1, #all, 2 do
    if all[i] ~= INV_SUM then s = s + tonumber(all[i + 1]) end
  end
  return s
end

-- the total held: the kept total (O(1)), or, for holds written before it was kept, the
-- count one by one (writes nothing)
local function inv_sum(kheld)
  local t = redis.call('HGET', kheld, INV_SUM)
  if t then return tonumber(t) end
  return inv_sum_all(kheld)
end

-- keeps the total after a quantity changed by d (call it after the change): adds d, or
-- counts the total once when it is not kept yet; the field goes away with the last hold
local function inv_sum_add(kheld, d)
  if redis.call('HEXISTS', kheld, INV_SUM) == 1 then
    if d ~= 0 and redis.call('HINCRBY', kheld, INV_SUM, d) == 0 then redis.call('HDEL', kheld, INV_SUM) end
    return
  end
  local t = inv_sum_all(kheld)
  if t > 0 then redis.call('HSET', kheld, INV_SUM, t) end
end

-- the attempt recorded by a committing hold's marker, or nil
local function inv_attempt(marker)
  if not marker then return nil end
  return string.match(marker, '^([^|]*)|')
end

-- v = max(v, version): the counter has seen an operation of that PostgreSQL version
local function inv_bump(kver, version)
  local cur = tonumber(redis.call('HGET', kver, 'v') or '-1')
  if version > cur then redis.call('HSET', kver, 'v', version) end
end

-- Returns the held hold of holder to the counter (if loaded) and deletes it.
local function inv_drop(kavail, kholds, kheld, holder)
  local q = tonumber(redis.call('HGET', kheld, holder) or '0')
  redis.call('HDEL', kheld, holder)
  inv_sum_add(kheld, -q)
  redis.call('ZREM', kholds, holder)
  if q > 0 and redis.call('EXISTS', kavail) == 1 then redis.call('INCRBY', kavail, q) end
  return q
end

-- Reclaims up to `limit` expired held holds (committing ones are left to recovery).
-- Returns holds reclaimed and units returned.
local function inv_reclaim(kavail, kholds, kheld, kcmt, now, limit)
  local due = redis.call('ZRANGEBYSCORE', kholds, '-inf', now, 'LIMIT', 0, limit)
  local n, units = 0, 0
  for i = 1, #due do
    if redis.call('HEXISTS', kcmt, due[i]) == 0 then
      units = units + inv_drop(kavail, kholds, kheld, due[i])
      n = n + 1
    end
  end
  return n, units
end

-- earliest deadline among the holds, or -1
local function inv_first(kholds)
  local f = redis.call('ZRANGE', kholds, 0, 0, 'WITHSCORES')
  if #f == 0 then return -1 end
  return tonumber(f[2])
end
