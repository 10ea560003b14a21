-- The checks at loom's Lua-side entry points: argument errors name the
-- function as the user calls it and the user's line, suspending calls
-- raise outside a task whether or not they would wait, and the
-- submodules load on their own in a stock lua5.4.
local loom = require "loom"
local h = require "spec.helper"
local async = require("loom.busted").async

local FILE = "spec/api_checks_spec.lua"
local NAN = 0 / 0  -- printf spells this one "-nan" on common platforms

local raises, outside = h.raiser(FILE), h.outside

describe("the combinators", function()
  it("loom.as_completed's iterator raises outside a task, even over "
    .. "finished items", function()
    local f = loom.future()
    f:set_result(1)
    local next_done = loom.as_completed { f }
    raises(outside("loom.as_completed"), function() next_done() end)
  end)

  it("name the caller's line in argument errors", async(function()
    raises("bad argument #1 to 'loom.wait_for' (Task or Future "
      .. "expected, got number)", function() loom.wait_for(42, 1) end)
    raises("bad argument #1 to 'loom.every' (interval must be "
      .. "positive)", function() loom.every(0, print) end)
    raises("bad argument #1 to 'loom.race' (nothing to race)",
      function() loom.race() end)
    raises("bad argument #2 to 'loom.wait' (table expected, got "
      .. "number)", function() loom.wait({}, 5) end)
    raises("bad argument #1 to 'loom.as_completed' (table "
      .. "expected, got boolean)", function() loom.as_completed(true) end)
    raises("bad argument #1 to 'loom.group' (function expected, "
      .. "got number)", function() loom.group(42) end)
    raises("bad argument #1 to 'signal.wait' (signal name "
      .. "expected)", function() require("loom.signal").wait() end)
  end))

  it("name the caller's line when loom's own functions call them",
    async(function()
    raises("bad argument #1 to 'loom.race' (nothing to race)",
      function() loom.timeout(1, loom.race) end)
    raises("bad argument #1 to 'loom.wait' (table expected, got number)",
      function() loom.timeout(1, loom.wait, 42) end)
    raises("bad argument #1 to 'loom.every' (interval must be positive)",
      function() loom.timeout(1, loom.every, 0, print) end)
  end))
end)

describe("group:spawn", function()
  it("is named so and counts from its first argument", async(function()
    loom.group(function(g)
      raises("bad argument #1 to 'group:spawn' (loom.group "
        .. "expected, got nil)", function() g.spawn(nil, print) end)
      raises("bad argument #1 to 'group:spawn' (function "
        .. "expected, got number)", function() g:spawn(42) end)
    end)
  end))
end)

describe("net.connect", function()
  it("outside a task names itself, not the resolver", function()
    local net = require "loom.net"
    raises(outside("net.connect"),
      function() net.connect("localhost", 1) end)
  end)
end)

describe("values in messages", function()
  it("print a NaN as nan, whatever its sign bit", async(function()
    for _, v in ipairs { NAN, -NAN } do
      raises("bad argument #1 to 'loom.timeout' (duration must be a "
        .. "non-negative number, got nan)",
        function() loom.timeout(v, print) end)
      raises("bad argument #1 to 'loom.later' (duration must be a "
        .. "non-negative number, got nan)",
        function() loom.later(v, print) end)
      raises("bad argument #2 to 'loom.wait' (invalid return_when "
        .. "'nan': 'all', 'first' or 'first_error')",
        function() loom.wait({}, { return_when = v }) end)
    end
  end))
end)

