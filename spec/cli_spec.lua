--[[ spec/cli_spec.lua: the loom binary's command line against lua5.4's
  (lua.c): the order in which it runs LUA_INIT, -e, -l, -W and the
  script, how it reports what fails, and Ctrl-C in a task that never
  suspends.

  Every child runs under coreutils 'timeout', so a binary that hangs
  fails its test instead of the run.  Ctrl-C is a real SIGINT, sent once
  the child said on stdout that it is where the test wants it.
]]
local helper = require("spec.helper")
local q, lines = helper.quote, helper.lines

local LIMIT = 20  -- seconds any child may run

local slurp = helper.slurp

--[[ Runs the binary with 'args' under 'timeout', with the environment
  'env' ({NAME = value}) and stdin from /dev/null.
  Returns stdout, stderr and the exit status. ]]
local function loom(args, env)
  -- the caller's own LUA_INIT must not change what the tests see
  local parts = { "env -u LUA_INIT -u LUA_INIT_5_4" }
  for k, v in pairs(env or {}) do parts[#parts + 1] = q(k .. "=" .. v) end
  parts[#parts + 1] = ("timeout -k 5 %d"):format(LIMIT)
  parts[#parts + 1] = q(helper.loom_bin)
  for _, a in ipairs(args) do parts[#parts + 1] = q(a) end
  local out, err = os.tmpname(), os.tmpname()
  local _, how, code = os.execute(("%s </dev/null >%s 2>%s"):format(
    table.concat(parts, " "), q(out), q(err)))
  if how == "signal" then code = 128 + code end
  return slurp(out), slurp(err), code
end

--[[ Runs the binary with 'args' in the background, waits until its
  stdout has a line "ready", sends it SIGINT; then for each entry of
  'more' waits for that text on stdout, and sends SIGINT again, or, for
  {touch = path}, creates the file 'path'.  Returns stdout, stderr and
  the exit status.  'timeout --foreground' passes the signal to loom
  alone (without it, timeout sends it to the whole process group too,
  and loom would see two). ]]
local function interrupt(args, more)
  local out, err = os.tmpname(), os.tmpname()
  local cmd = { "env -u LUA_INIT -u LUA_INIT_5_4",
                ("timeout --foreground -k 5 %d"):format(LIMIT),
                q(helper.loom_bin) }
  for _, a in ipairs(args) do cmd[#cmd + 1] = q(a) end
  local function waitfor(text)
    return "n=0; until grep -q " .. q(text) .. " " .. q(out)
      .. " 2>/dev/null || [ $n -ge 500 ]; do sleep 0.02; n=$((n+1)); done"
  end
  local parts = {
    table.concat(cmd, " ") .. (" </dev/null >%s 2>%s &"):format(q(out), q(err)),
    "pid=$!",
    waitfor("^ready$"),
    "kill -INT $pid",
  }
  for _, m in ipairs(more or {}) do
    if type(m) == "table" then parts[#parts + 1] = "touch " .. q(m.touch)
    else
      parts[#parts + 1] = waitfor(m)
      parts[#parts + 1] = "kill -INT $pid"
    end
  end
  parts[#parts + 1] = "wait $pid; echo \"rc=$?\""
  local script = helper.script(table.concat(parts, "\n") .. "\n")
  local p = io.popen("sh " .. q(script))
  local report = p:read("a")
  p:close()
  os.remove(script)
  local code = tonumber(report:match("rc=(%d+)"))
  assert(code, "the SIGINT runner failed: " .. report)
  return slurp(out), slurp(err), code
end

local READY = 'io.write("ready\\n") io.flush() '

describe("loom command line", function()
  describe("runs its steps as lua5.4 does", function()
    it("runs each -e in turn: a later syntax error stops the run there", function()
      local out, err, code = loom({ "-e", "print(1)", "-e", "x = = 2", "-e", "print(3)" })
      assert.are.equal("1\n", out)
      assert.are.equal("loom: (command line):1: unexpected symbol near '='\n", err)
      assert.are.equal(1, code)
    end)

    it("-l before a chunk that would not compile reports the module", function()
      local out, err, code = loom({ "-l", "nosuchmod", "-e", "1" })
      assert.are.equal("", out)
      assert.are.equal(1, code)
      assert.matches("^module 'nosuchmod' not found:\n", helper.unlog(err))
      assert.not_matches("loom%.cli", err)
      assert.not_matches("unexpected symbol", err)
    end)

    it("a -e traceback ends in the chunk, as lua5.4's, with no loom frame", function()
      local out, err, code = loom({ "-e", "x = 1", "-e", "error('x')" })
      assert.are.equal("", out)
      assert.are.equal(1, code)
      assert.are.equal("ERROR", helper.records(err)[1].level)
      assert.are.equal("(command line):1: x\n"
        .. "stack traceback of task 'main':\n"
        .. "\t[C]: in function 'error'\n"
        .. "\t(command line):1: in main chunk\n"
        .. "\t[C]: in ?\n", helper.unlog(err))
    end)

    it("a script after -e shows 'main chunk' in its traceback", function()
      local path = helper.script("local function f() error('y') end\nf()\n")
      local _, err, code = loom({ "-e", "x = 1", path })
      assert.are.equal(1, code)
      assert.matches("\t" .. path:gsub("%p", "%%%0") .. ":2: in main chunk\n", err)
      assert.not_matches("field 'fn'", err)
      assert.not_matches("%[loom%]", err)
      -- and alone, the script is the main task itself, as before
      _, err, code = loom({ path })
      os.remove(path)
      assert.are.equal(1, code)
      assert.matches(":2: in main chunk\n$", err)
    end)

    it("-l sets its global before the next step and the script sees arg", function()
      local out, err, code = loom({ "-l", "m=string", "-e", "print(m.rep('a', 3), arg[1])",
                                    "-", "x" })
      assert.are.equal("", err)
      assert.are.equal(0, code)
      assert.are.equal("aaa\tx\n", out)
    end)
  end)

  describe("LUA_INIT", function()
    it("runs LUA_INIT before the options, with arg set", function()
      local out, err, code = loom({ "-e", "print('e', x)" },
                                  { LUA_INIT = "x = 1 print('init', arg[1])" })
      assert.are.equal("", err)
      assert.are.equal(0, code)
      assert.are.same({ "init\t-e", "e\t1" }, lines(out))  -- as lua5.4
    end)

    it("prefers LUA_INIT_5_4 to LUA_INIT", function()
      local out, _, code = loom({ "-e", "" },
                                { LUA_INIT = "print('plain')", LUA_INIT_5_4 = "print('5.4')" })
      assert.are.equal(0, code)
      assert.are.equal("5.4\n", out)
    end)

    it("@file runs the file, before a script", function()
      local init = helper.script("print('init file', ...)")
      local script = helper.script("print('script', ...)")
      local out, err, code = loom({ script, "a" }, { LUA_INIT = "@" .. init })
      os.remove(init)
      os.remove(script)
      assert.are.equal("", err)
      assert.are.equal(0, code)
      assert.are.same({ "init file", "script\ta" }, lines(out))
    end)

    it("may suspend: it runs in the main task", function()
      local out, _, code = loom({ "-e", "print('after')" },
                                { LUA_INIT = "loom.sleep(0.001) print('init slept')" })
      assert.are.equal(0, code)
      assert.are.same({ "init slept", "after" }, lines(out))
    end)

    it("is reported by its name when it fails, and nothing else runs", function()
      local out, err, code = loom({ "-e", "print('e')" }, { LUA_INIT = "x = =" })
      assert.are.equal("", out)
      assert.are.equal(1, code)
      assert.are.equal("loom: LUA_INIT:1: unexpected symbol near '='\n", err)
      out, err, code = loom({ "-e", "print('e')" }, { LUA_INIT_5_4 = "error('boom')" })
      assert.are.equal("", out)
      assert.are.equal(1, code)
      assert.matches("^LUA_INIT_5_4:1: boom\n", helper.unlog(err))
      assert.matches("LUA_INIT_5_4:1: in main chunk", err)
    end)

    it("-E ignores LUA_INIT and LUA_PATH", function()
      local out, err, code = loom({ "-E", "-e", "print(package.path:find('/nowhere', 1, true))" },
                                  { LUA_INIT = "print('init')", LUA_PATH = "/nowhere/?.lua" })
      assert.are.equal("", err)
      assert.are.equal(0, code)
      assert.are.equal("nil\n", out)
    end)
  end)

  describe("-W", function()
    it("turns warnings on from where it stands", function()
      local _, err, code = loom({ "-e", "warn('before')", "-W", "-e", "warn('after')" })
      assert.are.equal(0, code)
      assert.are.equal("Lua warning: after\n", err)
      _, err, code = loom({ "-W", "-" })
      assert.are.equal(0, code)
      assert.are.equal("", err)
    end)

    it("works with a script alone", function()
      local path = helper.script("warn('from script')")
      local _, err, code = loom({ "-W", path })
      os.remove(path)
      assert.are.equal(0, code)
      assert.are.equal("Lua warning: from script\n", err)
    end)
  end)

  describe("options", function()
    it("rejects an option as the argument of -e, and bad -E/-W forms", function()
      for _, args in ipairs({ { "-e", "-x" }, { "-Ex" }, { "-Wx" } }) do
        local out, err, code = loom(args)
        assert.are.equal("", out)
        assert.are.equal(1, code)
        assert.matches("usage:", err)
      end
    end)

    it("runs the collector incrementally with a pause of 150; the module leaves it be", function()
      local out, err, code = loom({ "-e",
        "print(collectgarbage('incremental'), collectgarbage('setpause', 150))" })
      assert.are.equal(0, code, err)
      local mode, pause = out:match("^(%a+)\t(%d+)\n$")
      assert.are.equal("incremental", mode)
      -- Lua keeps the pause in steps of 4: 150 reads back as 148
      assert.is_true(tonumber(pause) >= 146 and tonumber(pause) <= 150, out)
      out = helper.lua_src("require 'loom' print(collectgarbage('incremental'))")
      assert.are.equal("generational\n", out)  -- as lua5.4 set it
    end)

    it("lists -E and -W in the usage", function()
      local _, err = loom({ "-z" })
      assert.matches("\n  %-E        ignore environment variables\n", err)
      assert.matches("\n  %-W        turn warnings on\n", err)
    end)
  end)

  describe("Ctrl-C in a task that never suspends", function()
    it("interrupts the main chunk: traceback, exit 130", function()
      local out, err, code = interrupt({ "-e", READY .. "while true do end" })
      assert.are.equal("ready\n", out)
      assert.are.equal(130, code)
      err = helper.unlog(err)
      assert.are.equal("interrupted!\n"
        .. "stack traceback of task 'main':\n"
        .. "\t(command line):1: in main chunk\n"
        .. "\t[C]: in ?\n", err)
    end)

    it("interrupts a loop in a task other than main, and main is cancelled", function()
      local out, err, code = interrupt({ "-e", [[
        local t = loom.spawn(function()
          ]] .. READY .. [[
          local x = 0
          while true do x = x + 1 end
        end)
        t.name = "spinner"
        local ok, e = pcall(loom.sleep, 30)
        print("main", loom.is_cancelled(e))
      ]] })
      assert.are.equal(130, code)
      assert.are.same({ "ready", "main\ttrue" }, lines(out))
      err = helper.unlog(err)
      assert.matches("^error in task 'spinner': interrupted!\n", err)
      assert.matches("stack traceback of task 'spinner':\n\t%(command line%):%d+: "
        .. "in function <%(command line%):1>\n$", err)
    end)

    it("a Ctrl-C meant for a task that suspended reaches the next one that does not", function()
      local out, err, code = interrupt({ "-e", [[
        local function busy(s)
          local t0 = os.clock()
          while os.clock() - t0 < s do end
        end
        loom.spawn(function()
          ]] .. READY .. [[
          busy(0.2)
          io.write("suspends\n") io.flush()
          loom.sleep(0)
        end)
        loom.spawn(function() while true do end end).name = "spinner"
        loom.sleep(30)
      ]] }, { "^suspends$" })
      -- the second Ctrl-C exits at once; before, the spinner was never
      -- interrupted and the process ran on until killed
      assert.are.same({ "ready", "suspends" }, lines(out))
      assert.are.equal(130, code, err)
    end)

    it("reaches the awaiter of the interrupted task", function()
      local out, err, code = interrupt({ "-e", [[
        local t = loom.spawn(function() ]] .. READY .. [[ while true do end end)
        t:await()
        print("not reached")
      ]] })
      assert.are.equal("ready\n", out)
      assert.are.equal(130, code)
      err = helper.unlog(err)
      assert.matches("^interrupted!\nstack traceback of task 'task%-%d+':\n", err)
      assert.matches("awaited by task 'main'", err)
    end)

    it("a pcall that catches it does not hold the process: the next Ctrl-C exits", function()
      local out, _, code = interrupt({ "-e", READY .. [[
        while true do
          local ok, e = pcall(function() while true do end end)
          io.write("caught ", tostring(e), "\n") io.flush()
        end
      ]] }, { "caught" })
      assert.are.equal(130, code)
      assert.matches("^ready\ncaught [^\n]*interrupted!\n", out)
    end)

    it("a script that watches SIGINT takes it over: no interrupt", function()
      local flag = os.tmpname()
      os.remove(flag)
      local out, err, code = interrupt({ "-e", ([[
        local signal = require "loom.signal"
        local waiter = loom.spawn(signal.wait, "SIGINT")
        loom.yield()                    -- the waiter watches SIGINT now
        ]] .. READY .. [[
        while not io.open(%q) do end   -- busy until the test says so
        local t = os.clock() + 1         -- and then longer than the grace
        while os.clock() < t do end
        print("loop done")
        print("waiter got " .. waiter:await())
      ]]):format(flag) }, { { touch = flag } })
      os.remove(flag)
      assert.are.equal("", err)
      assert.are.equal(0, code)
      assert.are.same({ "ready", "loop done", "waiter got SIGINT" }, lines(out))
    end)

    it("a task that suspends soon after Ctrl-C is not interrupted: main is cancelled", function()
      local flag = os.tmpname()
      os.remove(flag)
      local out, err, code = interrupt({ "-e", ([[
        ]] .. READY .. [[
        while not io.open(%q) do end   -- busy until the test says so
        local ok, e = pcall(loom.sleep, 30)
        print("cancelled", loom.is_cancelled(e))
      ]]):format(flag) }, { { touch = flag } })
      os.remove(flag)
      assert.are.equal(130, code)
      assert.are.equal("", err)
      assert.are.same({ "ready", "cancelled\ttrue" }, lines(out))
    end)

    it("a suspended main task is still cancelled, its cleanup run", function()
      local out, err, code = interrupt({ "-e", [[
        local ok, e = pcall(function()
          local r <close> = setmetatable({}, { __close = function() print("closed") end })
          ]] .. READY .. [[
          loom.sleep(30)
        end)
        print("cleanup", loom.is_cancelled(e))
      ]] })
      assert.are.equal(130, code)
      assert.are.equal("", err)
      assert.are.same({ "ready", "closed", "cleanup\ttrue" }, lines(out))
    end)
  end)
end)
