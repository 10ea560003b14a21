-- http: "hello" from a Lua handler under loom.http.serve.
-- Run as: build/loom bench/http/loom.lua [PORT]     (default 0: a free port)
-- Prints: port=P    (once listening on 127.0.0.1)
--
-- Every request is parsed by llhttp (src/http_parser.c) and answered by
-- the handler with status 200 and the body "hello"; http.serve adds the
-- Date, Content-Length and Content-Type headers. The server's defaults
-- hold (keep-alive, at most 1000 requests per connection, as nginx's
-- keepalive_requests). It runs until SIGTERM or SIGINT, then closes.

local raw = (arg and arg[1]) or (...) or os.getenv("BENCH_PORT") or ""
local port = math.tointeger(tonumber(raw)) or 0

local srv = assert(loom.http.serve("127.0.0.1", port,
  function() return 200, "hello" end))
local _, bound = srv:address()
print(("port=%d"):format(bound))
io.stdout:flush()
loom.signal.wait("SIGTERM", "SIGINT")
srv:close()
