-- echo.lua: an echo server and a client.
--
--   loom examples/echo.lua server [port]      serve until Ctrl-C
--   loom examples/echo.lua client host port   send stdin's lines, print replies
--   loom examples/echo.lua                    both, in one process
local net = loom.net
local mode = arg[1]

local function serve(port)
  local server = assert(net.listen("127.0.0.1", port or 0, function(s)
    local host, p = s:peer()
    print(("connection from %s:%d"):format(host, p))
    for line in s:lines() do       -- one task per connection
      s:write(line, "\n")
    end
    print(("%s:%d left"):format(host, p))
  end))
  return server
end

local function client(host, port, lines)
  local s <close> = assert(net.connect(host, port))
  for _, line in ipairs(lines) do
    s:write(line, "\n")
    print("echoed: " .. assert(s:read_line()))
  end
end

if mode == "server" then
  local server = serve(tonumber(arg[2]))
  print(("listening on %s:%d"):format(server:address()))
elseif mode == "client" then
  local lines = {}
  for line in io.lines() do lines[#lines + 1] = line end
  client(arg[2], tonumber(arg[3]), lines)
else
  local server = serve(0)
  local _, port = server:address()
  client("127.0.0.1", port, { "hello", "loom" })
  server:close()
end
