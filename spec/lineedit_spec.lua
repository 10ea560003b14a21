--[[ spec/lineedit_spec.lua: loom.lineedit, the binary's line editor, on
  a real terminal: tmux (Debian's) runs the loom binary in a pane
  (helper.terminal), the tests type into it with send-keys and read the
  screen with capture-pane.  Each test waits for the text it expects by
  polling the screen, with a deadline; the pane's shell notes the
  terminal's mode before loom starts and after it ends, so that a test
  can see the terminal given back as it was.

  Every tmux server has a socket of its own and is killed when its test
  ends, whatever happens; a watchdog bounds what runs in its pane.
]]
local helper = require("spec.helper")

-- The driver every test runs: an editor with a complete function, the
-- lines read shown as [line|why].  arg: mode, history file, size.
local DRIVER = [=[
local loom = require "loom"
local le = require "loom.lineedit"
local signal = require "loom.signal"
local mode, hist, size = arg[1], arg[2], tonumber(arg[3])
local asked  -- what the complete function was last given
local function say(...)  -- print, with no tabs (the screen shows spaces)
  local t = table.pack(...)
  for i = 1, t.n do t[i] = tostring(t[i]) end
  print(table.concat(t, " "))
end
local ed = assert(le.open{
  history = hist ~= "" and hist or nil, history_size = size,
  complete = function(line)
    asked = line
    if line:find("boom", 1, true) then error("kaboom") end
    if line:find("yield", 1, true) then loom.sleep(1) end
    return {"loom.net", "loom.now", "loom.sleep", "loom.spawn", 42}
  end,
})
local pid = io.open("/proc/self/stat"):read("a"):match("^%d+")
if mode == "ticks" then
  loom.spawn(function()
    for i = 1, 1000 do loom.sleep(0.05) print("tick " .. i) end
  end)
elseif mode == "error" then
  loom.spawn(function() ed:read("e> ") end)
  signal.wait("SIGUSR1")
  error("boom")
elseif mode == "killed" then  -- a watcher, whose process then dies
  signal.on("SIGTERM", function()
    require("loom.process").kill(tonumber(pid), "SIGKILL")
  end)
elseif mode == "exit" then
  signal.on("SIGUSR1", function() os.exit(3) end)
elseif mode == "misuse" then
  say("second open:", pcall(le.open))
  local reader = loom.spawn(function() return ed:read("r> ") end)
  loom.yield()
  say("two readers:", pcall(ed.read, ed, "x> "))
  reader:cancel()
  say("cancelled:", pcall(reader.await, reader))
  say("add_history:", pcall(ed.add_history, ed, {}))
  say("closed:", ed:close(), ed:close())
  say("read closed:", pcall(ed.read, ed, "y> "))
  say("reopened:", le.open{}:close())
  do local _ <close> = le.open{} end
  say("after <close>:", le.open{}:close())
  do local _ = le.open{} end
  collectgarbage()
  collectgarbage()
  say("after __gc:", le.open{}:close())
  return
elseif mode == "handover" then  -- a reader cancelled, the next at once
  local first = loom.spawn(function() return ed:read("a> ") end)
  loom.yield()
  first:cancel()
  local line = ed:read("b> ")
  say("first:", pcall(first.await, first))
  say("second:", line)
elseif mode == "timeout" then
  say("timed out:", pcall(loom.timeout, 0.2, ed.read, ed, "t> "))
end
while true do
  local line, why = ed:read("> ")
  print(("[%s|%s]"):format(tostring(line), tostring(why)))
  if asked then print("(complete was given '" .. asked .. "')") end
  asked = nil
  if line == "spin" then loom.spawn(function() while true do end end) end
  if line then ed:add_history(line) end
  if why == "eof" then break end
end
say("closed:", ed:close())
]=]

-- {==================================================================
-- A terminal under tmux

local TT = { timeout = 60 }

--- Starts the driver (written in 'dir') with 'args' on the terminal 't'.
local function start(t, dir, args, env)
  helper.script(DRIVER, dir .. "/driver.lua")
  t:start({ "driver.lua", table.unpack(args) }, env)
end

--- A test body given a terminal running the driver (args), killed after.
local function with_term(args, fn, env)
  return helper.in_dir("/tmp/loom-lineedit-", function(dir)
    local t <close> = helper.terminal(dir)
    start(t, dir, args, env)
    fn(t, dir)
    t:assert_clean()
  end, TT)
end

--- Asserts that the terminal's mode after loom is the one before it.
local function restored(t)
  local before, after = t:modes()
  assert.are_not.equal("", before)
  assert.are.equal(before, after)
end

-- }==================================================================

local has_tmux = os.execute("command -v tmux >/dev/null 2>&1")
local describe_tty = has_tmux and describe or function(name)
  describe(name, function()
    pending("tmux is not installed (quickstart.sh installs it)")
  end)
end

describe_tty("loom.lineedit on a terminal", function()
  it("edits the line: left, right, backspace, Ctrl-A, Ctrl-E", with_term(
    { "plain" }, function(t)
      t:wait_line(">")
      t:type("hello")
      t:keys("Left", "Left", "BSpace")
      t:type("X")
      t:keys("C-a")
      t:type(">")
      t:keys("C-e")
      t:type("<")
      t:keys("Left", "Right")
      t:type("!")
      t:wait("> >heXlo<!")
      t:keys("Enter")
      t:wait_line("[>heXlo<!|nil]")
    end))

  it("edits UTF-8 characters as characters", with_term({ "plain" },
    function(t)
      t:wait_line(">")
      t:type("héllo wörld")
      t:keys("Left", "Left", "Left", "BSpace")
      t:type("Ö")
      t:keys("C-a", "Right", "Right", "BSpace")
      t:wait("> hllo wÖrld")
      t:keys("Enter")
      t:wait_line("[hllo wÖrld|nil]")
    end, { LC_ALL = "C.UTF-8" }))

  it("keeps the history across two runs in the history file, bounded",
    helper.in_dir("/tmp/loom-lineedit-", function(dir)
      local hist = dir .. "/history"
      assert(io.open(hist, "w")):close()  -- empty: an empty history
      do
        local t <close> = helper.terminal(dir)
        start(t, dir, { "plain", hist, "2" })
        for _, line in ipairs { "first = 1", "second = 2", "third = 3" } do
          t:wait_line(">")
          t:line(line)
          t:wait_line("[" .. line .. "|nil]")
        end
        t:keys("C-d")
        assert.equal(0, (t:exit_status()))
      end
      local saved = assert(io.open(hist)):read("a")
      assert.is_nil(saved:find("first", 1, true), saved)
      local out = helper.sh("stat -c %a " .. helper.quote(hist))
      assert.equal("600", out:match("%d+"))

      local t <close> = helper.terminal(dir)
      start(t, dir, { "plain", hist, "2" })
      t:wait_line(">")
      t:keys("Up")
      t:wait("> third = 3")
      t:keys("Up")
      t:wait("> second = 2")
      t:keys("Up")  -- the oldest: it stays
      t:keys("Enter")
      t:wait_line("[second = 2|nil]")
      t:assert_clean()
    end, TT))

  it("prints a task's output above the prompt, the line kept", with_term(
    { "ticks" }, function(t)
      t:wait("tick 2")
      t:type("typed while it ticks")
      t:keys("Left", "Left")
      t:type("#")
      t:wait("tick 20")
      -- the prompt and the line are below every tick, never cut (on the
      -- screen: what tmux keeps above it may hold a prompt drawn before
      -- it gave the pane its size)
      local s = t:screen()
      local rows = helper.lines(s)
      assert.equal("> typed while it tic#ks", rows[#rows])
      for i = 1, #rows - 1 do
        assert.truthy(rows[i]:match("^tick %d+$"), s)
      end
      -- a line longer than the terminal is wide: two rows to take away
      t:keys("End")
      t:type((" and on"):rep(14))
      local long = "> typed while it tic#ks" .. (" and on"):rep(14)
      t:wait(long:sub(1, 100))
      local seen = tonumber(t:screen():match(".*tick (%d+)"))
      t:wait("tick " .. seen + 5)
      s = t:screen()
      rows = helper.lines(s)
      assert.equal(long:sub(1, 100), rows[#rows - 1], s)
      assert.equal(long:sub(101), rows[#rows], s)
      for i = 1, #rows - 2 do
        assert.truthy(rows[i]:match("^tick %d+$"), s)
      end
      t:keys("Enter")
      t:wait_line("[" .. long:sub(3, 100))
    end))

  it("completes a word with Tab: one match, then several", with_term(
    { "plain" }, function(t)
      t:wait_line(">")
      t:type("x = loom.ne")
      t:keys("Tab")
      t:wait("> x = loom.net")
      t:line("(")
      t:wait_line("[x = loom.net(|nil]")
      t:wait("(complete was given 'x = loom.ne')")
      t:type("loom.s")
      t:keys("Tab", "Tab")
      t:wait_line("loom.sleep loom.spawn")
      t:type("p")
      t:keys("Tab")
      t:wait("> loom.spawn")
      t:keys("Enter")
      t:wait_line("[loom.spawn|nil]")
    end))

  it("survives a complete function that raises or suspends", with_term(
    { "plain" }, function(t)
      t:wait_line(">")
      t:type("boom")
      t:keys("Tab")
      t:wait("kaboom")
      t:line("!")
      t:wait_line("[boom!|nil]")
      t:type("yield")
      t:keys("Tab")
      t:wait("loom.sleep called")
      t:keys("Enter")
      t:wait_line("[yield|nil]")
    end))

  it("drops the line on Ctrl-C at the prompt and goes on", with_term(
    { "plain" }, function(t)
      t:wait_line(">")
      t:type("abc")
      t:wait("> abc")
      t:keys("C-c")
      t:wait_line("> abc^C")
      t:wait_line("[nil|interrupt]")
      t:line("ok")
      t:wait_line("[ok|nil]")
      t:keys("C-d")
      assert.equal(0, (t:exit_status()))
    end))

  it("takes Ctrl-C at the prompt after an interrupt was raised",
    with_term({ "plain" }, function(t)
      t:wait_line(">")
      t:line("spin")
      t:wait_line("[spin|nil]")
      t:keys("C-c")  -- stops the task that spins, the prompt takes it
      t:wait_line("[nil|interrupt]")
      t:type("again")
      t:wait("> again")
      t:keys("C-c")  -- the next one does not end the program
      t:wait("> again^C")
      t:line("still here")
      t:wait_line("[still here|nil]")
      t:keys("C-d")
      local _, s = t:exit_status()  -- the spinning task's failure
      assert.truthy(s:find("interrupted!", 1, true), s)
    end))

  it("returns eof on Ctrl-D on an empty line only", with_term(
    { "plain" }, function(t)
      t:wait_line(">")
      t:type("ab")
      t:keys("Left", "C-d")  -- deletes the b
      t:keys("Enter")
      t:wait_line("[a|nil]")
      t:keys("C-d")
      t:wait_line("[nil|eof]")
      local status, s = t:exit_status()
      assert.equal(0, status)
      assert.truthy(s:find("closed: true", 1, true), s)
      restored(t)
    end))

  it("raises on misuse", with_term({ "misuse" }, function(t)
    local _, s = t:exit_status()
    local function has(text) assert.truthy(s:find(text, 1, true), s) end
    has("second open: false")
    has("lineedit.open: a line editor is open already")
    has("two readers: false")
    has("editor:read: another task is reading")
    has("cancelled: false loom.Cancelled")
    has("bad argument #1 to 'editor:add_history' (string expected, got "
      .. "table)")
    has("closed: true true")
    has("read closed: false")
    has("attempt to use a closed line editor")
    has("reopened: true")
    has("after <close>: true")
    has("after __gc: true")
    restored(t)
  end))

  it("hands the terminal from a cancelled reader to the next",
    with_term({ "handover" }, function(t)
      t:wait_line("b>")
      t:line("for b")
      t:wait("first: false loom.Cancelled")
      t:wait_line("second: for b")
    end))

  describe("gives the terminal back", function()
    it("when the editor closes", with_term({ "plain" }, function(t)
      t:wait_line(">")
      t:keys("C-d")
      assert.equal(0, (t:exit_status()))
      restored(t)
    end))

    it("when a read is cancelled (a timeout)", with_term({ "timeout" },
      function(t)
        t:wait("timed out: false loom.Timeout")
        t:wait_line(">")
        t:line("typed after")
        t:wait_line("[typed after|nil]")
        t:keys("C-d")
        assert.equal(0, (t:exit_status()))
        restored(t)
      end))

    it("after an uncaught error", with_term({ "error" }, function(t)
      t:wait_line("e>")
      t:signal("SIGUSR1")
      local status, s = t:exit_status()
      assert.equal(1, status)
      assert.truthy(s:find("boom", 1, true), s)
      restored(t)
    end))

    it("at exit (os.exit at the prompt)", with_term({ "exit" },
      function(t)
        t:wait_line(">")
        t:type("half")
        t:wait("> half")
        t:signal("SIGUSR1")
        assert.equal(3, (t:exit_status()))
        restored(t)
      end))

    for _, case in ipairs {
      { "after SIGTERM", "plain", 143 },
      { "on a SIGTERM that a script watches", "killed", 137 },
    } do
      local name, mode, want = table.unpack(case)
      it(name, with_term({ mode }, function(t)
        t:wait_line(">")
        t:signal("SIGTERM")
        assert.equal(want, (t:exit_status()))
        restored(t)
      end))
    end
  end)
end)

describe("loom.lineedit", function()
  local function run(src)
    return helper.run_src("local le = require 'loom.lineedit'\n" .. src)
  end

  it("is not a terminal's without one: isatty false, open fails", function()
    local out, err, code = run([[
      print(le.isatty())
      print(le.open{history = "/nonexistent/h"})
    ]])
    assert.equal(0, code, err)
    assert.equal("false\nnil\tlineedit.open: standard input and output are "
      .. "not a terminal\tENOTTY\n", out)
  end)

  it("checks its options", function()
    local out, err, code = run([[
      for _, o in ipairs { {history = 1}, {history_size = -1},
                           {history_size = 1.5}, {complete = 1} } do
        print(select(2, pcall(le.open, o)))
      end
      print(select(2, pcall(le.open, 1)))
    ]])
    assert.equal(0, code, err)
    local lines = helper.lines(out)
    assert.truthy(lines[1]:find("bad argument #1 to 'lineedit.open' "
      .. "(history must be a string (a path))", 1, true), out)
    assert.truthy(lines[2]:find("history_size must be a non-negative "
      .. "integer", 1, true), out)
    assert.truthy(lines[3]:find("history_size must be", 1, true), out)
    assert.truthy(lines[4]:find("complete must be a function", 1, true), out)
    assert.truthy(lines[5]:find("bad argument #1 to 'lineedit.open' "
      .. "(table expected, got number)", 1, true), out)
  end)

  it("is the binary's: the module has none", function()
    local out = helper.lua_src([[
      require "loom"
      print(pcall(require, "loom.lineedit"))
    ]])
    assert.truthy(out:find("^false\tmodule 'loom.lineedit' not found"), out)
  end)
end)
