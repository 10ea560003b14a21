local loom = require "loom"
local h = require "spec.helper"
local async = require("loom.busted").async

describe("coroutines inside tasks", function()
  it("a loom call inside coroutine.wrap suspends the whole task", async(function()
    local ticks = 0
    local ticker = loom.spawn(function()
      for _ = 1, 3 do loom.sleep(0.005); ticks = ticks + 1 end
    end)
    local gen = coroutine.wrap(function()
      for i = 1, 3 do
        loom.sleep(0.01)
        coroutine.yield(i * 10)
      end
    end)
    local got = { gen(), gen(), gen() }
    ticker:await()
    assert.are.same({ 10, 20, 30 }, got)
    assert.are.equal(3, ticks)
  end))

  it("the user's own yields still go to the user's resumer", async(function()
    local log = {}
    local co = coroutine.create(function(a)
      log[#log + 1] = "got " .. a
      local b = coroutine.yield("y1")
      loom.sleep(0.001)
      log[#log + 1] = "got " .. b
      return "ret"
    end)
    local _, y = coroutine.resume(co, "a")
    log[#log + 1] = y
    local ok, v = coroutine.resume(co, "b")
    log[#log + 1] = tostring(ok) .. " " .. v
    log[#log + 1] = coroutine.status(co)
    assert.are.same({ "got a", "y1", "got b", "true ret", "dead" }, log)
  end))

  it("nests: a generator inside a generator", async(function()
    local inner = coroutine.wrap(function()
      loom.sleep(0)
      coroutine.yield("in1")
      loom.sleep(0)
      coroutine.yield("in2")
    end)
    local outer = coroutine.wrap(function()
      coroutine.yield(inner())
      loom.sleep(0)
      coroutine.yield(inner())
    end)
    local r = { outer(), outer() }
    assert.are.same({ "in1", "in2" }, r)
  end))

  it("errors in wrapped coroutines propagate with their position", async(function()
    local gen = coroutine.wrap(function() loom.sleep(0); error("gen failed") end)
    local e = select(2, pcall(gen))
    assert.matches("gen failed", e)
  end))

  it("cancellation reaches a task suspended inside a coroutine", async(function()
    local cleaned = false
    local t = loom.spawn(function()
      local gen = coroutine.wrap(function()
        local _, e = pcall(loom.sleep, 10)
        cleaned = true
        error(e, 0)
      end)
      gen()
    end)
    loom.sleep(0.01)
    t:cancel()
    pcall(loom.await, t)
    assert.is_true(t:cancelled())
    assert.is_true(cleaned)
  end))

  it("a plain coroutine.yield at the top of a task acts as loom.yield", async(function()
    local order = {}
    local a = loom.spawn(function() order[#order + 1] = "a1"; coroutine.yield(); order[#order + 1] = "a2" end)
    local b = loom.spawn(function() order[#order + 1] = "b1" end)
    a:await(); b:await()
    assert.are.same({ "a1", "b1", "a2" }, order)
  end))

  it("coroutines outside tasks behave as in plain Lua", function()
    local co = coroutine.wrap(function(x) local y = coroutine.yield(x + 1); return y * 2 end)
    assert.are.equal(2, co(1))
    assert.are.equal(10, co(5))
    local ok, e = coroutine.resume(coroutine.create(function() error("plain", 0) end))
    assert.is_false(ok)
    assert.are.equal("plain", e)
    local dead = coroutine.create(function() end)
    assert.is_true(coroutine.resume(dead))
    assert.same({ false, "cannot resume dead coroutine" }, { coroutine.resume(dead) })
  end)
end)

describe("C boundaries", function()
  -- Called inside the test's task: fn must fail; returns its error.
  local function boundary(fn)
    local ok, e = pcall(fn)
    assert.is_false(ok)
    return e
  end

  it("table.sort comparator: names the boundary and the call", async(function()
    local e = boundary(function()
      table.sort({ 3, 1, 2 }, function(a, b) loom.sleep(0.001); return a < b end)
    end)
    assert.matches("loom%.sleep", e)
    assert.matches("table%.sort", e)
  end))

  it("string.gsub callback", async(function()
    local e = boundary(function()
      string.gsub("abc", "%w", function(c) loom.yield(); return c end)
    end)
    assert.matches("loom%.yield", e)
    assert.matches("gsub", e)
  end))

  it("load reader (load returns the error as a value)", async(function()
    local f, e = load(function() loom.sleep(0.001) end)
    assert.is_nil(f)
    assert.matches("loom%.sleep cannot suspend inside 'load'", e)
  end))

  it("__tostring called by string.format", async(function()
    local obj = setmetatable({}, { __tostring = function() loom.sleep(0.001); return "x" end })
    local e = boundary(function() return string.format("%s", obj) end)
    assert.matches("format", e)
  end))

  it("the task goes on normally after such an error", async(function()
    local me = loom.current()
    local ok = pcall(table.sort, { 2, 1 }, function(a, b) loom.sleep(0.001); return a < b end)
    assert.is_false(ok)
    local t0 = loom.now()
    loom.sleep(0.01)  -- still suspends and resumes, in the same task
    assert.is_true(loom.now() - t0 >= 0.009)
    assert.are.equal(me, loom.current())
    assert.are.equal("ok", loom.spawn(function() return "ok" end):await())
  end))
end)

describe("require inside tasks", function()
  it("loads a module whose main chunk suspends", async(function()
    local dir = os.tmpname()
    os.remove(dir)
    os.execute("mkdir -p " .. h.quote(dir))
    local f = assert(io.open(dir .. "/slowmod.lua", "w"))
    f:write("local loom = require 'loom'\nloom.sleep(0.01)\nreturn { loaded_at = loom.now(), n = 0 }\n")
    f:close()
    local saved = package.path
    package.path = dir .. "/?.lua;" .. package.path
    local t1 = loom.spawn(function() return require("slowmod") end)
    local t2 = loom.spawn(function() return require("slowmod") end)
    local a, b = t1:await(), t2:await()
    package.path = saved
    package.loaded.slowmod = nil
    os.execute("rm -rf " .. h.quote(dir))
    assert.are.equal("table", type(a))
    assert.are.equal(a, b)  -- loaded once, both got the same table
  end))

  it("keeps require's messages for a missing module", async(function()
    local e = select(2, pcall(require, "no.such.module.anywhere"))
    assert.matches("module 'no.such.module.anywhere' not found:", e)
    assert.matches("no field package.preload%['no.such.module.anywhere'%]", e)
  end))

  it("still works outside tasks, returning the loader data", function()
    local m = require("spec.helper")
    assert.are.equal("table", type(m))
    assert.has_error(function() require() end)
  end)
end)
