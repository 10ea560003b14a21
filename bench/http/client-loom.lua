-- http-client: N GETs with loom.http.get, at most 64 in flight.
-- Run as: build/loom bench/http/client-loom.lua URL [N]
-- Prints: requests=N seconds=S cpu=C inflight=64 peak=P clock=loom.now
--
-- 64 tasks share one counter: each takes the next request, awaits
-- loom.http.get(URL) (libcurl's multi interface on loom's loop, keeping
-- its connections alive between requests) and checks that the response
-- is a 200 with the body "hello", until N requests have been made. P is
-- the most requests that were in flight at once, checked to be
-- min(64, N). cpu is this process's CPU time (all threads) over the timed
-- section.

local INFLIGHT = 64

local url = arg and arg[1]
local raw = (arg and arg[2]) or os.getenv("BENCH_N") or ""
local n = math.tointeger(tonumber(raw)) or 20000
assert(url, "usage: client-loom.lua URL [N]")

local get = loom.http.get
if not get then error("this loom has no loom.http.get (no HTTP client)", 0) end

-- loom.now() is the loop's cached time; a zero sleep yields through the
-- loop once, which refreshes it.
local function stamp()
  loom.sleep(0)
  return loom.now(), os.clock()
end

local started, done, live, peak = 0, 0, 0, 0

local function client()
  while started < n do
    started = started + 1
    live = live + 1
    if live > peak then peak = live end
    local res, err, code = get(url)
    live = live - 1
    if not res then error(("GET %s: %s (%s)"):format(url, err, code)) end
    if res.status ~= 200 or res.body ~= "hello" then
      error(("GET %s: status %s, body %q"):format(url, res.status, res.body))
    end
    done = done + 1
  end
end

local t0, c0 = stamp()
local tasks = {}
for i = 1, INFLIGHT do tasks[i] = loom.spawn(client) end
for i = 1, INFLIGHT do loom.await(tasks[i]) end
local t1, c1 = stamp()

assert(done == n, "requests missing")
assert(peak == math.min(INFLIGHT, n), "peak in flight " .. peak)
print(string.format(
  "requests=%d seconds=%.6f cpu=%.6f inflight=%d peak=%d clock=loom.now",
  n, (t1 - t0), c1 - c0, INFLIGHT, peak))
