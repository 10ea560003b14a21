local loom = require "loom"
local async = require("loom.busted").async
local helper = require "spec.helper"

-- Job 'i' in folder 'dir': creates dir/started<i>, spins until dir/go<i>
-- or dir/go exists (or 30 s went by), creates dir/ended<i> and returns
-- "released" (or "gave up").  Workers share nothing with the loop but
-- the file system.
local function until_file(dir, i)
  local function exists(p)
    local f = io.open(p)
    if f then f:close() end
    return f ~= nil
  end
  assert(io.open(dir .. "/started" .. i, "w")):close()
  local c, r = os.clock(), "gave up"
  while os.clock() - c < 30 do
    if exists(dir .. "/go" .. i) or exists(dir .. "/go") then
      r = "released"
      break
    end
  end
  assert(io.open(dir .. "/ended" .. i, "w")):close()
  return r
end

local function touch(path) assert(io.open(path, "w")):close() end

local function exists(path)
  local f = io.open(path)
  if f then f:close() end
  return f ~= nil
end

-- Waits (polling the loop, at most 30 s) until pred() holds.
local function wait_until(pred)
  for _ = 1, 3000 do
    if pred() then return end
    loom.sleep(0.01)
  end
  error("waited 30 s in vain", 2)
end

-- Releases the jobs 1..n of 'dir', waits until they ended, removes 'dir'.
local function release_all(dir, n)
  touch(dir .. "/go")
  wait_until(function()
    for i = 1, n do if not exists(dir .. "/ended" .. i) then return false end end
    return true
  end)
  helper.rmtree(dir)
end

