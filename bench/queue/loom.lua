-- queue: N items through a bounded loom.queue (maxsize 1000) from one
-- producer task to one consumer task.
-- Run as: build/loom bench/queue/loom.lua [N]
-- Prints: items=N seconds=S cpu=C maxsize=1000 clock=loom.now
--
-- The producer puts 1..N and closes the queue; the consumer gets until the
-- queue reports "closed", calling task_done for each item; the main task
-- awaits both and joins the queue. The same shape as asyncio.py and node.js
-- (which end with a sentinel instead of close).

local MAXSIZE = 1000

local raw = (arg and arg[1]) or (...) or os.getenv("BENCH_N") or ""
local n = math.tointeger(tonumber(raw)) or 1000000

-- loom.now() is the loop's cached time; a zero sleep yields through the
-- loop once, which refreshes it, so a stamp is "now" rather than the start
-- of the round that happened to resume this task.
local function stamp()
  loom.sleep(0)
  return loom.now(), os.clock()
end

local function producer(q, count)
  for i = 1, count do
    q:put(i)
  end
  q:close()
end

local function consumer(q)
  local sum, got = 0, 0
  while true do
    local v = q:get()
    if v == nil then break end      -- nil, "closed": closed and drained
    sum = sum + v
    got = got + 1
    q:task_done()
  end
  return sum, got
end

local t0, c0 = stamp()
local q = loom.queue{maxsize = MAXSIZE}
local c = loom.spawn(consumer, q)
local p = loom.spawn(producer, q, n)
loom.await(p)
local sum, got = loom.await(c)
q:join()
local t1, c1 = stamp()

-- The checksum keeps every item observable and catches a broken run.
assert(got == n and sum == n * (n + 1) // 2, "checksum mismatch")
print(string.format("items=%d seconds=%.6f cpu=%.6f maxsize=%d clock=loom.now",
  n, t1 - t0, c1 - c0, MAXSIZE))
