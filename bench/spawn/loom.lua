-- spawn: N trivial loom tasks alive at once, then awaited in order.
-- Run as: build/loom bench/spawn/loom.lua [N]
-- Prints: tasks=N seconds=S cpu=C clock=loom.now
--
-- Mirrors floor.lua: spawn all N into a table first (so every task exists at
-- the same time and peak RSS shows the per-task cost), then await each.

local raw = (arg and arg[1]) or (...) or os.getenv("BENCH_N") or ""
local n = math.tointeger(tonumber(raw)) or 1000000

local function work(i)
  return i
end

-- loom.now() is the loop's cached time (ms). A zero sleep yields through
-- the loop once, which refreshes it, so a stamp is "now" rather than the
-- start of the round that happened to resume this task.
local function stamp()
  loom.sleep(0)
  return loom.now(), os.clock()
end

local function spawn_all(count)
  local tasks = {}
  for i = 1, count do
    tasks[i] = loom.spawn(work, i)
  end
  return tasks
end

local function await_all(tasks)
  local sum = 0
  for i = 1, #tasks do
    sum = sum + loom.await(tasks[i])
  end
  return sum
end

local t0, c0 = stamp()
local tasks = spawn_all(n)
local sum = await_all(tasks)
local t1, c1 = stamp()

-- The checksum keeps every result observable and catches a broken run.
assert(sum == n * (n + 1) // 2, "checksum mismatch")
print(string.format("tasks=%d seconds=%.6f cpu=%.6f clock=loom.now",
  n, t1 - t0, c1 - c0))