describe("lock, event, condition and semaphore", function()
  it("raise outside a task even when they would not wait", function()
    local l, e, s = loom.lock(), loom.event(), loom.semaphore(1)
    local c = loom.condition()
    e:set()
    raises(outside("lock:acquire"), function() l:acquire() end)
    raises(outside("lock:hold"), function() l:hold() end)
    raises(outside("event:wait"), function() e:wait() end)
    raises(outside("semaphore:acquire"), function() s:acquire() end)
    raises(outside("semaphore:hold"), function() s:hold() end)
    raises(outside("condition:wait"), function() c:wait() end)
    raises(outside("condition:hold"), function() c:hold() end)
    raises(outside("condition:wait_for"),
      function() c:wait_for(function() return true end) end)
    -- nothing was taken
    assert.is_false(l:locked())
    assert.are.equal(1, s:available())
    assert.is_false(c.lock:locked())
  end)

  it("work inside a task", async(function()
    local l, s, e = loom.lock(), loom.semaphore(1), loom.event()
    assert.is_true(l:acquire())
    assert.is_true(l:locked())
    l:release()
    do local _ <close> = s:hold() end
    assert.are.equal(1, s:available())
    e:set()
    assert.is_true(e:wait())
  end))

  it("name their methods as the user calls them", function()
    local l, e, s, c = loom.lock(), loom.event(), loom.semaphore(1),
      loom.condition()
    raises("bad argument #1 to 'lock:acquire' (loom.lock expected, got "
      .. "number)", function() l.acquire(42) end)
    raises("bad argument #1 to 'lock:release' (loom.lock expected, got "
      .. "table)", function() l.release(s) end)
    raises("bad argument #1 to 'event:wait' (loom.event expected, got "
      .. "nil)", function() e.wait() end)
    raises("bad argument #1 to 'semaphore:available' (loom.semaphore "
      .. "expected, got table)", function() s.available(l) end)
    raises("bad argument #1 to 'condition:notify' (loom.condition "
      .. "expected, got string)", function() c.notify("x") end)
  end)

  it("check condition:notify's count and wait_for's predicate",
    async(function()
    local c = loom.condition()
    local _ <close> = c:hold()
    raises("bad argument #1 to 'condition:notify' (non-negative "
      .. "integer expected, got -1)", function() c:notify(-1) end)
    raises("bad argument #1 to 'condition:notify' (non-negative "
      .. "integer expected, got string)", function() c:notify("two") end)
    raises("bad argument #1 to 'condition:wait_for' (function "
      .. "expected, got nil)", function() c:wait_for() end)
  end))

  it("name the user's function when a guard's release fails", async(function()
    -- the guard closes at the function's end: the error names that line
    local l = loom.lock()
    local function twice()
      local _ <close> = l:hold()
      l:release()
    end
    raises("loom.lock: release of a lock that is not locked", twice,
      debug.getinfo(twice, "S").lastlinedefined)
    assert.is_false(l:locked())
    local s = loom.semaphore(1, { bounded = true })
    local function over()
      local _ <close> = s:hold()
      s:release()
    end
    raises("loom.semaphore: released more times than acquired", over,
      debug.getinfo(over, "S").lastlinedefined)
    assert.are.equal(1, s:available())
  end))

  it("condition:wait_for without the lock names the user's line",
    async(function()
    local c = loom.condition()
    raises("loom.condition: wait without holding its lock",
      function() c:wait_for(function() return false end) end)
  end))

  it("loom.semaphore refuses counts with no exact integer value", function()
    local function refused(v, shown)
      raises("bad argument #1 to 'loom.semaphore' (non-negative integer "
        .. "expected, got " .. shown .. ")", function() loom.semaphore(v) end)
    end
    refused(1e300, "1e+300")
    refused(math.huge, "inf")
    refused(NAN, "nan")
    refused(1.5, "1.5")
    refused(-1, "-1")
    refused("2", "string")
    raises("bad argument #2 to 'loom.semaphore' (table expected, got "
      .. "string)", function() loom.semaphore(1, "x") end)
  end)

  it("loom.semaphore takes a float with an integer value as that integer",
    function()
    local s = loom.semaphore(2.0)
    assert.are.equal("loom.semaphore (2 of 2 free)", tostring(s))
    assert.are.equal("integer", math.type(s:available()))
    assert.are.equal("loom.semaphore (9007199254740992 of 9007199254740992 "
      .. "free)", tostring(loom.semaphore(2.0 ^ 53)))
  end)
end)

