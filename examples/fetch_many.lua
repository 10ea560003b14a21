-- fetch_many.lua: fetches many URLs concurrently with loom.http, at most
-- LIMIT at once (a loom.semaphore), printing a progress line as each one
-- ends.  It runs offline: it first starts a small server of its own on
-- 127.0.0.1 (loom.net, canned HTTP/1.1 responses, keep-alive) that takes
-- a little time per request and counts how many it serves at once.  The
-- client reuses its keep-alive connections, so 40 requests make about
-- LIMIT connections.
local http = require "loom.http"
local net = require "loom.net"

local URLS, LIMIT = 40, 8

-- The server: /item/N gives "item N"; anything else is a 404.
local serving, most, conns = 0, 0, 0
local function respond(s, status, body)
  s:write(("HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\n"
    .. "Content-Length: %d\r\n\r\n%s"):format(status,
      status == 200 and "OK" or "Not Found", #body, body))
end

local open = {}  -- the server's connections, closed at the end
local function serve(s)
  open[s] = true
  conns = conns + 1
  while true do  -- one request after another on this connection
    local line = s:read_line()
    if not line then return end
    local path = line:match("^GET (%S+) HTTP/1%.1")
    repeat  -- the header lines, to the blank one
      local h = s:read_line()
      if not h then return end
    until h == "\r" or h == ""
    serving = serving + 1
    most = math.max(most, serving)
    loom.sleep(0.02)  -- the work a real server would do
    serving = serving - 1
    local n = path and path:match("^/item/(%d+)$")
    if n then respond(s, 200, "item " .. n)
    else respond(s, 404, "no such page") end
  end
end

local server = assert(net.listen("127.0.0.1", 0, serve))
local _, port = server:address()
local base = ("http://127.0.0.1:%d"):format(port)

-- The URLs: the items, one page that does not exist, and a port where
-- nobody listens (its failure is a value, nil, message, code).
local urls = {}
for i = 1, URLS do urls[i] = base .. "/item/" .. i end
urls[#urls + 1] = base .. "/missing"
urls[#urls + 1] = "http://127.0.0.1:9/"

local sem = loom.semaphore(LIMIT)
local done, failed, bytes = 0, 0, 0
local t0 = loom.now()

local function fetch(url)
  local _ <close> = sem:hold()  -- waits while LIMIT fetches run
  local res, err, code = http.get(url, { timeout = 10 })
  done = done + 1
  if res then
    bytes = bytes + #res.body
    if res.status ~= 200 then failed = failed + 1 end
    print(("[%2d/%d] %d %s"):format(done, #urls, res.status, url))
  else
    failed = failed + 1
    print(("[%2d/%d] %s: %s"):format(done, #urls, code, err))
  end
end

local tasks = {}
for i, url in ipairs(urls) do tasks[i] = loom.spawn(fetch, url) end
for _, t in ipairs(tasks) do loom.await(t) end
-- the client keeps its connections for more requests: the server ends
-- them, as a server that shuts down closes its idle connections
server:close()
for s in pairs(open) do s:close() end

print(("fetched %d URLs in %.2f s: %d failed, %d bytes, at most %d at once, "
  .. "%d connections"):format(#urls, loom.now() - t0, failed, bytes, most,
  conns))
