--[[ loom.busted: async tests for busted.

    local async = require("loom.busted").async
    it("...", async(function() ... end [, {timeout = 5, clock = "virtual"}]))

  The body runs as a task on a fresh loop, on the virtual clock when
  asked.  The timeout is real time on either clock: a test still running
  after 'timeout' seconds fails with the list of the tasks still pending
  and where each one waits.  A task started during the test that fails
  with nobody observing its error fails the test with that error and its
  traceback: a connection's or a signal's handler at once (the test is
  cancelled), a task nobody awaited when the body returns.  Tasks the
  body leaves behind are cancelled when it returns, so that one test
  cannot leak into the next.
]]
local loom = require "loom"
local _, core = ...  -- the private core, from src/module.c's loader
local check = core.check

local pcall, xpcall, error, type, tostring = pcall, xpcall, error, type,
  tostring
local concat, pack, unpack = table.concat, table.pack, table.unpack
local traceback = debug.traceback
local is_cancelled = core.is_cancelled

local M = {}

-- Where each live task but 'skip' waits, one block per task.
local function describe_tasks(skip)
  local out = {}
  for _, t in ipairs(loom.tasks()) do
    if t ~= skip then
      out[#out + 1] = ("task '%s':\n%s"):format(t.name, t:traceback())
    end
  end
  return #out > 0 and concat(out, "\n") or "(none)"
end

local function cancel_others(skip)
  local left = {}
  for _, t in ipairs(loom.tasks()) do
    if t ~= skip and t ~= loom.current() then
      t:cancel("the test ended")
      left[#left + 1] = t
    end
  end
  for _, t in ipairs(left) do pcall(loom.await, t) end
end

-- {==================================================================
-- Failures nobody observed

-- NOTE: every error the core cannot hand to anyone (a failure nobody
-- observed, reported when the loop ends, when its task is collected or
-- at core.report_unobserved(); an error in an on_done callback or an
-- alarm) goes through core.set_report's function while a test runs: it
-- is the test's failure, with its traceback, not a line on stderr.
local function collect_reports(failures)
  return core.set_report(function(msg, trace)
    failures[#failures + 1] = trace ~= "" and msg .. "\n" .. trace or msg
  end)
end

-- The body of a handler's task (core.detached) while a test runs: its
-- failure is the test's, and ends it at once.
local function detached_for(failures, main)
  return function(fn, ...)
    local ok, e = xpcall(fn, function(e)
      if is_cancelled(e) then return e end
      local t = loom.current()
      failures[#failures + 1] = ("error in task '%s': %s\n%s"):format(
        t and t.name or "?", tostring(e),
        traceback(nil, 2))
      main:cancel("a task of the test failed")
      return e
    end, ...)
    if not ok and is_cancelled(e) then error(e, 0) end
  end
end
-- }==================================================================

-- What a test opens stays open when it fails, and would keep the loop
-- (and busted) running: servers (HTTP ones too, with their idle
-- connections) and UDP sockets are closed when the body ends, and
-- children still running are killed and reaped.  A signal handler left
-- behind would run in the next test: it is cancelled.
local function close_socket(s) pcall(s.close, s) end

local function end_process(p)
  local ok, sent = pcall(p.kill, p, "SIGKILL")
  if ok and sent then pcall(p.wait, p) end
  pcall(p.close, p)
end

local function cancel_handler(h) pcall(h.cancel, h) end

local tracked = {
  { "net", "listen", close_socket }, { "net", "listen_unix", close_socket },
  { "net", "udp", close_socket }, { "process", "spawn", end_process },
  { "signal", "on", cancel_handler },
  { "http", "serve", close_socket },  -- its idle connections end too
}

-- Starts following what the test opens; returns the function that
-- ends what is left and puts the module functions back.
local function track_handles()
  local opened, saved = setmetatable({}, { __mode = "k" }), {}
  for i, x in ipairs(tracked) do
    local mod, name, finish = loom[x[1]], x[2], x[3]
    local open = mod[name]
    saved[i] = open
    mod[name] = function(...)
      local h, e, code = open(...)
      if h then opened[h] = finish end
      return h, e, code
    end
  end
  return function()
    for i, x in ipairs(tracked) do loom[x[1]][x[2]] = saved[i] end
    for h, finish in pairs(opened) do finish(h) end
  end
end

--- async(fn [, opts]): a busted test body that runs 'fn' as a task.
function M.async(fn, opts)
  check.callable(fn, 1, "async")
  opts = check.opts(opts, 2, "async")
  local timeout = opts.timeout or 5
  if type(timeout) ~= "number" or not (timeout > 0) then
    check.argerror(2, "async", "timeout must be a positive number")
  end
  local clock = opts.clock or "real"
  return function(...)
    local args = pack(...)
    local failures = {}
    local saved_detached = core.detached
    local saved_report = collect_reports(failures)
    local ok, e = pcall(loom.run_with, { clock = clock }, function()
      local main = loom.current()
      main.name = "test"
      core.detached = detached_for(failures, main)
      local untrack = track_handles()
      local report
      local alarm = core.alarm(timeout, function()
        report = describe_tasks()
        main:cancel("the test timed out")
      end)
      local ok, e = pcall(fn, unpack(args, 1, args.n))
      alarm:cancel()
      cancel_others(main)
      untrack()
      core.report_unobserved()
      if report then
        error(("test timed out after %s s; pending tasks:\n%s%s")
          :format(tostring(timeout), report, #failures > 0
            and "\nand tasks failed:\n" .. concat(failures, "\n") or ""), 0)
      end
      if #failures > 0 then
        if not ok and not is_cancelled(e) then
          failures[#failures + 1] = "and the test itself: " .. tostring(e)
        end
        error(concat(failures, "\n"), 0)
      end
      if not ok then error(e, 0) end
    end)
    core.detached = saved_detached
    core.set_report(saved_report)
    if ok and #failures > 0 then  -- reported as the loop ended
      error(concat(failures, "\n"), 0)
    end
    if not ok then error(e, 0) end
  end
end

return M
