-- http, loom's stream layer alone: a canned "hello" response for every
-- request head, on loom.net, with no HTTP parser.
-- Run as: build/loom bench/http/loom-stream.lua [PORT]
--         (default 0: a free port)
-- Prints: port=P    (once listening on 127.0.0.1)
--
-- The same work as the C floor (bench/http/floor.c) through loom's
-- streams: one task per connection loops s:read(), counts the "\r\n\r\n"
-- that end request heads in what came (also one split across two reads)
-- and writes the same canned response for each. Nothing is parsed, no
-- header is looked at. What http.serve costs beyond this row is its
-- parser, its request objects and its handler call. It runs until SIGTERM
-- or SIGINT.

local raw = (arg and arg[1]) or (...) or os.getenv("BENCH_PORT") or ""
local port = math.tointeger(tonumber(raw)) or 0

local RESPONSE = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
local find, sub, rep = string.find, string.sub, string.rep

local function serve(s)
  local tail = ""   -- the last bytes read, when a head may end across reads
  while true do
    local data = s:read()             -- nil, msg, "EOF" at end of file
    if not data then return end
    if #tail > 0 then data = tail .. data end
    local heads, at = 0, 1
    while true do
      local i = find(data, "\r\n\r\n", at, true)
      if not i then break end
      heads = heads + 1
      at = i + 4
    end
    -- up to 3 bytes after the last head may be the start of the next one
    local left = #data - at + 1
    tail = left > 0 and sub(data, left > 3 and -3 or at) or ""
    if heads == 1 then
      if not s:write(RESPONSE) then return end
    elseif heads > 1 then
      if not s:write(rep(RESPONSE, heads)) then return end
    end
  end
end

local server = loom.net.listen("127.0.0.1", port, serve)
local _, bound = server:address()
print(("port=%d"):format(bound))
io.stdout:flush()
loom.signal.wait("SIGTERM", "SIGINT")
server:close()
