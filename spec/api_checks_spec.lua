-- The checks at loom's Lua-side entry points: argument errors name the
-- function as the user calls it and the user's line, suspending calls
-- raise outside a task whether or not they would wait, and the
-- submodules load on their own in a stock lua5.4.
local loom = require "loom"
local h = require "spec.helper"
local async = require("loom.busted").async

local FILE = "spec/api_checks_spec.lua"
local NAN = 0 / 0  -- printf spells this one "-nan" on common platforms

-- Calls f, which must raise exactly 'msg' from line 'at' of this file
-- (by default, the line where f is written).
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
