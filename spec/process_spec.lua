--[[ spec/process_spec.lua: loom.process, child processes. ]]
local loom = require "loom"
local process = require "loom.process"
local async = require("loom.busted").async
local helper = require "spec.helper"

local function sh(script, opts)
  local o = { "sh", "-c", script }
  for k, v in pairs(opts or {}) do o[k] = v end
  return o
end

-- The state letter of process 'pid' from /proc ("Z": a zombie), or nil
-- once it is gone (reaped).
local function proc_state(pid)
  local f = io.open("/proc/" .. pid .. "/stat")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s:match("^%d+ %b() (%a)")
end

-- Waits (at most 'secs', default 10) until 'pid' is gone; returns its
-- last state.
local function gone(pid, secs)
  local deadline = loom.now() + (secs or 10)
  while proc_state(pid) and loom.now() < deadline do loom.sleep(0.01) end
  return proc_state(pid)
end

describe("loom.process", function()
  describe("spawn", function()
    it("pipes stdin and stdout by default; stderr is inherited", async(function()
      local p = assert(process.spawn{"cat"})
      assert.is_true(math.type(p.pid) == "integer" and p.pid > 0)
      assert.is_nil(p.stderr)
      assert.is_true(p.stdin:write("hello ", "cat\n"))
      p.stdin:close()
      assert.are.equal("hello cat\n", p.stdout:read_all())
      assert.are.same({ 0 }, { p:wait() })
      p:close()
    end))

    it("pid is the child's own", async(function()
      local p <close> = assert(process.spawn(sh("echo $$")))
      assert.are.equal(tostring(p.pid), p.stdout:read_line())
      p:wait()
    end))

    it("stderr = 'pipe' gives a Stream; the pipes are read at once", async(function()
      local p <close> = assert(process.spawn(sh("echo out; echo err >&2",
                                                { stderr = "pipe" })))
      local out, err = loom.gather(function() return p.stdout:read_all() end,
                                   function() return p.stderr:read_all() end)
      assert.are.equal("out\n", out)
      assert.are.equal("err\n", err)
      assert.are.equal(0, p:wait())
    end))

    it("'null' gives no Stream: the child sees /dev/null", async(function()
      local p <close> = assert(process.spawn{"cat", stdin = "null",
                                             stdout = "null"})
      assert.is_nil(p.stdin)
      assert.is_nil(p.stdout)
      assert.are.same({ 0 }, { p:wait() })  -- EOF at once
      local r = process.run(sh("wc -c", { stdin = "null" }))
      assert.are.equal("0", r.stdout:match("%d+"))
    end))

    it("'inherit' shares this process's stdio with the child", async(function()
      -- the binary's stdout is our pipe: what its child writes comes here
      local script = helper.script([[
        local p = loom.process.spawn{"sh", "-c", "echo from the child; echo e >&2",
                                     stdout = "inherit", stderr = "inherit"}
        print("parent", p.stdout == nil)
        p:wait()
      ]])
      local r = process.run{helper.loom_bin, script}
      os.remove(script)
      assert.are.equal(0, r.code)
      assert.truthy(r.stdout:find("from the child\n", 1, true))
      assert.truthy(r.stdout:find("parent\ttrue\n", 1, true))
      assert.are.equal("e\n", r.stderr)
    end))

    it("cwd and env (env replaces the environment)", async(function()
      local p <close> = assert(process.spawn(sh("pwd; echo \"$A-$B-${HOME:-unset}\"",
        { cwd = "/", env = { A = "one", B = 2 } })))
      assert.are.equal("/\none-2-unset\n", p.stdout:read_all())
      p:wait()
    end))

    it("a command that does not exist: nil, a message naming it, ENOENT", async(function()
      local p, msg, code = process.spawn{"no-such-command-loom"}
      assert.is_nil(p)
      assert.are.equal("ENOENT", code)
      assert.truthy(msg:find("no-such-command-loom", 1, true))
      local r, msg2, code2 = process.run{"no-such-command-loom", input = "x"}
      assert.is_nil(r)
      assert.are.equal("ENOENT", code2)
      assert.truthy(msg2:find("no-such-command-loom", 1, true))
      -- a missing cwd is named too
      local _, msg3, code3 = process.spawn{"ls", cwd = "/no/such/dir"}
      assert.are.equal("ENOENT", code3)
      assert.truthy(msg3:find("/no/such/dir", 1, true))
    end))

    it("misuse raises", async(function()
      assert.has_error(function() process.spawn("ls") end,
        "bad argument #1 to 'process.spawn' (table expected, got string)")
      assert.has_error(function() process.spawn{} end)
      assert.has_error(function() process.spawn{"ls", stdout = "file"} end)
      assert.has_error(function() process.spawn{"ls", {}} end)
      assert.has_error(function() process.spawn{"ls", env = { ["A=B"] = 1 }} end)
      assert.has_error(function() process.spawn{"ls", cwd = 1} end)
      assert.has_error(function() process.run{"ls", timeout = -1} end)
      local p <close> = assert(process.spawn{"true"})
      assert.has_error(function() p:kill("SIGNOPE") end)
      p:wait()
    end))

    it("run and wait outside a task raise", function()
      assert.has_error(function() process.run{"true"} end,
        "loom: process.run called outside a task (use loom.run or the loom binary)")
      local p
      loom.run(function() p = process.spawn{"true", stdin = "null"} end)
      assert.has_error(function() p:wait() end,
        "loom: process:wait called outside a task (use loom.run or the loom binary)")
      p:close()
    end)
  end)

  describe("wait and kill", function()
    it("exit codes", async(function()
      for _, c in ipairs { 0, 1, 3, 42, 255 } do
        local p <close> = assert(process.spawn(sh("exit " .. c)))
        assert.are.same({ c }, { p:wait() })
      end
    end))

    it("signals: code nil and the signal's name", async(function()
      local p <close> = assert(process.spawn{"sleep", "30"})
      assert.is_nil(p:status())
      assert.is_true(p:kill())
      local code, sig = p:wait()
      assert.is_nil(code)
      assert.are.equal("SIGTERM", sig)
      assert.are.same({ nil, "SIGTERM" }, { p:status() })
      for _, s in ipairs { "SIGKILL", "INT", 1 } do
        local q <close> = assert(process.spawn{"sleep", "30"})
        assert.is_true(q:kill(s))
        local _, got = q:wait()
        assert.are.equal(({ SIGKILL = "SIGKILL", INT = "SIGINT", [1] = "SIGHUP" })[s], got)
      end
      -- a signal the child sends itself
      local r = process.run(sh("kill -USR1 $$"))
      assert.is_nil(r.code)
      assert.are.equal("SIGUSR1", r.signal)
    end))

    it("kill after the exit: nil, msg, ESRCH (never another process)", async(function()
      local p <close> = assert(process.spawn{"true"})
      p:wait()
      local ok, msg, code = p:kill()
      assert.is_nil(ok)
      assert.are.equal("ESRCH", code)
      assert.truthy(msg:find("true", 1, true))
    end))

    it("a child that exits before wait is reaped; wait then returns at once", async(function()
      local p <close> = assert(process.spawn(sh("exit 7", { stdin = "null" })))
      assert.is_nil(gone(p.pid))  -- reaped with nobody waiting
      -- the exit is past: a wait that did not return at once never would
      assert.are.equal(7, loom.timeout(5, p.wait, p))
      assert.are.equal(7, loom.timeout(5, p.wait, p))  -- and again
    end))

    it("several tasks may wait; a cancelled wait leaves the child running", async(function()
      local p <close> = assert(process.spawn{"sleep", "30"})
      local a = loom.spawn(function() return p:wait() end)
      local b = loom.spawn(function() return p:wait() end)
      local c = loom.spawn(function() return p:wait() end)
      helper.settle()
      assert.is_false(a:done() or b:done() or c:done())
      c:cancel()
      assert.is_true(loom.is_cancelled(helper.error_of(c)))
      assert.is_nil(p:status())
      p:kill("SIGKILL")
      assert.are.same({ nil, "SIGKILL" }, { a:await() })
      assert.are.same({ nil, "SIGKILL" }, { b:await() })
    end))

    it("a child that reads stdin to EOF", async(function()
      local p <close> = assert(process.spawn{"wc", "-c"})
      local chunk = ("x"):rep(10000)
      for _ = 1, 100 do assert.is_true(p.stdin:write(chunk)) end
      p.stdin:close()
      assert.are.equal("1000000", p.stdout:read_all():match("%d+"))
      assert.are.equal(0, p:wait())
    end))

    it("writing to a child that has exited gives EPIPE as a value", async(function()
      local p <close> = assert(process.spawn{"true"})
      p:wait()
      local ok, msg, code
      for _ = 1, 10 do  -- the first write may land in the socket buffer
        ok, msg, code = p.stdin:write(("x"):rep(65536))
        if not ok then break end
      end
      assert.is_nil(ok)
      assert.are.equal("EPIPE", code)
      assert.truthy(msg:find("stdin", 1, true))
    end))

    it("close is harmless twice; use after close raises", async(function()
      local p = assert(process.spawn{"true"})
      p:wait()
      p:close()
      p:close()
      assert.has_error(function() p:wait() end, "attempt to use a closed process")
      assert.has_error(function() p:kill() end, "attempt to use a closed process")
      assert.matches("^loom%.process %(true, pid %d+%)$", tostring(p))
    end))

    it("close while a task waits: the wait ends with ECANCELED", async(function()
      local p = assert(process.spawn{"sleep", "30"})
      local t = loom.spawn(function() return p:wait() end)
      helper.settle()
      assert.is_false(t:done())
      p:close()
      local ok, msg, code = t:await()
      assert.is_nil(ok)
      assert.truthy(msg)
      assert.are.equal("ECANCELED", code)
      process.kill(p.pid, "SIGKILL")  -- the child itself lives on until killed
      assert.is_nil(gone(p.pid))
    end))
  end)

  describe("lifetime", function()
    it("a Process collected while its child runs: the child is still reaped", async(function()
      local seen = setmetatable({}, { __mode = "k" })
      local pid, stdin
      do
        -- the child lives until its stdin ends
        local p = assert(process.spawn{"sh", "-c", "read x", stdout = "null"})
        pid, stdin = p.pid, p.stdin
        seen[p] = true
      end
      collectgarbage()
      collectgarbage()
      assert.is_nil(next(seen), "the Process was not collected")
      local st = proc_state(pid)
      assert.is_true(st ~= nil and st ~= "Z", "child " .. pid .. " is not running: "
        .. tostring(st))
      stdin:close()
      local last = gone(pid)
      assert.is_nil(last, "child " .. pid .. " left in state " .. tostring(last))
    end))

    it("a script that forgets its child exits when the child does, with no zombie", async(function()
      local script = helper.script([[
        local p = loom.process.spawn{"sh", "-c", "sleep 0.2; echo late", stdout = "inherit"}
        print(p.pid)
        p = nil
        collectgarbage()
      ]])
      local r = process.run{helper.loom_bin, script}
      os.remove(script)
      assert.are.equal(0, r.code)
      local pid, late = r.stdout:match("^(%d+)\n(.*)$")
      assert.are.equal("late\n", late)
      assert.is_nil(proc_state(pid))
    end))
  end)

  describe("run", function()
    it("returns code, signal, stdout and stderr", async(function()
      local r = assert(process.run(sh("echo out; echo err >&2; exit 4")))
      assert.are.same({ code = 4, stdout = "out\n", stderr = "err\n" }, r)
      r = assert(process.run{"cat", input = "abc"})
      assert.are.same({ code = 0, stdout = "abc", stderr = "" }, r)
      r = assert(process.run(sh("echo $X", { env = { X = "ex" }, cwd = "/" })))
      assert.are.equal("ex\n", r.stdout)
    end))

    it("100 children at once", async(function()
      local fns = {}
      for i = 1, 100 do
        fns[i] = function()
          return process.run{"sh", "-c", "echo $0", tostring(i)}
        end
      end
      local rs = { loom.gather(table.unpack(fns)) }
      assert.are.equal(100, #rs)
      for i, r in ipairs(rs) do
        assert.are.same({ code = 0, stdout = i .. "\n", stderr = "" }, r)
      end
    end, { timeout = 20 }))

    it("megabytes both ways at once do not deadlock", async(function()
      -- the child echoes stdin to stdout while writing 3 MB to stderr
      local input = ("0123456789abcdef"):rep(3 * 65536)  -- 3 MiB
      local r = assert(process.run{"sh", "-c",
        "head -c 3000000 /dev/zero | tr '\\0' e >&2 & cat; wait",
        input = input})
      assert.are.equal(0, r.code)
      assert.are.equal(#input, #r.stdout)
      assert.is_true(r.stdout == input)
      assert.are.equal(3000000, #r.stderr)
      assert.is_nil(r.stderr:find("[^e]"))
    end, { timeout = 20 }))

    it("timeout: the child is killed (and reaped) and loom.Timeout raised", async(function()
      local file = os.tmpname()
      local t0 = loom.now()
      local ok, e = pcall(process.run, sh("echo $$ > " .. file .. "; exec sleep 30",
                                           { timeout = 0.3 }))
      assert.is_false(ok)
      assert.is_true(loom.is_timeout(e))
      assert.is_true(loom.now() - t0 < 2)
      local f = assert(io.open(file))
      local pid = f:read("n")
      f:close()
      os.remove(file)
      assert.is_nil(proc_state(pid))
      -- finishing in time is not a timeout
      assert.are.equal(0, process.run{"true", timeout = 5}.code)
    end))

    it("cancelling the task kills the child", async(function()
      local file = os.tmpname()
      local t = loom.spawn(process.run, sh("echo $$ > " .. file .. "; exec sleep 30"))
      local pid
      while not pid do
        loom.sleep(0.01)
        local f = io.open(file)
        pid = f and f:read("n")
        if f then f:close() end
      end
      os.remove(file)
      t:cancel()
      assert.is_true(loom.is_cancelled(helper.error_of(t)))
      assert.is_nil(gone(pid))
    end))

    it("process.kill and process.pid", async(function()
      local f = assert(io.open("/proc/self/stat"))
      local self = tonumber(f:read("a"):match("^%d+"))
      f:close()
      assert.are.equal(self, process.pid)
      local p <close> = assert(process.spawn{"sleep", "30"})
      assert.is_true(process.kill(p.pid, "SIGKILL"))
      assert.are.same({ nil, "SIGKILL" }, { p:wait() })
      local ok, _, code = process.kill(p.pid, 0)
      assert.is_nil(ok)
      assert.are.equal("ESRCH", code)
    end))
  end)
end)
