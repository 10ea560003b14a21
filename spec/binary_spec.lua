--[[ spec/binary_spec.lua: the loom binary, run as a subprocess.

  Each test runs build/loom (spec.helper.loom_bin) with a small script
  and checks what a user sees: stdout, stderr and the exit status.  The
  command line follows lua5.4's (see SPEC.md, "Running").
]]
local helper = require("spec.helper")
local run_bin, run_src, sh, q = helper.run_bin, helper.run_src, helper.sh, helper.quote

local clock, lines = helper.clock, helper.lines

local function count(s, pattern)
  local n = 0
  for _ in s:gmatch(pattern) do n = n + 1 end
  return n
end

local function escape(s) return (s:gsub("%p", "%%%0")) end

local tmpdir, rmtree = helper.tmpdir, helper.rmtree

local function write(path, text)
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
end

-- The binary by an absolute path, for commands run in another directory.
local function abs_bin()
  local bin = helper.loom_bin
  if bin:sub(1, 1) == "/" then return bin end
  local p = io.popen("pwd")
  local cwd = p:read("l")
  p:close()
  return cwd .. "/" .. bin
end

--[[ Runs 'src' with the binary in the background, waits until its
  stdout holds 'marker', sends SIGINT, and for each later entry of
  'more' ({marker, delay}) waits for that marker and sends another.
  Returns the script's stdout, stderr, exit status and the seconds from
  the first SIGINT to the exit. ]]
