-- Debug mode: loom.debug(true), LOOM_DEBUG=1, loom.run_with{debug = true}.
-- Its reports are loom's own warnings on stderr: slow steps, tasks still
-- pending and handles still open at exit, futures set twice, failures
-- nobody saw (with where the task was spawned), and writes to a stream
-- whose peer went away.  Off, it reports nothing of the kind.
local loom = require "loom"
local h = require "spec.helper"

-- Runs 'src' with the binary, LOOM_DEBUG set to 'debug' (nil: unset);
-- returns stdout, stderr (the messages of its loom.log records, see
-- helper.unlog), status and the script's path.
local function run(src, debug)
  local path = h.script(src)
  local env = debug and ("LOOM_DEBUG=" .. debug .. " ") or "env -u LOOM_DEBUG "
  local out, err, code = h.sh(env .. h.quote(h.loom_bin) .. " "
    .. h.quote(path))
  os.remove(path)
  return out, h.unlog(err), code, path
end

-- How many times 'needle' is in 'hay' (plain text).
local function count(hay, needle)
  local n, i = 0, 1
  while true do
    local j = hay:find(needle, i, true)
    if not j then return n end
    n, i = n + 1, j + #needle
  end
end

-- A loop that keeps the CPU for 's' seconds without suspending.
local BUSY = [[
local function busy(s)
  local t0 = os.clock()
  while os.clock() - t0 < s do end
end
]]

describe("loom.debug", function()
  it("turns debug mode on and off and returns its state", function()
    local before, slow0 = loom.debug()
    assert.is_number(slow0)
    assert.are.same({ true, slow0 }, { loom.debug(true) })
    assert.are.same({ false, slow0 }, { loom.debug(false) })
    assert.are.same({ true, 0.25 }, { loom.debug { slow = 0.25 } })
    assert.are.same({ true, 0.25 }, { loom.debug() })
    loom.debug { slow = slow0 }
    loom.debug(before)
  end)

  it("refuses a threshold that is not a duration", function()
    local before, slow0 = loom.debug()
    assert.has_error(function() loom.debug { slow = "fast" } end,
      "bad argument #1 to 'loom.debug' ('slow' must be a number of "
      .. "seconds, got string)")
    assert.has_error(function() loom.debug { slow = -1 } end,
      "bad argument #1 to 'loom.debug' ('slow' must be a number of "
      .. "seconds, got -1)")
    assert.are.same({ before, slow0 }, { loom.debug() })
  end)

  it("is on with LOOM_DEBUG=1, for the binary and for require 'loom'",
    function()
      local out = run("print(loom.debug())", "1")
      assert.are.equal("true\t0.1\n", out)
      out = run("print(loom.debug())", "0")
      assert.are.equal("false\t0.1\n", out)
      out = h.sh("LOOM_DEBUG=1 lua5.4 -e " .. h.quote(
        ("package.cpath = %q .. package.cpath; print(require 'loom'.debug())")
        :format(h.build .. "/lua/?.so;")))
      assert.are.equal("true\t0.1\n", out)
    end)

  it("run_with{debug = true} leaves the mode as it was; loom.run keeps what "
    .. "the script set", function()
      local out, err, code = h.lua_src([[
        local loom = require "loom"
        loom.debug(false)
        print(loom.run_with({ debug = true }, loom.debug), loom.debug())
        loom.run(function() loom.debug(true) end)
        print(loom.debug())
      ]])
      assert.are.equal(0, code, err)
      assert.are.equal("true\tfalse\ntrue\n", out:gsub("\t0%.1", ""))
    end)
end)

describe("debug mode: slow steps", function()
  it("warns about a step over the threshold, with the task's name and "
    .. "where it suspended", function()
      local _, err, code, path = run(BUSY .. [[
loom.debug { slow = 0.05 }
local t = loom.spawn(function()
  busy(0.08)
  loom.sleep(0)
end)
t.name = "cruncher"
t:await()
busy(0.01)  -- under the threshold
loom.sleep(0)
]])
      assert.are.equal(0, code, err)
      assert.are.equal(1, count(err, "without suspending"), err)
      assert.matches("task 'cruncher' ran for %d+ ms without "
        .. "suspending\nstack traceback:", err)
      assert.is_true(h.has(err, path .. ":8:"), err)
    end)

  it("warns about a step that ended the task", function()
    local _, err = run(BUSY .. [[
loom.debug { slow = 0.03 }
loom.spawn(function() busy(0.05) end).name = "last"
]])
    assert.matches("task 'last' ran for %d+ ms without suspending, then "
      .. "ended", err)
  end)

  it("is quiet when off", function()
    local _, err, code = run(BUSY .. [[
busy(0.15)
loom.sleep(0)
]])
    assert.are.equal(0, code)
    assert.are.equal("", err)
  end)
end)

