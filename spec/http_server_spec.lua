--[[ spec/http_server_spec.lua: loom.http's server (SPEC "HTTP: loom.http",
  http.serve), checked with clients loom did not write: curl, Python's
  http.client, and raw sockets for pipelining and malformed requests.

  Every server listens on 127.0.0.1, port 0, and is closed by its test;
  every client is a child bounded by a time limit.
]]
local loom = require "loom"
local http = require "loom.http"
local net = require "loom.net"
local process = require "loom.process"
local async = require("loom.busted").async
local h = require "spec.helper"

local has, raised, logged = h.has, h.raised, h.logged

-- A server on 127.0.0.1 (port 0) answering with 'handler'; srv, port.
local function serve(handler, opts)
  local srv, err = http.serve("127.0.0.1", 0, handler, opts)
  assert(srv, err)
  local _, port = srv:address()
  return srv, port
end


local function url(port, path) return ("http://127.0.0.1:%d%s"):format(port, path or "/") end

-- Runs a command (argv) to the end, bounded; its stdout (stderr, code).
local function run(argv, input)
  argv.timeout = argv.timeout or 20
  argv.input = input
  argv.env = h.peer_env()
  local r = assert(process.run(argv))
  return r.stdout, r.stderr, r.code
end

local function curl(...)
  local argv = { "curl", "-sS", ... }
  return run(argv)
end

-- Python's http.client script 'src' with the port as sys.argv[1]; its
-- stdout.
local function python(src, port, ...)
  local out, err, code = run({ "python3", "-c", src, tostring(port), ... })
  assert.are.equal(0, code, err)
  return out
end

