-- fuzz/tls_record.c's task: the bytes 'data' as TLS records from a
-- peer (src/tls.c), over real connections on 127.0.0.1, to a TLS
-- server with the throwaway certificate fuzz/tls_cert.pem.
--
-- byte 1: the mode; byte 2: how many pieces (1 to 4), then their
-- sizes; the rest is what the peer sends, in those pieces:
--   mode 0  to the server, from the first byte (the handshake)
--   mode 1  to the server, after a good handshake and one line echoed
--           (through a proxy that forwards loom's TLS client)
--   mode 2  the same, to the client
-- The server echoes lines; every read must end in data or nil, msg,
-- code (never a raise), and every task must end.  A failed check
-- raises.
local data, dir = ...
local net = require "loom.net"
local listen = require "listen"
local byte = string.byte

local mode = (byte(data, 1) or 0) % 3
local npieces = (byte(data, 2) or 0) % 4 + 1
local sizes = { byte(data, 3, npieces + 1) }
local input = data:sub(npieces + 2)

local function slurp(name)
  local f = assert(io.open(dir .. "/" .. name, "rb"))
  local s = f:read("a")
  f:close()
  return s
end
-- read once, kept where the next input finds them
local pem = package.loaded["fuzz.tls_record.pem"]
if not pem then
  pem = { cert = slurp("tls_cert.pem"), key = slurp("tls_key.pem") }
  package.loaded["fuzz.tls_record.pem"] = pem
end

local function send_pieces(s)
  local at = 1
  for i = 1, npieces do
    local n = i < npieces and (sizes[i] or 0) + 1 or #input
    local piece = input:sub(at, at + n - 1)
    at = at + n
    if #piece > 0 and not s:write(piece) then return end
    loom.sleep(0)
  end
end

local failure
local function checked(fn)
  return function(...)
    local ok, err = xpcall(fn, debug.traceback, ...)
    if not ok and not failure then failure = tostring(err) end
  end
end

-- A read's outcome, checked: the data, or nil after a failure value.
local CODES = { EOF = true, EPROTO = true, ECONNRESET = true,
                ECANCELED = true, EPIPE = true }
local debug_out = os.getenv("FUZZ_DEBUG") and io.stderr
local function read_checked(what, ...)
  local d, err, code = ...
  if d then return d end
  if debug_out then debug_out:write(what, ": ", tostring(err), "\n") end
  assert(type(err) == "string" and CODES[code], what .. ": "
    .. tostring(err) .. " " .. tostring(code))
end

local lines = 0
local echo = checked(function(s)
  s:nodelay(true)
  while true do
    local line = read_checked("server read_line", s:read_line())
    if not line then return end
    lines = lines + 1
    if not s:write(line, "\n") then return end
  end
end)
local srv, port = listen("tls", function(p)
  return net.listen("127.0.0.1", p, echo,
    { tls = { cert = pem.cert, key = pem.key, handshake_timeout = 5 } })
end)

if mode == 0 then
  local c = assert(net.connect("127.0.0.1", port))
  c:nodelay(true)
  send_pieces(c)
  c:shutdown()
  repeat until not c:read()
  c:close()
else
  -- the proxy: the client's connection to it is forwarded to the
  -- server, both ways, until either end closes
  local inject = loom.future()
  local forward = checked(function(a)
    local b <close> = assert(net.connect("127.0.0.1", port))
    a:nodelay(true)
    b:nodelay(true)
    local function pipe(from, to)
      while true do
        local d = from:read()
        if not d or not to:write(d) then break end
      end
      to:shutdown()
    end
    local up = loom.spawn(pipe, a, b)
    local down = loom.spawn(pipe, b, a)
    inject:set_result(mode == 1 and b or a)
    up:await()
    down:await()
    a:close()
  end)
  local proxy, pport = listen("proxy", function(p)
    return net.listen("127.0.0.1", p, forward)
  end)
  local c = assert(net.connect("127.0.0.1", pport,
                               { tls = { verify = false } }))
  c:nodelay(true)
  assert(c:write("hello\n"))
  assert(c:read_line() == "hello", "the line echoed")
  local to = inject:await()
  send_pieces(to)
  to:shutdown()  -- then the end, without close_notify
  while read_checked("client read", c:read()) do end
  c:close()
  proxy:close()
end
srv:close()
assert(not failure, failure)
return true
