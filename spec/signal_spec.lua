--[[ spec/signal_spec.lua: loom.signal, and signals to the binary. ]]
local loom = require "loom"
local process = require "loom.process"
local signal = require "loom.signal"
local async = require("loom.busted").async
local helper = require "spec.helper"

-- This process's pid, as the system has it.
local function my_pid()
  local f = assert(io.open("/proc/self/stat"))
  local pid = f:read("a"):match("^(%d+)")
  f:close()
  return pid
end

-- Sends signal 'name' ("USR1") to this process, as another process would.
local function send(name)
  local r = assert(process.run{"kill", "-" .. name, my_pid()})
  assert.are.equal(0, r.code)
end

-- Starts the binary on script 'src' with stdout piped; waits for its
-- first line, which must be 'ready'.
local function start(src)
  local path = helper.script(src)
  local p = assert(process.spawn{helper.loom_bin, path, stderr = "pipe"})
  p.script = path
  local line = p.stdout:read_line()
  if line ~= "ready" then
    p:kill("SIGKILL")
    error("the script did not start: " .. tostring(line) .. "\n"
      .. tostring(p.stderr:read_all()))
  end
  return p
end

-- The rest of its output and its exit: out, err, code, signal.
local function finish(p)
  local ok, out, err = pcall(loom.timeout, 4, loom.gather,
    function() return p.stdout:read_all() end,
    function() return p.stderr:read_all() end)
  if not ok then p:kill("SIGKILL") end  -- a failed test must not hang
  local code, sig = p:wait()
  os.remove(p.script)
  p:close()
  return out, err, code, sig
end