-- A raw connection: sends 'data', reads until the server closes or
-- 'until_pattern' is in what came; everything read.
local function raw(port, data, until_pattern)
  local s <close> = assert(net.connect("127.0.0.1", port))
  assert(s:write(data))
  local got = {}
  while true do
    local d = s:read()
    if not d then break end
    got[#got + 1] = d
    if until_pattern and table.concat(got):find(until_pattern) then break end
  end
  return table.concat(got)
end

-- The status line, headers (lower-case names) and body of a response.
local function parse_response(text)
  local head, body = text:match("^(.-)\r\n\r\n(.*)$")
  assert(head, "no response head in: " .. text)
  local lines = {}
  for l in (head .. "\r\n"):gmatch("(.-)\r\n") do lines[#lines + 1] = l end
  local status = tonumber(lines[1]:match("^HTTP/1%.%d (%d%d%d)"))
  local headers = {}
  for i = 2, #lines do
    local k, v = lines[i]:match("^([^:]+):%s*(.*)$")
    headers[k:lower()] = v
  end
  return status, headers, body
end

describe("http.serve", function()
  it("answers curl: status, body, Date, Content-Length and the request's fields", async(function()
    local seen
    local srv, port = serve(function(req)
      seen = req
      return 200, "hello " .. req.path, { ["X-Served-By"] = "loom" }
    end)
    local out = curl("-i", "-H", "X-Custom: one", "-H", "Cookie: a=1",
      url(port, "/some%20where?x=1&y=a+b&x=2&flag&z=%41"))
    srv:close()
    local status, headers, body = parse_response(out)
    assert.are.equal(200, status)
    assert.are.equal("hello /some where", body)
    assert.are.equal(tostring(#body), headers["content-length"])
    assert.are.equal("loom", headers["x-served-by"])
    assert.truthy(headers.date:match("^%a%a%a, %d%d %a%a%a %d%d%d%d %d%d:%d%d:%d%d GMT$"))
    assert.are.equal("GET", seen.method)
    assert.are.equal("/some where", seen.path)
    assert.are.equal("/some%20where?x=1&y=a+b&x=2&flag&z=%41", seen.target)
    assert.are.same({ x = { "1", "2" }, y = "a b", flag = true, z = "A" }, seen.query)
    assert.are.equal("1.1", seen.version)
    assert.are.equal("one", seen.headers["x-custom"])
    assert.are.equal("a=1", seen.headers.cookie)
    assert.are.equal("127.0.0.1:" .. port, seen.headers.host)
    assert.are.equal("127.0.0.1", seen.peer)
  end))

  it("keeps a connection alive across requests (curl reuses it)", async(function()
    local srv, port = serve(function(req) return 200, req.path end)
    local out = curl("-w", " %{num_connects}\n", url(port, "/a"), url(port, "/b"),
      url(port, "/c"))
    srv:close()
    assert.are.equal("/a 1\n/b 0\n/c 0\n", out)
  end))

  it("speaks HTTP/1.0: the connection closes unless kept alive", async(function()
    local srv, port = serve(function(req) return 200, req.version end)
    local out = curl("-i", "--http1.0", url(port, "/"))
    local _, headers, body = parse_response(out)
    assert.are.equal("1.0", body)
    assert.are.equal("close", headers.connection)
    out = curl("-i", "--http1.0", "-H", "Connection: keep-alive", "-w", "%{num_connects}",
      url(port, "/"), url(port, "/"))
    srv:close()
    assert.truthy(out:find("Connection: keep%-alive"))
    assert.truthy(out:find("\r\n\r\n1%.01HTTP"), out)  -- one connect...
    assert.truthy(out:find("\r\n\r\n1%.00$"), out)  -- ...the second reused it
  end))

  it("honours Connection: close from the client", async(function()
    local srv, port = serve(function() return 200, "x" end)
    local out = raw(port, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    srv:close()
    local status, headers, body = parse_response(out)
    assert.are.equal(200, status)
    assert.are.equal("close", headers.connection)
    assert.are.equal("x", body)  -- and the server closed: raw saw the end
  end))

  it("reads a chunked request body (curl's chunked upload)", async(function()
    local got
    local srv, port = serve(function(req)
      got = { chunked = req.chunked, len = req.content_length, body = req:body() }
      return 200, tostring(#got.body)
    end)
    local data = ("0123456789"):rep(10000)
    local out = run({ "curl", "-sS", "-H", "Transfer-Encoding: chunked",
      "--data-binary", "@-", url(port, "/up") }, data)
    srv:close()
    assert.are.equal("100000", out)
    assert.is_true(got.chunked)
    assert.is_nil(got.len)
    assert.are.equal(data, got.body)
  end))

  it("sends 100 Continue when the handler reads a body that waits for it", async(function()
    local srv, port = serve(function(req)
      assert.is_true(req.expect_continue)
      return 200, "got " .. #req:body()
    end)
    local data = ("x"):rep(5000)
    local out, err = run({ "curl", "-sS", "-v", "-H", "Expect: 100-continue",
      "--expect100-timeout", "10", "--data-binary", "@-", url(port, "/") }, data)
    srv:close()
    assert.are.equal("got 5000", out)
    assert.truthy(err:find("HTTP/1.1 100 Continue", 1, true), err)
  end))

  it("answers without 100 Continue when the handler never reads the body", async(function()
    local srv, port = serve(function() return 401, "no" end)
    local t0 = loom.now()
    local out, err = run({ "curl", "-sS", "-v", "-H", "Expect: 100-continue",
      "--expect100-timeout", "10", "--data-binary", "@-", url(port, "/") },
      ("x"):rep(5000))
    srv:close()
    assert.are.equal("no", out)
    assert.falsy(err:find("100 Continue", 1, true))
    assert.is_true(loom.now() - t0 < 5)  -- curl did not sit out its wait
  end))

  it("answers HEAD with the headers of a GET and no body", async(function()
    local srv, port = serve(function(req) return 200, "twelve bytes", { ["X-M"] = req.method } end)
    local out = python([[
import sys, http.client
c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=10)
c.request("HEAD", "/")
r = c.getresponse()
print(r.status, r.getheader("content-length"), r.getheader("x-m"), repr(r.read()))
c.request("GET", "/")
r = c.getresponse()
print(r.status, r.getheader("x-m"), r.read().decode())
]], port)
    local both = raw(port, "HEAD / HTTP/1.1\r\nHost: x\r\n\r\n"
      .. "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    srv:close()
    assert.are.equal("200 12 HEAD b''\n200 GET twelve bytes\n", out)
    -- no byte of a body after the head: the next response follows it
    assert.truthy(both:find("^HTTP/1.1 200 OK\r\n.-\r\n\r\nHTTP/1.1 200 OK\r\n.-\r\n\r\ntwelve bytes$"), both)
  end))

  it("answers pipelined requests in the order they came", async(function()
    local srv, port = serve(function(req)
      if req.path == "/slow" then loom.sleep(0.05) end
      return 200, req.path
    end)
    local out = raw(port, "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n"
      .. "GET /fast HTTP/1.1\r\nHost: x\r\n\r\n"
      .. "POST /post HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
      .. "GET /last HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    srv:close()
    local bodies = {}
    for b in out:gmatch("\r\n\r\n(/%l+)") do bodies[#bodies + 1] = b end
    assert.are.same({ "/slow", "/fast", "/post", "/last" }, bodies)
  end))

  it("talks to Python's http.client: keep-alive, POST bodies, chunked responses", async(function()
    local srv, port = serve(function(req)
      if req.path == "/chunks" then
        local i = 0
        return 200, function()
          i = i + 1
          if i <= 3 then return "part" .. i .. ";" end
        end
      end
      return 200, req.method .. " " .. (req:body() or "")
    end)
    local out = python([[
import sys, http.client
c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=10)
for i in range(3):
    c.request("POST", "/p", body="n=%d" % i)
    r = c.getresponse()
    print(r.status, r.read().decode())
c.request("GET", "/chunks")
r = c.getresponse()
print(r.getheader("transfer-encoding"), r.read().decode())
]], port)
    srv:close()
    assert.are.equal("200 POST n=0\n200 POST n=1\n200 POST n=2\nchunked part1;part2;part3;\n", out)
  end))

  it("gives 400 to a malformed request, closes it, and serves the next", async(function()
    local srv, port = serve(function() return 200, "fine" end)
    local out = raw(port, "BLAH / HTTP/1.1\r\n\r\n")
    local status, headers = parse_response(out)
    assert.are.equal(400, status)
    assert.are.equal("close", headers.connection)
    out = raw(port, "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab")
    assert.are.equal(400, (parse_response(out)))
    assert.are.equal("fine", (curl(url(port, "/"))))
    srv:close()
  end))

  it("refuses a head over the limit with 431 and a long target with 414", async(function()
    local srv, port = serve(function() return 200, "fine" end, { max_header_size = 1024 })
    local out = raw(port, "GET / HTTP/1.1\r\nHost: x\r\nX-Big: " .. ("b"):rep(2000) .. "\r\n\r\n")
    assert.are.equal(431, (parse_response(out)))
    out = raw(port, "GET /" .. ("p"):rep(2000) .. " HTTP/1.1\r\nHost: x\r\n\r\n")
    assert.are.equal(414, (parse_response(out)))
    assert.are.equal("fine", (curl(url(port, "/"))))
    srv:close()
  end))

  it("refuses a body over the limit with 413, declared or chunked", async(function()
    local called = 0
    local srv, port = serve(function(req)
      called = called + 1
      local body = req:body()
      return 200, "read " .. #body
    end, { max_body_size = 1000 })
    local out = curl("-i", "--data-binary", ("x"):rep(2000), url(port, "/"))
    assert.are.equal(413, (parse_response(out)))
    assert.are.equal(0, called)  -- refused before the handler
    out = run({ "curl", "-sS", "-i", "-H", "Transfer-Encoding: chunked",
      "--data-binary", "@-", url(port, "/") }, ("y"):rep(3000))
    assert.are.equal(413, (parse_response(out)))
    assert.are.equal(1, called)  -- the handler's read raised it
    assert.are.equal("read 10", (curl("--data-binary", "0123456789", url(port, "/"))))
    srv:close()
  end))

  it("streams a large request body through req:chunks() without holding it", async(function()
    local total, biggest, sum = 0, 0, 0
    local srv, port = serve(function(req)
      for chunk in req:chunks() do
        total = total + #chunk
        if #chunk > biggest then biggest = #chunk end
        sum = sum + chunk:byte(1)
      end
      return 200, tostring(total)
    end, { max_body_size = 64 * 1024 * 1024 })
    local data = ("z"):rep(8 * 1024 * 1024)
    local out = run({ "curl", "-sS", "--data-binary", "@-", url(port, "/") }, data)
    srv:close()
    assert.are.equal(tostring(#data), out)
    assert.is_true(biggest <= 1024 * 1024, "a piece of " .. biggest .. " bytes")
    assert.is_true(sum > 8, "pieces: " .. sum)
  end))

  it("reads a body in pieces of at most n bytes with req:read(n)", async(function()
    local pieces = {}
    local srv, port = serve(function(req)
      while true do
        local p, _, code = req:read(4)
        if not p then
          pieces[#pieces + 1] = code
          break
        end
        pieces[#pieces + 1] = p
      end
      return 200, "ok"
    end)
    curl("--data-binary", "abcdefghij", url(port, "/"))
    srv:close()
    assert.are.same({ "abcd", "efgh", "ij", "EOF" }, pieces)
  end))

  it("sends a function body chunked, as it is made (server-sent events)", async(function()
    local go = loom.event()
    local srv, port = serve(function()
      local n = 0
      return { status = 200, headers = { ["Content-Type"] = "text/event-stream" },
        body = function()
          n = n + 1
          if n == 2 then go:wait() end  -- the client saw the first event
          if n <= 3 then return "data: " .. n .. "\n\n" end
        end }
    end)
    local s <close> = assert(net.connect("127.0.0.1", port))
    s:write("GET /events HTTP/1.1\r\nHost: x\r\n\r\n")
    local got = ""
    while not got:find("data: 1\n\n", 1, true) do got = got .. assert(s:read()) end
    local status, headers = parse_response(got)
    assert.are.equal(200, status)
    assert.are.equal("chunked", headers["transfer-encoding"])
    assert.are.equal("text/event-stream", headers["content-type"])
    assert.falsy(got:find("data: 2", 1, true))
    go:set()
    while not got:find("0\r\n\r\n", 1, true) do got = got .. assert(s:read()) end
    srv:close()
    assert.truthy(got:find("data: 2\n\n\r\n.-data: 3\n\n\r\n0\r\n\r\n$"), got)
  end))

  it("decodes JSON bodies and sends {json = ...} as application/json", async(function()
    local srv, port = serve(function(req)
      local v = assert(req:json())
      return { status = 201, json = { sum = v.a + v.b, list = { 1, 2 } } }
    end)
    local out = curl("-i", "-H", "Content-Type: application/json",
      "--data-binary", '{"a": 2, "b": 40}', url(port, "/"))
    srv:close()
    local status, headers, body = parse_response(out)
    assert.are.equal(201, status)
    assert.are.equal("application/json", headers["content-type"])
    assert.are.same({ sum = 42, list = { 1, 2 } }, loom.json.decode(body))
  end))

  it("takes every response form: status, body, headers; a table; a string; nothing", async(function()
    local srv, port = serve(function(req)
      if req.path == "/table" then
        return { status = 202, body = "t", headers = { ["Set-Cookie"] = { "a=1", "b=2" } } }
      elseif req.path == "/string" then return "just text"
      elseif req.path == "/nothing" then return
      elseif req.path == "/number" then return 404, 12345
      end
    end)
    local out = curl("-i", url(port, "/table"))
    assert.are.equal(202, (parse_response(out)))
    assert.truthy(out:find("Set%-Cookie: a=1\r\nSet%-Cookie: b=2\r\n"), out)
    assert.are.equal("just text", (curl(url(port, "/string"))))
    out = curl("-i", url(port, "/nothing"))
    local status, headers, body = parse_response(out)
    assert.are.equal(204, status)
    assert.is_nil(headers["content-length"])
    assert.are.equal("", body)
    out = curl("-i", url(port, "/number"))
    local status404, _, body404 = parse_response(out)
    assert.are.equal(404, status404)
    assert.are.equal("12345", body404)
    srv:close()
  end))

  it("gives 500 to a handler's error, logs it with its traceback, and goes on", function()
    local out, err, code = h.run_src([[
      local http = loom.http
      local srv = assert(http.serve("127.0.0.1", 0, function(req)
        if req.path == "/bad" then
          local t = nil
          return t.field   -- line 5
        end
        if req.path == "/header" then return 200, "x", { ["X-A"] = "a\r\nInjected: 1" } end
        if req.path == "/status" then return 1000, "x" end
        return 200, "good"
      end))
      local _, port = srv:address()
      for _, path in ipairs { "/bad", "/header", "/status", "/ok" } do
        local r = loom.process.run{ "curl", "-sS", "-i", "http://127.0.0.1:" .. port .. path,
                                    timeout = 20, env = { PATH = os.getenv("PATH") } }
        print(path, r.stdout:match("^HTTP/1.1 (%d+)"), r.stdout:match("\r\n\r\n(.*)$"))
      end
      srv:close()
    ]])
    assert.are.equal(0, code, err)
    assert.are.equal("/bad\t500\tInternal Server Error\n\n/header\t500\tInternal Server Error\n\n"
      .. "/status\t500\tInternal Server Error\n\n/ok\t200\tgood\n", out)
    assert.truthy(has(err, "handler returned a bad status: 1000"), err)
    assert.truthy(has(err, "error in the HTTP handler for GET /bad"), err)
    assert.truthy(err:find(":5: attempt to index a nil value", 1, true), err)
    assert.truthy(has(err, "stack traceback"), err)
    assert.truthy(has(err, "bad response header 'X-A'"), err)
    assert.falsy(out:find("Injected"))
  end)

  it("closes a connection idle longer than keepalive_timeout", async(function()
    local srv, port = serve(function() return 200, "x" end, { keepalive_timeout = 0.2 })
    local s <close> = assert(net.connect("127.0.0.1", port))
    s:write("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    local t0 = loom.now()
    local got = assert(s:read_until("\r\n\r\nx"))
    assert.truthy(got:find("^HTTP/1.1 200"))
    local d, _, code = s:read()
    assert.is_nil(d)
    assert.are.equal("EOF", code)
    assert.is_true(loom.now() - t0 >= 0.15)
    srv:close()
  end))

  it("gives 408 to a client too slow to send its head, then closes", async(function()
    local srv, port = serve(function() return 200, "x" end, { header_timeout = 0.2 })
    local s <close> = assert(net.connect("127.0.0.1", port))
    s:write("GET / HTTP/1.1\r\nHost: x\r\n")  -- and nothing more
    local all = s:read_all()
    srv:close()
    assert.are.equal(408, (parse_response(all)))
  end))

  it("ends a connection after max_requests requests", async(function()
    local srv, port = serve(function() return 200, "x" end, { max_requests = 2 })
    local out = raw(port, ("GET / HTTP/1.1\r\nHost: x\r\n\r\n"):rep(3))
    srv:close()
    local n = select(2, out:gsub("HTTP/1.1 200", ""))
    assert.are.equal(2, n)
    assert.truthy(out:find("Connection: close\r\n\r\nx$"))
  end))

  it("closes gracefully: no new connections, the request in flight finishes", async(function()
    local release, entered = loom.event(), loom.event()
    local srv, port = serve(function(req)
      if req.path == "/slow" then
        entered:set()
        release:wait()
      end
      return 200, "done " .. req.path
    end)
    -- an idle keep-alive connection
    local idle <close> = assert(net.connect("127.0.0.1", port))
    idle:write("GET /first HTTP/1.1\r\nHost: x\r\n\r\n")
    assert(idle:read_until("done /first"))
    local busy = loom.spawn(raw, port, "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
    entered:wait()
    srv:close()
    local d, _, code = idle:read()  -- the idle one was closed at once
    assert.is_nil(d)
    assert.are.equal("EOF", code)
    local s, _, ecode = net.connect("127.0.0.1", port)
    assert.is_nil(s)
    assert.are.equal("ECONNREFUSED", ecode)
    release:set()
    local out = busy:await()
    local status, headers, body = parse_response(out)
    assert.are.equal(200, status)
    assert.are.equal("close", headers.connection)
    assert.are.equal("done /slow", body)
    srv:wait()  -- returns: the last connection is gone
  end))

  it("serves 1,000 concurrent keep-alive connections", async(function()
    local srv, port = serve(function(req) return 200, req.path end)
    local N = 1000
    local conns = {}
    for i = 1, N do conns[i] = assert(net.connect("127.0.0.1", port)) end
    local tasks = {}
    for i = 1, N do
      tasks[i] = loom.spawn(function()
        local s = conns[i]
        for round = 1, 2 do
          s:write(("GET /%d/%d HTTP/1.1\r\nHost: x\r\n\r\n"):format(i, round))
          local got = assert(s:read_until(("/%d/%d"):format(i, round)))
          assert(got:find("^HTTP/1.1 200"))
        end
        s:close()
        return true
      end)
    end
    local ok = 0
    for i = 1, N do if tasks[i]:await() then ok = ok + 1 end end
    srv:close()
    assert.are.equal(N, ok)
  end))

  it("stops a streaming body when its client goes, and serves the next", async(function()
    local calls, gone = 0, loom.event()
    local srv, port = serve(function(req)
      if req.path ~= "/stream" then return 200, "next" end
      return 200, function()
        calls = calls + 1
        if calls > 1000 then gone:set() return nil end  -- never reached
        loom.sleep(0.002)
        return ("x"):rep(10000)
      end
    end)
    local s = assert(net.connect("127.0.0.1", port))
    s:write("GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
    assert(s:read_exactly(50000))
    s:close()
    local before = calls
    assert.are.equal("next", (curl(url(port, "/"))))
    loom.sleep(0.1)  -- what a live client would have been sent meanwhile
    srv:close()
    assert.is_true(calls - before < 30, ("%d more calls"):format(calls - before))
    assert.is_false(gone:is_set())
  end))

  it("gives the handler nil, msg, code when a body stops coming or its client goes", async(function()
    local got = loom.queue()
    local srv, port = serve(function(req)
      got:put(table.pack(req:body()))
      return 200, "x"
    end, { body_timeout = 0.2 })
    local s = assert(net.connect("127.0.0.1", port))
    s:write("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc")
    local r = got:get()
    assert.is_nil(r[1])
    assert.are.equal("ETIMEDOUT", r[3])
    s:close()
    s = assert(net.connect("127.0.0.1", port))
    s:write("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc")
    s:close()  -- three bytes of ten, then the end
    r = got:get()
    assert.is_nil(r[1])
    assert.truthy(r[2]:find("cut short", 1, true), r[2])
    assert.are.equal("ECONNRESET", r[3])
    srv:close()
  end))

  it("serves HTTPS with opts.tls: curl and Python trust its certificate through ca", async(function()
    local dir = h.tmpdir()
    local cert, key = dir .. "/cert.pem", dir .. "/key.pem"
    local _, err, code = run({ "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
      "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1", "-subj", "/CN=localhost",
      "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", key, "-out", cert })
    assert.are.equal(0, code, err)
    local srv, port = serve(function(req)
      return 200, "secure " .. req.method .. " " .. (req:body() or "")
    end, { tls = { cert = cert, key = key } })
    local base = ("https://127.0.0.1:%d/"):format(port)
    local out = curl("--cacert", cert, "-d", "x=1", base, base)
    assert.are.equal("secure POST x=1secure POST x=1", out)
    local _, cerr, ccode = run({ "curl", "-sS", base })  -- not trusted
    assert.are.equal(60, ccode, cerr)
    out = python([[
import sys, ssl, http.client
ctx = ssl.create_default_context(cafile=sys.argv[2])
c = http.client.HTTPSConnection("localhost", int(sys.argv[1]), context=ctx, timeout=10)
c.request("GET", "/")
r = c.getresponse()
print(r.status, r.read().decode())
]], port, cert)
    srv:close()
    h.rmtree(dir)
    assert.are.equal("200 secure GET \n", out)
  end))

  it("streams a request body back as the response body (an echo)", async(function()
    local srv, port = serve(function(req)
      return 200, function() return req:read() end
    end)
    local data = ("echo me "):rep(50000)
    local out = run({ "curl", "-sS", "--data-binary", "@-", url(port, "/") }, data)
    srv:close()
    assert.are.equal(data, out)
  end))

  it("gives nothing of the next request's body to a task reading an answered one", async(function()
    local late, second, answered = loom.queue(), nil, loom.event()
    local srv, port = serve(function(req)
      if req.path == "/first" then
        loom.spawn(function()  -- reads after the response went
          answered:wait()
          late:put(table.pack(req:body()))
        end)
        return 200, "first"
      end
      second = req:body()
      return 200, "second"
    end)
    local s <close> = assert(net.connect("127.0.0.1", port))
    s:write("POST /first HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
    assert(s:read_until("first"))
    answered:set()
    local r = late:get()
    s:write("POST /second HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\n\r\nsecret")
    assert(s:read_until("second"))
    srv:close()
    assert.is_nil(r[1])
    assert.are.equal("ECANCELED", r[3])
    assert.are.equal("secret", second)
  end))

  it("answers a request that asks for an upgrade as HTTP/1.1, and the next one", async(function()
    local srv, port = serve(function(req) return 200, req.path end)
    local out = raw(port, "GET /a HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\n"
      .. "Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n"
      .. "GET /b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    srv:close()
    local n = select(2, out:gsub("HTTP/1.1 200 OK", ""))
    assert.are.equal(2, n, out)
    assert.truthy(out:find("\r\n\r\n/a", 1), out)
    assert.truthy(out:find("\r\n\r\n/b$"), out)
  end))

  it("ends the connection after a 500 when the client asked for it", async(function()
    local srv, port = serve(function() error("boom") end)
    local out, out2
    local msgs = logged(function()
      out = raw(port, "GET /err HTTP/1.0\r\n\r\n")  -- returns at the end of the connection
      out2 = raw(port, "GET /err HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    end)
    srv:close()
    assert.are.equal(2, #msgs)
    for _, m in ipairs(msgs) do
      assert.matches("^ERROR error in the HTTP handler for GET /err: spec/http_server_spec.lua:%d+: boom\n"
        .. "stack traceback:\n", m)
    end
    for _, o in ipairs { out, out2 } do
      local status, headers = parse_response(o)
      assert.are.equal(500, status)
      assert.are.equal("close", headers.connection)
    end
  end))

  it("times a head from its first byte: a client trickling bytes gets 408", async(function()
    local srv, port = serve(function() return 200, "x" end, { header_timeout = 0.3 })
    local s <close> = assert(net.connect("127.0.0.1", port))
    local t0 = loom.now()
    local got = loom.spawn(function() return s:read_all() end)
    local head = "GET / HTTP/1.1\r\nHost: x\r\nX-Slow: " .. ("a"):rep(200)
    for i = 1, #head do
      if got:done() then break end
      if not s:write(head:sub(i, i)) then break end
      loom.sleep(0.02)
    end
    local out = got:await()
    srv:close()
    assert.are.equal(408, (parse_response(out)))
    assert.is_true(loom.now() - t0 < 2, "held for " .. (loom.now() - t0) .. " s")
  end))

  it("refuses a second reader of one body with an error, and goes on", async(function()
    local second, tried = nil, loom.event()
    local srv, port = serve(function(req)
      if req.path == "/2" then return 200, "two" end
      local other = loom.spawn(function() return req:body() end)
      loom.yield()  -- the other task now waits for the rest of the body
      second = select(2, pcall(req.body, req))
      tried:set()
      assert(other:await() == "abcdefghij")
      return 200, "one"
    end)
    local s <close> = assert(net.connect("127.0.0.1", port))
    s:write("POST /1 HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc")
    tried:wait()
    s:write("defghij")
    assert(s:read_until("one"))
    s:write("GET /2 HTTP/1.1\r\nHost: x\r\n\r\n")
    assert(s:read_until("two"))
    srv:close()
    assert.truthy(tostring(second):find("another task is reading this request's body", 1, true),
      tostring(second))
  end))

  it("answers a bad status or body from the handler with 500", async(function()
    local srv, port = serve(function(req)
      if req.path == "/99" then return 99, "x" end
      if req.path == "/101" then return 101, "x" end
      if req.path == "/table" then return 200, { a = 1 } end
      if req.path == "/float" then return 201.0, "float" end
      if req.path == "/name" then return 200, "x", { ["Bad Name"] = "x" } end
      return { status = 200, headers = "oops", body = "x" }
    end)
    local msgs = logged(function()
      for _, path in ipairs { "/99", "/101", "/table", "/headers", "/name" } do
        assert.are.equal(500, (parse_response(curl("-i", url(port, path)))), path)
      end
    end)
    local want = {
      "GET /99: handler returned a bad status: 99 (an integer from 200 to 999 expected)",
      "GET /101: handler returned a bad status: 101 (an integer from 200 to 999 expected)",
      "GET /table: handler returned a table body (a string, a function or nil expected)",
      "GET /headers: handler returned string headers (a table expected)",
      "GET /name: bad response header 'Bad Name': not a token",
    }
    assert.are.equal(#want, #msgs)
    for i, w in ipairs(want) do
      assert.are.equal("ERROR error in the HTTP handler for " .. w, msgs[i]:match("^[^\n]*"))
    end
    local status, _, body = parse_response(curl("-i", url(port, "/float")))
    srv:close()
    assert.are.equal(201, status)
    assert.are.equal("float", body)
  end))

  it("delivers every response before ending a connection with more requests waiting", async(function()
    local srv, port = serve(function(req) return 200, req.path end, { max_requests = 200 })
    local reqs = {}
    for i = 1, 600 do reqs[i] = ("GET /p%d HTTP/1.1\r\nHost: x\r\n\r\n"):format(i) end
    local out = raw(port, table.concat(reqs))
    srv:close()
    local n = select(2, out:gsub("HTTP/1.1 200 OK", ""))
    assert.are.equal(200, n)
    assert.truthy(out:find("Connection: close\r\n\r\n/p200$"), out:sub(-200))
  end))

  it("reads nothing for req:read(0)", async(function()
    local got
    local srv, port = serve(function(req)
      got = { req:read(0), req:body() }
      return 200, "x"
    end)
    curl("--data-binary", "hello", url(port, "/"))
    srv:close()
    assert.are.same({ "", "hello" }, got)
  end))

  it("raises with the function's name on misuse", function()
    assert.truthy(raised(http.serve, 1, 0, function() end):find("bad argument #1 to 'http.serve'", 1, true))
    assert.truthy(raised(http.serve, "127.0.0.1", -1, function() end):find("bad argument #2 to 'http.serve'", 1, true))
    assert.truthy(raised(http.serve, "127.0.0.1", 0, 42):find("bad argument #3 to 'http.serve'", 1, true))
    assert.truthy(raised(http.serve, "127.0.0.1", 0, function() end, { max_body_size = -1 })
      :find("max_body_size must be a positive integer", 1, true))
    assert.truthy(raised(http.serve, "127.0.0.1", 0, function() end, { keepalive_timeout = "x" })
      :find("keepalive_timeout must be a positive number", 1, true))
    assert.truthy(raised(http.serve, "127.0.0.1", 0, function() end, { max_connections = 0 })
      :find("max_connections must be a positive integer", 1, true))
  end)

  -- A GET of 'path' on 's'; a task whose result is the response's status
  -- (its body is the path, so its end is known).
  local function get_on(s, path)
    assert(s:write("GET ", path, " HTTP/1.1\r\nHost: x\r\n\r\n"))
    return loom.spawn(function()
      local got = {}
      while true do
        local d = s:read()
        if not d then return nil end
        got[#got + 1] = d
        local all = table.concat(got)
        if all:sub(-#path) == path then return parse_response(all) end
      end
    end)
  end

  it("serves at most max_connections at once: a third client waits while two are busy", async(function()
    local go = loom.event()
    local srv, port = serve(function(req)
      if req.path ~= "/c" then go:wait() end  -- busy until the test says
      return 200, req.path
    end, { max_connections = 2 })
    local a <close> = assert(net.connect("127.0.0.1", port))
    local b <close> = assert(net.connect("127.0.0.1", port))
    local first, second = get_on(a, "/a"), get_on(b, "/b")
    loom.sleep(0.05)
    local c <close> = assert(net.connect("127.0.0.1", port))
    local third = get_on(c, "/c")
    loom.sleep(0.2)
    assert.is_false(third:done())  -- it connected, it is not served
    go:set()
    assert.are.equal(200, first:await())
    assert.are.equal(200, second:await())
    a:close()
    assert.are.equal(200, third:await())
    assert.are.equal(200, get_on(b, "/b2"):await())  -- the others go on
    srv:close()
  end, { timeout = 10 }))

  it("at max_connections with every connection busy, the first to be idle makes room", async(function()
    local go = loom.event()
    local srv, port = serve(function(req)
      if req.path ~= "/c" then go:wait() end
      return 200, req.path
    end, { max_connections = 2, keepalive_timeout = 30 })
    local a <close> = assert(net.connect("127.0.0.1", port))
    local b <close> = assert(net.connect("127.0.0.1", port))
    local first, second = get_on(a, "/a"), get_on(b, "/b")
    loom.sleep(0.05)
    local c <close> = assert(net.connect("127.0.0.1", port))
    local third = get_on(c, "/c")
    loom.sleep(0.1)
    assert.is_false(third:done())
    go:set()  -- both answer, and stay open (keep-alive)
    assert.are.equal(200, first:await())
    assert.are.equal(200, second:await())
    local t0 = loom.now()
    assert.are.equal(200, third:await())
    assert.is_true(loom.now() - t0 < 5, "the third waited for a keep-alive timeout")
    -- one of the first two was closed for it, the other goes on
    local ra, rb = loom.spawn(a.read, a), loom.spawn(b.read, b)
    local ended = loom.wait({ ra, rb }, { return_when = "first" })[1]
    assert.are.equal("EOF", select(3, ended:await()))
    srv:close()
  end, { timeout = 10 }))

  it("at max_connections, the connection idle longest makes room for a new client", async(function()
    local srv, port = serve(function(req) return 200, req.path end, { max_connections = 2 })
    local a <close> = assert(net.connect("127.0.0.1", port))
    assert.are.equal(200, get_on(a, "/a"):await())
    loom.sleep(0.02)
    local b <close> = assert(net.connect("127.0.0.1", port))
    assert.are.equal(200, get_on(b, "/b"):await())
    -- both idle (keep-alive): a, idle longer, goes for the third client
    local t0 = loom.now()
    local c <close> = assert(net.connect("127.0.0.1", port))
    assert.are.equal(200, get_on(c, "/c"):await())
    assert.is_true(loom.now() - t0 < 2, "the third waited")
    assert.are.equal("EOF", select(3, a:read()))
    assert.are.equal(200, get_on(b, "/b2"):await())
    srv:close()
  end, { timeout = 10 }))

  it("returns nil, msg, code when it cannot listen", async(function()
    local srv, port = serve(function() end)
    local again, err, code = http.serve("127.0.0.1", port, function() end)
    srv:close()
    assert.is_nil(again)
    assert.are.equal("EADDRINUSE", code)
    assert.truthy(err:find(tostring(port), 1, true))
  end))
end)
