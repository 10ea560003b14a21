-- bench/soak/fetch.lua URL SECONDS [CONCURRENCY]: the HTTP client under
-- soak.  CONCURRENCY tasks (default 16) GET URL over and over for
-- SECONDS; each answer is a value: a response with the whole body, or
-- nil, msg, code.  Every SAMPLE seconds (env SOAK_SAMPLE, default 10)
-- and at the end it prints "tasks=N lua_kib=K ok=N failed=N codes=..."
-- (the codes of failures, counted).
local url = assert(arg[1], "usage: fetch.lua URL SECONDS [CONCURRENCY]")
local seconds = assert(tonumber(arg[2]), "SECONDS expected")
local n = math.tointeger(tonumber(arg[3])) or 16
local every = tonumber(os.getenv("SOAK_SAMPLE")) or 10
local ok, failed, codes, bad = 0, 0, {}, 0
local deadline = loom.now() + seconds

local function fds()
  local list = loom.fs.list("/proc/self/fd")
  return list and #list - 1 or -1  -- less the one listing it
end

local function stats()
  local c = {}
  for k, v in pairs(codes) do c[#c + 1] = ("%s:%d"):format(k, v) end
  table.sort(c)
  print(("tasks=%d lua_kib=%.0f ok=%d failed=%d bad=%d fds=%d codes=%s")
    :format(#loom.tasks(), collectgarbage("count"), ok, failed, bad, fds(),
      table.concat(c, ",")))
  io.stdout:flush()
end

local function fetcher()
  while loom.now() < deadline do
    local res, _, code = loom.http.get(url, { timeout = 10 })
    if res and res.status == 200 then
      if #res.body == 65536 then ok = ok + 1 else bad = bad + 1 end
    else
      failed = failed + 1
      code = code or (res and res.status) or "?"
      codes[code] = (codes[code] or 0) + 1
    end
  end
end

stats()  -- the first line: what a process holds before fetching
local ticker = loom.spawn(function()
  while true do
    loom.sleep(every)
    stats()
  end
end)
local all = {}
for i = 1, n do all[i] = loom.spawn(fetcher) end
loom.wait(all)
ticker:cancel()
loom.sleep(tonumber(os.getenv("SOAK_LINGER")) or 0)  -- for the sampler
stats()
