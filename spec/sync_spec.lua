local loom = require "loom"
local async = require("loom.busted").async
local h = require "spec.helper"
local settle, error_of = h.settle, h.error_of

local VIRTUAL = h.VIRTUAL

describe("loom.lock", function()
  it("is free when made; acquire takes it and release frees it", async(function()
    local l = loom.lock()
    assert.is_false(l:locked())
    assert.matches("unlocked", tostring(l))
    assert.is_true(l:acquire())
    assert.is_true(l:locked())
    assert.matches("%(locked%)", tostring(l))
    l:release()
    assert.is_false(l:locked())
  end))

  it("gives mutual exclusion: one holder at a time", async(function()
    local l = loom.lock()
    local inside, max_inside, log = 0, 0, {}
    local function worker(name)
      for _ = 1, 3 do
        l:acquire()
        inside = inside + 1
        if inside > max_inside then max_inside = inside end
        log[#log + 1] = name .. "+"
        loom.sleep(0.01)
        loom.yield()
        log[#log + 1] = name .. "-"
        inside = inside - 1
        l:release()
      end
    end
    local ts = {}
    for _, n in ipairs { "a", "b", "c" } do ts[#ts + 1] = loom.spawn(worker, n) end
    for _, t in ipairs(ts) do t:await() end
    assert.are.equal(1, max_inside)
    assert.are.equal(18, #log)
    for i = 1, #log, 2 do  -- every entry is followed by the same task's exit
      assert.are.equal(log[i]:sub(1, 1) .. "-", log[i + 1])
    end
    assert.is_false(l:locked())
  end, VIRTUAL))

  it("is fair: waiters get it in arrival order, a newcomer cannot barge in", async(function()
    local l = loom.lock()
    local order = {}
    l:acquire()
    local ts = {}
    for i = 1, 5 do
      ts[i] = loom.spawn(function()
        l:acquire()
        order[#order + 1] = i
        loom.yield()
        l:release()
      end)
      loom.yield()  -- each one queues before the next is spawned
    end
    assert.are.same({}, order)
    l:release()
    assert.is_true(l:locked())  -- handed straight to waiter 1
    l:acquire()  -- the releaser queues behind the five
    order[#order + 1] = "main"
    l:release()
    for i = 1, 5 do ts[i]:await() end
    assert.are.same({ 1, 2, 3, 4, 5, "main" }, order)
    assert.is_false(l:locked())
  end))

  it(":hold() with <close> releases on normal exit", async(function()
    local l = loom.lock()
    do
      local _ <close> = l:hold()
      assert.is_true(l:locked())
    end
    assert.is_false(l:locked())
  end))

  it(":hold() with <close> releases when the block raises, and the error goes on unchanged", async(function()
    local l = loom.lock()
    local err = { "mine" }
    local ok, e = pcall(function()
      local _ <close> = l:hold()
      assert.is_true(l:locked())
      error(err)
    end)
    assert.is_false(ok)
    assert.are.equal(err, e)
    assert.is_false(l:locked())
    -- a waiter queued while the block ran gets it when the block raises
    local got = false
    local w
    ok, e = pcall(function()
      local _ <close> = l:hold()
      w = loom.spawn(function() local _ <close> = l:hold(); got = true end)
      settle()
      assert.is_false(got)
      error("x", 0)
    end)
    assert.is_false(ok)
    assert.are.equal("x", e)
    w:await()
    assert.is_true(got)
    assert.is_false(l:locked())
  end))

  it("raises on release when not locked", async(function()
    local l = loom.lock()
    assert.has_error(function() l:release() end,
      "loom.lock: release of a lock that is not locked")
    l:acquire()
    l:release()
    assert.has_error(function() l:release() end,
      "loom.lock: release of a lock that is not locked")
    assert.is_false(l:locked())
  end))

  it("lock handed over to a waiter that is cancelled: the next waiter gets it", async(function()
    local l = loom.lock()
    local held_by, inside, max_inside = {}, 0, 0
    local function waiter(name)
      l:acquire()
      inside = inside + 1
      if inside > max_inside then max_inside = inside end
      held_by[#held_by + 1] = name
      loom.sleep(0.01)
      inside = inside - 1
      l:release()
    end
    l:acquire()
    local b = loom.spawn(waiter, "b")
    local c = loom.spawn(waiter, "c")
    local d = loom.spawn(waiter, "d")
    settle()
    l:release()          -- handed to b ...
    assert.is_true(b:cancel())  -- ... which is cancelled before it runs
    assert.is_true(loom.is_cancelled(error_of(b)))
    assert.is_nil(error_of(c))
    assert.is_nil(error_of(d))
    assert.are.same({ "c", "d" }, held_by)
    assert.are.equal(1, max_inside)
    assert.is_false(l:locked())
    assert.is_true(l:acquire())  -- not stuck
    l:release()
  end, VIRTUAL))

  it("lock handed over to the only waiter, which is cancelled, becomes free", async(function()
    local l = loom.lock()
    local got = false
    l:acquire()
    local b = loom.spawn(function() l:acquire(); got = true end)
    settle()
    l:release()
    b:cancel()
    assert.is_true(loom.is_cancelled(error_of(b)))
    assert.is_false(got)
    assert.is_false(l:locked())
    -- taken at once, without suspending: another task does not get in first
    local other_ran = false
    loom.spawn(function() other_ran = true end)
    assert.is_true(l:acquire())
    assert.is_false(other_ran)
    l:release()
  end))

  it("a waiter cancelled while queued never holds it", async(function()
    local l = loom.lock()
    local got = {}
    l:acquire()
    local b = loom.spawn(function() l:acquire(); got[#got + 1] = "b"; l:release() end)
    local c = loom.spawn(function() l:acquire(); got[#got + 1] = "c"; l:release() end)
    settle()
    b:cancel()
    assert.is_true(loom.is_cancelled(error_of(b)))
    assert.is_true(l:locked())  -- still ours
    l:release()
    c:await()
    assert.are.same({ "c" }, got)
    assert.is_false(l:locked())
  end))

  it("a waiter cancelled while queued, with nobody behind it, leaves it free on release", async(function()
    local l = loom.lock()
    l:acquire()
    local b = loom.spawn(function() l:acquire(); return "got it" end)
    settle()
    b:cancel()
    assert.is_true(loom.is_cancelled(error_of(b)))
    l:release()
    assert.is_false(l:locked())
  end))

  it("acquire outside a task raises, free or held", function()
    local l = loom.lock()
    assert.error_matches(function() l:acquire() end, "outside a task")
    assert.is_false(l:locked())
  end)

  it("raises on a wrong receiver", function()
    local l = loom.lock()
    assert.has_error(function() l.acquire(42) end,
      "bad argument #1 to 'lock:acquire' (loom.lock expected, got number)")
    assert.has_error(function() l.release({}) end,
      "bad argument #1 to 'lock:release' (loom.lock expected, got table)")
    assert.has_error(function() l.locked(loom.event()) end,
      "bad argument #1 to 'lock:locked' (loom.lock expected, got table)")
    assert.has_error(function() l.hold(42) end)
    assert.has_error(function() l.hold({}) end)
    assert.is_false(l:locked())
  end)
end)

describe("loom.event", function()
  it("starts clear; wait returns at once when set, without suspending", async(function()
    local e = loom.event()
    assert.is_false(e:is_set())
    assert.matches("clear", tostring(e))
    e:set()
    assert.is_true(e:is_set())
    assert.matches("set", tostring(e))
    local other_ran = false
    loom.spawn(function() other_ran = true end)
    assert.is_true(e:wait())
    assert.is_false(other_ran)
  end))

  it("set wakes every waiter, in the order they came", async(function()
    local e = loom.event()
    local woke = {}
    local ts = {}
    for i = 1, 4 do
      ts[i] = loom.spawn(function() assert(e:wait() == true); woke[#woke + 1] = i end)
    end
    settle()
    assert.are.same({}, woke)
    e:set()
    for i = 1, 4 do ts[i]:await() end
    assert.are.same({ 1, 2, 3, 4 }, woke)
  end))

  it("clear makes later waiters wait for the next set", async(function()
    local e = loom.event()
    e:set()
    e:clear()
    assert.is_false(e:is_set())
    local woke = false
    local t = loom.spawn(function() e:wait(); woke = true end)
    settle()
    assert.is_false(woke)
    assert.is_false(t:done())
    e:set()
    t:await()
    assert.is_true(woke)
  end))

  it("set then clear in the same step still wakes the waiters already waiting", async(function()
    local e = loom.event()
    local woke = 0
    local ts = {}
    for i = 1, 2 do ts[i] = loom.spawn(function() e:wait(); woke = woke + 1 end) end
    settle()
    e:set()
    e:clear()
    for i = 1, 2 do ts[i]:await() end
    assert.are.equal(2, woke)
    assert.is_false(e:is_set())
  end))

  it("a cancelled waiter does not disturb the others", async(function()
    local e = loom.event()
    local woke = {}
    local a = loom.spawn(function() e:wait(); woke[#woke + 1] = "a" end)
    local b = loom.spawn(function() e:wait(); woke[#woke + 1] = "b" end)
    settle()
    a:cancel()
    assert.is_true(loom.is_cancelled(error_of(a)))
    e:set()
    b:await()
    assert.are.same({ "b" }, woke)
  end))

  it("raises on a wrong receiver", function()
    local e = loom.event()
    for _, m in ipairs { "set", "clear", "is_set", "wait" } do
      assert.error_matches(function() e[m](42) end,
        "bad argument #1 to '.-' %(loom%.event expected, got number%)")
      assert.has_error(function() e[m](loom.lock()) end)
    end
    assert.is_false(e:is_set())
  end)
end)

describe("loom.condition", function()
  it("wait releases the lock, notify wakes the waiter, which holds the lock again", async(function()
    local c = loom.condition()
    local items, got = {}, nil
    local consumer = loom.spawn(function()
      local _ <close> = c:hold()
      while #items == 0 do
        c:wait()
        assert(c.lock:locked(), "lock not held after wait")
      end
      got = table.remove(items, 1)
    end)
    settle()
    assert.is_false(c.lock:locked())  -- released by the waiting consumer
    do
      local _ <close> = c:hold()
      items[1] = "x"
      c:notify()
      assert.is_nil(got)  -- it cannot run while we hold the lock
    end
    consumer:await()
    assert.are.equal("x", got)
    assert.is_false(c.lock:locked())
  end))

  it("notify(n) wakes n waiters, in order; notify_all the rest", async(function()
    local c = loom.condition()
    local woke = {}
    local ts = {}
    for i = 1, 5 do
      ts[i] = loom.spawn(function()
        local _ <close> = c:hold()
        c:wait()
        woke[#woke + 1] = i
      end)
    end
    settle()
    do
      local _ <close> = c:hold()
      c:notify(2)
    end
    settle()
    assert.are.same({ 1, 2 }, woke)
    do
      local _ <close> = c:hold()
      c:notify()
    end
    settle()
    assert.are.same({ 1, 2, 3 }, woke)
    do
      local _ <close> = c:hold()
      c:notify(0)
    end
    settle()
    assert.are.same({ 1, 2, 3 }, woke)
    do
      local _ <close> = c:hold()
      c:notify_all()
    end
    for i = 1, 5 do ts[i]:await() end
    assert.are.same({ 1, 2, 3, 4, 5 }, woke)
  end))

  it("notify with nobody waiting is not remembered", async(function()
    local c = loom.condition()
    do
      local _ <close> = c:hold()
      c:notify()
      c:notify_all()
    end
    local woke = false
    local t = loom.spawn(function()
      local _ <close> = c:hold()
      c:wait()
      woke = true
    end)
    settle()
    assert.is_false(woke)
    t:cancel()
    assert.is_true(loom.is_cancelled(error_of(t)))
    assert.is_false(c.lock:locked())
  end))

  it("wait_for(pred) waits until pred is true and returns its value", async(function()
    local c = loom.condition()
    local n = 0
    local calls, held_in_pred = 0, true
    local t = loom.spawn(function()
      local _ <close> = c:hold()
      return c:wait_for(function()
        calls = calls + 1
        if not c.lock:locked() then held_in_pred = false end
        return n >= 3 and ("n=" .. n)
      end)
    end)
    for _ = 1, 3 do
      settle()
      local _ <close> = c:hold()
      n = n + 1
      c:notify_all()
    end
    assert.are.equal("n=3", t:await())
    assert.are.equal(4, calls)  -- once at first, then after each notify
    assert.is_true(held_in_pred)
    -- a true predicate returns at once
    local _ <close> = c:hold()
    assert.are.equal("n=3", c:wait_for(function() return n >= 3 and "n=" .. n end))
  end))

  it("wait, notify and notify_all require the lock", async(function()
    local c = loom.condition()
    assert.has_error(function() c:wait() end,
      "loom.condition: wait without holding its lock")
    assert.has_error(function() c:wait_for(function() return false end) end)
    assert.has_error(function() c:notify() end,
      "loom.condition: notify without holding its lock")
    assert.has_error(function() c:notify_all() end,
      "loom.condition: notify_all without holding its lock")
    assert.is_false(c.lock:locked())
  end))

  it("uses the lock it is given", async(function()
    local l = loom.lock()
    local c = loom.condition(l)
    do
      local _ <close> = c:hold()
      assert.is_true(l:locked())
    end
    assert.is_false(l:locked())
    l:acquire()
    c:notify()  -- allowed: its lock is held
    local t = loom.spawn(function() l:acquire(); c:wait(); l:release(); return "woke" end)
    l:release()
    settle()
    assert.is_false(l:locked())
    l:acquire()
    c:notify()
    l:release()
    assert.are.equal("woke", t:await())
  end))

  it("a waiter cancelled after notify passes the notification on", async(function()
    local c = loom.condition()
    local woke = {}
    local a_err, a_held
    local a = loom.spawn(function()
      c.lock:acquire()
      local ok, e = pcall(c.wait, c)
      a_err, a_held = (not ok) and e, c.lock:locked()
      c.lock:release()
    end)
    local b = loom.spawn(function()
      local _ <close> = c:hold()
      c:wait()
      woke[#woke + 1] = "b"
    end)
    settle()
    do
      local _ <close> = c:hold()
      c:notify(1)   -- goes to a ...
      a:cancel()    -- ... which is cancelled before it runs
    end
    a:await()
    b:await()
    assert.is_true(loom.is_cancelled(a_err))
    assert.is_true(a_held)
    assert.are.same({ "b" }, woke)
    assert.is_false(c.lock:locked())
  end))

  it("the lock is held again when wait raises Cancelled", async(function()
    local c = loom.condition()
    local progress = {}
    local a = loom.spawn(function()
      c.lock:acquire()
      local ok, e = pcall(c.wait, c)
      progress[#progress + 1] = { ok = ok, cancelled = loom.is_cancelled(e),
                                  locked = c.lock:locked() }
      loom.sleep(0.05)  -- keeps the lock: nobody else may get in
      progress[#progress + 1] = "a releases"
      c.lock:release()
    end)
    settle()
    -- someone else holds the lock while a is cancelled
    c.lock:acquire()
    a:cancel()
    local other = loom.spawn(function()
      c.lock:acquire()
      progress[#progress + 1] = "other holds"
      c.lock:release()
    end)
    settle()
    assert.are.same({}, progress)  -- a waits for the lock before raising
    c.lock:release()
    a:await()
    other:await()
    assert.are.same({ { ok = false, cancelled = true, locked = true },
                      "a releases", "other holds" }, progress)
    assert.is_false(c.lock:locked())
  end, VIRTUAL))

  it("a notified waiter cancelled while it waits to get the lock back passes the notification on", async(function()
    local c = loom.condition()
    local woke = {}
    local a_err, a_held
    local a = loom.spawn(function()
      c.lock:acquire()
      local ok, e = pcall(c.wait, c)
      a_err, a_held = (not ok) and e, c.lock:locked()
      c.lock:release()
    end)
    local b = loom.spawn(function()
      local _ <close> = c:hold()
      c:wait()
      woke[#woke + 1] = "b"
    end)
    settle()
    c.lock:acquire()
    c:notify(1)   -- goes to a, which wakes and queues for the lock ...
    settle()
    a:cancel()    -- ... and is cancelled there: wait raises Cancelled
    c.lock:release()
    a:await()
    assert.is_true(loom.is_cancelled(a_err))
    assert.is_true(a_held)
    -- a reports that it was not woken by the notify: b must get it
    local done = loom.wait({ b }, { timeout = 1 })
    if #done == 0 then b:cancel(); pcall(loom.await, b) end
    assert.are.same({ "b" }, woke)
    assert.is_false(c.lock:locked())
  end, VIRTUAL))

  it("a waiter cancelled before any notify does not swallow the next one", async(function()
    local c = loom.condition()
    local woke = {}
    local a = loom.spawn(function() local _ <close> = c:hold(); c:wait(); woke[#woke + 1] = "a" end)
    local b = loom.spawn(function() local _ <close> = c:hold(); c:wait(); woke[#woke + 1] = "b" end)
    settle()
    a:cancel()
    assert.is_true(loom.is_cancelled(error_of(a)))
    do
      local _ <close> = c:hold()
      c:notify(1)
    end
    b:await()
    assert.are.same({ "b" }, woke)
  end))

  it("raises on bad input", async(function()
    assert.has_error(function() loom.condition(42) end,
      "bad argument #1 to 'loom.condition' (loom.lock expected, got number)")
    assert.has_error(function() loom.condition({}) end)
    assert.has_error(function() loom.condition(loom.event()) end)
    local c = loom.condition()
    for _, m in ipairs { "wait", "wait_for", "notify", "notify_all" } do
      assert.error_matches(function() c[m]({}) end,
        "bad argument #1 to '.-' %(loom%.condition expected, got table%)")
    end
    assert.has_error(function() c.hold(42) end)
    c.lock:acquire()
    assert.has_error(function() c:notify(-1) end)
    assert.has_error(function() c:notify("two") end)
    assert.has_error(function() c:notify({}) end)
    c.lock:release()
  end))
end)

describe("loom.semaphore", function()
  it("lets at most n tasks in at once", async(function()
    local s = loom.semaphore(2)
    local inside, max_inside, finished = 0, 0, 0
    local ts = {}
    for i = 1, 6 do
      ts[i] = loom.spawn(function()
        local _ <close> = s:hold()
        inside = inside + 1
        if inside > max_inside then max_inside = inside end
        loom.sleep(0.01 * i)
        inside = inside - 1
        finished = finished + 1
      end)
    end
    settle()
    assert.are.equal(2, inside)
    assert.are.equal(0, s:available())
    for i = 1, 6 do ts[i]:await() end
    assert.are.equal(2, max_inside)
    assert.are.equal(6, finished)
    assert.are.equal(2, s:available())
  end, VIRTUAL))

  it("is fair: waiters get permits in arrival order, a newcomer cannot barge in", async(function()
    local s = loom.semaphore(1)
    local order = {}
    s:acquire()
    local ts = {}
    for i = 1, 4 do
      ts[i] = loom.spawn(function() s:acquire(); order[#order + 1] = i; loom.yield(); s:release() end)
      loom.yield()
    end
    s:release()
    assert.are.equal(0, s:available())  -- handed straight over
    s:acquire()
    order[#order + 1] = "main"
    s:release()
    for i = 1, 4 do ts[i]:await() end
    assert.are.same({ 1, 2, 3, 4, "main" }, order)
    assert.are.equal(1, s:available())
  end))

  it("available() counts the free permits", async(function()
    local s = loom.semaphore(3)
    assert.are.equal(3, s:available())
    s:acquire()
    assert.are.equal(2, s:available())
    do
      local _ <close> = s:hold()
      assert.are.equal(1, s:available())
    end
    assert.are.equal(2, s:available())
    s:release()
    assert.are.equal(3, s:available())
    assert.matches("3 of 3", tostring(s))
  end))

  it(":hold() releases its permit when the block raises", async(function()
    local s = loom.semaphore(1)
    local ok, e = pcall(function()
      local _ <close> = s:hold()
      assert.are.equal(0, s:available())
      error("inside", 0)
    end)
    assert.is_false(ok)
    assert.are.equal("inside", e)
    assert.are.equal(1, s:available())
  end))

  it("semaphore(0) makes acquire wait for a release", async(function()
    local s = loom.semaphore(0)
    local got = false
    local t = loom.spawn(function() s:acquire(); got = true end)
    settle()
    assert.is_false(got)
    s:release()
    t:await()
    assert.is_true(got)
    assert.are.equal(0, s:available())
  end))

  it("bounded: release past n raises", async(function()
    local s = loom.semaphore(2, { bounded = true })
    assert.has_error(function() s:release() end,
      "loom.semaphore: released more times than acquired")
    assert.are.equal(2, s:available())
    s:acquire()
    s:release()
    assert.has_error(function() s:release() end,
      "loom.semaphore: released more times than acquired")
    assert.are.equal(2, s:available())
  end))

  it("unbounded: release may grow it past n", async(function()
    local s = loom.semaphore(1)
    s:release()
    s:release()
    assert.are.equal(3, s:available())
    for _ = 1, 3 do s:acquire() end
    assert.are.equal(0, s:available())
    local s2 = loom.semaphore(1, { bounded = false })
    s2:release()
    assert.are.equal(2, s2:available())
  end))

  it("a waiter cancelled while queued never takes a permit", async(function()
    local s = loom.semaphore(1)
    local got = {}
    s:acquire()
    local b = loom.spawn(function() s:acquire(); got[#got + 1] = "b" end)
    local c = loom.spawn(function() s:acquire(); got[#got + 1] = "c"; s:release() end)
    settle()
    b:cancel()
    assert.is_true(loom.is_cancelled(error_of(b)))
    assert.are.equal(0, s:available())
    s:release()
    c:await()
    assert.are.same({ "c" }, got)
    assert.are.equal(1, s:available())
  end))

  it("a waiter cancelled just after being handed a permit passes it on", async(function()
    local s = loom.semaphore(1)
    local got = {}
    s:acquire()
    local b = loom.spawn(function() s:acquire(); got[#got + 1] = "b"; s:release() end)
    local c = loom.spawn(function() s:acquire(); got[#got + 1] = "c"; s:release() end)
    settle()
    s:release()   -- handed to b ...
    b:cancel()    -- ... cancelled before it runs
    assert.is_true(loom.is_cancelled(error_of(b)))
    assert.is_nil(error_of(c))
    assert.are.same({ "c" }, got)
    assert.are.equal(1, s:available())
  end))

  it("a permit handed to the only waiter, cancelled, comes back (bounded too)", async(function()
    for _, opts in ipairs { {}, { bounded = true } } do
      local s = loom.semaphore(2, opts)
      s:acquire(); s:acquire()
      local b = loom.spawn(function() s:acquire(); return "got" end)
      settle()
      s:release()
      b:cancel()
      assert.is_true(loom.is_cancelled(error_of(b)))
      assert.are.equal(1, s:available())
      s:release()
      assert.are.equal(2, s:available())
    end
  end))

  it("raises on bad input", function()
    assert.has_error(function() loom.semaphore(-1) end)
    assert.has_error(function() loom.semaphore(1.5) end)
    assert.has_error(function() loom.semaphore("2") end)
    assert.has_error(function() loom.semaphore() end)
    assert.has_error(function() loom.semaphore(0 / 0) end)
    assert.error_matches(function() loom.semaphore(-1) end,
      "bad argument #1 to 'loom.semaphore' %(non%-negative integer expected")
    assert.has_error(function() loom.semaphore(1, "bounded") end,
      "bad argument #2 to 'loom.semaphore' (table expected, got string)")
    local s = loom.semaphore(1)
    for _, m in ipairs { "acquire", "release", "available" } do
      assert.error_matches(function() s[m](42) end,
        "bad argument #1 to '.-' %(loom%.semaphore expected, got number%)")
      assert.has_error(function() s[m](loom.lock()) end)
    end
    assert.has_error(function() s.hold(42) end)
    assert.are.equal(1, s:available())
  end)
end)

describe(":hold()", function()
  -- Every other method refuses a receiver of the wrong type with
  -- "bad argument #1 to '<method>' (<type> expected, got ...)"; so must hold.
  it("refuses a receiver of the wrong type, as the other methods do", async(function()
    local l, s, c = loom.lock(), loom.semaphore(1), loom.condition()
    assert.error_matches(function() l.hold(42) end,
      "bad argument #1 to 'lock:hold' %(loom%.lock expected")
    assert.error_matches(function() s.hold(42) end,
      "bad argument #1 to 'semaphore:hold' %(loom%.semaphore expected")
    assert.error_matches(function() c.hold(42) end,
      "bad argument #1 to 'condition:hold' %(loom%.condition expected")
    -- a primitive of another kind must not be taken instead
    local other = loom.lock()
    assert.has_error(function() s.hold(other) end)
    assert.is_false(other:locked())
    local sem = loom.semaphore(1)
    assert.has_error(function() l.hold(sem) end)
    assert.are.equal(1, sem:available())
  end))
end)
