-- base_lib: helpers that lua.Source prepends to every script; not a script on its own.
-- Source first declares `local SCRIPT = '<script name>'`, used in error replies.
--
-- The conventions every script follows:
--   * Its header names its KEYS, its ARGV and its replies.
--   * Bad input (an ARGV the Go side should never send) is an error reply
--     'ERR <script>: bad <what>', raised before the first write: Lua in Redis has no
--     rollback, so a script that failed half-way would leave its first writes in place.
--   * Every outcome is a reply table whose first element is a status string ('OK',
--     'LOAD_REQUIRED', 'LOCKED', ...), followed by the values of that outcome. The Go side
--     maps each status to a result or to one of its package's sentinel errors.
--   * Time is Redis TIME (now_ms, now_us), never a clock sent by the caller.

-- now_us: Redis time in microseconds since the epoch
local function now_us()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end

-- now_ms: Redis time in milliseconds since the epoch
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- bad_arg raises the error reply 'ERR <script>: bad <what>'.
local function bad_arg(what)
  error(redis.error_reply('ERR ' .. SCRIPT .. ': bad ' .. what))
end

-- arg_int: s (an ARGV value) as an integer >= min, else bad_arg(what)
local function arg_int(s, min, what)
  local n = tonumber(s)
  if not n or n ~= math.floor(n) or n < min or n == math.huge then bad_arg(what) end
  return n
end

-- arg_str: s (an ARGV value) when it is a non-empty string, else bad_arg(what)
local function arg_str(s, what)
  if type(s) ~= 'string' or s == '' then bad_arg(what) end
  return s
end
