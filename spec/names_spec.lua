-- How loom's errors name things: a function by the name the user calls
-- it ('loom.sleep', 'stream:read'), the user's line (never one of
-- loom's own chunks), values as the user wrote them; suspending calls
-- raise outside a task even when they would not wait; strings that go
-- to C carry no NUL; limits are positive; math.huge is "never".
local loom = require "loom"
local async = require("loom.busted").async
local net, fs, signal = loom.net, loom.fs, loom.signal
local core = debug.getregistry()["loom.core"]
local h = require "spec.helper"

local FILE = "spec/names_spec.lua"

local raises, outside = h.raiser(FILE), h.outside

-- Runs f from an alarm, outside any task while the loop runs (something
-- else must keep the loop alive); returns what pcall(f) returns.
local function outside_task(f)
  local done = loom.future()
  core.alarm(0, function() done:set_result(pcall(f)) end)
  return loom.await(done)
end

-- The same as 'raises', for a call made outside any task.
local function raises_outside(msg, f)
  local ok, e = outside_task(f)
  assert.is_false(ok, "no error")
  assert.are.equal(("%s:%d: %s"):format(FILE,
    debug.getinfo(f, "S").linedefined, msg), e)
end

-- A child whose stdout is a Stream: 'cat', fed by its stdin.
local function cat()
  return assert(loom.process.spawn { "cat" })
end

local function finish(p)
  p.stdin:close()
  p:wait()
  p:close()
end

-- A connected TCP pair: the client stream and the server's, with the
-- server (whose listening keeps the loop alive).
local function pair()
  local got = loom.future()
  local srv = assert(net.listen("127.0.0.1", 0, function(s)
    got:set_result(s)
    loom.await(loom.future())  -- keeps the stream open until cancelled
  end))
  local _, port = srv:address()
  local c = assert(net.connect("127.0.0.1", port))
  return c, loom.await(got), srv
end

