-- graceful.lua: a server that shuts down cleanly.  A client sends jobs,
-- one a line ("work 0.5": half a second of work); the server answers
-- each ("done 0.5") when it is done.  On SIGTERM (or Ctrl-C) it stops
-- accepting at once, lets the jobs in flight finish and answer (within
-- a grace period), closes idle connections, and exits 0.
--
--   loom examples/graceful.lua [port]      then: nc 127.0.0.1 PORT
-- It prints "listening on HOST:PORT" when ready.
local net, signal = loom.net, loom.signal
local GRACE = 10  -- seconds the jobs in flight get to finish

local conns = {}         -- task -> "idle" or "busy"
local open = 0
local drained = loom.event()
local stopping = false

local function session(s)
  local me = loom.current()
  conns[me] = "idle"
  open = open + 1
  drained:clear()
  local _ <close> = setmetatable({}, { __close = function()
    conns[me] = nil
    open = open - 1
    if open == 0 then drained:set() end
  end })
  while not stopping do
    local line = s:read_line()  -- an idle connection is cancelled here
    if not line then break end
    conns[me] = "busy"
    local secs = tonumber(line:match("^work%s+([%d.]+)%s*$"))
    if secs then
      loom.sleep(secs)
      s:write("done ", line:match("[%d.]+"), "\n")
    else
      s:write("error: expected 'work <seconds>'\n")
    end
    conns[me] = "idle"
  end
end

-- Watch before saying we are ready: a SIGTERM that came before the
-- watch would end the process the abrupt way.
local stop = loom.spawn(signal.wait, "SIGTERM", "SIGINT")
loom.yield()  -- it runs up to its wait: it watches from here on

local server = assert(net.listen("127.0.0.1", tonumber(arg[1]) or 0, session))
local host, port = server:address()
print(("listening on %s:%d"):format(host, port))
io.stdout:flush()

local sig = stop:await()
stopping = true
server:close()  -- no new connections from here on
local busy = 0
for task, state in pairs(conns) do
  if state == "busy" then busy = busy + 1 else task:cancel("shutting down") end
end
print(("%s: stopped accepting; %d job(s) in flight"):format(sig, busy))
io.stdout:flush()
if open > 0 then
  local ok = pcall(loom.timeout, GRACE, drained.wait, drained)
  if not ok then  -- the grace period is over: the rest go now
    for task in pairs(conns) do task:cancel("grace period over") end
    print("grace period over")
  end
end
print("bye")
