-- sleepers: N loom tasks each sleeping one second, all at once.
-- Run as: build/loom bench/sleepers/loom.lua [N]
-- Prints: sleepers=N seconds=S clock=loom.now
--
-- The number that matters is the process wall time, taken by bench/measure;
-- the inner time is printed to show how much of it is start-up.

local raw = (arg and arg[1]) or (...) or os.getenv("BENCH_N") or ""
local n = math.tointeger(tonumber(raw)) or 100000

local function sleeper()
  loom.sleep(1)
end

-- loom.now() is the loop's cached time (ms); a zero sleep yields through the
-- loop once, which refreshes it.
local function stamp()
  loom.sleep(0)
  return loom.now()
end

local function spawn_all(count)
  local tasks = {}
  for i = 1, count do
    tasks[i] = loom.spawn(sleeper)
  end
  return tasks
end

local function await_all(tasks)
  for i = 1, #tasks do
    loom.await(tasks[i])
  end
end

local t0 = stamp()
await_all(spawn_all(n))
print(string.format("sleepers=%d seconds=%.6f clock=loom.now", n, stamp() - t0))
