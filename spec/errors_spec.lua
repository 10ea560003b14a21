local loom = require "loom"
local h = require "spec.helper"
local async = require("loom.busted").async

local lua_src = h.lua_src

describe("loom errors", function()
  it("cross any number of awaits unchanged", async(function()
    local tbl = setmetatable({}, { __tostring = function() return "custom" end })
    local a = loom.spawn(function() loom.sleep(0); error(tbl) end)
    local b = loom.spawn(function() return a:await() end)
    local c = loom.spawn(function() return b:await() end)
    local _, got = pcall(loom.await, c)
    assert.are.equal(tbl, got)
  end))

  it("keep the position of the original raise in strings", async(function()
    local t = loom.spawn(function() error("where am I") end)
    local got = select(2, pcall(loom.await, t))
    assert.matches("^spec/errors_spec.lua:%d+: where am I$", got)
  end))

  it("an error in the main task is raised by loom.run, unchanged", function()
    local tbl = {}
    local ok, e = pcall(loom.run, function() error(tbl) end)
    assert.is_false(ok)
    assert.are.equal(tbl, e)
  end)

  it("a failed task nobody observes is reported on stderr with its traceback", function()
    local out, err, code = lua_src([[
      local loom = require "loom"
      loom.run(function()
        local t = loom.spawn(function() loom.sleep(0); error("lost error") end)
        t.name = "forgotten"
      end)
      print("after run")
    ]])
    assert.are.equal("after run\n", out)
    assert.matches("error in task 'forgotten': [^\n]*lost error", err)
    assert.matches("stack traceback of task 'forgotten'", err)
    assert.are.equal(0, code)
  end)

  it("is reported when its task is collected, not only at the end", function()
    local _, err = lua_src([[
      local loom = require "loom"
      loom.run(function()
        loom.spawn(function() error("collected failure", 0) end)
        loom.sleep(0.01)
        collectgarbage(); collectgarbage()
        io.stderr:write("MARK\n")
        loom.sleep(0.01)
      end)
    ]])
    local report = err:find("collected failure", 1, true)
    local mark = err:find("MARK", 1, true)
    assert.truthy(report and mark and report < mark)
  end)

  it("observed failures are not reported: await, result, error, on_done", function()
    local _, err, code = lua_src([[
      local loom = require "loom"
      loom.run(function()
        local function bad() error("seen", 0) end
        local a, b, c, d = loom.spawn(bad), loom.spawn(bad), loom.spawn(bad), loom.spawn(bad)
        d:on_done(function() end)
        pcall(loom.await, a)
        loom.sleep(0.01)
        pcall(b.result, b)
        c:error()
      end)
      collectgarbage()
    ]])
    assert.are.equal("", err)
    assert.are.equal(0, code)
  end)

  it("a cancelled task is not reported", function()
    local _, err = lua_src([[
      local loom = require "loom"
      loom.run(function()
        local t = loom.spawn(function() loom.sleep(5) end)
        loom.sleep(0)
        t:cancel()
      end)
    ]])
    assert.are.equal("", err)
  end)

  it("the traceback shows the failing task and the tasks awaiting it", function()
    local _, err, code = h.run_src([[
      local function deepest() loom.sleep(0); error("bottom") end
      local w = loom.spawn(function() deepest() end)
      w.name = "worker"
      local m = loom.spawn(function() return w:await() end)
      m.name = "middle"
      m:await()
    ]])
    assert.are.equal(1, code)
    local p1 = err:find("task 'worker'", 1, true)
    local p2 = err:find("awaited by task 'middle'", 1, true)
    local p3 = err:find("awaited by task 'main'", 1, true)
    assert.truthy(p1 and p2 and p3, err)
    assert.truthy(p1 < p2 and p2 < p3, err)
    assert.matches("in %a+ 'deepest'", err)
    assert.matches("bottom", err)
  end)

  it("errors in on_done callbacks are reported, not lost", function()
    local _, err = lua_src([[
      local loom = require "loom"
      loom.run(function()
        local t = loom.spawn(function() return 1 end)
        t:on_done(function() error("callback broke") end)
        t:await()
      end)
    ]])
    assert.matches("on_done callback: .*callback broke", err)
  end)
end)
