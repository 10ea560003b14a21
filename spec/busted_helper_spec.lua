local loom = require "loom"
local async = require("loom.busted").async
local helper = require "spec.helper"

-- Runs busted on the spec source 'src' in a subprocess, with TAP output;
-- returns its stdout, stderr and exit status.
local function run_busted(src)
  local path = os.tmpname()
  os.remove(path)
  path = path .. "_spec.lua"
  local f = assert(io.open(path, "wb"))
  f:write(src)
  f:close()
  local cpath = helper.build .. "/lua/?.so"
  local out, err, code = helper.sh(("LUA_CPATH=%s busted --lua=lua5.4 "
    .. "-o TAP --cpath=%s %s"):format(helper.quote(cpath .. ";;"),
      helper.quote(cpath), helper.quote(path)))
  os.remove(path)
  return out, err, code
end

-- The TAP block (result line and its '#' comments) of test 'name'.
local function tap_block(out, name)
  local lines = helper.lines(out)
  for i, l in ipairs(lines) do
    if l:match("^n?o?t? ?ok %d+ %- .*" .. name:gsub("%p", "%%%0") .. "$") then
      local block = { l }
      for j = i + 1, #lines do
        if not lines[j]:match("^#") then break end
        block[#block + 1] = lines[j]
      end
      return table.concat(block, "\n")
    end
  end
  return nil
end

describe("loom.busted.async", function()
  it("runs the body as a task named 'test' on a fresh loop", async(function()
    local me = loom.current()
    assert.is_not_nil(me)
    assert.are.equal("test", me.name)
    assert.are.same({ me }, loom.tasks())
    loom.sleep(0.001)  -- may suspend
    assert.are.equal(me, loom.current())
  end))

  it("returns a plain function that runs the body to its end", function()
    local steps = {}
    local f = async(function()
      steps[#steps + 1] = "start"
      loom.sleep(0.01)
      steps[#steps + 1] = "end"
    end)
    assert.are.equal("function", type(f))
    assert.are.same({}, steps)  -- not run yet
    f()
    assert.are.same({ "start", "end" }, steps)
    assert.is_nil(loom.current())
  end)

  it("is on the real clock by default", function()
    local t0 = helper.clock()
    async(function() loom.sleep(0.05) end)()
    if not helper.coarse then
      assert.is_true(helper.clock() - t0 >= 0.045)
    end
  end)

  it("passes the body's errors through unchanged", function()
    local ok, e = pcall(async(function()
      loom.sleep(0.001)
      assert.are.equal(1, 2)
    end))
    assert.is_false(ok)
    assert.matches("Expected objects to be equal", tostring(e))
    local err = { "mine" }
    ok, e = pcall(async(function() loom.yield(); error(err) end))
    assert.is_false(ok)
    assert.are.equal(err, e)
    ok, e = pcall(async(function() error("plain", 0) end))
    assert.is_false(ok)
    assert.are.equal("plain", e)
  end)

  it("reports passes, failures and timeouts to busted itself", function()
    local out, err, code = run_busted([[
local loom = require "loom"
local async = require("loom.busted").async
describe("sub", function()
  it("passes", async(function() loom.sleep(0.01); assert.is_true(true) end))
  it("fails after suspending", async(function()
    loom.sleep(0.01)
    assert.are.equal("expected-value", "actual-value")
  end))
  it("times out", async(function()
    local child = loom.spawn(function()
      local function wait_here() loom.sleep(30) end
      wait_here()
    end)
    child.name = "stuck-child"
    child:await()
  end, { timeout = 0.3 }))
  it("sleeps a virtual hour", async(function()
    loom.sleep(3600)
  end, { clock = "virtual", timeout = 1 }))
end)
]])
    assert.are_not.equal(0, code)
    assert.matches("1%.%.4", out)
    local pass = tap_block(out, "sub passes")
    assert.is_not_nil(pass, "no TAP line for 'passes' in:\n" .. out .. err)
    assert.matches("^ok %d+", pass)
    local fail = tap_block(out, "sub fails after suspending")
    assert.is_not_nil(fail, "no TAP line for 'fails' in:\n" .. out .. err)
    assert.matches("^not ok %d+", fail)
    assert.matches("Expected objects to be equal", fail)
    assert.matches("expected%-value", fail)
    assert.matches("actual%-value", fail)
    local stuck = tap_block(out, "sub times out")
    assert.is_not_nil(stuck, "no TAP line for 'times out' in:\n" .. out .. err)
    assert.matches("^not ok %d+", stuck)
    assert.matches("test timed out after 0%.3 s", stuck)
    assert.matches("task 'test'", stuck)
    assert.matches("task 'stuck%-child'", stuck)
    assert.matches("wait_here", stuck)
    assert.matches("_spec%.lua:%d+: in", stuck)  -- traceback lines
    local virtual = tap_block(out, "sub sleeps a virtual hour")
    assert.is_not_nil(virtual, "no TAP line for 'virtual' in:\n" .. out .. err)
    assert.matches("^ok %d+", virtual)
  end)

  describe("failures nobody observed", function()
    it("fail the test that started the task, with message and traceback", function()
      local out, err = run_busted([[
local loom = require "loom"
local net = require "loom.net"
local async = require("loom.busted").async
describe("lost", function()
  it("unawaited task", async(function()
    local t = loom.spawn(function()
      local function child_fails_here()
        assert.are.equal("child-expected", "child-actual")
      end
      child_fails_here()
    end)
    t.name = "unawaited-child"
    loom.sleep(0.01)
  end))
  it("server handler", async(function()
    local srv = assert(net.listen("127.0.0.1", 0, function(s)
      local function handler_fails_here() error("handler-boom", 0) end
      s:read_line()
      handler_fails_here()
    end))
    local _, port = srv:address()
    local c = assert(net.connect("127.0.0.1", port))
    c:write("x\n")
    c:read()  -- until the handler's stream closes
    loom.event():wait()  -- a failing handler ends the test at once
  end, { timeout = 30 }))
  it("awaited failure", async(function()
    local t = loom.spawn(error, "seen-later", 0)
    loom.sleep(0.01)
    assert.is_false(pcall(loom.await, t))
  end))
  it("error read afterwards", async(function()
    local t = loom.spawn(error, "read-later", 0)
    loom.sleep(0.01)
    assert.are.equal("read-later", t:error())
  end))
  it("cancelled task", async(function()
    local t = loom.spawn(loom.sleep, 10)
    loom.yield()
    t:cancel()
    loom.yield()
  end))
  it("next test is clean", async(function() loom.sleep(0.01) end))
end)
]])
      local lost = tap_block(out, "lost unawaited task")
      assert.is_not_nil(lost, "no TAP line for 'unawaited task' in:\n" .. out .. err)
      assert.matches("^not ok %d+", lost)
      assert.matches("error in task 'unawaited%-child'", lost)
      assert.matches("child%-expected", lost)
      assert.matches("child_fails_here", lost)
      local handler = tap_block(out, "lost server handler")
      assert.is_not_nil(handler, "no TAP line for 'server handler' in:\n" .. out .. err)
      assert.matches("^not ok %d+", handler)
      assert.matches("error in task 'conn [^']*': handler%-boom", handler)
      assert.matches("handler_fails_here", handler)
      assert.is_nil(handler:find("timed out", 1, true), handler)
      for _, name in ipairs { "awaited failure", "error read afterwards",
                              "cancelled task", "next test is clean" } do
        local b = tap_block(out, "lost " .. name)
        assert.is_not_nil(b, "no TAP line for '" .. name .. "' in:\n" .. out .. err)
        assert.matches("^ok %d+", b)
      end
      -- what the test reports is not reported again on stderr
      assert.is_nil(err:find("child-expected", 1, true), err)
      assert.is_nil(err:find("handler-boom", 1, true), err)
    end)

    it("a failure collected during the test, and an on_done callback's error, fail it", function()
      local out, err = run_busted([[
local loom = require "loom"
local async = require("loom.busted").async
describe("reported", function()
  it("collected unobserved", async(function()
    do
      local t = loom.spawn(error, "collected-boom", 0)
      t.name = "dropped"
      loom.yield()
    end
    collectgarbage()
    collectgarbage()
    loom.sleep(0.01)
  end))
  it("callback error", async(function()
    local t = loom.spawn(function() return 1 end)
    t:on_done(function() error("callback-boom", 0) end)
    t:await()
  end))
  it("clean", async(function() loom.sleep(0.01) end))
end)
]])
      local gc = tap_block(out, "reported collected unobserved")
      assert.is_not_nil(gc, out .. err)
      assert.matches("^not ok %d+", gc)
      assert.matches("error in task 'dropped': collected%-boom", gc)
      local cb = tap_block(out, "reported callback error")
      assert.is_not_nil(cb, out .. err)
      assert.matches("^not ok %d+", cb)
      assert.matches("error in an on_done callback: callback%-boom", cb)
      assert.matches("^ok %d+", tap_block(out, "reported clean"))
      assert.is_nil(err:find("boom", 1, true), err)
    end)

    it("raise from the test function itself", function()
      local ok, e = pcall(async(function()
        loom.spawn(error, "nobody-awaits-me", 0).name = "lost"
        loom.yield()
      end))
      assert.is_false(ok)
      assert.matches("^error in task 'lost': nobody%-awaits%-me", tostring(e))
      assert.matches("stack traceback", tostring(e))
      assert.is_true(pcall(async(function()
        local t = loom.spawn(error, "awaited", 0)
        assert.are.equal("awaited", select(2, pcall(loom.await, t)))
      end)))
    end)

    it("a signal handler's failure ends the test at once", function()
      local f = assert(io.open("/proc/self/stat"))
      local pid = f:read("a"):match("^(%d+)")
      f:close()
      local ok, e = pcall(async(function()
        loom.signal.on("SIGUSR1", function() error("signal-boom", 0) end)
        assert(loom.process.run { "kill", "-USR1", pid })
        loom.event():wait()
      end, { timeout = 30 }))
      assert.is_false(ok)
      assert.matches("^error in task 'signal SIGUSR1': signal%-boom\nstack traceback", e)
      -- the handler went with the test
      assert.is_true(pcall(async(function()
        local got = loom.spawn(loom.signal.wait, "SIGUSR1")
        loom.yield()
        assert(loom.process.run { "kill", "-USR1", pid })
        assert.are.equal("SIGUSR1", got:await())
      end, { timeout = 30 })))
    end)
  end)

  describe("what a failing test leaves open", function()
    it("servers and sockets are closed, children killed and reaped", function()
      local p, srv, udp
      local listen, spawn = loom.net.listen, loom.process.spawn
      local t0 = helper.clock()
      local ok, e = pcall(async(function()
        p = assert(loom.process.spawn { "sleep", "100" })
        srv = assert(loom.net.listen("127.0.0.1", 0, function() end))
        udp = assert(loom.net.udp("127.0.0.1", 0))
        error("failed-with-handles-open", 0)
      end))
      assert.is_false(ok)
      assert.are.equal("failed-with-handles-open", e)
      assert.is_true(helper.clock() - t0 < 5)
      assert.has_error(function() srv:address() end)
      assert.has_error(function() udp:address() end)
      local _, _, code = helper.sh("kill -0 " .. p.pid)
      assert.are_not.equal(0, code, "the child still runs")
      assert.are.equal(listen, loom.net.listen)
      assert.are.equal(spawn, loom.process.spawn)
      assert.is_true(pcall(async(function()
        -- the functions are the module's own again, and work as before
        local s = assert(loom.net.listen("127.0.0.1", 0, function() end))
        s:close()
        local r = assert(loom.process.run { "true" })
        assert.are.equal(0, r.code)
      end)))
    end)
  end)

  describe("an HTTP server a test leaves open", function()
    it("is closed with its idle keep-alive connections when the body ends", function()
      local t0 = helper.clock()
      local srv
      assert.is_true(pcall(async(function()
        srv = assert(loom.http.serve("127.0.0.1", 0, function() return 200, "hi" end))
        local _, port = srv:address()
        local c = assert(loom.net.connect("127.0.0.1", port))
        c:write("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert(c:read_until("hi"))  -- the connection now waits idle
      end)))
      assert.is_true(helper.clock() - t0 < 5)  -- not the 75 s keep-alive
      assert.has_error(function() srv:address() end)
    end)
  end)

  describe("timeout", function()
    it("fails a stuck test with the pending tasks and where each waits", function()
      local cleaned = false
      local child
      local t0 = helper.clock()
      local ok, e = pcall(async(function()
        child = loom.spawn(function()
          local _ <close> = setmetatable({}, { __close = function() cleaned = true end })
          local function wait_here() loom.sleep(30) end
          wait_here()
        end)
        child.name = "stuck-child"
        local function body_waits_here() child:await() end
        body_waits_here()
      end, { timeout = 0.2 }))
      local elapsed = helper.clock() - t0
      assert.is_false(ok)
      assert.is_string(e)
      assert.matches("^test timed out after 0%.2 s; pending tasks:", e)
      assert.matches("task 'test':", e)
      assert.matches("body_waits_here", e)
      assert.matches("task 'stuck%-child':", e)
      assert.matches("wait_here", e)
      assert.matches("busted_helper_spec%.lua:%d+:", e)
      if not helper.coarse then
        assert.is_true(elapsed >= 0.19, "timed out too early: " .. elapsed)
      end
      assert.is_true(elapsed < 5, "timed out too late: " .. elapsed)
      assert.is_true(cleaned)  -- the stuck child was cancelled
      assert.is_true(child:done())
    end)

    it("does not fire for a test that finishes in time", function()
      local ok = pcall(async(function() loom.sleep(0.05) end, { timeout = 0.5 }))
      assert.is_true(ok)
    end)

    it("stays real time on the virtual clock", function()
      local t0 = helper.clock()
      local ok, e = pcall(async(function()
        while true do loom.sleep(60) end
      end, { clock = "virtual", timeout = 0.3 }))
      local elapsed = helper.clock() - t0
      assert.is_false(ok)
      assert.matches("test timed out after 0%.3 s", tostring(e))
      if not helper.coarse then
        assert.is_true(elapsed >= 0.28, "fired after " .. elapsed .. " s of real time")
      end
      assert.is_true(elapsed < 5)
    end)

    it("a test that can never finish fails, and before its timeout", function()
      local t0 = helper.clock()
      local ok = pcall(async(function() loom.event():wait() end, { timeout = 3 }))
      assert.is_false(ok)
      if not helper.coarse then assert.is_true(helper.clock() - t0 < 2) end
    end)
  end)

  describe("virtual clock", function()
    it("makes an hour of sleeping instant", function()
      local slept
      local t0 = helper.clock()
      async(function()
        local v0 = loom.now()
        loom.sleep(3600)
        local ts = {}
        for i = 1, 3 do ts[i] = loom.spawn(loom.sleep, 1800 * i) end
        for i = 1, 3 do ts[i]:await() end
        slept = loom.now() - v0
      end, { clock = "virtual", timeout = 2 })()
      local elapsed = helper.clock() - t0
      -- (loom.now() is milliseconds / 1000: the difference of two such
      -- floats may be a hair under the whole number)
      assert.is_true(slept >= 3600 + 5400 - 1e-6 and slept < 3600 + 5400 + 1,
        "virtual time went by " .. tostring(slept))
      assert.is_true(elapsed < 1, "took " .. elapsed .. " s of real time")
    end)
  end)

  describe("leftover tasks", function()
    it("are cancelled when the body returns, and their cleanup runs", function()
      local log = {}
      local a, b
      local t0 = helper.clock()
      async(function()
        a = loom.spawn(function()
          local _ <close> = setmetatable({}, { __close = function() log[#log + 1] = "a closed" end })
          loom.sleep(100)
        end)
        b = loom.spawn(function()
          local ok, e = pcall(loom.sleep, 100)
          log[#log + 1] = (not ok and loom.is_cancelled(e)) and "b cancelled" or "b ?"
        end)
        loom.yield()
      end)()
      assert.is_true(helper.clock() - t0 < 5)
      table.sort(log)
      assert.are.same({ "a closed", "b cancelled" }, log)
      assert.is_true(a:done())
      assert.is_true(a:cancelled())
      assert.is_true(b:done())
      assert.are.same({}, loom.tasks())
    end)

    it("are cancelled when the body fails too", function()
      local cleaned = false
      local ok, e = pcall(async(function()
        loom.spawn(function()
          local _ <close> = setmetatable({}, { __close = function() cleaned = true end })
          loom.sleep(100)
        end)
        loom.yield()
        error("body failed", 0)
      end))
      assert.is_false(ok)
      assert.are.equal("body failed", e)
      assert.is_true(cleaned)
    end)

    it("do not leak into the next test", async(function()
      assert.are.equal(1, #loom.tasks())
    end))
  end)

  describe("bad options", function()
    it("raise", function()
      local fn = function() end
      assert.has_error(function() async(42) end,
        "bad argument #1 to 'async' (function expected, got number)")
      assert.has_error(function() async() end)
      assert.has_error(function() async(fn, "fast") end,
        "bad argument #2 to 'async' (table expected, got string)")
      for _, t in ipairs { 0, -1, "5", 0 / 0, true } do
        assert.has_error(function() async(fn, { timeout = t }) end,
          "bad argument #2 to 'async' (timeout must be a positive number)")
      end
      -- an unknown clock raises, at the latest when the test runs
      local ok, e = pcall(function() async(fn, { clock = "sundial" })() end)
      assert.is_false(ok)
      assert.matches("sundial", tostring(e))
      assert.is_true(pcall(async(fn, { clock = "real", timeout = 0.5 })))
    end)
  end)
end)
