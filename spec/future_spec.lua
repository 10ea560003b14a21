local loom = require "loom"
local async = require("loom.busted").async

describe("loom futures", function()
  it("await suspends until set_result, then returns all the values", async(function()
    local f = loom.future()
    loom.spawn(function() loom.sleep(0.01); f:set_result(1, nil, "three") end)
    assert.is_false(f:done())
    local a, b, c = f:await()
    assert.are.equal(1, a)
    assert.is_nil(b)
    assert.are.equal("three", c)
  end))

  it("wakes every waiter, in the order they started waiting", async(function()
    local order = {}
    local f = loom.future()
    local ws = {}
    for i = 1, 3 do
      ws[i] = loom.spawn(function() f:await(); order[#order + 1] = i end)
    end
    loom.sleep(0.01)
    f:set_result()
    for i = 1, 3 do ws[i]:await() end
    assert.are.same({ 1, 2, 3 }, order)
  end))

  it("set_error makes await raise the same value", async(function()
    local err = { code = "E" }
    local f = loom.future()
    f:set_error(err)
    local ok, got = pcall(loom.await, f)
    assert.is_false(ok)
    assert.are.equal(err, got)
  end))

  it("result and error read a done future without suspending", async(function()
    local f = loom.future()
    assert.has_error(function() f:result() end, "future:result: the future is not done")
    assert.is_nil(f:error())
    f:set_result("v", 2)
    assert.are.same({ "v", 2 }, { f:result() })
    assert.is_nil(f:error())
    local g = loom.future()
    g:set_error("bad")
    assert.are.equal("bad", g:error())
    assert.has_error(function() g:result() end, "bad")
  end))

  it("raises when set twice, either way", function()
    local f = loom.future()
    f:set_result(1)
    assert.has_error(function() f:set_result(2) end,
      "future:set_result: the future is already done")
    assert.has_error(function() f:set_error("x") end,
      "future:set_error: the future is already done")
    assert.are.equal(1, f:result())
  end)

  it("cancel completes it as cancelled and wakes waiters with loom.Cancelled", async(function()
    local f = loom.future()
    local w = loom.spawn(function() return pcall(loom.await, f) end)
    loom.sleep(0.01)
    assert.is_true(f:cancel())
    assert.is_false(f:cancel())
    local _, e = w:await()
    local cancelled = f:cancelled()
    assert.is_true(loom.is_cancelled(e))
    assert.are.equal("ECANCELED", e.code)
    assert.is_true(cancelled)
  end))

  it("cancel of a done future returns false and changes nothing", function()
    local f = loom.future()
    f:set_result(5)
    assert.is_false(f:cancel())
    assert.is_false(f:cancelled())
    assert.are.equal(5, f:result())
  end)

  it("on_done calls back once set, and at once when already done", function()
    local seen = {}
    local f = loom.future()
    f:on_done(function(fut) seen[#seen + 1] = fut:result() end)
    assert.are.same({}, seen)
    f:set_result("x")
    assert.are.same({ "x" }, seen)
    f:on_done(function() seen[#seen + 1] = "again" end)
    assert.are.same({ "x", "again" }, seen)
    assert.has_error(function() f:on_done(42) end)
  end)

  it("can be set from outside any task and awaited in one", function()
    local f = loom.future()
    f:set_result("early")
    assert.are.equal("early", loom.run(function() return f:await() end))
  end)

  it("methods check their receiver", function()
    local f = loom.future()
    assert.has_error(function() f.set_result({}) end)
    assert.has_error(function() f.done(42) end)
  end)
end)
