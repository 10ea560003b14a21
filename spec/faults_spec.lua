--[[ spec/faults_spec.lua: loom when the world fails under it.

  Descriptors run out (EMFILE), disks fill up (ENOSPC), peers reset
  connections, children are killed, worker jobs raise, hang or return
  what cannot cross, tasks overflow their stacks, error objects refuse
  to print, signals come at bad moments, and clients send their heads a
  byte at a time.  Each case checks what a user relies on: a value
  (nil, msg, code), a report instead of a crash, a process that goes
  on, a file that is whole.

  Faults that would take the test runner down with them (a descriptor
  limit, SIGKILL, SIGINT) happen in a child 'loom' process, bounded by
  a time limit and killed when its test ends.  Only 127.0.0.1 is used.
]]
local loom = require "loom"
local fs = require "loom.fs"
local net = require "loom.net"
local http = require "loom.http"
local process = require "loom.process"
local async = require("loom.busted").async
local h = require "spec.helper"

local has = h.has

local MiB = 1024 * 1024

local function pack(...) return table.pack(...) end

-- A child running the script 'src' with the loom binary; 'shell' (a
-- command line with "$0" for the binary and "$1" for the script, e.g.
-- 'ulimit -n 32; exec "$0" "$1"') runs it through sh.  stdout and
-- stderr are pipes; returns the process and the script's path.
local function child(src, shell, opts)
  local path = h.script(src)
  local argv
  if shell then argv = { "sh", "-c", shell, h.loom_bin, path }
  else argv = { h.loom_bin, path } end
  for k, v in pairs(opts or {}) do argv[k] = v end
  argv.stderr = argv.stderr or "pipe"
  return assert(process.spawn(argv)), path
end

-- Awaits the end of child 'p' for at most 'secs' seconds (killing it
-- then); returns code, signal and all of its stderr.
local function finish(p, secs)
  local err = loom.spawn(function() return p.stderr:read_all() end)
  local ok, code, sig = pcall(loom.wait_for, loom.spawn(p.wait, p),
                              secs or 20)
  if not ok then
    p:kill("SIGKILL")
    p:wait()
    error("the child did not end in time: " .. tostring(code), 0)
  end
  return code, sig, err:await()
end

