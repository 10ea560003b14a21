--[[ Running out of memory: the task that ran out fails with Lua's memory
  error, whoever awaits it gets that error, and the host and the other
  tasks go on; nothing aborts.  Each case is a loom binary under
  'ulimit -v', which the sanitizer runtime cannot live with: those runs
  check it in the plain build only. ]]
local h = require "spec.helper"

local LIMIT_KIB = 300000  -- address space for one run

-- Runs 'src' with the binary in at most LIMIT_KIB of address space.
local function run_capped(src)
  local path = h.script(src)
  local out, err, code = h.sh(("ulimit -v %d; exec %s %s"):format(
    LIMIT_KIB, h.quote(h.loom_bin), h.quote(path)))
  os.remove(path)
  return out, err, code
end

-- A task body that fills a table until memory runs out, in big pieces
-- first (quick), then in small ones: when it fails, nothing is left.
local FILL = [[
local function fill()
  local big = {}
  pcall(function()
    for i = 1, math.huge do big[#big + 1] = ("x"):rep(1000000) .. i end
  end)
  for i = 1, math.huge do big[#big + 1] = ("x"):rep(40) .. i end
end
]]

local describe_capped = os.getenv("LD_PRELOAD") and function(name)
  describe(name, function()
    pending("checked in the plain run (not under the sanitizer runtime)")
  end)
end or describe

describe_capped("out of memory", function()
  it("a task that runs out fails with the memory error; its awaiter gets it and the rest go on", function()
    local out, err, code = run_capped(FILL .. [[
local t = loom.spawn(fill)
local ok, e = pcall(t.await, t)
print("awaited", ok, e)
collectgarbage()
local other = loom.spawn(function() loom.sleep(0.01) return "other ok" end)
print(other:await())
]])
    assert.are.equal("awaited\tfalse\tnot enough memory\nother ok\n", out)
    assert.are.equal(0, code, err)
    assert.are.equal("", err)
  end)

  it("a task nobody awaits that runs out is reported, and the main task goes on", function()
    local out, err, code = run_capped(FILL .. [[
local t = loom.spawn(fill)
t.name = "filler"
while not t:done() do loom.sleep(0.01) end
collectgarbage()
print("main goes on")
]])
    assert.are.equal("main goes on\n", out)
    assert.are.equal(1, code)
    assert.matches("not enough memory", err)
    assert.is_nil(err:find("PANIC", 1, true), err)
  end)

  it("a main task that runs out ends the run: the other tasks are cancelled", function()
    local out, err, code = run_capped(FILL .. [[
loom.spawn(function()
  local ok, e = pcall(loom.sleep, 30)
  print("other cancelled", loom.is_cancelled(e))
end)
loom.sleep(0)
fill()
]])
    assert.are.equal("other cancelled\ttrue\n", out)
    assert.are.equal(1, code)
    assert.matches("not enough memory", err)
  end)

  it("a main chunk that runs out exits 1 with the message, as lua5.4 does", function()
    local out, err, code = run_capped(FILL .. "fill()\n")
    assert.are.equal("", out)
    assert.are.equal(1, code)
    assert.matches("^not enough memory", h.unlog(err))
  end)

  it("a server handler that runs out is reported, the server goes on", function()
    local out, err, code = run_capped(FILL .. [[
local net = require "loom.net"
local n = 0
local srv = assert(net.listen("127.0.0.1", 0, function(s)
  n = n + 1
  if s:read_line() == "fill" then fill() end
  s:write("served\n")
end))
local _, port = srv:address()
local c = assert(net.connect("127.0.0.1", port))
c:write("fill\n")
print("first:", c:read())
c:close()
collectgarbage()
c = assert(net.connect("127.0.0.1", port))
c:write("hello\n")
print("second:", c:read_line())
c:close()
srv:close()
]])
    -- the client shares the memory that ran out: its read may fail too
    assert.matches("^first:\tnil\t[^\n]*\nsecond:\tserved\n$", out)
    assert.are.equal(1, code)
    assert.matches("error in task 'conn [^']+': not enough memory", err)
  end)
end)

describe("tasks that never ran", function()
  it("are reported when the state closes with no loom.run after loom.spawn", function()
    local out, err, code = h.lua_src([[
local loom = require "loom"
local t = loom.spawn(function() print("never printed") end)
t.name = "forgotten"
print("done")
]])
    assert.are.equal("done\n", out)
    assert.are.equal(0, code)
    assert.matches("task 'forgotten' never ran: the state closed with no "
      .. "loom.run after loom.spawn", err)
  end)

  it("are run by the next loom.run", function()
    local out, err = h.lua_src([[
local loom = require "loom"
local t = loom.spawn(function() return "ran" end)
print(loom.run(function() return t:await() end))
]])
    assert.are.equal("ran\n", out)
    assert.are.equal("", err)
  end)
end)
