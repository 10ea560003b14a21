-- http_hello.lua: the smallest HTTP server.  Every request runs its
-- handler in the connection's task; the handler may suspend (sleep,
-- read a file, call another service) without holding up the others.
--
--   loom examples/http_hello.lua [port]     then: curl http://127.0.0.1:PORT/
-- It prints "listening on http://HOST:PORT/" when ready, and on SIGTERM
-- or Ctrl-C stops accepting, lets requests in flight finish, and exits.
local http, signal = loom.http, loom.signal

local stop = loom.spawn(signal.wait, "SIGTERM", "SIGINT")
loom.yield()  -- it watches from here on

local server = assert(http.serve("127.0.0.1", tonumber(arg[1]) or 0,
  function(req)
    if req.path == "/slow" then
      local s = tonumber(req.query.s) or 1
      print(("slow request: %g s"):format(s))
      io.stdout:flush()
      loom.sleep(s)
    end
    return 200, ("hello from loom: %s %s\n"):format(req.method, req.path)
  end))
print(("listening on http://%s:%d/"):format(server:address()))
io.stdout:flush()

print(stop:await() .. ": closing")
server:close()   -- idle connections end now, busy ones after their reply
server:wait()
print("closed")
