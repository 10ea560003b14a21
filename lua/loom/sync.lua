--[[ loom.sync: lock, event, condition and semaphore.

  All waits suspend only the calling task; all are fair (first come,
  first served) and cancellation-safe:
  - a lock or a semaphore permit is handed directly to the first waiter
    (nobody can barge in between), so a waiter cancelled while queued
    never holds anything, and one cancelled just after being handed the
    lock or the permit passes it on to the next waiter;
  - a condition waiter cancelled just after being notified passes the
    notification on, and gets its lock back before the error goes on.
  Every :hold() acquires and returns a to-be-closed guard:
      local _ <close> = lock:hold()
]]
local core = ...

local setmetatable, pcall, error = setmetatable, pcall, error
local future, await = core.future, core.await
local huge = math.huge
local check = core.check
local check_self, check_task, check_opts, check_count, raise =
  check.self, check.task, check.opts, check.count, check.raise

local M = {}

-- {====================================================================
-- Waiter queues: FIFO lists of futures.  A waiter that leaves (cancelled)
-- cancels its future; popping skips such futures.

local function new_waiters()
  return { head = 1, tail = 0 }
end

local function push(q)
  local f = future()
  q.tail = q.tail + 1
  q[q.tail] = f
  return f
end

-- The first waiter still waiting, taken off the queue (or nil).
local function pop(q)
  while q.head <= q.tail do
    local f = q[q.head]
    q[q.head] = nil
    q.head = q.head + 1
    if not f:done() then return f end
  end
end

-- Is anyone still waiting?
local function waiting(q)
  for i = q.head, q.tail do
    if not q[i]:done() then return true end
  end
  return false
end

--[[ Waits on future 'f'.  On a cancellation (or timeout): when 'f' was
  already set (we were handed something), calls 'pass_on' so that it goes
  to the next waiter; else withdraws 'f'.  Then the error goes on. ]]
local function wait_on(f, pass_on)
  local ok, e = pcall(await, f)
  if ok then return end
  if f:done() and not f:cancelled() then
    pass_on()
  else
    f:cancel()
  end
  error(e, 0)
end

local function guard(release, obj)
  return setmetatable({}, { __close = function() release(obj) end,
                            __name = "loom.guard" })
end

-- Checks the receiver of the suspending method 'fname' and that a task
-- runs it (whether or not it would wait, so that code that works when
-- nothing is contended works under load too).
local function check_wait(self, mt, fname)
  check_self(self, mt, fname)
  check_task(fname)
end

-- }====================================================================


-- {====================================================================
-- Permits: a lock holds one, a semaphore n.  'p.value' are free; a
-- release that would free more than 'p.initial' raises 'p.overdone'
-- when 'p.bounded'.

local function new_permits(mt, n, bounded, overdone)
  return setmetatable({ value = n, initial = n, bounded = bounded,
                        overdone = overdone, waiters = new_waiters() }, mt)
end

local function release(p)
  local next_waiter = pop(p.waiters)
  if next_waiter then
    next_waiter:set_result()  -- the permit goes to it
    return
  end
  if p.bounded and p.value >= p.initial then raise(p.overdone) end
  p.value = p.value + 1
end

local function acquire(p)
  if p.value > 0 and not waiting(p.waiters) then
    p.value = p.value - 1
    return true
  end
  wait_on(push(p.waiters), function() release(p) end)
  return true  -- handed over by release: 'value' stayed as it was
end

local function hold(p)
  acquire(p)
  return guard(release, p)
end

-- The methods of a kind of permits ('kind' as in 'lock:acquire').
local function permit_methods(methods, mt, kind)
  local function name(m) return kind .. ":" .. m end
  function methods:acquire()
    check_wait(self, mt, name("acquire"))
    return acquire(self)
  end
  function methods:release()
    check_self(self, mt, name("release"))
    release(self)
  end
  function methods:hold()
    check_wait(self, mt, name("hold"))
    return hold(self)
  end
end

-- }====================================================================


-- {====================================================================
-- Lock

local lock_methods = {}
local lock_mt = { __name = "loom.lock", __index = lock_methods }
lock_mt.__tostring = function(l)
  return ("loom.lock (%s)"):format(l.value == 0 and "locked" or "unlocked")
end
permit_methods(lock_methods, lock_mt, "lock")

--- loom.lock()
function M.lock()
  return new_permits(lock_mt, 1, true,
    "loom.lock: release of a lock that is not locked")
end

function lock_methods:locked()
  check_self(self, lock_mt, "lock:locked")
  return self.value == 0
end

-- }====================================================================


