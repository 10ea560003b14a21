--[[ spec/websocket_peers_spec.lua: loom's WebSockets (req:websocket,
  http.websocket) against peers loom did not write: Python's websockets
  and aiohttp, each as a client of a loom server and as a server of a
  loom client (spec/peers/ws_peer.py: see its paths and actions), and
  frames made by hand where those libraries will not break the rules.
  The 1000-connection test runs its loom server in a process of its
  own, with its limit of open files raised.

  Every peer runs on 127.0.0.1 under a time limit ('timeout') and is
  stopped by the test that started it, whatever happened.  A Python
  server prints its port ("listening PORT") and each connection's close
  ("closed PATH CODE REASON"); a Python client prints what it saw and
  exits.  Tests wait on those lines and on what loom's side saw, never
  on a fixed sleep.  The certificates for wss:// are made at test time
  with the openssl command in a temporary folder.
]]
local loom = require "loom"
local http = require "loom.http"
local process = require "loom.process"
local async = require("loom.busted").async
local h = require "spec.helper"

local has = h.has

-- Debian's interpreter, which has websockets and aiohttp
local PYTHON = "/usr/bin/python3"
local PEER = "spec/peers/ws_peer.py"
local LIMIT = 60  -- seconds any peer may live
local WAIT = 10   -- seconds a test waits for a line or an event
local T = { timeout = 20 }  -- each test's own limit