local function interrupt(src, marker, more)
  local script = helper.script(src)
  local out, err = os.tmpname(), os.tmpname()
  local parts = {
    ("%s %s >%s 2>%s &"):format(q(helper.loom_bin), q(script), q(out), q(err)),
    "pid=$!",
    -- wait (at most 10 s) until the marker is printed
    "waitfor() { n=0; until grep -q \"$1\" " .. q(out)
      .. " 2>/dev/null || [ $n -ge 500 ]; do sleep 0.02; n=$((n+1)); done; }",
    "waitfor " .. q(marker),
    "t0=$(date +%s%N)",
    "kill -INT $pid",
  }
  for _, m in ipairs(more or {}) do
    parts[#parts + 1] = "waitfor " .. q(m)
    parts[#parts + 1] = "kill -INT $pid"
  end
  parts[#parts + 1] = "wait $pid; rc=$?"
  parts[#parts + 1] = "t1=$(date +%s%N)"
  parts[#parts + 1] = "echo \"$rc $(( (t1 - t0) / 1000000 ))\""
  local runner = helper.script(table.concat(parts, "\n") .. "\n")
  local report = sh("sh " .. q(runner))
  os.remove(runner)
  os.remove(script)
  local stdout, stderr = helper.slurp(out), helper.slurp(err)
  local rc, ms = report:match("^(%d+) (%d+)")
  assert(rc, "the SIGINT runner failed: " .. report)
  return stdout, stderr, tonumber(rc), tonumber(ms) / 1000
end

describe("loom binary", function()
  describe("main chunk", function()
    it("is the main task: loom is a global and top-level loom.sleep works", function()
      local t0 = clock()
      local out, err, code = run_src([[
        print(type(loom), type(loom.sleep))
        local t = loom.current()
        print(t ~= nil, t and t.name)
        local before = loom.now()
        loom.sleep(0.05)
        print(("slept %.2f"):format(loom.now() - before))
      ]])
      local elapsed = clock() - t0
      assert.are.equal("", err)
      assert.are.equal(0, code)
      local l = lines(out)
      assert.are.equal("table\tfunction", l[1])
      assert.are.equal("true\tmain", l[2])
      local slept = tonumber(l[3]:match("^slept ([%d.]+)$"))
      assert.is_truthy(slept)
      assert.is_true(slept >= 0.04, "slept " .. slept)
      assert.is_true(elapsed >= 0.04, "the process took " .. elapsed .. " s")
    end)

    it("lives while other tasks run after the main chunk returns", function()
      local t0 = clock()
      local out, err, code = run_src([[
        loom.spawn(function()
          loom.sleep(0.2)
          print("late task done")
        end)
        print("main returns")
      ]])
      local elapsed = clock() - t0
      assert.are.equal("", err)
      assert.are.equal(0, code)
      assert.are.same({ "main returns", "late task done" }, lines(out))
      assert.is_true(elapsed >= 0.19, "exited after " .. elapsed .. " s")
      assert.is_true(elapsed < 2, "exited after " .. elapsed .. " s")
    end)

    it("exits with the status given to os.exit", function()
      local out, err, code = run_src([[
        loom.sleep(0.01)
        io.write("bye")
        os.exit(3)
      ]])
      assert.are.equal("bye", out)
      assert.are.equal("", err)
      assert.are.equal(3, code)
    end)
  end)

  describe("arg and ...", function()
    it("sets arg as lua5.4 does: script at 0, arguments above, interpreter below", function()
      local out, err, code, path = run_src([[
        print(#arg, arg[0], arg[1], arg[2], arg[3], arg[-1], arg[-2])
      ]], { "one", "two words", "" })
      assert.are.equal("", err)
      assert.are.equal(0, code)
      assert.are.equal(table.concat({ "3", path, "one", "two words", "", helper.loom_bin, "nil" }, "\t")
        .. "\n", out)
    end)

    it("puts the options at negative indices", function()
      local path = helper.script("print(arg[-4], arg[-3], arg[-2], arg[-1], arg[0], arg[1], #arg)")
      local out, err, code = run_bin({ "-e", "x = 1", "-v", path, "a" })
      os.remove(path)
      assert.are.equal("", err)
      assert.are.equal(0, code)
      local l = lines(out)
      assert.matches("loom", l[1])
      assert.are.equal(table.concat({ helper.loom_bin, "-e", "x = 1", "-v", path, "a", "1" }, "\t"), l[2])
    end)

    it("passes the arguments to the main chunk as ...", function()
      local out, err, code = run_src([[
        print(select("#", ...), ...)
      ]], { "a", "-x", "--", "c d" })
      assert.are.equal("", err)
      assert.are.equal(0, code)
      assert.are.equal("4\ta\t-x\t--\tc d\n", out)
    end)

    it("gives ... no values when there are no arguments", function()
      local out, _, code = run_src("print(select('#', ...), #arg)")
      assert.are.equal(0, code)
      assert.are.equal("0\t0\n", out)
    end)
  end)

  describe("options", function()
    it("-e runs each chunk in order, before the script, in the same globals", function()
      local path = helper.script("print('script', x, y)")
      local out, err, code = run_bin({ "-e", "x = 1 print('e1')", "-e", "y = x + 1 print('e2', y)", path })
      os.remove(path)
      assert.are.equal("", err)
      assert.are.equal(0, code)
      assert.are.same({ "e1", "e2\t2", "script\t1\t2" }, lines(out))
    end)

    it("-e alone runs the chunk as the main task (it may suspend)", function()
      local out, err, code = run_bin({ "-e", "loom.sleep(0.01) print('after sleep', loom.current().name)" })
      assert.are.equal("", err)
      assert.are.equal(0, code)
      assert.are.equal("after sleep\tmain\n", out)
    end)

    it("-e accepts its chunk attached (-ecode)", function()
      local out, _, code = run_bin({ "-eprint('attached')" })
      assert.are.equal(0, code)
      assert.are.equal("attached\n", out)
    end)

    it("-e with a syntax error reports it and runs nothing after it", function()
      local path = helper.script("print('script ran')")
      local out, err, code = run_bin({ "-e", "print('first')", "-e", "x = = 1", path })
      os.remove(path)
      assert.are.equal(1, code)
      assert.are.equal("first\n", out)  -- as lua5.4: each -e compiles in turn
      assert.matches("%(command line%):1:", err)
      assert.not_matches("traceback", err)
    end)

    describe("-l", function()
      local dir
      before_each(function()
        dir = tmpdir()
        -- the module's main chunk suspends: require is yieldable in tasks
        write(dir .. "/mymod.lua", [[
          local name = ...
          loom.sleep(0.01)
          print("loading " .. name)
          return { v = 42 }
        ]])
      end)
      after_each(function() rmtree(dir) end)

      local function with_path(args)
        local parts = { "LUA_PATH=" .. q(dir .. "/?.lua;;"), q(helper.loom_bin) }
        for _, a in ipairs(args) do parts[#parts + 1] = q(a) end
        return sh(table.concat(parts, " "))
      end

      it("requires the module into a global of its name, in order with -e", function()
        local out, err, code = with_path({ "-e", "print('before', mymod)", "-l", "mymod",
                                           "-e", "print('after', mymod.v, package.loaded.mymod == mymod)" })
        assert.are.equal("", err)
        assert.are.equal(0, code)
        assert.are.same({ "before\tnil", "loading mymod", "after\t42\ttrue" }, lines(out))
      end)

      it("accepts the module name attached (-lmod) and before a script", function()
        local path = helper.script("print('script sees', mymod.v)")
        local out, err, code = with_path({ "-lmymod", path })
        os.remove(path)
        assert.are.equal("", err)
        assert.are.equal(0, code)
        assert.are.same({ "loading mymod", "script sees\t42" }, lines(out))
      end)

      it("accepts -l g=mod as lua 5.4 does (global g)", function()
        local out, err, code = with_path({ "-l", "m=mymod", "-e", "print('m', m.v, mymod)" })
        assert.are.equal("", err)
        assert.are.equal(0, code)
        assert.are.same({ "loading mymod", "m\t42\tnil" }, lines(out))
      end)

      it("reports a module that does not exist and exits 1", function()
        local out, err, code = with_path({ "-l", "no_such_module_xyz", "-e", "print('ran')" })
        assert.are.equal(1, code)
        assert.are.equal("", out)
        assert.matches("module 'no_such_module_xyz' not found", err)
      end)
    end)

    it("-v prints a version line naming loom and exits 0", function()
      local out, err, code = run_bin({ "-v" }, "print('stdin ran')")
      assert.are.equal("", err)
      assert.are.equal(0, code)
      local l = lines(out)
      assert.are.equal(1, #l)
      assert.matches("loom", l[1])
      assert.matches("%d+%.%d+", l[1])
    end)

    it("-v before a script prints the version, then runs the script", function()
      local path = helper.script("print('script ran')")
      local out, err, code = run_bin({ "-v", path })
      os.remove(path)
      assert.are.equal("", err)
      assert.are.equal(0, code)
      local l = lines(out)
      assert.matches("loom", l[1])
      assert.are.equal("script ran", l[2])
      assert.are.equal(2, #l)
    end)

    it("- reads the script from stdin and passes the arguments", function()
      local out, err, code = run_bin({ "-", "a", "b" }, [[
        loom.sleep(0.01)
        print(arg[0], arg[1], arg[2], select("#", ...), ...)
      ]])
      assert.are.equal("", err)
      assert.are.equal(0, code)
      assert.are.equal("-\ta\tb\t2\ta\tb\n", out)
    end)

    it("with no script and stdin not a terminal, runs stdin as lua does", function()
      local out, err, code = run_bin({}, "loom.sleep(0.01) print('from stdin')")
      assert.are.equal("", err)
      assert.are.equal(0, code)
      assert.are.equal("from stdin\n", out)
    end)

    it("-- stops option handling: a script whose name starts with '-'", function()
      local dir = tmpdir()
      write(dir .. "/-odd.lua", "print('odd script', ...)")
      local out, err, code = sh(("cd %s && %s -- -odd.lua -e x"):format(q(dir), q(abs_bin())))
      rmtree(dir)
      assert.are.equal("", err)
      assert.are.equal(0, code)
      assert.are.equal("odd script\t-e\tx\n", out)
    end)

    it("options after the script are the script's arguments", function()
      local out, err, code = run_src("print(...)", { "-v", "-e", "x" })
      assert.are.equal("", err)
      assert.are.equal(0, code)
      assert.are.equal("-v\t-e\tx\n", out)
    end)

    it("an unknown option prints the usage on stderr and exits 1", function()
      local path = helper.script("print('script ran')")
      local out, err, code = run_bin({ "-x", path })
      os.remove(path)
      assert.are.equal(1, code)
      assert.are.equal("", out)
      assert.matches("'%-x'", err)
      assert.matches("usage: ", err)
      assert.matches("%-e", err)
    end)

    it("-e without its argument prints the usage and exits 1", function()
      local out, err, code = run_bin({ "-e" })
      assert.are.equal(1, code)
      assert.are.equal("", out)
      assert.matches("'%-e'", err)
      assert.matches("usage: ", err)
    end)

    it("-i reads piped standard input as the REPL (spec/repl_spec.lua)", function()
      local out, err, code = run_bin({ "-i" }, "print('stdin ran')\n1 + 1\n")
      assert.are.equal(0, code)
      assert.are.equal("", err)
      assert.are.equal("stdin ran\n2\n", out)
    end)
  end)

  describe("scripts", function()
    it("skip a '#!/usr/bin/env loom' first line and keep line numbers", function()
      local out, err, code = run_src("#!/usr/bin/env loom\nprint('shebang ok', ...)\n", { "x" })
      assert.are.equal("", err)
      assert.are.equal(0, code)
      assert.are.equal("shebang ok\tx\n", out)

      local _, err2, code2, path = run_src("#!/usr/bin/env loom\nlocal a = 1\nerror('line three')\n")
      assert.are.equal(1, code2)
      assert.matches(escape(path) .. ":3: line three", err2)
    end)

    it("missing: one clear message naming the file, exit 1", function()
      local path = os.tmpname()
      os.remove(path)
      local out, err, code = run_bin({ path })
      assert.are.equal(1, code)
      assert.are.equal("", out)
      local l = lines(err)
      assert.are.equal(1, #l, err)
      assert.matches(escape(path), l[1])
      assert.matches("No such file", l[1])
    end)

    it("with a syntax error: one message with file:line, no traceback, exit 1", function()
      local out, err, code, path = run_src("print('never')\nlocal x = = 2\n")
      assert.are.equal(1, code)
      assert.are.equal("", out)
      local l = lines(err)
      assert.are.equal(1, #l, err)
      assert.matches(escape(path) .. ":2:", l[1])
      assert.not_matches("traceback", err)
    end)
  end)

  describe("errors", function()
    it("an uncaught runtime error prints message and stack traceback, exit 1", function()
      local out, err, code, path = run_src([[
        print("before")
        local function inner() loom.sleep(0.01); error("boom here") end
        inner()
        print("after")
      ]])
      assert.are.equal(1, code)
      assert.are.equal("before\n", out)
      assert.matches(escape(path) .. ":2: boom here", err)
      assert.matches("stack traceback", err)
      assert.matches(escape(path) .. ":3:", err)  -- the caller's frame
      assert.are.equal(1, count(err, "boom here"))
    end)

    it("an uncaught error object uses its __tostring, as lua5.4 does", function()
      local out, err, code = run_src([[
        error(setmetatable({}, { __tostring = function() return "custom error text" end }))
      ]])
      assert.are.equal(1, code)
      assert.are.equal("", out)
      assert.matches("custom error text", err)
      assert.matches("stack traceback", err)
    end)

    it("an uncaught loom.Timeout is shown by its text", function()
      local _, err, code = run_src("loom.timeout(0.01, loom.sleep, 5)")
      assert.are.equal(1, code)
      assert.matches("loom.Timeout", err)
      assert.matches("stack traceback", err)
    end)

    it("a failed task nobody awaits is reported with its name and makes the exit 1", function()
      local out, err, code, path = run_src([[
        local t = loom.spawn(function()
          loom.sleep(0.01)
          error("orphan failure")
        end)
        t.name = "worker-x"
        print("main done")
      ]])
      assert.are.equal(1, code)
      assert.are.equal("main done\n", out)
      assert.matches(escape(path) .. ":3: orphan failure", err)
      assert.matches("worker%-x", err)
      assert.matches("traceback", err)
      assert.are.equal(1, count(err, "orphan failure"))
    end)

    it("a failed task that is collected is reported then, not only at exit", function()
      local out, _, code = sh("(" .. q(helper.loom_bin) .. " -e "
        .. q([[local t = loom.spawn(function() error("lost task") end)
               t = nil
               loom.sleep(0.01)
               collectgarbage() collectgarbage()
               print("after gc") io.stdout:flush()]]) .. " 2>&1)")
      assert.are.equal(1, code)
      local at = out:find("lost task", 1, true)
      local after = out:find("after gc", 1, true)
      assert.is_truthy(at, out)
      assert.is_truthy(after, out)
      assert.is_true(at < after, out)
    end)

    it("an error that was awaited, read or seen by on_done is not reported: exit 0", function()
      local out, err, code = run_src([[
        local function fail(msg) loom.sleep(0.01); error(msg, 0) end
        local a = loom.spawn(fail, "A")
        print(pcall(a.await, a))
        local b = loom.spawn(fail, "B")
        repeat loom.yield() until b:done()  -- b fails before anyone looks
        print(b:error())
        local c = loom.spawn(fail, "C")
        repeat loom.yield() until c:done()
        print(pcall(c.result, c))
        local d = loom.spawn(fail, "D")
        d:on_done(function(t) print("on_done", t:error()) end)
      ]])
      assert.are.equal("", err)
      assert.are.equal(0, code)
      assert.are.same({ "false\tA", "B", "false\tC", "on_done\tD" }, lines(out))
    end)

    it("a failing task awaited by main shows both tasks in the traceback", function()
      local out, err, code, path = run_src([[
        local child = loom.spawn(function()
          loom.sleep(0.01)
          error("deep failure")
        end)
        child.name = "child-task"
        child:await()
        print("not reached")
      ]])
      assert.are.equal(1, code)
      assert.are.equal("", out)
      assert.matches(escape(path) .. ":3: deep failure", err)
      assert.matches("child%-task", err)
      local at_child = err:find("child-task", 1, true)
      local awaited = err:find("awaited by task 'main'", 1, true)
      assert.is_truthy(awaited, err)
      assert.is_true(at_child < awaited, err)
      assert.matches(escape(path) .. ":6:", err:sub(awaited))  -- main's await
      assert.are.equal(1, count(err, "deep failure"))  -- one report, not two
    end)

    it("a cancelled task is not a failure", function()
      local out, err, code = run_src([[
        local awaited = loom.spawn(function() loom.sleep(10) end)
        local orphan = loom.spawn(function() loom.sleep(10) end)
        loom.sleep(0.01)
        print(awaited:cancel(), orphan:cancel())
        print(pcall(awaited.await, awaited))
        loom.sleep(0.01)
        print(awaited:cancelled(), orphan:cancelled())
      ]])
      assert.are.equal("", err)
      assert.are.equal(0, code)
      local l = lines(out)
      assert.are.equal("true\ttrue", l[1])
      assert.matches("^false\tloom.Cancelled", l[2])
      assert.are.equal("true\ttrue", l[3])
    end)

    it("a main task waiting on a future nobody sets: message, exit 1", function()
      local t0 = clock()
      local out, err, code = run_src([[
        print("waiting")
        loom.future():await()
        print("never")
      ]])
      assert.is_true(clock() - t0 < 5)
      assert.are.equal(1, code)
      assert.are.equal("waiting\n", out)
      assert.matches("main task", err)
      assert.matches("never finish", err)
    end)
  end)

  describe("Ctrl-C", function()
    it("cancels the main task: its cleanup runs and the exit is 130", function()
      local out, _, code, secs = interrupt([[
        local ok, err = pcall(function()
          local r <close> = setmetatable({}, {
            __close = function() print("closed resource") end,
          })
          print("ready") io.stdout:flush()
          loom.sleep(30)
        end)
        print("cleanup", loom.is_cancelled(err))
        error(err, 0)
      ]], "ready")
      assert.are.equal(130, code)
      assert.are.same({ "ready", "closed resource", "cleanup\ttrue" }, lines(out))
      assert.is_true(secs < 3, "took " .. secs .. " s after SIGINT")
    end)

    it("a second SIGINT while cleanup runs exits 130 at once", function()
      local out, _, code, secs = interrupt([[
        pcall(function()
          print("ready") io.stdout:flush()
          loom.sleep(30)
        end)
        print("cleanup started") io.stdout:flush()
        loom.sleep(30)
        print("cleanup finished")
      ]], "ready", { "cleanup started" })
      assert.are.equal(130, code)
      assert.are.same({ "ready", "cleanup started" }, lines(out))
      assert.is_true(secs < 3, "took " .. secs .. " s after the first SIGINT")
    end)

    it("after the main task has returned, SIGINT exits 130 at once", function()
      local out, _, code, secs = interrupt([[
        loom.spawn(function()
          loom.sleep(30)
          print("background finished")
        end)
        print("ready") io.stdout:flush()
      ]], "ready")
      assert.are.equal(130, code)
      assert.are.same({ "ready" }, lines(out))
      assert.is_true(secs < 3, "took " .. secs .. " s after SIGINT")
    end)
  end)
end)
