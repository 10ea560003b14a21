--[[ loom.queue: FIFO, LIFO and priority queues between tasks.

  loom.queue{maxsize = 0, order = "fifo" | "lifo" | "priority"}; maxsize
  0 means unbounded.  :put(v [, priority]) suspends while the queue is
  full (backpressure), :get() while it is empty.  Priority: lower first,
  FIFO among equals.  :close() ends it: further puts raise, getters
  drain what is left, then get nil, "closed".

  Waiting getters and putters are woken in order, and take or add the
  item themselves once they run (as asyncio.Queue does): an item is never
  handed to a task that is being cancelled, so none is lost, and a woken
  waiter that is cancelled passes the wake-up on.
]]
local core = ...

local setmetatable, getmetatable, pcall, error, type, tostring =
  setmetatable, getmetatable, pcall, error, type, tostring
local future, await = core.future, core.await

local M = {}

local queue_methods = {}
local queue_mt = { __name = "loom.queue", __index = queue_methods }
queue_mt.__tostring = function(q)
  return ("loom.queue (%s, %d item(s)%s)"):format(q.order, q.n,
    q.closed and ", closed" or "")
end

-- {====================================================================
-- Storage: 'items' is a ring (fifo), a stack (lifo) or a binary heap of
-- {priority, seq, value} (priority).

local function heap_less(a, b)
  return a[1] < b[1] or (a[1] == b[1] and a[2] < b[2])
end

local stores = {
  fifo = {
    add = function(q, v) q.last = q.last + 1; q.items[q.last] = v end,
    take = function(q)
      local v = q.items[q.first]
      q.items[q.first] = nil
      q.first = q.first + 1
      return v
    end,
  },
  lifo = {
    add = function(q, v) q.items[q.n + 1] = v end,
    take = function(q)
      local v = q.items[q.n]
      q.items[q.n] = nil
      return v
    end,
  },
  priority = {
    add = function(q, v, p)
      local h = q.items
      q.seq = q.seq + 1
      local i, e = q.n + 1, { p, q.seq, v }
      while i > 1 do
        local parent = i // 2
        if not heap_less(e, h[parent]) then break end
        h[i] = h[parent]
        i = parent
      end
      h[i] = e
    end,
    take = function(q)
      local h, n = q.items, q.n
      local top, last = h[1], h[n]
      h[n] = nil
      n = n - 1
      local i = 1
      while true do
        local c = 2 * i
        if c > n then break end
        if c < n and heap_less(h[c + 1], h[c]) then c = c + 1 end
        if not heap_less(h[c], last) then break end
        h[i] = h[c]
        i = c
      end
      if n > 0 then h[i] = last end
      return top[3]
    end,
  },
}

-- }====================================================================

local function new_waiters() return { head = 1, tail = 0 } end

local function push_waiter(w)
  local f = future()
  w.tail = w.tail + 1
  w[w.tail] = f
  return f
end

-- Wakes the first waiter still waiting.
local function wake_next(w)
  while w.head <= w.tail do
    local f = w[w.head]
    w[w.head] = nil
    w.head = w.head + 1
    if not f:done() then
      f:set_result()
      return
    end
  end
end

local function wake_all(w)
  while w.head <= w.tail do wake_next(w) end
end

-- Waits on 'f' for a turn; if cancelled after being woken, and the
-- reason to wake still holds, the next waiter gets the turn.
local function wait_turn(q, f, w, still_holds)
  local ok, e = pcall(await, f)
  if ok then return end
  if f:done() and not f:cancelled() then
    if still_holds(q) then wake_next(w) end
  else
    f:cancel()
  end
  error(e, 0)
end

local orders = { fifo = true, lifo = true, priority = true }

