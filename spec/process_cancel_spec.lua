--[[ spec/process_cancel_spec.lua: loom.process when things go wrong:
  strings that C would cut, a process.run that is cancelled or timed
  out (the child must go, even one that ignores SIGTERM), and loom
  interrupted while a child runs.

  Every child is bounded: by timeout(1) when it is the loom binary, by
  the test's own kill otherwise.
]]
local loom = require "loom"
local process = require "loom.process"
local async = require("loom.busted").async
local h = require "spec.helper"

local has, raised = h.has, h.raised


describe("loom.process safety", function()
  describe("a string with a NUL inside is refused, never cut", function()
    local cases = {
      { "the command", { "ec\0ho", "x" }, "argument 1 contains a NUL" },
      { "an argument", { "echo", "x\0y" }, "argument 2 contains a NUL" },
      { "an env value", { "echo", env = { A = "x\0y" } },
        "env value of A contains a NUL" },
      { "an env name", { "echo", env = { ["A\0B"] = "x" } },
        "env name contains a NUL" },
      { "cwd", { "echo", cwd = "/\0tmp" }, "cwd contains a NUL" },
    }
    for _, c in ipairs(cases) do
      local what, opts, msg = c[1], c[2], c[3]
      for _, fname in ipairs { "spawn", "run" } do
        it(("process.%s: %s"):format(fname, what), async(function()
          local e = raised(function()
            local p = process[fname](opts)
            if p and p.close then p:wait() p:close() end  -- (not refused)
          end)
          assert.is_true(has(e, ("bad argument #1 to 'process.%s' (%s)")
            :format(fname, msg)), e)
        end))
      end
    end

    it("a signal name: p:kill and process.kill", async(function()
      local p <close> = assert(process.spawn{"sleep", "30", stdin = "null",
                                             stdout = "null"})
      local e = raised(p.kill, p, "SIGTERM\0x")
      assert.is_true(has(e, "bad argument #1 to 'process:kill' (string contains a NUL)"), e)
      e = raised(process.kill, p.pid, "SIGTERM\0x")
      assert.is_true(has(e, "bad argument #2 to 'process.kill' (string "
        .. "contains a NUL)"), e)
      assert.is_nil(p:status())  -- no signal went
      p:kill("SIGKILL")
      assert.are.same({ nil, "SIGKILL" }, { p:wait() })
    end))
  end)

  describe("a cancelled process.run ends its child", function()
    local fs = require "loom.fs"

    -- A FIFO in a fresh folder: the child writes its pid there once it is
    -- ready (its trap set), and the test reads it: no polling.
    local function with_fifo(fn)
      return async(function()
        local d = assert(fs.mkdtemp("/tmp/loom-proc-cancel-"))
        local fifo = d .. "/pid"
        local ok, e = pcall(function()
          local _, err, code = h.sh("mkfifo " .. h.quote(fifo))
          assert.are.equal(0, code, err)
          fn(fifo)
        end)
        fs.remove(d, { recursive = true })
        if not ok then error(e, 0) end
      end, { timeout = 20 })
    end

    -- The argv of a child that writes its pid to 'fifo' and then sleeps;
    -- with 'stubborn' it ignores SIGTERM (exec keeps it ignored).
    local function child(fifo, stubborn, opts)
      local o = { "sh", "-c", (stubborn and "trap '' TERM; " or "")
                    .. "echo $$ > \"$0\"; exec sleep 100", fifo }
      for k, v in pairs(opts or {}) do o[k] = v end
      return o
    end

    local function alive(pid)
      local f = io.open("/proc/" .. pid .. "/stat")
      if f then f:close() end
      return f ~= nil
    end

    -- Starts process.run(argv) in a task; returns the task and the pid
    -- of its child, ready.
    local function start(argv, fifo)
      local t = loom.spawn(process.run, argv)
      local pid = tonumber(assert(fs.read_file(fifo)):match("%d+"))
      assert.is_true(alive(pid))
      return t, pid
    end

    it("cancelled: SIGTERM ends a child at once, which is reaped before the error goes on", with_fifo(function(fifo)
      local t, pid = start(child(fifo, false), fifo)
      local t0 = loom.now()
      t:cancel()
      assert.is_true(loom.is_cancelled(h.error_of(t)))
      assert.is_true(loom.now() - t0 < 2, "waited the grace for a child that obeys SIGTERM")
      assert.is_false(alive(pid))  -- gone, not even a zombie
    end))

    it("a child that ignores SIGTERM is SIGKILLed after kill_grace", with_fifo(function(fifo)
      local t, pid = start(child(fifo, true, { kill_grace = 0.3 }), fifo)
      local t0 = loom.now()
      t:cancel()
      assert.is_true(loom.is_cancelled(h.error_of(t)))
      local took = loom.now() - t0
      assert.is_true(took >= 0.29, ("SIGKILL after %.3f s, before the grace"):format(took))
      assert.is_true(took < 3, ("SIGKILL only after %.3f s"):format(took))
      assert.is_false(alive(pid))
    end))

    it("kill_grace = 0: SIGKILL at once", with_fifo(function(fifo)
      local t, pid = start(child(fifo, true, { kill_grace = 0 }), fifo)
      local t0 = loom.now()
      t:cancel()
      assert.is_true(loom.is_cancelled(h.error_of(t)))
      assert.is_true(loom.now() - t0 < 0.25)
      assert.is_false(alive(pid))
    end))

    it("a second cancellation during the grace cuts it short", with_fifo(function(fifo)
      local t, pid = start(child(fifo, true, { kill_grace = 30 }), fifo)
      t:cancel()
      h.settle()  -- it sent SIGTERM and waits out the grace
      assert.is_true(alive(pid))
      local t0 = loom.now()
      t:cancel()
      assert.is_true(loom.is_cancelled(h.error_of(t)))
      assert.is_true(loom.now() - t0 < 2)
      assert.is_false(alive(pid))
    end))

    it("timeout = s: the same, then loom.Timeout", with_fifo(function(fifo)
      local argv = child(fifo, true, { timeout = 0.2, kill_grace = 0.2 })
      local t = loom.spawn(function()
        local ok, e = pcall(process.run, argv)
        return ok, e
      end)
      local pid = tonumber(assert(fs.read_file(fifo)):match("%d+"))
      local ok, e = t:await()
      assert.is_false(ok)
      assert.is_true(loom.is_timeout(e), tostring(e))
      assert.is_false(alive(pid))
    end))

    it("kill_grace must be a non-negative number", async(function()
      for _, bad in ipairs { -1, "5", 0 / 0 } do
        local e = raised(process.run, { "true", kill_grace = bad })
        assert.is_true(has(e, "bad argument #1 to 'process.run' (kill_grace "
          .. "must be a non-negative number)"), e)
      end
    end))

    it("a cancelled p:wait() leaves the child running (as asyncio): the spawner decides", async(function()
      local p <close> = assert(process.spawn{"sleep", "100", stdin = "null",
                                             stdout = "null"})
      local ok, e = pcall(loom.timeout, 0.05, p.wait, p)
      assert.is_false(ok)
      assert.is_true(loom.is_timeout(e))
      assert.is_nil(p:status())
      assert.is_true(alive(p.pid))
      p:kill("SIGKILL")
      assert.are.same({ nil, "SIGKILL" }, { p:wait() })
    end))
  end)

  describe("loom interrupted while process.run runs", function()
    -- 'where': "main" runs process.run in the main task; "task" in a task
    -- of its own while the main task waits on something else.
    for _, where in ipairs { "main", "task" } do
      local in_what = where == "main" and "the main task" or "a task of its own"
      it(("SIGINT to loom alone, run in %s: the child is ended and reaped, loom exits 130")
         :format(in_what), async(function()
        local fs = require "loom.fs"
        local d = assert(fs.mkdtemp("/tmp/loom-proc-int-"))
        local ok, e = pcall(function()
          local fifo = d .. "/pid"
          local _, err, code = h.sh("mkfifo " .. h.quote(fifo))
          assert.are.equal(0, code, err)
          local script = d .. "/main.lua"
          assert.is_true(fs.write_file(script, ([[
            local loom = require "loom"
            local process = require "loom.process"
            print(process.pid)
            io.stdout:flush()
            local function run()
              process.run{"sh", "-c", "trap '' TERM; echo $$ > %s; exec sleep 100",
                          kill_grace = 0.2}
            end
            if %q == "main" then run() else
              loom.spawn(run)
              loom.sleep(100)
            end
            print("not reached")
          ]]):format(h.quote(fifo), where)))
          local loom_p <close> = assert(process.spawn{"timeout", "20", h.loom_bin,
                                                    script, stdin = "null",
                                                    stderr = "pipe"})
          local loom_pid = tonumber(loom_p.stdout:read_line())
          local pid = tonumber(assert(fs.read_file(fifo)):match("%d+"))
          assert.is_true(process.kill(loom_pid, "SIGINT"))
          assert.are.equal(130, loom_p:wait())
          assert.are.equal("", loom_p.stdout:read_all())
          local stopped = io.open("/proc/" .. pid .. "/stat")
          if stopped then stopped:close() end
          assert.is_nil(stopped, "the child outlived loom")
        end)
        fs.remove(d, { recursive = true })
        if not ok then error(e, 0) end
      end, { timeout = 20 }))
    end
  end)
end)
