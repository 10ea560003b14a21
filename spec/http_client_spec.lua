--[[ spec/http_client_spec.lua: loom.http's client (SPEC "HTTP client").

  Against servers loom did not write, each started by its test on
  127.0.0.1 and stopped by it: spec/peers/http_peer.py (Python's
  http.server: see its routes), `openssl s_server -www` for HTTPS with
  a certificate the openssl command makes at test time, and nginx when
  it is installed.  A peer prints its port on stdout and the test reads
  that line; nothing waits on a fixed sleep.
]]
local loom = require "loom"
local http = require "loom.http"
local net = require "loom.net"
local process = require "loom.process"
local fs = require "loom.fs"
local async = require("loom.busted").async
local h = require "spec.helper"

local MiB = 1024 * 1024
local has, raised = h.has, h.raised
local PEER = "spec/peers/http_peer.py"
-- the interpreter itself, not a wrapper script in front of it (pyenv's
-- shim is a bash script, which a sanitizer build's LD_PRELOAD reports)
local PYTHON = h.sh("python3 -c 'import sys; print(sys.executable)'")
  :match("^(%S+)\n") or "python3"

-- Starts a peer command whose stdout gives its port on a line that
-- matches 'pattern' (a capture); returns the Process and the port.
local function start_peer(cmd, pattern)
  local argv = { "timeout", "-k", "5", "120", table.unpack(cmd) }
  argv.stdout, argv.stderr = "pipe", "null"
  local p = assert(process.spawn(argv))
  local ok, port = pcall(function()
    while true do
      local line, err = p.stdout:read_line()
      assert(line, "the peer ended before giving its port: " .. tostring(err))
      local port = line:match(pattern)
      if port then return tonumber(port) end
    end
  end)
  if not ok then
    p:kill("SIGTERM")
    p:wait()
    error(port, 0)
  end
  return p, port
end

-- SIGTERM: 'timeout' passes it on to the peer (a SIGKILL would leave
-- the peer running, orphaned)
local function stop_peer(p)
  p:kill("SIGTERM")
  p:wait()
  p:close()
end

-- A test body given the base URL of a fresh Python peer, stopped after.
local function with_peer(fn, opts)
  return async(function()
    local p, port = start_peer({ PYTHON, PEER }, "^(%d+)$")
    local ok, e = pcall(fn, "http://127.0.0.1:" .. port)
    stop_peer(p)
    if not ok then error(e, 0) end
  end, opts)
end

local free_port = h.free_port

local function get_ok(url, opts)
  local res, err, code = http.get(url, opts)
  assert(res, tostring(err) .. " " .. tostring(code))
  return res
end

-- The peer's count of connections accepted so far.
local function connections(base)
  return tonumber(get_ok(base .. "/connections").body)
end

-- The bytes of /large between offsets 'from' and 'from + n - 1' (0-based),
-- made here as the peer makes them (see http_peer.py).
local BASE
local function expected(from, n)
  if not BASE then
    local b = {}
    for i = 0, 65535 do b[i + 1] = string.char((i * i + i // 256) % 256) end
    BASE = table.concat(b)
  end
  local parts = {}
  while n > 0 do
    local k, off = from // 65536, from % 65536
    local r = (k * 257) % 65536
    local blk = BASE:sub(r + 1) .. BASE:sub(1, r)
    local take = math.min(n, 65536 - off)
    parts[#parts + 1] = blk:sub(off + 1, off + take)
    from, n = from + take, n - take
  end
  return table.concat(parts)
end

describe("http client", function()

  describe("requests and responses", function()
    it("GET gives status, lower-case headers, body, final url and json()",
      with_peer(function(base)
        local res = get_ok(base .. "/echo?q=1",
          { headers = { ["X-Token"] = "abc", ["X-Num"] = 42 } })
        assert.are.equal(200, res.status)
        assert.are.equal("application/json", res.headers["content-type"])
        assert.is_nil(res.headers["Content-Type"])
        assert.are.equal(base .. "/echo?q=1", res.url)
        local echo = assert(res:json())
        assert.are.equal("GET", echo.method)
        assert.are.equal("/echo?q=1", echo.path)
        assert.are.equal("abc", echo.headers["x-token"])
        assert.are.equal("42", echo.headers["x-num"])
        assert.are.equal("loom/" .. loom.version, echo.headers["user-agent"])
        assert.are.equal("", echo.body)
      end))

    it("POST sends its body as is, with no content-type nor Expect unasked",
      with_peer(function(base)
        local body = ("x\0y"):rep(700000)  -- 2 MB, NULs included
        local res = assert(http.post(base .. "/echo", body))
        local echo = assert(res:json())
        assert.are.equal("POST", echo.method)
        assert.are.equal(#body, #echo.body)
        assert.is_true(echo.body == body)
        assert.is_nil(echo.headers["content-type"])
        assert.is_nil(echo.headers["expect"])
      end))

    it("takes the table form and the (url, opts) form; json = sets the body",
      with_peer(function(base)
        local res = assert(http.request { method = "put", url = base .. "/echo",
          json = { a = 1, list = { 1, 2 } } })
        local echo = assert(res:json())
        assert.are.equal("PUT", echo.method)
        assert.are.equal("application/json", echo.headers["content-type"])
        assert.are.same({ a = 1, list = { 1, 2 } },
          assert(loom.json.decode(echo.body)))
        res = assert(http.request(base .. "/echo",
          { method = "DELETE", headers = { ["Content-Type"] = "text/x" },
            body = "gone" }))
        echo = assert(res:json())
        assert.are.equal("DELETE", echo.method)
        assert.are.equal("text/x", echo.headers["content-type"])
        assert.are.equal("gone", echo.body)
        res = assert(http.request(base .. "/echo"))
        assert.are.equal("GET", assert(res:json()).method)
      end))

    it("HEAD gives the headers and no body", with_peer(function(base)
      local res = assert(http.request { method = "HEAD", url = base .. "/echo" })
      assert.are.equal(200, res.status)
      assert.are.equal("", res.body)
      assert.is_truthy(tonumber(res.headers["content-length"]) > 0)
    end))

    it("an error status is a response, not a failure", with_peer(function(base)
      for _, code in ipairs { 404, 500, 503 } do
        local res, err = http.get(base .. "/status/" .. code)
        assert.is_nil(err)
        assert.are.equal(code, res.status)
        assert.are.equal("status " .. code, res.body)
      end
    end))

    it("res:json() of a body that is not JSON is nil, msg", with_peer(function(base)
      local v, err = get_ok(base .. "/status/200"):json()
      assert.is_nil(v)
      assert.matches("^json%.decode: ", err)
    end))

    it("decodes gzip and chunked bodies", with_peer(function(base)
      local res = get_ok(base .. "/gzip")
      assert.are.equal(("squeezed "):rep(1000), res.body)
      assert.are.equal("gzip", res.headers["content-encoding"])
      res = get_ok(base .. "/chunked")
      assert.are.equal("one,two,three", res.body)
      assert.are.equal("chunked", res.headers["transfer-encoding"])
    end))

    it("joins repeated headers with ', ' and lists a repeated set-cookie",
      with_peer(function(base)
        local hs = get_ok(base .. "/cookies").headers
        assert.are.same({ "a=1; Path=/",
          "b=2; Expires=Wed, 21 Oct 2037 07:28:00 GMT" }, hs["set-cookie"])
        assert.are.equal("first, second", hs["x-dup"])
        assert.are.equal("only", hs["x-one"])
      end))
  end)

  describe("redirects", function()
    it("follows a chain; the final response's headers and URL", with_peer(function(base)
      local res = get_ok(base .. "/redirect/4")
      assert.are.equal(200, res.status)
      assert.are.equal("arrived", res.body)
      assert.are.equal(base .. "/redirect/0", res.url)
      assert.is_nil(res.headers.location)
    end))

    it("redirects = 0 gives the 3xx itself", with_peer(function(base)
      local res = get_ok(base .. "/redirect/2", { redirects = 0 })
      assert.are.equal(302, res.status)
      assert.are.equal("1", res.headers.location)
      assert.are.equal("moved", res.body)
    end))

    it("more than opts.redirects, or a loop, is ELOOP", with_peer(function(base)
      local res, err, code = http.get(base .. "/redirect/3", { redirects = 2 })
      assert.is_nil(res)
      assert.are.equal("ELOOP", code)
      assert.are.equal("GET '" .. base .. "/redirect/3': Maximum (2) redirects "
        .. "followed", err)
      res, err, code = http.get(base .. "/loop")
      assert.is_nil(res)
      assert.are.equal("ELOOP", code)
      assert.is_truthy(has(err, "GET '" .. base .. "/loop': "), err)
      -- the pool is fine after it
      assert.are.equal(200, get_ok(base .. "/redirect/1").status)
    end))

    it("a 303 turns a POST into a GET", with_peer(function(base)
      local res = assert(http.post(base .. "/see-other", "data"))
      assert.are.equal("GET", assert(res:json()).method)
      assert.are.equal(base .. "/echo", res.url)
    end))
  end)

  describe("connections", function()
    it("20 sequential requests reuse one keep-alive connection",
      with_peer(function(base)
        local before = connections(base)
        for i = 1, 20 do
          assert.are.equal(200, get_ok(base .. "/echo?i=" .. i).status)
        end
        assert.are.equal(before, connections(base))
        assert.are.equal(1, before)
      end))

    it("rounds of 8 concurrent requests keep reusing the same 8 connections",
      with_peer(function(base)
        for _ = 1, 4 do
          local fns = {}
          -- all 8 answered at once, so that they end together
          for i = 1, 8 do
            fns[i] = function() return get_ok(base .. "/barrier?n=8") end
          end
          loom.gather(table.unpack(fns))
        end
        -- the last count's own request takes one of them
        assert.are.equal(8, connections(base))
      end))

    it("64 concurrent requests with loom.gather all succeed", with_peer(function(base)
      local fns = {}
      for i = 1, 64 do
        fns[i] = function()
          local res = assert(http.post(base .. "/echo", "n" .. i))
          return assert(res:json()).body
        end
      end
      local got = table.pack(loom.gather(table.unpack(fns)))
      assert.are.equal(64, got.n)
      for i = 1, 64 do assert.are.equal("n" .. i, got[i]) end
      -- the connections made then are reused afterwards
      local n = connections(base)
      assert.is_true(n <= 64, "connections: " .. n)
      local fns2 = {}
      for i = 1, 16 do fns2[i] = function() return get_ok(base .. "/echo") end end
      loom.gather(table.unpack(fns2))
      assert.are.equal(n, connections(base))
    end))
  end)

  describe("streaming", function()
    it("a 64 MiB body streams through a bounded buffer", with_peer(function(base)
      local size = 64 * MiB
      local res <close> = get_ok(base .. "/large?size=" .. size, { stream = true })
      assert.are.equal(200, res.status)
      assert.is_nil(res.body)
      local bound = http._stream_bound
      -- a reader that is not there: the transfer fills the bound, pauses
      loom.timeout(20, function()
        repeat loom.sleep(0.01) until select(3, res:buffered())
      end)
      local unread, peak = res:buffered()
      assert.is_true(unread >= bound, "unread " .. unread)
      assert.is_true(peak <= bound + 64 * 1024, "peak " .. peak)
      local got, bad_at = 0, nil
      for chunk in res:chunks() do
        if not bad_at and chunk ~= expected(got, #chunk) then bad_at = got end
        got = got + #chunk
      end
      assert.are.equal(size, got)
      assert.is_nil(bad_at, "the body differs at byte " .. tostring(bad_at))
      local _, peak2, _, pauses = res:buffered()
      assert.is_true(peak2 <= bound + 64 * 1024, "peak " .. peak2)
      assert.is_true(pauses >= 1, "never paused")
      local s, err, code = res:read()
      assert.is_nil(s)
      assert.are.equal("EOF", code)
      assert.is_truthy(has(err, "end of file"), err)
    end, { timeout = 120 }))

    it("res:read(n) takes at most n bytes; a streamed json()", with_peer(function(base)
      local res = get_ok(base .. "/chunked", { stream = true })
      local parts = {}
      while true do
        local s, _, code = res:read(2)
        if not s then assert.are.equal("EOF", code) break end
        assert.is_true(#s >= 1 and #s <= 2)
        parts[#parts + 1] = s
      end
      assert.are.equal("one,two,three", table.concat(parts))
      res = get_ok(base .. "/echo", { stream = true })
      assert.are.equal("GET", assert(res:json()).method)
    end))

    it("close() ends an unfinished transfer; a later request works",
      with_peer(function(base)
        do
          local res <close> = get_ok(base .. "/slow", { stream = true })
          assert.are.equal("tick\n", res:read(5))
        end
        assert.are.equal("1", get_ok(base .. "/aborted?n=1").body)
        local res = get_ok(base .. "/slow", { stream = true })
        res:close()
        res:close()  -- twice is harmless
        local s, err, code = res:read()
        assert.is_nil(s)
        assert.are.equal("ECANCELED", code)
        assert.are.equal("the response is closed", err)
        assert.are.equal("2", get_ok(base .. "/aborted?n=2").body)
      end))

    it("a failure in the body reaches the reader", with_peer(function(base)
      local res = get_ok(base .. "/short", { stream = true })
      local body = {}
      local s, err, code
      repeat
        s, err, code = res:read()
        body[#body + 1] = s
      until not s
      assert.are.equal("0123456789", table.concat(body))
      assert.are.equal("ECONNRESET", code)
      assert.is_truthy(has(err, "GET '" .. base .. "/short': "), err)
    end))
  end)

  describe("failures", function()
    it("refused is ECONNREFUSED, naming the method and URL", async(function()
      local url = ("http://127.0.0.1:%d/"):format(free_port())
      local res, err, code = http.get(url)
      assert.is_nil(res)
      assert.are.equal("ECONNREFUSED", code)
      assert.matches("^GET '" .. url:gsub("%p", "%%%0") .. "': Failed to connect", err)
    end))

    it("a name that does not resolve is EAI_NONAME", async(function()
      local res, err, code = http.get("http://nonexistent.invalid/")
      assert.is_nil(res)
      assert.are.equal("EAI_NONAME", code)
      assert.are.equal("GET 'http://nonexistent.invalid/': Could not resolve "
        .. "host: nonexistent.invalid", err)
    end))

    it("a bad URL or scheme is EINVAL", async(function()
      local _, err, code = http.get("ftp://127.0.0.1/")
      assert.are.equal("EINVAL", code)
      assert.is_truthy(has(err, "GET 'ftp://127.0.0.1/': "), err)
      _, _, code = http.get("http://[::1/")
      assert.are.equal("EINVAL", code)
    end))

    it("opts.timeout is ETIMEDOUT, before the headers and in the body",
      with_peer(function(base)
        local t0 = loom.now()
        local res, err, code = http.get(base .. "/slow-head", { timeout = 0.2 })
        assert.is_nil(res)
        assert.are.equal("ETIMEDOUT", code)
        assert.matches("^GET '.-/slow%-head': Operation timed out", err)
        assert.is_true(loom.now() - t0 < 5)
        res, err, code = http.get(base .. "/slow", { timeout = 0.2 })
        assert.is_nil(res)
        assert.are.equal("ETIMEDOUT", code)
        assert.matches("^GET '.-/slow': Operation timed out", err)
        assert.are.equal("1", get_ok(base .. "/aborted?n=1").body)
      end))

    it("loom.timeout around a request aborts the transfer at once",
      with_peer(function(base)
        local ok, e = pcall(loom.timeout, 0.2, http.get, base .. "/slow")
        assert.is_false(ok)
        h.assert_timeout(e)
        -- the peer saw the connection go (it would send for 60 s)
        assert.are.equal("1", get_ok(base .. "/aborted?n=1").body)
        ok, e = pcall(loom.timeout, 0.2, http.get, base .. "/slow-head")
        assert.is_false(ok)
        h.assert_timeout(e)
        assert.are.equal(200, get_ok(base .. "/echo").status)
      end))

    it("cancelling the task mid-transfer aborts it; the pool stays usable",
      with_peer(function(base)
        local t = loom.spawn(function()
          local res = get_ok(base .. "/slow", { stream = true })
          assert(res:read())
          return http.get(base .. "/slow")  -- cancelled in here
        end)
        -- the peer has both requests: the task waits in the second
        assert.are.equal("2", get_ok(base .. "/started?n=2").body)
        local before = connections(base)
        t:cancel()
        h.assert_cancelled(h.error_of(t))
        -- both transfers end: the waiting one at once, the streamed one
        -- when its response is collected (maybe already)
        assert.is_true(tonumber(get_ok(base .. "/aborted?n=1").body) >= 1)
        collectgarbage()
        collectgarbage()
        assert.are.equal("2", get_ok(base .. "/aborted?n=2").body)
        for _ = 1, 3 do assert.are.equal(200, get_ok(base .. "/echo").status) end
        assert.is_true(connections(base) <= before + 1)
      end))

    it("the host closing with transfers in flight leaves nothing running",
      function()
        local out, err, code = h.lua_src(([[
          local loom = require "loom"
          local http = require "loom.http"
          local process = require "loom.process"
          loom.run(function()
            local p = process.spawn{%q, %q, stdout = "pipe"}
            local base = "http://127.0.0.1:" .. p.stdout:read_line()
            -- a stream nobody reads, paused at its bound: no hold on the loop
            local res = assert(http.get(base .. "/large", {stream = true}))
            loom.spawn(http.get, base .. "/slow")
            loom.spawn(http.get, base .. "/slow-head")
            loom.yield()
            p:kill("SIGKILL")
            p:wait()
            print("main done", res.status)
          end)
          print("run done")
        ]]):format(PYTHON, PEER), 30)
        assert.are.equal("", err)
        assert.are.equal(0, code)
        assert.are.equal("main done\t200\nrun done\n", out)
      end)
  end)

  describe("HTTPS", function()
    local dir, cert, key

    setup(function()
      dir = h.tmpdir()
      cert, key = dir .. "/cert.pem", dir .. "/key.pem"
      local _, err, code = h.sh(("openssl req -x509 -newkey ec -pkeyopt "
        .. "ec_paramgen_curve:prime256v1 -nodes -keyout %s -out %s -days 1 "
        .. "-subj /CN=localhost -addext "
        .. "subjectAltName=IP:127.0.0.1,DNS:localhost"):format(key, cert))
      assert(code == 0, err)
    end)

    teardown(function() h.rmtree(dir) end)

    local function with_tls(fn)
      return async(function()
        local p, port = start_peer({ "openssl", "s_server", "-accept",
          "127.0.0.1:0", "-cert", cert, "-key", key, "-www" },
          "^ACCEPT .*:(%d+)$")
        local ok, e = pcall(fn, "https://127.0.0.1:" .. port .. "/")
        stop_peer(p)
        if not ok then error(e, 0) end
      end)
    end

    it("a self-signed certificate fails verification: EPROTO", with_tls(function(url)
      local res, err, code = http.get(url)
      assert.is_nil(res)
      assert.are.equal("EPROTO", code)
      assert.is_truthy(has(err, "GET '" .. url .. "': "), err)
      assert.is_truthy(has(err, "certificate"), err)
    end))

    it("verify = false accepts it", with_tls(function(url)
      local res = get_ok(url, { verify = false })
      assert.are.equal(200, res.status)
      assert.is_truthy(has(res.body, "s_server"), res.body)
    end))

    it("ca = a path or PEM text verifies it", with_tls(function(url)
      local res = get_ok(url, { ca = cert })
      assert.are.equal(200, res.status)
      res = get_ok(url, { ca = assert(fs.read_file(cert)) })
      assert.are.equal(200, res.status)
      local _, _, code = http.get(url, { ca = dir .. "/missing.pem" })
      assert.are.equal("EPROTO", code)
    end))
  end)

  describe("nginx", function()
    local nginx = "/usr/sbin/nginx"

    it("keep-alive, redirects and gzip against nginx", async(function()
      if not fs.stat(nginx) then
        pending("nginx is not installed")
        return
      end
      local dir = h.tmpdir()
      local port = free_port()
      local big = ("nginx says hello\n"):rep(4000)
      assert(fs.mkdir(dir .. "/logs"))
      assert(fs.mkdir(dir .. "/html"))
      assert(fs.write_file(dir .. "/html/big.txt", big))
      assert(fs.mkdir(dir .. "/tmp"))
      local conf = ([[
        daemon off;
        master_process off;
        error_log %s/logs/error.log;
        pid %s/nginx.pid;
        events { worker_connections 64; }
        http {
          log_format conn '$connection $status $request_uri';
          access_log %s/logs/access.log conn;
          client_body_temp_path %s/tmp;
          proxy_temp_path %s/tmp;
          fastcgi_temp_path %s/tmp;
          uwsgi_temp_path %s/tmp;
          scgi_temp_path %s/tmp;
          gzip on;
          gzip_types text/plain;
          gzip_min_length 100;
          server {
            listen 127.0.0.1:%d;
            root %s/html;
            location /moved { return 301 /big.txt; }
          }
        }
      ]]):gsub("%%s", dir):gsub("%%d", tostring(port))
      assert(fs.write_file(dir .. "/nginx.conf", conf))
      local p = assert(process.spawn { "timeout", "-k", "5", "60", nginx,
        "-p", dir, "-c", dir .. "/nginx.conf", stdout = "null", stderr = "pipe" })
      local ok, e = pcall(function()
        local base = ("http://127.0.0.1:%d"):format(port)
        -- nginx is up once a request gets through (it says nothing)
        local res
        loom.timeout(10, function()
          repeat
            res = http.get(base .. "/big.txt")
            if not res then loom.sleep(0.02) end
          until res
        end)
        for _ = 1, 10 do
          res = get_ok(base .. "/moved")
          assert.are.equal(200, res.status)
          assert.are.equal(big, res.body)
          assert.are.equal("gzip", res.headers["content-encoding"])
          assert.are.equal(base .. "/big.txt", res.url)
        end
        local r = assert(http.get(base .. "/nothing"))
        assert.are.equal(404, r.status)
      end)
      stop_peer(p)
      local log = fs.read_file(dir .. "/logs/access.log") or ""
      -- every request logged (the first that got through on) went over
      -- one connection: nginx's connection serial number is the same
      local lines = h.lines(log)
      h.rmtree(dir)
      if not ok then error(e, 0) end
      assert.are.equal(22, #lines, log)
      local first = lines[1]:match("^(%d+) ")
      for _, l in ipairs(lines) do
        assert.are.equal(first, l:match("^(%d+) "), log)
      end
    end, { timeout = 30 }))
  end)

  describe("argument checks", function()
    local file = "spec/http_client_spec.lua"

    local function bad(msg, fn)
      local e = raised(fn)
      assert.is_truthy(e, "no error raised")
      assert.is_truthy(has(e, msg), e)
      assert.is_truthy(e:sub(1, #file) == file, "not at the caller's line: " .. e)
    end

    it("misuse raises with the function's name", async(function()
      bad("bad argument #1 to 'http.request' (url must be a string, got nil)",
        function() http.request {} end)
      bad("bad argument #1 to 'http.request' (table or string expected, got number)",
        function() http.request(42) end)
      bad("bad argument #1 to 'http.get' (string expected, got nil)",
        function() http.get() end)
      bad("bad argument #2 to 'http.get' (headers['x'] must be a string or a "
        .. "number, got table)", function() http.get("http://x/", { headers = { x = {} } }) end)
      bad("bad argument #2 to 'http.get' (invalid header name 'a b')",
        function() http.get("http://x/", { headers = { ["a b"] = "1" } }) end)
      bad("bad argument #2 to 'http.get' (headers['x'] contains CR, LF or NUL)",
        function() http.get("http://x/", { headers = { x = "1\r\nEvil: 1" } }) end)
      bad("bad argument #2 to 'http.post' (string expected, got table)",
        function() http.post("http://x/", {}) end)
      bad("bad argument #3 to 'http.post' (timeout must be a non-negative "
        .. "number, got -1)", function() http.post("http://x/", "", { timeout = -1 }) end)
      bad("bad argument #1 to 'http.request' (redirects must be a non-negative "
        .. "integer, got 1.5)", function() http.request { url = "http://x/", redirects = 1.5 } end)
      bad("bad argument #1 to 'http.request' (method must be a token such as "
        .. "'GET', got G T)", function() http.request { url = "http://x/", method = "G T" } end)
      bad("bad argument #1 to 'http.request' (body must be a string, got number)",
        function() http.request { url = "http://x/", body = 1 } end)
      bad("bad argument #2 to 'http.get' (verify must be a boolean, got string)",
        function() http.get("http://x/", { verify = "no" }) end)
    end))

    it("raises outside a task", function()
      local e = raised(http.get, "http://127.0.0.1:9/")
      assert.is_truthy(has(e, h.outside("http.get")), e)
      e = raised(http.request, { url = "http://127.0.0.1:9/" })
      assert.is_truthy(has(e, h.outside("http.request")), e)
    end)
  end)

  it("goes through the proxy that http_proxy names (here loom's own server)", async(function()
    local seen
    local proxy = assert(loom.http.serve("127.0.0.1", 0, function(req)
      seen = { target = req.target, path = req.path, host = req.headers.host }
      return 200, "via proxy"
    end))
    local _, port = proxy:address()
    local env = h.peer_env()
    env.http_proxy = "http://127.0.0.1:" .. port
    env.no_proxy = ""
    local r = assert(process.run{ h.loom_bin, "-e", [[
      local res, err = loom.http.get("http://nowhere.invalid/some/path?q=1")
      print(res and res.status, res and res.body or err)
    ]], env = env, timeout = 30 })
    proxy:close()
    assert.are.equal("200\tvia proxy\n", r.stdout, r.stderr)
    assert.are.same({ target = "http://nowhere.invalid/some/path?q=1",
                      path = "/some/path", host = "nowhere.invalid" }, seen)
  end))

  it("gets a server's early answer to an upload it never reads", async(function()
    local srv = assert(loom.http.serve("127.0.0.1", 0, function()
      return 401, "go away\n", { Connection = "close" }
    end, { max_body_size = 100 * 1024 * 1024 }))
    local _, port = srv:address()
    local res, err, code = http.post("http://127.0.0.1:" .. port .. "/",
      ("z"):rep(20 * 1024 * 1024), { timeout = 30 })
    srv:close()
    assert.truthy(res, tostring(err) .. " " .. tostring(code))
    assert.are.equal(401, res.status)
    assert.are.equal("go away\n", res.body)
  end))

  it("calls a reply that is not HTTP EPROTO, a bad scheme EINVAL, a HEAD with a body misuse", async(function()
    local srv = assert(net.listen("127.0.0.1", 0, function(s)
      s:read()
      s:write("garbage\r\n\r\n")
    end))
    local _, port = srv:address()
    local res, err, code = http.get("http://127.0.0.1:" .. port .. "/")
    assert.is_nil(res)
    assert.are.equal("EPROTO", code, err)
    res, err, code = http.get("gopher://127.0.0.1:" .. port .. "/")
    srv:close()
    assert.is_nil(res)
    assert.are.equal("EINVAL", code, err)
    local e = raised(http.request, { method = "HEAD", url = "http://127.0.0.1:1/", body = "x" })
    assert.truthy(has(e, "bad argument #1 to 'http.request' (a HEAD request has no body)"), e)
  end))

  it("opens libcurl on first use only, and says so when it cannot", function()
    -- a script that makes no request does not map libcurl
    local out, err, code = h.run_src([[
      local f = assert(io.open("/proc/self/maps"))
      local maps = f:read("a")
      f:close()
      print(maps:find("libcurl", 1, true) and "mapped" or "not mapped")
      loom.http.get("http://127.0.0.1:1/")
      f = assert(io.open("/proc/self/maps"))
      maps = f:read("a")
      f:close()
      print(maps:find("libcurl", 1, true) and "mapped" or "not mapped")
    ]])
    assert.are.equal("not mapped\nmapped\n", out, err)
    assert.are.equal(0, code)
    -- LOOM_LIBCURL names the library; one that is not there is an error
    local path = h.script('print(pcall(loom.http.get, "http://127.0.0.1:1/"))')
    out, err = h.sh("LOOM_LIBCURL=/nonexistent/libcurl.so.4 " .. h.quote(h.loom_bin)
      .. " " .. h.quote(path))
    os.remove(path)
    assert.truthy(has(out, "false"), out .. err)
    assert.truthy(has(out, "the HTTP client needs libcurl: cannot load /nonexistent/libcurl.so.4"), out .. err)
  end)
end)
