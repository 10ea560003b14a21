--[[ loom.combinators: waiting on several tasks at once.

  gather, settle, race, wait, as_completed and shield.  Arguments are
  Tasks or Futures; gather, settle and race also take functions, which
  they spawn.  They follow completion through core.watch, a callback
  that does not count as retrieving an error: whatever they do not
  hand back to the caller stays unobserved, so it is reported, never
  silent.

  NOTE: when the task running a combinator is cancelled, gather, settle
  and race cancel what they were waiting for (as asyncio.gather does);
  wait and as_completed cancel nothing.
]]
local core = ...

local select, type, error, pcall = select, type, error, pcall
local ipairs = ipairs
local pack, unpack = table.pack, table.unpack
local spawn, future, await = core.spawn, core.future, core.await
local watch, wait_done, state = core.watch, core.wait_done, core.state
local is_future, deadline = core.is_future, core.deadline

local M = {}

local check = core.check
local argerror, check_task, check_table, check_opts, callable =
  check.argerror, check.task, check.table, check.opts, check.is_callable

-- The i-th argument as a Task or Future; functions are spawned.
local function awaitable(x, i, fname, spawn_functions)
  if is_future(x) then return x end
  if spawn_functions and callable(x) then return spawn(x) end
  check.expected(x, spawn_functions and "Task, Future or function"
    or "Task or Future", i, fname)
end

-- The arguments of gather, settle and race (checked before anything is
-- spawned: outside a task nothing could ever run them).
local function arguments(fname, ...)
  local n = select("#", ...)
  local xs = {}
  check_task(fname)
  for i = 1, n do
    local x = select(i, ...)
    if not is_future(x) and not callable(x) then
      awaitable(x, i, fname, true)  -- raises
    end
  end
  for i = 1, n do xs[i] = awaitable((select(i, ...)), i, fname, true) end
  return xs, n
end

-- Sets 'f' unless it is set already.
local function wake(f)
  if not f:done() then f:set_result() end
end

local function cancel_all(xs, except)
  for _, x in ipairs(xs) do
    if x ~= except and not x:done() then x:cancel() end
  end
end

-- Waits until every item is done; a cancellation of the caller meanwhile
-- is raised once they all are (nothing outlives the combinator).
local function join_all(xs)
  local err
  for _, x in ipairs(xs) do
    while not x:done() do
      local ok, e = pcall(wait_done, x)
      if not ok then
        err = err or e
        cancel_all(xs)
      end
    end
  end
  if err ~= nil then error(err, 0) end
end

-- Awaits 'f', cancelling 'xs' (and waiting for them) if the caller is
-- cancelled or times out meanwhile.
local function await_or_cancel(f, xs)
  local ok, e = pcall(await, f)
  if not ok then
    cancel_all(xs)
    pcall(join_all, xs)
    error(e, 0)
  end
end

--- loom.gather(...): the first result of each, in argument order; on the
-- first error the others are cancelled and that error is raised.
function M.gather(...)
  local xs, n = arguments("loom.gather", ...)
  if n == 0 then return end
  local all, left, failed = future(), n, nil
  for i = 1, n do
    watch(xs[i], function(x)
      if state(x) == "done" then
        left = left - 1
        if left == 0 then wake(all) end
      elseif not failed then
        failed = x
        wake(all)
      end
    end)
  end
  await_or_cancel(all, xs)
  if failed then
    cancel_all(xs, failed)
    join_all(xs)
    return failed:await()  -- raises its error, traceback chained
  end
  local results = {}
  for i = 1, n do results[i] = (xs[i]:result()) end
  return unpack(results, 1, n)
end

--- loom.settle(...): one table per argument, {ok = true, n = k, ...} or
-- {ok = false, error = e}, in argument order; never raises their errors.
function M.settle(...)
  local xs, n = arguments("loom.settle", ...)
  local all, left = future(), n
  if n == 0 then return end
  for i = 1, n do
    watch(xs[i], function()
      left = left - 1
      if left == 0 then wake(all) end
    end)
  end
  await_or_cancel(all, xs)
  local out = {}
  for i = 1, n do
    local x = xs[i]
    local r = pack(pcall(x.result, x))
    if r[1] then
      out[i] = { ok = true, n = r.n - 1, unpack(r, 2, r.n) }
    else
      out[i] = { ok = false, error = r[2] }
    end
  end
  return unpack(out, 1, n)
end

--- loom.race(...): the results (or error) of the first to finish; the
-- others are cancelled, and have finished when race returns.
function M.race(...)
  local xs, n = arguments("loom.race", ...)
  if n == 0 then argerror(1, "loom.race", "nothing to race") end
  local first_done, first = future(), nil
  for i = 1, n do
    watch(xs[i], function(x)
      if not first then
        first = x
        wake(first_done)
      end
    end)
  end
  await_or_cancel(first_done, xs)
  cancel_all(xs, first)
  join_all(xs)
  return first:await()
end

local return_whens = { all = true, first = true, first_error = true }

--- loom.wait(list, {return_when = "all" | "first" | "first_error",
-- timeout = s}): returns done, pending (lists, in list order); cancels
-- nothing.
function M.wait(list, opts)
  check_table(list, 1, "loom.wait")
  opts = check_opts(opts, 2, "loom.wait")
  local when = opts.return_when or "all"
  if not return_whens[when] then
    argerror(2, "loom.wait", ("invalid return_when '%s': 'all', 'first' or "
      .. "'first_error'"):format(check.show(when)))
  end
  local timeout = opts.timeout
  if timeout ~= nil and (type(timeout) ~= "number" or not (timeout >= 0)) then
    argerror(2, "loom.wait", "timeout must be a non-negative number")
  end
  local xs = {}
  for i, x in ipairs(list) do
    xs[i] = awaitable(x, i, "loom.wait", false)
  end
  check_task("loom.wait")
  local ready, left = future(), #xs
  local function on_done(x)
    local st = state(x)
    left = left - 1
    if left == 0 or when == "first"
        or (when == "first_error" and st == "failed") then
      wake(ready)
    end
  end
  for _, x in ipairs(xs) do watch(x, on_done) end
  if #xs == 0 then wake(ready) end
  if not ready:done() then
    local d <close> = timeout and deadline(timeout, "loom.wait") or nil
    local ok, e = pcall(await, ready)
    if not ok and not (d and d:fired() and core.is_timeout(e)) then
      error(e, 0)
    end
  end
  local done, pending = {}, {}
  for _, x in ipairs(xs) do
    local into = x:done() and done or pending
    into[#into + 1] = x
  end
  return done, pending
end

--- loom.as_completed(list): an iterator over the items of 'list' in the
-- order they finish.
function M.as_completed(list)
  check_table(list, 1, "loom.as_completed")
  local finished, head, tail, total = {}, 1, 0, #list
  local waiting
  for i, x in ipairs(list) do
    awaitable(x, i, "loom.as_completed", false)
    watch(x, function(y)
      tail = tail + 1
      finished[tail] = y
      if waiting then wake(waiting) end
    end)
  end
  return function()
    check_task("loom.as_completed")
    if head > total then return nil end
    while finished[head] == nil do
      waiting = future()
      await(waiting)
      waiting = nil
    end
    local x = finished[head]
    finished[head] = nil
    head = head + 1
    return x
  end
end

--- loom.shield(x): awaits x; cancelling the caller does not cancel x.
function M.shield(x)
  check_task("loom.shield")
  x = awaitable(x, 1, "loom.shield", true)
  wait_done(x)
  return x:await()
end

return M
