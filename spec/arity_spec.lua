--[[ spec/arity_spec.lua: how many values each accessor returns.

  An accessor (a call that answers without suspending) returns exactly
  the values its contract names: one value, nil, when there is nothing
  (so print(t:error()) prints "nil" and select("#", t:error()) is 1),
  and no trailing nil past a failure's nil, message, code.  'values'
  packs a call's results, 'n' included, so each test states both the
  count and the values.
]]
local loom = require "loom"
local async = require("loom.busted").async
local h = require "spec.helper"

local pack = table.pack

--- Asserts that 'got' (a table.pack) is exactly the values 'want'
-- (a table with its own 'n').
local function same(want, got)
  assert.are.equal(want.n, got.n, "number of values")
  for i = 1, want.n do assert.are.equal(want[i], got[i], "value " .. i) end
end

local function V(...) return pack(...) end

describe("accessor arity", function()
  describe("tasks", function()
    it("done, cancelled and error give one value while pending", async(function()
      local t = loom.spawn(function() end)
      same(V(false), pack(t:done()))
      same(V(false), pack(t:cancelled()))
      same(V(nil), pack(t:error()))
      t:await()
    end))

    it("a task that returned: done, cancelled, error, result", async(function()
      local t = loom.spawn(function() return 1, nil end)
      t:await()
      same(V(true), pack(t:done()))
      same(V(false), pack(t:cancelled()))
      same(V(nil), pack(t:error()))
      same(V(1, nil), pack(t:result()))
      local empty = loom.spawn(function() end)
      empty:await()
      same(V(), pack(empty:result()))
      same(V(nil), pack(empty:error()))
    end))

    it("a failed task: error gives the one error value", async(function()
      local t = loom.spawn(function() error("boom", 0) end)
      assert.is_false(pcall(loom.await, t))
      same(V("boom"), pack(t:error()))
      local f = loom.spawn(function() error(false) end)
      assert.is_false(pcall(loom.await, f))
      same(V(false), pack(f:error()))
    end))

    it("a cancelled task: cancel answers once, error is the Cancelled", async(function()
      local t = loom.spawn(function() loom.sleep(10) end)
      loom.yield()
      same(V(true), pack(t:cancel()))
      assert.is_false(pcall(loom.await, t))
      same(V(false), pack(t:cancel()))
      same(V(true), pack(t:cancelled()))
      local e = pack(t:error())
      assert.are.equal(1, e.n)
      h.assert_cancelled(e[1])
    end), h.VIRTUAL)

    it("name, traceback, current and tasks give one value", async(function()
      local t = loom.spawn(function() end)
      same(V(t.name), pack(t.name))
      assert.are.equal("string", type(t.name))
      assert.are.equal(1, select("#", t:traceback()))
      same(V(loom.current()), pack(loom.current()))
      assert.are.equal(1, select("#", loom.tasks()))
      assert.are.equal(1, select("#", loom.now()))
      t:await()
    end))

    it("current is one nil outside a task", function()
      same(V(nil), pack(loom.current()))
    end)
  end)

  describe("futures", function()
    it("done, cancelled and error while pending", function()
      local f = loom.future()
      same(V(false), pack(f:done()))
      same(V(false), pack(f:cancelled()))
      same(V(nil), pack(f:error()))
    end)

    it("set: result gives every value, error one nil", function()
      local f = loom.future()
      same(V(), pack(f:set_result(1, nil)))
      same(V(1, nil), pack(f:result()))
      same(V(nil), pack(f:error()))
      same(V(true), pack(f:done()))
      same(V(false), pack(f:cancel()))
    end)

    it("failed or cancelled: error gives the one error value", function()
      local f = loom.future()
      f:set_error(nil)
      same(V(nil), pack(f:error()))
      local c = loom.future()
      same(V(true), pack(c:cancel()))
      same(V(true), pack(c:cancelled()))
      local e = pack(c:error())
      assert.are.equal(1, e.n)
      h.assert_cancelled(e[1])
    end)
  end)

  describe("synchronisation", function()
    it("locked, is_set, available, queue sizes: one value each", async(function()
      local l = loom.lock()
      same(V(false), pack(l:locked()))
      l:acquire()
      same(V(true), pack(l:locked()))
      l:release()
      local e = loom.event()
      same(V(false), pack(e:is_set()))
      e:set()
      same(V(true), pack(e:is_set()))
      local s = loom.semaphore(2)
      same(V(2), pack(s:available()))
      local q = loom.queue { maxsize = 1 }
      same(V(0), pack(q:size()))
      same(V(true), pack(q:empty()))
      same(V(false), pack(q:full()))
      same(V(true), pack(q:put_nowait("a")))
      same(V(nil, "full"), pack(q:put_nowait("b")))
      same(V(1), pack(q:size()))
      same(V(true), pack(q:full()))
      same(V("a"), pack(q:get_nowait()))
      same(V(nil, "empty"), pack(q:get_nowait()))
      q:close()
      same(V(nil, "closed"), pack(q:get_nowait()))
    end))
  end)

  describe("errors and the module", function()
    it("is_cancelled, is_timeout, version", function()
      same(V(false), pack(loom.is_cancelled("x")))
      same(V(false), pack(loom.is_timeout("x")))
      same(V(true), pack(loom.is_timeout(loom.Timeout("t"))))
      assert.are.equal(1, select("#", loom.version))
    end)
  end)

  describe("network", function()
    it("server, stream and udp addresses: host, port", async(function()
      local peer
      local srv = loom.net.listen("127.0.0.1", 0, function(s)
        peer = { address = pack(s:address()), peer = pack(s:peer()) }
        s:read_all()
      end)
      local a = pack(srv:address())
      assert.are.equal(2, a.n)
      assert.are.equal("127.0.0.1", a[1])
      assert.are.equal("integer", math.type(a[2]))
      local c = assert(loom.net.connect("127.0.0.1", a[2]))
      local ca, cp = pack(c:address()), pack(c:peer())
      same(V("127.0.0.1", a[2]), cp)
      assert.are.equal(2, ca.n)
      c:close()
      while not peer do loom.yield() end
      same(V("127.0.0.1", a[2]), peer.address)
      same(V("127.0.0.1", ca[2]), peer.peer)
      srv:close()
      local u = loom.net.udp("127.0.0.1", 0)
      local ua = pack(u:address())
      assert.are.equal(2, ua.n)
      assert.are.equal("127.0.0.1", ua[1])
      u:close()
    end))

    it("a Unix socket's address is its path, one value", h.in_dir("/tmp/loom-arity-",
      function(d)
        local path = d .. "/s"
        local srv = loom.net.listen_unix(path, function(s) s:read_all() end)
        same(V(path), pack(srv:address()))
        local c = assert(loom.net.connect_unix(path))
        same(V(path), pack(c:peer()))
        assert.are.equal(1, select("#", c:address()))
        c:close()
        srv:close()
      end))

    it("a closed stream's read is nil, msg, code and nothing more", async(function()
      local srv = loom.net.listen("127.0.0.1", 0, function(s) s:read_all() end)
      local _, port = srv:address()
      local c = assert(loom.net.connect("127.0.0.1", port))
      c:close()
      local r = pack(c:read())
      assert.are.equal(3, r.n)
      assert.are.equal("ECANCELED", r[3])
      srv:close()
    end))
  end)

  describe("files", function()
    it("seek gives the position; reads at EOF nil, msg, code", h.in_dir("/tmp/loom-arity-",
      function(d)
        local f = assert(loom.fs.open(d .. "/f", "w+"))
        same(V(true), pack(f:write("ab")))
        same(V(0), pack(f:seek("set", 0)))
        same(V(0), pack(f:seek()))
        same(V("ab"), pack(f:read()))
        for _, r in ipairs { pack(f:read()), pack(f:read(1)), pack(f:read_line()) } do
          assert.are.equal(3, r.n)
          assert.is_nil(r[1])
          assert.are.equal("EOF", r[3])
        end
        same(V(""), pack(f:read_all()))
        same(V(true), pack(f:close()))
        same(V(true), pack(loom.fs.exists(d)))
        same(V(false), pack(loom.fs.exists(d .. "/none")))
      end))

    it("a read that fails is nil, msg, code", h.in_dir("/tmp/loom-arity-",
      function(d)
        local f = assert(loom.fs.open(d))
        for _, r in ipairs { pack(f:read()), pack(f:read_line()), pack(f:read_all()) } do
          assert.are.equal(3, r.n)
          assert.are.equal("EISDIR", r[3])
        end
        f:close()
      end))
  end)

  describe("processes", function()
    it("pid is a number; status is one nil while the child runs", async(function()
      assert.are.equal("integer", math.type(loom.process.pid))
      local p = assert(loom.process.spawn { "cat" })
      assert.are.equal("integer", math.type(p.pid))
      same(V(nil), pack(p:status()))
      p.stdin:close()
      same(V(0, nil), pack(p:wait()))
      same(V(0, nil), pack(p:status()))
      p:close()
    end))
  end)
end)