-- {====================================================================
-- Event

local event_methods = {}
local event_mt = { __name = "loom.event", __index = event_methods }
event_mt.__tostring = function(e)
  return ("loom.event (%s)"):format(e.flag and "set" or "clear")
end

--- loom.event()
function M.event()
  return setmetatable({ flag = false, waiters = new_waiters() }, event_mt)
end

function event_methods:set()
  check_self(self, event_mt, "event:set")
  self.flag = true
  local f = pop(self.waiters)
  while f do
    f:set_result()
    f = pop(self.waiters)
  end
end

function event_methods:clear()
  check_self(self, event_mt, "event:clear")
  self.flag = false
end

function event_methods:is_set()
  check_self(self, event_mt, "event:is_set")
  return self.flag
end

function event_methods:wait()
  check_wait(self, event_mt, "event:wait")
  if self.flag then return true end
  wait_on(push(self.waiters), function() end)
  return true
end

-- }====================================================================


-- {====================================================================
-- Condition

local cond_methods = {}
local cond_mt = { __name = "loom.condition", __index = cond_methods }
cond_mt.__tostring = function() return "loom.condition" end

--- loom.condition([lock])
function M.condition(lock)
  if lock == nil then lock = M.lock()
  else check_self(lock, lock_mt, "loom.condition") end
  return setmetatable({ lock = lock, waiters = new_waiters() }, cond_mt)
end

-- Re-acquires the lock even through cancellations; returns the first.
local function reacquire(lock)
  local err
  while true do
    local ok, e = pcall(acquire, lock)
    if ok then return err end
    err = err or e
  end
end

-- Wakes up to 'n' waiters.
local function notify(c, n)
  while n > 0 do
    local f = pop(c.waiters)
    if not f then return end
    f:set_result()
    n = n - 1
  end
end

-- Raises unless the condition's lock is held ('what' the call).
local function check_held(c, what)
  if c.lock.value ~= 0 then
    raise(("loom.condition: %s without holding its lock"):format(what))
  end
end

--[[ RATIONALE: a wait that raises may have been notified first (before
  the cancellation, or while getting the lock back): as asyncio does, it
  then notifies another waiter, so that no notification is lost; a
  spurious wake-up is allowed by the condition variable protocol. ]]
local function cond_wait(c)
  check_held(c, "wait")
  release(c.lock)
  local f = push(c.waiters)
  local ok, e = pcall(await, f)
  if not ok and not f:done() then f:cancel() end  -- leave the queue
  local err = reacquire(c.lock)
  if ok and err == nil then return true end
  notify(c, 1)
  error(ok and err or e, 0)
end

function cond_methods:wait()
  check_wait(self, cond_mt, "condition:wait")
  return cond_wait(self)
end

function cond_methods:wait_for(pred)
  check_wait(self, cond_mt, "condition:wait_for")
  check.callable(pred, 1, "condition:wait_for")
  local r = pred()
  while not r do
    cond_wait(self)
    r = pred()
  end
  return r
end

function cond_methods:notify(n)
  check_self(self, cond_mt, "condition:notify")
  check_held(self, "notify")
  notify(self, n == nil and 1 or check_count(n, 1, "condition:notify"))
end

function cond_methods:notify_all()
  check_self(self, cond_mt, "condition:notify_all")
  check_held(self, "notify_all")
  notify(self, huge)
end

function cond_methods:hold()
  check_wait(self, cond_mt, "condition:hold")
  return hold(self.lock)
end

-- }====================================================================


-- {====================================================================
-- Semaphore

local sem_methods = {}
local sem_mt = { __name = "loom.semaphore", __index = sem_methods }
sem_mt.__tostring = function(s)
  return ("loom.semaphore (%d of %d free)"):format(s.value, s.initial)
end
permit_methods(sem_methods, sem_mt, "semaphore")

--- loom.semaphore(n [, {bounded = true}])
function M.semaphore(n, opts)
  n = check_count(n, 1, "loom.semaphore")
  opts = check_opts(opts, 2, "loom.semaphore")
  return new_permits(sem_mt, n, opts.bounded or false,
    "loom.semaphore: released more times than acquired")
end

function sem_methods:available()
  check_self(self, sem_mt, "semaphore:available")
  return self.value
end

-- }====================================================================

return M