describe("function names", function()
  it("are the names the user calls: core functions", async(function()
    raises("bad argument #1 to 'loom.sleep' (number expected, got string)",
      function() loom.sleep("x") end)
    raises("bad argument #1 to 'loom.spawn' (function expected, got number)",
      function() loom.spawn(42) end)
    raises("bad argument #1 to 'loom.await' (Task or Future expected, got "
      .. "number)", function() loom.await(42) end)
    raises("bad argument #1 to 'loom.work' (function expected, got number)",
      function() loom.work(42) end)
  end))

  it("are the names the user calls: task and future methods",
    async(function()
    local t = loom.spawn(function() end)
    local f = loom.future()
    raises("bad argument #1 to 'task:await' (Task or Future expected, got "
      .. "number)", function() t.await(42) end)
    raises("bad argument #1 to 'task:cancel' (string expected, got table)",
      function() t:cancel({}) end)
    raises("bad argument #1 to 'future:set_result' (loom.future expected, "
      .. "got loom.task)", function() f.set_result(t) end)
    raises("bad argument #1 to 'future:on_done' (function expected, got "
      .. "number)", function() f:on_done(1) end)
    raises("future:set_result: the future is already done",
      function() f:set_result(1); f:set_result(2) end)
    loom.await(t)
  end))

  it("task.name takes strings, and says so", async(function()
    local t = loom.spawn(function() end)
    raises("task.name: string expected, got number",
      function() t.name = 42 end)
    raises("loom.task: cannot set field 'nam' (only 'name')",
      function() t.nam = "x" end)
    t.name = "fine"
    assert.are.equal("fine", t.name)
    loom.await(t)
  end))

  it("are the names the user calls: streams", async(function()
    local p = cat()
    local s = p.stdout
    raises("bad argument #1 to 'stream:read' (loom.stream expected, got "
      .. "number)", function() s.read(42) end)
    raises("bad argument #1 to 'stream:read' (integer expected, got string)",
      function() s:read("x") end)
    raises("bad argument #1 to 'stream:read' (integer expected, got 1.5)",
      function() s:read(1.5) end)
    raises("bad argument #2 to 'stream:write' (string expected, got table)",
      function() p.stdin:write("a", {}) end)
    raises("bad argument #1 to 'stream:read_until' (separator must not be "
      .. "empty)", function() s:read_until("") end)
    raises("stream:nodelay: not a TCP stream", function() s:nodelay(true) end)
    finish(p)
  end))

  it("are the names the user calls: servers, UDP, resolve",
    async(function()
    local srv = assert(net.listen("127.0.0.1", 0, function() end))
    local u = assert(net.udp("127.0.0.1", 0))
    raises("bad argument #1 to 'server:address' (loom.server expected, got "
      .. "number)", function() srv.address(42) end)
    raises("bad argument #1 to 'udp:send' (loom.udp expected, got "
      .. "loom.server)", function() u.send(srv, "x", "127.0.0.1", 9) end)
    raises("bad argument #3 to 'udp:send' (integer expected, got string)",
      function() u:send("x", "127.0.0.1", "nine") end)
    raises("bad argument #3 to 'udp:send' (port out of range)",
      function() u:send("x", "127.0.0.1", 70000) end)
    -- the check of the name is in C, behind loom.net's wrapper
    raises("bad argument #1 to 'net.resolve' (bad host name)",
      function() net.resolve("") end)
    u:close()
    srv:close()
  end))

  it("are the names the user calls: files and watchers", async(function()
    local dir = assert(fs.mkdtemp(os.tmpname():gsub("[^/]*$", "") ..
      "names-"))
    local f = assert(fs.open(dir .. "/f", "w+"))
    raises("bad argument #1 to 'file:read' (loom.file expected, got number)",
      function() f.read(42) end)
    raises("bad argument #1 to 'file:seek' (invalid option 'bogus')",
      function() f:seek("bogus") end)
    raises("bad argument #2 to 'file:seek' (integer expected, got string)",
      function() f:seek("set", "x") end)
    local w = assert(fs.watch(dir))
    local step = w:events()
    raises("bad argument #1 to 'watcher:events' (loom.watcher expected, got "
      .. "loom.file)", function() w.events(f)() end)
    assert.is_function(step)
    w:close()
    assert.is_nil(step())
    f:close()
    assert(fs.remove(dir, { recursive = true }))
  end))

  it("are the names the user calls: processes", async(function()
    local p = cat()
    raises("bad argument #1 to 'process:wait' (loom.process expected, got "
      .. "number)", function() p.wait(42) end)
    raises("bad argument #1 to 'process:kill' (unknown signal 'SIGBOGUS')",
      function() p:kill("SIGBOGUS") end)
    finish(p)
  end))
end)

describe("messages", function()
  it("show numbers as the user wrote them", function()
    raises("bad argument #1 to 'loom.sleep' (duration must be a "
      .. "non-negative number, got -1)", function() loom.sleep(-1) end)
    raises("bad argument #1 to 'loom.sleep' (duration must be a "
      .. "non-negative number, got nan)", function() loom.sleep(0 / 0) end)
    raises("bad argument #1 to 'loom.sleep' (duration must be a "
      .. "non-negative number, got -0.25)", function() loom.sleep(-0.25) end)
  end)
end)

describe("loom's Lua wrappers", function()
  it("leave the user's line in C's messages", async(function()
    local u = assert(net.udp("127.0.0.1", 0))
    raises("bad argument #1 to 'net.resolve' (bad host name)",
      function() net.resolve(("x"):rep(300)) end)
    u:close()
  end))
end)

