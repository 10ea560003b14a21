--[[ loom.signal: waiting for and reacting to signals.

  signal.wait(name, ...) suspends the task until one of the named
  signals comes and returns its name; signal.on(name, fn) runs fn(name)
  as a new task on each delivery until its handle is cancelled.

  The watchers are C (src/signal.c): each calls a Lua function from the
  loop when its signal comes.  A watcher of signal.on is unreferenced:
  it keeps nothing alive by itself (a server that waits for SIGHUP runs
  for its server, not for the watcher).  signal.wait is a pending wait,
  like a sleep: the loop runs on while a task waits for a signal.
  While a script watches SIGINT, the binary's own Ctrl-C handling
  (cancel the main task, exit 130) stands aside.
]]
local core = ...
local csig = core.sig

local error, pcall, tostring, select, type = error, pcall, tostring, select,
  type
local spawn, future, await = core.spawn, core.future, core.await

local M = {}

-- The number and the canonical name of signal 'sig', or raises.
local function check_signal(sig, n, fname)
  if type(sig) == "string" then core.check.cstring(sig, n, fname) end
  local num, name = csig.signum(sig)
  if not num or num == 0 then
    core.check.argerror(n, fname, "unknown signal '" .. tostring(sig) .. "'")
  end
  return num, name
end

--- signal.wait(name, ...) (suspends): the name of the first of the
-- signals to come.
function M.wait(...)
  local n = select("#", ...)
  if n == 0 then
    core.check.argerror(1, "signal.wait", "signal name expected")
  end
  local nums = {}
  for i = 1, n do
    nums[i] = check_signal((select(i, ...)), i, "signal.wait")
  end
  core.check.task("signal.wait")
  local got = future()
  local function deliver(name)
    if not got:done() then got:set_result(name) end
  end
  local watchers = {}
  local ok, r = pcall(function()
    for i = 1, n do watchers[i] = csig.watch(nums[i], deliver, true) end
    return await(got)
  end)
  for i = 1, #watchers do watchers[i]:close() end
  if not ok then error(r, 0) end
  return r
end

--- signal.on(name, fn): spawns fn(name) as a task on each delivery;
-- returns a handle with :cancel().
function M.on(sig, fn)
  local num, name = check_signal(sig, 1, "signal.on")
  core.check.callable(fn, 2, "signal.on")
  return csig.watch(num, function(got)
    local t = spawn(core.detached, fn, got)
    t.name = "signal " .. name
  end, false)
end

return M
