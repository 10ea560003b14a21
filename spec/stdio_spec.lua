--[[ spec/stdio_spec.lua: loom.stdin, loom.stdout, loom.stderr and
  stdin:raw(on), against peers loom did not write: the shell's pipes and
  files, a Python reader that keeps its writer waiting
  (spec/peers/slow_reader.py) and a real terminal (tmux).

  Every child runs under 'timeout' (helper.sh); a terminal test kills
  its tmux server whatever happens.
]]
local h = require "spec.helper"
local q = h.quote

-- (not under the sanitizer run's LD_PRELOAD: it is not loom)
local READER = "env -u LD_PRELOAD python3 spec/peers/slow_reader.py"

local tmpfile, read = h.tmppath, h.read

-- Runs 'src' with the binary as 'loom SCRIPT' inside the shell command
-- line 'cmdline' (where it says SCRIPT); returns stdout, stderr, status.
local function pipeline(src, cmdline, stdin, limit)
  return h.pipeline(src, cmdline, nil, stdin, limit)
end

-- Runs 'src' on a FIFO whose writer runs the shell command 'writes',
-- then keeps it open for 20 s; stdout ends with "status N" (the
-- script's), and the script must end well before the writer does.
local function on_open_fifo(src, writes)
  local t0 = h.clock()
  local dir = h.tmpdir()
  local out, err, code = pipeline(src, ([[
    mkfifo %s/in
    (%s; exec sleep 20) > %s/in & writer=$!
    SCRIPT < %s/in
    echo "status $?"
    kill $writer
  ]]):format(dir, writes, dir, dir), nil, 30)
  h.rmtree(dir)
  if not h.coarse then assert.is_true(h.clock() - t0 < 10) end
  return out, err, code
end

-- The flags of this process's fd 'n' (a script's, read from /proc), as
-- Lua source that sets the global 'nonblock'.
local NONBLOCK_OF = [[
local function nonblock(fd)
  local f = assert(io.open("/proc/self/fdinfo/" .. fd))
  local flags = f:read("a"):match("flags:%s*(%d+)")
  f:close()
  return tonumber(flags, 8) & 0x800 ~= 0  -- O_NONBLOCK
end
]]

describe("loom.stdin, loom.stdout, loom.stderr", function()
  it("are Streams, the same each time", function()
    local out, err, code = h.run_src([[
      assert(loom.stdout == loom.stdout and loom.stdin == loom.stdin)
      print(tostring(loom.stdin), tostring(loom.stdout), tostring(loom.stderr))
      print(getmetatable(loom.stdout).__name, type(loom.stdout.write))
    ]])
    assert.are.equal(0, code, err)
    assert.are.same({ "loom.stream (stdin)\tloom.stream (stdout)\tloom.stream (stderr)",
                      "loom.stream\tfunction" }, h.lines(out))
  end)

  describe("stdin", function()
    it("reads lines from a pipe while other tasks run", function()
      -- the shell writes one line, waits for the script to say it got
      -- it (a file appears), writes the next: the reads wait, the
      -- ticker ticks meanwhile
      local mark = tmpfile()
      local out, err, code = pipeline(([[
        local ticks = 0
        local ticker = loom.spawn(function()
          while true do ticks = ticks + 1; loom.sleep(0.001) end
        end)
        local got = {}
        for line in loom.stdin:lines() do
          got[#got + 1] = line
          io.open(%q .. #got, "w"):close()
        end
        ticker:cancel()
        print(table.concat(got, ","), ticks > 0)
      ]]):format(mark), ("(echo one; while [ ! -e %s1 ]; do sleep 0.01; done; "
        .. "printf 'two\\r\\n'; while [ ! -e %s2 ]; do sleep 0.01; done; "
        .. "printf 'three') | SCRIPT"):format(mark, mark))
      os.remove(mark .. "1"); os.remove(mark .. "2"); os.remove(mark .. "3")
      assert.are.equal(0, code, err)
      assert.are.equal("one,two,three\ttrue\n", out)
    end)

    it("reads a file on the thread pool: read_line, read(n), read_all, EOF", function()
      local input = ("line %d\n"):rep(3):format(1, 2, 3) .. string.rep("z", 200000)
      local path = h.script([[
        local l1 = loom.stdin:read_line()
        local l2 = loom.stdin:read_line()
        local five = loom.stdin:read_exactly(5)
        local rest = loom.stdin:read_all()
        local none, msg, c = loom.stdin:read()
        print(l1, l2, five, #rest, rest:sub(1, 2), rest:sub(-1), none, c)
      ]])
      local out, err, code = h.run_bin({ path }, input)
      os.remove(path)
      assert.are.equal(0, code, err)
      assert.are.equal("line 1\tline 2\tline \t200002\t3\n\tz\tnil\tEOF\n", out)
    end)

    it("/dev/null is at its end at once", function()
      local out, err, code = h.run_src([[
        print(loom.stdin:read_line())
        print(select("#", loom.stdin:read_all()), loom.stdin:read_all() == "")
      ]])
      assert.are.equal(0, code, err)
      assert.are.equal("nil\tread from 'stdin': end of file\tEOF\n1\ttrue\n", out)
    end)

    it("does not keep the process alive, nor read what nobody waits for", function()
      -- stdin stays open (the writer sleeps): a script that took one
      -- line and ended exits at once, not when the writer is done
      local out, err, code = on_open_fifo([[
        print(loom.stdin:read_line())
        loom.spawn(function() loom.sleep(0.01) print("later") end)
      ]], "echo first")
      assert.are.equal(0, code, err)
      assert.are.equal("first\nlater\nstatus 0\n", out)
    end)

    it("a reader cancelled or timed out leaves nothing that keeps the process alive", function()
      local out, err, code = on_open_fifo([[
        local t = loom.spawn(function() return loom.stdin:read_line() end)
        loom.yield()
        t:cancel()
        print(pcall(t.await, t))
        print(pcall(loom.timeout, 0.01, loom.stdin.read, loom.stdin))
      ]], ":")
      assert.are.equal(0, code, err)
      assert.matches("^false\t.-cancel.-\nfalse\t.-timed out.-\nstatus 0\n$", out)
    end)

    it("a pipe keeps blocking mode for C stdio and the writer", function()
      local out, err, code = pipeline(NONBLOCK_OF .. [[
        assert(loom.stdin:read_line() == "a")
        print(nonblock(0))
        loom.stdin:close()
        print(io.read("l"))  -- C stdio on fd 0: the description loom
                             -- did not touch (loom's buffer took "b")
      ]], "printf 'a\\nb\\n' | SCRIPT")
      assert.are.equal(0, code, err)
      assert.are.equal("false\nnil\n", out)
    end)

    it("raw(true) on something that is not a terminal: nil, msg, ENOTTY", function()
      local out, err, code = h.run_src([[
        print(loom.stdin:raw(true))
        print(loom.stdout:raw(false))
        local ok, e = pcall(loom.stdin.raw, 42)
        print(e)
      ]])
      assert.are.equal(0, code, err)
      local l = h.lines(out)
      assert.are.equal("nil\traw mode of 'stdin': inappropriate ioctl for device\tENOTTY", l[1])
      assert.are.equal("nil\traw mode of 'stdout': inappropriate ioctl for device\tENOTTY", l[2])
      assert.matches("bad argument #1 to 'stream:raw' %(loom.stream expected, got number%)", l[3])
    end)
  end)

  describe("stdout", function()
    it("writes to a slow pipe with backpressure, the loop running", function()
      local got, go = tmpfile(), tmpfile()
      local _, err, code = pipeline(([[
        local ticks = 0
        local ticker = loom.spawn(function()
          while true do ticks = ticks + 1; loom.sleep(0.001) end
        end)
        local w = loom.spawn(function()
          local block = string.rep("x", 65535) .. "\n"
          for i = 1, 32 do assert(loom.stdout:write(block)) end
          assert(loom.stdout:flush())
        end)
        loom.sleep(0.05)
        local before = ticks  -- the writer waits for the reader
        io.open(%q, "w"):close()
        w:await()
        ticker:cancel()
        io.stderr:write(tostring(w:done()), " ", tostring(before > 0), "\n")
      ]]):format(go), ("SCRIPT | %s %s --after %s"):format(READER, got, go))
      os.remove(go)
      local data = read(got)
      os.remove(got)
      assert.are.equal(0, code, err)
      assert.are.equal("true true\n", err)
      assert.are.equal(32 * 65536, #data)
      assert.are.equal(string.rep(string.rep("x", 65535) .. "\n", 32), data)
    end)

    it("print, io.write, io.stdout:write and stream writes keep their order (a slow pipe)", function()
      local got, go = tmpfile(), tmpfile()
      local _, err, code = pipeline(([[
        local block = string.rep("b", 200000) .. "\n"
        -- the stream queues (the reader waits), so C stdio's writes
        -- after it must go behind it; its writes below do not wait
        loom.stdout:limits{ high_water = 4 * 1024 * 1024 }
        print("first")
        local w = loom.spawn(function() loom.stdout:write("stream ", block) end)
        loom.yield()
        for i = 1, 2000 do
          if i %% 4 == 0 then print("print", i)
          elseif i %% 4 == 1 then io.write("io.write ", i, "\n")
          elseif i %% 4 == 2 then io.stdout:write("file ", i, "\n")
          else loom.stdout:write("stream ", i, "\n") end
        end
        io.open(%q, "w"):close()
        w:await()
        print("last")
      ]]):format(go), ("SCRIPT | %s %s --after %s --chunk 512"):format(
        READER, got, go))
      os.remove(go)
      local data = read(got)
      os.remove(got)
      assert.are.equal(0, code, err)
      local l = h.lines(data)
      assert.are.equal(2003, #l)
      assert.are.equal("first", l[1])
      assert.are.equal("stream " .. string.rep("b", 200000), l[2])
      for i = 1, 2000 do
        local n = tonumber(l[i + 2]:match("(%d+)$"))
        assert.are.equal(i, n, "line " .. i + 2 .. ": " .. l[i + 2])
      end
      assert.are.equal("last", l[2003])
    end)

    it("print, io.write and stream writes keep their order (a file)", function()
      local path = tmpfile()
      local _, err, code = pipeline([[
        io.write("a")
        loom.stdout:write("b")
        print("c")
        loom.stdout:write("d\n")
        io.write("e ", 1, " ", 2.5, "\n")
        io.stdout:write("f\n")
        loom.stdout:write("g\n")
      ]], "SCRIPT > " .. q(path))
      local data = read(path)
      os.remove(path)
      assert.are.equal(0, code, err)
      assert.are.equal("abc\nd\ne 1 2.5\nf\ng\n", data)
    end)

    it("print to a full pipe loses nothing, and fd 1 stays blocking", function()
      local got = tmpfile()
      local _, err, code = pipeline(NONBLOCK_OF .. [[
        loom.stdout:write("start\n")
        io.stderr:write(tostring(nonblock(1)), "\n")
        for i = 1, 100000 do print(i) end
      ]], ("SCRIPT | %s %s --chunk 4096 --pause 0.0005"):format(READER, got))
      local data = read(got)
      os.remove(got)
      assert.are.equal(0, code, err)
      assert.are.equal("false\n", err)
      local l = h.lines(data)
      assert.are.equal(100001, #l)
      assert.are.equal("start", l[1])
      for i = 1, 100000 do
        if l[i + 1] ~= tostring(i) then
          error(("line %d: %q"):format(i + 1, l[i + 1]))
        end
      end
    end)

    it("on a socket (stdin and stdout one description): nothing lost, nothing left non-blocking", function()
      local input = h.script("one\ntwo\n")
      local path = h.script(NONBLOCK_OF .. [[
        local got = {}
        for line in loom.stdin:lines() do got[#got + 1] = line end
        loom.stdout:write(table.concat(got, ","), "\n")
        loom.stdout:write(tostring(nonblock(0)), " ", tostring(nonblock(1)), "\n")
        local w = loom.spawn(function() loom.stdout:write(string.rep("s", 300000), "\n") end)
        loom.yield()
        for i = 1, 30000 do print(i) end
        w:await()
      ]])
      local out, err, code = h.sh(("env -u LD_PRELOAD python3 spec/peers/socket_stdio.py %s env %s %s %s")
        :format(q(input), q("LD_PRELOAD=" .. (os.getenv("LD_PRELOAD") or "")), q(h.loom_bin), q(path)))
      os.remove(input); os.remove(path)
      assert.are.equal(0, code, err)
      local l = h.lines(out)
      assert.are.same({ "one,two", "false false", string.rep("s", 300000) },
                      { l[1], l[2], l[3] })
      assert.are.equal(30003, #l)
      for i = 1, 30000 do
        if l[i + 3] ~= tostring(i) then error(("line %d: %q"):format(i + 3, l[i + 3])) end
      end
    end)

    it("a reader gone: writes fail with EPIPE, print does not kill", function()
      local _, err, code = pipeline([[
        loom.stdout:write("one\n")
        loom.sleep(0.1)
        local r
        for i = 1, 1000 do
          local ok, msg, c = loom.stdout:write(string.rep("y", 4096))
          if not ok then r = c break end
        end
        print("after")
        io.stderr:write(tostring(r), "\n")
      ]], "SCRIPT | head -c 1 >/dev/null")
      assert.are.equal(0, code, err)
      assert.are.equal("EPIPE\n", err)
    end)

    it("what is queued at os.exit goes out", function()
      local got, go = tmpfile(), tmpfile()
      local _, err, code = pipeline(([[
        loom.spawn(function() loom.stdout:write(string.rep("q", 300000), "\n") end)
        loom.yield()
        print("after the queue")
        io.open(%q, "w"):close()
        os.exit(3)
      ]]):format(go), ("SCRIPT | %s %s --after %s; exit ${PIPESTATUS:-0}"):format(
        READER, got, go))
      os.remove(go)
      local data = read(got)
      os.remove(got)
      assert.are.equal(0, code, err)
      assert.are.equal(string.rep("q", 300000) .. "\nafter the queue\n", data)
    end)

    it("what is queued goes out on SIGTERM, which then ends the process", function()
      local got, go = tmpfile(), tmpfile()
      local out, err = pipeline(([[
        loom.spawn(function() loom.stdout:write(string.rep("t", 300000), "\n") end)
        loom.yield()
        print("queued")
        local f = assert(io.open("/proc/self/stat"))
        local pid = f:read("a"):match("^(%%d+)")
        f:close()
        io.open(%q .. ".pid", "w"):write(pid):close()
        loom.sleep(30)
      ]]):format(go), ([[
        SCRIPT | %s %s --after %s &
        while [ ! -s %s.pid ]; do sleep 0.01; done
        kill -TERM $(cat %s.pid)
        touch %s
        wait
        echo done
      ]]):format(READER, got, go, go, go, go))
      os.remove(go); os.remove(go .. ".pid")
      local data = read(got)
      os.remove(got)
      assert.are.equal("done\n", out, err)
      assert.are.equal(string.rep("t", 300000) .. "\nqueued\n", data)
    end)

    it("the module: what is queued goes out when the state closes", function()
      local got, go = tmpfile(), tmpfile()
      local path = h.script(("package.cpath = %q .. package.cpath\n"):format(
        h.build .. "/lua/?.so;") .. ([[
        local loom = require "loom"
        loom.run(function()
          loom.spawn(function() loom.stdout:write(string.rep("m", 300000), "\n") end)
          loom.yield()
          print("module")
          io.open(%q, "w"):close()
        end)
      ]]):format(go))
      local _, err, code = h.sh(("lua5.4 %s | %s %s --after %s"):format(
        q(path), READER, got, go))
      os.remove(path); os.remove(go)
      local data = read(got)
      os.remove(got)
      assert.are.equal(0, code, err)
      assert.are.equal(string.rep("m", 300000) .. "\nmodule\n", data)
    end)
  end)

  describe("stderr", function()
    it("is standard error, in order with io.stderr", function()
      local out, err, code = h.run_src([[
        io.stderr:write("1\n")
        loom.stderr:write("2\n")
        io.stderr:write("3\n")
      ]])
      assert.are.equal(0, code, err)
      assert.are.equal("", out)
      assert.are.equal("1\n2\n3\n", err)
    end)
  end)
end)


-- {====================================================================
-- A real terminal: tmux

local TT = { timeout = 60 }

--[[ A test body: 'src' runs as a script with the binary on a terminal,
  'drive(t)' acts on it (helper.terminal), then gets the exit status
  and what stty said after the script ended. ]]
local function on_terminal(src, drive)
  return h.in_dir("/tmp/loom-stdio-", function(dir)
    h.script(src, dir .. "/script.lua")
    local t <close> = h.terminal(dir)
    t:start { "script.lua" }
    drive(t)
    t:assert_clean()
  end, TT)
end

-- Whether stty's report says canonical mode with echo, as a shell has.
local function cooked(stty)
  return stty:find("%f[%w-]icanon") ~= nil and stty:find("%f[%w-]echo%f[^%w]") ~= nil
    and stty:find("%f[%w-]isig") ~= nil
end

-- The exit status of the script on 't', the screen, and whether the
-- terminal was cooked after it.
local function ended(t)
  local status, screen = t:exit_status()
  local _, after = t:modes()
  return status, screen, cooked(after), after
end

local RAW_READER = [[
assert(loom.stdin:raw(true))
print("raw on")
local got = {}
while #got < 3 do
  local c = assert(loom.stdin:read(1))
  got[#got + 1] = c:byte()
end
print("keys " .. table.concat(got, ","))
]]

describe("a terminal (tmux)", function()
  if not os.execute("command -v tmux >/dev/null 2>&1") then
    pending("tmux is not installed")
    return
  end

  it("raw mode reads each key as typed, no Enter, no echo; restored at exit",
    on_terminal(RAW_READER .. [[
      print("typed")
    ]], function(t)
      t:wait("raw on")
      t:keys("a", "b")
      t:keys("C-c")  -- raw: a byte like any other, no SIGINT
      t:wait("keys 97,98,3")
      local status, screen, ok, stty = ended(t)
      assert.are.equal(0, status, screen)
      assert.is_nil(screen:find("ab", 1, true), screen)  -- no echo
      assert.is_true(ok, stty)
    end))

  it("restored after an uncaught error", on_terminal(RAW_READER .. [[
      error("after the keys")
    ]], function(t)
      t:wait("raw on")
      t:keys("x", "y", "z")
      local status, screen, ok, stty = ended(t)
      assert.are.equal(1, status)
      assert.matches("after the keys", screen)
      assert.is_true(ok, stty)
    end))

  for _, case in ipairs {
    { "SIGINT", 130, " (the main task is cancelled)" },
    { "SIGTERM", 143, ", which still ends the process" },
  } do
    local sig, want, how = table.unpack(case)
    it(("restored after %s%s"):format(sig, how), on_terminal(RAW_READER,
      function(t)
        t:wait("raw on")
        t:signal(sig)
        local status, _, ok, stty = ended(t)
        assert.are.equal(want, status)
        assert.is_true(ok, stty)
      end))
  end

  it("raw(false) turns it off; reading lines on a terminal", on_terminal([[
      assert(loom.stdin:raw(true))
      assert(loom.stdin:raw(false))
      print("raw off")
      local line = loom.stdin:read_line()
      loom.stdout:write("[", line, "]\n")
      print("print after")
    ]], function(t)
      t:wait("raw off")
      t:keys("hello", "Enter")
      local status, screen, ok, stty = ended(t)
      assert.are.equal(0, status, screen)
      assert.truthy(screen:find("hello\n[hello]\nprint after", 1, true), screen)
      assert.is_true(ok, stty)
    end))
end)

-- }====================================================================
