-- prefork.lua: one server on every core.  A loom program runs on one
-- core; to use them all, the parent starts N copies of this script as
-- workers, each listening on the same port with reuseport = true
-- (SO_REUSEPORT), and the kernel spreads new connections over them.
-- The parent serves nothing: it starts a worker again when one dies
-- (after a delay that doubles while workers die young, so a crash loop
-- does not spin), and on SIGTERM or Ctrl-C sends SIGTERM to each worker,
-- waits for them and exits 0.
--
--   loom examples/prefork.lua [workers [port [http|echo]]]
--     workers  default: the number of cores (nproc)
--     port     default 0: the parent picks a free one (below)
--     echo     a TCP echo server (what comes is sent back) instead of
--              HTTP answering "hello from worker PID"
-- then: curl http://127.0.0.1:PORT/
-- It prints "prefork: N workers on http://127.0.0.1:PORT/ (pids P ...)"
-- (echo: "tcp://") once every worker listens, and a line for each worker
-- that dies and each one started after that.
--
-- A worker is this script run as "prefork.lua --worker PORT MODE"; its
-- standard input is a pipe from the parent, so a worker whose parent is
-- gone (even by SIGKILL) sees the end of it and exits too.
local net, http, process, signal = loom.net, loom.http, loom.process,
  loom.signal

local HOST = "127.0.0.1"  -- "*" for every interface
local MIN_DELAY, MAX_DELAY = 0.1, 10  -- seconds before a restart
local YOUNG = 5           -- a worker that dies younger doubles the delay
local GRACE = 10          -- seconds a worker gets to stop on SIGTERM

-- {============================================================ worker
local function worker(port, mode)
  local stop = loom.spawn(signal.wait, "SIGTERM", "SIGINT")
  loom.yield()  -- it watches from here on
  local orphan = loom.spawn(function()
    while loom.stdin:read() do end  -- nothing comes: the parent's end
  end)
  local server
  if mode == "echo" then
    server = assert(net.listen(HOST, port, function(s)
      while true do
        local data = s:read()
        if not data or not s:write(data) then break end
      end
    end, { reuseport = true }))
  else
    local reply = ("hello from worker %d\n"):format(process.pid)
    server = assert(http.serve(HOST, port, function() return 200, reply end,
      { reuseport = true }))
  end
  print("listening")  -- read by the parent
  io.stdout:flush()
  loom.wait({ stop, orphan }, { return_when = "first" })
  server:close()  -- idle connections end now, requests in flight finish
  if mode ~= "echo" then pcall(loom.timeout, GRACE, server.wait, server) end
  os.exit(0)  -- echo connections go with the process
end

if arg[1] == "--worker" then
  return worker(math.tointeger(tonumber(arg[2])), arg[3])
end
-- }==================================================================

local function cores()
  local r = process.run { "nproc" }
  return r and math.tointeger(tonumber(r.stdout)) or 1
end

local n = math.tointeger(tonumber(arg[1])) or cores()
local port = math.tointeger(tonumber(arg[2])) or 0
local mode = arg[3] == "echo" and "echo" or "http"
assert(n >= 1, "workers: at least 1")

-- Port 0 cannot be shared: each worker would get a port of its own.  So
-- the parent binds port 0 once to learn a free port, closes it, and
-- gives that port to every worker.  Another program could take it in
-- between (the workers then fail to listen and the parent says so);
-- give a port to rule that out.
if port == 0 then
  local probe = assert(net.listen(HOST, 0, function() end))
  port = select(2, probe:address())
  probe:close()
end

local stop = loom.spawn(signal.wait, "SIGTERM", "SIGINT")
loom.yield()

local self = { arg[-1], arg[0], "--worker", tostring(port), mode,
               stdin = "pipe", stdout = "pipe" }
local procs = {}     -- slot -> the Process of its worker
local echoes = {}    -- slot -> the task printing what its worker prints
local stopping = false

local function say(fmt, ...)
  print(("prefork: " .. fmt):format(...))
  io.stdout:flush()
end

-- Starts the worker of 'slot'; true once it listens.
local function start(slot, again)
  procs[slot], echoes[slot] = nil, nil
  local p, err = process.spawn(self)
  if not p then
    say("cannot start a worker: %s", err)
    return false
  end
  procs[slot] = p
  local line = p.stdout:read_line()
  if line ~= "listening" then return false end  -- it died: stderr says why
  if again then say("worker %d listening (slot %d)", p.pid, slot) end
  echoes[slot] = loom.spawn(function()  -- anything else it prints
    for l in p.stdout:lines() do print(l) end
  end)
  return true
end

-- Closes the Process of 'slot' once it has ended, after what it printed
-- (its stdout ends with it; a bounded wait in case a grandchild holds it).
local function reap(slot, p)
  local echo = echoes[slot]
  if echo then
    pcall(loom.timeout, 1, echo.await, echo)
    echo:cancel()
  end
  procs[slot], echoes[slot] = nil, nil
  p:close()
end

-- The life of one slot: start a worker, wait for it to die, start again.
-- A signal to the whole process group (Ctrl-C in a terminal) may end a
-- worker before the parent's own watch wakes: the delay covers that, and
-- nothing restarts once stopping.
local function supervise(slot, ready)
  local delay = MIN_DELAY
  while not stopping do
    local born = loom.now()
    local ok = start(slot, not ready)
    if ready then ready:put(ok) ready = nil end
    local p, code, sig = procs[slot], nil, nil
    if p then
      code, sig = p:wait()
      reap(slot, p)
    end
    if loom.now() - born < YOUNG then
      delay = math.min(delay * 2, MAX_DELAY)
    else
      delay = MIN_DELAY
    end
    loom.sleep(delay)
    if stopping then break end
    say("worker %s %s; starting another after %.1f s", p and p.pid or "?",
      sig and "killed by " .. sig or "exited " .. tostring(code), delay)
  end
end

local ready = loom.queue()
local slots = {}
for slot = 1, n do slots[slot] = loom.spawn(supervise, slot, ready) end
local up = 0
for _ = 1, n do
  if ready:get() then up = up + 1 end
end
if up == n then
  local pids = {}
  for slot = 1, n do pids[slot] = procs[slot] and procs[slot].pid or "?" end
  say("%d workers on %s://%s:%d/ (pids %s)", n,
    mode == "echo" and "tcp" or "http", HOST, port, table.concat(pids, " "))
else
  say("%d of %d workers listen", up, n)
end

local sig = stop:await()
stopping = true
say("%s: stopping %d workers", sig, n)
for _, t in ipairs(slots) do t:cancel() end  -- their waits and sleeps
for _, p in pairs(procs) do
  if not p:status() then p:kill("SIGTERM") end
end
for slot, p in pairs(procs) do
  if not p:status() then
    local ok = pcall(loom.timeout, GRACE + 1, p.wait, p)
    if not ok then p:kill("SIGKILL") p:wait() end
  end
  reap(slot, p)  -- its stdin too: a worker that missed SIGTERM sees the end
end
say("stopped")