--- loom.queue{maxsize = 0, order = "fifo"}
function M.queue(opts)
  opts = opts or {}
  if type(opts) ~= "table" then
    error(("bad argument #1 to 'loom.queue' (table expected, got %s)")
      :format(type(opts)), 2)
  end
  local maxsize, order = opts.maxsize or 0, opts.order or "fifo"
  if type(maxsize) ~= "number" or maxsize < 0 or maxsize % 1 ~= 0 then
    error("bad argument #1 to 'loom.queue' (maxsize must be a "
      .. "non-negative integer)", 2)
  end
  if not orders[order] then
    error(("bad argument #1 to 'loom.queue' (invalid order '%s': 'fifo', "
      .. "'lifo' or 'priority')"):format(tostring(order)), 2)
  end
  return setmetatable({
    maxsize = maxsize, order = order, store = stores[order], items = {},
    n = 0, first = 1, last = 0, seq = 0, unfinished = 0, closed = false,
    getters = new_waiters(), putters = new_waiters(), joiners = {},
  }, queue_mt)
end

local function check(q, fname)
  if getmetatable(q) ~= queue_mt then
    error(("bad argument #1 to '%s' (loom.queue expected, got %s)")
      :format(fname, type(q)), 3)
  end
end

local function is_full(q) return q.maxsize > 0 and q.n >= q.maxsize end
local function has_items(q) return q.n > 0 end
local function has_room(q) return not is_full(q) end

function queue_methods:size() check(self, "size") return self.n end
function queue_methods:empty() check(self, "empty") return self.n == 0 end
function queue_methods:full() check(self, "full") return is_full(self) end

local function add(q, v, priority)
  if v == nil then error("loom.queue: cannot put nil", 3) end
  if q.order == "priority" then
    if priority == nil then priority = 0 end
    if type(priority) ~= "number" then
      error("bad argument #2 to 'put' (number expected for the priority)", 3)
    end
  end
  q.store.add(q, v, priority)
  q.n = q.n + 1
  q.unfinished = q.unfinished + 1
  wake_next(q.getters)
end

local function take(q)
  local v = q.store.take(q)
  q.n = q.n - 1
  wake_next(q.putters)
  return v
end

function queue_methods:put_nowait(v, priority)
  check(self, "put_nowait")
  if self.closed then error("loom.queue: put on a closed queue", 2) end
  if is_full(self) then return nil, "full" end
  add(self, v, priority)
  return true
end

function queue_methods:put(v, priority)
  check(self, "put")
  if v == nil then error("loom.queue: cannot put nil", 2) end
  while is_full(self) and not self.closed do
    wait_turn(self, push_waiter(self.putters), self.putters, has_room)
  end
  if self.closed then error("loom.queue: put on a closed queue", 2) end
  add(self, v, priority)
  return true
end

function queue_methods:get_nowait()
  check(self, "get_nowait")
  if self.n == 0 then return nil, self.closed and "closed" or "empty" end
  return take(self)
end

function queue_methods:get()
  check(self, "get")
  while self.n == 0 and not self.closed do
    wait_turn(self, push_waiter(self.getters), self.getters, has_items)
  end
  if self.n == 0 then return nil, "closed" end
  return take(self)
end

function queue_methods:task_done()
  check(self, "task_done")
  if self.unfinished <= 0 then
    error("loom.queue: task_done called more times than items were put", 2)
  end
  self.unfinished = self.unfinished - 1
  if self.unfinished == 0 then
    local joiners = self.joiners
    self.joiners = {}
    for i = 1, #joiners do
      if not joiners[i]:done() then joiners[i]:set_result() end
    end
  end
end

function queue_methods:join()
  check(self, "join")
  if self.unfinished == 0 then return end
  local f = future()
  self.joiners[#self.joiners + 1] = f
  await(f)
end

function queue_methods:close()
  check(self, "close")
  if self.closed then return end
  self.closed = true
  wake_all(self.getters)
  wake_all(self.putters)
end

function queue_methods:iter()
  check(self, "iter")
  return function()
    return (self:get())
  end
end

return M