-- Reads lines from 's' until one equals 'want' (at most 'secs'); the
-- lines before it.
local function until_line(s, want, secs)
  local seen = {}
  return loom.timeout(secs or 10, function()
    while true do
      local line = s:read_line()
      assert(line, "no '" .. want .. "' in: " .. table.concat(seen, "\n"))
      if line == want then return seen end
      seen[#seen + 1] = line
    end
  end)
end

describe("faults", function()
  -- {================================================================
  describe("EMFILE: no descriptor left", function()
    it("net.connect and fs.open return nil, msg, 'EMFILE'; they work again after a close", async(function()
      local p, path = child([[
        local fs, net = loom.fs, loom.net
        local srv = assert(net.listen("127.0.0.1", 0, function(s)
          s:write(s:read_line(), "\n")
        end))
        local _, port = srv:address()
        local files = {}
        while true do
          local f, err, code = fs.open("/dev/null")
          if not f then print("open", code, err) break end
          files[#files + 1] = f
        end
        print("connect", select(3, net.connect("127.0.0.1", port)))
        print("read_file", select(3, fs.read_file("/dev/null")))
        for i = 1, 4 do files[i]:close() end
        local c <close> = assert(net.connect("127.0.0.1", port))
        c:write("back\n")
        print("echo", c:read_line())
        print("open again", fs.open("/dev/null") ~= nil)
        for i = 5, #files do files[i]:close() end
        srv:close()
      ]], 'ulimit -n 32 && exec "$0" "$1"')
      local out = p.stdout:read_all()
      local code, _, err = finish(p)
      os.remove(path)
      assert.are.equal(0, code, err)
      local lines = h.lines(out)
      assert.is_true(has(lines[1], "open\tEMFILE\topen '/dev/null': too many open files"), out)
      assert.are.same({ "connect\tEMFILE", "read_file\tEMFILE", "echo\tback", "open again\ttrue" },
        { lines[2], lines[3], lines[4], lines[5] })
    end, { timeout = 30 }))

    it("a server out of descriptors keeps running, and serves again once some are freed", async(function()
      local p, path = child([[
        local fs, net, signal = loom.fs, loom.net, loom.signal
        local files, quit = {}, loom.event()
        local srv = assert(net.listen("127.0.0.1", 0, function(s)
          for line in s:lines() do
            if line == "quit" then quit:set() end
            s:write(line, "\n")
          end
        end))
        -- the signal's watcher first: it needs descriptors of its own
        local freed = signal.on("SIGUSR1", function()
          for _, f in ipairs(files) do f:close() end
          files = {}
          print("freed")
        end)
        while true do
          local f = fs.open("/dev/null")
          if not f then break end
          files[#files + 1] = f
        end
        print(select(2, srv:address()))
        quit:wait()
        freed:cancel()
        srv:close()
        print("bye")
      ]], 'ulimit -n 40 && exec "$0" "$1"')
      local port = math.tointeger(tonumber(p.stdout:read_line()))
      assert.is_not_nil(port)
      -- the connection is taken and dropped: no descriptor to hold it
      local c = net.connect("127.0.0.1", port)
      if c then
        c:timeout(0.5)
        c:write("hello\n")
        local got, _, code = c:read_line()
        assert.is_nil(got)
        assert.is_true(code == "EOF" or code == "ECONNRESET" or code == "ETIMEDOUT", code)
        c:close()
      end
      assert.is_nil(p:status())  -- still running
      p:kill("SIGUSR1")
      assert.are.equal("freed", p.stdout:read_line())
      local again = assert(net.connect("127.0.0.1", port))
      again:timeout(5)
      again:write("again\n")
      assert.are.equal("again", again:read_line())
      again:write("quit\n")
      assert.are.equal("quit", again:read_line())
      again:close()  -- the child ends once its last connection has
      assert.are.equal("bye", p.stdout:read_line())
      local code, _, err = finish(p)
      os.remove(path)
      assert.are.equal(0, code, err)
    end, { timeout = 30 }))
  end)
  -- }================================================================

  -- {================================================================
  describe("ENOSPC: a full file system", function()
    it("fs.write_file and fs.append_file to /dev/full return nil, msg, 'ENOSPC'", async(function()
      local r = pack(fs.write_file("/dev/full", "data"))
      assert.is_nil(r[1])
      assert.are.equal("ENOSPC", r[3])
      assert.are.equal("write_file '/dev/full': no space left on device", r[2])
      r = pack(fs.append_file("/dev/full", ("x"):rep(MiB)))
      assert.is_nil(r[1])
      assert.are.equal("ENOSPC", r[3])
    end))

    it("a write_file that does not fit a tiny tmpfs fails, leaving the old file and no temporary", async(function()
      local dir = h.tmpdir()
      local mounted = os.execute("mount -t tmpfs -o size=64k loom-faults "
        .. h.quote(dir) .. " 2>/dev/null")
      if not mounted then
        h.rmtree(dir)
        pending("mounting a tmpfs is not allowed here")
        return
      end
      local ok, e = pcall(function()
        local path = dir .. "/config"
        assert(fs.write_file(path, "old content"))
        local r = pack(fs.write_file(path, ("n"):rep(256 * 1024)))
        assert.is_nil(r[1])
        assert.are.equal("ENOSPC", r[3])
        assert.is_true(has(r[2], "no space left on device"), r[2])
        assert.are.equal("old content", fs.read_file(path))
        local names = {}
        for _, entry in ipairs(assert(fs.list(dir))) do names[#names + 1] = entry.name end
        assert.are.same({ "config" }, names)
        -- what fits still goes
        assert(fs.write_file(path, "new content"))
        assert.are.equal("new content", fs.read_file(path))
      end)
      os.execute("umount " .. h.quote(dir))
      h.rmtree(dir)
      assert(ok, e)
    end))

    it("a writer killed by SIGKILL in mid write_file leaves the old content or the new, not a mix", async(function()
      local dir = h.tmpdir()
      local path = dir .. "/data"
      local size = 8 * MiB
      assert(fs.write_file(path, ("o"):rep(size)))
      -- Whether a write is under way: a temporary file beside the target
      -- has some of the data, or the target itself changed size.
      local function writing()
        for _, e in ipairs(assert(fs.list(dir))) do
          local st = e.name ~= "data" and fs.stat(dir .. "/" .. e.name)
          if st and st.size > 0 and st.size < size then return true end
        end
        local st = fs.stat(path)
        return st ~= nil and st.size ~= size
      end
      for round = 1, 3 do
        local p, script = child(([[
          local path, size = %q, %d
          local i = 0
          while true do
            i = i + 1
            local c = i %% 2 == 0 and "a" or "b"
            local data = c:rep(size)
            print("writing " .. i) io.stdout:flush()
            assert(loom.fs.write_file(path, data))
          end
        ]]):format(path, size))
        until_line(p.stdout, "writing " .. (round + 1))
        local t0, caught = loom.now(), false
        while not caught and loom.now() - t0 < 5 do
          caught = writing()
          if not caught then loom.sleep(0.001) end
        end
        loom.sleep(0.001 * (round - 1))
        p:kill("SIGKILL")
        local _, sig = finish(p)
        os.remove(script)
        assert.are.equal("SIGKILL", sig)
        assert.is_true(caught, "no write was seen under way")
        local got = assert(fs.read_file(path))
        assert.are.equal(size, #got, "a file cut short")
        local c = got:sub(1, 1)
        assert.is_nil(got:find("[^" .. c .. "]"), "a file of mixed content")
      end
      h.rmtree(dir)
    end, { timeout = 60 }))
  end)
  -- }================================================================

  -- {================================================================
  describe("EPIPE and ECONNRESET: a peer that is gone", function()
    -- A client in Python that connects, reads 'n' bytes, waits 'pause'
    -- seconds and closes with SO_LINGER 0: the kernel resets the
    -- connection (RST), not a FIN.
    local RESETTER = [[
import socket, struct, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
n = int(sys.argv[2])
while n > 0:
    d = s.recv(n)
    if not d: break
    n -= len(d)
time.sleep(float(sys.argv[3]))
s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
s.close()
]]

    local function resetter(port, n, pause)
      return assert(process.spawn{ "python3", "-c", RESETTER, tostring(port), tostring(n),
                                   tostring(pause), env = h.peer_env() })
    end

    it("writes to a reset peer return nil, msg, code, also from a writer waiting on backpressure", async(function()
      local result = loom.future()
      local srv <close> = assert(net.listen("127.0.0.1", 0, function(s)
        local big = ("x"):rep(256 * 1024)
        local writes = 0
        while true do  -- the peer reads 10 bytes, then waits: this waits too
          local ok, err, code = s:write(big)
          if not ok then
            local again = pack(s:write("more"))
            result:set_result(writes, err, code, again[3])
            return
          end
          writes = writes + 1
        end
      end))
      local _, port = srv:address()
      local p = resetter(port, 10, 0.3)
      local writes, err, code, again = loom.wait_for(result, 10)
      assert.are.equal(0, p:wait())
      assert.is_true(writes >= 1, "the writer never waited")
      assert.is_true(code == "ECONNRESET" or code == "EPIPE", code)
      assert.is_true(has(err, "write to '127.0.0.1:"), err)
      assert.is_true(again == "ECONNRESET" or again == "EPIPE", again)
    end, { timeout = 15 }))

    it("a reader of a reset peer gets ECONNRESET, and the process no SIGPIPE", function()
      local out, err, code = h.run_src([[
        local net, process = loom.net, loom.process
        local got = loom.future()
        local srv = assert(net.listen("127.0.0.1", 0, function(s)
          s:write("0123456789")
          local r = table.pack(s:read())
          local w = table.pack(s:write(("y"):rep(1024 * 1024)))
          got:set_result(r[3], w[3])
        end))
        local _, port = srv:address()
        local p = assert(process.spawn{"python3", "-c", ]] .. ("%q"):format(RESETTER) .. [[,
          tostring(port), "10", "0"})
        print(loom.wait_for(got, 10))
        p:wait()
        srv:close()
        print("alive")
      ]], nil, nil, 30)
      assert.are.equal(0, code, err)
      local lines = h.lines(out)
      assert.is_true(lines[1] == "ECONNRESET\tECONNRESET" or lines[1] == "ECONNRESET\tEPIPE", out)
      assert.are.equal("alive", lines[2])
    end)
  end)
  -- }================================================================

  -- {================================================================
  describe("a child killed by SIGKILL", function()
    it("its readers get what it wrote, then EOF; p:wait() returns nil, 'SIGKILL'", async(function()
      local p = assert(process.spawn{ "sh", "-c", "echo started; echo on-stderr >&2; exec sleep 60",
                                      stderr = "pipe" })
      assert.are.equal("started", p.stdout:read_line())
      local out = loom.spawn(function() return p.stdout:read_all() end)
      local err = loom.spawn(function() return p.stderr:read_all() end)
      loom.sleep(0.05)
      assert.is_true(p:kill("SIGKILL"))
      assert.are.equal("", loom.wait_for(out, 5))
      assert.are.equal("on-stderr\n", loom.wait_for(err, 5))
      assert.are.same({ n = 2, nil, "SIGKILL" }, pack(p:wait()))
      assert.are.same({ n = 2, nil, "SIGKILL" }, pack(p:wait()))
      assert.are.equal("EOF", select(3, p.stdout:read()))
    end))

    it("a writer waiting on its stdin gets EPIPE, and so do later writes", async(function()
      local p = assert(process.spawn{ "sleep", "60" })
      p.stdin:limits{ high_water = 1024 }
      local big = ("z"):rep(MiB)
      local writer = loom.spawn(function() return p.stdin:write(big) end)
      loom.sleep(0.05)
      assert.is_false(writer:done())  -- the pipe is full: it waits
      p:kill("SIGKILL")
      local r = pack(loom.wait_for(writer, 5))
      assert.is_nil(r[1])
      assert.are.equal("EPIPE", r[3])
      assert.are.equal("write to 'stdin of sleep': broken pipe", r[2])
      assert.are.equal("EPIPE", select(3, p.stdin:write("more")))
      assert.are.same({ n = 2, nil, "SIGKILL" }, pack(p:wait()))
    end))
  end)
  -- }================================================================

  -- {================================================================
  describe("loom.work jobs that fail", function()
    it("a job that raises: its error in the caller, a table unchanged", async(function()
      local ok, e = pcall(loom.work, function() error("job-boom") end)
      assert.is_false(ok)
      assert.is_true(has(e, "job-boom"), e)
      ok, e = pcall(loom.work, function() error({ code = 7 }) end)
      assert.is_false(ok)
      assert.are.same({ code = 7 }, e)
      assert.are.equal(42, loom.work(function(x) return x + 1 end, 41))
    end))

    it("a job that returns what cannot cross: an error naming the value", async(function()
      local cases = {
        { function() return function() end end, "result 1: a function cannot be copied" },
        { function() return io.stdout end, "result 1: a userdata cannot be copied" },
        { function() return 1, { co = coroutine.create(print) } end, "result 2 .co: a thread cannot be copied" },
      }
      for _, case in ipairs(cases) do
        local ok, e = pcall(loom.work, case[1])
        assert.is_false(ok)
        assert.is_true(has(e, "loom.work: " .. case[2]), e)
      end
      assert.are.equal("fine", loom.work(function() return "fine" end))
    end))

    it("a job that does not return: its caller cancelled, the result dropped, the pool serves on", async(function()
      local dir = h.tmpdir()
      local fifo = dir .. "/fifo"
      assert(os.execute("mkfifo " .. h.quote(fifo)))
      local released = false
      local function release()  -- the job waits for a line on the FIFO
        if released then return end
        released = true
        local f <close> = assert(fs.open(fifo, "w"))
        f:write("go\n")
      end
      local ok, e = pcall(function()
        local t = loom.spawn(loom.work, function(path)
          local f = assert(io.open(path, "r"))
          local line = f:read("l")
          f:close()
          return "job saw " .. line
        end, fifo)
        loom.sleep(0.1)
        assert.is_false(t:done())
        assert.is_true(t:cancel())
        h.assert_cancelled(h.error_of(t))
        -- the pool has other threads for other jobs meanwhile
        assert.are.equal(4, loom.work(function(x) return x * 2 end, 2))
        release()
        loom.sleep(0.1)  -- the job ends; its result goes nowhere
        assert.is_true(t:cancelled())
        for i = 1, 8 do
          assert.are.equal(i, loom.work(function(x) return x end, i))
        end
      end)
      pcall(release)
      h.rmtree(dir)
      assert(ok, e)
    end, { timeout = 10 }))
  end)
  -- }================================================================

  -- {================================================================
  describe("stack overflows and error objects that will not print", function()
    it("deep recursion and __index loops in a task are its errors, the loop goes on", async(function()
      local function deep(n) return deep(n + 1) + 1 end
      local e = h.error_of(loom.spawn(deep, 1))
      assert.is_true(has(e, "stack overflow"), e)
      local loop = setmetatable({}, {})
      getmetatable(loop).__index = function(t, k) return t[k] end
      e = h.error_of(loom.spawn(function() return loop.x end))
      assert.is_true(has(e, "stack overflow"), e)
      local a, b = {}, {}
      setmetatable(a, { __index = b })
      setmetatable(b, { __index = a })
      e = h.error_of(loom.spawn(function() return a.x end))
      assert.is_true(has(e, "'__index' chain too long"), e)
      -- inside a coroutine of the user's, in a task
      e = h.error_of(loom.spawn(function()
        return coroutine.wrap(function() return deep(1) end)()
      end))
      assert.is_true(has(e, "stack overflow"), e)
      assert.are.equal("ok", loom.spawn(function() return "ok" end):await())
    end))

    it("an error object whose __tostring raises reaches its awaiter unchanged", async(function()
      local bad = setmetatable({}, { __tostring = function() error("tostring-boom") end })
      local e = h.error_of(loom.spawn(function() error(bad) end))
      assert.are.equal(bad, e)
    end))

    it("unobserved: each is reported on stderr, exit 1, nothing crashes", function()
      local out, err, code = h.run_src([[
        local function deep(n) return deep(n + 1) + 1 end
        local bad = setmetatable({}, { __tostring = function() error("tostring-boom") end })
        local worse = setmetatable({}, { __tostring = function() return deep(1) end })
        local odd = setmetatable({}, { __tostring = function() return {} end })
        local ts = { loom.spawn(deep, 1), loom.spawn(function() error(bad) end),
          loom.spawn(function() error(worse) end), loom.spawn(function() error(odd) end) }
        for i, name in ipairs { "deep", "bad", "worse", "odd" } do ts[i].name = name end
        loom.log.error("%s", bad)
        -- until each has failed (done does not observe a failure)
        repeat loom.sleep(0.01) until ts[1]:done() and ts[2]:done() and ts[3]:done() and ts[4]:done()
        print("still running")
      ]])
      assert.are.equal(1, code, err)
      assert.are.equal("still running\n", out)
      for _, name in ipairs { "deep", "bad", "worse", "odd" } do
        assert.is_true(has(err, "error in task '" .. name .. "'"), err)
      end
      assert.is_true(has(err, "stack overflow"), err)
      assert.is_true(has(err, "(error object is a table value)"), err)
      assert.is_true(has(err, "bad format"), err)
    end)

    it("the main task failing with such an error object: reported, exit 1", function()
      local _, err, code = h.run_src([[
        error(setmetatable({}, { __tostring = function() error("tostring-boom") end }))
      ]])
      assert.are.equal(1, code, err)
      assert.is_true(has(err, "error object is a table value"), err)
    end)
  end)
  -- }================================================================

  -- {================================================================
  describe("signals at bad moments", function()
    it("SIGINT twice while cleanup runs: exit 130 at once, what was queued for stdout goes out", async(function()
      local p, path = child([[
        loom.stdout:limits{ high_water = 64 * 1024 * 1024 }
        local ok, e = pcall(function()
          print("ready") io.stdout:flush()
          loom.sleep(30)
        end)
        loom.stdout:write("cleanup started\n")
        for i = 1, 8192 do loom.stdout:write(("c"):rep(1023), "\n") end
        io.stderr:write("queued\n")
        loom.sleep(30)
        print("cleanup finished")
        error(e, 0)
      ]])
      assert.are.equal("ready", p.stdout:read_line())
      p:kill("SIGINT")
      local t0 = loom.now()
      assert.are.equal("queued", loom.timeout(10, p.stderr.read_line, p.stderr))
      p:kill("SIGINT")
      local out = loom.spawn(function() return p.stdout:read_all() end)
      local code = finish(p, 10)
      os.remove(path)
      assert.are.equal(130, code)
      local all = out:await()
      assert.are.equal(1, select(2, all:gsub("cleanup started\n", "")))
      assert.are.equal(8192, select(2, all:gsub(("c"):rep(1023) .. "\n", "")))
      assert.is_nil(all:find("cleanup finished", 1, true))
      assert.is_true(loom.now() - t0 < 5)
    end, { timeout = 20 }))

    it("SIGTERM while writes to stdout are queued: they are flushed, then SIGTERM ends it", async(function()
      local p, path = child([[
        loom.stdout:limits{ high_water = 64 * 1024 * 1024 }
        for i = 1, 4096 do loom.stdout:write(("t"):rep(1023), "\n") end
        io.stderr:write("queued\n")
        loom.sleep(30)
      ]])
      assert.are.equal("queued", loom.timeout(10, p.stderr.read_line, p.stderr))
      p:kill("SIGTERM")
      local all = p.stdout:read_all()
      local code, sig = finish(p, 10)
      os.remove(path)
      assert.are.same({ nil, "SIGTERM" }, { code, sig })
      assert.are.equal(4096 * 1024, #all)
    end, { timeout = 20 }))

    it("SIGTERM to a script that watches it while a socket's writes are queued: closing sends them", async(function()
      local got = loom.future()
      local srv <close> = assert(net.listen("127.0.0.1", 0, function(s)
        loom.sleep(0.3)  -- the child queues while nobody reads
        got:set_result(s:read_all())
      end))
      local _, port = srv:address()
      local p, path = child(([[
        local c = assert(loom.net.connect("127.0.0.1", %d))
        c:limits{ high_water = 64 * 1024 * 1024 }
        for i = 1, 1024 do assert(c:write(("s"):rep(4095), "\n")) end
        local term = loom.spawn(loom.signal.wait, "SIGTERM")
        loom.yield()  -- it watches now
        print("queued") io.stdout:flush()
        print(term:await())
        c:close()
      ]]):format(port))
      assert.are.equal("queued", p.stdout:read_line())
      p:kill("SIGTERM")
      assert.are.equal("SIGTERM", p.stdout:read_line())
      local code, _, err = finish(p, 10)
      os.remove(path)
      assert.are.equal(0, code, err)
      assert.are.equal(1024 * 4096, #loom.wait_for(got, 10))
    end, { timeout = 20 }))
  end)
  -- }================================================================

  -- {================================================================
  describe("slowloris", function()
    -- A head a client sending a byte every 'GAP' seconds would take ten
    -- seconds to send.
    local GAP = 0.02
    local HEAD = "GET / HTTP/1.1\r\nHost: x\r\nX-Pad: " .. ("p"):rep(460) .. "\r\n\r\n"

    -- Sends HEAD a byte at a time on 's' until the server answers and
    -- closes ('stubborn': until the server cuts the connection, which is
    -- what a slowloris does with an answer); what came back, the bytes
    -- sent, and when the answer began to come.
    local function trickle(s, stubborn)
      local first
      local answer = loom.spawn(function()
        local parts = {}
        while true do
          local d = s:read()
          if not d then return table.concat(parts) end
          first = first or loom.now()
          parts[#parts + 1] = d
        end
      end)
      local sent = 0
      for i = 1, #HEAD do
        if (answer:done() and not stubborn) or not s:write(HEAD:sub(i, i)) then break end
        sent = i
        loom.sleep(GAP)
      end
      return answer:await(), sent, first
    end

    it("a client sending a byte at a time is cut off at header_timeout, on any request", async(function()
      local srv <close> = assert(http.serve("127.0.0.1", 0, function() return 200, "ok" end,
                                            { header_timeout = 0.3, keepalive_timeout = 30 }))
      local _, port = srv:address()
      local s <close> = assert(net.connect("127.0.0.1", port))
      local out, sent = trickle(s)
      assert.are.equal("HTTP/1.1 408", out:sub(1, 12))
      assert.is_true(sent < #HEAD, "the whole head went in")
      -- the second request of a keep-alive connection is held to it too
      local s2 <close> = assert(net.connect("127.0.0.1", port))
      s2:write("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
      assert.is_true(has(s2:read(), "200 OK"))
      out, sent = trickle(s2)
      assert.are.equal("HTTP/1.1 408", out:sub(1, 12))
      assert.is_true(sent < #HEAD, "the whole head went in")
    end, { timeout = 20 }))

    it("slow clients filling max_connections are cut off; the next client gets their place at once", async(function()
      local srv <close> = assert(http.serve("127.0.0.1", 0, function() return 200, "ok" end,
                                            { header_timeout = 0.3, max_connections = 3 }))
      local _, port = srv:address()
      local slow = {}
      for i = 1, 3 do
        local s = assert(net.connect("127.0.0.1", port))
        slow[i] = loom.spawn(function()
          local out, sent, first = trickle(s, true)
          s:close()
          return out, sent, first
        end)
      end
      loom.sleep(0.05)
      local c <close> = assert(net.connect("127.0.0.1", port))
      c:write("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
      local out = c:read_all()
      local served = loom.now()
      assert.is_true(has(out, "200 OK"), out)
      local cut = math.huge
      for i = 1, 3 do
        local got, sent, first = slow[i]:await()
        assert.are.equal("HTTP/1.1 408", got:sub(1, 12))
        assert.is_true(sent < #HEAD, "the whole head went in")
        cut = math.min(cut, first)
      end
      -- its place is free once the 408 had a moment to be read, not
      -- after the 2 s that a client that is not cut off gets to finish
      assert.is_true(served - cut < 1.5, ("served %.2f s after the first 408"):format(served - cut))
    end, { timeout = 20 }))
  end)
  -- }================================================================
end)
