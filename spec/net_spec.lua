--[[ spec/net_spec.lua: loom.net (SPEC "Network: loom.net", all but TLS).

  Only 127.0.0.1, ::1 and Unix sockets in a temporary directory are used;
  every server listens on port 0 and every handle opened is closed.
  The tests that need the binary (a failing handler, EMFILE, SIGPIPE) run
  it as a subprocess.
]]
local loom = require "loom"
local net = require "loom.net"
local async = require("loom.busted").async
local h = require "spec.helper"

local KiB, MiB = 1024, 1024 * 1024

local has, raised, tmpdir, rmdir = h.has, h.raised, h.tmpdir, h.rmtree

-- A server on 'host' (default 127.0.0.1), port 0; returns it and its port.
local function listen(handler, host)
  local srv, err = net.listen(host or "127.0.0.1", 0, handler)
  assert(srv, err)
  local _, port = srv:address()
  return srv, port
end

-- Echoes whatever arrives until EOF.
local function echo(s)
  while true do
    local d = s:read()
    if not d then return end
    assert(s:write(d))
  end
end

-- Echoes line by line.
local function line_echo(s)
  for line in s:lines() do s:write(line, "\n") end
end

-- A server whose handler writes each piece, sleeping between pieces so
-- that they arrive separately, then closes the connection.
local function pieces_server(pieces, gap)
  return listen(function(s)
    s:nodelay(true)
    for i, p in ipairs(pieces) do
      if i > 1 then loom.sleep(gap or 0.03) end
      assert(s:write(p))
    end
    s:flush()
  end)
end

-- The values given, packed, with 'n' (to count a 4th value).
local function pack(...) return table.pack(...) end

local free_port = h.free_port

-- Whether binding ::1 works on this machine (checked once, in a task).
local ipv6_ok
local function have_ipv6()
  if ipv6_ok == nil then
    local srv = net.listen("::1", 0, function() end)
    ipv6_ok = srv ~= nil
    if srv then srv:close() end
  end
  return ipv6_ok
end

-- Calls fn(...) when binding ::1 works here; else the test is pending.
local function if_ipv6(fn, ...)
  if not have_ipv6() then
    pending("binding ::1 fails on this machine")
    return
  end
  return fn(...)
end

