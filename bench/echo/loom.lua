-- echo: a TCP echo server on loom.net, one task per connection.
-- Run as: build/loom bench/echo/loom.lua [PORT]     (default 0: a free port)
-- Prints: port=P    (once listening on 127.0.0.1)
--
-- Each connection's task reads whatever has arrived and writes it back,
-- until end of file or an error; the stream is closed when the task
-- returns. The server runs until the process is ended by a signal
-- (bench/run sends SIGTERM).
--
-- The main task holds the server until then: a Server that nothing
-- references any more is closed when the garbage collector finds it, so a
-- main chunk that just returned would let the collector stop the listener
-- at some point under load.

local raw = (arg and arg[1]) or (...) or os.getenv("BENCH_PORT") or ""
local port = math.tointeger(tonumber(raw)) or 0

local function echo(s)
  while true do
    local data = s:read()            -- nil, msg, "EOF" at end of file
    if not data then break end
    if not s:write(data) then break end
  end
end

local server = loom.net.listen("127.0.0.1", port, echo)
local _, bound = server:address()
print(("port=%d"):format(bound))
io.stdout:flush()

while server do
  loom.sleep(3600)
end
