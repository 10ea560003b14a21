-- tls: a TLS echo server on loom.net, one task per connection.
-- Run as: build/loom bench/tls/loom.lua CERT KEY [PORT]
--         (PEM files; default port 0: a free one)
-- Prints: port=P    (once listening on 127.0.0.1)
--
-- bench/echo/loom.lua with net.listen's tls option: each connection's
-- task starts after its TLS handshake, then reads whatever has arrived
-- and writes it back, until end of file or an error; the stream is closed
-- when the task returns. The server runs until SIGTERM or SIGINT.

local cert, key = arg and arg[1], arg and arg[2]
assert(cert and key, "usage: loom.lua CERT KEY [PORT]")
local port = math.tointeger(tonumber(arg[3] or "")) or 0

-- A loom whose net.listen does not know the tls option takes any value of
-- it and would serve plain TCP: say so instead.
do
  local ok, srv = pcall(loom.net.listen, "127.0.0.1", 0, function() end,
    { tls = "not a table" })
  if ok then
    if srv then srv:close() end
    error("this loom's net.listen has no tls option (no TLS support)", 0)
  end
end

local function echo(s)
  while true do
    local data = s:read()            -- nil, msg, "EOF" at end of file
    if not data then break end
    if not s:write(data) then break end
  end
end

local server = assert(loom.net.listen("127.0.0.1", port, echo,
  { tls = { cert = cert, key = key } }))
local _, bound = server:address()
print(("port=%d"):format(bound))
io.stdout:flush()
loom.signal.wait("SIGTERM", "SIGINT")
server:close()