describe("loom.net", function()

  -- {================================================================
  describe("echo and addresses", function()
    local function echo_round_trip(host)
      local seen = loom.future()
      local srv <close>, port = listen(function(s)
        seen:set_result({ peer = { s:peer() }, addr = { s:address() } })
        echo(s)
      end, host)
      local shost, sport = srv:address()
      assert.are.equal(host, shost)
      assert.are.equal("integer", math.type(sport))
      assert.is_true(sport > 0 and sport <= 65535)

      local c <close> = assert(net.connect(host, port))
      assert.is_true(c:write("hello, ", "world"))
      assert.are.equal("hello, world", c:read_exactly(12))
      assert.is_true(c:write("\0binary\255\n"))
      assert.are.equal("\0binary\255\n", c:read_exactly(9))

      local ends = seen:await()
      local chost, cport = c:address()
      local phost, pport = c:peer()
      -- the client's peer is the server's listening address
      assert.are.same({ host, port }, { phost, pport })
      -- both ends agree: what one calls its address the other calls its peer
      assert.are.same({ chost, cport }, ends.peer)
      assert.are.same({ phost, pport }, ends.addr)
      assert.are.equal(host, chost)
      assert.are_not.equal(port, cport)
    end

    it("echoes over 127.0.0.1; server:address() gives the real port", async(function()
      echo_round_trip("127.0.0.1")
    end))

    it("echoes over ::1", async(function()
      if_ipv6(echo_round_trip, "::1")
    end))

    it("listens on '*' (every IPv4 address), reachable over 127.0.0.1", async(function()
      local srv <close> = assert(net.listen("*", 0, echo))
      local host, port = srv:address()
      assert.are.equal("0.0.0.0", host)
      assert.is_true(port > 0)
      local c <close> = assert(net.connect("127.0.0.1", port))
      c:write("star")
      assert.are.equal("star", c:read_exactly(4))
    end))

    it("connections have nodelay on unless opts.nodelay is false", async(function()
      -- Each round writes twice, then waits for the answer to both: with
      -- Nagle's algorithm the second write waits for the ACK of the first,
      -- which the peer delays, so rounds take tens of milliseconds.
      local function rounds(opts)
        local _srv <close>, port = listen(function(s)
          s:nodelay(true)
          while s:read_exactly(2) do s:write("k") end
        end)
        local c <close> = assert(net.connect("127.0.0.1", port, opts))
        local t0 = loom.now()
        for _ = 1, 10 do
          c:write("a")
          c:write("b")
          assert.are.equal("k", c:read_exactly(1))
        end
        return loom.now() - t0
      end
      local nagle = rounds { nodelay = false }
      if nagle < 0.1 then
        pending("no delayed ACK on this machine's loopback")
        return
      end
      local default, on = rounds(), rounds { nodelay = true }
      assert.is_true(default < nagle / 4, ("default %g s, Nagle %g s"):format(default, nagle))
      assert.is_true(on < nagle / 4, ("nodelay %g s, Nagle %g s"):format(on, nagle))
    end, { timeout = 20 }))

    it("connect tries each address of a name until one answers", function()
      -- A name for both ::1 and 127.0.0.1 needs a hosts file of its own:
      -- the binary runs in a mount namespace where one is bound over
      -- /etc/hosts.
      local dir = h.tmpdir()
      local hosts = dir .. "/hosts"
      local f = assert(io.open(hosts, "w"))
      f:write("::1 both.test\n127.0.0.1 both.test\n")
      f:close()
      local script = h.script([[
        local net = loom.net
        local addrs = assert(net.resolve("both.test"))
        print(table.concat(addrs, " "))
        for _, host in ipairs { "127.0.0.1", "::1" } do
          local srv = assert(net.listen(host, 0, function(s)
            s:write(host, "\n")
          end))
          local port = select(2, srv:address())
          local c = assert(net.connect("both.test", port))
          print(host, c:read_line(), (c:peer()))
          c:close()
          srv:close()
        end
        local srv = assert(net.listen("127.0.0.1", 0, function() end))
        local port = select(2, srv:address())
        srv:close()
        print(select(3, net.connect("both.test", port)))
      ]])
      local out, err, code = h.sh(("unshare -m sh -c %s"):format(h.quote(
        ("mount --bind %s /etc/hosts && exec %s %s"):format(h.quote(hosts),
          h.quote(h.loom_bin), h.quote(script)))))
      os.remove(script)
      h.rmtree(dir)
      if code ~= 0 and not has(out, "both.test") and (has(err, "unshare")
          or has(err, "mount")) then
        pending("no mount namespace here: " .. err)
        return
      end
      local l = h.lines(out)
      assert.are.equal(0, code, err)
      assert.are.equal("::1 127.0.0.1", l[1], out .. err)
      assert.are.same({ "127.0.0.1\t127.0.0.1\t127.0.0.1", "::1\t::1\t::1",
                        "ECONNREFUSED" }, { l[2], l[3], l[4] })
    end)

    it("connects by name (localhost) and listens on 'localhost'", async(function()
      local srv <close>, port = listen(echo, "localhost")
      assert.are.equal("127.0.0.1", (srv:address()))
      local c <close> = assert(net.connect("localhost", port))
      c:write("named")
      assert.are.equal("named", c:read_exactly(5))
    end))

    it("write takes several strings and numbers, sent in order", async(function()
      local _srv <close>, port = listen(echo)
      local c <close> = assert(net.connect("127.0.0.1", port))
      assert.is_true(c:write("a", 1, "b", 2.5, ""))
      assert.are.equal("a1b2.5", c:read_exactly(6))
    end))

    it("listening on a port in use fails with EADDRINUSE naming the address", async(function()
      local _srv <close>, port = listen(echo)
      local dup, msg, code = net.listen("127.0.0.1", port, echo)
      assert.is_nil(dup)
      assert.are.equal("EADDRINUSE", code)
      assert.is_true(has(msg, "127.0.0.1:" .. port), msg)
    end))

    it("opts.reuseport lets two servers share a port; both serve", async(function()
      local a <close> = assert(net.listen("127.0.0.1", 0, function(s) s:write("a") end,
                                          { reuseport = true }))
      local _, port = a:address()
      local b <close> = assert(net.listen("127.0.0.1", port, function(s) s:write("b") end,
                                          { reuseport = true, backlog = 16 }))
      assert.are.equal(port, select(2, b:address()))
      -- the kernel spreads connections by address hash: some go to each
      local seen = {}
      for _ = 1, 64 do
        local c <close> = assert(net.connect("127.0.0.1", port))
        seen[c:read_exactly(1)] = true
        if seen.a and seen.b then break end
      end
      assert.are.same({ a = true, b = true }, seen)
    end))

    it("opts.backlog and opts.reuseport are checked", async(function()
      local ok, e = pcall(net.listen, "127.0.0.1", 0, echo, { backlog = 1.5 })
      assert.is_false(ok)
      assert.matches("bad argument #4 to 'net.listen' %(backlog must be an integer%)", e)
      ok, e = pcall(net.listen, "127.0.0.1", 0, echo, { reuseport = "yes" })
      assert.is_false(ok)
      assert.matches("bad argument #4 to 'net.listen' %(reuseport must be a boolean%)", e)
      local srv <close> = assert(net.listen("127.0.0.1", 0, echo, { backlog = 1 }))
      local c <close> = assert(net.connect("127.0.0.1", select(2, srv:address())))
      c:write("x")
      assert.are.equal("x", c:read_exactly(1))
    end))
  end)
  -- }================================================================

  -- {================================================================
  describe("reading", function()
    it("read(n) gives up to n bytes, whatever is buffered, without waiting for more", async(function()
      local go, one_read, done = loom.event(), loom.event(), loom.event()
      local _srv <close>, port = listen(function(s)
        s:nodelay(true)
        s:write("abcdef")
        go:wait()
        s:write("xyz")
        s:read_exactly(1)   -- the client has read "xyz"
        s:write("1")
        one_read:wait()     -- "2" only once "1" came back alone
        s:write("2")
        done:wait()
      end)
      local c <close> = assert(net.connect("127.0.0.1", port))
      assert.are.equal("ab", c:read(2))
      assert.are.equal("cdef", c:read(100))  -- only what is buffered
      local t = loom.spawn(function() return c:read() end)
      h.settle()
      assert.is_false(t:done())   -- nothing buffered: it waits
      go:set()
      assert.are.equal("xyz", t:await())
      c:write("k")
      -- does not wait to fill 100: waiting would never end
      assert.are.equal("1", c:read(100))
      one_read:set()
      assert.are.equal("2", c:read(100))
      done:set()
    end))

    it("read_exactly gives exactly n bytes, across packets", async(function()
      local _srv <close>, port = pieces_server({ "hel", "lo wo", "rld!" })
      local c <close> = assert(net.connect("127.0.0.1", port))
      assert.are.equal("hello", c:read_exactly(5))
      assert.are.equal("", c:read_exactly(0))
      assert.are.equal(" world", c:read_exactly(6))
      assert.are.equal("!", c:read_exactly(1))
    end))

    it("read_exactly at EOF before n: nil, msg, 'EOF' and the partial data", async(function()
      local _srv <close>, port = pieces_server({ "0123", "4567" })
      local c <close> = assert(net.connect("127.0.0.1", port))
      assert.are.equal("01", c:read_exactly(2))
      local r = pack(c:read_exactly(100))
      assert.are.equal(4, r.n)
      assert.is_nil(r[1])
      assert.are.equal("string", type(r[2]))
      assert.are.equal("EOF", r[3])
      assert.are.equal("234567", r[4])
      -- nothing left: no partial data
      local r2 = pack(c:read_exactly(1))
      assert.is_nil(r2[1])
      assert.are.equal("EOF", r2[3])
      assert.is_nil(r2[4])
    end))

    it("read_exactly at EOF with a 1-byte tail gives that byte, once", async(function()
      local _srv <close>, port = listen(function(s)
        s:write("abc")
      end)
      local c <close> = assert(net.connect("127.0.0.1", port))
      assert.are.equal("ab", c:read_exactly(2))
      local r = pack(c:read_exactly(2))
      assert.are.same({ n = 4, nil, r[2], "EOF", "c" }, r)
      assert.are.equal("string", type(r[2]))
      local r2 = pack(c:read_exactly(1))
      assert.are.equal(3, r2.n)
      assert.are.equal("EOF", r2[3])
      -- a 1-byte tail after a longer read is the same
      local _srv2 <close>, port2 = listen(function(s) s:write("xyz") end)
      local c2 <close> = assert(net.connect("127.0.0.1", port2))
      local r3 = pack(c2:read_exactly(4))
      assert.are.equal("EOF", r3[3])
      assert.are.equal("xyz", r3[4])
    end))

    it("lines() ends at EOF but raises on other failures", async(function()
      local _srv <close>, port = listen(function(s)
        s:write("one\ntwo\n", string.rep("x", 200), "\n")
        s:read()
      end)
      local c <close> = assert(net.connect("127.0.0.1", port))
      c:limits { line = 100 }
      local got = {}
      local ok, e = pcall(function()
        for line in c:lines() do got[#got + 1] = line end
      end)
      assert.are.same({ "one", "two" }, got)
      assert.is_false(ok)
      assert.matches("^spec/net_spec%.lua:%d+: read_line from '127%.0%.0%.1:%d+': "
        .. "line longer than 100 bytes$", tostring(e))
      -- a closed stream raises too, naming the failure
      c:close()
      local ok2, e2 = pcall(function() for _ in c:lines() do end end)
      assert.is_false(ok2)
      assert.matches("net_spec%.lua:%d+: the stream is closed$", tostring(e2))
      -- and EOF simply ends the loop
      local _srv2 <close>, port2 = listen(function(s) s:write("a\nb") end)
      local c2 <close> = assert(net.connect("127.0.0.1", port2))
      local all = {}
      for line in c2:lines() do all[#all + 1] = line end
      assert.are.same({ "a", "b" }, all)
    end))

    it("read_exactly of more than the 1 MiB read buffer", async(function()
      local size = 3 * MiB
      local _srv <close>, port = listen(function(s)
        s:write(string.rep("q", size))
        s:flush()
        s:read()
      end)
      local c <close> = assert(net.connect("127.0.0.1", port))
      local ok, got = pcall(loom.timeout, 2, c.read_exactly, c, size)
      assert.is_true(ok, "read_exactly(3 MiB) did not return: " .. tostring(got))
      assert.are.equal(size, #got)
    end, { timeout = 10 }))

    it("read_until includes the separator, even one split across packets", async(function()
      local _srv <close>, port = pieces_server({ "one|", "|two||thr", "ee|", "|rest" })
      local c <close> = assert(net.connect("127.0.0.1", port))
      assert.are.equal("one||", c:read_until("||"))
      assert.are.equal("two||", c:read_until("||"))
      assert.are.equal("three||", c:read_until("||"))
      local r = pack(c:read_until("||"))
      assert.are.equal(4, r.n)
      assert.is_nil(r[1])
      assert.are.equal("EOF", r[3])
      assert.are.equal("rest", r[4])
    end))

    it("read_until finds a separator more than 1 MiB away", async(function()
      local size = 2 * MiB
      local _srv <close>, port = listen(function(s)
        s:write(string.rep("z", size), "END", "tail")
        s:flush()
        s:read()
      end)
      local c <close> = assert(net.connect("127.0.0.1", port))
      local ok, got = pcall(loom.timeout, 2, c.read_until, c, "END")
      assert.is_true(ok, "read_until did not return: " .. tostring(got))
      assert.are.equal(size + 3, #got)
      assert.are.equal("zEND", got:sub(-4))
      assert.are.equal("tail", c:read_exactly(4))
    end, { timeout = 10 }))

    it("read_line joins lines split across packets and strips \\n and \\r\\n", async(function()
      local _srv <close>, port = pieces_server({
        "first li", "ne\r\nsec", "ond\n\nfou", "r\rth\r", "\nlast" })
      local c <close> = assert(net.connect("127.0.0.1", port))
      assert.are.equal("first line", c:read_line())
      assert.are.equal("second", c:read_line())
      assert.are.equal("", c:read_line())
      assert.are.equal("four\rth", c:read_line())   -- a lone \r stays; \r|\n split
      assert.are.equal("last", c:read_line())       -- unterminated, at EOF
      local r = pack(c:read_line())
      assert.is_nil(r[1])
      assert.are.equal("string", type(r[2]))
      assert.are.equal("EOF", r[3])
    end))

    it("a line over the limit gives nil, msg, 'ELINE' and the next line still reads", async(function()
      local _srv <close>, port = pieces_server({
        "0123456789\n", "0123456789abcdef\nshort\n", "again\n" })
      local c <close> = assert(net.connect("127.0.0.1", port))
      local hwm = c:limits()
      local _, line = c:limits { line = 10 }
      assert.are.equal(10, line)
      assert.are.equal(hwm, (c:limits()))               -- unchanged
      assert.are.equal("0123456789", c:read_line())     -- exactly the limit
      local r = pack(c:read_line())
      assert.is_nil(r[1])
      assert.are.equal("ELINE", r[3])
      assert.is_true(has(r[2], "127.0.0.1:" .. port), r[2])
      assert.are.equal("short", c:read_line())
      assert.are.equal("again", c:read_line())
    end))

    it("a line of exactly the limit still reads when its \\r\\n is split across packets", async(function()
      local _srv <close>, port = pieces_server({ "0123456789\r", "\nnext\n",
        "0123456789\r" })
      local c <close> = assert(net.connect("127.0.0.1", port))
      c:limits { line = 10 }
      assert.are.equal("0123456789", c:read_line())
      assert.are.equal("next", c:read_line())
      local r = pack(c:read_line())      -- at EOF, the \r is part of the line
      assert.are.same({ "ELINE", 3 }, { r[3], r.n })
      assert.are.equal("EOF", select(3, c:read_line()))
    end))

    it("the default line limit is 64 KiB; a longer line arriving in pieces is skipped whole", async(function()
      local long = string.rep("b", 40 * KiB)
      local _srv <close>, port = pieces_server({ long, long, long .. "\nnext\n" }, 0.05)
      local c <close> = assert(net.connect("127.0.0.1", port))
      local hwm, line = c:limits()
      assert.are.equal(64 * KiB, hwm)
      assert.are.equal(64 * KiB, line)
      local r = pack(c:read_line())
      assert.is_nil(r[1])
      assert.are.equal("ELINE", r[3])
      local nxt, err, code = c:read_line()
      local what = nxt and (#nxt > 20 and ("a line of %d bytes"):format(#nxt) or ("%q"):format(nxt))
        or ("nil, %s, %s"):format(tostring(err), tostring(code))
      assert.are.equal('"next"', what, "after ELINE, read_line gave " .. what)
    end))

    it("a line of exactly 64 KiB is within the default limit", async(function()
      local long = string.rep("c", 64 * KiB)
      local _srv <close>, port = pieces_server({ long .. "\n", "ok\n" })
      local c <close> = assert(net.connect("127.0.0.1", port))
      assert.are.equal(long, c:read_line())
      assert.are.equal("ok", c:read_line())
    end))

    it("read_all reads everything to EOF, beyond the 1 MiB buffer", async(function()
      local big = string.rep("0123456789abcdef", 160 * KiB)  -- 2.5 MiB
      local _srv <close>, port = pieces_server({ "head:", big, ":tail" })
      local c <close> = assert(net.connect("127.0.0.1", port))
      local ok, all = pcall(loom.timeout, 2, c.read_all, c)
      assert.is_true(ok, "read_all did not return: " .. tostring(all))
      assert.are.equal(5 + #big + 5, #all)
      assert.is_true(all == "head:" .. big .. ":tail")
      local r = pack(c:read())
      assert.is_nil(r[1])
      assert.are.equal("EOF", r[3])
    end, { timeout = 10 }))

    it("lines() iterates the lines to EOF", async(function()
      local _srv <close>, port = pieces_server({ "a\nb", "\r\n\nc" })
      local c <close> = assert(net.connect("127.0.0.1", port))
      local got = {}
      for line in c:lines() do got[#got + 1] = line end
      assert.are.same({ "a", "b", "", "c" }, got)
    end))

    it("only one task may wait to read a stream at a time", async(function()
      local _srv <close>, port = listen(echo)
      local c <close> = assert(net.connect("127.0.0.1", port))
      local t = loom.spawn(function() return c:read() end)
      h.settle()
      local e = raised(c.read, c)
      assert.is_true(has(e, "another task is reading"), e)
      c:write("x")
      assert.are.equal("x", t:await())
    end))
  end)
  -- }================================================================

  -- {================================================================
  describe("writing", function()
    it("a write timed out or cancelled while it waits leaves the stream usable", async(function()
      local size = 4 * MiB
      local go, received = loom.event(), loom.future()
      local _srv <close>, port = listen(function(s)
        go:wait()
        received:set_result(s:read_all())
      end)
      local c <close> = assert(net.connect("127.0.0.1", port))
      -- the peer reads nothing yet: the write waits for the queue to drain
      local ok, e = pcall(loom.timeout, 0.1, c.write, c, string.rep("a", size))
      assert.is_false(ok)
      h.assert_timeout(e)
      local t = loom.spawn(c.write, c, string.rep("b", size))
      h.settle()
      assert.is_false(t:done())
      t:cancel()
      h.assert_cancelled(h.error_of(t))
      go:set()
      -- what they queued is sent, in order, and the stream goes on
      assert.is_true(c:write("tail"))
      assert.is_true(c:flush())
      assert.is_true(c:shutdown())
      local got = received:await()
      assert.are.equal(2 * size + 4, #got)
      assert.is_true(got:sub(1, size) == string.rep("a", size))
      assert.is_true(got:sub(size + 1, 2 * size) == string.rep("b", size))
      assert.are.equal("tail", got:sub(-4))
    end, { timeout = 20 }))

    it("a 64 MiB write to a slow reader suspends the writer and keeps memory bounded", async(function()
      local total, chunk = 64 * MiB, 1 * MiB
      local read_bytes, reads, max_mem = 0, 0, 0
      local function sample()  -- live memory: garbage is not the point
        collectgarbage()
        local kb = collectgarbage("count")
        if kb > max_mem then max_mem = kb end
      end
      local _srv <close>, port = listen(function(s)
        while true do
          local d = s:read(256 * KiB)
          if not d then break end
          read_bytes = read_bytes + #d
          reads = reads + 1
          sample()
          loom.sleep(0.001)
        end
        s:write(tostring(read_bytes), "\n")
      end)
      collectgarbage()
      local base = collectgarbage("count")
      local c <close> = assert(net.connect("127.0.0.1", port))
      local written, suspended, max_lag = 0, 0, 0
      for i = 1, total // chunk do
        local before = reads
        -- a fresh string each time
        assert.is_true(c:write(string.rep(string.char(65 + i % 26), chunk)))
        if reads ~= before then suspended = suspended + 1 end
        written = written + chunk
        local lag = written - read_bytes
        if lag > max_lag then max_lag = lag end
        sample()
      end
      assert.is_true(c:flush())
      assert.is_true(c:shutdown())
      assert.are.equal(tostring(total), c:read_line())
      -- the writer waited for the reader: most writes suspended and it
      -- never ran far ahead (kernel buffers and 1 MiB in loom's buffer
      -- aside)
      assert.is_true(suspended >= 8, "writes that suspended: " .. suspended)
      assert.is_true(max_lag < 24 * MiB, ("writer ran %.1f MiB ahead"):format(max_lag / MiB))
      -- alive: about a chunk queued and a read buffer; unbounded, it
      -- would be 64 MiB
      local grew = (max_mem - base) / 1024
      assert.is_true(grew < 16, ("memory grew by %.1f MiB"):format(grew))
    end, { timeout = 30 }))

    it("limits{high_water} sets when a write suspends", async(function()
      local _srv <close>, port = listen(function(s)
        loom.sleep(0.2)
        while s:read() do end
      end)
      local c <close> = assert(net.connect("127.0.0.1", port))
      local hwm = c:limits { high_water = 64 * MiB }
      assert.are.equal(64 * MiB, hwm)
      -- far over the kernel's buffers, but under the mark: no suspension
      local ticks = 0
      local ticker = loom.spawn(function()
        while true do ticks = ticks + 1; loom.yield() end
      end)
      h.settle()
      local before = ticks
      assert.is_true(c:write(string.rep("w", 16 * MiB)))
      assert.are.equal(before, ticks)
      ticker:cancel()
      -- flush does suspend until the kernel has it all
      assert.is_true(c:flush())
      c:close()
    end, { timeout = 10 }))

    it("flush waits until everything written reached the kernel", async(function()
      local size = 8 * MiB
      local got = loom.future()
      local _srv <close>, port = listen(function(s)
        loom.sleep(0.1)   -- let the client queue up
        local n = 0
        while true do
          local d = s:read()
          if not d then break end
          n = n + #d
        end
        got:set_result(n)
      end)
      local c = assert(net.connect("127.0.0.1", port))
      c:limits { high_water = 2 * size }  -- write queues it all at once
      assert.is_true(c:write(string.rep("f", size)))
      assert.is_true(c:flush())
      -- if flush returned early, closing now would drop queued data
      c:close()
      assert.are.equal(size, got:await())
    end, { timeout = 10 }))

    it("shutdown comes after the pending writes", async(function()
      local size = 8 * MiB
      local _srv <close>, port = listen(function(s)
        loom.sleep(0.1)
        local n = 0
        while true do
          local d = s:read()
          if not d then break end
          n = n + #d
        end
        s:write(n, "\n")
      end)
      local c <close> = assert(net.connect("127.0.0.1", port))
      c:limits { high_water = 2 * size }
      assert.is_true(c:write(string.rep("s", size)))   -- mostly queued
      assert.is_true(c:shutdown())
      assert.are.equal(tostring(size), c:read_line())
    end, { timeout = 10 }))

    it("data written before the handler returns reaches the client", async(function()
      local size = 32 * MiB
      local done = loom.future()
      local _srv <close>, port = listen(function(s)
        s:limits { high_water = 2 * size }
        local ok = s:write(string.rep("h", size), "END")   -- returns at once, queued
        done:set_result(ok)
      end)                                     -- and the stream is closed here
      local c <close> = assert(net.connect("127.0.0.1", port))
      assert.is_true(done:await())
      loom.sleep(0.05)                         -- the handler has returned
      local n, tail = 0, ""
      local code
      while true do
        local d, _, e = c:read()
        if not d then code = e break end
        n = n + #d
        tail = (tail .. d):sub(-3)
      end
      assert.are.equal("EOF", code)
      assert.are.equal(size + 3, n, ("%d of %d bytes arrived"):format(n, size + 3))
      assert.are.equal("END", tail)
    end, { timeout = 15 }))

    it("shutdown half-closes: the peer reads EOF, the writer still reads the reply", async(function()
      local _srv <close>, port = listen(function(s)
        local q = s:read_all()          -- returns at the client's shutdown
        s:write("answer to ", q)
      end)
      local c <close> = assert(net.connect("127.0.0.1", port))
      c:write("the question")
      assert.is_true(c:shutdown())
      assert.is_true(c:shutdown())      -- again: harmless
      local r = pack(c:write("more"))
      assert.is_nil(r[1])
      assert.are.equal("EPIPE", r[3])
      assert.are.equal("answer to the question", c:read_all())
    end))
  end)
  -- }================================================================

  -- {================================================================
  describe("close", function()
    it("a pending reader gets nil, msg, 'ECANCELED'", async(function()
      local _srv <close>, port = listen(echo)
      for _, method in ipairs { "read", "read_line", "read_exactly", "read_until", "read_all" } do
        local c = assert(net.connect("127.0.0.1", port))
        local t = loom.spawn(function()
          return c[method](c, method == "read_exactly" and 10 or method == "read_until" and "!" or nil)
        end)
        h.settle()
        assert.is_false(t:done())
        c:close()
        local r = pack(t:await())
        assert.is_nil(r[1], method)
        assert.are.equal("string", type(r[2]), method)
        assert.are.equal("ECANCELED", r[3], method)
      end
    end))

    it("a writer suspended on backpressure gets nil, msg, 'ECANCELED'", async(function()
      local _srv <close>, port = listen(function() loom.sleep(1) end)
      local c = assert(net.connect("127.0.0.1", port))
      local t = loom.spawn(function()
        for _ = 1, 64 do
          local ok, msg, code = c:write(string.rep("x", MiB))
          if not ok then return ok, msg, code end
        end
        return "never suspended"
      end)
      loom.sleep(0.1)
      assert.is_false(t:done())
      c:close()
      local r = pack(t:await())
      assert.is_nil(r[1])
      assert.are.equal("ECANCELED", r[3])
    end))

    it("closing twice is harmless; the closed stream says so", async(function()
      local _srv <close>, port = listen(echo)
      local c = assert(net.connect("127.0.0.1", port))
      assert.are.equal("loom.stream (127.0.0.1:" .. port .. ")", tostring(c))
      c:close()
      c:close()
      assert.are.equal("loom.stream (closed)", tostring(c))
      do local _d <close> = c end   -- __close on a closed stream
    end))

    it("non-I/O methods on a closed stream raise", async(function()
      local _srv <close>, port = listen(echo)
      local c = assert(net.connect("127.0.0.1", port))
      c:close()
      for _, call in ipairs {
        { "peer" }, { "address" }, { "nodelay", true }, { "keepalive", true },
        { "limits" }, { "shutdown" },
      } do
        local e = raised(c[call[1]], c, call[2])
        assert.is_true(has(e, "closed"), call[1] .. ": " .. tostring(e))
      end
    end))

    -- Reads and writes after close are failures as values (the network
    -- contract lists "read after close" with refused, reset and EPIPE);
    -- the other methods raise, as misuse of a closed handle.
    it("reads and writes on a closed stream give nil, msg, \"ECANCELED\"", async(function()
      local _srv <close>, port = listen(echo)
      local c = assert(net.connect("127.0.0.1", port))
      c:close()
      for _, call in ipairs {
        { "read" }, { "read_exactly", 1 }, { "read_line" }, { "read_until", "\n" },
        { "read_all" }, { "write", "x" }, { "flush" },
      } do
        local ok, a, b, code = pcall(c[call[1]], c, call[2])
        assert.is_true(ok, call[1])
        assert.is_nil(a, call[1])
        assert.matches("closed", b)
        assert.are.equal("ECANCELED", code, call[1])
      end
    end))

    it("a stream collected without close is closed (the peer reads EOF)", async(function()
      local got = loom.future()
      local _srv <close>, port = listen(function(s)
        got:set_result(pack(s:read()))
      end)
      do  -- a connection nothing refers to
        assert(net.connect("127.0.0.1", port))
      end
      collectgarbage(); collectgarbage()
      local r = got:await()
      assert.is_nil(r[1])
      assert.are.equal("EOF", r[3])
    end))
  end)
  -- }================================================================

  -- {================================================================
  describe("failures are values naming the address", function()
    it("connection refused", async(function()
      local port = free_port()
      local r = pack(net.connect("127.0.0.1", port))
      assert.is_nil(r[1])
      assert.are.equal("ECONNREFUSED", r[3])
      assert.is_true(has(r[2], "127.0.0.1:" .. port), r[2])
      if have_ipv6() then
        local r6 = pack(net.connect("::1", port))
        assert.is_nil(r6[1])
        assert.are.equal("ECONNREFUSED", r6[3])
        assert.is_true(has(r6[2], "[::1]:" .. port), r6[2])
      end
    end))

    it("reset by peer: a server that closes with unread data", async(function()
      local _srv <close>, port = listen(function(s)
        s:read(1)
        loom.sleep(0.1)   -- the client's data piles up unread
      end)
      local c <close> = assert(net.connect("127.0.0.1", port))
      local writer = loom.spawn(function()
        for _ = 1, 16 do
          local ok, msg, code = c:write(string.rep("r", MiB))
          if not ok then return msg, code end
        end
      end)
      local r = pack(c:read())
      assert.is_nil(r[1])
      assert.is_true(r[3] == "ECONNRESET" or r[3] == "EOF", tostring(r[3]))
      assert.is_true(has(r[2], "127.0.0.1:" .. port), r[2])
      local wmsg, wcode = writer:await()
      assert.is_true(wcode == "ECONNRESET" or wcode == "EPIPE", tostring(wcode))
      assert.is_true(has(wmsg, "127.0.0.1:" .. port), wmsg)
    end, { timeout = 10 }))

    it("DNS failure: an EAI_ code naming the host", async(function()
      local r = pack(net.resolve("no-such-host.invalid"))
      assert.is_nil(r[1])
      assert.matches("^EAI_", r[3])
      assert.is_true(has(r[2], "no-such-host.invalid"), r[2])
      local c = pack(net.connect("no-such-host.invalid", 80))
      assert.is_nil(c[1])
      assert.matches("^EAI_", c[3])
      assert.is_true(has(c[2], "no-such-host.invalid:80"), c[2])
    end, { timeout = 20 }))

    it("reading after the peer closed gives its data, then EOF, each time", async(function()
      local _srv <close>, port = listen(function(s) s:write("bye") end)
      local c <close> = assert(net.connect("127.0.0.1", port))
      assert.are.equal("bye", c:read_exactly(3))
      for _ = 1, 2 do
        local r = pack(c:read())
        assert.is_nil(r[1])
        assert.is_true(has(r[2], "end of file"), r[2])
        assert.is_true(has(r[2], "127.0.0.1:" .. port), r[2])
        assert.are.equal("EOF", r[3])
      end
      local l = pack(c:read_line())
      assert.is_nil(l[1])
      assert.are.equal("EOF", l[3])
    end))

    it("writing after the peer closed gives EPIPE or ECONNRESET", async(function()
      local _srv <close>, port = listen(function() end)
      local c <close> = assert(net.connect("127.0.0.1", port))
      assert.are.equal("EOF", select(3, c:read()))
      local msg, code
      for _ = 1, 100 do
        local ok
        ok, msg, code = c:write("still there?")
        if not ok then break end
        loom.sleep(0.01)
      end
      assert.is_true(code == "EPIPE" or code == "ECONNRESET", tostring(code))
      assert.is_true(has(msg, "127.0.0.1:" .. port), msg)
      -- and it stays failed
      local r = pack(c:write("x"))
      assert.is_nil(r[1])
      assert.is_true(r[3] == "EPIPE" or r[3] == "ECONNRESET", tostring(r[3]))
    end))

    it("writing after the peer closed does not kill the binary (SIGPIPE)", function()
      local out, err, code = h.run_src([[
        local loom = require "loom"
        local net = require "loom.net"
        local srv = assert(net.listen("127.0.0.1", 0, function(s) end))
        local _, port = srv:address()
        local c = assert(net.connect("127.0.0.1", port))
        c:read()
        local res
        for _ = 1, 100 do
          local ok, msg, code = c:write(string.rep("p", 4096))
          if not ok then res = code break end
          loom.sleep(0.01)
        end
        c:close()
        srv:close()
        print("alive", res)
      ]])
      assert.are.equal(0, code, err)
      assert.is_true(out == "alive\tEPIPE\n" or out == "alive\tECONNRESET\n", out)
    end)

    it("connecting to a missing Unix socket fails with ENOENT naming the path", async(function()
      local dir = tmpdir()
      local path = dir .. "/nobody.sock"
      local r = pack(net.connect_unix(path))
      rmdir(dir)
      assert.is_nil(r[1])
      assert.are.equal("ENOENT", r[3])
      assert.is_true(has(r[2], path), r[2])
    end))
  end)
  -- }================================================================

  -- {================================================================
  describe("timeouts", function()
    -- A client and the server's end of its connection, held until the
    -- test lets go (the handler waits on 'done').
    local function pair()
      local got, done = loom.future(), loom.event()
      local srv = assert(net.listen("127.0.0.1", 0, function(s)
        got:set_result(s)
        done:wait()
      end))
      local _, port = srv:address()
      local c = assert(net.connect("127.0.0.1", port))
      local s = got:await()
      return c, s, function() done:set(); c:close(); srv:close() end
    end

    it("stream:timeout: a read that waits longer gives ETIMEDOUT; the stream goes on", async(function()
      local c, s, finish = pair()
      assert.is_nil(s:timeout())
      assert.are.equal(0.1, s:timeout(0.1))
      assert.are.equal(0.1, s:timeout())
      local t0 = loom.now()
      local r = pack(s:read())
      assert.is_nil(r[1])
      assert.are.equal("ETIMEDOUT", r[3])
      assert.is_true(has(r[2], "timed out after 0.1s"), r[2])
      local took = loom.now() - t0
      assert.is_true(took >= 0.09 and took < 0.5, "took " .. took)
      -- what comes later is read; a read that needs not wait is not timed
      c:write("one\ntwo\n")
      assert.are.equal("one", s:read_line())
      assert.are.equal("two", s:read_line())
      -- read_exactly: the part that came stays buffered
      c:write("abc")
      r = pack(s:read_exactly(5))
      assert.are.equal("ETIMEDOUT", r[3])
      c:write("de")
      assert.are.equal("abcde", s:read_exactly(5))
      finish()
    end))

    it("stream:timeout counts the whole call: a byte now and then does not extend a read_line", async(function()
      local c, s, finish = pair()
      s:timeout(0.2)
      local trickle = loom.spawn(function()
        for _ = 1, 40 do
          if not c:write("x") then return end
          loom.sleep(0.02)
        end
      end)
      local t0 = loom.now()
      local r = pack(s:read_line())
      local took = loom.now() - t0
      trickle:cancel()
      assert.are.equal("ETIMEDOUT", r[3])
      assert.is_true(took >= 0.19 and took < 0.5, "took " .. took)
      finish()
    end))

    it("stream:timeout: a write or flush to a peer that reads nothing gives ETIMEDOUT", async(function()
      local c, s, finish = pair()
      s:limits{ high_water = 1024 }
      s:timeout(0.1)
      local big = ("x"):rep(MiB)
      local r
      for _ = 1, 64 do  -- until the socket's buffers are full
        r = pack(s:write(big))
        if not r[1] then break end
      end
      assert.is_nil(r[1])
      assert.are.equal("ETIMEDOUT", r[3])
      assert.is_true(has(r[2], "timed out after 0.1s"), r[2])
      r = pack(s:flush())
      assert.are.equal("ETIMEDOUT", r[3])
      -- the stream goes on: what was queued is sent once the peer reads
      s:timeout(nil)
      assert.is_nil(s:timeout())
      local reader = loom.spawn(function()
        local n = 0
        while n < MiB do n = n + #assert(c:read()) end
        return n
      end)
      assert.is_true(s:flush())
      assert.is_true(reader:await() >= MiB)
      finish()
    end, { timeout = 10 }))

    it("stream:timeout(0) turns it off; a write that need not wait is never timed", async(function()
      local c, s, finish = pair()
      s:timeout(0.05)
      assert.is_true(s:write("hello"))
      assert.are.equal("hello", c:read_exactly(5))
      assert.is_nil(s:timeout(0))
      local t = loom.spawn(function() return s:read() end)
      loom.sleep(0.15)
      assert.is_false(t:done())
      c:write("late")
      assert.are.equal("late", t:await())
      finish()
    end))

    it("a timed-out read of loom.stdin stops its reading: the program ends though stdin stays open", async(function()
      local process = require "loom.process"
      local path = h.script([[
        loom.stdin:timeout(0.1)
        print(select(3, loom.stdin:read_line()))
        print(select(3, loom.stdin:read()))
      ]])
      local p = assert(process.spawn{ h.loom_bin, path })  -- stdin: a pipe we hold
      local ok, code = pcall(loom.wait_for, loom.spawn(p.wait, p), 5)
      if not ok then p:kill("SIGKILL") p:wait() end
      local out = p.stdout:read_all()
      p.stdin:close()
      os.remove(path)
      assert.is_true(ok, "the program went on reading its stdin")
      assert.are.equal(0, code)
      assert.are.equal("ETIMEDOUT\nETIMEDOUT\n", out)
    end, { timeout = 10 }))

    it("a stream:timeout left set keeps nothing alive: the program ends at once", function()
      local t0 = h.clock()
      local out, err, code = h.run_src([[
        local net = require "loom.net"
        local srv = assert(net.listen("127.0.0.1", 0, function(s)
          s:timeout(30)
          s:write(s:read_line(), "\n")
          local t = loom.spawn(function() return s:read() end)
          loom.sleep(0.05)
          t:cancel()            -- a timed read cancelled
          print("cancelled", pcall(loom.await, t))
        end))
        local _, port = srv:address()
        local c = assert(net.connect("127.0.0.1", port))
        c:timeout(30)
        c:write("hi\n")
        print(c:read_line())
        print(c:read())         -- EOF: the handler returned
        c:close()
        srv:close()
      ]], nil, nil, 20)
      assert.are.equal(0, code, err)
      assert.is_true(has(out, "hi\ncancelled\tfalse"), out)
      assert.is_true(h.clock() - t0 < 10, "the program lingered")
    end)

    -- A server in a child process that never accepts: its main chunk
    -- blocks before the loop runs, so once its accept queue is full the
    -- kernel drops new connection requests and connects hang.
    local function full_server()
      local path = h.script([[
        local srv = assert(loom.net.listen("127.0.0.1", 0, function() end,
                                           { backlog = 1 }))
        print(select(2, srv:address()))
        io.stdout:flush()
        io.read("a")   -- until the parent closes our stdin
        srv:close()
      ]])
      local p = assert(loom.process.spawn { h.loom_bin, path })
      local port = assert(math.tointeger(tonumber(p.stdout:read_line())))
      os.remove(path)
      local held = {}
      for _ = 1, 8 do
        local ok, c = pcall(loom.timeout, 0.5, net.connect, "127.0.0.1", port)
        if not (ok and c) then break end
        held[#held + 1] = c
      end
      assert.is_true(#held < 8, "the accept queue never filled")
      return p, port, held
    end

    it("opts.timeout on connect gives nil, msg, ETIMEDOUT when nothing answers", async(function()
      local p, port, held = full_server()
      local t0 = loom.now()
      local ok, c, msg, code = pcall(loom.timeout, 5, net.connect, "127.0.0.1",
                                     port, { timeout = 0.1 })
      assert.is_true(ok, "net.connect waited past its timeout: " .. tostring(c))
      assert.is_nil(c)
      assert.are.equal("ETIMEDOUT", code)
      assert.are.equal("connect to '127.0.0.1:" .. port .. "': timed out after 0.1s", msg)
      assert.is_true(loom.now() - t0 >= 0.09)
      for _, x in ipairs(held) do x:close() end
      p.stdin:close()
      assert.are.equal(0, (p:wait()))
    end, { timeout = 30 }))

    it("opts.timeout on connect: it connects, or gives ETIMEDOUT naming the address", async(function()
      local _srv <close>, port = listen(echo)
      for _, t in ipairs { 0, 1e-6, 0.001, 5 } do
        local c, msg, code = net.connect("127.0.0.1", port, { timeout = t })
        if c then
          c:write("t")
          assert.are.equal("t", c:read_exactly(1))
          c:close()
        else
          assert.are.equal("ETIMEDOUT", code, msg)
          assert.is_true(has(msg, "127.0.0.1:" .. port), msg)
        end
        if t == 5 then assert.is_not_nil(c, msg) end
      end
    end))

    it("loom.timeout around a read raises loom.Timeout; the stream stays usable", async(function()
      local _srv <close>, port = listen(line_echo)
      local c <close> = assert(net.connect("127.0.0.1", port))
      local t0 = loom.now()
      local ok, e = pcall(loom.timeout, 0.05, c.read_line, c)
      assert.is_false(ok)
      assert.is_true(loom.is_timeout(e), tostring(e))
      assert.is_true(loom.now() - t0 >= 0.04)
      assert.is_true(c:write("after the timeout\n"))
      assert.are.equal("after the timeout", c:read_line())
      -- a timed-out read_exactly does not lose what arrived meanwhile
      c:write("par\n")
      local ok2, e2 = pcall(loom.timeout, 0.1, c.read_exactly, c, 100)
      assert.is_false(ok2)
      assert.is_true(loom.is_timeout(e2), tostring(e2))
      assert.are.equal("par", c:read_line())
      c:write("xyz\n")
      assert.are.equal("xyz", c:read_line())
    end))
  end)
  -- }================================================================

  -- {================================================================
  describe("many connections", function()
    it("1,000 concurrent connections to one echo server all succeed", async(function()
      local n = 1000
      local p = io.popen("ulimit -n")
      local limit = tonumber(p:read("l")) or 0
      p:close()
      if limit < 2 * n + 100 then
        n = 400   -- two descriptors per connection in this process
      end
      local served = 0
      local _srv <close>, port = listen(function(s)
        served = served + 1
        line_echo(s)
      end)
      local tasks = {}
      for i = 1, n do
        tasks[i] = loom.spawn(function()
          local c <close>, msg = net.connect("127.0.0.1", port)
          if not c then return "connect: " .. msg end
          c:write("line ", i, "\n")
          return c:read_line()
        end)
      end
      local bad = {}
      for i, t in ipairs(tasks) do
        local ok, got = pcall(loom.await, t)
        if not ok or got ~= "line " .. i then
          bad[#bad + 1] = ("%d: %s"):format(i, tostring(got))
          if #bad > 5 then break end
        end
      end
      assert.are.same({}, bad)
      assert.are.equal(n, served)
      assert.are.equal(1000, n, "the fd limit (" .. limit .. ") allowed only " .. n)
    end, { timeout = 60 }))
  end)
  -- }================================================================

  -- {================================================================
  describe("servers", function()
    it("a handler that raises is reported, its stream closed, the server goes on", function()
      local out, err, code = h.run_src([[
        local loom = require "loom"
        local net = require "loom.net"
        local n = 0
        local srv = assert(net.listen("127.0.0.1", 0, function(s)
          n = n + 1
          if n == 1 then
            s:read_line()
            error("handler-boom-" .. n)
          end
          for line in s:lines() do s:write(line, "\n") end
        end))
        local _, port = srv:address()
        local c = assert(net.connect("127.0.0.1", port))
        c:write("x\n")
        print("first", select(3, c:read()))
        c:close()
        local c2 = assert(net.connect("127.0.0.1", port))
        c2:write("again\n")
        print("second", c2:read_line())
        c2:close()
        srv:close()
      ]])
      assert.are.equal("first\tEOF\nsecond\tagain\n", out)
      assert.is_true(has(err, "handler-boom-1"), err)
      assert.is_false(has(err, "handler-boom-2"), err)
      assert.are.equal(1, code)   -- a failed task is never silent
    end)

    it("a failing handler is reported when it fails, not only when the program ends", function()
      local out, err = h.run_src([[
        local loom = require "loom"
        local net = require "loom.net"
        local srv = assert(net.listen("127.0.0.1", 0, function(s)
          s:read_line()
          error("handler-boom-now")
        end))
        local _, port = srv:address()
        local c = assert(net.connect("127.0.0.1", port))
        c:write("x\n")
        print("client", select(3, c:read()))
        c:close()
        loom.sleep(0.2)             -- the server is still running
        io.stderr:write("STILL-SERVING\n")
        srv:close()
      ]])
      assert.are.equal("client\tEOF\n", out)
      local at_error, at_mark = err:find("handler-boom-now", 1, true), err:find("STILL-SERVING", 1, true)
      assert.is_not_nil(at_error, err)
      assert.is_not_nil(at_mark, err)
      -- nobody can await a connection's task: its failure is reported at once
      assert.is_true(at_error < at_mark, "reported only at exit:\n" .. err)
    end)

    it("the stream is closed when the handler returns (the client reads EOF)", async(function()
      local _srv <close>, port = listen(function(s) s:write("only this") end)
      local c <close> = assert(net.connect("127.0.0.1", port))
      assert.are.equal("only this", c:read_all())
    end))

    it("a listening server nothing references goes on serving after a collection", async(function()
      local weak = setmetatable({}, { __mode = "v" })
      local port
      weak[1], port = listen(line_echo)
      collectgarbage(); collectgarbage()
      local c <close> = net.connect("127.0.0.1", port)
      local srv = weak[1]
      if srv then srv:close() end
      assert.is_not_nil(c, "the server was closed by the collector")
      assert.is_not_nil(srv)
      c:write("still here\n")
      assert.are.equal("still here", c:read_line())
    end))

    it("server:close() stops accepting; open connections go on", async(function()
      local srv, port = listen(line_echo)
      local c1 <close> = assert(net.connect("127.0.0.1", port))
      c1:write("before\n")
      assert.are.equal("before", c1:read_line())
      srv:close()
      srv:close()   -- harmless
      assert.are.equal("loom.server (closed)", tostring(srv))
      local r = pack(net.connect("127.0.0.1", port))
      assert.is_nil(r[1])
      assert.are.equal("ECONNREFUSED", r[3])
      c1:write("after\n")
      assert.are.equal("after", c1:read_line())
      local e = raised(srv.address, srv)
      assert.is_true(has(e, "closed"), e)
    end))

    -- A server of 'max' connections that greets each client with the
    -- line it sent and then holds it until the client goes; what it
    -- served, in order.
    local function holding_server(max, listen_fn, where)
      local served = {}
      local srv = assert(listen_fn(where, function(s)
        local line = s:read_line()
        served[#served + 1] = line
        s:write("hi ", line, "\n")
        s:read()  -- until the client closes
      end, { max_connections = max }))
      return srv, served
    end

    local function greet(c, line)
      assert(c:write(line, "\n"))
      return loom.spawn(function() return c:read_line() end)
    end

    it("max_connections: a third client waits, unserved, until one of two closes", async(function()
      local srv <close>, served = holding_server(2, function(where, fn, o)
        return net.listen(where, 0, fn, o)
      end, "127.0.0.1")
      local _, port = srv:address()
      local a <close> = assert(net.connect("127.0.0.1", port))
      local b <close> = assert(net.connect("127.0.0.1", port))
      assert.are.equal("hi a", greet(a, "a"):await())
      assert.are.equal("hi b", greet(b, "b"):await())
      -- the third connects (the backlog holds it) and is not served
      local c <close> = assert(net.connect("127.0.0.1", port))
      local third = greet(c, "c")
      local d <close> = assert(net.connect("127.0.0.1", port))
      local fourth = greet(d, "d")
      loom.sleep(0.2)
      assert.is_false(third:done())
      assert.are.same({ "a", "b" }, served)
      a:close()
      assert.are.equal("hi c", third:await())
      loom.sleep(0.05)
      assert.is_false(fourth:done())  -- b and c are open: still two
      b:close()
      assert.are.equal("hi d", fourth:await())
      assert.are.same({ "a", "b", "c", "d" }, served)
    end, { timeout = 10 }))

    it("max_connections: a handler that returns early or is cancelled frees its place", async(function()
      local n, started = 0, loom.event()
      local handlers = {}
      local srv <close> = assert(net.listen("127.0.0.1", 0, function(s)
        n = n + 1
        handlers[n] = loom.current()
        started:set()
        local line = s:read_line()
        if line == "quit" then return end
        s:write("ok ", line, "\n")
        s:read()
      end, { max_connections = 1 }))
      local _, port = srv:address()
      local a <close> = assert(net.connect("127.0.0.1", port))
      started:wait()
      local b <close> = assert(net.connect("127.0.0.1", port))
      local second = greet(b, "b")
      a:write("quit\n")  -- its handler returns: the place is free
      assert.are.equal("ok b", second:await())
      started:clear()
      handlers[2]:cancel()
      local c <close> = assert(net.connect("127.0.0.1", port))
      assert.are.equal("ok c", greet(c, "c"):await())
      assert.are.equal(3, n)
    end, { timeout = 10 }))

    it("max_connections: on_full runs once when a client must wait; it may make room", async(function()
      local fulls, conns = 0, {}
      local srv <close> = assert(net.listen("127.0.0.1", 0, function(s)
        conns[#conns + 1] = loom.current()
        s:write("hi\n")
        s:read()
      end, { max_connections = 1, on_full = function()
        fulls = fulls + 1
        conns[1]:cancel()  -- the one there goes, the waiting one comes
      end }))
      local _, port = srv:address()
      local a <close> = assert(net.connect("127.0.0.1", port))
      assert.are.equal("hi", a:read_line())
      assert.are.equal(0, fulls)
      local b <close> = assert(net.connect("127.0.0.1", port))
      assert.are.equal("hi", b:read_line())
      assert.are.equal(1, fulls)
      assert.are.equal("EOF", select(3, a:read()))
    end, { timeout = 10 }))

    it("max_connections on a Unix socket; closing a server that holds one", async(function()
      local dir = tmpdir()
      local path = dir .. "/s.sock"
      local srv, served = holding_server(1, net.listen_unix, path)
      local a <close> = assert(net.connect_unix(path))
      assert.are.equal("hi a", greet(a, "a"):await())
      local b <close> = assert(net.connect_unix(path))
      local second = greet(b, "b")
      loom.sleep(0.1)
      assert.is_false(second:done())
      srv:close()  -- the held connection goes with it
      local got, _, code = second:await()
      assert.is_nil(got)
      assert.is_true(code == "EOF" or code == "ECONNRESET", code)
      assert.are.same({ "a" }, served)
      rmdir(dir)
    end, { timeout = 10 }))

    it("recovers from EMFILE without spinning", function()
      local script = h.script([[
        local loom = require "loom"
        local net = require "loom.net"
        local accepted, quit = 0, loom.event()
        local srv = assert(net.listen("127.0.0.1", 0, function(s)
          accepted = accepted + 1
          for line in s:lines() do
            if line == "quit" then quit:set() end
            s:write(line, "\n")
          end
        end))
        local _, port = srv:address()
        io.write(port, "\n")
        io.stdout:flush()
        local c0 = os.clock()
        pcall(loom.timeout, 20, quit.wait, quit)
        srv:close()
        io.write("accepted ", accepted, " cpu ", string.format("%.3f", os.clock() - c0), "\n")
      ]])
      local errf = os.tmpname()
      local p = io.popen(("sh -c 'ulimit -n 64 && exec %s %s' 2>%s"):format(
        h.quote(h.loom_bin), h.quote(script), h.quote(errf)))
      local port = tonumber(p:read("l"))
      local result = {}
      local ok, e = pcall(loom.run, function()
        assert(port, "the server did not start")
        local function ask(c, line)
          local w = c:write(line, "\n")
          if not w then return nil end
          local ok2, got = pcall(loom.timeout, 2, c.read_line, c)
          return ok2 and got or nil
        end
        -- far more connections than 64 descriptors allow
        local conns, echoed, dropped = {}, {}, 0
        for i = 1, 100 do
          conns[i] = assert(net.connect("127.0.0.1", port))
        end
        for i = 1, 100 do
          if ask(conns[i], "hi " .. i) == "hi " .. i then echoed[#echoed + 1] = conns[i]
          else dropped = dropped + 1; conns[i]:close() end
        end
        result.echoed, result.dropped = #echoed, dropped
        -- stay at the limit a while, knocking now and then
        for _ = 1, 5 do
          local c = net.connect("127.0.0.1", port)
          if c then
            if ask(c, "knock") then result.knock_served = true end
            c:close()
          end
          loom.sleep(0.1)
        end
        -- free some descriptors: the server accepts again
        for i = 1, 10 do echoed[i]:close() end
        loom.sleep(0.1)
        result.again = 0
        for i = 1, 5 do
          local c <close> = net.connect("127.0.0.1", port)
          if c and ask(c, "again " .. i) == "again " .. i then result.again = result.again + 1 end
        end
        local q <close> = assert(net.connect("127.0.0.1", port))
        result.quit = ask(q, "quit")
        for i = 11, #echoed do echoed[i]:close() end
      end)
      local rest = p:read("a")
      p:close()
      os.remove(script)
      local f = io.open(errf, "rb")
      local stderr = f and f:read("a") or ""
      if f then f:close() end
      os.remove(errf)
      assert.is_true(ok, tostring(e))
      assert.is_true(result.echoed >= 1, "echoed " .. result.echoed)
      assert.is_true(result.dropped >= 1, "no accept failed: the fd limit did not bite")
      assert.is_nil(result.knock_served)
      assert.are.equal(5, result.again, "connections after descriptors came back")
      assert.are.equal("quit", result.quit)
      local accepted, cpu = rest:match("accepted (%d+) cpu ([%d.]+)")
      assert.is_not_nil(cpu, rest .. stderr)
      assert.are.equal(result.echoed + 5 + 1, tonumber(accepted))
      assert.is_true(tonumber(cpu) < 0.3, "server CPU time " .. cpu .. " s")
    end)
  end)
  -- }================================================================

  -- {================================================================
  describe("UDP, Unix sockets, resolve", function()
    local function udp_round_trip(host)
      local a <close> = assert(net.udp(host, 0))
      local b <close> = assert(net.udp(host, 0))
      local ahost, aport = a:address()
      local bhost, bport = b:address()
      assert.are.equal(host, ahost)
      assert.is_true(aport > 0 and bport > 0 and aport ~= bport)
      assert.is_true(b:send("ping", host, aport))
      local data, from, fport = a:recv()
      assert.are.equal("ping", data)
      assert.are.equal(bhost, from)
      assert.are.equal(bport, fport)
      assert.is_true(a:send("pong", from, fport))
      assert.are.same({ "pong", ahost, aport }, { b:recv() })
      -- datagrams keep their boundaries and order
      for _, d in ipairs { "1", "22", "", "333" } do b:send(d, host, aport) end
      local got = {}
      for i = 1, 4 do got[i] = (a:recv()) end
      assert.are.same({ "1", "22", "", "333" }, got)
      -- an unbound socket is bound by its first send
      local u <close> = assert(net.udp())
      assert.is_true(u:send("anon", host, aport))
      local d2, h2, p2 = a:recv()
      assert.are.equal("anon", d2)
      assert.is_true(p2 > 0 and p2 ~= bport)
      a:send("back", h2, p2)
      assert.are.equal("back", (u:recv()))
    end

    it("UDP round trip over 127.0.0.1 with the sender's host and port", async(function()
      udp_round_trip("127.0.0.1")
    end))

    it("UDP round trip over ::1", async(function()
      if_ipv6(udp_round_trip, "::1")
    end))

    it("a UDP socket queues at most 256 datagrams nobody received; later ones are dropped", async(function()
      local a <close> = assert(net.udp("127.0.0.1", 0))
      local b <close> = assert(net.udp("127.0.0.1", 0))
      local _, aport = a:address()
      -- a receives once, so that it keeps reading from the kernel
      local first = loom.spawn(a.recv, a)
      h.settle()
      b:send("first", "127.0.0.1", aport)
      assert.are.equal("first", first:await())
      -- small bursts, each read into the queue before the next is sent:
      -- a probe on another socket comes back only after the loop has read
      -- what was ready, and a's burst was ready before it
      local c <close> = assert(net.udp("127.0.0.1", 0))
      local d <close> = assert(net.udp("127.0.0.1", 0))
      local _, dport = d:address()
      for i = 1, 400, 16 do
        for j = i, math.min(i + 15, 400) do b:send(tostring(j), "127.0.0.1", aport) end
        c:send("probe", "127.0.0.1", dport)
        assert.are.equal("probe", (d:recv()))
      end
      local got = {}
      for i = 1, 256 do got[i] = a:recv() end
      for i = 1, 256 do assert.are.equal(tostring(i), got[i]) end
      -- the queue is empty now: what comes next is what is sent next
      b:send("last", "127.0.0.1", aport)
      assert.are.equal("last", (a:recv()))
    end))

    it("a UDP receiver waiting when the socket closes gets nil, msg, 'ECANCELED'", async(function()
      local u = assert(net.udp("127.0.0.1", 0))
      local t = loom.spawn(function() return u:recv() end)
      h.settle()
      assert.is_false(t:done())
      u:close()
      u:close()
      local r = pack(t:await())
      assert.is_nil(r[1])
      assert.are.equal("ECANCELED", r[3])
    end))

    it("Unix socket round trip", async(function()
      local dir = tmpdir()
      local path = dir .. "/echo.sock"
      local ok, e = pcall(function()
        local seen = loom.future()
        local srv <close> = assert(net.listen_unix(path, function(s)
          seen:set_result(s:address())
          line_echo(s)
        end))
        assert.are.equal(path, srv:address())
        local c <close> = assert(net.connect_unix(path))
        c:write("over unix\n", "two\n")
        assert.are.equal("over unix", c:read_line())
        assert.are.equal("two", c:read_line())
        assert.are.equal(path, c:peer())
        assert.are.equal(path, seen:await())
        c:shutdown()
        assert.is_nil((c:read()))
      end)
      rmdir(dir)
      assert.is_true(ok, tostring(e))
    end))

    it("net.resolve('localhost') lists 127.0.0.1 or ::1", async(function()
      local addrs = assert(net.resolve("localhost"))
      assert.is_true(#addrs >= 1)
      local found = false
      for _, a in ipairs(addrs) do
        assert.are.equal("string", type(a))
        if a == "127.0.0.1" or a == "::1" then found = true end
      end
      assert.is_true(found, table.concat(addrs, ", "))
      assert.are.same({ "127.0.0.1" }, net.resolve("127.0.0.1"))
    end))
  end)
  -- }================================================================

  -- {================================================================
  describe("bad input raises, naming the function", function()
    local fn = function() end

    local function check(pattern, f, ...)
      local e = raised(f, ...)
      assert.is_not_nil(e, "did not raise: " .. pattern)
      assert.is_true(has(e, pattern), ("expected %q in: %s"):format(pattern, e))
    end

    it("net.connect", async(function()
      check("net.connect", net.connect, 127, 80)
      check("net.connect", net.connect, nil, 80)
      check("net.connect", net.connect, "127.0.0.1", "80")
      check("net.connect", net.connect, "127.0.0.1", 65536)
      check("net.connect", net.connect, "127.0.0.1", -1)
      check("net.connect", net.connect, "127.0.0.1", 1.5)
      check("net.connect", net.connect, "127.0.0.1", 80, "opts")
      check("net.connect", net.connect, "127.0.0.1", 80, { timeout = -1 })
      check("net.connect", net.connect, "127.0.0.1", 80, { timeout = "1" })
      check("net.connect_unix", net.connect_unix, nil)
      check("net.resolve", net.resolve, nil)
      check("net.resolve", net.resolve, {})
    end))

    it("net.listen and net.listen_unix", async(function()
      check("net.listen", net.listen, "example.com", 0, fn)
      check("net.listen", net.listen, "no-such-host.invalid", 0, fn)
      check("net.listen", net.listen, 1, 0, fn)
      check("net.listen", net.listen, "127.0.0.1", 65536, fn)
      check("net.listen", net.listen, "127.0.0.1", -5, fn)
      check("net.listen", net.listen, "127.0.0.1", "0", fn)
      check("net.listen", net.listen, "127.0.0.1", 0, nil)
      check("net.listen", net.listen, "127.0.0.1", 0, "handler")
      check("net.listen", net.listen, "127.0.0.1", 0, fn, 5)
      check("net.listen_unix", net.listen_unix, nil, fn)
      check("net.listen_unix", net.listen_unix, "/tmp/x.sock", nil)
    end))

    it("net.listen with an option of the wrong type", async(function()
      check("net.listen", net.listen, "127.0.0.1", 0, fn, { backlog = "lots" })
      check("max_connections", net.listen, "127.0.0.1", 0, fn, { max_connections = 0 })
      check("max_connections", net.listen, "127.0.0.1", 0, fn, { max_connections = 1.5 })
      check("net.listen_unix", net.listen_unix, "/tmp/x.sock", fn, { max_connections = "2" })
      check("on_full must be a function", net.listen, "127.0.0.1", 0, fn, { on_full = true })
    end))

    it("net.udp and its methods", async(function()
      check("net.udp", net.udp, 5)
      check("net.udp", net.udp, "127.0.0.1", 70000)
      check("net.udp", net.udp, "127.0.0.1", "0")
      local u <close> = assert(net.udp("127.0.0.1", 0))
      check("send", function() return u:send({}, "127.0.0.1", 9) end)
    end))

    it("udp:send with a port out of range", async(function()
      local u <close> = assert(net.udp("127.0.0.1", 0))
      check("send", function() return u:send("x", "127.0.0.1", 70000) end)
      check("send", function() return u:send("x", "127.0.0.1", -1) end)
    end))

    it("stream methods", async(function()
      local _srv <close>, port = listen(echo)
      local c <close> = assert(net.connect("127.0.0.1", port))
      -- called as methods, so that Lua can name them
      check("write", function() return c:write({}) end)
      check("write", function() return c:write("ok", true) end)
      check("read", function() return c:read(-1) end)
      check("read", function() return c:read("many") end)
      check("read_exactly", function() return c:read_exactly(-1) end)
      check("read_exactly", function() return c:read_exactly() end)
      check("read_until", function() return c:read_until("") end)
      check("read_until", function() return c:read_until() end)
      check("keepalive", function() return c:keepalive(true, 0) end)
      check("limits", function() return c:limits(5) end)
      check("stream:timeout", function() return c:timeout(-1) end)
      check("stream:timeout", function() return c:timeout(0 / 0) end)
      check("stream:timeout", function() return c:timeout({}) end)
      -- still usable after all that
      c:write("fine")
      assert.are.equal("fine", c:read_exactly(4))
    end))
  end)
  -- }================================================================
end)