-- What the peer sends and expects (as ws_peer.py makes them)
local TEXT = "h\u{e9}llo\0w\u{f6}rld \u{2603} \u{1F600}"
local BINARY
do
  local t = {}
  for i = 0, 255 do t[#t + 1] = string.char(i) end
  BINARY = table.concat(t) .. "\0\xff\0"
end
local BIG_TEXT = ("a\u{e9}\u{2603}\0\n"):rep(131072)
local BIG_BINARY
do
  local t = {}
  for i = 0, 255 do t[#t + 1] = string.char((i * 7 + 3) % 256) end
  BIG_BINARY = table.concat(t):rep(4096)
end
assert(#BIG_TEXT == 1048576 and #BIG_BINARY == 1048576)

local function hex(s)
  return (s:gsub(".", function(c) return ("%02x"):format(c:byte()) end))
end

-- The lines of 's', trailing blanks dropped.
local function lines_of(s)
  local t = {}
  for l in s:gmatch("[^\n]+") do t[#t + 1] = (l:gsub("%s+$", "")) end
  return t
end

-- Reads all of stream 's' in a task of its own; the text so far is
-- buf[1] (a pipe drained, so the child never blocks on it).
local function drain(s)
  local buf = { "" }
  loom.spawn(function()
    while true do
      local data = s:read()
      if not data then return end
      buf[1] = buf[1] .. data
    end
  end)
  return buf
end

-- {==================================================================
-- Python servers

local Peer = {}
Peer.__index = Peer

-- The next line of the peer's stdout that matches 'pattern': its
-- captures (WAIT seconds at most).
function Peer:line(pattern)
  return loom.timeout(WAIT, function()
    while true do
      local line, err = self.p.stdout:read_line()
      assert(line, ("the peer ended (%s); its stderr:\n%s"):format(
        tostring(err), self.err[1]))
      line = line:gsub("%s+$", "")
      local found = table.pack(line:match(pattern))
      if found[1] then return table.unpack(found, 1, found.n) end
    end
  end)
end

-- The next "closed PATH CODE REASON" the server prints: code, reason.
function Peer:closed(path)
  local code, reason = self:line("^closed " .. path:gsub("%p", "%%%0")
    .. " (%S+) ?(.*)$")
  return tonumber(code) or code, reason
end

function Peer:stop()
  self.p:kill("SIGTERM")  -- 'timeout' passes it on to Python
  self.p:wait()
  self.p:close()
end

-- Starts ws_peer.py's server on library 'lib' ('args': more words).
local function start_server(lib, args)
  local argv = { "timeout", "-k", "2", tostring(LIMIT), PYTHON, PEER,
                 "server", lib, table.unpack(args or {}) }
  argv.stdout, argv.stderr, argv.env = "pipe", "pipe", h.peer_env()
  local peer = setmetatable({ p = assert(process.spawn(argv)) }, Peer)
  peer.err = drain(peer.p.stderr)
  local ok, port = pcall(peer.line, peer, "^listening (%d+)$")
  if not ok then
    peer:stop()
    error(port, 0)
  end
  peer.port = tonumber(port)
  return peer
end

-- A test body given a fresh Python server on 'lib' and the ws:// (or
-- wss:// with 'args' cert= and key=) URL of a path, stopped after.
local function with_server(lib, fn, args)
  return async(function()
    local peer = start_server(lib, args)
    local scheme = args and "wss" or "ws"
    local ok, e = pcall(fn, function(path)
      return ("%s://127.0.0.1:%d%s"):format(scheme, peer.port, path)
    end, peer)
    peer:stop()
    if not ok then
      error(tostring(e) .. "\n(the peer's stderr:)\n" .. peer.err[1], 0)
    end
  end, T)
end

-- http.websocket that must succeed.
local function connect(url, opts)
  local ws, err, code = http.websocket(url, opts)
  assert(ws, tostring(err) .. " " .. tostring(code))
  return ws
end

local function pack(...) return table.pack(...) end

-- }==================================================================


-- {==================================================================
-- A loom server for Python clients

-- A loom server on 127.0.0.1: what each WebSocket sees goes to the
-- queue 'seen' as {"open", protocol}, {kind, data}..., then {"end",
-- msg, status, close_code, close_reason} (or {"closed", close_code,
-- close_reason} after it closed with 4001 "bye" on "close me").  It
-- echoes every message, but "hi" gets "ack" and "ping me" a ws:ping
-- ({"ping", its results}) then "pinged".  /small has max_message 1000,
-- /beat a heartbeat every 0.3 s, /slow-beat every 1 s.  On /return the
-- handler returns after the upgrade; on /error it fails after the first
-- message.
local function loom_server(opts)
  local seen = loom.queue()
  local srv = assert(http.serve("127.0.0.1", 0, function(req)
    local ws, err, code = req:websocket {
      protocols = { "chat.v2", "chat.v1" },
      max_message = req.path == "/small" and 1000 or nil,
      heartbeat = req.path == "/beat" and 0.3 or req.path == "/slow-beat" and 1 or nil }
    if not ws then
      seen:put { "refused", err, code }
      return
    end
    seen:put { "open", ws.protocol or "none" }
    if req.path == "/return" then return "ignored" end
    while true do
      local data, kind, status = ws:receive()
      if not data then
        seen:put { "end", kind, status, ws.close_code, ws.close_reason }
        return
      end
      seen:put { kind, data }
      if req.path == "/error" then error("the handler failed") end
      if data == "close me" then
        ws:close(4001, "bye")
        seen:put { "closed", ws.close_code, ws.close_reason }
        return
      elseif data == "ping me" then
        seen:put { "ping", table.pack(ws:ping("loom")) }
        ws:send("pinged")
      elseif data == "hi" then
        ws:send("ack")
      else
        ws:send(data, kind)
      end
    end
  end, opts))
  return srv, seen
end

-- The events of one WebSocket of 'seen', up to its end.
local function events(seen)
  local list = {}
  loom.timeout(WAIT, function()
    repeat
      local ev = seen:get()
      list[#list + 1] = ev
    until ev[1] == "end" or ev[1] == "closed" or ev[1] == "refused"
  end)
  return list
end

-- The events of one WebSocket of 'seen', up to the first of 'kind'.
local function events_until(seen, kind)
  local list = {}
  loom.timeout(WAIT, function()
    repeat
      local ev = seen:get()
      list[#list + 1] = ev
    until ev[1] == kind
  end)
  return list
end

-- Runs ws_peer.py's client on 'lib' (bounded): its stdout's lines; it
-- must exit 0 unless 'code' says otherwise.
local function client(lib, url, action, more, code)
  local argv = { PYTHON, PEER, "client", lib, url, action,
                 table.unpack(more or {}) }
  argv.timeout, argv.kill_grace, argv.env = LIMIT, 1, h.peer_env()
  local r = assert(process.run(argv))
  if code == "SIGKILL" then
    assert(r.signal == "SIGKILL" or r.code == 137,
      ("expected SIGKILL, got %s %s: %s"):format(tostring(r.code),
        tostring(r.signal), r.stderr))
  else
    assert(r.code == (code or 0), ("the client exited with %s %s:\n%s%s")
      :format(tostring(r.code), tostring(r.signal), r.stdout, r.stderr))
  end
  return lines_of(r.stdout)
end

-- A test body given a fresh loom server (srv, seen) and its URLs.
local function with_loom(fn, opts)
  return async(function()
    local srv, seen = loom_server(opts)
    local scheme = opts and opts.tls and "wss" or "ws"
    local _, port = srv:address()
    local ok, e = pcall(fn, function(path)
      return ("%s://127.0.0.1:%d%s"):format(scheme, port, path)
    end, seen, srv)
    srv:close()
    if not ok then error(e, 0) end
  end, T)
end

-- }==================================================================

local LIBS = { "websockets", "aiohttp" }

for _, lib in ipairs(LIBS) do
  describe("a loom server and a Python client on " .. lib, function()
    it("echo text and binary messages exactly (NUL, UTF-8)", with_loom(function(url, seen)
      local out = client(lib, url("/"), "echo")
      assert.are.same({ "text " .. hex(TEXT), "binary " .. hex(BINARY) }, out)
      assert.are.same({ { "open", "none" }, { "text", TEXT },
        { "binary", BINARY } }, { table.unpack(events(seen), 1, 3) })
    end))

    if lib == "websockets" then
      it("fragmented messages from the peer arrive as one message each", with_loom(function(url, seen)
        local out = client(lib, url("/"), "fragments")
        assert.are.same({ "text " .. hex(TEXT), "binary " .. hex(BINARY),
          "text " .. hex("h\u{e9}llo") }, out)
        local ev = events(seen)
        assert.are.same({ { "open", "none" }, { "text", TEXT },
          { "binary", BINARY }, { "text", "h\u{e9}llo" } }, { table.unpack(ev, 1, 4) })
        assert.are.same({ 1000, 1000 }, { ev[5][3], ev[5][4] })
      end))
    end

    it("pings both ways: the peer gets its pong, loom's ping gets through", with_loom(function(url, seen)
      local out = client(lib, url("/"), "ping")
      if lib == "websockets" then
        assert.are.same({ "pong", "got pinged", "got still there" }, out)
      else  -- aiohttp shows the pings and pongs themselves
        assert.are.same({ "pong " .. hex("peer-ping"), "ping " .. hex("loom"),
          "got pinged", "got still there" }, out)
      end
      local ev = events(seen)
      assert.are.same({ "ping", { true, n = 1 } }, ev[3])
      assert.are.same({ "text", "still there" }, ev[4])
      assert.are.same({ 1000, 1000 }, { ev[5][3], ev[5][4] })
    end))

    it("loom closes with 4001 'bye': the peer sees 4001 'bye'", with_loom(function(url, seen)
      assert.are.same({ "closed 4001 bye" }, client(lib, url("/"), "closeme"))
      local ev = events(seen)
      assert.are.same({ "closed", 4001, "bye" }, ev[3])
    end))

    it("the peer closes with 4002 'later': receive gives nil, msg, 4002", with_loom(function(url, seen)
      local out = client(lib, url("/"), "close")
      if lib == "websockets" then  -- the code and reason of loom's answer
        assert.are.same({ "closed 4002 later" }, out)
      else  -- aiohttp shows its own code
        assert.are.same({ "closed 4002" }, out)
      end
      local ev = events(seen)
      assert.are.equal("end", ev[2][1])
      assert.is_truthy(has(ev[2][2], "4002"), ev[2][2])
      assert.are.same({ 4002, 4002, "later" }, { ev[2][3], ev[2][4], ev[2][5] })
    end))

    it("a peer killed without a close: receive gives nil, msg, 1006", with_loom(function(url, seen)
      client(lib, url("/"), "vanish", nil, "SIGKILL")
      local ev = events(seen)
      assert.are.same({ "text", "hi" }, ev[2])
      assert.are.equal("end", ev[3][1])
      assert.is_truthy(has(ev[3][2], "connection lost"), ev[3][2])
      assert.are.same({ 1006, 1006 }, { ev[3][3], ev[3][4] })
    end))

    it("1 MiB text and binary messages round trip intact", with_loom(function(url, seen)
      assert.are.same({ "big text ok", "big binary ok" }, client(lib, url("/"), "big"))
      local ev = events(seen)
      assert.is_true(ev[2][1] == "text" and ev[2][2] == BIG_TEXT)
      assert.is_true(ev[3][1] == "binary" and ev[3][2] == BIG_BINARY)
    end))

    it("a message over max_message: the peer sees 1009, receive gives 1009", with_loom(function(url, seen)
      assert.are.same({ "closed 1009" }, client(lib, url("/small"), "over"))
      local ev = events(seen)
      assert.are.equal("end", ev[2][1])
      assert.is_truthy(has(ev[2][2], "max_message"), ev[2][2])
      assert.are.same({ 1009, 1009 }, { ev[2][3], ev[2][4] })
    end))

    if lib == "websockets" then
      it("text that is not UTF-8 from the peer: 1007 both ends", with_loom(function(url, seen)
        assert.are.same({ "closed 1007" }, client(lib, url("/"), "badutf8"))
        local ev = events(seen)
        assert.are.equal("end", ev[2][1])
        assert.is_truthy(has(ev[2][2], "UTF-8"), ev[2][2])
        assert.are.same({ 1007, 1007 }, { ev[2][3], ev[2][4] })
      end))
    end

    it("negotiates a subprotocol: the server's preference among the offered", with_loom(function(url, seen)
      assert.are.same({ "protocol chat.v2" },
        client(lib, url("/"), "proto", { "protocols=chat.v1,chat.v2" }))
      assert.are.same({ "open", "chat.v2" }, events(seen)[1])
      assert.are.same({ "protocol chat.v1" },
        client(lib, url("/"), "proto", { "protocols=other,chat.v1" }))
      assert.are.same({ "open", "chat.v1" }, events(seen)[1])
      assert.are.same({ "protocol none" },
        client(lib, url("/"), "proto", { "protocols=other" }))
      assert.are.same({ "open", "none" }, events(seen)[1])
    end))
    it("the handler's return closes with 1000, its error with 1011", with_loom(function(url, seen)
      assert.are.same({ "closed 1000" }, client(lib, url("/return"), "send"))
      assert.are.same({ "open", "none" }, seen:get())
      local log = h.tmppath()
      loom.log.to(log)
      local ok, out = pcall(client, lib, url("/error"), "send")
      loom.log.to(nil)
      local text = h.slurp(log)
      assert(ok, out)
      assert.are.same({ "closed 1011 internal error" }, out)
      assert.is_truthy(has(text, "the handler failed"), text)
    end))

    it("srv:close() closes the server's WebSockets with 1001", with_loom(function(url, seen, srv)
      local t = loom.spawn(client, lib, url("/"), "wait")
      local ev = events_until(seen, "text")
      assert.are.same({ "text", "hi" }, ev[#ev])
      srv:close()
      assert.are.same({ "closed 1001 server shutting down" }, loom.await(t))
      ev = events(seen)
      assert.are.same({ "end", 1001, 1001, "server shutting down" },
        { ev[1][1], ev[1][3], ev[1][4], ev[1][5] })
    end))

    if lib == "websockets" then
      it("a heartbeat the peer answers keeps an idle connection open", with_loom(function(url, seen)
        -- (two pings while idle; half a second to answer each)
        assert.are.same({ "got still there" }, client(lib, url("/slow-beat"), "idle", { "secs=2.5" }))
        local ev = events(seen)
        assert.are.same({ { "text", "hi" }, { "text", "still there" } }, { ev[2], ev[3] })
        assert.are.same({ "end", 1000, 1000 }, { ev[4][1], ev[4][3], ev[4][4] })
      end))

      it("frames that break RFC 6455 get 1002 (1007 for bad UTF-8)", with_loom(function(url, seen)
        local out = client(lib, url("/"), "raw")
        assert.are.same({ "unmasked 1002", "rsv1 1002", "opcode3 1002",
          "continuation-first 1002", "text-in-fragments 1002", "close-999 1002",
          "close-1005 1002", "close-5000 1002", "close-reason-not-utf8 1007",
          "utf8-cut-at-end 1007", "overlong-utf8 1007", "surrogate 1007",
          "ping-126 1002", "ping-fragmented 1002", "length-msb 1002",
          "close-1-byte 1002" }, out)
        local statuses = {}
        for _ = 1, 16 do
          local ev = events(seen)
          statuses[#statuses + 1] = ev[#ev][3]
        end
        assert.are.same({ 1002, 1002, 1002, 1002, 1002, 1002, 1002, 1002,
                          1007, 1007, 1007, 1007, 1002, 1002, 1002, 1002 }, statuses)
      end))
    else
      it("a heartbeat the peer does not answer ends the connection: 1006", with_loom(function(url, seen)
        local t = loom.spawn(client, lib, url("/beat"), "deaf")
        local ev = events(seen)
        t:cancel()
        pcall(loom.await, t)
        assert.are.same({ "text", "hi" }, ev[2])
        assert.are.equal("end", ev[3][1])
        assert.is_truthy(has(ev[3][2], "no answer to a ping"), ev[3][2])
        assert.are.same({ 1006, 1006 }, { ev[3][3], ev[3][4] })
      end))
    end
  end)

  describe("a loom client and a Python server on " .. lib, function()
    it("echo text and binary exactly; loom closes with 4001 'bye'", with_server(lib, function(url, peer)
      local ws = connect(url("/echo"))
      assert.is_nil(ws.protocol)
      assert.is_true(ws:send(TEXT))
      assert.is_true(ws:send(BINARY, "binary"))
      assert.are.same({ TEXT, "text", n = 2 }, pack(ws:receive()))
      assert.are.same({ BINARY, "binary", n = 2 }, pack(ws:receive()))
      assert.is_true(ws:close(4001, "bye"))
      assert.are.same({ 4001, "bye" }, { ws.close_code, ws.close_reason })
      assert.are.same({ 4001, "bye" }, { peer:closed("/echo") })
      local data, msg, status = ws:receive()
      assert.is_nil(data)
      assert.are.equal(4001, status, msg)
    end))

    if lib == "websockets" then
      it("fragmented messages from the peer arrive as one message each", with_server(lib, function(url, peer)
        local ws = connect(url("/fragments"))
        assert.are.same({ "h\u{e9}llo\0 w\u{f6}rld", "text", n = 2 }, pack(ws:receive()))
        assert.are.same({ "\0\1\xff\x80\0", "binary", n = 2 }, pack(ws:receive()))
        -- a UTF-8 character cut in two by fragments, a ping between them
        assert.are.same({ "h\u{e9}llo", "text", n = 2 }, pack(ws:receive()))
        ws:send("after")
        assert.are.same({ "after", "text", n = 2 }, pack(ws:receive()))
        ws:close()
        assert.are.equal(1000, (peer:closed("/fragments")))
      end))
    end

    it("pings both ways: the peer gets its pong, loom's ping gets its answer", with_server(lib, function(url, peer)
      local ws = connect(url("/ping"))
      assert.are.same({ "pong received", "text", n = 2 }, pack(ws:receive()))
      assert.are.same({ true, n = 1 }, pack(ws:ping("loom")))
      assert.are.same({ true, n = 1 }, pack(ws:ping()))
      assert.is_true(ws:send("after the pings"))
      assert.are.same({ "after the pings", "text", n = 2 }, pack(ws:receive()))
      ws:close()
      assert.are.equal(1000, (peer:closed("/ping")))
    end))

    it("the peer closes with 4002 'later': receive gives nil, msg, 4002", with_server(lib, function(url, peer)
      local ws = connect(url("/close"))
      ws:send("go")
      local data, msg, status = ws:receive()
      assert.is_nil(data)
      assert.are.equal(4002, status, msg)
      assert.is_truthy(has(msg, "4002") and has(msg, "later"), msg)
      assert.are.same({ 4002, "later" }, { ws.close_code, ws.close_reason })
      assert.are.equal(4002, (peer:closed("/close")))
      assert.is_true(ws:close())  -- closed already: nothing more to do
      assert.are.same({ nil, "websocket closed (4002: later)", 4002, n = 3 }, pack(ws:send("late")))
    end))

    it("a peer gone without a close: receive gives nil, msg, 1006", with_server(lib, function(url)
      local ws = connect(url("/vanish"))
      ws:send("go")
      local data, msg, status = ws:receive()
      assert.is_nil(data)
      assert.are.equal(1006, status, msg)
      assert.is_truthy(has(msg, "connection lost"), msg)
      assert.are.same({ 1006, "" }, { ws.close_code, ws.close_reason })
    end))

    it("1 MiB text and binary messages round trip intact", with_server(lib, function(url, peer)
      local ws = connect(url("/echo"))
      assert.is_true(ws:send(BIG_TEXT))
      assert.is_true(ws:send(BIG_BINARY, "binary"))
      local data, kind = ws:receive()
      assert.is_true(data == BIG_TEXT and kind == "text", kind)
      data, kind = ws:receive()
      assert.is_true(data == BIG_BINARY and kind == "binary", kind)
      ws:close()
      assert.are.equal(1000, (peer:closed("/echo")))
    end))

    it("a message over max_message: the peer sees 1009, receive gives 1009", with_server(lib, function(url, peer)
      local ws = connect(url("/big"), { max_message = 1000 })
      local data, msg, status = ws:receive()
      assert.is_nil(data)
      assert.are.equal(1009, status, msg)
      assert.is_truthy(has(msg, "max_message"), msg)
      assert.are.equal(1009, ws.close_code)
      assert.are.equal(1009, (peer:closed("/big")))
    end))

    it("text that is not UTF-8 from the peer: 1007 both ends", with_server(lib, function(url, peer)
      local ws = connect(url("/badutf8"))
      local data, msg, status = ws:receive()
      assert.is_nil(data)
      assert.are.equal(1007, status, msg)
      assert.is_truthy(has(msg, "UTF-8"), msg)
      assert.are.equal(1007, ws.close_code)
      assert.are.equal(1007, (peer:closed("/badutf8")))
    end))

    it("negotiates a subprotocol with the peer", with_server(lib, function(url, peer)
      local ws = connect(url("/proto"), { protocols = { "other", "chat.v2" } })
      assert.are.equal("chat.v2", ws.protocol)
      assert.are.same({ "chat.v2", "text", n = 2 }, pack(ws:receive()))
      ws:close()
      assert.are.equal(1000, (peer:closed("/proto")))
      ws = connect(url("/proto"), { protocols = "other" })
      assert.is_nil(ws.protocol)
      assert.are.same({ "none", "text", n = 2 }, pack(ws:receive()))
      ws:close()
      assert.are.equal(1000, (peer:closed("/proto")))
    end))

    if lib == "websockets" then
      it("a subprotocol the client did not offer: nil, msg, EPROTO", with_server(lib, function(url)
        local ws, err, code = http.websocket(url("/rogue"), { protocols = { "chat.v1" } })
        assert.is_nil(ws)
        assert.are.equal("EPROTO", code)
        assert.is_truthy(has(err, "the server chose protocol rogue, which was not offered"), err)
      end))

      it("frames that break RFC 6455 get 1002 (1007 for bad UTF-8)", with_server(lib, function(url, peer)
        for case, want in pairs { masked = 1002, rsv1 = 1002, opcode3 = 1002,
                                  ["close-1005"] = 1002, surrogate = 1007 } do
          local ws = connect(url("/raw/" .. case))
          local data, msg, status = ws:receive()
          assert.is_nil(data)
          assert.are.equal(want, status, case .. ": " .. msg)
          assert.are.equal(want, ws.close_code, case)
          assert.are.equal(want, (peer:closed("/raw/" .. case)), case)
        end
      end))
    else
      it("a heartbeat the peer does not answer ends the connection: 1006", with_server(lib, function(url)
        local ws = connect(url("/deaf"), { heartbeat = 0.3 })
        local data, msg, status = ws:receive()
        assert.is_nil(data)
        assert.are.equal(1006, status, msg)
        assert.is_truthy(has(msg, "no answer to a ping within 0.15s"), msg)
      end))

      it("a close the peer does not answer ends after close_timeout", with_server(lib, function(url)
        local ws = connect(url("/deaf"), { close_timeout = 0.3 })
        local t0 = loom.now()
        assert.is_true(ws:close(4001, "bye"))
        assert.is_true(loom.now() - t0 >= 0.25, loom.now() - t0)
        assert.are.same({ 4001, "bye" }, { ws.close_code, ws.close_reason })
        local data, msg, status = ws:receive()
        assert.is_nil(data)
        assert.are.equal(4001, status, msg)
        assert.is_truthy(has(msg, "no answer to the close within 0.3s"), msg)
      end))
    end
  end)
end

describe("a frame in the same write as the handshake", function()
  it("a loom server gets the frame that came with the request", with_loom(function(url, seen)
    assert.are.same({ "text " .. hex("early bird"), "closed 1000" }, client("raw", url("/"), "early"))
    local ev = events(seen)
    assert.are.same({ { "open", "none" }, { "text", "early bird" } }, { ev[1], ev[2] })
    assert.are.same({ "end", 1000, 1000 }, { ev[3][1], ev[3][3], ev[3][4] })
  end))

  it("a loom client gets the frame that came with the 101", with_server("raw", function(url, peer)
    local ws = connect(url("/early"))
    assert.are.same({ "early bird", "text", n = 2 }, pack(ws:receive()))
    assert.is_true(ws:close())
    assert.are.same({ 1000, "" }, { ws.close_code, ws.close_reason })
    assert.are.equal(1000, (peer:closed("/early")))
  end))
end)

describe("wss://", function()
  -- a self-signed certificate for 127.0.0.1 and localhost, made in setup
  local dir = h.tmppath()
  local cert, key = dir .. "/cert.pem", dir .. "/key.pem"
  local TLS = { "cert=" .. cert, "key=" .. key }

  setup(function()
    assert(os.execute("mkdir -m 700 " .. h.quote(dir)))
    local _, err, code = h.sh(("env -u LD_PRELOAD openssl req -x509 -newkey ec "
      .. "-pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 -subj /CN=localhost "
      .. "-addext subjectAltName=IP:127.0.0.1,DNS:localhost -keyout %s -out %s")
      :format(h.quote(key), h.quote(cert)), nil, 30)
    assert(code == 0, err)
  end)

  teardown(function() h.rmtree(dir) end)

  for _, lib in ipairs(LIBS) do
    it("a loom client with ca = the certificate and a Python server on " .. lib, with_server(lib, function(url, peer)
      local ws = connect(url("/echo"), { ca = cert })
      assert.is_true(ws:send(TEXT))
      assert.is_true(ws:send(BINARY, "binary"))
      assert.are.same({ TEXT, "text", n = 2 }, pack(ws:receive()))
      assert.are.same({ BINARY, "binary", n = 2 }, pack(ws:receive()))
      assert.is_true(ws:close(4001, "bye"))
      assert.are.same({ 4001, "bye" }, { peer:closed("/echo") })
    end, TLS))

    it("a loom server with opts.tls and a Python client on " .. lib .. " trusting its certificate",
      with_loom(function(url, seen)
        local out = client(lib, url("/"), "echo", { "ca=" .. cert })
        assert.are.same({ "text " .. hex(TEXT), "binary " .. hex(BINARY) }, out)
        assert.are.same({ { "open", "none" }, { "text", TEXT },
          { "binary", BINARY } }, { table.unpack(events(seen), 1, 3) })
      end, { tls = { cert = cert, key = key } }))
  end

  it("a loom client verifying without ca refuses the self-signed certificate", with_server("websockets", function(url)
    local ws, err, code = http.websocket(url("/echo"))
    assert.is_nil(ws)
    assert.are.equal("EPROTO", code)
    assert.is_truthy(has(err, "certificate verify failed"), err)
    ws = connect(url("/echo"), { verify = false })
    assert.is_true(ws:send("unverified"))
    assert.are.same({ "unverified", "text", n = 2 }, pack(ws:receive()))
    ws:close()
  end, TLS))
end)

describe("1000 WebSockets at once", function()
  -- A loom server in a process of its own, whose limit of open files is
  -- raised for its 1000 connections: it keeps the set of its WebSockets
  -- and sends each message but "hello" to all of them.  It closes when
  -- its stdin ends, and exits when its last connection has.
  local SERVER = [[
local http = require "loom.http"
local all, n = {}, 0
local srv = assert(http.serve("127.0.0.1", 0, function(req)
  local ws = assert(req:websocket())
  all[ws], n = true, n + 1
  for data in ws:messages() do
    if data == "hello" then
      ws:send("welcome")
    else
      local sent = 0
      for peer in pairs(all) do
        if peer:send(data) then sent = sent + 1 end
      end
      print("broadcast " .. sent .. " of " .. n)
    end
  end
  all[ws], n = nil, n - 1
end))
local _, port = srv:address()
print("listening " .. port)
repeat until not loom.stdin:read()
srv:close()
]]

  -- The sanitizer run's variables go to loom alone, not to the shell
  -- and 'timeout' in front of it.
  local function loom_env()
    local env = h.peer_env()
    for _, k in ipairs { "ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS",
                         "LOOM_CLOSE_AT_EXIT" } do
      env[k] = os.getenv(k)
    end
    env.LOOM_PRELOAD = os.getenv("LD_PRELOAD")
    return env
  end

  it("a message one client sends reaches all 1000 (websockets)", async(function()
    local script = h.script(SERVER)
    local argv = { "timeout", "-k", "2", tostring(LIMIT), "sh", "-c",
      'ulimit -n 4096 2>/dev/null || ulimit -n "$(ulimit -Hn)"; '
      .. '[ -z "$LOOM_PRELOAD" ] || export LD_PRELOAD="$LOOM_PRELOAD"; '
      .. 'exec "$0" "$@"', h.loom_bin, script }
    argv.stdin, argv.stdout, argv.stderr, argv.env = "pipe", "pipe", "pipe", loom_env()
    local srv = setmetatable({ p = assert(process.spawn(argv)) }, Peer)
    srv.err = drain(srv.p.stderr)
    local ok, e = pcall(function()
      local port = srv:line("^listening (%d+)$")
      local url = ("ws://127.0.0.1:%s/"):format(port)
      assert.are.same({ "open 1000", "received 1000" },
        client("websockets", url, "broadcast", { "n=1000" }))
      assert.are.same({ "1000", "1000" }, { srv:line("^broadcast (%d+) of (%d+)$") })
      srv.p.stdin:close()  -- the server closes, and ends with its last connection
      assert.are.same({ 0, n = 2 }, pack(loom.timeout(WAIT, srv.p.wait, srv.p)))
    end)
    srv:stop()
    os.remove(script)
    if not ok then error(tostring(e) .. "\n(the server's stderr:)\n" .. srv.err[1], 0) end
  end, { timeout = 40 }))
end)
