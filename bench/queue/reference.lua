-- queue reference: a producer and a consumer coroutine handing N items
-- through a bounded ring buffer of 1000, under stock Lua 5.4.
-- Run as: lua5.4 bench/queue/reference.lua [N]
-- Prints: items=N seconds=S cpu=C maxsize=1000 clock=monotonic|cpu
--
-- Not a true floor: there is no scheduler, no wake-up bookkeeping and no
-- task_done/join, only what a bounded queue between two coroutines cannot
-- avoid. The producer fills the buffer and yields when it is full; the
-- consumer drains it and yields when it is empty; a two-line driver resumes
-- them in turn. That is the same batching a loom.queue of maxsize 1000 gets
-- with one producer and one consumer on one loop.

local MAXSIZE = 1000

local raw = (arg and arg[1]) or os.getenv("BENCH_N") or ""
local n = math.tointeger(tonumber(raw)) or 1000000

-- Stock Lua has no sub-second wall clock. lua-system (Debian: lua-system)
-- provides a monotonic one; without it os.clock() (process CPU time) is the
-- best stand-in, and is labelled so the report can say which was used.
local function pick_clock()
  local ok, system = pcall(require, "system")
  if ok and system.monotime then return system.monotime, "monotonic" end
  return os.clock, "cpu"
end

-- The buffer: a ring of MAXSIZE slots; 'count' items from 'head'.
local buf, head, count = {}, 1, 0
local yield = coroutine.yield

local function put(v)
  while count == MAXSIZE do yield() end
  buf[(head + count - 1) % MAXSIZE + 1] = v
  count = count + 1
end

local function get()
  while count == 0 do yield() end
  local v = buf[head]
  buf[head] = nil
  head = head % MAXSIZE + 1
  count = count - 1
  return v
end

local function producer(total)
  for i = 1, total do put(i) end
  put(false)                            -- end marker, not counted
end

local function consumer()
  local sum, got = 0, 0
  while true do
    local v = get()
    if not v then return sum, got end
    sum = sum + v
    got = got + 1
  end
end

local function run(total)
  local p = coroutine.create(producer)
  local c = coroutine.create(consumer)
  local ok, e = coroutine.resume(p, total)
  if not ok then error(e) end
  while true do
    local okc, sum, got = coroutine.resume(c)
    if not okc then error(sum) end
    if coroutine.status(c) == "dead" then return sum, got end
    ok, e = coroutine.resume(p)
    if not ok then error(e) end
  end
end

local clock, clock_name = pick_clock()
local t0, c0 = clock(), os.clock()
local sum, got = run(n)
local t1, c1 = clock(), os.clock()

-- The checksum keeps every item observable and catches a broken run.
assert(got == n and sum == n * (n + 1) // 2, "checksum mismatch")
print(string.format("items=%d seconds=%.6f cpu=%.6f maxsize=%d clock=%s",
  n, t1 - t0, c1 - c0, MAXSIZE, clock_name))
