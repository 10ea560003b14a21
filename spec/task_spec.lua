local loom = require "loom"
local async = require("loom.busted").async
local h = require "spec.helper"

describe("loom tasks", function()
  describe("spawn", function()
    it("runs the function with its arguments and returns all results", async(function()
      local t = loom.spawn(function(x, y) return x + y, "two", nil end, 1, 2)
      local a, b, c = t:await()
      assert.are.equal(3, a)
      assert.are.equal("two", b)
      assert.is_nil(c)
    end))

    it("starts the task on a later step: the caller runs on first", async(function()
      local order = {}
      local t = loom.spawn(function() order[#order + 1] = "child" end)
      order[#order + 1] = "parent"
      loom.await(t)
      assert.are.same({ "parent", "child" }, order)
    end))

    it("runs ready tasks in the order they were spawned", async(function()
      local order = {}
      local ts = {}
      for i = 1, 5 do
        ts[i] = loom.spawn(function() order[#order + 1] = i end)
      end
      for i = 1, 5 do ts[i]:await() end
      assert.are.same({ 1, 2, 3, 4, 5 }, order)
    end))

    it("accepts a callable table", async(function()
      local callable = setmetatable({}, { __call = function(_, x) return x * 2 end })
      assert.are.equal(8, loom.spawn(callable, 4):await())
    end))

    it("raises with its name on a non-function", function()
      assert.error_matches(function() loom.spawn(42) end,
        "bad argument #1 to '[%w.]*spawn' %(function expected, got number%)")
      assert.has_error(function() loom.spawn() end)
    end)

    it("keeps running tasks spawned by a task that already returned", function()
      local done = false
      loom.run(function()
        loom.spawn(function() loom.sleep(0.01); done = true end)
      end)
      assert.is_true(done)
    end)
  end)

  describe("async", function()
    it("returns a function that spawns and returns the Task", async(function()
      local add = loom.async(function(a, b) return a + b end)
      local t = add(2, 3)
      assert.are.equal("userdata", type(t))
      local r = t:await()
      assert.are.equal(5, r)
    end))

    it("raises on a non-function", function()
      assert.has_error(function() loom.async("x") end,
        "bad argument #1 to 'loom.async' (function expected, got string)")
    end)
  end)

  describe("await", function()
    it("returns at once for a finished task", async(function()
      local t = loom.spawn(function() return "v" end)
      loom.sleep(0.01)
      assert.is_true(t:done())
      local r = loom.await(t)
      loom.await(t)
      assert.are.equal("v", r)
    end))

    it("raises the task's error unchanged (strings and tables)", async(function()
      local tbl = { reason = "x" }
      local a = loom.spawn(function() error("plain", 0) end)
      local b = loom.spawn(function() error(tbl) end)
      local _, e1 = pcall(loom.await, a)
      local _, e2 = pcall(loom.await, b)
      assert.are.equal("plain", e1)
      assert.are.equal(tbl, e2)
    end))

    it("lets several tasks await the same task", async(function()
      local t = loom.spawn(function() loom.sleep(0.01); return 7 end)
      local w1 = loom.spawn(function() return t:await() + 1 end)
      local w2 = loom.spawn(function() return t:await() + 2 end)
      local got = { w1:await(), w2:await() }
      assert.are.same({ 8, 9 }, got)
    end))

    it("raises on something that is not awaitable", async(function()
      assert.error_matches(function() loom.await(42) end,
        "bad argument #1 to '[%w.]*await' %(Task or Future expected, got number%)")
      assert.has_error(function() loom.await({}) end)
      assert.has_error(function() loom.await() end)
    end))

    it("refuses to await the running task itself", async(function()
      assert.has_error(function() loom.await(loom.current()) end,
        "loom.await: a task cannot await itself")
    end))

    it("raises outside a task", function()
      local f
      loom.run(function() f = loom.future() end)
      assert.has_error(function() loom.await(f) end,
        "loom: loom.await called outside a task (use loom.run or the loom binary)")
    end)
  end)

  describe("task state", function()
    it("reports done, result, error and cancelled", async(function()
      local ok = loom.spawn(function() return 1, 2 end)
      local bad = loom.spawn(function() error("bad", 0) end)
      assert.is_false(ok:done())
      assert.is_nil(ok:error())
      assert.has_error(function() ok:result() end, "task:result: the task is not done")
      loom.sleep(0.01)
      assert.is_true(ok:done())
      assert.is_false(ok:cancelled())
      assert.are.same({ 1, 2 }, { ok:result() })
      assert.is_nil(ok:error())
      assert.is_true(bad:done())
      assert.are.equal("bad", bad:error())
      assert.has_error(function() bad:result() end, "bad")
      assert.is_false(bad:cancelled())
    end))

    it("has a settable name, shown by tostring", async(function()
      local t = loom.spawn(function() end)
      assert.matches("^task%-%d+$", t.name)
      t.name = "fetcher"
      assert.are.equal("fetcher", t.name)
      assert.matches("fetcher", tostring(t))
      assert.has_error(function() t.name = {} end)
      assert.has_error(function() t.other = 1 end)
      t:await()
    end))

    it("calls on_done callbacks once it finishes, and at once if done", async(function()
      local seen = {}
      local t = loom.spawn(function() loom.sleep(0.01); return 5 end)
      t:on_done(function(task) seen[#seen + 1] = task:result() end)
      assert.are.same({}, seen)
      t:await()
      assert.are.same({ 5 }, seen)
      t:on_done(function() seen[#seen + 1] = "late" end)
      assert.are.same({ 5, "late" }, seen)
    end))

    it("gives a traceback of where a suspended task waits", async(function()
      local t = loom.spawn(function()
        local function waiting_here() loom.sleep(1) end
        waiting_here()
      end)
      h.settle()
      local tb = t:traceback()
      assert.matches("waiting_here", tb)
      assert.matches("sleep", tb)
      t:cancel()
    end))

    it("keeps the traceback of where a failed task raised", async(function()
      local t = loom.spawn(function()
        local function failing_here() error("traceback-boom") end
        failing_here()
      end)
      t.name = "failer"
      assert.is_false(pcall(loom.await, t))
      local tb = t:traceback()
      assert.matches("^stack traceback of task 'failer':\n", tb)
      assert.matches("in function 'error'", tb)
      assert.matches("task_spec%.lua:%d+: in %a+ 'failing_here'", tb)
      assert.are.equal(tb, t:traceback())  -- the same each time
    end))

    it("says a task that ended well or has not started has no stack", async(function()
      local done = loom.spawn(function() return 1 end)
      done:await()
      assert.are.equal("stack traceback:\n\t(finished)", done:traceback())
      local later = loom.spawn(function() end)
      assert.are.equal("stack traceback:\n\t(not started)", later:traceback())
      later:await()
    end))

    it("keeps a name through callbacks, renames and unnaming", async(function()
      local gate = loom.future()
      local t = loom.spawn(function() gate:await() return "r" end)
      local id = t.name
      assert.is_truthy(id:match("^task%-%d+$"))
      t.name = "conn 1"
      assert.are.equal("conn 1", t.name)
      t.name = "conn 2"  -- renamed while the name is its only field
      assert.are.equal("conn 2", t.name)
      local seen = {}
      t:on_done(function(x) seen[#seen + 1] = x.name end)
      assert.are.equal("conn 2", t.name)  -- kept beside the callback
      t.name = "conn 3"
      gate:set_result(true)
      assert.are.equal("r", t:await())
      assert.are.same({ "conn 3" }, seen)
      local u = loom.spawn(function() end)
      u.name = "short"
      u.name = nil
      assert.is_truthy(u.name:match("^task%-%d+$"))
      u:await()
    end))
  end)

  describe("current and tasks", function()
    it("current is the running task and nil outside", function()
      assert.is_nil(loom.current())
      loom.run(function()
        local me = loom.current()
        local t = loom.spawn(function() return loom.current() end)
        assert.are.equal(t, t:await())
        assert.are_not.equal(me, t)
      end)
    end)

    it("tasks lists every live task", async(function()
      local a = loom.spawn(function() loom.sleep(0.05) end)
      local b = loom.spawn(function() loom.sleep(0.05) end)
      local live = loom.tasks()
      local set = {}
      for _, t in ipairs(live) do set[t] = true end
      assert.is_true(set[a] and set[b] and set[loom.current()])
      assert.are.equal(3, #live)
      a:await(); b:await()
      assert.are.equal(1, #loom.tasks())
    end))
  end)

  describe("yield", function()
    it("lets every other ready task run once", async(function()
      local order = {}
      local function worker(name)
        for i = 1, 3 do
          order[#order + 1] = name .. i
          loom.yield()
        end
      end
      local a = loom.spawn(worker, "a")
      local b = loom.spawn(worker, "b")
      a:await(); b:await()
      assert.are.same({ "a1", "b1", "a2", "b2", "a3", "b3" }, order)
    end))

    it("raises outside a task", function()
      assert.has_error(function() loom.yield() end,
        "loom: loom.yield called outside a task (use loom.run or the loom binary)")
    end)
  end)
end)