describe("suspending calls outside a task", function()
  it("stream reads, writes, flush and shutdown raise even with data "
    .. "buffered", async(function()
    local c, s, srv = pair()
    assert(s:write("hello"))
    assert.are.equal("h", c:read_exactly(1))
    raises_outside(outside("stream:read"), function() local _ = c:read() end)
    raises_outside(outside("stream:read_line"),
      function() local _ = c:read_line() end)
    raises_outside(outside("stream:write"),
      function() local _ = c:write("x") end)
    raises_outside(outside("stream:flush"), function() local _ = c:flush() end)
    raises_outside(outside("stream:shutdown"),
      function() local _ = c:shutdown() end)
    assert.are.equal("ello", c:read_exactly(4))
    c:close()
    srv:close()
    s:close()
  end))

  it("udp:recv raises with a datagram queued, udp:send too",
    async(function()
    local u = assert(net.udp("127.0.0.1", 0))
    local v = assert(net.udp("127.0.0.1", 0))
    local _, port = u:address()
    assert(v:send("a", "127.0.0.1", port))
    assert(v:send("b", "127.0.0.1", port))
    assert.are.equal("a", (u:recv()))  -- "b" came in the same read
    raises_outside(outside("udp:recv"), function() local _ = u:recv() end)
    raises_outside(outside("udp:send"),
      function() local _ = v:send("c", "127.0.0.1", port) end)
    assert.are.equal("b", (u:recv()))
    u:close()
    v:close()
  end))

  it("the watcher's events and a file's methods raise", async(function()
    local u = assert(net.udp("127.0.0.1", 0))  -- keeps the loop alive
    assert(u:send("x", "127.0.0.1", (select(2, u:address()))))
    assert(u:recv())
    local dir = assert(fs.mkdtemp(os.tmpname():gsub("[^/]*$", "") ..
      "names-"))
    local f = assert(fs.open(dir .. "/f", "w+"))
    local w = assert(fs.watch(dir))
    raises_outside(outside("watcher:events"),
      function() local _ = w:events() end)
    local step = w:events()
    raises_outside(outside("watcher:events"), function() local _ = step() end)
    raises_outside(outside("file:seek"),
      function() local _ = f:seek("set", 0) end)
    raises_outside(outside("file:write"), function() local _ = f:write() end)
    raises_outside(outside("file:read"), function() local _ = f:read(1) end)
    w:close()
    f:close()
    u:close()
    assert(fs.remove(dir, { recursive = true }))
  end))
end)

describe("loom.work's copy errors", function()
  it("name the user's line and loom.work's own argument", async(function()
    raises("bad argument #3 to 'loom.work' (a function cannot be copied to "
      .. "another Lua state)",
      function() loom.work(function() end, 1, print) end)
    raises("bad argument #2 to 'loom.work' (.cfg.cb: a function cannot be "
      .. "copied to another Lua state)",
      function() loom.work(function() end, { cfg = { cb = print } }) end)
  end))
end)

describe("strings with a NUL", function()
  it("are refused as host names", function()
    raises("bad argument #1 to 'net.connect' (string contains a NUL)",
      function() net.connect("local\0host", 80) end)
    raises("bad argument #1 to 'net.resolve' (string contains a NUL)",
      function() net.resolve("local\0host") end)
    raises("bad argument #1 to 'net.listen' (string contains a NUL)",
      function() net.listen("127.0.0.1\0x", 0, print) end)
    raises("bad argument #1 to 'net.udp' (string contains a NUL)",
      function() net.udp("127.0.0.1\0x", 0) end)
    local u = assert(net.udp())
    raises("bad argument #2 to 'udp:send' (string contains a NUL)",
      function() u:send("x", "127.0.0.1\0x", 9) end)
    u:close()
  end)

  it("are refused as socket paths", function()
    raises("bad argument #1 to 'net.connect_unix' (string contains a NUL)",
      function() net.connect_unix("/tmp/x\0y") end)
    raises("bad argument #1 to 'net.listen_unix' (string contains a NUL)",
      function() net.listen_unix("/tmp/x\0y", print) end)
  end)

  it("are refused as signal names", function()
    raises("bad argument #1 to 'signal.wait' (string contains a NUL)",
      function() signal.wait("SIGINT\0x") end)
    raises("bad argument #2 to 'signal.wait' (string contains a NUL)",
      function() signal.wait("SIGTERM", "SIGHUP\0x") end)
    raises("bad argument #1 to 'signal.on' (string contains a NUL)",
      function() signal.on("SIGINT\0x", print) end)
  end)
end)

