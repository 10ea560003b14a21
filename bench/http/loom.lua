-- bench/http/loom.lua [port]: "hello" from a Lua handler under http.serve
local srv = assert(loom.http.serve("127.0.0.1", tonumber(arg[1]) or 8080,
  function() return 200, "hello" end))
local _, port = srv:address()
print("listening on " .. port)
io.stdout:flush()
loom.signal.wait("SIGTERM", "SIGINT")
srv:close()
