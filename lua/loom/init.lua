--[[ loom: the public table.

  The C core hands over its functions in 'core'; this module adds the
  parts that read better in Lua (timeouts, periodic tasks, the async
  wrapper) and installs a 'require' that tasks can suspend in.
]]
local core = ...

local pcall, error, type = pcall, error, type
local pack, unpack = table.pack, table.unpack
local spawn, await, sleep, now = core.spawn, core.await, core.sleep, core.now
local deadline, is_timeout = core.deadline, core.is_timeout

local M = {}

for _, k in ipairs {
  "spawn", "await", "future", "current", "tasks", "yield",
  "sleep", "now", "run", "run_with", "debug", "work", "queue",
  "Cancelled", "Timeout", "is_cancelled", "is_timeout", "version",
} do
  M[k] = core[k]
end

-- The pieces loom's Lua-side modules share, handed over in 'core'.
core.check = core.embedded("loom.check")(core)
core.detached = core.embedded("loom.detached")(core)

--- core.lines(x): the iterator of x:lines() for a File or a Stream: its
-- lines to EOF; other failures raise (as io.lines does).
function core.lines(x)
  return function()
    local line, err, code = x:read_line()
    if line ~= nil then return line end
    if code == "EOF" then return nil end
    error(err, 2)
  end
end
local check = core.check
local check_task, check_callable, check_duration, argerror =
  check.task, check.callable, check.duration, check.argerror

local is_awaitable = core.is_future

--- loom.async(fn): a function that spawns fn with its arguments.
function M.async(fn)
  check_callable(fn, 1, "loom.async")
  return function(...)
    return spawn(fn, ...)
  end
end

--- loom.timeout(s, fn, ...): fn(...) in this task, for at most s seconds.
-- RATIONALE: the deadline raises loom.Timeout at the task's suspension
-- point; the error then unwinds through fn's cleanup and out of here
-- unchanged, and the <close> variable takes the deadline down on every
-- way out, so scopes nest without any bookkeeping.  When fn returns
-- although the deadline fired (code in it caught the Timeout, perhaps
-- taking it for an inner scope's), the Timeout is raised here anyway:
-- fn was not done in time.
function M.timeout(s, fn, ...)
  check_duration(s, 1, "loom.timeout")
  check_callable(fn, 2, "loom.timeout")
  check_task("loom.timeout")
  local d <close> = deadline(s, "loom.timeout")
  local r = pack(fn(...))
  if d:fired() then
    error(M.Timeout(("timed out after %gs"):format(s)), 0)
  end
  return unpack(r, 1, r.n)
end

--- loom.wait_for(x, s): await x for at most s seconds; on timeout x is
-- cancelled (and its cleanup awaited) and loom.Timeout raised.
function M.wait_for(x, s)
  if not is_awaitable(x) then
    check.expected(x, "Task or Future", 1, "loom.wait_for")
  end
  check_duration(s, 2, "loom.wait_for")
  check_task("loom.wait_for")
  local d <close> = deadline(s, "loom.wait_for")
  local r = pack(pcall(await, x))
  if r[1] then return unpack(r, 2, r.n) end
  if d:fired() and is_timeout(r[2]) and x:cancel() then
    d:close()
    pcall(await, x)
  end
  error(r[2], 0)
end

--- loom.later(s, fn, ...): spawns fn(...) after s seconds; the Task
-- returned is the handle (:cancel()).
function M.later(s, fn, ...)
  check_duration(s, 1, "loom.later")
  check_callable(fn, 2, "loom.later")
  local t = spawn(function(...)
    sleep(s)
    return fn(...)
  end, ...)
  t.name = "later"
  return t
end

--- loom.every(s, fn, ...): runs fn(...) every s seconds until the
-- returned handle is cancelled or fn returns false.  Ticks are kept on
-- a fixed schedule; a tick that runs late does not cause a burst.
function M.every(s, fn, ...)
  check_duration(s, 1, "loom.every")
  if s == 0 then argerror(1, "loom.every", "interval must be positive") end
  check_callable(fn, 2, "loom.every")
  local t = spawn(function(...)
    local due = now() + s
    while true do
      local wait = due - now()
      sleep(wait > 0 and wait or 0)
      if fn(...) == false then return end
      due = due + s
      if due < now() then due = now() + s end
    end
  end, ...)
  t.name = "every"
  return t
end

-- The Lua-side parts, each in a module of its own, merged into 'loom'.
for _, name in ipairs {
  "loom.combinators", "loom.group", "loom.sync",
} do
  for k, v in pairs(core.embedded(name)(core)) do M[k] = v end
end

-- loom.net, loom.fs, loom.process, loom.signal, loom.json; also found as
-- require "loom.net" and so on
for _, name in ipairs { "net", "fs", "process", "signal", "json" } do
  M[name] = core.embedded("loom." .. name)(core, M)
  package.loaded["loom." .. name] = M[name]
end

M.log = core.embedded("loom.log")(core)
package.loaded["loom.log"] = M.log

-- When package.loaded forgets them (busted empties it between spec
-- files), require "loom.net" and the others find the same tables again;
-- the parts loaded above are loom's own, not for require.
for _, name in ipairs { "net", "fs", "process", "signal", "json", "log" } do
  local m = M[name]
  package.preload["loom." .. name] = function() return m end
end
for _, name in ipairs { "check", "detached", "combinators", "group", "sync",
                        "require", "http_server", "http_client",
                        "websocket" } do
  package.preload["loom." .. name] = nil
end

--- loom.console(path): a live console into this program on the Unix
-- socket 'path' (lua/loom/console.lua, loaded on first use).
function M.console(path)
  return require("loom.console").listen(path)
end

-- loom.http is loaded on first use: it is larger than the rest, and a
-- script that speaks no HTTP need not parse it.  The standard streams
-- are made on first use too: a script that never touches loom.stdin
-- leaves standard input to C stdio.
local STDIO = { stdin = 0, stdout = 1, stderr = 2 }
setmetatable(M, { __index = function(t, k)
  if k == "http" then
    local http = require "loom.http"
    rawset(t, k, http)
    return http
  end
  local fd = STDIO[k]
  if fd then
    local s = core.stdio(fd)
    rawset(t, k, s)
    return s
  end
end })

-- A 'require' that tasks can suspend in (Lua's own is a C function that
-- Lua cannot yield across).
if type(package) == "table" then
  _G.require = core.embedded("loom.require")(core.current, core.future)
end

return M
