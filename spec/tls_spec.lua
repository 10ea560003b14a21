--[[ spec/tls_spec.lua: TLS streams (SPEC "Network: loom.net", TLS).

  The certificates are made at test time with the openssl command in a
  temporary folder: a self-signed one for localhost and 127.0.0.1, one
  for the name localhost alone, and a leaf signed by a test CA.  The
  peers loom did not write (openssl s_server and s_client, Python's ssl
  module) run on 127.0.0.1, each bounded by 'timeout' and stopped by
  the test that started it; a test waits for a peer to listen by its
  own word (a Python peer prints its port) or by retrying a connect.
]]
local loom = require "loom"
local net = require "loom.net"
local process = require "loom.process"
local async = require("loom.busted").async
local h = require "spec.helper"

local FILE = "spec/tls_spec.lua"
local MiB = 1024 * 1024

local has, quote = h.has, h.quote
local raises = h.raiser(FILE)

local dir   -- the certificates' folder
local P = {}  -- their paths: P.cert, P.key, ...

-- The peers run without the sanitizers' runtime, which the sanitizer
-- run preloads into loom: Python would report its own leaks.
local BARE = { "env", "-u", "LD_PRELOAD", "timeout", "-k", "5", "60" }

-- Runs a shell command line that must succeed (outside the loop).
local function run(cmd)
  local out, err, code = h.sh("env -u LD_PRELOAD " .. cmd, nil, 60)
  assert(code == 0, cmd .. "\n" .. out .. err)
  return out
end

