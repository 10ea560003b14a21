--[[ loom.group: structured concurrency (asyncio's TaskGroup, Trio's
  nursery).

  loom.group(fn) calls fn(g) in the running task; g:spawn(f, ...) starts
  children.  The group returns when fn and every child are done: no
  child outlives it.  The first failure (of a child or of fn) cancels
  the other children and fn's task where it waits, and is raised once
  they have all finished; when there were several and the first is a
  table, the others are in err.errors (all of them, first included).
  When the task running the group is cancelled, the children are
  cancelled and waited for, then the cancellation goes on.

  RATIONALE: a string error cannot carry the others; those are then
  left unobserved, so they are reported rather than lost.
]]
local core = ...

local setmetatable, pcall, error, type, ipairs = setmetatable, pcall,
  error, type, ipairs
local spawn, current, watch, wait_done, state = core.spawn, core.current,
  core.watch, core.wait_done, core.state
local is_cancelled = core.is_cancelled
local check = core.check

local M = {}

local group_methods = {}
local group_mt = {
  __name = "loom.group",
  __index = group_methods,
  __tostring = function(g)
    return ("loom.group (%d children)"):format(#g.children)
  end,
}

-- From now on the group is cancelling: its children are cancelled.
local function cancel_children(g)
  g.cancelling = true
  for _, c in ipairs(g.children) do
    if not c:done() then c:cancel() end
  end
end

-- The first failure: cancel the rest, and the group's own task if it
-- is waiting in fn (it then gets a Cancelled that the group swallows).
local function fail(g, x)
  if g.first == nil then g.first = x end
  g.failed[#g.failed + 1] = x
  if not g.cancelling then
    cancel_children(g)
    if g.in_body then g.owner:cancel("a task of its group failed") end
  end
end

--- g:spawn(f, ...): starts a child task of the group.
function group_methods:spawn(f, ...)
  check.self(self, group_mt, "group:spawn")
  check.callable(f, 1, "group:spawn")
  if self.closed then
    check.raise("loom.group: spawn on a group that has finished")
  end
  local child = spawn(f, ...)
  self.children[#self.children + 1] = child
  if self.cancelling then child:cancel() end
  watch(child, function(x)
    if state(x) == "failed" then fail(self, x) end
  end)
  return child
end

-- Waits for every child; cancellations of the owner meanwhile cancel
-- the children and are raised afterwards, unless the group caused them.
local function join(g)
  local outer
  local i = 1
  while i <= #g.children do
    local c = g.children[i]
    if c:done() then
      i = i + 1
    else
      local ok, e = pcall(wait_done, c)
      if not ok then
        if not (g.cancelling and is_cancelled(e)) then outer = outer or e end
        cancel_children(g)
      end
    end
  end
  return outer
end

-- Sets and returns err.errors: err, then the errors of the failed
-- children from the 'from'-th on.
local function gather_errors(err, g, from)
  local errors = { err }
  for i = from, #g.failed do errors[#errors + 1] = g.failed[i]:error() end
  err.errors = errors
  return errors
end

--- loom.group(fn): see above.
function M.group(fn)
  check.callable(fn, 1, "loom.group")
  check.task("loom.group")
  local owner = current()
  local g = setmetatable({ children = {}, failed = {}, owner = owner,
                           in_body = true }, group_mt)
  local ok, body_err = pcall(fn, g)
  g.in_body = false
  local body_failed, body_first = false, false
  if not ok and not (g.cancelling and is_cancelled(body_err)) then
    -- fn failed, or the owner was cancelled while in fn
    body_failed = true
    body_first = g.first == nil
    if not g.cancelling then cancel_children(g) end
  end
  local outer = join(g)
  g.closed = true
  if body_failed and (body_first or is_cancelled(body_err)) then
    -- fn's own error came first (or the owner was cancelled in fn)
    if type(body_err) == "table" and #g.failed > 0 then
      gather_errors(body_err, g, 1)
    end
    error(body_err, 0)
  end
  if outer ~= nil then error(outer, 0) end
  if g.first == nil then return end
  local first = g.first
  local err = first:error()
  if type(err) == "table" and (#g.failed > 1 or body_failed) then
    local errors = gather_errors(err, g, 2)
    if body_failed then errors[#errors + 1] = body_err end
  end
  return first:await()  -- raises it, with the child's traceback
end

return M
