-- portscan.lua: scans TCP ports of a host, at most N connects at a time
-- (a semaphore), each with a timeout.
--
--   loom examples/portscan.lua [host first last [concurrency [timeout]]]
-- Without arguments it opens three listeners on localhost and scans the
-- ports around them.
local net = loom.net
local host, first, last = arg[1], tonumber(arg[2]), tonumber(arg[3])
local limit = loom.semaphore(tonumber(arg[4]) or 50)
local timeout = tonumber(arg[5]) or 0.5
local servers = {}

if not host then  -- the demo
  host = "127.0.0.1"
  for i = 1, 3 do
    servers[i] = assert(net.listen(host, 0, function() end))
  end
  local lo, hi = math.huge, 0
  for _, s in ipairs(servers) do
    local _, p = s:address()
    lo, hi = math.min(lo, p), math.max(hi, p)
  end
  first, last = math.max(1, lo - 20), math.min(65535, hi + 20)
end

local open, busiest, running = {}, 0, 0
local function probe(port)
  local _ <close> = limit:hold()
  running = running + 1
  busiest = math.max(busiest, running)
  local s = net.connect(host, port, { timeout = timeout })
  running = running - 1
  if s then
    open[#open + 1] = port
    s:close()
  end
end

local started = loom.now()
loom.group(function(g)
  for port = first, last do g:spawn(probe, port) end
end)
table.sort(open)
print(("scanned %s ports %d-%d in %.2f s, at most %d at a time")
  :format(host, first, last, loom.now() - started, busiest))
print("open: " .. table.concat(open, " "))
for _, s in ipairs(servers) do s:close() end
