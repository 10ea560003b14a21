-- work: N loom.work calls of a small function, at most 64 in flight.
-- Run as: build/loom bench/work/loom.lua [N]
-- Prints: calls=N seconds=S cpu=C inflight=64 pool=P clock=loom.now
--
-- 64 caller tasks share one counter: each takes the next index, runs
-- loom.work(sum, i) and adds the result, until N calls have been made. So
-- 64 calls are outstanding at a time; libuv's thread pool (P threads:
-- UV_THREADPOOL_SIZE, default 4) runs them. asyncio.py and node.js have the
-- same shape.

local INFLIGHT = 64

local raw = (arg and arg[1]) or (...) or os.getenv("BENCH_N") or ""
local n = math.tointeger(tonumber(raw)) or 10000

-- The work: sum of 1..1000, plus the index so every call's result differs.
-- No upvalues: loom.work copies it into a worker state as bytecode.
local function sum(i)
  local s = 0
  for k = 1, 1000 do s = s + k end
  return s + i
end

-- loom.now() is the loop's cached time; a zero sleep yields through the
-- loop once, which refreshes it.
local function stamp()
  loom.sleep(0)
  return loom.now(), os.clock()
end

local next_i, total = 1, 0

local function caller(count)
  while next_i <= count do
    local i = next_i
    next_i = i + 1
    local r = loom.work(sum, i)   -- suspends: read 'total' after it
    total = total + r
  end
end

local t0, c0 = stamp()
local callers = {}
for j = 1, INFLIGHT do callers[j] = loom.spawn(caller, n) end
for j = 1, INFLIGHT do loom.await(callers[j]) end
local t1, c1 = stamp()

-- The checksum keeps every result observable and catches a broken run.
assert(total == n * 500500 + n * (n + 1) // 2, "checksum mismatch")
-- libuv reads UV_THREADPOOL_SIZE when the pool starts and clamps it to
-- 1..1024 (non-numbers count as 1).
local pool = math.tointeger(tonumber(os.getenv("UV_THREADPOOL_SIZE") or 4)) or 1
pool = math.max(1, math.min(1024, pool))
print(string.format(
  "calls=%d seconds=%.6f cpu=%.6f inflight=%d pool=%d clock=loom.now",
  n, t1 - t0, c1 - c0, INFLIGHT, pool))
