local loom = require "loom"

describe("loom.run", function()
  it("runs fn(...) as the main task and returns all its results", function()
    local a, b, c, n = loom.run(function(...)
      return select(1, ...), select(2, ...), select(3, ...), select("#", ...)
    end, "x", nil, 3)
    assert.are.equal("x", a)
    assert.is_nil(b)
    assert.are.equal(3, c)
    assert.are.equal(3, n)
  end)

  it("main is a task: loom.current() inside, named 'main'", function()
    local name = loom.run(function() return loom.current().name end)
    assert.are.equal("main", name)
  end)

  it("runs until every task is done, not only the main one", function()
    local finished = {}
    loom.run(function()
      for i = 1, 3 do
        loom.spawn(function() loom.sleep(0.01 * i); finished[#finished + 1] = i end)
      end
    end)
    assert.are.same({ 1, 2, 3 }, finished)
  end)

  it("re-raises the main task's error unchanged", function()
    local ok, e = pcall(loom.run, function() loom.sleep(0); error("main failed", 0) end)
    assert.is_false(ok)
    assert.are.equal("main failed", e)
  end)

  it("raises its exact error when called inside a running loop", function()
    local e = loom.run(function()
      return select(2, pcall(loom.run, function() end))
    end)
    assert.matches("loom.run%(%) cannot be called from a running event loop$", e)
  end)

  it("can run again after a previous run ended", function()
    assert.are.equal(1, loom.run(function() loom.sleep(0.001); return 1 end))
    assert.are.equal(2, loom.run(function() loom.sleep(0.001); return 2 end))
  end)

  it("raises on a non-function", function()
    assert.has_error(function() loom.run(42) end)
    assert.has_error(function() loom.run() end)
  end)

  it("a main task that waits for something nothing will do ends with a clear error", function()
    local ok, e = pcall(loom.run, function() loom.future():await() end)
    assert.is_false(ok)
    assert.matches("main task never finished", e)
  end)

  it("tasks left waiting on nothing are cancelled at the end so their cleanup runs", function()
    local cleaned = false
    loom.run(function()
      loom.spawn(function()
        local _ <close> = setmetatable({}, { __close = function() cleaned = true end })
        loom.future():await()
      end)
    end)
    assert.is_true(cleaned)
  end)
end)

describe("loom.run_with", function()
  it("{clock = 'virtual'} jumps over idle time", function()
    local c0 = os.clock()
    local elapsed = loom.run_with({ clock = "virtual" }, function()
      local t0 = loom.now()
      loom.sleep(3600)
      return loom.now() - t0
    end)
    assert.is_true(math.abs(elapsed - 3600) < 1e-6, tostring(elapsed))
    assert.is_true(os.clock() - c0 < 0.5)
  end)

  it("{debug = true} warns about a task that runs long without suspending", function()
    local h = require "spec.helper"
    local path = h.script(([[
      package.cpath = %q .. package.cpath
      local loom = require "loom"
      loom.run_with({ debug = true }, function()
        local t0 = os.clock()
        while os.clock() - t0 < 0.15 do end
        loom.sleep(0)
      end)
      loom.run(function()
        local t0 = os.clock()
        while os.clock() - t0 < 0.15 do end
        loom.sleep(0)
      end)
    ]]):format(h.build .. "/lua/?.so;"))
    local _, err = h.sh("lua5.4 " .. h.quote(path))
    os.remove(path)
    local n = select(2, err:gsub("ran for %d+ ms without suspending", ""))
    assert.are.equal(1, n)  -- only the run in debug mode warned
    assert.matches("task 'main'", err)
  end)

  it("raises on a bad option", function()
    assert.has_error(function() loom.run_with({ clock = "sundial" }, function() end) end)
    assert.has_error(function() loom.run_with(nil, function() end) end)
  end)
end)

describe("loom.debug", function()
  it("reads and sets the debug flag", function()
    local before = loom.debug()
    assert.is_true(loom.debug(true))
    assert.is_false(loom.debug(false))
    loom.debug(before)
  end)
end)

describe("the scheduler's memory", function()
  it("holds nothing of a finished task: task and coroutine are collectable", function()
    local weak = setmetatable({}, { __mode = "k" })
    loom.run(function()
      for _ = 1, 50 do
        local t = loom.spawn(function(x) loom.sleep(0); return { x } end, {})
        weak[t] = true
        t:await()
      end
    end)
    collectgarbage(); collectgarbage()
    assert.are.equal(nil, next(weak))
  end)

  it("keeps live tasks alive even when the script drops them", function()
    local done = false
    loom.run(function()
      loom.spawn(function() loom.sleep(0.02); done = true end)
      collectgarbage(); collectgarbage()
    end)
    assert.is_true(done)
  end)

  it("many tasks, sleeps and awaits leave memory where it was", function()
    local function round()
      loom.run(function()
        local ts = {}
        for i = 1, 2000 do ts[i] = loom.spawn(function() loom.sleep(0.001) return i end) end
        for i = 1, 2000 do assert(ts[i]:await() == i) end
      end)
      collectgarbage(); collectgarbage()
      return collectgarbage("count")
    end
    round()
    local k1 = round()
    local k2 = round()
    assert.is_true(k2 - k1 < 64, ("grew by %.1f KiB"):format(k2 - k1))
  end)
end)
