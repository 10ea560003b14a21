--[[ loom.check: the argument checks of loom's Lua-side modules.

  Misuse raises "bad argument #n to 'fname' (...)", as luaL_argerror
  does in C, and names the line of the user's code that made the call:
  the first frame on the stack that is not one of loom's embedded
  chunks.  So a check may sit any number of calls deep (a wrapper, a
  helper of a helper) without counting levels.  'fname' is the name as
  the user calls it: 'loom.timeout', 'lock:acquire'.
]]
local core = ...

local type, error, getmetatable, tostring = type, error, getmetatable,
  tostring
local tointeger = math.tointeger
local find = string.find
local getinfo = debug.getinfo
local current = core.current

local M = {}

-- Raises 'msg' at the first frame outside loom (a C frame there, as
-- when a loom function is handed straight to pcall, gives no position).
-- NOTE: the levels of debug.getinfo and error count alike from here;
-- error is not tail-called, which would drop this frame.
local function raise(msg)
  local level = 2
  while true do
    local info = getinfo(level, "S")
    if info == nil then level = 0 break end
    if info.source:sub(1, 7) ~= "@[loom]" then break end
    level = level + 1
  end
  error(msg, level)
end
M.raise = raise

--- show(v): 'v' for a message, as the user would write it (a NaN, which
-- C's printf may spell "-nan", is "nan").
local function show(v)
  if v ~= v then return "nan" end
  return tostring(v)
end
M.show = show

--- argerror(n, fname, msg): raises "bad argument #n to 'fname' (msg)"
local function argerror(n, fname, msg)
  raise(("bad argument #%d to '%s' (%s)"):format(n, fname, msg))
end
M.argerror = argerror

--- task(fname): raises unless a task is running.
function M.task(fname)
  if not current() then
    raise(("loom: %s called outside a task (use loom.run or the loom "
      .. "binary)"):format(fname))
  end
end

--- is_callable(x): a function or a value with a __call metamethod
local function is_callable(x)
  if type(x) == "function" then return true end
  local mt = getmetatable(x)
  return type(mt) == "table" and mt.__call ~= nil
end
M.is_callable = is_callable

--- expected(v, what, n, fname): raises "what expected, got <type>"
local function expected(v, what, n, fname)
  argerror(n, fname, ("%s expected, got %s"):format(what, type(v)))
end
M.expected = expected

function M.callable(f, n, fname)
  if not is_callable(f) then expected(f, "function", n, fname) end
end

function M.string(v, n, fname)
  if type(v) ~= "string" then expected(v, "string", n, fname) end
end

--- cstring(v, n, fname): a string that goes to C as a C string, which
-- ends at the first NUL: one with a NUL inside would mean another
-- ("x\0y" is "x", "local\0host" is "local"), so it is refused.
function M.cstring(v, n, fname)
  if type(v) ~= "string" then expected(v, "string", n, fname) end
  if find(v, "\0", 1, true) then
    argerror(n, fname, "string contains a NUL")
  end
end

function M.table(v, n, fname)
  if type(v) ~= "table" then expected(v, "table", n, fname) end
end

--- TOKEN: the pattern of an HTTP token (RFC 9110, 5.6.2): a method or
-- a header name, in the server and the client alike
M.TOKEN = "^[%w!#$%%&'*+.^_`|~-]+$"

--- opts(opts, n, fname): the options table, {} for nil
function M.opts(opts, n, fname)
  if opts == nil then return {} end
  M.table(opts, n, fname)
  return opts
end

--- self(obj, mt, fname): 'obj' has the metatable 'mt' (a method's
-- receiver, argument 1 of 'obj.method(obj)').
function M.self(obj, mt, fname)
  if getmetatable(obj) ~= mt then expected(obj, mt.__name, 1, fname) end
end

--- count(v, n, fname): a non-negative integer (a float with an exact
-- integer value counts), returned as an integer.
function M.count(v, n, fname)
  local k = type(v) == "number" and tointeger(v) or nil
  if k == nil or k < 0 then
    argerror(n, fname, "non-negative integer expected, got "
      .. (type(v) == "number" and show(v) or type(v)))
  end
  return k
end

--- duration(s, n, fname): a number of seconds, not negative (nor NaN)
function M.duration(s, n, fname)
  if type(s) ~= "number" then expected(s, "number", n, fname) end
  if not (s >= 0) then
    argerror(n, fname, "duration must be a non-negative number, got "
      .. show(s))
  end
end

return M
