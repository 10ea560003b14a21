-- ws: a WebSocket echo server on loom.http, one task per connection.
-- Run as: build/loom bench/ws/loom.lua [PORT]     (default 0: a free port)
-- Prints: port=P    (once listening on 127.0.0.1)
--
-- http.serve's handler upgrades every request with req:websocket() and
-- sends each message back as it came (text or binary), until the peer
-- closes or the connection ends. The server runs until the process is
-- ended by a signal (bench/run sends SIGTERM); the main task holds it
-- until then, as in bench/echo/loom.lua.

local http = require "loom.http"

local raw = (arg and arg[1]) or (...) or os.getenv("BENCH_PORT") or ""
local port = math.tointeger(tonumber(raw)) or 0

local function handler(req)
  local ws = req:websocket()
  if not ws then return end
  for msg, kind in ws:messages() do ws:send(msg, kind) end
end

local server = assert(http.serve("127.0.0.1", port, handler))
local _, bound = server:address()
print(("port=%d"):format(bound))
io.stdout:flush()

while server do
  loom.sleep(3600)
end
