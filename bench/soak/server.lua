-- bench/soak/server.lua MODE [PORT]: the server under soak.
--   echo  loom.net.listen, each connection's bytes sent back
--   http  loom.http.serve answering "hello\n" (its default limits)
-- Prints "port=N" once listening, then every SAMPLE seconds (env
-- SOAK_SAMPLE, default 10) "tasks=N lua_kib=K conns=C", K the Lua heap
-- after a full collection (what is alive, not what waits for the GC).
-- Errors of connections are values (the loop ends); anything else is
-- logged.
local mode = arg[1] or "echo"
local port = math.tointeger(tonumber(arg[2])) or 0
local every = tonumber(os.getenv("SOAK_SAMPLE")) or 10
local conns = 0

local server
if mode == "echo" then
  server = assert(loom.net.listen("127.0.0.1", port, function(s)
    conns = conns + 1
    while true do
      local data = s:read()
      if not data or not s:write(data) then break end
    end
    conns = conns - 1
  end))
elseif mode == "http" then
  server = assert(loom.http.serve("127.0.0.1", port, function()
    return 200, "hello\n"
  end))
else
  error("mode: echo or http, got " .. tostring(mode))
end
local _, bound = server:address()
print(("port=%d"):format(bound))
io.stdout:flush()

while true do
  loom.sleep(every)
  collectgarbage()
  print(("tasks=%d lua_kib=%.0f conns=%d"):format(#loom.tasks(),
    collectgarbage("count"), conns))
  io.stdout:flush()
end
