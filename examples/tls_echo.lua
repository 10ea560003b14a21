-- tls_echo.lua: a TLS echo server and a client, in one script.  It makes
-- its own self-signed certificate for localhost with the openssl command
-- in a temporary folder, serves with it, and the client trusts exactly
-- that certificate (ca =), so the peer is verified as it would be on
-- the Internet.
--
--   loom examples/tls_echo.lua
local net, fs, process = loom.net, loom.fs, loom.process

local dir = assert(fs.mkdtemp("/tmp/loom-tls-"))
local cert, key = dir .. "/cert.pem", dir .. "/key.pem"

local function cleanup() fs.remove(dir, { recursive = true }) end

local made = assert(process.run {
  "openssl", "req", "-x509", "-newkey", "ec",
  "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1",
  "-subj", "/CN=localhost",
  "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
  "-keyout", key, "-out", cert,
  timeout = 30,
})
if made.code ~= 0 then
  cleanup()
  error("openssl req failed: " .. made.stderr)
end

local server = assert(net.listen("127.0.0.1", 0, function(s)
  for line in s:lines() do s:write(line, "\n") end   -- a task per client
end, { tls = { cert = cert, key = key } }))
local _, port = server:address()

do
  local c <close> = assert(net.connect("localhost", port,
                                       { tls = { ca = cert }, timeout = 5 }))
  local info = c:tls()
  print(("connected: %s, verified: %s"):format(info.version, info.verified))
  for _, line in ipairs { "hello", "over TLS" } do
    c:write(line, "\n")
    print("echoed: " .. assert(c:read_line()))
  end
end

-- a client that trusts only the system's CAs refuses the self-signed one
local s, err = net.connect("localhost", port, { tls = true })
print("without ca: "
  .. (s and "connected?!" or err:match("certificate verify failed.*")))

server:close()
cleanup()
