--[[ loom.check: the argument checks of loom's Lua-side modules.

  Misuse raises "bad argument #n to 'fname' (...)", as luaL_argerror
  does in C, and names the line of the user's code that made the call:
  the first frame on the stack that is not one of loom's embedded
  chunks.  So a check may sit any number of calls deep (a wrapper, a
  helper of a helper) without counting levels.
]]
local core = ...

local type, error, getmetatable, tostring = type, error, getmetatable,
  tostring
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

--- argerror(n, fname, msg): raises "bad argument #n to 'fname' (msg)"
function M.argerror(n, fname, msg)
  raise(("bad argument #%d to '%s' (%s)"):format(n, fname, msg))
end
local argerror = M.argerror

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

function M.callable(f, n, fname)
  if not is_callable(f) then
    argerror(n, fname, "function expected, got " .. type(f))
  end
end

function M.string(v, n, fname)
  if type(v) ~= "string" then
    argerror(n, fname, "string expected, got " .. type(v))
  end
end

--- opts(opts, n, fname): the options table, {} for nil
function M.opts(opts, n, fname)
  if opts ~= nil and type(opts) ~= "table" then
    argerror(n, fname, "table expected, got " .. type(opts))
  end
  return opts or {}
end

--- duration(s, n, fname): a number of seconds, not negative
function M.duration(s, n, fname)
  if type(s) ~= "number" then
    argerror(n, fname, "number expected, got " .. type(s))
  end
  if not (s >= 0) then
    argerror(n, fname, "duration must be a non-negative number, got "
      .. tostring(s))
  end
end

return M
