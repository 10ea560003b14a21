local loom = require "loom"
local h = require "spec.helper"
local async = require("loom.busted").async
local until_cancelled, failing = h.until_cancelled, h.failing

local V = h.VIRTUAL

local near, since, assert_cancelled = h.near, h.since, h.assert_cancelled

describe("loom.group", function()
  it("returns when fn and every child are done", async(function()
    local log = {}
    local t0 = loom.now()
    local r = table.pack(loom.group(function(g)
      g:spawn(function(x) loom.sleep(0.3); log[#log + 1] = x end, "a")
      g:spawn(function(x) loom.sleep(0.1); log[#log + 1] = x end, "b")
      loom.sleep(0.2)
      log[#log + 1] = "body"
    end))
    assert.are.same({ "b", "body", "a" }, log)
    near(0.3, since(t0))
    assert.are.equal(0, r.n)
  end, V))

  it("waits for children spawned by children through g", async(function()
    local log, children = {}, {}
    local t0 = loom.now()
    loom.group(function(g)
      children[1] = g:spawn(function()
        loom.sleep(0.1)
        children[2] = g:spawn(function()
          loom.sleep(0.2)
          children[3] = g:spawn(function()
            loom.sleep(0.3)
            log[#log + 1] = "grandgrandchild"
          end)
          log[#log + 1] = "grandchild"
        end)
        log[#log + 1] = "child"
      end)
    end)
    assert.are.same({ "child", "grandchild", "grandgrandchild" }, log)
    near(0.6, since(t0))
    assert.are.equal(3, #children)
    for _, c in ipairs(children) do
      assert.is_true(c:done())
      assert.is_false(c:cancelled())
    end
    assert.are.equal(1, #loom.tasks())
  end, V))

  it("lets no child outlive it, and g:spawn returns the child Task", async(function()
    local kids = {}
    loom.group(function(g)
      for i = 1, 5 do
        kids[i] = g:spawn(function() loom.sleep(i / 10); return i * 10 end)
      end
      assert.are.equal("userdata", type(kids[1]))
      assert.is_false(kids[5]:done())
    end)
    for i = 1, 5 do
      assert.is_true(kids[i]:done())
      assert.are.equal(i * 10, kids[i]:result())
    end
    assert.are.equal(1, #loom.tasks())
  end, V))

  it("runs fn in the calling task and accepts a callable table", async(function()
    local me = loom.current()
    local inside
    loom.group(setmetatable({}, { __call = function(_, g)
      inside = loom.current()
      assert.are.equal("loom.group", getmetatable(g).__name)
    end }))
    assert.are.equal(me, inside)
  end))

  it("cancels the siblings and the body at the first child failure, and raises it when all are done", async(function()
    local log = {}
    local err = { "child failed" }
    local t0 = loom.now()
    local siblings = {}
    local body_error
    local ok, e = pcall(loom.group, function(g)
      siblings[1] = g:spawn(until_cancelled(log, "s1", 0.5))
      siblings[2] = g:spawn(until_cancelled(log, "s2", 0.2))
      g:spawn(failing(0.1, err))
      local _, e2 = pcall(loom.sleep, 10)
      body_error = e2
      log[#log + 1] = "body cleanup"
      error(e2, 0)
    end)
    log[#log + 1] = "after"
    assert.is_false(ok)
    assert.are.equal(err, e)
    assert.are.same({ "child failed" }, e)
    assert.is_nil(e.errors)
    assert_cancelled(body_error)
    assert.are.same({ "body cleanup", "s2", "s1", "after" }, log)
    assert.is_true(siblings[1]:cancelled())
    assert.is_true(siblings[2]:cancelled())
    near(0.6, since(t0))
    assert.are.equal(1, #loom.tasks())
  end, V))

  it("the body does not continue past its suspension once a child failed", async(function()
    local log = {}
    local ok, e = pcall(loom.group, function(g)
      g:spawn(failing(0.1, "boom"))
      log[#log + 1] = "before"
      loom.sleep(0.2)
      log[#log + 1] = "past the sleep"
      loom.sleep(1)
      log[#log + 1] = "past the second sleep"
    end)
    assert.is_false(ok)
    assert.are.equal("boom", e)
    assert.are.same({ "before" }, log)
  end, V))

  it("the body is cancelled even when its wake-up and the failure come at once", async(function()
    -- the child's timer and the body's fall due at the same moment, the
    -- child's first: the body must not resume as if nothing happened
    local log = {}
    local ok, e = pcall(loom.group, function(g)
      g:spawn(failing(0.1, "same moment"))
      loom.sleep(0)  -- the child starts its sleep first
      loom.sleep(0.1)
      log[#log + 1] = "past the sleep"
    end)
    assert.is_false(ok)
    assert.are.equal("same moment", e)
    assert.are.same({}, log)
    -- and no cancellation is left pending on the task that ran the group
    loom.sleep(0.01)
    assert.is_false(loom.current():cancelled())
  end, V))

  it("leaves no cancellation behind in the task that ran it", async(function()
    local ok, e = pcall(loom.group, function(g)
      g:spawn(failing(0.1, "child error"))
      pcall(loom.sleep, 1)   -- the body catches its cancellation and returns
    end)
    assert.is_false(ok)
    assert.are.equal("child error", e)
    local t0 = loom.now()
    loom.sleep(0.5)
    near(0.5, since(t0))
    assert.are.equal(42, loom.spawn(function() return 42 end):await())
  end, V))

  it("with several failures raises the first, all of them in err.errors", async(function()
    local e1, e2, e3 = { "first" }, { "second" }, { "third" }
    local ok, e = pcall(loom.group, function(g)
      g:spawn(function()
        pcall(loom.sleep, 10)
        error(e2, 0)        -- fails when cancelled
      end)
      g:spawn(failing(0.1, e1))
      g:spawn(function()
        pcall(loom.sleep, 10)
        loom.sleep(0.1)
        error(e3, 0)        -- fails later, in its cleanup
      end)
    end)
    assert.is_false(ok)
    assert.are.equal(e1, e)
    assert.is_table(e.errors)
    assert.are.equal(3, #e.errors)
    assert.are.equal(e1, e.errors[1])
    assert.are.equal(e2, e.errors[2])
    assert.are.equal(e3, e.errors[3])
  end, V))

  it("an error in a group child while another child is in cleanup", async(function()
    local log = {}
    local ea, eb = { "A" }, { "B" }
    local t0 = loom.now()
    local b
    local ok, e = pcall(loom.group, function(g)
      g:spawn(failing(0.1, ea))
      b = g:spawn(function()
        local _, c = pcall(loom.sleep, 10)
        log[#log + 1] = "B caught " .. tostring(c)
        loom.sleep(0.5)        -- cleanup that takes a while
        log[#log + 1] = "B cleanup done"
        error(eb, 0)
      end)
    end)
    assert.is_false(ok)
    near(0.6, since(t0))
    assert.are.equal(ea, e)
    assert.are.same({ ea, eb }, e.errors)
    assert.are.equal(ea, e.errors[1])
    assert.are.equal(eb, e.errors[2])
    assert.matches("^B caught loom.Cancelled", log[1])
    assert.are.equal("B cleanup done", log[2])
    assert.is_true(b:done())
    assert.are.equal(eb, b:error())
  end, V))

  it("fn failing cancels the children and its error is raised", async(function()
    local log = {}
    local err = { "body failed" }
    local t0 = loom.now()
    local kids = {}
    local ok, e = pcall(loom.group, function(g)
      kids[1] = g:spawn(until_cancelled(log, "k1", 0.3))
      kids[2] = g:spawn(until_cancelled(log, "k2"))
      loom.sleep(0.1)
      error(err, 0)
    end)
    assert.is_false(ok)
    assert.are.equal(err, e)
    assert.are.same({ "k2", "k1" }, log)
    assert.is_true(kids[1]:cancelled())
    assert.is_true(kids[2]:cancelled())
    near(0.4, since(t0))
  end, V))

  it("fn failing first: its error is raised even if a child then fails in cleanup", async(function()
    local body_err, child_err = { "body" }, { "child" }
    local ok, e = pcall(loom.group, function(g)
      g:spawn(function()
        pcall(loom.sleep, 10)
        loom.sleep(0.1)
        error(child_err, 0)
      end)
      loom.sleep(0.1)
      error(body_err, 0)
    end)
    assert.is_false(ok)
    assert.are.equal(body_err, e)
    assert.are.same({ body_err, child_err }, e.errors)
  end, V))

  it("fn failing at once, before any child started", async(function()
    local ran = false
    local ok, e = pcall(loom.group, function(g)
      g:spawn(function() ran = true end)
      error("straight away", 0)
    end)
    assert.is_false(ok)
    assert.are.equal("straight away", e)
    assert.is_false(ran)
  end))

  it("cancelling the task running it cancels the children and waits for their cleanup", async(function()
    local log = {}
    local kids = {}
    local t0 = loom.now()
    local runner = loom.spawn(function()
      loom.group(function(g)
        kids[1] = g:spawn(until_cancelled(log, "k1", 0.5))
        kids[2] = g:spawn(until_cancelled(log, "k2", 0.2))
        loom.sleep(100)
      end)
      log[#log + 1] = "runner went on"
    end)
    runner:on_done(function() log[#log + 1] = "runner done" end)
    loom.sleep(0.1)
    assert.is_true(runner:cancel("stop the group"))
    local ok, e = pcall(loom.await, runner)
    assert.is_false(ok)
    assert_cancelled(e)
    assert.are.equal("stop the group", e.message)
    assert.is_true(runner:cancelled())
    assert.are.same({ "k2", "k1", "runner done" }, log)
    assert.is_true(kids[1]:cancelled())
    assert.is_true(kids[2]:cancelled())
    near(0.6, since(t0))
  end, V))

  it("cancelling the task while the group waits for its children after fn returned", async(function()
    local log = {}
    local t0 = loom.now()
    local runner = loom.spawn(function()
      loom.group(function(g)
        g:spawn(until_cancelled(log, "k", 0.3))
        log[#log + 1] = "body returned"
      end)
      log[#log + 1] = "runner went on"
    end)
    runner:on_done(function() log[#log + 1] = "runner done" end)
    loom.sleep(0.1)
    runner:cancel()
    local ok, e = pcall(loom.await, runner)
    assert.is_false(ok)
    assert_cancelled(e)
    assert.are.same({ "body returned", "k", "runner done" }, log)
    near(0.4, since(t0))
  end, V))

  it("g:spawn after the group finished raises", async(function()
    local saved
    loom.group(function(g) saved = g end)
    assert.has_error(function() saved:spawn(function() end) end,
      "loom.group: spawn on a group that has finished")
    local failed
    pcall(loom.group, function(g)
      failed = g
      g:spawn(failing(0.01, "x"))
    end)
    assert.has_error(function() failed:spawn(function() end) end,
      "loom.group: spawn on a group that has finished")
    assert.are.equal(1, #loom.tasks())
  end, V))

  it("children spawned while it is failing are cancelled before they run", async(function()
    local ran = false
    local late
    local ok, e = pcall(loom.group, function(g)
      g:spawn(function()
        loom.sleep(0.1)
        error("fail", 0)
      end)
      g:spawn(function()
        local _, c = pcall(loom.sleep, 10)
        late = g:spawn(function() ran = true end)
        error(c, 0)
      end)
    end)
    assert.is_false(ok)
    assert.are.equal("fail", e)
    assert.is_false(ran)
    assert.is_true(late:cancelled())
  end, V))

  it("raises on bad input", async(function()
    assert.has_error(function() loom.group(42) end,
      "bad argument #1 to 'loom.group' (function expected, got number)")
    assert.has_error(function() loom.group() end,
      "bad argument #1 to 'loom.group' (function expected, got nil)")
    assert.has_error(function() loom.group({}) end,
      "bad argument #1 to 'loom.group' (function expected, got table)")
    local ok, e = pcall(loom.group, function(g)
      assert.has_error(function() g.spawn(nil, function() end) end,
        "bad argument #1 to 'group:spawn' (loom.group expected, got nil)")
      assert.has_error(function() g.spawn({}, function() end) end,
        "bad argument #1 to 'group:spawn' (loom.group expected, got table)")
      assert.error_matches(function() g:spawn(42) end,
        "bad argument #1 to '[%w.:]*spawn' %(function expected, got number%)")
      assert.has_error(function() g:spawn() end)
      return "fine"
    end)
    assert.is_true(ok, tostring(e))
  end))

  it("raises outside a task", function()
    assert.has_error(function() loom.group(function() end) end,
      "loom: loom.group called outside a task (use loom.run or the loom binary)")
  end)

  describe("reporting", function()
    it("a string error with several failures: the others are reported as unobserved", function()
      local out, err, code = h.run_src([[
        local ok, e = pcall(loom.group, function(g)
          g:spawn(function() loom.sleep(0.01); error("first failure", 0) end)
          local t = g:spawn(function()
            pcall(loom.sleep, 10)
            error("second failure", 0)
          end)
          t.name = "second"
        end)
        print(ok, e)
      ]])
      assert.are.equal("false\tfirst failure\n", out)
      assert.matches("error in task 'second': [^\n]*second failure", err)
      assert.is_nil(err:find("first failure", 1, true))
      assert.are.equal(1, code)
    end)

    it("table errors: the others are carried in err.errors, nothing is reported", function()
      local out, err, code = h.run_src([[
        local ok, e = pcall(loom.group, function(g)
          g:spawn(function() loom.sleep(0.01); error({ msg = "first" }) end)
          g:spawn(function()
            pcall(loom.sleep, 10)
            error({ msg = "second" })
          end)
        end)
        print(e.msg, #e.errors, e.errors[1].msg, e.errors[2].msg)
      ]])
      assert.are.equal("first\t2\tfirst\tsecond\n", out)
      assert.are.equal("", err)
      assert.are.equal(0, code)
    end)

    it("an uncaught group error is reported with exit status 1", function()
      local _, err, code = h.run_src([[
        loom.group(function(g)
          g:spawn(function() loom.sleep(0.01); error("group child broke", 0) end)
        end)
      ]])
      assert.matches("group child broke", err)
      assert.are.equal(1, code)
    end)
  end)
end)
