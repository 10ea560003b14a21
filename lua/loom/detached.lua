--[[ loom.detached: the body of a task that nobody awaits.

  A connection's handler (net.listen) and a signal's handler (signal.on)
  run as tasks of their own that no one awaits.  A failing handler is
  reported at once, with its traceback, not when its task happens to be
  collected; a cancellation goes through, so the task ends cancelled.
]]
local core = ...

local xpcall, pcall, error, tostring = xpcall, pcall, error, tostring
local traceback = debug.traceback
local current, is_cancelled, report = core.current, core.is_cancelled,
  core.report

local REPORTED = {}  -- what on_error leaves of an error it reported

local function on_error(e)
  if is_cancelled(e) then return e end
  local where = current() and current().name or "?"
  report(("error in task '%s': %s"):format(where, tostring(e)),
    traceback("stack traceback of task '" .. where .. "':", 2))
  return REPORTED
end

--- detached(fn, ...): calls fn(...); reports its error, passes on a
-- cancellation.
-- NOTE: Lua calls no message handler for a memory error, so on_error
-- never saw it: it is reported here, or, when even that runs out of
-- memory, raised, so that the task fails with it and the scheduler
-- reports it.  A failing handler is never silent.
return function(fn, ...)
  local ok, e = xpcall(fn, on_error, ...)
  if ok or e == REPORTED then return end
  if is_cancelled(e) then error(e, 0) end
  local where = current() and current().name or "?"
  if not pcall(report, ("error in task '%s': %s"):format(where, tostring(e)),
               "(no memory was left for a traceback)") then
    error(e, 0)
  end
end
