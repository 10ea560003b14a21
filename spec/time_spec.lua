local loom = require "loom"
local h = require "spec.helper"
local async = require("loom.busted").async

local wall, assert_timeout = h.clock, h.assert_timeout

local function virtual(fn, ...)
  return loom.run_with(h.VIRTUAL, fn, ...)
end

-- Virtual time is the loop's real time plus the jumps, so a reading taken
-- after a wake-up may carry a millisecond of real time on a busy machine:
-- 'near' allows 2 ms unless told otherwise.
local function near(expected, actual, eps)
  h.near(expected, actual, eps or 0.002)
end

describe("loom time", function()
  describe("sleep", function()
    it("suspends only the caller: other tasks run meanwhile", async(function()
      local log = {}
      local bg = loom.spawn(function()
        for i = 1, 3 do
          log[#log + 1] = "bg" .. i
          loom.yield()
        end
      end)
      log[#log + 1] = "main sleeps"
      loom.sleep(0.02)
      log[#log + 1] = "main wakes"
      bg:await()
      assert.are.same({ "main sleeps", "bg1", "bg2", "bg3", "main wakes" }, log)
    end))

    it("takes fractions of a second", function()
      local real = loom.run(function()
        local t0 = loom.now()
        loom.sleep(0.0125)
        return loom.now() - t0
      end)
      assert.is_true(real >= 0.012 and real < 0.5, "slept " .. real)
      local a, b = virtual(function()
        local t0 = loom.now()
        loom.sleep(0.25)
        local t1 = loom.now()
        loom.sleep(1.5)
        return t1 - t0, loom.now() - t1
      end)
      near(0.25, a)
      near(1.5, b)
    end)

    it("sleep(0) acts as yield: every other ready task runs once", async(function()
      local order = {}
      local function worker(name)
        for i = 1, 3 do
          order[#order + 1] = name .. i
          loom.sleep(0)
        end
      end
      local a = loom.spawn(worker, "a")
      local b = loom.spawn(worker, "b")
      a:await(); b:await()
      assert.are.same({ "a1", "b1", "a2", "b2", "a3", "b3" }, order)
    end))

    it("wakes concurrent sleepers in deadline order", async(function()
      local order = {}
      local ts = {}
      for _, d in ipairs { 0.03, 0.01, 0.02, 0.005 } do
        ts[#ts + 1] = loom.spawn(function()
          loom.sleep(d)
          order[#order + 1] = d
        end)
      end
      for _, t in ipairs(ts) do t:await() end
      assert.are.same({ 0.005, 0.01, 0.02, 0.03 }, order)
    end))

    it("wakes equal deadlines in the order they were set", function()
      local order = {}
      virtual(function()
        local ts = {}
        -- spawned 1..5, but task i sets its sleep after 5 - i yields,
        -- so the sleeps are set in the order 5, 4, 3, 2, 1
        for i = 1, 5 do
          ts[i] = loom.spawn(function()
            for _ = 1, 5 - i do loom.yield() end
            loom.sleep(2)
            order[#order + 1] = i
          end)
        end
        for i = 1, 5 do ts[i]:await() end
      end)
      assert.are.same({ 5, 4, 3, 2, 1 }, order)

      -- a deadline set earlier wins over an equal one set later
      order = {}
      virtual(function()
        local late = loom.spawn(function()
          loom.sleep(1)
          loom.sleep(2)  -- due at 3, set at 1
          order[#order + 1] = "set later"
        end)
        local early = loom.spawn(function()
          loom.sleep(3)  -- due at 3, set at 0
          order[#order + 1] = "set first"
        end)
        late:await(); early:await()
      end)
      assert.are.same({ "set first", "set later" }, order)
    end)

    it("raises with its name on bad durations", async(function()
      assert.error_matches(function() loom.sleep("soon") end,
        "bad argument #1 to '[%w.]*sleep' %(number expected, got string%)")
      assert.error_matches(function() loom.sleep({}) end,
        "bad argument #1 to '[%w.]*sleep' %(number expected, got table%)")
      assert.error_matches(function() loom.sleep() end,
        "bad argument #1 to '[%w.]*sleep' %(number expected, got no value%)")
      assert.error_matches(function() loom.sleep(-1) end,
        "bad argument #1 to '[%w.]*sleep'.*non%-negative")
      assert.error_matches(function() loom.sleep(0 / 0) end,
        "bad argument #1 to '[%w.]*sleep'.*non%-negative")
      -- the task is still usable afterwards
      loom.sleep(0.001)
    end))

    it("accepts math.huge and sleeps 'forever'", async(function()
      local c0 = os.clock()
      local t0 = loom.now()
      local ok, e = pcall(loom.timeout, 5, loom.sleep, math.huge)
      local dt = loom.now() - t0
      assert.is_false(ok)
      assert_timeout(e)
      near(5, dt)
      assert.is_true(os.clock() - c0 < 0.5)
    end, { clock = "virtual" }))

    it("raises outside a task", function()
      assert.has_error(function() loom.sleep(1) end,
        "loom: loom.sleep called outside a task (use loom.run or the loom binary)")
      assert.has_error(function() loom.sleep(0) end,
        "loom: loom.sleep called outside a task (use loom.run or the loom binary)")
    end)
  end)

  describe("now", function()
    it("is monotonic float seconds", async(function()
      local prev = loom.now()
      assert.are.equal("float", math.type(prev))
      for _ = 1, 20 do
        loom.yield()
        local n = loom.now()
        assert.is_true(n >= prev)
        prev = n
      end
    end))

    it("advances across a sleep by about the slept time", async(function()
      local t0 = loom.now()
      loom.sleep(0.05)
      local dt = loom.now() - t0
      assert.is_true(dt >= 0.045 and dt <= 0.5, "elapsed " .. dt)
    end))
  end)

  describe("timeout", function()
    it("returns all of fn's results, nils included, when in time", async(function()
      local r = table.pack(loom.timeout(1, function(a, b)
        loom.sleep(0.005)
        return a, nil, b, nil
      end, "x", "y"))
      assert.are.equal(4, r.n)
      assert.are.same({ "x", nil, "y", nil, n = 4 }, r)
    end))

    it("raises loom.Timeout when fn is not done in time", async(function()
      local t0 = loom.now()
      local ok, e = pcall(loom.timeout, 0.5, function()
        loom.sleep(10)
        return "too late"
      end)
      local dt = loom.now() - t0
      assert.is_false(ok)
      assert_timeout(e)
      near(0.5, dt)
    end, { clock = "virtual" }))

    it("raises at fn's suspension so its pcall cleanup and <close> run first", async(function()
      local log = {}
      local ok, e = pcall(loom.timeout, 1, function()
        local _guard <close> = setmetatable({}, { __close = function(_, err)
          log[#log + 1] = "close:" .. (loom.is_timeout(err) and "timeout" or tostring(err))
        end })
        local ok2, e2 = pcall(loom.sleep, 10)
        log[#log + 1] = "pcall:" .. tostring(ok2) .. ":" .. tostring(loom.is_timeout(e2))
        error(e2, 0)
      end)
      log[#log + 1] = "raised:" .. tostring(ok) .. ":" .. tostring(loom.is_timeout(e))
      -- the task goes on normally after the scope
      loom.sleep(0.5)
      log[#log + 1] = "after"
      assert.are.same({ "pcall:false:true", "close:timeout", "raised:false:true", "after" }, log)
    end, { clock = "virtual" }))

    it("nests: a shorter inner scope fires in the inner scope only", async(function()
      local t0 = loom.now()
      local inner_e, inner_dt
      local r = loom.timeout(10, function()
        local ok, e = pcall(loom.timeout, 1, loom.sleep, 5)
        assert(not ok)
        inner_e, inner_dt = e, loom.now() - t0
        loom.sleep(2)  -- still inside the outer scope, which has time left
        return "outer done"
      end)
      local total = loom.now() - t0
      assert.are.equal("outer done", r)
      assert_timeout(inner_e)
      near(1, inner_dt)
      near(3, total)
    end, { clock = "virtual" }))

    it("nests: a shorter outer scope fires through the inner one and the outer raises", async(function()
      local log = {}
      local t0 = loom.now()
      local ok, e = pcall(loom.timeout, 1, function()
        local ok2, e2 = pcall(loom.timeout, 10, loom.sleep, 5)
        log[#log + 1] = "inner saw " .. tostring(loom.is_timeout(e2))
        if not ok2 then error(e2, 0) end
        log[#log + 1] = "not reached"
      end)
      local dt = loom.now() - t0
      assert.is_false(ok)
      assert_timeout(e)
      assert.matches("1s", tostring(e))
      near(1, dt)
      assert.are.same({ "inner saw true" }, log)
    end, { clock = "virtual" }))

    it("drops an inner deadline once its scope has ended", async(function()
      local t0 = loom.now()
      local r = loom.timeout(10, function()
        loom.timeout(0.5, function() end)           -- ends at once
        loom.timeout(0.5, loom.sleep, 0.1)          -- ends after a sleep
        pcall(loom.timeout, 0.5, error, "x", 0)     -- ends by an error
        loom.sleep(2)  -- all three inner deadlines pass meanwhile
        return "fine"
      end)
      loom.sleep(1)
      local dt = loom.now() - t0
      assert.are.equal("fine", r)
      near(3.1, dt)
    end, { clock = "virtual" }))

    it("leaves no timer keeping the loop alive once it did not fire", function()
      local w0 = wall()
      local r = loom.run(function()
        return loom.timeout(30, function() return "quick" end)
      end)
      assert.are.equal("quick", r)
      local r2 = loom.run(function()
        return loom.timeout(30, function()
          loom.sleep(0.005)
          return loom.timeout(20, function() return "nested" end)
        end)
      end)
      assert.are.equal("nested", r2)
      loom.run(function() pcall(loom.timeout, 30, error, "boom") end)
      assert.is_true(wall() - w0 < 2, "loom.run waited for a dead deadline")
    end)

    it("passes fn's own errors through unchanged", async(function()
      local tbl = { reason = "mine" }
      local _, e1 = pcall(loom.timeout, 1, function() error("plain", 0) end)
      local _, e2 = pcall(loom.timeout, 1, function()
        loom.sleep(0.001)
        error(tbl)
      end)
      assert.are.equal("plain", e1)
      assert.are.equal(tbl, e2)
    end))

    it("raises on bad arguments", async(function()
      local f = function() end
      assert.error_matches(function() loom.timeout("1", f) end,
        "bad argument #1 to 'loom.timeout' %(number expected, got string%)")
      assert.error_matches(function() loom.timeout(-1, f) end,
        "bad argument #1 to 'loom.timeout'.*non%-negative")
      assert.error_matches(function() loom.timeout(0 / 0, f) end,
        "bad argument #1 to 'loom.timeout'.*non%-negative")
      assert.error_matches(function() loom.timeout(1, 42) end,
        "bad argument #2 to 'loom.timeout' %(function expected, got number%)")
      assert.error_matches(function() loom.timeout(1) end,
        "bad argument #2 to 'loom.timeout' %(function expected, got nil%)")
    end))

    it("raises outside a task", function()
      assert.has_error(function() loom.timeout(1, function() end) end,
        "loom: loom.timeout called outside a task (use loom.run or the loom binary)")
    end)

    it("runs a 30 s timeout in microseconds on the virtual clock", async(function()
      local c0, w0 = os.clock(), wall()
      local t0 = loom.now()
      local ok, e = pcall(loom.timeout, 30, loom.sleep, 60)
      local dt = loom.now() - t0
      assert.is_false(ok)
      assert_timeout(e)
      near(30, dt)
      assert.is_true(os.clock() - c0 < 0.1, "CPU time " .. (os.clock() - c0))
      assert.is_true(wall() - w0 < 1)
    end, { clock = "virtual" }))
  end)

  describe("wait_for", function()
    it("returns all of x's results when in time", async(function()
      local x = loom.spawn(function()
        loom.sleep(0.005)
        return 1, nil, "three"
      end)
      local r = table.pack(loom.wait_for(x, 1))
      assert.are.same({ 1, nil, "three", n = 3 }, r)
    end))

    it("on timeout cancels x, waits for its cleanup, and raises loom.Timeout", async(function()
      local log = {}
      local x = loom.spawn(function()
        local _guard <close> = setmetatable({}, { __close = function()
          log[#log + 1] = "x closed"
        end })
        local _, err = pcall(loom.sleep, 10)
        log[#log + 1] = "x saw " .. (loom.is_cancelled(err) and "Cancelled" or tostring(err))
        loom.sleep(0.5)  -- cleanup that itself suspends
        log[#log + 1] = "x cleaned up"
        error(err, 0)
      end)
      local t0 = loom.now()
      local ok, e = pcall(loom.wait_for, x, 1)
      log[#log + 1] = "wait_for raised"
      local cancelled, done, dt = x:cancelled(), x:done(), loom.now() - t0
      assert.is_false(ok)
      assert_timeout(e)
      assert.is_true(cancelled)
      assert.is_true(done)
      near(1.5, dt)
      assert.are.same({ "x saw Cancelled", "x cleaned up", "x closed", "wait_for raised" }, log)
    end, { clock = "virtual" }))

    it("takes a Future", async(function()
      local f = loom.future()
      loom.later(0.5, function() f:set_result("v", 2) end)
      local a, b = loom.wait_for(f, 1)
      local g = loom.future()
      local ok, e = pcall(loom.wait_for, g, 1)
      local fdone, fcancelled = g:done(), g:cancelled()
      assert.are.equal("v", a)
      assert.are.equal(2, b)
      assert.is_false(ok)
      assert_timeout(e)
      assert.is_true(fdone)
      assert.is_true(fcancelled)
    end, { clock = "virtual" }))

    it("passes x's error through unchanged", async(function()
      local tbl = {}
      local a = loom.spawn(function() loom.sleep(0.001); error("plain", 0) end)
      local b = loom.spawn(function() error(tbl) end)
      local f = loom.future()
      f:set_error(tbl)
      local _, e1 = pcall(loom.wait_for, a, 1)
      local _, e2 = pcall(loom.wait_for, b, 1)
      local _, e3 = pcall(loom.wait_for, f, 1)
      assert.are.equal("plain", e1)
      assert.are.equal(tbl, e2)
      assert.are.equal(tbl, e3)
    end))

    it("raises on bad input", async(function()
      local x = loom.spawn(function() end)
      assert.error_matches(function() loom.wait_for(42, 1) end,
        "bad argument #1 to 'loom.wait_for' %(Task or Future expected, got number%)")
      assert.error_matches(function() loom.wait_for(nil, 1) end, "bad argument #1")
      assert.error_matches(function() loom.wait_for(x) end,
        "bad argument #2 to 'loom.wait_for' %(number expected, got nil%)")
      assert.error_matches(function() loom.wait_for(x, "1") end, "bad argument #2")
      assert.error_matches(function() loom.wait_for(x, -1) end,
        "bad argument #2 to 'loom.wait_for'.*non%-negative")
      assert.error_matches(function() loom.wait_for(x, 0 / 0) end,
        "bad argument #2 to 'loom.wait_for'.*non%-negative")
      x:await()
    end))

    it("raises outside a task", function()
      local x = loom.run(function() return loom.spawn(function() end) end)
      assert.has_error(function() loom.wait_for(x, 1) end,
        "loom: loom.wait_for called outside a task (use loom.run or the loom binary)")
    end)
  end)

  describe("later", function()
    it("runs fn(...) as a task after s seconds and its result can be awaited", async(function()
      local log = {}
      local t0 = loom.now()
      local at
      local timer = loom.later(0.5, function(x, y)
        at = loom.now() - t0
        log[#log + 1] = "fn"
        return x + y, "sum"
      end, 2, 3)
      log[#log + 1] = "returned"
      loom.sleep(0.4)
      log[#log + 1] = "0.4"
      local a, b = timer:await()
      assert.are.equal(5, a)
      assert.are.equal("sum", b)
      near(0.5, at)
      assert.are.same({ "returned", "0.4", "fn" }, log)
    end, { clock = "virtual" }))

    it("never runs fn when cancelled before it fires", async(function()
      local ran = false
      local t0 = loom.now()
      local timer = loom.later(1, function() ran = true end)
      loom.sleep(0.5)
      timer:cancel()
      loom.sleep(2)
      local cancelled, dt = timer:cancelled(), loom.now() - t0
      assert.is_false(ran)
      assert.is_true(cancelled)
      near(2.5, dt)
    end, { clock = "virtual" }))

    it("raises on bad arguments", async(function()
      assert.error_matches(function() loom.later(-1, function() end) end,
        "bad argument #1 to 'loom.later'")
      assert.error_matches(function() loom.later(1, 42) end,
        "bad argument #2 to 'loom.later' %(function expected, got number%)")
    end))
  end)

  describe("every", function()
    it("calls fn(...) every s seconds until cancelled", async(function()
      local calls = {}
      local timer = loom.every(0.1, function(tag) calls[#calls + 1] = tag end, "tick")
      loom.sleep(0.55)
      local n_at = #calls
      timer:cancel()
      loom.sleep(1)
      local n_end, cancelled = #calls, timer:cancelled()
      assert.are.equal(5, n_at)
      assert.are.equal(5, n_end)
      assert.is_true(cancelled)
      for i = 1, 5 do assert.are.equal("tick", calls[i]) end
    end, { clock = "virtual" }))

    it("ticks at start + k*s on the virtual clock", async(function()
      local t0 = loom.now()
      local times = {}
      local timer = loom.every(0.1, function()
        times[#times + 1] = loom.now() - t0
        if #times == 10 then return false end
      end)
      timer:await()
      assert.are.equal(10, #times)
      -- exactly on the millisecond: the clock has 1 ms resolution
      for k = 1, 10 do near(k * 0.1, times[k], 0.0005) end
    end, { clock = "virtual" }))

    it("keeps to its schedule when fn takes part of the interval", async(function()
      local t0 = loom.now()
      local times = {}
      local timer = loom.every(1, function()
        times[#times + 1] = loom.now() - t0
        loom.sleep(0.4)   -- the next tick is still due at t0 + k
        if #times == 4 then return false end
      end)
      timer:await()
      assert.are.equal(4, #times)
      for k = 1, 4 do near(k, times[k]) end
    end, { clock = "virtual" }))

    it("a tick that runs past the next one's time skips it rather than bursting", async(function()
      local t0 = loom.now()
      local times = {}
      local timer = loom.every(1, function()
        times[#times + 1] = loom.now() - t0
        if #times == 1 then loom.sleep(2.5) end
        if #times == 3 then return false end
      end)
      timer:await()
      assert.are.equal(3, #times)
      near(1, times[1])
      near(4.5, times[2])  -- one interval after the late tick ended
      near(5.5, times[3])
    end, { clock = "virtual" }))

    it("stops when fn returns false", async(function()
      local n = 0
      local t0 = loom.now()
      local timer = loom.every(0.25, function()
        n = n + 1
        if n == 3 then return false end
        return nil  -- nil is not false: keeps going
      end)
      timer:await()
      local dt = loom.now() - t0
      loom.sleep(2)
      local done, cancelled = timer:done(), timer:cancelled()
      assert.are.equal(3, n)
      assert.is_true(done)
      assert.is_false(cancelled)
      near(0.75, dt)
    end, { clock = "virtual" }))

    it("raises on a zero, negative or NaN interval and on a non-function", async(function()
      local f = function() end
      assert.error_matches(function() loom.every(0, f) end,
        "bad argument #1 to 'loom.every'")
      assert.error_matches(function() loom.every(-0.5, f) end,
        "bad argument #1 to 'loom.every'")
      assert.error_matches(function() loom.every(0 / 0, f) end,
        "bad argument #1 to 'loom.every'")
      assert.error_matches(function() loom.every(1, "f") end,
        "bad argument #2 to 'loom.every' %(function expected, got string%)")
    end))
  end)

  describe("virtual clock", function()
    it("jumps through an hour of sleeps at once and now() reads virtual time", async(function()
      local c0, w0 = os.clock(), wall()
      local t0 = loom.now()
      local counted = 0
      local bg = loom.spawn(function()
        for _ = 1, 3600 do loom.sleep(1); counted = counted + 1 end
      end)
      for _ = 1, 60 do loom.sleep(60) end
      bg:await()
      local dt = loom.now() - t0
      near(3600, dt, 0.5)
      assert.are.equal(3600, counted)
      assert.is_true(os.clock() - c0 < 1, "CPU time " .. (os.clock() - c0))
      assert.is_true(wall() - w0 < 2)
    end, { clock = "virtual" }))

    it("does not jump while a task is ready to run", async(function()
      local t0 = loom.now()
      local readings = {}
      local woke
      local sleeper = loom.spawn(function()
        loom.sleep(10)
        woke = #readings
      end)
      for _ = 1, 50 do
        readings[#readings + 1] = loom.now() - t0
        loom.yield()
      end
      sleeper:await()
      assert.are.equal(50, woke)
      for _, r in ipairs(readings) do assert.is_true(r < 1) end
    end, { clock = "virtual" }))

    it("orders tasks as the real clock does", function()
      local function scenario(u)
        local order = {}
        local ts = {
          loom.spawn(function() loom.sleep(3 * u); order[#order + 1] = "A" end),
          loom.spawn(function()
            loom.sleep(u); order[#order + 1] = "B1"
            loom.sleep(u); order[#order + 1] = "B2"
          end),
          loom.spawn(function() loom.sleep(2 * u); order[#order + 1] = "C" end),
          loom.spawn(function() loom.sleep(2 * u); order[#order + 1] = "D" end),
          loom.spawn(function() loom.sleep(0); order[#order + 1] = "E" end),
        }
        for _, t in ipairs(ts) do t:await() end
        return order
      end
      -- u is large enough that a wake-up late by less than u (a loaded
      -- machine, a sanitizer build) cannot change the order
      local real = loom.run(scenario, 0.1)
      local virt = virtual(scenario, 20)
      assert.are.same({ "E", "B1", "C", "D", "B2", "A" }, real)
      assert.are.same(real, virt)
    end)

    it("accepts {debug = true}", function()
      local before = loom.debug()
      local r, dbg = loom.run_with({ clock = "virtual", debug = true }, function(x)
        loom.sleep(5)
        return x * 2, loom.debug()
      end, 21)
      assert.are.equal(42, r)
      assert.is_true(dbg)
      assert.are.equal(before, loom.debug())
    end)

    it("raises on a bad clock name", function()
      assert.error_matches(function()
        loom.run_with({ clock = "wall" }, function() end)
      end, "invalid option 'wall'")
      assert.has_error(function() loom.run_with("virtual", function() end) end)
      assert.has_error(function() loom.run_with({ clock = "virtual" }, 42) end)
    end)

    it("is off again for the next plain loom.run", function()
      local before = loom.run(function() return loom.now() end)
      local wv = wall()
      virtual(function() loom.sleep(3600) end)
      assert.is_true(wall() - wv < 1)
      local w0 = wall()
      local t0, dt = loom.run(function()
        local t0 = loom.now()
        loom.sleep(0.05)
        return t0, loom.now() - t0
      end)
      local wdt = wall() - w0
      assert.is_true(dt >= 0.045 and dt < 0.5, "now() advanced " .. dt)
      assert.is_true(wdt >= 0.04, "the sleep took " .. wdt .. " s of wall time")
      -- loom.now() is the loop's real time again, not an hour ahead
      assert.is_true(t0 - before < 2 + (w0 - wv),
        ("now() jumped by %.3f s across the virtual run"):format(t0 - before))
    end)
  end)
end)

describe("loom timers (regressions)", function()
  it("equal deadlines reached through different durations fire in the order set", async(function()
    local order = {}
    local a = loom.spawn(function() loom.sleep(0.2); order[#order + 1] = "a" end)
    loom.sleep(0.1)
    local b = loom.spawn(function() loom.sleep(0.1); order[#order + 1] = "b" end)
    local c = loom.spawn(function() loom.sleep(0.1); order[#order + 1] = "c" end)
    a:await(); b:await(); c:await()
    assert.are.same({ "a", "b", "c" }, order)
  end, { clock = "virtual" }))

  it("a timer is not late after a long round of tasks (poll timeout from fresh time)", async(function()
    -- Tasks woken by one timer run in one round before the poll; a task
    -- that sets a new timer after 300 ms of busy work in that round must
    -- not have that time added to its wait.  Nothing else is ready after
    -- the round (the body awaits only 't'), so the loop really polls.
    for _ = 1, 3 do
      loom.spawn(function()
        loom.sleep(0.02)
        local t0 = os.clock()
        while os.clock() - t0 < 0.1 do end  -- 300 ms of CPU in all
      end)
    end
    local t = loom.spawn(function()
      loom.sleep(0.02)
      local due = loom.now() + 0.6  -- the loop time of this round
      loom.sleep(0.6)               -- due well after the round ends
      return loom.now() - due       -- the loop time when it woke
    end)
    local late = t:await()
    -- late by the round's length (>= 0.3 s) when the poll timeout is
    -- computed from the stale time; about 0 otherwise, even under load
    assert.is_true(late < 0.15, ("woke %.3f s late"):format(late))
  end))

  it("cancelling many sleepers leaves no timer behind", function()
    local t0 = os.time()
    loom.run(function()
      local ts = {}
      for i = 1, 1000 do ts[i] = loom.spawn(loom.sleep, 30 + i % 7) end
      loom.sleep(0.01)
      for i = 1, 1000 do ts[i]:cancel() end
    end)
    assert.is_true(os.time() - t0 < 5)  -- the loop ended at once
  end)
end)
