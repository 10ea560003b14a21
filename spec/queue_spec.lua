local loom = require "loom"
local async = require("loom.busted").async
local h = require "spec.helper"
local settle, error_of = h.settle, h.error_of

local VIRTUAL = h.VIRTUAL

-- Takes everything now in 'q' without suspending.
local function drain(q)
  local out = {}
  while true do
    local v, why = q:get_nowait()
    if v == nil then return out, why end
    out[#out + 1] = v
  end
end

describe("loom.queue", function()
  describe("ordering", function()
    it("fifo (the default) gives items in the order they were put", async(function()
      local q = loom.queue()
      for i = 1, 5 do assert.is_true(q:put(i)) end
      local got = {}
      for i = 1, 5 do got[i] = q:get() end
      assert.are.same({ 1, 2, 3, 4, 5 }, got)
      local q2 = loom.queue { order = "fifo" }
      for _, v in ipairs { "a", "b", "c" } do q2:put_nowait(v) end
      q2:get()
      q2:put("d")
      assert.are.same({ "b", "c", "d" }, drain(q2))
    end))

    it("lifo gives the last item put first", async(function()
      local q = loom.queue { order = "lifo" }
      for i = 1, 5 do q:put(i) end
      assert.are.equal(5, q:get())
      assert.are.equal(4, q:get())
      q:put(6)
      assert.are.same({ 6, 3, 2, 1 }, drain(q))
    end))

    it("priority gives lower priorities first, FIFO among equals", async(function()
      local q = loom.queue { order = "priority" }
      q:put("x5a", 5)
      q:put("y1a", 1)
      q:put("z5b", 5)
      q:put_nowait("w1b", 1)
      q:put("v3", 3)
      q:put("neg", -2)
      q:put("frac", 1.5)
      assert.are.same({ "neg", "y1a", "w1b", "frac", "v3", "x5a", "z5b" }, drain(q))
    end))

    it("priority keeps a large mixed sequence sorted and stable", async(function()
      local q = loom.queue { order = "priority" }
      local items = {}
      local seed = 12345
      local function rnd(n)  -- a small LCG: the same sequence on every run
        seed = (seed * 1103515245 + 12345) % 2147483648
        return seed % n + 1
      end
      local got = {}
      for i = 1, 300 do
        local p = rnd(10)
        items[#items + 1] = { p = p, i = i }
        q:put({ p = p, i = i }, p)
        if i % 7 == 0 then  -- interleave some gets
          local v = q:get()
          got[#got + 1] = v
        end
      end
      -- check: each get returned the smallest (p, i) present at that time
      local present = {}
      local gi = 0
      for i = 1, 300 do
        present[#present + 1] = items[i]
        if i % 7 == 0 then
          table.sort(present, function(a, b) return a.p < b.p or (a.p == b.p and a.i < b.i) end)
          gi = gi + 1
          local want = table.remove(present, 1)
          assert.are.same(want, got[gi])
        end
      end
      table.sort(present, function(a, b) return a.p < b.p or (a.p == b.p and a.i < b.i) end)
      assert.are.same(present, drain(q))
    end))

    it("priority defaults to 0 and refuses a non-number priority", async(function()
      local q = loom.queue { order = "priority" }
      q:put("one", 1)
      q:put("zero")
      q:put("minus", -1)
      assert.has_error(function() q:put("bad", "high") end)
      assert.has_error(function() q:put_nowait("bad", {}) end)
      assert.are.same({ "minus", "zero", "one" }, drain(q))
    end))

    it("hands items to waiting getters in the order the getters came", async(function()
      local q = loom.queue()
      local got = {}
      local ts = {}
      for i = 1, 3 do
        ts[i] = loom.spawn(function() local v = q:get(); got[#got + 1] = i .. ":" .. v end)
      end
      settle()
      for _, v in ipairs { "a", "b", "c" } do q:put(v) end
      for i = 1, 3 do ts[i]:await() end
      assert.are.same({ "1:a", "2:b", "3:c" }, got)
    end))

    it("fifo keeps its order while it grows with items wrapped around", async(function()
      for _, maxsize in ipairs { 0, 20 } do
        local q = loom.queue { maxsize = maxsize }
        local next_in, next_out = 1, 1
        local function put(n) for _ = 1, n do assert.is_true(q:put_nowait(next_in)); next_in = next_in + 1 end end
        local function get(n)
          for _ = 1, n do assert.are.equal(next_out, q:get()); next_out = next_out + 1 end
        end
        put(15); get(10); put(15)        -- 20 held, wrapped
        assert.are.equal(20, q:size())
        if maxsize > 0 then assert.is_true(q:full()) end
        get(5); put(5); get(12); put(maxsize > 0 and 12 or 40)
        local rest = drain(q)
        for i, v in ipairs(rest) do assert.are.equal(next_out + i - 1, v) end
        assert.are.equal(next_in - 1, rest[#rest])
      end
    end))

    it("priority: a putter that waited for room keeps its priority", async(function()
      local q = loom.queue { order = "priority", maxsize = 2 }
      q:put("x", 5)
      q:put("y", 5)
      local p = loom.spawn(function() q:put("urgent", 1) end)
      settle()
      assert.is_false(p:done())
      assert.are.equal("x", q:get())
      p:await()
      assert.are.same({ "urgent", "y" }, drain(q))
    end))

    it("keeps false as an item", async(function()
      local q = loom.queue()
      q:put(false)
      assert.are.equal(1, q:size())
      local v = q:get()
      assert.is_false(v)
    end))
  end)

  describe("maxsize", function()
    it("put suspends while full and putters resume in order", async(function()
      local q = loom.queue { maxsize = 2 }
      assert.is_true(q:put(1))
      assert.is_true(q:put(2))
      assert.is_true(q:full())
      local log = {}
      local ts = {}
      for i = 3, 5 do
        ts[i] = loom.spawn(function() q:put(i); log[#log + 1] = "put" .. i end)
      end
      settle()
      assert.are.same({}, log)
      assert.are.equal(2, q:size())
      assert.are.equal(1, q:get())
      settle()
      assert.are.same({ "put3" }, log)
      assert.are.equal(2, q:size())
      assert.are.equal(2, q:get())
      assert.are.equal(3, q:get())
      settle()
      assert.are.same({ "put3", "put4", "put5" }, log)
      for i = 3, 5 do ts[i]:await() end
      assert.are.same({ 4, 5 }, drain(q))
    end))

    it("a producer faster than the consumer is held back", async(function()
      local q = loom.queue { maxsize = 3 }
      local max_size = 0
      local producer = loom.spawn(function()
        for i = 1, 20 do
          q:put(i)
          if q:size() > max_size then max_size = q:size() end
        end
        q:close()
      end)
      local got = {}
      for v in q:iter() do
        got[#got + 1] = v
        loom.sleep(0.01)
      end
      producer:await()
      assert.are.equal(3, max_size)
      assert.are.equal(20, #got)
      for i = 1, 20 do assert.are.equal(i, got[i]) end
    end, VIRTUAL))

    it("a putter cancelled after being woken passes the room on", async(function()
      local q = loom.queue { maxsize = 1 }
      q:put("first")
      local a = loom.spawn(function() q:put("a") end)
      local b = loom.spawn(function() q:put("b") end)
      settle()
      assert.are.equal("first", q:get())  -- wakes a ...
      a:cancel()                           -- ... cancelled before it runs
      assert.is_true(loom.is_cancelled(error_of(a)))
      assert.is_nil(error_of(b))
      assert.are.same({ "b" }, drain(q))
    end))
  end)

  describe("nowait, size, empty, full", function()
    it("put_nowait returns nil, 'full' and get_nowait nil, 'empty'", async(function()
      local q = loom.queue { maxsize = 2 }
      local v, why = q:get_nowait()
      assert.is_nil(v)
      assert.are.equal("empty", why)
      assert.is_true(q:put_nowait("a"))
      assert.is_true(q:put_nowait("b"))
      local ok, why2 = q:put_nowait("c")
      assert.is_nil(ok)
      assert.are.equal("full", why2)
      assert.are.equal(2, q:size())
      assert.are.equal("a", q:get_nowait())
      assert.are.equal("b", q:get_nowait())
      assert.are.same({ nil, "empty" }, { q:get_nowait() })
    end))

    it("size, empty and full follow the contents", async(function()
      local q = loom.queue { maxsize = 2 }
      assert.are.equal(0, q:size())
      assert.is_true(q:empty())
      assert.is_false(q:full())
      q:put(1)
      assert.are.equal(1, q:size())
      assert.is_false(q:empty())
      assert.is_false(q:full())
      q:put(2)
      assert.are.equal(2, q:size())
      assert.is_true(q:full())
      q:get()
      assert.are.equal(1, q:size())
      assert.is_false(q:full())
      local unbounded = loom.queue()
      for i = 1, 1000 do unbounded:put_nowait(i) end
      assert.is_false(unbounded:full())
      assert.are.equal(1000, unbounded:size())
    end))

    it("put_nowait wakes a waiting getter", async(function()
      local q = loom.queue()
      local t = loom.spawn(function() return q:get() end)
      settle()
      assert.is_true(q:put_nowait("v"))
      assert.are.equal("v", t:await())
      assert.is_true(q:empty())
    end))
  end)

  describe("task_done and join", function()
    it("join waits until every item put is done", async(function()
      local q = loom.queue()
      local done_count = 0
      for i = 1, 3 do q:put(i) end
      local joined_at
      local joiner = loom.spawn(function() q:join(); joined_at = done_count end)
      local worker = loom.spawn(function()
        for _ = 1, 3 do
          q:get()
          loom.sleep(0.01)
          done_count = done_count + 1
          q:task_done()
        end
      end)
      settle()
      assert.is_false(joiner:done())
      worker:await()
      joiner:await()
      assert.are.equal(3, joined_at)
    end, VIRTUAL))

    it("getting an item is not enough: join waits for task_done", async(function()
      local q = loom.queue()
      q:put("x")
      local joined = false
      local j = loom.spawn(function() q:join(); joined = true end)
      assert.are.equal("x", q:get())
      settle()
      assert.is_false(joined)
      q:task_done()
      j:await()
      assert.is_true(joined)
    end))

    it("join returns at once when nothing is unfinished", async(function()
      local q = loom.queue()
      local other_ran = false
      loom.spawn(function() other_ran = true end)
      q:join()
      assert.is_false(other_ran)
      q:put(1); q:get(); q:task_done()
      q:join()
      assert.is_false(other_ran)
    end))

    it("task_done called more times than items were put raises", async(function()
      local q = loom.queue()
      assert.has_error(function() q:task_done() end,
        "loom.queue: task_done called more times than items were put")
      q:put(1)
      q:get()
      q:task_done()
      assert.has_error(function() q:task_done() end,
        "loom.queue: task_done called more times than items were put")
    end))

    it("every joiner is released", async(function()
      local q = loom.queue()
      q:put(1)
      local n = 0
      local ts = {}
      for i = 1, 3 do ts[i] = loom.spawn(function() q:join(); n = n + 1 end) end
      settle()
      q:get()
      q:task_done()
      for i = 1, 3 do ts[i]:await() end
      assert.are.equal(3, n)
    end))
  end)

  describe("close", function()
    it("makes further puts raise", async(function()
      local q = loom.queue()
      q:put(1)
      q:close()
      assert.has_error(function() q:put(2) end, "loom.queue: put on a closed queue")
      assert.has_error(function() q:put_nowait(2) end, "loom.queue: put on a closed queue")
      assert.are.equal(1, q:size())
      q:close()  -- twice is harmless
    end))

    it("makes putters waiting while full raise", async(function()
      local q = loom.queue { maxsize = 1 }
      q:put("kept")
      local p = loom.spawn(function() q:put("late") end)
      settle()
      assert.is_false(p:done())
      q:close()
      local e = error_of(p)
      assert.is_string(e)
      assert.matches("put on a closed queue", e)
      assert.are.equal("kept", q:get())
      assert.are.same({ nil, "closed" }, { q:get() })
    end))

    it("lets getters drain what is left, then gives nil, 'closed'", async(function()
      local q = loom.queue()
      for i = 1, 3 do q:put(i) end
      q:close()
      assert.are.equal(1, q:get())
      assert.are.equal(2, q:get())
      assert.are.equal(3, q:get_nowait())
      assert.are.same({ nil, "closed" }, { q:get() })
      assert.are.same({ nil, "closed" }, { q:get() })
      assert.are.same({ nil, "closed" }, { q:get_nowait() })
    end))

    it("wakes waiting getters with nil, 'closed'", async(function()
      local q = loom.queue()
      local ts = {}
      for i = 1, 3 do ts[i] = loom.spawn(function() return table.pack(q:get()) end) end
      settle()
      q:close()
      for i = 1, 3 do
        assert.are.same({ n = 2, nil, "closed" }, ts[i]:await())
      end
    end))

    it("iter yields every item and ends after close", async(function()
      local q = loom.queue()
      local producer = loom.spawn(function()
        for i = 1, 4 do q:put(i); loom.sleep(0.01) end
        q:close()
      end)
      local got = {}
      for v in q:iter() do got[#got + 1] = v end
      producer:await()
      assert.are.same({ 1, 2, 3, 4 }, got)
    end, VIRTUAL))

    it("iter on an already closed queue drains it and ends", async(function()
      local q = loom.queue { order = "lifo" }
      for i = 1, 3 do q:put(i) end
      q:close()
      local got = {}
      for v in q:iter() do got[#got + 1] = v end
      assert.are.same({ 3, 2, 1 }, got)
    end))
  end)

  describe("cancellation", function()
    it("queue get cancelled while an item arrives: another getter receives it", async(function()
      local q = loom.queue()
      local a = loom.spawn(function() return q:get() end)
      local b = loom.spawn(function() return q:get() end)
      settle()
      q:put("item")   -- wakes a ...
      a:cancel()      -- ... cancelled before it runs
      assert.is_true(loom.is_cancelled(error_of(a)))
      assert.are.equal("item", b:await())
      assert.is_true(q:empty())
    end))

    it("queue get cancelled while an item arrives: a later get receives it", async(function()
      local q = loom.queue()
      local a = loom.spawn(function() return q:get() end)
      settle()
      q:put("item")
      a:cancel()
      assert.is_true(loom.is_cancelled(error_of(a)))
      assert.are.equal(1, q:size())
      assert.are.equal("item", q:get())
    end))

    it("a getter cancelled while waiting does not swallow the next item", async(function()
      local q = loom.queue()
      local a = loom.spawn(function() return q:get() end)
      settle()
      a:cancel()
      assert.is_true(loom.is_cancelled(error_of(a)))
      local b = loom.spawn(function() return q:get() end)
      settle()
      q:put("next")
      assert.are.equal("next", b:await())
      q:put("after")
      assert.are.equal("after", q:get_nowait())
    end))

    it("a getter that times out leaves the queue working", async(function()
      local q = loom.queue()
      local ok, e = pcall(loom.timeout, 0.5, q.get, q)
      assert.is_false(ok)
      assert.is_true(loom.is_timeout(e))
      q:put(1)
      assert.are.equal(1, q:get())
    end, VIRTUAL))
  end)

  describe("bad input", function()
    it("put(nil) raises", async(function()
      local q = loom.queue()
      assert.has_error(function() q:put(nil) end, "loom.queue: cannot put nil")
      assert.has_error(function() q:put() end, "loom.queue: cannot put nil")
      assert.has_error(function() q:put_nowait(nil) end, "loom.queue: cannot put nil")
      assert.are.equal(0, q:size())
    end))

    it("bad options raise", function()
      assert.error_matches(function() loom.queue { maxsize = -1 } end,
        "maxsize must be a non%-negative integer")
      assert.error_matches(function() loom.queue { maxsize = 1.5 } end,
        "maxsize must be a non%-negative integer")
      assert.has_error(function() loom.queue { maxsize = true } end)
      assert.has_error(function() loom.queue { maxsize = {} } end)
      assert.error_matches(function() loom.queue { order = "random" } end,
        "invalid order 'random'")
      assert.has_error(function() loom.queue { order = 1 } end)
      assert.has_error(function() loom.queue("fifo") end)
      assert.has_error(function() loom.queue(5) end)
      -- the good ones are fine
      assert.is_not_nil(loom.queue { maxsize = 0, order = "lifo" })
      assert.is_not_nil(loom.queue {})
    end)

    it("methods raise on a wrong receiver", function()
      local q = loom.queue()
      assert.has_error(function() q.put({}, 1) end,
        "bad argument #1 to 'queue:put' (loom.queue expected, got table)")
      assert.has_error(function() q.get(42) end,
        "bad argument #1 to 'queue:get' (loom.queue expected, got number)")
      for _, m in ipairs { "put", "get", "put_nowait", "get_nowait", "size",
                           "empty", "full", "task_done", "join", "close", "iter" } do
        assert.error_matches(function() q[m]({}) end,
          "bad argument #1 to '.-' %(loom%.queue expected, got table%)")
        assert.has_error(function() q[m](42) end)
      end
    end)

    it("get and put on a full queue raise outside a task", function()
      local q = loom.queue { maxsize = 1 }
      assert.error_matches(function() q:get() end, "outside a task")
      q:put_nowait(1)
      assert.error_matches(function() q:put(2) end, "outside a task")
      assert.are.equal(1, q:get_nowait())
    end)
  end)
end)
