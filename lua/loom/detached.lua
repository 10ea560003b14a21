--[[ loom.detached: the body of a task that nobody awaits.

  A connection's handler (net.listen) and a signal's handler (signal.on)
  run as tasks of their own that no one awaits.  A failing handler is
  reported at once, with its traceback, not when its task happens to be
  collected; a cancellation goes through, so the task ends cancelled.
]]
local core = ...

local xpcall, error, tostring = xpcall, error, tostring
local traceback = debug.traceback
local current, is_cancelled, report = core.current, core.is_cancelled,
  core.report

local function on_error(e)
  if is_cancelled(e) then return e end
  local where = current() and current().name or "?"
  report(("error in task '%s': %s"):format(where, tostring(e)),
    traceback("stack traceback of task '" .. where .. "':", 2))
  return e
end

--- detached(fn, ...): calls fn(...); reports its error, passes on a
-- cancellation.
return function(fn, ...)
  local ok, e = xpcall(fn, on_error, ...)
  if not ok and is_cancelled(e) then error(e, 0) end
end
