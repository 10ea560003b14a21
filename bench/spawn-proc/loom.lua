-- spawn-proc: N runs of /bin/true, at most 8 at a time, each waited for.
-- Run as: build/loom bench/spawn-proc/loom.lua [N]
-- Prints: runs=N seconds=S cpu=C inflight=8 peak=P clock=loom.now
--
-- One task per run, all spawned at once; a loom.semaphore(8) lets 8 of
-- them hold a child at a time. Each starts /bin/true with
-- loom.process.spawn (stdin, stdout and stderr inherited: no pipes, no
-- /dev/null, the same in every contender), waits for it with p:wait()
-- and checks that it exited with code 0. P is the most children that
-- were running at once, checked to be min(8, N). cpu is this process's
-- CPU time only, not its children's.

local INFLIGHT = 8
local CMD = "/bin/true"

local raw = (arg and arg[1]) or (...) or os.getenv("BENCH_N") or ""
local n = math.tointeger(tonumber(raw)) or 1000

local process = loom.process

-- loom.now() is the loop's cached time; a zero sleep yields through the
-- loop once, which refreshes it.
local function stamp()
  loom.sleep(0)
  return loom.now(), os.clock()
end

local sem = loom.semaphore(INFLIGHT)
local live, peak, exited = 0, 0, 0

local function one()
  local _ <close> = sem:hold()
  local p <close> = assert(process.spawn{CMD,
    stdin = "inherit", stdout = "inherit", stderr = "inherit"})
  live = live + 1
  if live > peak then peak = live end
  local code, sig = p:wait()
  live = live - 1
  if code ~= 0 then
    error(("%s (pid %d) ended with code %s, signal %s")
      :format(CMD, p.pid, tostring(code), tostring(sig)))
  end
  exited = exited + 1
end

local t0, c0 = stamp()
local tasks = {}
for i = 1, n do tasks[i] = loom.spawn(one) end
for i = 1, n do loom.await(tasks[i]) end
local t1, c1 = stamp()

-- Every run counted, and the concurrency was what the header says.
assert(exited == n, "runs missing")
assert(peak == math.min(INFLIGHT, n), "peak in flight " .. peak)
print(string.format(
  "runs=%d seconds=%.6f cpu=%.6f inflight=%d peak=%d clock=loom.now",
  n, t1 - t0, c1 - c0, INFLIGHT, peak))
