-- echo peer: a TCP echo server on luv (libuv bindings for stock Lua, Debian
-- package lua-luv), callbacks only, no coroutines.
-- Run as: lua5.4 bench/echo/luv.lua [PORT]     (default 0: a free port)
-- Prints: port=P    (once listening on 127.0.0.1)
--
-- The shape of the C floor in Lua: read_start on each connection and each
-- chunk written back as it is. Runs until killed (bench/run sends SIGTERM).

local uv = require("luv")

local raw = (arg and arg[1]) or os.getenv("BENCH_PORT") or ""
local port = math.tointeger(tonumber(raw)) or 0

local server = uv.new_tcp()
assert(server:bind("127.0.0.1", port))
assert(server:listen(511, function(err)
  if err then return end
  local client = uv.new_tcp()
  if not server:accept(client) then
    client:close()
    return
  end
  client:read_start(function(rerr, data)
    if rerr or not data then
      client:close()
      return
    end
    client:write(data)
  end)
end))

print(("port=%d"):format(server:getsockname().port))
io.stdout:flush()
uv.run()
