-- How loom's errors name things: a function by the name the user calls
-- it ('loom.sleep', 'stream:read'), the user's line (never one of
-- loom's own chunks), values as the user wrote them; suspending calls
-- raise outside a task even when they would not wait; strings that go
-- to C carry no NUL; limits are positive; math.huge is "never".
local loom = require "loom"
local async = require("loom.busted").async
local net, fs, signal = loom.net, loom.fs, loom.signal
local core = loom._core

local FILE = "spec/names_spec.lua"

-- Calls f, which must raise exactly 'msg' from the line where f is
-- written (or line 'at').
local function raises(msg, f, at)
  local ok, e = pcall(f)
  assert.is_false(ok, "no error")
  at = at or debug.getinfo(f, "S").linedefined
  assert.are.equal(("%s:%d: %s"):format(FILE, at, msg), e)
end

local function outside(name)
  return ("loom: %s called outside a task (use loom.run or the loom binary)")
    :format(name)
end

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