describe("loom.queue", function()
  it("put, get, join and the iterator raise outside a task", function()
    local q = loom.queue()
    raises(outside("queue:put"), function() q:put(1) end)
    assert.are.equal(0, q:size())
    q:put_nowait("x")
    raises(outside("queue:get"), function() q:get() end)
    assert.are.equal(1, q:size())
    q:get_nowait()
    q:task_done()
    raises(outside("queue:join"), function() q:join() end)
    q:put_nowait("y")
    local next_item = q:iter()
    raises(outside("queue:iter"), function() next_item() end)
    assert.are.equal("y", q:get_nowait())
  end)

  it("put, get and join work inside a task", async(function()
    local q = loom.queue()
    assert.is_true(q:put(1))
    assert.are.equal(1, q:get())
    q:task_done()
    q:join()
    assert.are.equal(0, q:size())
  end))

  it("names its methods as the user calls them", function()
    local q = loom.queue()
    raises("bad argument #1 to 'queue:get_nowait' (loom.queue expected, "
      .. "got table)", function() q.get_nowait({}) end)
    raises("bad argument #1 to 'queue:size' (loom.queue expected, got "
      .. "number)", function() q.size(1) end)
    raises("bad argument #1 to 'queue:put' (loom.queue expected, got "
      .. "nil)", function() q.put(nil) end)
  end)

  it("refuses a NaN priority at the call and keeps its order", async(function()
    local q = loom.queue { order = "priority" }
    q:put("two", 2)
    q:put("one", 1)
    raises("bad argument #2 to 'queue:put' (priority must not be nan)",
      function() q:put("bad", NAN) end)
    raises("bad argument #2 to 'queue:put_nowait' (priority must not be "
      .. "nan)", function() q:put_nowait("bad", -NAN) end)
    raises("bad argument #2 to 'queue:put' (number expected, got string)",
      function() q:put("bad", "high") end)
    q:put("three", 3)
    q:put("zero", 0)
    assert.are.equal(4, q:size())
    local got = {}
    while not q:empty() do got[#got + 1] = q:get() end
    assert.are.same({ "zero", "one", "two", "three" }, got)
  end))

  it("takes infinite priorities", async(function()
    local q = loom.queue { order = "priority" }
    q:put("last", math.huge)
    q:put("first", -math.huge)
    q:put("middle", 0)
    assert.are.same({ "first", "middle", "last" },
      { q:get(), q:get(), q:get() })
  end))
end)

-- Runs 'src' in a stock lua5.4 that finds the module under test but has
-- not loaded it; returns stdout, stderr and the exit status.
local function stock_lua(src)
  local path = h.script(src)
  local out, err, code = h.sh(("LUA_CPATH=%s lua5.4 %s")
    :format(h.quote(h.build .. "/lua/?.so;;"), h.quote(path)))
  os.remove(path)
  return out, err, code
end


describe("the submodules", function()
  for _, name in ipairs { "net", "fs", "process", "signal" } do
    it("loom." .. name .. " loads on its own in a stock lua5.4", function()
      local out, err, code = stock_lua(([[
        local m = require "loom.%s"
        print(type(m), package.loaded.loom.%s == m,
              package.loaded["loom.%s"] == m, require "loom.%s" == m)
      ]]):format(name, name, name, name))
      assert.are.equal("", err)
      assert.are.equal(0, code)
      assert.are.equal("table\ttrue\ttrue\ttrue\n", out)
    end)
  end

  it("loom.busted loads on its own in a stock lua5.4", function()
    local out, err, code = stock_lua([[
      local b = require "loom.busted"
      print(type(b.async), package.loaded.loom ~= nil,
            require "loom.busted" == b)
    ]])
    assert.are.equal("", err)
    assert.are.equal(0, code)
    assert.are.equal("function\ttrue\ttrue\n", out)
  end)

  it("a submodule first, then loom, gives one loom", function()
    local out, err, code = stock_lua([[
      local fs = require "loom.fs"
      local loom = require "loom"
      print(loom.fs == fs, loom.run(function() return loom.sleep(0) end))
    ]])
    assert.are.equal("", err)
    assert.are.equal(0, code)
    assert.are.equal("true\n", out)
  end)

  it("no public name leads to the private core", function()
    local out, err, code = stock_lua([[
      local loom = require "loom"
      local private = {}
      for k in pairs(loom) do
        if type(k) == "string" and k:sub(1, 1) == "_" then
          private[#private + 1] = k
        end
      end
      local http = require "loom.http"
      print(#private, loom._core, http._core, package.loaded["loom.core"],
            type(debug.getregistry()["loom.core"].alarm))
    ]])
    assert.are.equal("", err)
    assert.are.equal(0, code)
    assert.are.equal("0\tnil\tnil\tnil\tfunction\n", out)
  end)
end)

describe("the C entry points of this family", function()
  it("name loom.queue, loom.run and loom.run_with as called", function()
    raises("bad argument #1 to 'loom.queue' (table expected, got number)",
      function() loom.queue(1) end)
    raises("bad argument #1 to 'loom.queue' (maxsize must be a "
      .. "non-negative integer)", function() loom.queue { maxsize = -1 } end)
    raises("bad argument #1 to 'loom.queue' (invalid order 'random' "
      .. "('fifo', 'lifo' or 'priority'))",
      function() loom.queue { order = "random" } end)
    raises("bad argument #1 to 'loom.run' (function expected, got number)",
      function() loom.run(1) end)
    raises("bad argument #1 to 'loom.run_with' (table expected, got nil)",
      function() loom.run_with(nil, print) end)
    raises("bad argument #2 to 'loom.run_with' (function expected, got "
      .. "string)", function() loom.run_with({}, "main") end)
  end)
end)
