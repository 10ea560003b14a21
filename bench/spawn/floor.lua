-- spawn floor: what plain Lua 5.4 pays for N coroutines alive at once.
-- Run as: lua5.4 bench/spawn/floor.lua [N]
-- Prints: tasks=N seconds=S cpu=C clock=monotonic|cpu
--
-- Same shape as loom.lua: create all N first, then run each to completion
-- in order, so loom's per-task overhead is what the ratio exposes.

local raw = (arg and arg[1]) or os.getenv("BENCH_N") or ""
local n = math.tointeger(tonumber(raw)) or 1000000

-- Stock Lua has no sub-second wall clock. lua-system (Debian: lua-system)
-- provides a monotonic one; without it os.clock() (process CPU time) is the
-- best stand-in, which is close to wall time for this single-threaded loop
-- and is labelled so the report can say which was used.
local function pick_clock()
  local ok, system = pcall(require, "system")
  if ok and system.monotime then return system.monotime, "monotonic" end
  return os.clock, "cpu"
end

local function work(i)
  return i
end

local function spawn_all(count)
  local cos = {}
  for i = 1, count do
    cos[i] = coroutine.create(work)
  end
  return cos
end

local function resume_all(cos)
  local sum = 0
  for i = 1, #cos do
    local ok, v = coroutine.resume(cos[i], i)
    if not ok then error(v) end
    sum = sum + v
  end
  return sum
end

local clock, clock_name = pick_clock()
local t0, c0 = clock(), os.clock()
local cos = spawn_all(n)
local sum = resume_all(cos)
local t1, c1 = clock(), os.clock()

-- The checksum keeps every result observable and catches a broken run.
assert(sum == n * (n + 1) // 2, "checksum mismatch")
print(string.format("tasks=%d seconds=%.6f cpu=%.6f clock=%s",
  n, t1 - t0, c1 - c0, clock_name))
