--[[ spec/regressions_spec.lua: one test per bug found, named for it.
  Several crashed or used freed memory before their fix; the sanitizer
  run of the suite is what makes those tests bite.
]]
local loom = require "loom"
local async = require("loom.busted").async
local h = require "spec.helper"

describe("regressions", function()
  it("a loom call in a coroutine resumed across a C boundary leaves no stale wait (timer)", function()
    local ok, e
    loom.run(function()
      local gen = coroutine.wrap(function() loom.sleep(0.01) end)
      ok, e = pcall(table.sort, { 3, 2, 1 }, function(a, b) gen() return a < b end)
    end)
    -- the task has finished; its abandoned timer must not resume it
    loom.run(function() loom.sleep(0.03) end)
    assert.is_false(ok)
    assert.matches("cannot suspend inside 'table.sort'", e)
  end)

  it("a stale await left by such a coroutine does not wake the task early", async(function()
    local f = loom.future()
    local gen = coroutine.wrap(function() f:await() end)
    pcall(table.sort, { 3, 2, 1 }, function(a, b) gen() return a < b end)
    f:set_result(1)
    local t0 = loom.now()
    loom.sleep(0.1)
    assert.is_true(loom.now() - t0 >= 0.09)
  end))

  it("a stale await on a collected future is no use after free", async(function()
    local main = loom.current()
    local gone = setmetatable({}, { __mode = "k" })
    local f = loom.future()
    gone[f] = true
    local gen = coroutine.wrap(function() f:await() end)
    pcall(table.sort, { 3, 2, 1 }, function(a, b) gen() return a < b end)
    f, gen = nil, nil
    collectgarbage(); collectgarbage()
    assert.is_nil(next(gone), "the future was not collected")
    loom.sleep(0.001)
    -- the task goes on as itself, and waits and wakes as before
    assert.are.equal(main, loom.current())
    local t = loom.spawn(function() loom.sleep(0.001) return "after" end)
    assert.are.equal("after", t:await())
    assert.are.same({ main }, loom.tasks())
  end))

  it("a __close handler cancelling its own failing task does not requeue it", async(function()
    local runs, cancelled_itself = 0, nil
    local t = loom.spawn(function()
      runs = runs + 1
      local _ <close> = setmetatable({}, { __close = function()
        cancelled_itself = loom.current():cancel("shutdown")
      end })
      error("boom", 0)
    end)
    local ok, e = pcall(loom.await, t)
    assert.is_false(ok)
    assert.are.equal("boom", e)
    h.settle()
    assert.are.equal(1, runs)               -- not resumed again
    assert.is_false(cancelled_itself)       -- too late: it was failing
    assert.is_false(t:cancelled())
    assert.are.same({ loom.current() }, loom.tasks())
  end))

  it("inside the __close handler of a failing task, loom.current() is that task", async(function()
    local seen
    local t = loom.spawn(function()
      local _ <close> = setmetatable({}, { __close = function() seen = loom.current() end })
      error("boom", 0)
    end)
    pcall(loom.await, t)
    assert.are.equal(t, seen)
  end))

  it("cancelling one of two tasks that await each other terminates", async(function()
    local main = loom.current()
    local child = loom.spawn(function() loom.await(main) end)
    loom.spawn(function()
      loom.sleep(0.01)
      assert.is_true(child:cancel())
    end)
    local ok, e = pcall(loom.await, child)
    assert.is_false(ok)
    assert.is_true(loom.is_cancelled(e))
  end, { timeout = 5 }))

  it("resuming a coroutine that waits in a loom call from outside its task is refused", function()
    local msg
    loom.run(function()
      local co = coroutine.create(function() loom.sleep(0.02) end)
      loom.spawn(function() coroutine.resume(co) end)
      loom.yield()
      local t = loom.spawn(function() end)
      t:on_done(function() msg = select(2, pcall(coroutine.resume, co)) end)
    end)
    assert.matches("cannot resume a coroutine that waits in a loom call", msg)
  end)

  it("after a virtual run, a short timer is not held behind a stale list key", function()
    loom.run_with({ clock = "virtual" }, function()
      loom.sleep(1000)
      loom.timeout(0.01, function() end)
    end)
    local order = loom.run(function()
      local order = {}
      local b = loom.spawn(function() loom.sleep(0.1); order[#order + 1] = "long" end)
      local a = loom.spawn(function() loom.sleep(0.01); order[#order + 1] = "short" end)
      a:await(); b:await()
      return order
    end)
    assert.are.same({ "short", "long" }, order)
  end)

  it("two virtual runs in a row keep virtual sleeps exact", function()
    loom.run_with({ clock = "virtual" }, function()
      loom.sleep(3600)
      loom.timeout(5, function() end)
    end)
    local slept = loom.run_with({ clock = "virtual" }, function()
      local t0 = loom.now()
      loom.spawn(function() loom.sleep(60) end)
      loom.yield()
      loom.sleep(5)
      return loom.now() - t0
    end)
    assert.is_true(math.abs(slept - 5) < 1e-6, tostring(slept))
  end)

  it("an outer timeout swallowed by an inner pcall still raises Timeout", async(function()
    local ok, e = pcall(loom.timeout, 1, function()
      for _ = 1, 3 do pcall(loom.timeout, 10, loom.sleep, 3) end
      return "finished"
    end)
    assert.is_false(ok)
    assert.is_true(loom.is_timeout(e))
  end, { clock = "virtual" }))

  it("a failing alarm callback leaves nothing on the stack of loom.run", function()
    local core = debug.getregistry()["loom.core"]
    local reports = {}
    local saved = core.set_report(function(msg) reports[#reports + 1] = msg end)
    local r = table.pack(pcall(loom.run, function()
      core.alarm(0.005, function() error("alarm failed") end)
      loom.sleep(0.02)
      return "result"
    end))
    core.set_report(saved)
    assert.are.same({ true, "result", n = 2 }, r)
    assert.are.same({ "error in an alarm: spec/regressions_spec.lua:147: alarm failed" },
      reports)
  end)

  it("a coroutine whose identity escaped is not reused for another task", async(function()
    local ctx = setmetatable({}, { __mode = "k" })
    loom.spawn(function() ctx[coroutine.running()] = "alice" end):await()
    local seen = loom.spawn(function() return ctx[coroutine.running()] end):await()
    assert.is_nil(seen)
  end))

  it("the binary survives its main Task being collected during a stall", function()
    local _, err, code = h.run_src([[
      loom.spawn(function()
        loom.sleep(0.01)
        collectgarbage(); collectgarbage()
        loom.future():await()
      end)
    ]])
    assert.are.equal(0, code, err)
  end)

  -- Misuse errors raised in loom's own Lua modules, or in C reached
  -- through them, once named a line inside loom ("[loom] loom.net:148:").
  describe("a misuse error names the caller's line, not loom's", function()
    local SRC = debug.getinfo(1, "S").short_src
    local function raised_here(f)
      local line = debug.getinfo(2, "l").currentline
      local ok, e = pcall(f)
      assert.is_false(ok)
      assert.are.equal(SRC .. ":" .. line .. ":", e:match("^[^:]*:%d+:"), e)
      return e
    end

    it("net.listen with a host that is not a string", async(function()
      local e = raised_here(function() loom.net.listen(1, 0, print) end)
      assert.matches("bad argument #1 to 'net.listen' %(string expected, got number%)", e)
    end))

    it("net.listen_unix with a handler that is not callable", async(function()
      local e = raised_here(function() loom.net.listen_unix("/tmp/x", 5) end)
      assert.matches("bad argument #2 to 'net.listen_unix' %(function expected", e)
    end))

    it("a Process method called on something else", async(function()
      local p = assert(loom.process.spawn { "true" })
      local e = raised_here(function() p.status({}) end)
      assert.matches("bad argument #1 to 'process:status' %(loom.process expected, got table%)", e)
      p:wait()
      p:close()
    end))

    it("fs.copy and fs.read_file outside a task", function()
      local e = raised_here(function() loom.fs.copy("a", "b") end)
      assert.matches("fs.copy called outside a task", e)
      e = raised_here(function() loom.fs.read_file("a") end)
      assert.matches("fs.read_file called outside a task", e)
    end)

    it("a read from a closed File", async(function()
      local path = os.tmpname()
      local f = assert(loom.fs.open(path, "w"))
      f:close()
      local e = raised_here(function() f:read_all() end)
      assert.matches("attempt to use a closed file", e)
      os.remove(path)
    end))
  end)
end)
