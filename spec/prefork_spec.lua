--[[ spec/prefork_spec.lua: examples/prefork.lua, a parent and N workers
  sharing one port with reuseport.  The example runs as a child of the
  spec (the binary), each test bounded by a timeout and the processes it
  left killed by their pids when it ends.  New connections (Connection:
  close) are spread over the workers by the kernel; a worker killed is
  replaced; SIGTERM to the parent ends it and every worker, with exit 0.
]]
local helper = require("spec.helper")
local loom = require("loom")
local async = require("loom.busted").async
local process, http = loom.process, loom.http

local LIMIT = 30  -- seconds a test may take

-- Starts the example with 'args'; the Process, the port and the pids of
-- the workers (from its ready line), and a <close> value that kills
-- whatever is left of them.
local function start(...)
  local argv = { helper.loom_bin, "examples/prefork.lua", ... }
  if argv[3] == "--setsid" then
    table.remove(argv, 3)
    table.insert(argv, 1, "setsid")
  end
  local p = assert(process.spawn(argv))
  local pids = {}
  local guard = setmetatable({}, { __close = function()
    if not p:status() then p:kill("SIGKILL") end
    for pid in pairs(pids) do process.kill(pid, "SIGKILL") end
    p:close()
  end })
  local line = p.stdout:read_line()
  local n, scheme, port, list =
    (line or ""):match("^prefork: (%d+) workers on (%a+)://127%.0%.0%.1:(%d+)/ %(pids ([%d ]+)%)$")
  assert.truthy(n, line)
  for pid in list:gmatch("%d+") do pids[tonumber(pid)] = true end
  return p, tonumber(port), pids, guard, scheme
end

local function count(set)
  local k = 0
  for _ in pairs(set) do k = k + 1 end
  return k
end

-- The pid in the answer to a GET on a new connection.
local function hello(port)
  local res = assert(http.get(("http://127.0.0.1:%d/"):format(port),
    { headers = { Connection = "close" }, timeout = 10 }))
  assert.are.equal(200, res.status)
  local pid = tonumber(res.body:match("^hello from worker (%d+)\n$"))
  assert.truthy(pid, res.body)
  return pid
end

-- The set of pids that answered 'k' requests.
local function answers(port, k)
  local seen = {}
  for _ = 1, k do seen[hello(port)] = true end
  return seen
end

local function gone(pid)
  local ok, _, code = process.kill(pid, 0)
  return not ok and code == "ESRCH"
end

describe("examples/prefork.lua", function()
  it("spreads new connections over its workers", async(function()
    loom.timeout(LIMIT, function()
      local _, port, pids, guard, scheme = start("2")
      local _ <close> = guard
      assert.are.equal("http", scheme)
      assert.are.equal(2, count(pids))
      local seen = answers(port, 40)
      -- every answer is from a worker, and both answered
      for pid in pairs(seen) do assert.truthy(pids[pid], "pid " .. pid) end
      assert.are.equal(2, count(seen))
    end)
  end))

  it("replaces a worker killed with SIGKILL, and requests keep succeeding", async(function()
    loom.timeout(LIMIT, function()
      local p, port, pids, guard = start("2")
      local _ <close> = guard
      local victim = next(pids)
      local other = next(pids, victim)
      assert(process.kill(victim, "SIGKILL"))
      assert.are.equal(("prefork: worker %d killed by SIGKILL; starting another after 0.2 s"):format(victim),
        p.stdout:read_line())
      local line = p.stdout:read_line()
      local new = tonumber(line:match("^prefork: worker (%d+) listening %(slot %d%)$"))
      assert.truthy(new, line)
      pids[new] = true
      assert.is_true(gone(victim))  -- reaped, not left a zombie
      assert.are_not.equal(victim, new)
      local seen = answers(port, 40)
      assert.is_nil(seen[victim])
      for pid in pairs(seen) do assert.truthy(pid == new or pid == other, "pid " .. pid) end
      assert.truthy(seen[new], "the new worker answered none of 40 requests")
    end)
  end))

  it("on SIGTERM stops every worker and exits 0", async(function()
    loom.timeout(LIMIT, function()
      local p, port, pids, guard = start("2")
      local _ <close> = guard
      hello(port)
      assert(p:kill("SIGTERM"))
      assert.are.equal("prefork: SIGTERM: stopping 2 workers", p.stdout:read_line())
      assert.are.equal("prefork: stopped\n", p.stdout:read_all())
      assert.are.same({ 0 }, { p:wait() })
      for pid in pairs(pids) do assert.is_true(gone(pid), "worker " .. pid .. " is left") end
      assert.is_true(gone(p.pid))
      local s, _, code = loom.net.connect("127.0.0.1", port)
      assert.is_nil(s)
      assert.are.equal("ECONNREFUSED", code)
    end)
  end))

  it("on SIGINT to its whole process group (Ctrl-C) stops, restarts nothing, exits 0", async(function()
    loom.timeout(LIMIT, function()
      -- setsid: a process group of its own (the parent's pid is its id)
      local p, port, pids, guard = start("--setsid", "2")
      local _ <close> = guard
      hello(port)
      assert(process.kill(-p.pid, "SIGINT"))
      assert.are.equal("prefork: SIGINT: stopping 2 workers", p.stdout:read_line())
      assert.are.equal("prefork: stopped\n", p.stdout:read_all())
      assert.are.same({ 0 }, { p:wait() })
      for pid in pairs(pids) do assert.is_true(gone(pid), "worker " .. pid .. " is left") end
    end)
  end))

  it("workers end when the parent is killed with SIGKILL", async(function()
    loom.timeout(LIMIT, function()
      local p, _, pids, guard = start("2")
      local _ <close> = guard
      assert(p:kill("SIGKILL"))
      assert.are.same({ nil, "SIGKILL" }, { p:wait() })
      -- each sees the end of its standard input and exits
      for pid in pairs(pids) do
        while not gone(pid) do loom.sleep(0.02) end
      end
    end)
  end))

  it("serves echo on every worker with 'echo'", async(function()
    loom.timeout(LIMIT, function()
      local p, port, pids, guard, scheme = start("2", "0", "echo")
      local _ <close> = guard
      assert.are.equal("tcp", scheme)
      assert.are.equal(2, count(pids))
      for i = 1, 4 do
        local s <close> = assert(loom.net.connect("127.0.0.1", port))
        assert(s:write("ping " .. i .. "\n"))
        assert.are.equal("ping " .. i, s:read_line())
      end
      assert(p:kill("SIGTERM"))
      assert.are.same({ 0 }, { p:wait() })
      for pid in pairs(pids) do assert.is_true(gone(pid)) end
    end)
  end))
end)
