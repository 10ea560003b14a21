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

local setmetatable, getmetatable, pcall, error, type = setmetatable,
  getmetatable, pcall, error, type
local future, await = core.future, core.await
local huge = math.huge

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

local function check(self, mt, fname)
  if getmetatable(self) ~= mt then
    error(("bad argument #1 to '%s' (%s expected, got %s)")
      :format(fname, mt.__name, type(self)), 3)
  end
end

-- }====================================================================


-- {====================================================================
-- Lock

local lock_methods = {}
local lock_mt = { __name = "loom.lock", __index = lock_methods }
lock_mt.__tostring = function(l)
  return ("loom.lock (%s)"):format(l.held and "locked" or "unlocked")
end

--- loom.lock()
function M.lock()
  return setmetatable({ held = false, waiters = new_waiters() }, lock_mt)
end

function lock_methods:acquire()
  check(self, lock_mt, "acquire")
  if not self.held and not waiting(self.waiters) then
    self.held = true
    return true
  end
  local f = push(self.waiters)
  wait_on(f, function() self:release() end)
  return true  -- handed over by release: 'held' stayed true
end

function lock_methods:release()
  check(self, lock_mt, "release")
  if not self.held then
    error("loom.lock: release of a lock that is not locked", 2)
  end
  local next_waiter = pop(self.waiters)
  if next_waiter then next_waiter:set_result()  -- the lock goes to it
  else self.held = false end
end

function lock_methods:locked()
  check(self, lock_mt, "locked")
  return self.held
end

function lock_methods:hold()
  check(self, lock_mt, "hold")
  self:acquire()
  return guard(self.release, self)
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
  check(self, event_mt, "set")
  self.flag = true
  local f = pop(self.waiters)
  while f do
    f:set_result()
    f = pop(self.waiters)
  end
end

function event_methods:clear()
  check(self, event_mt, "clear")
  self.flag = false
end

function event_methods:is_set()
  check(self, event_mt, "is_set")
  return self.flag
end

function event_methods:wait()
  check(self, event_mt, "wait")
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
  elseif getmetatable(lock) ~= lock_mt then
    error(("bad argument #1 to 'loom.condition' (loom.lock expected, got %s)")
      :format(type(lock)), 2)
  end
  return setmetatable({ lock = lock, waiters = new_waiters() }, cond_mt)
end

-- Re-acquires the lock even through cancellations; returns the first.
local function reacquire(lock)
  local err
  while true do
    local ok, e = pcall(lock.acquire, lock)
    if ok then return err end
    err = err or e
  end
end

--[[ RATIONALE: a wait that raises may have been notified first (before
  the cancellation, or while getting the lock back): as asyncio does, it
  then notifies another waiter, so that no notification is lost; a
  spurious wake-up is allowed by the condition variable protocol. ]]
function cond_methods:wait()
  check(self, cond_mt, "wait")
  if not self.lock.held then
    error("loom.condition: wait without holding its lock", 2)
  end
  self.lock:release()
  local f = push(self.waiters)
  local ok, e = pcall(await, f)
  if not ok and not f:done() then f:cancel() end  -- leave the queue
  local err = reacquire(self.lock)
  if ok and err == nil then return true end
  self:_notify(1)
  error(ok and err or e, 0)
end

function cond_methods:wait_for(pred)
  check(self, cond_mt, "wait_for")
  local r = pred()
  while not r do
    self:wait()
    r = pred()
  end
  return r
end

function cond_methods:_notify(n)
  while n > 0 do
    local f = pop(self.waiters)
    if not f then return end
    f:set_result()
    n = n - 1
  end
end

function cond_methods:notify(n)
  check(self, cond_mt, "notify")
  if not self.lock.held then
    error("loom.condition: notify without holding its lock", 2)
  end
  n = n == nil and 1 or n
  if math.type(n) ~= "integer" or n < 0 then
    error("bad argument #1 to 'notify' (non-negative integer expected)", 2)
  end
  self:_notify(n)
end

function cond_methods:notify_all()
  check(self, cond_mt, "notify_all")
  if not self.lock.held then
    error("loom.condition: notify_all without holding its lock", 2)
  end
  self:_notify(huge)
end

function cond_methods:hold()
  check(self, cond_mt, "hold")
  return self.lock:hold()
end

-- }====================================================================


-- {====================================================================
-- Semaphore

local sem_methods = {}
local sem_mt = { __name = "loom.semaphore", __index = sem_methods }
sem_mt.__tostring = function(s)
  return ("loom.semaphore (%d of %d free)"):format(s.value, s.initial)
end

--- loom.semaphore(n [, {bounded = true}])
function M.semaphore(n, opts)
  if type(n) ~= "number" or n < 0 or n % 1 ~= 0 then
    error(("bad argument #1 to 'loom.semaphore' (non-negative integer "
      .. "expected, got %s)"):format(tostring(n)), 2)
  end
  if opts ~= nil and type(opts) ~= "table" then
    error("bad argument #2 to 'loom.semaphore' (table expected)", 2)
  end
  return setmetatable({ value = n, initial = n,
                        bounded = opts and opts.bounded or false,
                        waiters = new_waiters() }, sem_mt)
end

function sem_methods:acquire()
  check(self, sem_mt, "acquire")
  if self.value > 0 and not waiting(self.waiters) then
    self.value = self.value - 1
    return true
  end
  wait_on(push(self.waiters), function() self:release() end)
  return true  -- a permit was handed over
end

function sem_methods:release()
  check(self, sem_mt, "release")
  local next_waiter = pop(self.waiters)
  if next_waiter then
    next_waiter:set_result()  -- the permit goes to it
    return
  end
  if self.bounded and self.value >= self.initial then
    error("loom.semaphore: released more times than acquired", 2)
  end
  self.value = self.value + 1
end

function sem_methods:available()
  check(self, sem_mt, "available")
  return self.value
end

function sem_methods:hold()
  check(self, sem_mt, "hold")
  self:acquire()
  return guard(self.release, self)
end

-- }====================================================================

return M