describe("loom.signal", function()
  it("wait: SIGUSR1 sent to this process", async(function()
    loom.spawn(send, "USR1")
    assert.are.equal("SIGUSR1", signal.wait("SIGUSR1"))
  end))

  it("wait: the first of several, by name", async(function()
    loom.spawn(send, "USR2")
    assert.are.equal("SIGUSR2", signal.wait("SIGUSR1", "SIGUSR2", "SIGHUP"))
    loom.spawn(send, "HUP")
    assert.are.equal("SIGHUP", signal.wait("HUP", "USR1"))  -- short names too
  end))

  it("wait can be cancelled or time out", async(function()
    local ok, e = pcall(loom.timeout, 0.05, signal.wait, "SIGUSR1")
    assert.is_false(ok)
    assert.is_true(loom.is_timeout(e))
    local t = loom.spawn(signal.wait, "SIGUSR1")
    helper.settle()
    assert.is_false(t:done())
    t:cancel()
    assert.is_true(loom.is_cancelled(helper.error_of(t)))
    -- both waits have let go of the signal; a new one still works
    loom.spawn(send, "USR1")
    assert.are.equal("SIGUSR1", signal.wait("SIGUSR1"))
  end))

  it("on: runs the handler as a task on each delivery until cancelled", async(function()
    local got, tasks = {}, {}
    local h = signal.on("SIGUSR1", function(name)
      got[#got + 1] = name
      tasks[#tasks + 1] = loom.current()
    end)
    -- a second watcher keeps the signal caught once 'h' is cancelled
    local other = loom.queue()
    local h2 = signal.on("USR1", function(name) other:put(name) end)
    for _ = 1, 3 do
      send("USR1")
      assert.are.equal("SIGUSR1", other:get())
    end
    helper.settle()  -- the handler tasks of each delivery have run
    assert.are.same({ "SIGUSR1", "SIGUSR1", "SIGUSR1" }, got)
    assert.are.equal(3, #tasks)
    assert.are_not.equal(tasks[1], tasks[2])
    assert.are.equal("signal SIGUSR1", tasks[1].name)
    h:cancel()
    h:cancel()  -- harmless twice
    send("USR1")
    assert.are.equal("SIGUSR1", other:get())
    helper.settle()
    assert.are.equal(3, #got)
    h2:cancel()
    assert.matches("cancelled", tostring(h2))
  end))

  it("a watcher closed while a delivery runs is skipped, then let go", async(function()
    local csig = debug.getregistry()["loom.core"].sig
    local usr1 = csig.signum("SIGUSR1")
    local log = {}
    local a, b
    a = csig.watch(usr1, function() log[#log + 1] = "a"; b:close() end)
    b = csig.watch(usr1, function() log[#log + 1] = "b"; a:close() end)
    local delivered = loom.event()
    local keep = signal.on("SIGUSR1", function() delivered:set() end)
    send("USR1")
    delivered:wait()  -- its task is spawned once the watchers have run
    -- newest first: b runs, closes a, which is skipped
    assert.are.same({ "b" }, log)
    assert.is_false(a:active())
    b:close()
    keep:cancel()
  end))

  it("on does not keep the loop alive", function()
    local h
    local t0 = helper.clock()
    loom.run(function()
      h = signal.on("SIGUSR1", function() end)
    end)
    assert.is_true(helper.clock() - t0 < 1)
    h:cancel()
  end)

  it("bad names and arguments raise", async(function()
    assert.has_error(function() signal.wait("SIGNOPE") end,
      "bad argument #1 to 'signal.wait' (unknown signal 'SIGNOPE')")
    assert.has_error(function() signal.wait() end)
    assert.has_error(function() signal.wait("SIGINT", 99999) end)
    assert.has_error(function() signal.on("nope", function() end) end)
    assert.has_error(function() signal.on("SIGINT", 42) end)
    assert.has_error(function() signal.on("SIGKILL", function() end) end)
  end))

  it("a signal that cannot be watched leaves no handle open", function()
    local out, err, code = helper.lua_src([[
      local loom = require "loom"
      collectgarbage("stop")  -- the refused watcher is not collected
      loom.run(function()
        print(pcall(loom.signal.on, "SIGKILL", function() end))
      end)
      loom.run_with({ debug = true }, function() end)
    ]])
    assert.are.equal("", err)
    assert.are.equal(0, code)
    assert.are.equal("false\tcannot watch SIGKILL: invalid argument\n", out)
  end)

  it("wait outside a task raises", function()
    assert.has_error(function() signal.wait("SIGUSR1") end,
      "loom: signal.wait called outside a task (use loom.run or the loom binary)")
  end)

  describe("in the binary", function()
    it("SIGTERM to a script that waits for it: it finishes cleanly", async(function()
      local p = start([[
        local server = loom.net.listen("127.0.0.1", 0, function() end)
        local waiting = loom.spawn(loom.signal.wait, "SIGTERM")
        loom.yield()  -- it watches from here on
        print("ready") io.stdout:flush()
        local sig = waiting:await()
        server:close()
        print("got " .. sig)
        loom.sleep(0.05)
        print("cleaned up")
      ]])
      assert.is_true(p:kill("SIGTERM"))
      local out, err, code, sig = finish(p)
      assert.are.equal("got SIGTERM\ncleaned up\n", out)
      assert.are.equal("", err)
      assert.are.equal(0, code)
      assert.is_nil(sig)
    end))

    it("SIGTERM to a script with signal.on: the handler runs the shutdown", async(function()
      local p = start([[
        -- the server keeps the script alive: signal.on does not
        local server = loom.net.listen("127.0.0.1", 0, function() end)
        loom.signal.on("SIGTERM", function(name)
          print("handler " .. name)
          server:close()
        end)
        print("ready") io.stdout:flush()
      ]])
      p:kill()
      local out, err, code = finish(p)
      assert.are.equal("handler SIGTERM\n", out)
      assert.are.equal("", err)
      assert.are.equal(0, code)
    end))

    it("a script that does not listen for SIGTERM is ended by it", async(function()
      local p = start([[print("ready") io.stdout:flush() loom.sleep(30)]])
      p:kill("SIGTERM")
      local _, _, code, sig = finish(p)
      assert.is_nil(code)
      assert.are.equal("SIGTERM", sig)
    end))

    it("a script that listens for SIGINT takes Ctrl-C over; without it, the default", async(function()
      local p = start([[
        print("ready") io.stdout:flush()
        print(loom.signal.wait("SIGINT")) io.stdout:flush()
        local ok, e = pcall(loom.sleep, 30)  -- now Ctrl-C cancels the main task
        print(loom.is_cancelled(e))
        error(e, 0)
      ]])
      p:kill("SIGINT")
      assert.are.equal("SIGINT", p.stdout:read_line())
      p:kill("SIGINT")
      local out, _, code = finish(p)
      assert.are.equal("true\n", out)
      assert.are.equal(130, code)
    end))

    it("a Ctrl-C that comes just before the script watches SIGINT goes to it", async(function()
      local p = start([[
        print("ready") io.stdout:flush()
        -- busy (not os.execute: system() ignores SIGINT while it waits),
        -- so the loop is blocked and the signal comes meanwhile
        local t = os.clock() + 0.3
        while os.clock() < t do end
        print(loom.signal.wait("SIGINT"))
      ]])
      p:kill("SIGINT")
      local out, _, code = finish(p)
      assert.are.equal("SIGINT\n", out)
      assert.are.equal(0, code)
    end))

    it("an error in a handler is reported and makes the exit status 1", async(function()
      local p = start([[
        local server = loom.net.listen("127.0.0.1", 0, function() end)
        loom.signal.on("SIGUSR1", function()
          server:close()
          error("handler failed")
        end)
        print("ready") io.stdout:flush()
      ]])
      p:kill("SIGUSR1")
      local _, err, code = finish(p)
      assert.truthy(err:find("handler failed", 1, true), err)
      assert.are.equal(1, code)
    end))

    it("a cancelled wait lets the signal go back to its default", async(function()
      local p = start([[
        local t = loom.spawn(loom.signal.wait, "SIGUSR1")
        loom.yield()  -- it watches from here on
        t:cancel()
        pcall(t.await, t)
        print("ready") io.stdout:flush()
        loom.sleep(30)
      ]])
      p:kill("SIGUSR1")
      local _, _, code, sig = finish(p)
      assert.is_nil(code)
      assert.are.equal("SIGUSR1", sig)
    end))
  end)
end)