describe("debug mode: at exit", function()
  local LEFT = [[
local srv = loom.net.listen("127.0.0.1", 0, function() end)
local _, port = srv:address()
local c = loom.net.connect("127.0.0.1", port)
local f = loom.fs.open(arg[0])
local stuck = loom.spawn(function() loom.future():await() end)
stuck.name = "stuck"
loom.sleep(0.01)
error("the main task fails, the server stays open")
]]

  it("lists the tasks still pending and the handles still open, with the "
    .. "lines that made them", function()
      local _, err, code, path = run(LEFT, "1")
      assert.are.equal(1, code)
      assert.is_true(h.has(err, "3 handles still open at exit:\n"
        .. "  server: loom.server (127.0.0.1:"), err)
      assert.is_true(h.has(err, "created at " .. path .. ":1\n"
        .. "  stream: loom.stream (127.0.0.1:"), err)
      assert.is_true(h.has(err, "created at " .. path .. ":3\n"
        .. "  file: loom.file '" .. path .. "', created at " .. path
        .. ":4"), err)
    end)

  it("lists a task nothing can wake with where it was spawned and where "
    .. "it waits", function()
      local _, err, code, path = run([[
local t = loom.spawn(function()
  local f = loom.future()
  f:await()
end)
t.name = "forgotten"
]], "1")
      assert.are.equal(0, code, err)
      assert.is_true(h.has(err, "task 'forgotten' (spawned at "
        .. path .. ":1) waits for something nothing will do: it is "
        .. "cancelled\nstack traceback:\n"), err)
      assert.is_true(h.has(err, path .. ":3: in function"), err)
    end)

  it("says nothing of the kind when off", function()
    local _, err, code = run(LEFT)
    assert.are.equal(1, code)
    assert.is_false(h.has(err, "still open"), err)
    assert.is_false(h.has(err, "nothing will do"), err)
  end)

  it("is reported at the end of loom.run_with{debug = true}", function()
    local _, err, code = h.lua_src([[
      local loom = require "loom"
      local srv
      loom.run_with({ debug = true }, function()
        srv = loom.net.listen("127.0.0.1", 0, function() end)
        loom.spawn(function() loom.future():await() end).name = "stuck"
        error("fails")
      end)
    ]])
    assert.are_not.equal(0, code)
    err = h.unlog(err)
    assert.is_true(h.has(err, "1 handle still open at exit:\n  server: "
      .. "loom.server (127.0.0.1:"), err)
    -- the run ends; the next one, not in debug mode, reports nothing
    _, err, code = h.lua_src([[
      local loom = require "loom"
      local srv
      pcall(loom.run_with, { debug = true }, function()
        srv = loom.net.listen("127.0.0.1", 0, function() end)
        error("fails")
      end)
      io.stderr:write("--\n")
      pcall(loom.run, function() error("again") end)
      srv:close()
    ]])
    assert.are.equal(0, code, err)
    assert.matches("still open at exit:.*\n%-%-\n$", err)
  end)
end)

describe("debug mode: a future set twice", function()
  local SRC = [[
local f = loom.future()
f:set_result(1)
local ok, e = pcall(function() f:set_error("late") end)
print(e)
local g = loom.future()
g:cancel()
ok, e = pcall(function() g:set_result(2) end)
print(e)
]]

  it("raises an error that names both places", function()
    local out, err, code, path = run(SRC, "1")
    assert.are.equal(0, code, err)
    assert.are.equal(path .. ":3: future:set_error: the future is already "
      .. "done (future:set_result set it at " .. path .. ":2)\n"
      .. path .. ":7: future:set_result: the future is already done "
      .. "(future:cancel set it at " .. path .. ":6)\n", out)
  end)

  it("raises the plain error when off", function()
    local out, _, code, path = run(SRC)
    assert.are.equal(0, code)
    assert.are.equal(path .. ":3: future:set_error: the future is already "
      .. "done\n" .. path .. ":7: future:set_result: the future is already "
      .. "done\n", out)
  end)
end)

describe("debug mode: a failure nobody saw", function()
  local SRC = [[
local t = loom.spawn(function()
  error("lost")
end)
t.name = "orphan"
]]

  it("says where its task was spawned", function()
    local _, err, code, path = run(SRC, "1")
    assert.are.equal(1, code)
    assert.is_true(h.has(err, "error in task 'orphan' (spawned at "
      .. path .. ":1): " .. path .. ":2: lost\n"), err)
  end)

  it("is reported as before when off", function()
    local _, err, code, path = run(SRC)
    assert.are.equal(1, code)
    assert.is_true(h.has(err, "error in task 'orphan': " .. path
      .. ":2: lost\n"), err)
  end)
end)

describe("debug mode: writes after the peer went away", function()
  -- Two clients connect and go away at once; each handler then writes
  -- 1,000 times without looking at what write returns.
  local SRC = [[
local done, n = loom.future(), 0
local srv
srv = loom.net.listen("127.0.0.1", 0, function(s)
  loom.sleep(0.05)  -- the client has gone
  for _ = 1, 1000 do s:write("data\n") end
  s:close()
  n = n + 1
  if n == 2 then done:set_result() end
end)
local _, port = srv:address()
for _ = 1, 2 do loom.net.connect("127.0.0.1", port):close() end
done:await()
srv:close()
]]

  it("are reported once per stream, with where the write is", function()
    local _, err, code, path = run(SRC, "1")
    assert.are.equal(0, code, err)
    assert.are.equal(2, count(err, "written 5 times after its peer went "
      .. "away"), err)
    assert.matches("stream to 127%.0%.0%.1:%d+ written 5 times after "
      .. "its peer went away %(E[A-Z]+%): nobody looks at what stream:write "
      .. "returns\nstack traceback:\n\t[^\n]*:5: in function", err)
    assert.is_true(h.has(err, path .. ":5:"), err)
  end)

  it("are not reported when off", function()
    local _, err, code = run(SRC)
    assert.are.equal(0, code)
    assert.are.equal("", err)
  end)

  it("are not reported when the handler stops at the first failure",
    function()
      local _, err, code = run([[
local done = loom.future()
local srv
srv = loom.net.listen("127.0.0.1", 0, function(s)
  loom.sleep(0.05)
  while s:write("data\n") do end
  s:close()
  done:set_result()
end)
local _, port = srv:address()
loom.net.connect("127.0.0.1", port):close()
done:await()
srv:close()
]], "1")
      assert.are.equal(0, code, err)
      assert.are.equal("", err)
    end)
end)