describe("loom.work", function()
  describe("results", function()
    it("returns every result, nils included", async(function()
      local r = table.pack(loom.work(function(a, b)
        return a + b, nil, "three", nil
      end, 1, 2))
      assert.are.equal(4, r.n)
      assert.are.equal(3, r[1])
      assert.is_nil(r[2])
      assert.are.equal("three", r[3])
      assert.is_nil(r[4])
      assert.are.equal(0, select("#", loom.work(function() end)))
      local n = table.pack(loom.work(function(...) return select("#", ...), ... end, nil, nil, 3))
      assert.are.same({ n = 4, 3, nil, nil, 3 }, n)
    end))

    it("copies nil, booleans, numbers and strings exactly", async(function()
      local bin = "a\0b\255\n" .. string.rep("x", 5000)
      local i, f, big, inf, t, fa, s = loom.work(function(...) return ... end,
        3, 3.0, math.maxinteger, math.huge, true, false, bin)
      assert.are.equal("integer", math.type(i))
      assert.are.equal(3, i)
      assert.are.equal("float", math.type(f))
      assert.are.equal(math.maxinteger, big)
      assert.are.equal(math.huge, inf)
      assert.is_true(t)
      assert.is_false(fa)
      assert.are.equal(bin, s)
    end))

    it("copies nested tables both ways", async(function()
      local arg = { a = { b = { 1, 2, 3 } }, s = "x", f = 1.5, flag = true,
                    [10] = "ten", [2.5] = "float key", [true] = "bool key" }
      local got, echoed = loom.work(function(t)
        t.a.b[4] = 4              -- changes the worker's copy only
        t.added = { deep = { "yes" } }
        return t, { sum = t.a.b[1] + t.a.b[2] + t.a.b[3] }
      end, arg)
      assert.are_not.equal(arg, got)
      assert.are.same({ 1, 2, 3 }, arg.a.b)  -- the caller's table is untouched
      assert.is_nil(arg.added)
      assert.are.same({ a = { b = { 1, 2, 3, 4 } }, s = "x", f = 1.5, flag = true,
                        [10] = "ten", [2.5] = "float key", [true] = "bool key",
                        added = { deep = { "yes" } } }, got)
      assert.are.same({ sum = 6 }, echoed)
    end))

    it("copies a table met twice (no cycle) twice", async(function()
      local shared = { v = 1 }
      local a, b = loom.work(function(t) return t.x, t.y end, { x = shared, y = shared })
      assert.are.same({ v = 1 }, a)
      assert.are.same({ v = 1 }, b)
      assert.are_not.equal(a, b)
    end))

    it("copies tables nested a few dozen levels deep, and never crashes on deeper ones", function()
      -- In a subprocess: a crash must not take the whole spec file down.
      local src = ([[
        package.cpath = %q .. "/lua/?.so;" .. package.cpath
        local loom = require "loom"
        local function nest(d)
          local t = {}; local c = t
          for _ = 1, d do c.x = {}; c = c.x end
          c.leaf = "here"
          return t
        end
        local function depth(t)
          local n = 0
          while t.x do n = n + 1; t = t.x end
          return n, t.leaf
        end
        local out = loom.run(function()
          local n1, l1 = loom.work(function(t)
            local n = 0
            while t.x do n = n + 1; t = t.x end
            return n, t.leaf
          end, nest(30))
          local r = loom.work(function(d)
            local t = {}; local c = t
            for _ = 1, d do c.x = {}; c = c.x end
            c.leaf = "there"
            return t
          end, 30)
          local n2, l2 = depth(r)
          -- far deeper: copied, or refused with an error, never a crash
          local ok, n3 = pcall(loom.work, function(t)
            local n = 0
            while t.x do n = n + 1; t = t.x end
            return n
          end, nest(300))
          local third = ok and ("ok " .. n3) or ("error " .. tostring(n3))
          return table.concat({ n1, l1, n2, l2 }, " ") .. "\n" .. third
        end)
        io.write(out)
      ]]):format(helper.build)
      local path = helper.script(src)
      local out, err, code = helper.sh("timeout 30 lua5.4 " .. helper.quote(path))
      os.remove(path)
      assert.are.equal(0, code, "the subprocess failed (status " .. tostring(code)
        .. "): " .. err)
      assert.are.equal("", err)
      local lines = helper.lines(out)
      assert.are.equal("30 here 30 there", lines[1])
      assert.is_string(lines[2])
      assert.is_truthy(lines[2] == "ok 300" or lines[2]:match("^error .*loom%.work"),
        "deep table: " .. tostring(lines[2]))
    end)

    it("gives the worker Lua's standard libraries, not the caller's globals", async(function()
      _G.LOOM_WORK_SPEC_GLOBAL = "caller"
      local r = table.pack(loom.work(function()
        return type(string.format), type(table.concat), type(math.sqrt),
               type(os.clock), type(io.open), type(coroutine.wrap), type(utf8.char),
               _G.LOOM_WORK_SPEC_GLOBAL
      end))
      _G.LOOM_WORK_SPEC_GLOBAL = nil
      assert.are.same({ n = 8, "function", "function", "function", "function",
                        "function", "function", "function", nil }, r)
    end))

    it("keeps working across calls that set globals (states are reused)", async(function()
      local total = 0
      for i = 1, 30 do
        local r, seen = loom.work(function(x)
          _G.CALLS = (_G.CALLS or 0) + 1
          return x * 10, _G.CALLS
        end, i)
        assert.are.equal(i * 10, r)
        assert.are.equal("integer", math.type(seen))
        assert.is_true(seen >= 1 and seen <= i)
        if seen == 1 then total = total + 1 end
      end
      -- a fresh state sees 1; the other calls ran in a state used before
      assert.is_true(total < 30, "no state was reused")
    end))
  end)

  describe("threads", function()
    it("runs on another thread while the loop goes on", async(function()
      -- the job ends only when a task of the loop has run meanwhile
      local dir = helper.tmpdir()
      local ticker = loom.spawn(function()
        for _ = 1, 3 do loom.sleep(0.01) end
        touch(dir .. "/go1")
      end)
      assert.are.equal("released", loom.work(until_file, dir, 1))
      assert.is_true(ticker:done())
      release_all(dir, 1)
    end))

    it("completes a thousand concurrent calls with the right results", async(function()
      local ts = {}
      for i = 1, 1000 do
        ts[i] = loom.spawn(loom.work, function(x)
          return x * 2, tostring(x), { x = x }
        end, i)
      end
      for i = 1, 1000 do
        local a, b, c = ts[i]:await()
        assert.are.equal(i * 2, a)
        assert.are.equal(tostring(i), b)
        assert.are.same({ x = i }, c)
      end
    end, { timeout = 30 }))
  end)

  describe("errors", function()
    it("raises a string error in the caller, with its position", async(function()
      local ok, e = pcall(loom.work, function() error("boom") end)
      assert.is_false(ok)
      assert.is_string(e)
      assert.matches("work_spec%.lua:%d+: boom$", e)
      ok, e = pcall(loom.work, function(m) error(m, 0) end, "plain")
      assert.is_false(ok)
      assert.are.equal("plain", e)
      ok, e = pcall(loom.work, function() local x = nil; return x.field end)
      assert.is_false(ok)
      assert.matches("attempt to index", e)
    end))

    it("raises a table error in the caller as a copy", async(function()
      local ok, e = pcall(loom.work, function()
        error({ code = 42, detail = { where = "worker", list = { 1, 2 } } })
      end)
      assert.is_false(ok)
      assert.are.equal("table", type(e))
      assert.are.same({ code = 42, detail = { where = "worker", list = { 1, 2 } } }, e)
    end))

    it("keeps working after errors", async(function()
      for _ = 1, 5 do pcall(loom.work, function() error("x") end) end
      assert.are.equal(7, loom.work(function(a) return a + 1 end, 6))
    end))

    it("refuses a function in an argument, naming its path", async(function()
      local ok, e = pcall(loom.work, function(_, b) return b end, 1,
        { config = { cb = print } })
      assert.is_false(ok)
      assert.matches("bad argument #3 to 'loom.work' %(%.config%.cb:", e)
      assert.matches("function", e)
      ok, e = pcall(loom.work, function(a) return a end, function() end)
      assert.is_false(ok)
      assert.matches("bad argument #2 to 'loom.work'", e)
      assert.matches("function", e)
      ok, e = pcall(loom.work, function(a) return a end, { list = { 1, 2, io.stdout } })
      assert.is_false(ok)
      assert.matches("bad argument #2 to 'loom.work' %(%.list%[3%]:", e)
      assert.matches("userdata", e)
      ok, e = pcall(loom.work, function(a) return a end, { co = coroutine.create(print) })
      assert.is_false(ok)
      assert.matches("bad argument #2 to 'loom.work' %(%.co:", e)
      assert.matches("thread", e)
    end))

    it("refuses a function with upvalues other than _ENV", async(function()
      local x = 1
      local ok, e = pcall(loom.work, function() return x end)
      assert.is_false(ok)
      assert.matches("upvalue 'x'", e)
      -- globals (_ENV) are fine
      assert.are.equal("aaa", loom.work(function() return string.rep("a", 3) end))
    end))

    it("refuses a table with a cycle", async(function()
      local t = { name = "loop" }
      t.self = t
      local ok, e = pcall(loom.work, function(a) return a end, t)
      assert.is_false(ok)
      assert.matches("bad argument #2 to 'loom.work' %(%.self:", e)
      assert.matches("cycle", e)
      local a, b = {}, {}
      a.next, b.next = b, a
      ok, e = pcall(loom.work, function(x) return x end, { a })
      assert.is_false(ok)
      assert.matches("cycle", e)
    end))

    it("refuses a result that cannot be copied", async(function()
      local ok, e = pcall(loom.work, function() return io.stdout end)
      assert.is_false(ok)
      assert.matches("result 1", e)
      assert.matches("userdata", e)
      ok, e = pcall(loom.work, function() return 1, { f = print } end)
      assert.is_false(ok)
      assert.matches("result 2 %.f", e)
      ok, e = pcall(loom.work, function() local t = {}; t[1] = t; return t end)
      assert.is_false(ok)
      assert.matches("result 1", e)
      assert.matches("cycle", e)
      -- and the next call is fine
      assert.are.equal("ok", loom.work(function() return "ok" end))
    end))

    it("refuses a C function or a non-function as fn", async(function()
      local ok, e = pcall(loom.work, print)
      assert.is_false(ok)
      assert.matches("C function", e)
      assert.has_error(function() loom.work(42) end)
      assert.has_error(function() loom.work() end)
      assert.has_error(function() loom.work("return 1") end)
    end))

    it("raises outside a task", function()
      assert.has_error(function() loom.work(function() return 1 end) end,
        "loom: loom.work called outside a task (use loom.run or the loom binary)")
    end)
  end)

  describe("cancellation", function()
    it("runs at most as many jobs at once as the thread pool has threads", async(function()
      local size = tonumber(os.getenv("UV_THREADPOOL_SIZE")) or 4
      local dir = helper.tmpdir()
      local n = size + 3
      local ts = {}
      for i = 1, n do
        ts[i] = loom.spawn(loom.work, until_file, dir, i)
      end
      local function started()
        local k = 0
        for i = 1, n do if exists(dir .. "/started" .. i) then k = k + 1 end end
        return k
      end
      wait_until(function() return started() >= size end)
      assert.are.equal(size, started())
      -- each job released lets exactly one more start
      for more = 1, n - size do
        for i = 1, n do
          if exists(dir .. "/started" .. i) and not exists(dir .. "/go" .. i) then
            touch(dir .. "/go" .. i)
            assert.are.equal("released", ts[i]:await())
            break
          end
        end
        wait_until(function() return started() >= size + more end)
        assert.are.equal(size + more, started())
      end
      touch(dir .. "/go")
      for i = 1, n do assert.are.equal("released", ts[i]:await()) end
      release_all(dir, n)
    end, { timeout = 60 }))

    it("the caller cancelled while the job runs gets loom.Cancelled", async(function()
      local dir = helper.tmpdir()
      local t = loom.spawn(loom.work, until_file, dir, 1)
      wait_until(function() return exists(dir .. "/started1") end)
      assert.is_false(t:done())
      assert.is_true(t:cancel())
      local ok, e = pcall(loom.await, t)
      assert.is_false(ok)
      assert.is_true(loom.is_cancelled(e))
      assert.are.equal("ECANCELED", e.code)
      assert.is_true(t:cancelled())
      -- at once: the job itself still runs, until it is released
      assert.is_false(exists(dir .. "/ended1"))
      release_all(dir, 1)
      -- the next call works
      assert.are.equal(5, loom.work(function(a) return a end, 5))
    end))

    it("many cancels leak no worker state: many calls after them still work", async(function()
      local cancelled = 0
      for round = 1, 4 do
        local dir = helper.tmpdir()
        local ts = {}
        for i = 1, 4 do ts[i] = loom.spawn(loom.work, until_file, dir, i) end
        helper.settle()
        for i = 1, 4 do assert.is_true(ts[i]:cancel()) end
        for i = 1, 4 do
          local ok, e = pcall(loom.await, ts[i])
          if not ok and loom.is_cancelled(e) then cancelled = cancelled + 1 end
        end
        assert.are.equal(4 * round, cancelled)
        release_all(dir, 4)
      end
      assert.are.equal(16, cancelled)
      local ts = {}
      for i = 1, 200 do
        ts[i] = loom.spawn(loom.work, function(x) return x + 1, x .. "" end, i)
      end
      for i = 1, 200 do
        local a, b = ts[i]:await()
        assert.are.equal(i + 1, a)
        assert.are.equal(tostring(i), b)
      end
    end, { timeout = 30 }))
  end)
end)
