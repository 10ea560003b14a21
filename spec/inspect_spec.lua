-- The introspection primitives a console and debug mode's reports are
-- built on, in the private core (the registry's "loom.core", as loom's
-- modules get it):
-- core.handles(), core.task_info(task), core.stats(), core.timing(on).
local loom = require "loom"
local async = require("loom.busted").async
local core = debug.getregistry()["loom.core"]
local h = require "spec.helper"

local FILE = "spec/inspect_spec.lua"

-- The entry of core.handles() whose 'what' is tostring(x), or nil.
local function entry(x)
  local what = tostring(x)
  for _, e in ipairs(core.handles()) do
    if e.what == what then return e end
  end
end

-- The line of the caller, as "file:line".
local function here()
  return ("%s:%d"):format(FILE, debug.getinfo(2, "l").currentline)
end

-- Runs fn with debug mode on, then puts it back.
local function in_debug(fn)
  local before = loom.debug()
  loom.debug(true)
  local ok, e = pcall(fn)
  loom.debug(before)
  if not ok then error(e, 0) end
end

describe("core.handles", function()
  it("lists what is open with its kind and tostring, until it is closed",
    h.in_dir("/tmp/loom-inspect-", function(dir)
      local srv <close> = assert(loom.net.listen("127.0.0.1", 0,
        function() end))
      local _, port = srv:address()
      local c <close> = assert(loom.net.connect("127.0.0.1", port))
      local u <close> = assert(loom.net.udp())
      local p <close> = assert(loom.process.spawn { "cat" })
      local f <close> = assert(loom.fs.open(dir .. "/x", "w"))
      local w <close> = assert(loom.fs.watch(dir))
      local a <close> = core.alarm(100, function() end)
      local want = {
        { srv, "server" }, { c, "stream" }, { u, "udp" },
        { p.stdin, "stream" }, { f, "file" }, { w, "watcher" },
        { a, "timer" },
      }
      for _, x in ipairs(want) do
        local e = entry(x[1])
        assert.is_table(e, "not listed: " .. tostring(x[1]))
        assert.are.equal(x[2], e.kind)
        assert.is_nil(e.where)  -- debug mode is off
      end
      -- a process is listed by its handle, whose text names its pid
      local found
      for _, e in ipairs(core.handles()) do
        if e.kind == "process" and h.has(e.what, "pid " .. p.pid) then
          found = true
        end
      end
      assert.is_true(found, "the process is not listed")
      -- handles come oldest first
      local order = {}
      for i, e in ipairs(core.handles()) do order[e.what] = i end
      assert.is_true(order[tostring(srv)] < order[tostring(c)])
      assert.is_true(order[tostring(c)] < order[tostring(u)])
      local names = {}
      for _, x in ipairs(want) do names[#names + 1] = tostring(x[1]) end
      p.stdin:close()
      p:wait()
      for _, x in ipairs { srv, c, u, p, f, w, a } do x:close() end
      for _, e in ipairs(core.handles()) do
        assert.are_not.equal("process", e.kind)
        assert.is_false(h.has(e.what, dir), e.what)  -- the file, closed
        for _, name in ipairs(names) do assert.are_not.equal(name, e.what) end
      end
    end))

  it("leaves out loom's own handles", async(function()
    for _, e in ipairs(core.handles()) do
      assert.are_not.equal("module", e.kind)
      assert.are_not.equal("mailbox", e.kind)
      assert.are_not.equal("workpool", e.kind)
    end
  end))

  it("gives the line that made each one in debug mode",
    h.in_dir("/tmp/loom-inspect-", function(dir)
      in_debug(function()
        local line, srv <close> = here(), assert(loom.net.listen(
          "127.0.0.1", 0, function() end))
        local fline, f <close> = here(), assert(loom.fs.open(dir .. "/x", "w"))
        assert.are.equal(line, entry(srv).where)
        assert.are.equal(fline, entry(f).where)
      end)
    end))

  it("names no line for a connection a server accepted", async(function()
    in_debug(function()
      local got = loom.future()
      local srv <close> = assert(loom.net.listen("127.0.0.1", 0,
        function(s)
          got:set_result(s)
          s:read_line()
        end))
      local _, port = srv:address()
      local c <close> = assert(loom.net.connect("127.0.0.1", port))
      local s = got:await()
      assert.is_nil(entry(s).where)
      assert.is_string(entry(c).where)
    end)
  end))
end)

describe("core.task_info", function()
  it("gives id, name, state and age on the loop's clock", async(function()
    local t = loom.spawn(function() loom.sleep(10) end)
    t.name = "sleeper"
    local info = core.task_info(t)
    assert.are.equal("sleeper", info.name)
    assert.are.equal("pending", info.state)
    assert.is_number(info.id)
    assert.are.equal(0, info.age)
    assert.is_nil(info.spawned)
    loom.sleep(2.5)
    assert.are.equal(2.5, core.task_info(t).age)
    assert.are.equal("running", core.task_info(loom.current()).state)
    t:cancel()
    pcall(loom.await, t)
    assert.are.equal("cancelled", core.task_info(t).state)
    local ok = loom.spawn(function() end)
    local bad = loom.spawn(function() error("x") end)
    loom.sleep(0)
    pcall(loom.await, bad)
    assert.are.equal("done", core.task_info(ok).state)
    assert.are.equal("failed", core.task_info(bad).state)
    assert.are_not.equal(core.task_info(ok).id, core.task_info(bad).id)
  end, { clock = "virtual" }))

  it("gives where it was spawned in debug mode", async(function()
    in_debug(function()
      local t = loom.spawn(function() end); local line = here()
      assert.are.equal(line, core.task_info(t).spawned)
      t:await()
    end)
  end))

  it("raises for what is not a task", async(function()
    assert.has_error(function() core.task_info(loom.future()) end,
      "bad argument #1 to 'task_info' (loom.task expected, got loom.future)")
  end))
end)

describe("core.stats", function()
  it("counts tasks, handles by kind, memory and loop iterations",
    async(function()
      local before = core.stats()
      local srv = assert(loom.net.listen("127.0.0.1", 0, function() end))
      local ts = {}
      for i = 1, 3 do ts[i] = loom.spawn(loom.sleep, 1) end
      local s = core.stats()
      assert.are.equal(before.tasks + 3, s.tasks)
      assert.are.equal((before.handles.server or 0) + 1, s.handles.server)
      assert.is_true(s.memory_kb > 0)
      for _ = 1, 5 do loom.sleep(0.001) end
      assert.is_true(core.stats().iterations >= s.iterations + 5)
      srv:close()
      for _, t in ipairs(ts) do t:cancel() end
    end))

  it("has no slowest step until steps are timed", function()
    local out, err, code = h.lua_src([[
      local loom = require "loom"
      local core = debug.getregistry()["loom.core"]
      loom.run(function()
        assert(core.stats().slowest == nil)
        assert(core.timing() == false)
        local t0 = os.clock()
        while os.clock() - t0 < 0.03 do end
        loom.sleep(0)
        assert(core.stats().slowest == nil, "timed while off")
        assert(core.timing(true) == true)
        loom.sleep(0)  -- this step began with timing off
        local t = loom.spawn(function()
          local t0 = os.clock()
          while os.clock() - t0 < 0.03 do end
        end)
        t.name = "busy"
        t:await()
        local s = core.stats().slowest
        print(s.task, s.ms >= 30 and "long" or s.ms)
        assert(core.timing(false) == false)
        loom.debug(true)
        assert(core.timing() == true)  -- debug mode times steps too
      end)
    ]])
    assert.are.equal(0, code, err)
    assert.are.equal("busy\tlong\n", out)
  end)
end)