local function slurp(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

local EC = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1"

-- Makes the certificates of the tests in 'dir'.
local function make_certs()
  dir = h.tmpdir()
  local function p(name) return dir .. "/" .. name end
  P.cert, P.key = p("cert.pem"), p("key.pem")
  run(("openssl req -x509 %s -subj /CN=localhost -addext "
    .. "subjectAltName=DNS:localhost,IP:127.0.0.1 -keyout %s -out %s")
    :format(EC, quote(P.key), quote(P.cert)))
  P.dns_cert, P.dns_key = p("dns.pem"), p("dns.key")
  run(("openssl req -x509 %s -subj /CN=localhost -addext "
    .. "subjectAltName=DNS:localhost -keyout %s -out %s")
    :format(EC, quote(P.dns_key), quote(P.dns_cert)))
  P.ca, P.ca_key = p("ca.pem"), p("ca.key")
  run(("openssl req -x509 %s -subj /CN=loom-test-ca -keyout %s -out %s")
    :format(EC, quote(P.ca_key), quote(P.ca)))
  P.leaf, P.leaf_key = p("leaf.pem"), p("leaf.key")
  local ext = p("leaf.ext")
  local f = assert(io.open(ext, "w"))
  f:write("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
  f:close()
  run(("openssl req %s -subj /CN=localhost -keyout %s -out %s")
    :format(EC:gsub(" %-days 1", ""), quote(P.leaf_key), quote(p("leaf.csr"))))
  run(("openssl x509 -req -in %s -CA %s -CAkey %s -CAcreateserial -days 1 "
    .. "-extfile %s -out %s"):format(quote(p("leaf.csr")), quote(P.ca),
    quote(P.ca_key), quote(ext), quote(P.leaf)))
end

-- The options of a server with the self-signed certificate, and more.
local function server_tls(more)
  local t = { cert = P.cert, key = P.key }
  for k, v in pairs(more or {}) do t[k] = v end
  return { tls = t }
end

-- A TLS server on 127.0.0.1 (port 0); returns it and its port.
local function listen(handler, tls_opts)
  local srv, err = net.listen("127.0.0.1", 0, handler,
                              tls_opts or server_tls())
  assert(srv, err)
  local _, port = srv:address()
  return srv, port
end

-- Connects with the self-signed certificate trusted (and 'more').
local function connect(port, more, host)
  local t = { ca = P.cert }
  for k, v in pairs(more or {}) do t[k] = v end
  return net.connect(host or "127.0.0.1", port, { tls = t, timeout = 10 })
end

local function pack(...) return table.pack(...) end

-- Echoes line by line.
local function line_echo(s)
  for line in s:lines() do s:write(line, "\n") end
end

local free_port = h.free_port

-- Starts a peer process (bounded by 'timeout'); the value returned is
-- to be closed (<close>), which stops it and reaps it.
local function start_peer(argv, opts)
  local cmd = { table.unpack(BARE) }
  for _, a in ipairs(argv) do cmd[#cmd + 1] = a end
  for k, v in pairs(opts or {}) do cmd[k] = v end
  cmd.stdin = cmd.stdin or "pipe"
  cmd.stdout = cmd.stdout or "null"
  cmd.stderr = cmd.stderr or "null"
  local p = assert(process.spawn(cmd))
  return setmetatable({ p = p }, { __close = function(self)
    self.p:kill("SIGTERM")
    self.p:wait()
    self.p:close()
  end })
end

-- Waits until something listens on 'port', by retrying a connect.
local function wait_listening(port)
  for _ = 1, 500 do
    local c = net.connect("127.0.0.1", port)
    if c then
      c:close()
      return
    end
    loom.sleep(0.02)
  end
  error("nothing listens on port " .. port)
end

-- openssl s_server on a free port, echoing each line reversed (-rev).
local function s_server(args)
  local port = free_port()
  local argv = { "openssl", "s_server", "-accept", "127.0.0.1:" .. port,
                 "-rev" }
  for _, a in ipairs(args or { "-cert", P.cert, "-key", P.key }) do
    argv[#argv + 1] = a
  end
  local peer = start_peer(argv)
  wait_listening(port)
  return peer, port
end

-- A Python peer: the script 'src' with 'args'; it prints its port
-- first when it listens, which is waited for and returned.
local function python(src, args, listens)
  local argv = { "python3", "-u", "-c", src }
  for _, a in ipairs(args or {}) do argv[#argv + 1] = tostring(a) end
  local peer = start_peer(argv, { stdout = listens and "pipe" or "null" })
  if listens then
    local line = assert(peer.p.stdout:read_line())
    return peer, assert(tonumber(line), line)
  end
  return peer
end

-- A Python TLS server that sends "payload for <SNI name>" to each
-- client, then ends with close_notify (argv[3] "clean": unwrap) or
-- without (a truncation).
local PY_SERVER = [[
import socket, ssl, sys
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[1], sys.argv[2])
sni = [None]
def on_sni(sock, name, c):
    sni[0] = name
ctx.sni_callback = on_sni
srv = socket.socket()
srv.bind(("127.0.0.1", 0))
srv.listen(8)
print(srv.getsockname()[1], flush=True)
while True:
    conn, _ = srv.accept()
    try:
        sni[0] = None
        t = ctx.wrap_socket(conn, server_side=True)
        t.sendall(b"payload for " + str(sni[0]).encode())
        if sys.argv[3] == "clean":
            t.unwrap()
        t.close()
    except Exception:
        conn.close()
]]

-- A Python TLS client: sends a line, reads to the end with ragged EOFs
-- refused (an end without close_notify raises), then unwraps.
local PY_CLIENT = [[
import socket, ssl, sys
ctx = ssl.create_default_context(cafile=sys.argv[1])
ctx.set_alpn_protocols(["h2", "http/1.1"])
raw = socket.create_connection(("127.0.0.1", int(sys.argv[2])))
t = ctx.wrap_socket(raw, server_hostname="localhost",
                    suppress_ragged_eofs=False)
t.sendall(b"hello from python\n")
data = b""
while True:
    d = t.recv(4096)
    if not d:
        break
    data += d
print(t.version(), t.selected_alpn_protocol(), data.decode().strip())
t.unwrap()
print("unwrapped")
]]

-- A plain Python server that upgrades after "STARTTLS" (as SMTP does).
local PY_STARTTLS = [[
import socket, ssl, sys
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[1], sys.argv[2])
srv = socket.socket()
srv.bind(("127.0.0.1", 0))
srv.listen(8)
print(srv.getsockname()[1], flush=True)
conn, _ = srv.accept()
f = conn.makefile("rb")
assert f.readline() == b"STARTTLS\r\n"
conn.sendall(b"220 go ahead\r\n")
t = ctx.wrap_socket(conn, server_side=True)
line = t.recv(4096)
t.sendall(b"secret: " + line)
t.unwrap()
t.close()
]]

-- Runs a command to its end (a task's call); returns its result.
local function run_peer(argv, input)
  local cmd = { table.unpack(BARE) }
  for _, a in ipairs(argv) do cmd[#cmd + 1] = tostring(a) end
  cmd.input = input
  return assert(process.run(cmd))
end

describe("TLS streams", function()
  setup(make_certs)
  teardown(function() if dir then h.rmtree(dir) end end)

  -- {================================================================
  describe("loom to loom", function()
    it("delivers what a client writes and closes at once, before the server's first read", async(function()
      local got = loom.queue()
      local _srv <close>, port = listen(function(s)
        local all, _, code, part = s:read_all()
        got:put(all and #all or (code .. " after " .. #(part or "")))
      end)
      for _ = 1, 3 do
        local c = assert(connect(port))
        assert(c:write(("q"):rep(300000)))
        c:close()
        assert.are.equal(300000, got:get())
      end
    end))

    it("stream:timeout on a TLS stream: a read waiting too long gives ETIMEDOUT, the stream goes on", async(function()
      local _srv <close>, port = listen(function(s)
        s:timeout(0.1)
        local r = pack(s:read_line())
        s:write(tostring(r[3]), "\n")
        line_echo(s)
      end)
      local c <close> = assert(connect(port))
      c:timeout(5)
      assert.are.equal("ETIMEDOUT", c:read_line())
      c:write("still\n")
      assert.are.equal("still", c:read_line())
    end))

    it("max_connections counts TLS connections; a failed handshake frees its place", async(function()
      local _srv <close>, port = listen(function(s)
        s:write("hi\n")
        s:read()
      end, { tls = server_tls().tls, max_connections = 1 })
      local a = assert(connect(port))
      assert.are.equal("hi", a:read_line())
      local plain <close> = assert(net.connect("127.0.0.1", port))  -- waits
      local b = loom.spawn(function()
        local c = assert(connect(port))
        return c, c:read_line()
      end)
      loom.sleep(0.1)
      assert.is_false(b:done())
      a:close()
      -- the plain client now has the place: its handshake fails
      plain:write("GET / HTTP/1.0\r\n\r\n")
      local _, got = b:await()
      assert.are.equal("hi", got)
      local c = b:await()
      c:close()
    end, { timeout = 10 }))

    it("echoes lines; stream:tls() tells the version, cipher and verification", async(function()
      local seen = loom.future()
      local _srv <close>, port = listen(function(s)
        seen:set_result(s:tls())
        line_echo(s)
      end)
      local c <close> = assert(connect(port))
      c:write("hello\n", "over TLS\n")
      assert.are.equal("hello", c:read_line())
      assert.are.equal("over TLS", c:read_line())
      for line in ("a\nb\nc\n"):gmatch("[^\n]+") do c:write(line, "\n") end
      c:shutdown()
      local got = {}
      for line in c:lines() do got[#got + 1] = line end
      assert.are.same({ "a", "b", "c" }, got)
      local i = c:tls()
      assert.are.equal("TLSv1.3", i.version)
      assert.is_string(i.cipher)
      assert.is_true(i.verified)
      assert.is_nil(i.alpn)
      local si = seen:await()
      assert.are.equal("TLSv1.3", si.version)
      assert.is_false(si.verified)   -- no client certificate
    end))

    it("a plain stream's tls() is nil", async(function()
      local srv <close> = assert(net.listen("127.0.0.1", 0, line_echo))
      local _, port = srv:address()
      local c <close> = assert(net.connect("127.0.0.1", port))
      assert.is_nil(c:tls())
    end))

    it("ALPN: the server's first protocol that the client offers", async(function()
      local _srv <close>, port = listen(function(s) s:write(s:tls().alpn or "none") end,
        server_tls { alpn = { "h2", "http/1.1" } })
      local c1 <close> = assert(connect(port, { alpn = { "http/1.1", "h2" } }))
      assert.are.equal("h2", c1:tls().alpn)
      assert.are.equal("h2", c1:read_all())
      local c2 <close> = assert(connect(port, { alpn = { "http/1.1" } }))
      assert.are.equal("http/1.1", c2:tls().alpn)
      local c3 <close> = assert(connect(port, { alpn = { "spdy/1" } }))
      assert.is_nil(c3:tls().alpn)   -- none in common: no ALPN
      assert.are.equal("none", c3:read_all())
    end))

    it("read_exactly spans records written apart", async(function()
      local sizes = { 1, 5000, 20000, 70000 }
      local _srv <close>, port = listen(function(s)
        for i, n in ipairs(sizes) do
          assert(s:write(("%d"):format(i % 10):rep(n)))
          assert(s:flush())
          loom.sleep(0.01)
        end
      end)
      local c <close> = assert(connect(port))
      local want = {}
      for i, n in ipairs(sizes) do want[i] = ("%d"):format(i % 10):rep(n) end
      want = table.concat(want)
      assert.are.equal(want:sub(1, 3), c:read_exactly(3))
      assert.are.equal(want:sub(4), c:read_exactly(#want - 3))
      local r = pack(c:read_exactly(1))
      assert.is_nil(r[1])
      assert.are.equal("EOF", r[3])
    end))

    it("an 8 MiB write waits for a slow reader (backpressure), all arrives intact", async(function()
      local block = {}
      for i = 0, 255 do block[#block + 1] = string.char(i) end
      local data = table.concat(block):rep(8 * MiB // 256)
      local written = false
      local _srv <close>, port = listen(function(s)
        assert(s:write(data))
        written = true
        assert(s:flush())
      end)
      local c <close> = assert(connect(port))
      -- the reader takes nothing for a while: the writer must be held
      local first = assert(c:read(1))
      loom.sleep(0.3)
      assert.is_false(written, "8 MiB were taken without the reader")
      local parts, n = { first }, 1
      while true do
        local d = c:read(64 * 1024)
        if not d then break end
        parts[#parts + 1] = d
        n = n + #d
        if n < MiB then loom.sleep(0.001) end  -- slow at first
      end
      assert.is_true(written)
      assert.are.equal(8 * MiB, n)
      assert.is_true(table.concat(parts) == data, "the data changed")
    end, { timeout = 60 }))

    it("a clean close is EOF (close_notify); the server's handler returning sends it", async(function()
      local _srv <close>, port = listen(function(s) s:write("bye") end)
      local c <close> = assert(connect(port))
      assert.are.equal("bye", c:read_all())
      local r = pack(c:read())
      assert.is_nil(r[1])
      assert.are.equal("EOF", r[3])
      assert.matches("end of file", r[2])
    end))

    it("reads and writes on a closed TLS stream fail with ECANCELED", async(function()
      local _srv <close>, port = listen(line_echo)
      local c = assert(connect(port))
      c:close()
      c:close()   -- harmless
      for _, call in ipairs { { "read" }, { "read_line" }, { "write", "x" },
                              { "read_exactly", 2 }, { "flush" } } do
        local r = pack(c[call[1]](c, call[2]))
        assert.is_nil(r[1])
        assert.are.equal("ECANCELED", r[3], call[1])
      end
    end))

    it("a TLS stream collected without close sends close_notify (the peer reads EOF)", async(function()
      local got = loom.future()
      local _srv <close>, port = listen(function(s)
        got:set_result(pack(s:read()))
      end)
      do
        local c = assert(connect(port))
        assert.is_table(c:tls())
      end  -- nothing refers to c any more
      collectgarbage(); collectgarbage()
      local r = got:await()
      assert.is_nil(r[1])
      assert.are.equal("EOF", r[3], r[2])
    end))

    it("a Unix socket server with tls; stream:starttls on the client's side", async(function()
      local path = dir .. "/tls.sock"
      local _srv <close> = assert(net.listen_unix(path, line_echo, server_tls()))
      local c <close> = assert(net.connect_unix(path))
      assert.are.equal(c, c:starttls { ca = P.cert, servername = "localhost" })
      assert.is_true(c:tls().verified)
      c:write("unix\n")
      assert.are.equal("unix", c:read_line())
      os.remove(path)
    end))

    it("stream:starttls upgrades a plain stream from loom's side", async(function()
      local _peer <close>, port = python(PY_STARTTLS, { P.cert, P.key }, true)
      local c <close> = assert(net.connect("localhost", port))
      c:write("STARTTLS\r\n")
      assert.are.equal("220 go ahead", c:read_line())
      assert.is_nil(c:tls())
      assert.are.equal(c, c:starttls { ca = P.cert })  -- checked for "localhost"
      assert.is_true(c:tls().verified)
      c:write("the word")
      assert.are.equal("secret: the word", c:read_all())
    end))
  end)
  -- }================================================================

  -- {================================================================
  describe("verification", function()
    it("refuses a self-signed certificate unless verify = false", async(function()
      local _srv <close>, port = listen(line_echo)
      local r = pack(net.connect("127.0.0.1", port, { tls = true }))
      assert.is_nil(r[1])
      assert.are.equal("EPROTO", r[3])
      assert.are.equal("TLS handshake with '127.0.0.1:" .. port
        .. "': certificate verify failed: self-signed certificate", r[2])
      local c <close> = assert(net.connect("127.0.0.1", port,
                                           { tls = { verify = false } }))
      assert.is_false(c:tls().verified)
      c:write("unverified\n")
      assert.are.equal("unverified", c:read_line())
    end))

    it("accepts it with ca = its path or its PEM text", async(function()
      local _srv <close>, port = listen(line_echo)
      for _, ca in ipairs { P.cert, slurp(P.cert) } do
        local c <close> = assert(net.connect("localhost", port, { tls = { ca = ca } }))
        assert.is_true(c:tls().verified)
        c:write("trusted\n")
        assert.are.equal("trusted", c:read_line())
      end
    end))

    it("accepts a leaf signed by the CA given (and not the CA's own certificate as a server's)", async(function()
      local _srv <close>, port = listen(line_echo,
        server_tls { cert = P.leaf, key = P.leaf_key })
      local c <close> = assert(net.connect("localhost", port, { tls = { ca = P.ca } }))
      assert.is_true(c:tls().verified)
      local r = pack(net.connect("localhost", port, { tls = { ca = P.cert } }))
      assert.is_nil(r[1])
      assert.are.equal("EPROTO", r[3])
      assert.matches("certificate verify failed: unable to get local issuer", r[2])
    end))

    it("refuses a certificate for another name (servername)", async(function()
      local _srv <close>, port = listen(line_echo)
      local r = pack(connect(port, { servername = "wrong.example" }))
      assert.is_nil(r[1])
      assert.are.equal("EPROTO", r[3])
      assert.are.equal("TLS handshake with '127.0.0.1:" .. port
        .. "': certificate verify failed: hostname mismatch", r[2])
    end))

    it("checks an IP literal against the certificate's IP addresses", async(function()
      local _srv <close>, port = listen(line_echo)
      local c <close> = assert(connect(port, nil, "127.0.0.1"))
      assert.is_true(c:tls().verified)
      local _srv2 <close>, port2 = listen(line_echo,
        server_tls { cert = P.dns_cert, key = P.dns_key })
      local r = pack(net.connect("127.0.0.1", port2, { tls = { ca = P.dns_cert } }))
      assert.is_nil(r[1])
      assert.are.equal("EPROTO", r[3])
      assert.matches("certificate verify failed: IP address mismatch", r[2])
      local c2 <close> = assert(net.connect("localhost", port2, { tls = { ca = P.dns_cert } }))
      assert.is_true(c2:tls().verified)
    end))
  end)
  -- }================================================================

  -- {================================================================
  describe("failures", function()
    it("a handshake with a plain server that never answers times out", async(function()
      local srv <close> = assert(net.listen("127.0.0.1", 0, function(s)
        s:read_all()
      end))
      local _, port = srv:address()
      local t0 = loom.now()
      local r = pack(net.connect("127.0.0.1", port, { tls = true, timeout = 0.3 }))
      assert.is_nil(r[1])
      assert.are.equal("ETIMEDOUT", r[3])
      assert.are.equal("TLS handshake with '127.0.0.1:" .. port
        .. "': timed out after 0.3s", r[2])
      assert.is_true(loom.now() - t0 < 5)
    end))

    it("a handshake with a plain server that answers garbage fails", async(function()
      local srv <close> = assert(net.listen("127.0.0.1", 0, function(s)
        s:write("220 this is not TLS\r\n")
        s:read_all()
      end))
      local _, port = srv:address()
      local r = pack(net.connect("127.0.0.1", port, { tls = true }))
      assert.is_nil(r[1])
      assert.are.equal("EPROTO", r[3])
      assert.matches("^TLS handshake with '127%.0%.0%.1:%d+': ", r[2])
    end))

    it("the server closes a handshake that takes too long and goes on", async(function()
      local calls = 0
      local _srv <close>, port = listen(function(s)
        calls = calls + 1
        line_echo(s)
      end, server_tls { handshake_timeout = 0.2 })
      local plain <close> = assert(net.connect("127.0.0.1", port))
      local r = pack(plain:read())   -- sends nothing: closed after 0.2 s
      assert.is_nil(r[1])
      assert.are.equal("EOF", r[3])
      local c <close> = assert(connect(port))
      c:write("next\n")
      assert.are.equal("next", c:read_line())
      assert.are.equal(1, calls)
    end))

    it("a plain client talking garbage to a TLS server: closed; the next client is served", async(function()
      local calls = 0
      local _srv <close>, port = listen(function(s)
        calls = calls + 1
        line_echo(s)
      end)
      for _ = 1, 3 do
        local plain <close> = assert(net.connect("127.0.0.1", port))
        plain:write("GET / HTTP/1.0\r\n\r\n")
        local _, _, code = plain:read_all()   -- an alert, perhaps, then EOF
        assert.is_true(code == nil or code == "ECONNRESET", code)
      end
      -- a client that refuses the server's certificate: the server goes on
      assert.is_nil(net.connect("127.0.0.1", port, { tls = true }))
      local c <close> = assert(connect(port))
      c:write("served\n")
      assert.are.equal("served", c:read_line())
      assert.are.equal(1, calls)
    end))

    it("a TLS client to a port nobody listens on: ECONNREFUSED", async(function()
      local port = free_port()
      local r = pack(net.connect("127.0.0.1", port, { tls = true }))
      assert.is_nil(r[1])
      assert.are.equal("ECONNREFUSED", r[3])
      assert.matches("^connect to '127%.0%.0%.1:" .. port, r[2])
    end))

    it("bad certificate and key files make net.listen fail, naming them", async(function()
      local function listen_with(cert, key)
        return pack(net.listen("127.0.0.1", 0, line_echo,
                               { tls = { cert = cert, key = key } }))
      end
      local missing = dir .. "/missing.pem"
      local r = listen_with(missing, P.key)
      assert.is_nil(r[1])
      assert.are.equal("load certificate '" .. missing
        .. "': no such file or directory", r[2])
      assert.are.equal("ENOENT", r[3])
      r = listen_with(P.cert, missing)
      assert.are.equal("load private key '" .. missing
        .. "': no such file or directory", r[2])
      assert.are.equal("ENOENT", r[3])
      r = listen_with(P.key, P.key)   -- a key where the certificate goes
      assert.is_nil(r[1])
      assert.are.equal("EINVAL", r[3])
      assert.matches("^load certificate '" .. P.key:gsub("%p", "%%%0") .. "': ", r[2])
      r = listen_with("-----BEGIN CERTIFICATE-----\ngarbage\n", P.key)
      assert.are.equal("EINVAL", r[3])
      assert.matches("^load certificate '%(PEM text%)': ", r[2])
      r = listen_with(P.cert, P.dns_key)   -- another certificate's key
      assert.are.equal("load private key '" .. P.dns_key
        .. "': key values mismatch", r[2])
      assert.are.equal("EINVAL", r[3])
      -- PEM text works as files do
      local srv <close> = assert(net.listen("127.0.0.1", 0, line_echo,
        { tls = { cert = slurp(P.cert), key = slurp(P.key) } }))
      local _, port = srv:address()
      local c <close> = assert(connect(port))
      c:write("pem\n")
      assert.are.equal("pem", c:read_line())
    end))

    it("a CA file that cannot be read makes net.connect fail before connecting", async(function()
      local missing = dir .. "/no-ca.pem"
      local r = pack(net.connect("127.0.0.1", free_port(), { tls = { ca = missing } }))
      assert.is_nil(r[1])
      assert.are.equal("load CA certificates '" .. missing
        .. "': no such file or directory", r[2])
      assert.are.equal("ENOENT", r[3])
    end))
  end)
  -- }================================================================

  -- {================================================================
  describe("peers loom did not write", function()
    it("loom's client with openssl s_server: lines, verification, ALPN", async(function()
      local _peer <close>, port = s_server { "-cert", P.cert, "-key", P.key,
                                            "-alpn", "h2" }
      local r = pack(net.connect("localhost", port, { tls = true }))
      assert.is_nil(r[1])
      assert.matches("certificate verify failed: self%-signed certificate", r[2])
      local c <close> = assert(net.connect("localhost", port,
        { tls = { ca = P.cert, alpn = { "h2" } } }))
      local i = c:tls()
      assert.are.equal("TLSv1.3", i.version)
      assert.are.equal("h2", i.alpn)
      assert.is_true(i.verified)
      c:write("hello\n", "loom\n")
      assert.are.equal("olleh", c:read_line())
      assert.are.equal("mool", c:read_line())
      local big = ("x"):rep(10000) .. "y"   -- s_server -rev: lines < 16 KiB
      c:write(big, "\n")
      assert.are.equal(big:reverse(), c:read_line())
    end))

    it("loom's client with openssl s_server speaking TLS 1.2 only", async(function()
      local _peer <close>, port = s_server { "-cert", P.cert, "-key", P.key,
                                            "-tls1_2" }
      local c <close> = assert(connect(port))
      assert.are.equal("TLSv1.2", c:tls().version)
      c:write("twelve\n")
      assert.are.equal("evlewt", c:read_line())
    end))

    it("a TLS 1.3 key update from openssl s_server: data goes on both ways", async(function()
      local port = free_port()
      -- its output, read line by line as it comes: line-buffered (stdbuf)
      local peer <close> = start_peer({ "stdbuf", "-oL", "openssl", "s_server", "-accept",
        "127.0.0.1:" .. port, "-cert", P.cert, "-key", P.key }, { stdout = "pipe" })
      wait_listening(port)
      local out = peer.p.stdout
      local function until_line(text)
        repeat
          local line = out:read_line()
          assert(line, "s_server ended before printing " .. text)
        until has(line, text)
      end
      local c <close> = assert(connect(port))
      until_line("CIPHER is")   -- this connection's handshake is done
      peer.p.stdin:write("K\n")  -- "K": a KeyUpdate, one asked in return
      until_line("SSL_do_handshake -> 1")
      peer.p.stdin:write("after the update\n")
      assert.are.equal("after the update", c:read_line())
      c:write("and back\n")
      until_line("and back")
    end))

    it("openssl s_client with loom's server: verified, ALPN, the reply, close", async(function()
      local _srv <close>, port = listen(function(s)
        local line = s:read_line()
        s:write("loom says: ", line:upper(), "\n")
      end, server_tls { alpn = { "h2", "http/1.1" } })
      local r = run_peer({ "openssl", "s_client", "-connect", "127.0.0.1:" .. port,
        "-CAfile", P.cert, "-verify_return_error", "-verify_hostname", "localhost",
        "-alpn", "http/1.1", "-ign_eof" }, "hello\n")
      assert.are.equal(0, r.code, r.stdout .. r.stderr)
      assert.is_true(has(r.stdout, "loom says: HELLO"), r.stdout)
      assert.is_true(has(r.stdout, "Verify return code: 0 (ok)"), r.stdout)
      assert.is_true(has(r.stdout, "ALPN protocol: http/1.1"), r.stdout)
    end))

    it("Python's ssl client with loom's server: loom's close sends close_notify (unwrap succeeds)", async(function()
      local _srv <close>, port = listen(function(s)
        local line = s:read_line()
        s:write("echo: ", line, "\n")
      end, server_tls { alpn = { "http/1.1" } })
      local r = run_peer({ "python3", "-c", PY_CLIENT, P.cert, port })
      assert.are.equal(0, r.code, r.stderr)
      assert.are.equal("TLSv1.3 http/1.1 echo: hello from python\nunwrapped\n",
        r.stdout)
    end))

    it("a peer that closes without close_notify: EPROTO, not a quiet EOF", async(function()
      local _peer <close>, port = python(PY_SERVER, { P.cert, P.key, "truncate" }, true)
      local c <close> = assert(connect(port))
      local r = pack(c:read_all())
      assert.is_nil(r[1])
      assert.are.equal("EPROTO", r[3])
      assert.are.equal("read from '127.0.0.1:" .. port
        .. "': unexpected eof while reading", r[2])
      assert.are.equal("payload for None", r[4])   -- what came before, 4th
    end))

    it("a peer that ends with close_notify: the data, then EOF", async(function()
      local _peer <close>, port = python(PY_SERVER, { P.cert, P.key, "clean" }, true)
      local c <close> = assert(connect(port))
      assert.are.equal("payload for None", c:read_all())  -- no SNI for an IP
      local r = pack(c:read())
      assert.are.equal("EOF", r[3])
    end))

    it("SNI: the host name, or servername; none for an IP address", async(function()
      local _peer <close>, port = python(PY_SERVER, { P.cert, P.key, "clean" }, true)
      local c1 = assert(connect(port, nil, "localhost"))
      assert.are.equal("payload for localhost", c1:read_all())
      c1:close()   -- the peer, one client at a time, waits for its close_notify
      local c2 <close> = assert(connect(port, { servername = "other.example",
                                                verify = false }))
      assert.are.equal("payload for other.example", c2:read_all())
    end))
  end)
  -- }================================================================

  -- {================================================================
  describe("misuse raises, naming the function", function()
    it("net.connect's and net.listen's tls options", async(function()
      raises("bad argument #3 to 'net.connect' (tls must be true or a table, "
        .. "got number)", function() net.connect("127.0.0.1", 1, { tls = 5 }) end)
      raises("bad argument #3 to 'net.connect' (tls.verify must be a boolean)",
        function() net.connect("127.0.0.1", 1, { tls = { verify = "no" } }) end)
      raises("bad argument #3 to 'net.connect' (tls.ca must be a path or PEM "
        .. "text, got table)", function() net.connect("127.0.0.1", 1, { tls = { ca = {} } }) end)
      raises("bad argument #3 to 'net.connect' (tls.servername must be a host "
        .. "name, got number)", function() net.connect("127.0.0.1", 1, { tls = { servername = 1 } }) end)
      raises("bad argument #3 to 'net.connect' (tls.alpn must be a non-empty "
        .. "list of strings)", function() net.connect("127.0.0.1", 1, { tls = { alpn = {} } }) end)
      raises("bad argument #3 to 'net.connect' (tls.alpn[2] must be a string "
        .. "of 1 to 255 bytes)", function() net.connect("127.0.0.1", 1, { tls = { alpn = { "h2", "" } } }) end)
      raises("bad argument #4 to 'net.listen' (tls must be a table with cert "
        .. "and key, got boolean)", function() net.listen("127.0.0.1", 0, line_echo, { tls = true }) end)
      raises("bad argument #4 to 'net.listen' (tls needs cert and key)",
        function() net.listen("127.0.0.1", 0, line_echo, { tls = { cert = P.cert } }) end)
      local no_time = server_tls { handshake_timeout = 0 }
      raises("bad argument #4 to 'net.listen' (tls.handshake_timeout must be a "
        .. "positive number)", function() net.listen("127.0.0.1", 0, line_echo, no_time) end)
    end))

    it("stream:starttls and stream:tls", async(function()
      local _srv <close>, port = listen(line_echo)
      local c <close> = assert(connect(port))
      raises("stream:starttls: the stream is already TLS",
        function() c:starttls { ca = P.cert } end)
      local plain <close> = assert(net.connect("127.0.0.1", port))
      raises("bad argument #1 to 'stream:starttls' (TLS options must be true "
        .. "or a table, got number)", function() plain:starttls(5) end)
      raises("bad argument #1 to 'stream:starttls' (verify must be a boolean)",
        function() plain:starttls { verify = 1 } end)
      raises("bad argument #1 to 'stream:starttls' (loom.stream expected, got "
        .. "number)", function() c.starttls(42) end)
      raises("bad argument #1 to 'stream:tls' (loom.stream expected, got "
        .. "string)", function() c.tls("x") end)
      c:close()
      raises("attempt to use a closed stream", function() c:tls() end)
    end))

    it("net.connect with tls and stream:starttls raise outside a task", function()
      raises(h.outside("net.connect"), function() net.connect("127.0.0.1", 1, { tls = true }) end)
      local c = loom.run(function()
        local srv <close> = assert(net.listen("127.0.0.1", 0, function() end))
        local _, port = srv:address()
        return assert(net.connect("127.0.0.1", port))
      end)
      raises(h.outside("stream:starttls"), function() c:starttls() end)
      c:close()
    end)
  end)
  -- }================================================================

  -- {================================================================
  describe("nothing leaks", function()
    local under_sanitizer = os.getenv("LD_PRELOAD") ~= nil
    -- A script that leaves TLS servers, streams and contexts open at exit,
    -- some mid-handshake, others collected.
    local LEAVE_OPEN = [[
local net, d = loom.net, arg[1]
local tls = { cert = d .. "/cert.pem", key = d .. "/key.pem" }
local srv = assert(net.listen("127.0.0.1", 0, function(s)
  s:write("hi\n")
  s:read_all()
end, { tls = tls }))
local _, port = srv:address()
local keep = {}
for i = 1, 4 do
  keep[i] = assert(net.connect("localhost", port, { tls = { ca = tls.cert } }))
  assert(keep[i]:read_line() == "hi")
end
net.connect("127.0.0.1", port, { tls = true })     -- refused: closed
local half = assert(net.connect("127.0.0.1", port))  -- mid-handshake
for _ = 1, 3 do
  assert(net.connect("localhost", port, { tls = { ca = tls.cert, alpn = {"x"} } }))
end
collectgarbage()
print("done")
error("leaving with all this open")  -- the run ends, the rest is cancelled
]]

    it("the binary exits cleanly with TLS handles open (valgrind: no leak)", function()
      if under_sanitizer then
        pending("the sanitizer run checks leaks with LOOM_CLOSE_AT_EXIT")
        return
      end
      local path = h.script(LEAVE_OPEN)
      local out, err, code = h.sh(("LOOM_CLOSE_AT_EXIT=1 valgrind -q "
        .. "--leak-check=full --errors-for-leak-kinds=definite,indirect "
        .. "--error-exitcode=99 %s %s %s"):format(quote(h.loom_bin),
        quote(path), quote(dir)), nil, 120)
      os.remove(path)
      assert.are.equal("done\n", out, err)
      assert.are.equal(1, code, err)   -- the error, no more
      assert.is_true(has(err, "leaving with all this open"), err)
    end)

    it("the binary exits cleanly with TLS handles open (plain or ASan run)", function()
      local path = h.script(LEAVE_OPEN)
      local out, err, code = h.run_bin({ path, dir })
      os.remove(path)
      assert.are.equal("done\n", out, err)
      assert.are.equal(1, code, err)
      assert.is_true(has(err, "leaving with all this open"), err)
      assert.is_false(has(err, "Sanitizer"), err)
    end)
  end)
  -- }================================================================
end)
