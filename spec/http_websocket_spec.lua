--[[ spec/http_websocket_spec.lua: loom.http's WebSockets, loom against
  loom (SPEC "HTTP: loom.http", req:websocket and http.websocket), and
  against raw sockets where a peer must misbehave: frames that are not
  UTF-8, a server that never answers a ping or the handshake.

  Every server listens on 127.0.0.1, port 0, and is closed by its test.
  The peers loom did not write are in websocket_peers_spec.lua.
]]
local loom = require "loom"
local http = require "loom.http"
local net = require "loom.net"
local async = require("loom.busted").async
local h = require "spec.helper"

local core = debug.getregistry()["loom.core"]
local has, raised, logged = h.has, h.raised, h.logged

-- A server on 127.0.0.1 (port 0) with 'handler'; srv and its ws:// URL.
local function serve(handler, opts)
  local srv = assert(http.serve("127.0.0.1", 0, handler, opts))
  local _, port = srv:address()
  return srv, ("ws://127.0.0.1:%d/chat"):format(port), port
end

-- An echo handler: each message back, then what the close was, in 'seen'.
local function echo(seen, opts)
  return function(req)
    local ws = assert(req:websocket(opts))
    if seen then seen.protocol = ws.protocol end
    for msg, kind in ws:messages() do assert(ws:send(msg, kind)) end
    if seen then
      seen.code, seen.reason = ws.close_code, ws.close_reason
      seen.done = true
    end
  end
end

-- Waits until 'cond()' holds, turning the loop (for at most 'secs').
local function until_(cond, secs)
  local t0 = loom.now()
  while not cond() do
    if loom.now() - t0 > (secs or 3) then error("condition not met", 2) end
    loom.sleep(0.005)
  end
end