describe("stream:limits", function()
  it("refuses limits that are not positive integers", async(function()
    local p = cat()
    local s = p.stdout
    local hwm, line = s:limits()
    raises("bad argument #1 to 'stream:limits' (high_water must be a "
      .. "positive integer, got -1)",
      function() s:limits { high_water = -1 } end)
    raises("bad argument #1 to 'stream:limits' (line must be a positive "
      .. "integer, got -1)", function() s:limits { line = -1 } end)
    raises("bad argument #1 to 'stream:limits' (line must be a positive "
      .. "integer, got 0)", function() s:limits { line = 0 } end)
    raises("bad argument #1 to 'stream:limits' (high_water must be a "
      .. "positive integer, got 1.5)",
      function() s:limits { high_water = 1.5 } end)
    raises("bad argument #1 to 'stream:limits' (line must be a positive "
      .. "integer, got string)", function() s:limits { line = "10" } end)
    raises("bad argument #1 to 'stream:limits' (table expected, got number)",
      function() s:limits(5) end)
    -- a refused call changes nothing, not even its valid half
    raises("bad argument #1 to 'stream:limits' (line must be a positive "
      .. "integer, got 0)",
      function() s:limits { high_water = 10, line = 0 } end)
    local h2, l2 = s:limits()
    assert.are.equal(hwm, h2)
    assert.are.equal(line, l2)
    assert.are.same({ 10, 20 }, { s:limits { high_water = 10, line = 20 } })
    finish(p)
  end))
end)

describe("stream:read(0)", function()
  it("returns \"\" at once, as read_exactly(0) does", async(function()
    local p = cat()
    local s = p.stdout
    assert.are.equal("", loom.timeout(5, s.read, s, 0))
    assert.are.equal("", loom.timeout(5, s.read_exactly, s, 0))
    assert(p.stdin:write("data"))
    assert.are.equal("da", s:read_exactly(2))
    assert.are.equal("", s:read(0))  -- buffered data stays
    assert.are.equal("ta", s:read_exactly(2))
    finish(p)
  end))
end)

describe("math.huge", function()
  local function virtual(fn)
    return loom.run_with({ clock = "virtual" }, fn)
  end

  it("is never as a deadline, even past 2^52 ms of virtual time",
    function()
    local r = virtual(function()
      return loom.timeout(math.huge, function()
        loom.sleep(4e12)  -- 4e15 ms each: together past 2^52 ms
        loom.sleep(4e12)
        return "done"
      end)
    end)
    assert.are.equal("done", r)
  end)

  it("is never as loom.wait_for's limit", function()
    local r = virtual(function()
      local t = loom.spawn(function()
        loom.sleep(4e12)
        loom.sleep(4e12)
        return "late"
      end)
      return loom.wait_for(t, math.huge)
    end)
    assert.are.equal("late", r)
  end)

  it("sleeps until cancelled: alone, nothing can wake it", function()
    local ok, e = pcall(virtual, function()
      loom.sleep(math.huge)
      return "woke"
    end)
    assert.is_false(ok)
    assert.matches("the main task never finished", tostring(e))
  end)

  it("sleeps until cancelled by another task", async(function()
    local t = loom.spawn(function() loom.sleep(math.huge) end)
    loom.yield()
    assert.is_false(t:done())
    assert.is_true(t:cancel())
    assert.has_error(function() loom.await(t) end)
    assert.is_true(t:cancelled())
  end))
end)
