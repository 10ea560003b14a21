local loom = require "loom"
local h = require "spec.helper"
local async = require("loom.busted").async
local failing, until_cancelled = h.failing, h.until_cancelled

local pack = table.pack
local V = h.VIRTUAL
local SRC = debug.getinfo(1, "S").short_src

-- A function that sleeps 's' seconds, appends 'name' to 'log' (if any)
-- and returns the remaining arguments.
local function after(s, log, name, ...)
  local vals = pack(...)
  return function()
    loom.sleep(s)
    if log then log[#log + 1] = name end
    return table.unpack(vals, 1, vals.n)
  end
end

local near, since, assert_cancelled = h.near, h.since, h.assert_cancelled
local lua_src = h.lua_src

-- Tasks a, b, c and future f, done in the order b (0.1 s), c and f
-- (0.2 s: c sets f), a (0.3 s), with results "a", "b", "f" and none.
local function three_and_a_future()
  local a = loom.spawn(after(0.3, nil, nil, "a"))
  local b = loom.spawn(after(0.1, nil, nil, "b"))
  local f = loom.future()
  local c = loom.spawn(function() loom.sleep(0.2); f:set_result("f") end)
  return a, b, f, c
end

describe("loom combinators", function()
  describe("gather", function()
    it("returns the results in argument order, whatever the finishing order", async(function()
      local log = {}
      local t0 = loom.now()
      local a = loom.spawn(after(0.3, log, "a", "A"))
      local b = loom.spawn(after(0.1, log, "b", "B"))
      local f = loom.future()
      loom.spawn(function()
        loom.sleep(0.2)
        log[#log + 1] = "f"
        f:set_result("F")
      end)
      local r = pack(loom.gather(a, b, f, after(0.05, log, "fn", "FN")))
      assert.are.same({ n = 4, "A", "B", "F", "FN" }, r)
      assert.are.same({ "fn", "b", "f", "a" }, log)
      near(0.3, since(t0))
      assert.is_true(a:done() and b:done() and f:done())
    end, V))

    it("spawns functions and callable tables as tasks of their own", async(function()
      local me = loom.current()
      local seen = {}
      local callable = setmetatable({}, { __call = function()
        seen[#seen + 1] = loom.current()
        return "called"
      end })
      local r = pack(loom.gather(function()
        seen[#seen + 1] = loom.current()
        return "fn"
      end, callable))
      assert.are.same({ n = 2, "fn", "called" }, r)
      assert.are.equal(2, #seen)
      assert.are.equal("userdata", type(seen[1]))
      assert.are_not.equal(me, seen[1])
      assert.are_not.equal(me, seen[2])
      assert.are_not.equal(seen[1], seen[2])
      assert.is_true(seen[1]:done() and seen[2]:done())
    end))

    it("returns only the first result of multi-value tasks", async(function()
      local r = pack(loom.gather(
        function() return 1, 2, 3 end,
        function() return nil, "second" end,
        function() end,
        function() loom.sleep(0.01); return "x", "y" end))
      assert.are.equal(4, r.n)
      assert.are.equal(1, r[1])
      assert.is_nil(r[2])
      assert.is_nil(r[3])
      assert.are.equal("x", r[4])
    end, V))

    it("returns nothing at once for no arguments", async(function()
      local t0 = loom.now()
      assert.are.equal(0, select("#", loom.gather()))
      assert.are.equal(t0, loom.now())
    end, V))

    it("raises the first error unchanged (a table stays the same table)", async(function()
      local err = setmetatable({ "boom" }, { __tostring = function() return "boom" end })
      local ok, e = pcall(loom.gather, after(0.5, nil, nil, 1), failing(0.1, err),
        failing(0.3, { "later" }))
      assert.is_false(ok)
      assert.are.equal(err, e)
      assert.are.same({ "boom" }, e)
    end, V))

    it("raises the first error unchanged (a string stays the same string)", async(function()
      local t0 = loom.now()
      local ok, e = pcall(loom.gather, failing(0.2, "second failure"),
        failing(0.1, "first failure"), after(1, nil, nil, 1))
      assert.is_false(ok)
      assert.are.equal("first failure", e)
      near(0.1, since(t0))
    end, V))

    it("cancels the others on the first error, their cleanup done when it raises", async(function()
      local log = {}
      local t0 = loom.now()
      local b = loom.spawn(until_cancelled(log, "b", 0.5))
      local c = loom.spawn(until_cancelled(log, "c", 0.2))
      local ok, e = pcall(loom.gather, b, failing(0.1, "failed"), c)
      assert.is_false(ok)
      assert.are.equal("failed", e)
      assert.are.same({ "c", "b" }, log)
      assert.is_true(b:done() and c:done())
      assert.is_true(b:cancelled())
      assert.is_true(c:cancelled())
      near(0.6, since(t0))
      assert.are.equal(1, #loom.tasks())
    end, V))

    it("cancelling the task that runs it cancels every child", async(function()
      local log = {}
      local a = loom.spawn(until_cancelled(log, "a", 0.1))
      local b = loom.spawn(until_cancelled(log, "b"))
      local f = loom.future()
      local runner = loom.spawn(function()
        return loom.gather(a, b, until_cancelled(log, "fn"), f)
      end)
      loom.sleep(0.5)
      assert.are.equal(5, #loom.tasks())
      assert.is_true(runner:cancel("stop"))
      local ok, e = pcall(loom.await, runner)
      assert.is_false(ok)
      assert_cancelled(e)
      assert.is_true(runner:cancelled())
      assert.is_true(a:cancelled())
      assert.is_true(b:cancelled())
      assert.is_true(f:cancelled())
      table.sort(log)
      assert.are.same({ "a", "b", "fn" }, log)
      assert.are.equal(1, #loom.tasks())
    end, V))

    it("raises loom.Cancelled when a child is cancelled", async(function()
      local t0 = loom.now()
      local a = loom.spawn(after(10, nil, nil, 1))
      local b = loom.spawn(after(5, nil, nil, 2))
      loom.spawn(function() loom.sleep(0.1); a:cancel("stop a") end)
      local ok, e = pcall(loom.gather, a, b)
      assert.is_false(ok)
      assert_cancelled(e)
      assert.are.equal("stop a", e.message)
      assert.is_true(b:cancelled())
      near(0.1, since(t0))
      -- the task that ran gather is not cancelled itself
      assert.is_false(loom.current():cancelled())
      loom.sleep(0.1)
      near(0.2, since(t0))
    end, V))

    it("raises on something that is not awaitable", async(function()
      local t = loom.spawn(function() end)
      assert.error_matches(function() loom.gather(42) end,
        "bad argument #1 to 'loom.gather' %(Task, Future or function expected, got number%)")
      assert.error_matches(function() loom.gather(t, "x") end,
        "bad argument #2 to 'loom.gather' %(.*expected, got string%)")
      assert.error_matches(function() loom.gather(t, t, {}) end,
        "bad argument #3 to 'loom.gather' %(.*expected, got table%)")
      assert.error_matches(function() loom.gather(nil, t) end,
        "bad argument #1 to 'loom.gather' %(.*expected, got nil%)")
      t:await()
    end))

    it("raises outside a task with its own name", function()
      assert.has_error(function() loom.gather(loom.future()) end,
        "loom: loom.gather called outside a task (use loom.run or the loom binary)")
    end)

    it("raises outside a task when given a function, and does not hang", function()
      local out, _, code = lua_src([[
        local loom = require "loom"
        local ok, e = pcall(loom.gather, function() end)
        print(ok, e)
      ]], 3)
      assert.are.equal(0, code)
      assert.are.equal("false\tloom: loom.gather called outside a task (use "
        .. "loom.run or the loom binary)\n", out)
    end)
  end)

  describe("settle", function()
    it("returns one table per argument, in argument order, counting nils", async(function()
      local tbl = {}
      local t0 = loom.now()
      local f = loom.future()
      local victim = loom.spawn(after(10, nil, nil, 1))
      loom.spawn(function()
        loom.sleep(0.2)
        f:set_error("future failed")
        victim:cancel("cut short")
      end)
      local rs = pack(loom.settle(
        after(0.3, nil, nil, 1, nil, 3, nil),
        failing(0.1, tbl),
        function() end,
        f,
        victim,
        function() return nil end))
      assert.are.equal(6, rs.n)
      assert.are.same({ ok = true, n = 4, 1, nil, 3, nil }, rs[1])
      assert.are.equal(4, rs[1].n)
      assert.are.same({ ok = false, error = tbl }, rs[2])
      assert.are.equal(tbl, rs[2].error)
      assert.are.same({ ok = true, n = 0 }, rs[3])
      assert.are.same({ ok = false, error = "future failed" }, rs[4])
      assert.is_false(rs[5].ok)
      assert_cancelled(rs[5].error)
      assert.are.equal("cut short", rs[5].error.message)
      assert.are.same({ ok = true, n = 1 }, rs[6])
      near(0.3, since(t0))
    end, V))

    it("never raises a child's error and waits for every child", async(function()
      local t0 = loom.now()
      local log = {}
      local rs = pack(loom.settle(failing(0.1, "one"), failing(0.2, { "two" }),
        after(0.5, log, "slow", "done")))
      assert.are.equal(3, rs.n)
      assert.are.same({ ok = false, error = "one" }, rs[1])
      assert.are.same({ ok = false, error = { "two" } }, rs[2])
      assert.are.same({ ok = true, n = 1, "done" }, rs[3])
      assert.are.same({ "slow" }, log)
      near(0.5, since(t0))
    end, V))

    it("returns nothing for no arguments", async(function()
      assert.are.equal(0, select("#", loom.settle()))
    end))

    it("cancelling the task that runs it cancels every child", async(function()
      local log = {}
      local a = loom.spawn(until_cancelled(log, "a", 0.1))
      local runner = loom.spawn(function()
        return loom.settle(a, until_cancelled(log, "fn"))
      end)
      loom.sleep(0.5)
      runner:cancel()
      local ok, e = pcall(loom.await, runner)
      assert.is_false(ok)
      assert_cancelled(e)
      assert.is_true(a:cancelled())
      table.sort(log)
      assert.are.same({ "a", "fn" }, log)
      assert.are.equal(1, #loom.tasks())
    end, V))

    it("raises on something that is not awaitable", async(function()
      assert.error_matches(function() loom.settle(42) end,
        "bad argument #1 to 'loom.settle' %(Task, Future or function expected, got number%)")
      assert.error_matches(function() loom.settle(loom.future(), true) end,
        "bad argument #2 to 'loom.settle' %(.*expected, got boolean%)")
    end))
  end)

  describe("race", function()
    it("returns all the results of the first to finish", async(function()
      local t0 = loom.now()
      local r = pack(loom.race(after(0.3, nil, nil, "slow"),
        after(0.1, nil, nil, "fast", 2, nil), after(0.2, nil, nil, "middle")))
      assert.are.same({ n = 3, "fast", 2, nil }, r)
      near(0.1, since(t0))
    end, V))

    it("cancels the rest, which have finished when it returns", async(function()
      local log = {}
      local t0 = loom.now()
      local slow = loom.spawn(until_cancelled(log, "slow", 0.2))
      local other = loom.spawn(until_cancelled(log, "other", 0.4))
      local f = loom.future()
      local r = loom.race(slow, after(0.1, nil, nil, "won"), other, f)
      assert.are.equal("won", r)
      assert.are.same({ "slow", "other" }, log)
      assert.is_true(slow:cancelled())
      assert.is_true(other:cancelled())
      assert.is_true(f:cancelled())
      near(0.5, since(t0))
      assert.are.equal(1, #loom.tasks())
    end, V))

    it("raises the error of the first to finish, unchanged", async(function()
      local log = {}
      local err = { "first" }
      local loser = loom.spawn(until_cancelled(log, "loser"))
      local ok, e = pcall(loom.race, loser, failing(0.1, err),
        after(0.2, nil, nil, "later"))
      assert.is_false(ok)
      assert.are.equal(err, e)
      assert.is_true(loser:cancelled())
      assert.are.same({ "loser" }, log)
      local ok2, e2 = pcall(loom.race, failing(0.1, "string error"),
        after(0.2, nil, nil, "later"))
      assert.is_false(ok2)
      assert.are.equal("string error", e2)
    end, V))

    it("cancelling the task that runs it cancels every contender", async(function()
      local log = {}
      local a = loom.spawn(until_cancelled(log, "a"))
      local runner = loom.spawn(function()
        return loom.race(a, until_cancelled(log, "fn", 0.1))
      end)
      loom.sleep(0.5)
      runner:cancel()
      local ok, e = pcall(loom.await, runner)
      assert.is_false(ok)
      assert_cancelled(e)
      assert.is_true(a:cancelled())
      assert.are.same({ "a", "fn" }, log)
      assert.are.equal(1, #loom.tasks())
    end, V))

    it("raises on no arguments and on something that is not awaitable", async(function()
      assert.error_matches(function() loom.race() end,
        "bad argument #1 to 'loom.race' %(nothing to race%)")
      assert.error_matches(function() loom.race(42) end,
        "bad argument #1 to 'loom.race' %(Task, Future or function expected, got number%)")
      assert.error_matches(function() loom.race(loom.future(), "x") end,
        "bad argument #2 to 'loom.race' %(.*expected, got string%)")
    end))
  end)

  describe("settle and race outside a task", function()
    it("raise with their own names and do not hang", function()
      local out, _, code = lua_src([[
        local loom = require "loom"
        print(select(2, pcall(loom.settle, function() end)))
        print(select(2, pcall(loom.race, function() end)))
      ]], 3)
      assert.are.equal(0, code)
      assert.are.equal(
        "loom: loom.settle called outside a task (use loom.run or the loom binary)\n"
        .. "loom: loom.race called outside a task (use loom.run or the loom binary)\n",
        out)
    end)
  end)

  describe("wait", function()
    it("waits for all by default; done in list order", async(function()
      local t0 = loom.now()
      local a, b, f, c = three_and_a_future()
      local done, pending = loom.wait({ a, b, f, c })
      assert.are.same({ a, b, f, c }, done)
      assert.are.equal(a, done[1])
      assert.are.equal(f, done[3])
      assert.are.same({}, pending)
      near(0.3, since(t0))
      local done2, pending2 = loom.wait({ b, a }, { return_when = "all" })
      assert.are.same({ b, a }, done2)
      assert.are.same({}, pending2)
    end, V))

    it("return_when = 'first' returns as soon as one is done", async(function()
      local t0 = loom.now()
      local a = loom.spawn(after(0.3, nil, nil, "a"))
      local b = loom.spawn(after(0.1, nil, nil, "b"))
      local c = loom.spawn(after(0.2, nil, nil, "c"))
      local done, pending = loom.wait({ a, b, c }, { return_when = "first" })
      near(0.1, since(t0))
      assert.are.equal(1, #done)
      assert.are.equal(b, done[1])
      assert.are.equal(2, #pending)
      assert.are.equal(a, pending[1])
      assert.are.equal(c, pending[2])
      -- nothing was cancelled
      assert.are.equal("a", a:await())
      assert.are.equal("c", c:await())
      assert.is_false(a:cancelled() or c:cancelled())
    end, V))

    it("return_when = 'first' counts a failure as done", async(function()
      local a = loom.spawn(after(0.3, nil, nil, "a"))
      local b = loom.spawn(failing(0.1, "b failed"))
      local done, pending = loom.wait({ a, b }, { return_when = "first" })
      assert.are.same({ b }, done)
      assert.are.same({ a }, pending)
      assert.are.equal("b failed", b:error())
      a:cancel()
    end, V))

    it("return_when = 'first' returns at once when one is already done", async(function()
      local a = loom.spawn(after(1, nil, nil, "a"))
      local b = loom.spawn(function() return "b" end)
      loom.sleep(0)
      assert.is_true(b:done())
      local t0 = loom.now()
      local done, pending = loom.wait({ a, b }, { return_when = "first" })
      assert.are.equal(t0, loom.now())
      assert.are.same({ b }, done)
      assert.are.same({ a }, pending)
      a:cancel()
    end, V))

    it("return_when = 'first_error' returns at the first failure", async(function()
      local t0 = loom.now()
      local a = loom.spawn(after(0.1, nil, nil, "a"))
      local b = loom.spawn(after(0.4, nil, nil, "b"))
      local c = loom.spawn(failing(0.2, "c failed"))
      local d = loom.spawn(after(0.3, nil, nil, "d"))
      local done, pending = loom.wait({ a, b, c, d }, { return_when = "first_error" })
      near(0.2, since(t0))
      assert.are.same({ a, c }, done)
      assert.are.equal(a, done[1])
      assert.are.equal(c, done[2])
      assert.are.same({ b, d }, pending)
      assert.are.equal(b, pending[1])
      assert.are.equal(d, pending[2])
      assert.are.equal("c failed", c:error())
      -- nothing was cancelled
      assert.are.equal("d", d:await())
      assert.are.equal("b", b:await())
    end, V))

    it("return_when = 'first_error' waits for all when none fails", async(function()
      local t0 = loom.now()
      local a = loom.spawn(after(0.2, nil, nil, "a"))
      local b = loom.spawn(after(0.1, nil, nil, "b"))
      local done, pending = loom.wait({ a, b }, { return_when = "first_error" })
      near(0.2, since(t0))
      assert.are.same({ a, b }, done)
      assert.are.same({}, pending)
    end, V))

    it("returns what is done when the timeout passes, and cancels nothing", async(function()
      local t0 = loom.now()
      local a = loom.spawn(after(0.1, nil, nil, "a"))
      local b = loom.spawn(after(5, nil, nil, "b"))
      local c = loom.spawn(after(0.5, nil, nil, "c"))
      local done, pending = loom.wait({ a, b, c }, { timeout = 1 })
      near(1, since(t0))
      assert.are.same({ a, c }, done)
      assert.are.same({ b }, pending)
      assert.is_false(b:done())
      assert.are.equal("b", b:await())
      near(5, since(t0))
      assert.is_false(b:cancelled())
    end, V))

    it("returns before the timeout when all are done, and leaves no deadline behind", async(function()
      local t0 = loom.now()
      local a = loom.spawn(after(0.2, nil, nil, "a"))
      local done, pending = loom.wait({ a }, { timeout = 1 })
      near(0.2, since(t0))
      assert.are.same({ a }, done)
      assert.are.same({}, pending)
      loom.sleep(2)
      near(2.2, since(t0))
    end, V))

    it("cancels nothing when the task that runs it is cancelled", async(function()
      local a = loom.spawn(after(1, nil, nil, "a"))
      local f = loom.future()
      local runner = loom.spawn(function() return loom.wait({ a, f }) end)
      loom.sleep(0.1)
      runner:cancel()
      local ok, e = pcall(loom.await, runner)
      assert.is_false(ok)
      assert_cancelled(e)
      assert.is_false(a:done())
      assert.is_false(f:done())
      assert.are.equal("a", a:await())
      assert.is_false(a:cancelled())
    end, V))

    it("returns two empty lists at once for an empty list", async(function()
      local t0 = loom.now()
      local done, pending = loom.wait({})
      assert.are.same({}, done)
      assert.are.same({}, pending)
      assert.are.equal(t0, loom.now())
    end, V))

    it("raises on bad arguments and options", async(function()
      local t = loom.spawn(function() end)
      assert.error_matches(function() loom.wait(42) end,
        "bad argument #1 to 'loom.wait' %(table expected, got number%)")
      assert.error_matches(function() loom.wait() end,
        "bad argument #1 to 'loom.wait' %(table expected, got nil%)")
      assert.error_matches(function() loom.wait({ t }, 42) end,
        "bad argument #2 to 'loom.wait' %(table expected, got number%)")
      assert.error_matches(function() loom.wait({ t }, { return_when = "any" }) end,
        "bad argument #2 to 'loom.wait' %(invalid return_when 'any'")
      assert.error_matches(function() loom.wait({ t }, { return_when = "FIRST" }) end,
        "invalid return_when 'FIRST'")
      assert.error_matches(function() loom.wait({ t }, { timeout = -1 }) end,
        "bad argument #2 to 'loom.wait' %(timeout must be a non%-negative number%)")
      assert.error_matches(function() loom.wait({ t }, { timeout = "1" }) end,
        "timeout must be a non%-negative number")
      assert.error_matches(function() loom.wait({ t }, { timeout = 0 / 0 }) end,
        "timeout must be a non%-negative number")
      -- functions are not spawned by wait
      assert.error_matches(function() loom.wait({ t, function() end }) end,
        "'loom.wait' %(.*Future expected, got function%)")
      assert.error_matches(function() loom.wait({ 42 }) end,
        "'loom.wait' %(.*Future expected, got number%)")
      t:await()
    end))

    it("reports bad elements at the line that called it", async(function()
      local ok, e = pcall(function() loom.wait({ 42 }) end); local line = debug.getinfo(1, "l").currentline
      assert.is_false(ok)
      assert.are.equal(("%s:%d:"):format(SRC, line), e:match("^[^:]+:%d+:"))
    end))

    it("raises outside a task with its own name", function()
      assert.has_error(function() loom.wait({ loom.future() }) end,
        "loom: loom.wait called outside a task (use loom.run or the loom binary)")
    end)
  end)

  describe("as_completed", function()
    it("yields each task as it finishes, and ends after the last", async(function()
      local t0 = loom.now()
      local a, b, f, c = three_and_a_future()
      local seen, at = {}, {}
      for t in loom.as_completed({ a, b, f }) do
        assert.is_true(t:done())
        seen[#seen + 1] = t:result()
        at[#at + 1] = since(t0)
      end
      assert.are.same({ "b", "f", "a" }, seen)
      near(0.1, at[1]); near(0.2, at[2]); near(0.3, at[3])
      c:await()
    end, V))

    it("yields the already finished ones first, in list order", async(function()
      local p = loom.spawn(after(0.2, nil, nil, "p"))
      local q = loom.spawn(after(0.1, nil, nil, "q"))
      local slow = loom.spawn(after(0.5, nil, nil, "slow"))
      loom.sleep(0.3)
      local t0 = loom.now()
      local seen = {}
      for t in loom.as_completed({ slow, p, q }) do seen[#seen + 1] = t end
      assert.are.same({ p, q, slow }, seen)
      assert.are.equal(p, seen[1])
      assert.are.equal(q, seen[2])
      near(0.2, since(t0))
    end, V))

    it("yields failed tasks without raising their errors", async(function()
      local err = {}
      local bad = loom.spawn(failing(0.1, err))
      local good = loom.spawn(after(0.2, nil, nil, 1))
      local seen = {}
      for t in loom.as_completed({ good, bad }) do seen[#seen + 1] = t end
      assert.are.same({ bad, good }, seen)
      assert.are.equal(err, bad:error())
    end, V))

    it("keeps returning nil after the last, and yields nothing for an empty list", async(function()
      local a = loom.spawn(after(0.1, nil, nil, 1))
      local it = loom.as_completed({ a })
      assert.are.equal(a, it())
      assert.is_nil(it())
      assert.is_nil(it())
      local n = 0
      for _ in loom.as_completed({}) do n = n + 1 end
      assert.are.equal(0, n)
    end, V))

    it("cancels nothing when the loop is left early", async(function()
      local a = loom.spawn(after(0.1, nil, nil, "a"))
      local b = loom.spawn(after(0.5, nil, nil, "b"))
      for t in loom.as_completed({ a, b }) do
        assert.are.equal(a, t)
        if t == a then break end
      end
      assert.is_false(b:done())
      assert.are.equal("b", b:await())
      assert.is_false(b:cancelled())
    end, V))

    it("raises on bad arguments", async(function()
      assert.error_matches(function() loom.as_completed(42) end,
        "bad argument #1 to 'loom.as_completed' %(table expected, got number%)")
      assert.error_matches(function() loom.as_completed() end,
        "bad argument #1 to 'loom.as_completed' %(table expected, got nil%)")
      assert.error_matches(function() loom.as_completed({ loom.future(), 42 }) end,
        "'loom.as_completed' %(.*Future expected, got number%)")
      assert.error_matches(function() loom.as_completed({ function() end }) end,
        "'loom.as_completed' %(.*Future expected, got function%)")
    end))

    it("reports bad elements at the line that called it", async(function()
      local ok, e = pcall(function() loom.as_completed({ 42 }) end); local line = debug.getinfo(1, "l").currentline
      assert.is_false(ok)
      assert.are.equal(("%s:%d:"):format(SRC, line), e:match("^[^:]+:%d+:"))
    end))
  end)

  describe("shield", function()
    it("returns all the results of the task when not cancelled", async(function()
      local t = loom.spawn(after(0.1, nil, nil, 1, nil, "three"))
      assert.are.same({ n = 3, 1, nil, "three" }, pack(loom.shield(t)))
      local f = loom.future()
      loom.spawn(function() loom.sleep(0.1); f:set_result("fut") end)
      assert.are.equal("fut", loom.shield(f))
    end, V))

    it("cancelling the caller does not cancel the task, which completes", async(function()
      local log = {}
      local t0 = loom.now()
      local inner = loom.spawn(after(1, log, "inner", "value"))
      local caller = loom.spawn(function()
        local r = loom.shield(inner)
        log[#log + 1] = "caller went on"
        return r
      end)
      loom.sleep(0.1)
      assert.is_true(caller:cancel("go away"))
      local ok, e = pcall(loom.await, caller)
      assert.is_false(ok)
      assert_cancelled(e)
      assert.are.equal("go away", e.message)
      assert.is_true(caller:cancelled())
      near(0.1, since(t0))   -- the caller did not wait for the task
      assert.is_false(inner:done())
      assert.is_false(inner:cancelled())
      assert.are.equal("value", inner:await())
      near(1, since(t0))
      assert.are.same({ "inner" }, log)
    end, V))

    it("passes the error of the task on to the caller, unchanged", async(function()
      local err = {}
      local ok, e = pcall(loom.shield, loom.spawn(failing(0.1, err)))
      assert.is_false(ok)
      assert.are.equal(err, e)
      local ok2, e2 = pcall(loom.shield, loom.spawn(failing(0.1, "shielded failure")))
      assert.is_false(ok2)
      assert.are.equal("shielded failure", e2)
    end, V))

    it("raises on something that is not awaitable", async(function()
      assert.error_matches(function() loom.shield(42) end,
        "bad argument #1 to 'loom.shield' %(.*Future.*expected, got number%)")
      assert.error_matches(function() loom.shield() end,
        "bad argument #1 to 'loom.shield' %(.*Future.*expected, got nil%)")
      assert.error_matches(function() loom.shield({}) end,
        "bad argument #1 to 'loom.shield' %(.*Future.*expected, got table%)")
    end))

    it("reports a bad argument at the line that called it", async(function()
      local ok, e = pcall(function() loom.shield(42) end); local line = debug.getinfo(1, "l").currentline
      assert.is_false(ok)
      assert.are.equal(("%s:%d:"):format(SRC, line), e:match("^[^:]+:%d+:"))
    end))

    it("raises outside a task", function()
      assert.error_matches(function() loom.shield(loom.future()) end,
        "loom: loom.shield called outside a task %(use loom.run or the loom binary%)$")
    end)
  end)

  describe("errors they do not hand back", function()
    it("wait: a failure nobody reads is reported, and the exit status is 1", function()
      local out, err, code = h.run_src([[
        local t = loom.spawn(function() loom.sleep(0.01); error("nobody reads this", 0) end)
        t.name = "unread"
        local done, pending = loom.wait({ t })
        print(#done, #pending)
      ]])
      assert.are.equal("1\t0\n", out)
      assert.matches("error in task 'unread': [^\n]*nobody reads this", err)
      assert.are.equal(1, code)
    end)

    it("wait: a failure read afterwards is not reported", function()
      local out, err, code = h.run_src([[
        local t = loom.spawn(function() loom.sleep(0.01); error("read later", 0) end)
        local done = loom.wait({ t })
        print(done[1]:error())
      ]])
      assert.are.equal("read later\n", out)
      assert.are.equal("", err)
      assert.are.equal(0, code)
    end)

    it("as_completed: a failure nobody reads is reported", function()
      local _, err, code = h.run_src([[
        local t = loom.spawn(function() error("iterated over", 0) end)
        for _ in loom.as_completed({ t }) do end
      ]])
      assert.matches("iterated over", err)
      assert.are.equal(1, code)
    end)

    it("gather: a child failing in its cleanup after another failed is reported", function()
      local out, err, code = h.run_src([[
        local ok, e = pcall(loom.gather,
          function() loom.sleep(0.01); error("raised by gather", 0) end,
          function()
            pcall(loom.sleep, 10)
            error("failed in cleanup", 0)
          end)
        print(e)
      ]])
      assert.are.equal("raised by gather\n", out)
      assert.matches("failed in cleanup", err)
      assert.is_nil(err:find("raised by gather", 1, true))
      assert.are.equal(1, code)
    end)

    it("race: a loser failing in its cleanup is reported", function()
      local out, err, code = h.run_src([[
        print(loom.race(function() loom.sleep(0.01); return "winner" end,
          function()
            pcall(loom.sleep, 10)
            error("loser broke", 0)
          end))
      ]])
      assert.are.equal("winner\n", out)
      assert.matches("loser broke", err)
      assert.are.equal(1, code)
    end)

    it("gather and settle: the errors they hand back are not reported", function()
      local out, err, code = h.run_src([[
        print(pcall(loom.gather, function() error("given to the caller", 0) end))
        local r = loom.settle(function() error("settled", 0) end)
        print(r.error)
        print(pcall(loom.race, function() error("raced", 0) end))
      ]])
      assert.are.equal("false\tgiven to the caller\nsettled\nfalse\traced\n", out)
      assert.are.equal("", err)
      assert.are.equal(0, code)
    end)

    it("shield: a failure after the caller was cancelled is reported", function()
      local _, err, code = h.run_src([[
        local inner = loom.spawn(function() loom.sleep(0.05); error("shielded and lost", 0) end)
        local caller = loom.spawn(function() return loom.shield(inner) end)
        loom.sleep(0.01)
        caller:cancel()
        pcall(loom.await, caller)
      ]])
      assert.matches("shielded and lost", err)
      assert.are.equal(1, code)
    end)
  end)
end)