-- A raw client: the upgrade written by hand on a loom.net stream, then
-- a client-side framing engine (src/websocket.c) to speak through it,
-- so a test can send what loom's own client refuses to.
local function raw_client(port, extra)
  local s = assert(net.connect("127.0.0.1", port))
  assert(s:write("GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
    .. "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    .. "Sec-WebSocket-Version: 13\r\n" .. (extra or "") .. "\r\n"))
  local head = ""
  while not head:find("\r\n\r\n", 1, true) do
    local d = assert(s:read())
    head = head .. d
  end
  return s, core.websocket.engine(false, 1 << 20), head
end

-- The events the engine 'e' gets from 's' until a close comes (or EOF).
local function raw_until_close(s, e)
  local evs = {}
  while true do
    local d = s:read()
    if not d then return evs end
    for _, ev in ipairs(e:feed(d)) do
      evs[#evs + 1] = ev
      if ev[1] == "close" then return evs end
    end
  end
end

-- A raw server's side of the upgrade on stream 's': reads the request's
-- head and answers 101 with its accept value (and 'extra' header lines).
local function accept_upgrade(s, extra)
  local head = ""
  while not head:find("\r\n\r\n", 1, true) do head = head .. assert(s:read()) end
  local key = head:match("[Ss]ec%-[Ww]eb[Ss]ocket%-[Kk]ey: *(%S+)")
  s:write("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
    .. "Connection: Upgrade\r\nSec-WebSocket-Accept: "
    .. core.websocket.accept(key) .. "\r\n" .. (extra or "") .. "\r\n")
end

describe("http.websocket and req:websocket", function()
  it("carry text and binary messages both ways, with their kinds", async(function()
    local srv, url = serve(echo())
    local ws = assert(http.websocket(url))
    local bin = "\0\1\2\255 binary"
    assert.is_true(ws:send("héllo"))
    assert.is_true(ws:send(bin, "binary"))
    assert.is_true(ws:send(42))
    assert.are.same({ "héllo", "text" }, { ws:receive() })
    assert.are.same({ bin, "binary" }, { ws:receive() })
    assert.are.same({ "42", "text" }, { ws:receive() })
    assert.is_nil(ws.protocol)
    ws:close()
    srv:close()
  end))

  it("carry messages of a MiB and an empty one intact", async(function()
    local srv, url = serve(echo(nil, { max_message = 2 << 20 }))
    local ws = assert(http.websocket(url, { max_message = 2 << 20 }))
    local big = {}
    for i = 1, 1 << 16 do big[i] = string.char(i % 256, (i * 7) % 256) end
    big = table.concat(big):rep(8)
    assert.are.equal(1 << 20, #big)
    assert(ws:send(big, "binary"))
    assert(ws:send(""))
    local got, kind = ws:receive()
    assert.are.equal("binary", kind)
    assert.is_true(got == big, "the MiB came back changed")
    assert.are.same({ "", "text" }, { ws:receive() })
    ws:close()
    srv:close()
  end))

  it("negotiate a subprotocol in the server's order of preference", async(function()
    local seen = {}
    local srv, url = serve(echo(seen, { protocols = { "v2", "v1" } }))
    local ws = assert(http.websocket(url, { protocols = { "v1", "v2" } }))
    assert.are.equal("v2", ws.protocol)
    ws:close()
    assert.are.equal("v2", seen.protocol)
    local ws2 = assert(http.websocket(url, { protocols = "other" }))
    assert.is_nil(ws2.protocol)
    ws2:close()
    srv:close()
  end))

  it("send the client's extra headers and keep the query in the target", async(function()
    local got = {}
    local srv, url = serve(function(req)
      got.token, got.target = req.headers["x-token"], req.target
      local ws = assert(req:websocket())
      ws:close()
    end)
    local ws = assert(http.websocket(url .. "?room=1",
      { headers = { ["X-Token"] = "abc" } }))
    assert.is_nil(ws:receive())
    assert.are.same({ token = "abc", target = "/chat?room=1" }, got)
    srv:close()
  end))

  it("close with a status and reason each side sees, in a closing handshake", async(function()
    local seen = {}
    local srv, url = serve(echo(seen))
    local ws = assert(http.websocket(url))
    assert(ws:send("one"))
    assert.are.equal("one", ws:receive())
    assert.is_nil(ws.close_code)
    assert.is_true(ws:close(4001, "bye"))
    until_(function() return seen.done end)
    assert.are.same({ 4001, "bye" }, { seen.code, seen.reason })
    assert.are.same({ 4001, "bye" }, { ws.close_code, ws.close_reason })
    local data, msg, code = ws:receive()
    assert.is_nil(data)
    assert.are.equal(4001, code)
    assert.is_true(has(msg, "4001") and has(msg, "bye"), msg)
    -- closed: send and ping say so, a second close is fine
    local ok, _, scode = ws:send("late")
    assert.is_nil(ok)
    assert.are.equal(4001, scode)
    assert.is_nil((ws:ping()))
    assert.is_true(ws:close())
    srv:close()
  end))

  it("give what came before the peer's close, then nil with its status", async(function()
    local srv, url = serve(function(req)
      local ws = assert(req:websocket())
      for i = 1, 3 do ws:send("m" .. i) end
      ws:close(4002, "later")
    end)
    local ws = assert(http.websocket(url))
    local got = {}
    for msg in ws:messages() do got[#got + 1] = msg end
    assert.are.same({ "m1", "m2", "m3" }, got)
    assert.are.same({ 4002, "later" }, { ws.close_code, ws.close_reason })
    assert.are.equal(4002, select(3, ws:receive()))
    srv:close()
  end))

  it("answer pings; ws:ping gets the peer's pong without a message", async(function()
    local srv, url = serve(echo())
    local ws = assert(http.websocket(url))
    assert.is_true(ws:ping("hi"))
    assert.is_true(ws:ping())
    assert(ws:send("after"))
    assert.are.same({ "after", "text" }, { ws:receive() })
    ws:close()
    srv:close()
  end))

  it("refuse a message over max_message with 1009, on both sides", async(function()
    local seen = {}
    local srv, url = serve(echo(seen, { max_message = 1000 }))
    local ws = assert(http.websocket(url))
    assert(ws:send(("a"):rep(1000)))
    assert.are.equal(1000, #ws:receive())
    ws:send(("a"):rep(1001))
    local data, msg, code = ws:receive()
    assert.is_nil(data)
    assert.are.equal(1009, code, msg)
    until_(function() return seen.done end)
    assert.are.equal(1009, seen.code)
    srv:close()
  end))

  it("refuse text that is not UTF-8 with 1007, keeping what came before", async(function()
    local seen, got = {}, {}
    local srv, _, port = serve(function(req)
      local ws = assert(req:websocket())
      for msg in ws:messages() do got[#got + 1] = msg end
      seen.code, seen.done = ws.close_code, true
    end)
    local s, e = raw_client(port)
    assert(s:write(select(2, e:queue(0, "fine"))))
    assert(s:write(select(2, e:queue(0, "bad \xff\xfe"))))
    local evs = raw_until_close(s, e)
    s:close()
    assert.are.equal("close", evs[#evs][1])
    assert.are.equal(1007, evs[#evs][3])
    until_(function() return seen.done end)
    assert.are.same({ "fine" }, got)
    assert.are.equal(1007, seen.code)
    srv:close()
  end))

  it("answer 400 to a request that is not an upgrade, 426 to another version", async(function()
    local results = {}
    local srv, _, port = serve(function(req)
      local ws, msg, code = req:websocket()
      results[#results + 1] = { ws, msg, code }
    end)
    local res = assert(http.get(("http://127.0.0.1:%d/"):format(port)))
    assert.are.equal(400, res.status)
    assert.is_nil(results[1][1])
    assert.are.equal("EPROTO", results[1][3])
    assert.is_true(has(results[1][2], "req:websocket"), results[1][2])
    local s = assert(net.connect("127.0.0.1", port))
    assert(s:write("GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
      .. "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
      .. "Sec-WebSocket-Version: 8\r\n\r\n"))
    local head = ""
    while not head:find("\r\n\r\n", 1, true) do head = head .. assert(s:read()) end
    s:close()
    assert.is_truthy(head:find("^HTTP/1.1 426 "))
    assert.is_truthy(head:lower():find("sec%-websocket%-version: 13\r\n"))
    assert.is_true(has(results[2][2], "Sec-WebSocket-Version 8"), results[2][2])
    srv:close()
  end))

  it("answer 101 with RFC 6455's accept value to a raw upgrade", async(function()
    local srv, _, port = serve(echo())
    local s, e, head = raw_client(port)
    assert.is_truthy(head:find("^HTTP/1.1 101 "))
    assert.is_truthy(head:find("Sec%-WebSocket%-Accept: s3pPLMBiTxaQ9kYGzzhZRbK%+xOo=\r\n"))
    assert(s:write(select(2, e:queue(0, "raw"))))
    local evs = e:feed(assert(s:read()))
    assert.are.same({ { "text", "raw" } }, evs)
    s:close()
    srv:close()
  end))

  it("close with 1011 when the handler fails after the upgrade, and log it", async(function()
    local srv, url = serve(function(req)
      local ws = assert(req:websocket())
      ws:receive()
      error("handler broke")
    end)
    local got
    local logs = logged(function()
      local ws = assert(http.websocket(url))
      ws:send("x")
      got = { ws:receive() }
      srv:close()
      loom.timeout(3, srv.wait, srv)  -- the handler's task has ended
    end)
    assert.are.equal(1011, got[3], got[2])
    assert.is_true(has(table.concat(logs, "\n"), "handler broke"), table.concat(logs, "\n"))
  end))

  it("close each WebSocket with 1001 when the server closes", async(function()
    local srv, url = serve(echo())
    local a = assert(http.websocket(url))
    local b = assert(http.websocket(url))
    assert(a:send("x"))
    assert.are.equal("x", a:receive())
    srv:close()
    assert.are.equal(1001, select(3, a:receive()))
    assert.are.equal(1001, select(3, b:receive()))
    assert.are.equal("server shutting down", b.close_reason)
    loom.timeout(3, srv.wait, srv)
  end))

  it("give 1006 when the connection ends without a close", async(function()
    local got
    local srv, _, port = serve(function(req)
      local ws = assert(req:websocket())
      got = { ws:receive() }
    end)
    local s = raw_client(port)
    s:close()
    until_(function() return got end)
    assert.is_nil(got[1])
    assert.are.equal(1006, got[3])
    assert.is_true(has(got[2], "without a close"), got[2])
    srv:close()
  end))

  it("hold a fast sender back while the receiver does not read", async(function()
    local sent, finished = 0, false
    local chunk = ("z"):rep(64 * 1024)
    local srv, url = serve(function(req)
      local ws = assert(req:websocket())
      for _ = 1, 200 do
        assert(ws:send(chunk, "binary"))
        sent = sent + 1
      end
      finished = true
      ws:receive()
    end)
    local ws = assert(http.websocket(url, { max_queue = 2 }))
    -- wait until the sender stops making progress
    local last = -1
    while sent ~= last do
      last = sent
      loom.sleep(0.05)
    end
    assert.is_false(finished)
    assert.is_true(sent < 200, "the sender never waited: " .. sent)
    for _ = 1, 200 do
      local data = ws:receive()
      assert.are.equal(#chunk, #data)
    end
    until_(function() return finished end)
    ws:close()
    srv:close()
  end, { timeout = 10 }))

  it("finish the closing handshake while unreceived messages fill the inbox", async(function()
    local seen = {}
    local srv, url = serve(function(req)
      local ws = assert(req:websocket())
      for i = 1, 5 do ws:send("m" .. i) end
      for msg in ws:messages() do seen[#seen + 1] = msg end
      seen.code = ws.close_code
    end)
    local ws = assert(http.websocket(url, { max_queue = 1, close_timeout = 3 }))
    assert.are.equal("m1", ws:receive())  -- the rest wait in TCP and the inbox
    local st = ws[next(ws)]  -- the WebSocket's state, its one key
    until_(function() return st.stalled end)  -- its reader waits for room
    local t0 = loom.now()
    assert.is_true(ws:close(4003, "enough"))
    assert.is_true(loom.now() - t0 < 2, "close waited for its timeout")
    local data, msg, code = ws:receive()
    while data do data, msg, code = ws:receive() end  -- what came before
    assert.are.equal(4003, code)
    assert.is_false(has(msg, "no answer"), msg)
    srv:close()
  end))

  it("close with a handshake at the end of a <close> scope", async(function()
    local seen = {}
    local srv, url = serve(echo(seen))
    do
      local ws <close> = assert(http.websocket(url))
      assert(ws:send("x"))
      assert.are.equal("x", ws:receive())
    end
    until_(function() return seen.done end)
    assert.are.equal(1000, seen.code)
    srv:close()
  end))

  it("cut the connection of a WebSocket the collector takes", async(function()
    local seen = {}
    local srv, url = serve(echo(seen))
    do
      local ws = assert(http.websocket(url))
      assert(ws:send("x"))
      assert.are.equal("x", ws:receive())
    end
    collectgarbage()
    collectgarbage()
    until_(function() return seen.done end)
    assert.are.equal(1006, seen.code)
    srv:close()
  end))

  it("end the reader of a WebSocket the collector takes while its inbox is full", async(function()
    local seen = {}
    local srv, url = serve(function(req)
      local ws = assert(req:websocket())
      for i = 1, 20 do ws:send("m" .. i) end  -- more than the client's inbox
      seen.code = select(3, ws:receive())
      seen.done = true
    end)
    local function readers()
      local k = 0
      for _, t in ipairs(loom.tasks()) do
        if t.name == "websocket reader" then k = k + 1 end
      end
      return k
    end
    local before = readers()
    do
      local ws = assert(http.websocket(url, { max_queue = 2 }))
      local st  -- the state behind it (a table key of its own)
      for k, v in pairs(ws) do
        if type(k) == "table" and type(v) == "table" and v.inbox then st = v end
      end
      until_(function() return st.inbox:full() and st.stalled end)
    end
    collectgarbage()
    collectgarbage()
    until_(function() return seen.done end)
    assert.are.equal(1006, seen.code)
    until_(function() return readers() == before end)
    srv:close()
  end))

  it("drop a peer that answers no ping within the heartbeat", async(function()
    -- a server that completes the upgrade, then reads and ignores all
    local l = assert(net.listen("127.0.0.1", 0, function(s)
      accept_upgrade(s)
      while s:read() do end
    end))
    local _, port = l:address()
    local ws = assert(http.websocket(("ws://127.0.0.1:%d/"):format(port),
      { heartbeat = 0.1 }))
    local t0 = loom.now()
    local data, msg, code = ws:receive()
    assert.is_nil(data)
    assert.are.equal(1006, code)
    assert.is_true(has(msg, "ping"), msg)
    assert.is_true(loom.now() - t0 >= 0.14, "dropped too soon")
    l:close()
  end))

  -- A server that completes the upgrade (with 'extra' header lines in
  -- its 101), then reads nothing: its buffers fill and writes to it wait.
  local function deaf_server(extra)
    local hold = loom.event()
    local l = assert(net.listen("127.0.0.1", 0, function(s)
      accept_upgrade(s, extra)
      hold:wait()
      s:close()
    end))
    local _, port = l:address()
    return ("ws://127.0.0.1:%d/"):format(port), function() hold:set() l:close() end
  end

  it("bound the whole close by close_timeout when the peer reads nothing", async(function()
    local url, stop = deaf_server()
    local ws = assert(http.websocket(url, { close_timeout = 0.3 }))
    -- 64 MiB in one message: more than the socket buffers hold, so the
    -- write waits for good, and the close frame waits behind it
    local sender = loom.spawn(ws.send, ws, ("x"):rep(64 * 1024 * 1024), "binary")
    loom.yield()
    local t0 = loom.now()
    assert.is_true(loom.timeout(5, ws.close, ws))
    assert.is_true(loom.now() - t0 < 2, "close waited past close_timeout")
    assert.are.equal(1006, ws.close_code)
    local r = { loom.timeout(5, sender.await, sender) }
    assert.is_nil(r[1])
    stop()
  end, { timeout = 20 }))

  it("drop a peer whose buffers are full within the heartbeat, the ping's write included", async(function()
    local url, stop = deaf_server()
    local ws = assert(http.websocket(url, { heartbeat = 0.2 }))
    loom.spawn(ws.send, ws, ("x"):rep(64 * 1024 * 1024), "binary")
    local data, msg, code = loom.timeout(5, ws.receive, ws)
    assert.is_nil(data)
    assert.are.equal(1006, code)
    assert.is_true(has(msg, "ping"), msg)
    stop()
  end, { timeout = 20 }))

  it("refuse a 101 that chose extensions the client did not offer", async(function()
    local url, stop = deaf_server("Sec-WebSocket-Extensions: permessage-deflate\r\n")
    local ws, msg, code = http.websocket(url)
    assert.is_nil(ws)
    assert.are.equal("EPROTO", code)
    assert.is_true(has(msg, "extensions"), msg)
    stop()
  end))

  it("close 1001 at once a WebSocket upgraded while the server closes", async(function()
    local srv
    srv = serve(function(req)
      srv:close()
      local ws = assert(req:websocket())
      ws:receive()
    end)
    local _, port = srv:address()
    local ws = assert(http.websocket(("ws://127.0.0.1:%d/"):format(port)))
    local data, _, code = loom.timeout(5, ws.receive, ws)
    assert.is_nil(data)
    assert.are.equal(1001, code)
    loom.timeout(5, srv.wait, srv)
  end))

  it("keep a connection whose peer answers the heartbeat's pings", async(function()
    local srv, url = serve(echo())
    local ws = assert(http.websocket(url, { heartbeat = 0.05 }))
    loom.sleep(0.3)  -- several heartbeats, each answered
    assert(ws:send("still here"))
    assert.are.equal("still here", ws:receive())
    ws:close()
    srv:close()
  end))

  it("outlive the server's HTTP timeouts once upgraded", async(function()
    local srv, url = serve(echo(), { header_timeout = 0.05,
      keepalive_timeout = 0.05, body_timeout = 0.05 })
    local ws = assert(http.websocket(url))
    loom.sleep(0.3)  -- several of the server's timeouts
    assert(ws:send("long-lived"))
    assert.are.same({ "long-lived", "text" }, { ws:receive() })
    ws:close()
    srv:close()
  end))

  it("run over TLS as wss://, verifying the server's certificate", async(function()
    local dir = h.tmpdir()
    local cert, key = dir .. "/cert.pem", dir .. "/key.pem"
    local _, _, rc = h.sh(("env -u LD_PRELOAD openssl req -x509 -newkey ec "
      .. "-pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 -subj /CN=localhost "
      .. "-addext subjectAltName=IP:127.0.0.1 -keyout %s -out %s 2>/dev/null")
      :format(h.quote(key), h.quote(cert)), nil, 30)
    assert.are.equal(0, rc)
    local srv, _, port = serve(echo(), { tls = { cert = cert, key = key } })
    local url = ("wss://127.0.0.1:%d/"):format(port)
    local ws = assert(http.websocket(url, { ca = cert }))
    assert(ws:send("secret"))
    assert.are.same({ "secret", "text" }, { ws:receive() })
    ws:close()
    local none, msg, code = http.websocket(url)  -- not trusted
    assert.is_nil(none)
    assert.is_string(msg)
    assert.is_string(code)
    srv:close()
    h.rmtree(dir)
  end, { timeout = 15 }))

  it("return nil, msg, code when the handshake is refused or times out", async(function()
    -- a plain HTTP server: 200, not 101
    local srv, _, port = serve(function() return 200, "no" end)
    local ws, msg, code = http.websocket(("ws://127.0.0.1:%d/"):format(port))
    assert.is_nil(ws)
    assert.are.equal("EPROTO", code)
    assert.is_true(has(msg, "200"), msg)
    srv:close()
    -- nobody listening
    local free = h.free_port()
    ws, msg, code = http.websocket(("ws://127.0.0.1:%d/"):format(free))
    assert.is_nil(ws)
    assert.are.equal("ECONNREFUSED", code, msg)
    -- a server that accepts and never answers
    local l = assert(net.listen("127.0.0.1", 0, function(s)
      while s:read() do end
    end))
    local _, lport = l:address()
    ws, msg, code = http.websocket(("ws://127.0.0.1:%d/"):format(lport),
      { timeout = 0.1 })
    assert.is_nil(ws)
    assert.are.equal("ETIMEDOUT", code)
    assert.is_true(has(msg, "timed out"), msg)
    l:close()
  end))

  it("raise with the function's name on misuse", async(function()
    local function err(fn, ...)
      local e = raised(fn, ...)
      return tostring(e)
    end
    assert.is_true(has(err(http.websocket, "ftp://x/"), "http.websocket"))
    assert.is_true(has(err(http.websocket, 42), "http.websocket"))
    assert.is_true(has(err(http.websocket, "ws://h/", { max_message = -1 }),
      "max_message"))
    assert.is_true(has(err(http.websocket, "ws://h/", { protocols = { "a b" } }),
      "protocols[1]"))
    assert.is_true(has(err(http.websocket, "ws://h/", { timeout = "1" }), "timeout"))
    local srv, url = serve(echo())
    local ws = assert(http.websocket(url))
    assert.is_true(has(err(ws.send, ws, {}), "ws:send"))
    assert.is_true(has(err(ws.send, ws, "\xff"), "UTF-8"))
    assert.is_true(has(err(ws.send, ws, "x", "json"), "ws:send"))
    assert.is_true(has(err(ws.ping, ws, ("p"):rep(126)), "ws:ping"))
    assert.is_true(has(err(ws.close, ws, 1005), "ws:close"))
    assert.is_true(has(err(ws.close, ws, 1000, ("r"):rep(124)), "ws:close"))
    assert.is_true(has(err(ws.receive, {}), "ws:receive"))
    -- the WebSocket still works after the refused calls
    assert(ws:send("ok"))
    assert.are.equal("ok", ws:receive())
    ws:close()
    srv:close()
  end))
end)
