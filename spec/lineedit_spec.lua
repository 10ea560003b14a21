--[[ spec/lineedit_spec.lua: loom.lineedit, the binary's line editor, on
  a real terminal: tmux (Debian's) runs the loom binary in a pane, the
  tests type into it with send-keys and read the screen with
  capture-pane.  Each test waits for the text it expects by polling the
  screen, with a deadline; the pane's shell notes the terminal's mode
  (stty -g) before loom starts and after it ends, so that a test can
  see the terminal given back as it was.

  Every tmux server has a socket of its own and is killed when its test
  ends, whatever happens; loom runs under 'timeout' in its pane.
]]
local helper = require("spec.helper")
local system = require("system")
local q, tmpdir, rmtree = helper.quote, helper.tmpdir, helper.rmtree

local LIMIT = 60  -- seconds loom may run in a pane
local WAIT = tonumber(os.getenv("LOOM_SPEC_WAIT")) or 20  -- for a screen

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
do  -- for the tests that send signals
  local f = assert(io.open("pid", "w"))
  f:write(pid)
  f:close()
end
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

local Term = {}
Term.__index = Term
local sockets = 0

-- the sanitizer run's variables go to loom in the pane, not to tmux
local SANITIZER_VARS = { "LD_PRELOAD", "ASAN_OPTIONS", "UBSAN_OPTIONS",
                         "LSAN_OPTIONS", "LOOM_CLOSE_AT_EXIT" }

local function absolute(path)
  if path:sub(1, 1) == "/" then return path end
  return assert(os.getenv("PWD")) .. "/" .. path
end

function Term:tmux(args)
  local out, err, code = helper.sh(("env -u LD_PRELOAD -u ASAN_OPTIONS "
    .. "-u UBSAN_OPTIONS -u LSAN_OPTIONS tmux -u -L %s -f /dev/null %s")
    :format(self.socket, args), nil, 10)
  return out, err, code
end

--- Starts the driver in 'dir' with 'args' on a 100x30 terminal.
local function start(dir, args, env)
  local t = setmetatable({ dir = dir }, Term)
  local vars, words = {}, {}
  sockets = sockets + 1
  t.socket = ("loom-lineedit-%s-%d"):format(dir:match("[^/]+$"), sockets)
  for _, k in ipairs(SANITIZER_VARS) do
    if os.getenv(k) then vars[#vars + 1] = q(k .. "=" .. os.getenv(k)) end
  end
  for k, v in pairs(env or {}) do vars[#vars + 1] = q(k .. "=" .. v) end
  for _, a in ipairs(args) do words[#words + 1] = q(a) end
  local f = assert(io.open(dir .. "/driver.lua", "w"))
  f:write(DRIVER)
  f:close()
  -- NOTE: not coreutils' timeout, which passes the terminal's SIGINT on
  -- to loom a second time, then kills it: a watchdog bounds the pane
  -- that ignores SIGINT; the shell lives through a Ctrl-C (a trap, which
  -- loom does not inherit).
  local cmd = ("(trap '' INT; sleep %d; kill -KILL 0) & trap : INT; "
    .. "cd %s && stty -g > before; env -u LUA_INIT %s %s driver.lua %s; "
    .. "status=$?; stty -g > after; echo loom-status:$status; wait")
    :format(LIMIT, q(dir), table.concat(vars, " "),
            q(absolute(helper.loom_bin)), table.concat(words, " "))
  local _, err, code = t:tmux("new-session -d -x 100 -y 30 " .. q(cmd))
  assert(code == 0, "tmux did not start: " .. err)
  return t
end

--- Types 'text' as it is.
function Term:type(text) self:tmux("send-keys -l " .. q(text)) end

--- Presses keys by tmux's names (Left, C-a, Enter...).
function Term:press(...)
  self:tmux("send-keys " .. table.concat({ ... }, " "))
end

--- The screen (with what scrolled off it when 'all').
function Term:screen(all)
  return (self:tmux("capture-pane -p" .. (all and " -S -" or "")))
end

--- Waits until the screen shows 'text' (plain); returns the screen.
function Term:wait(text)
  local deadline = helper.clock() + WAIT
  while true do
    local s = self:screen(true)
    if helper.has(s, text) then return s end
    if helper.clock() > deadline then
      error(("no %q on the screen after %d s; it shows:\n%s")
        :format(text, WAIT, s), 2)
    end
    system.sleep(0.02)  -- the interval of the poll
  end
end

--- Waits until the screen's last line with 'prefix' is 'line'.
function Term:wait_line(line)
  local deadline = helper.clock() + WAIT
  while true do
    local s = self:screen(true)
    for l in s:gmatch("[^\n]+") do
      if l == line then return s end
    end
    if helper.clock() > deadline then
      error(("no line %q on the screen after %d s; it shows:\n%s")
        :format(line, WAIT, s), 2)
    end
    system.sleep(0.02)
  end
end

--- Waits for loom's end; returns its exit status and the screen.
function Term:exit_status()
  local s = self:wait("loom-status:")
  return tonumber(s:match("loom%-status:(%d+)")), s
end

--- Whether the terminal's mode after loom is the one before it.
function Term:restored()
  self:wait("loom-status:")
  local deadline = helper.clock() + WAIT
  local after
  repeat  -- the shell writes it right after the status
    local f = io.open(self.dir .. "/after")
    after = f and f:read("a")
    if f then f:close() end
    if after == nil or after == "" then system.sleep(0.02) end
  until (after ~= nil and after ~= "") or helper.clock() > deadline
  local before = assert(io.open(self.dir .. "/before")):read("a")
  return before ~= "" and before == after, before, after
end

function Term:pid()
  return assert(assert(io.open(self.dir .. "/pid")):read("a"))
end

function Term:kill() self:tmux("kill-server") end

--- Removes 'dir' once the pane's shell, which dies with its server, no
-- longer writes there.
local function remove_dir(dir)
  local deadline = helper.clock() + WAIT
  repeat
    os.execute("rm -rf " .. q(dir) .. " 2>/dev/null")
    if not io.open(dir) then return end
    system.sleep(0.02)
  until helper.clock() > deadline
  rmtree(dir)
end

--- A test body given a terminal running the driver (args), killed after.
local function with_term(args, fn, env)
  return function()
    local dir = tmpdir()
    local t
    local ok, e = pcall(function()
      t = start(dir, args, env)
      fn(t, dir)
      local s = t:screen(true)
      assert(not s:find("Sanitizer") and not s:find("runtime error:"), s)
    end)
    if t then t:kill() end
    remove_dir(dir)
    if not ok then error(e, 0) end
  end
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
      t:press("Left", "Left", "BSpace")
      t:type("X")
      t:press("C-a")
      t:type(">")
      t:press("C-e")
      t:type("<")
      t:press("Left", "Right")
      t:type("!")
      t:wait("> >heXlo<!")
      t:press("Enter")
      t:wait_line("[>heXlo<!|nil]")
    end))

  it("edits UTF-8 characters as characters", with_term({ "plain" },
    function(t)
      t:wait_line(">")
      t:type("héllo wörld")
      t:press("Left", "Left", "Left", "BSpace")
      t:type("Ö")
      t:press("C-a", "Right", "Right", "BSpace")
      t:wait("> hllo wÖrld")
      t:press("Enter")
      t:wait_line("[hllo wÖrld|nil]")
    end, { LC_ALL = "C.UTF-8" }))

  it("keeps the history across two runs in the history file, bounded",
    function()
      local dir = tmpdir()
      local ok, e = pcall(function()
        local hist = dir .. "/history"
        assert(io.open(hist, "w")):close()  -- empty: an empty history
        local t = start(dir, { "plain", hist, "2" })
        local ok1, e1 = pcall(function()
          for _, line in ipairs { "first = 1", "second = 2", "third = 3" } do
            t:wait_line(">")
            t:type(line)
            t:press("Enter")
            t:wait_line("[" .. line .. "|nil]")
          end
          t:press("C-d")
          assert.equal(0, (t:exit_status()))
        end)
        t:kill()
        assert(ok1, e1)
        local saved = assert(io.open(hist)):read("a")
        assert.is_nil(saved:find("first", 1, true), saved)
        local out = helper.sh("stat -c %a " .. q(hist))
        assert.equal("600", out:match("%d+"))

        t = start(dir, { "plain", hist, "2" })
        local ok2, e2 = pcall(function()
          t:wait_line(">")
          t:press("Up")
          t:wait("> third = 3")
          t:press("Up")
          t:wait("> second = 2")
          t:press("Up")  -- the oldest: it stays
          t:press("Enter")
          t:wait_line("[second = 2|nil]")
        end)
        t:kill()
        assert(ok2, e2)
      end)
      remove_dir(dir)
      if not ok then error(e, 0) end
    end)

  it("prints a task's output above the prompt, the line kept", with_term(
    { "ticks" }, function(t)
      t:wait("tick 2")
      t:type("typed while it ticks")
      t:press("Left", "Left")
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
      t:press("End")
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
      t:press("Enter")
      t:wait_line("[" .. long:sub(3, 100))
    end))

  it("completes a word with Tab: one match, then several", with_term(
    { "plain" }, function(t)
      t:wait_line(">")
      t:type("x = loom.ne")
      t:press("Tab")
      t:wait("> x = loom.net")
      t:type("(")
      t:press("Enter")
      t:wait_line("[x = loom.net(|nil]")
      t:wait("(complete was given 'x = loom.ne')")
      t:type("loom.s")
      t:press("Tab", "Tab")
      t:wait_line("loom.sleep loom.spawn")
      t:type("p")
      t:press("Tab")
      t:wait("> loom.spawn")
      t:press("Enter")
      t:wait_line("[loom.spawn|nil]")
    end))

  it("survives a complete function that raises or suspends", with_term(
    { "plain" }, function(t)
      t:wait_line(">")
      t:type("boom")
      t:press("Tab")
      t:wait("kaboom")
      t:type("!")
      t:press("Enter")
      t:wait_line("[boom!|nil]")
      t:type("yield")
      t:press("Tab")
      t:wait("loom.sleep called")
      t:press("Enter")
      t:wait_line("[yield|nil]")
    end))

  it("drops the line on Ctrl-C at the prompt and goes on", with_term(
    { "plain" }, function(t)
      t:wait_line(">")
      t:type("abc")
      t:wait("> abc")
      t:press("C-c")
      t:wait_line("> abc^C")
      t:wait_line("[nil|interrupt]")
      t:type("ok")
      t:press("Enter")
      t:wait_line("[ok|nil]")
      t:press("C-d")
      assert.equal(0, (t:exit_status()))
    end))

  it("takes Ctrl-C at the prompt after an interrupt was raised",
    with_term({ "plain" }, function(t)
      t:wait_line(">")
      t:type("spin")
      t:press("Enter")
      t:wait_line("[spin|nil]")
      t:press("C-c")  -- stops the task that spins, the prompt takes it
      t:wait_line("[nil|interrupt]")
      t:type("again")
      t:wait("> again")
      t:press("C-c")  -- the next one does not end the program
      t:wait("> again^C")
      t:type("still here")
      t:press("Enter")
      t:wait_line("[still here|nil]")
      t:press("C-d")
      local _, s = t:exit_status()  -- the spinning task's failure
      assert.truthy(s:find("interrupted!", 1, true), s)
    end))

  it("returns eof on Ctrl-D on an empty line only", with_term(
    { "plain" }, function(t)
      t:wait_line(">")
      t:type("ab")
      t:press("Left", "C-d")  -- deletes the b
      t:press("Enter")
      t:wait_line("[a|nil]")
      t:press("C-d")
      t:wait_line("[nil|eof]")
      local status, s = t:exit_status()
      assert.equal(0, status)
      assert.truthy(s:find("closed: true", 1, true), s)
      assert.truthy(t:restored())
    end))

  it("raises on misuse", with_term({ "misuse" }, function(t)
    local s = t:wait("loom-status:")
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
    assert.truthy(t:restored())
  end))

  it("hands the terminal from a cancelled reader to the next",
    with_term({ "handover" }, function(t)
      t:wait_line("b>")
      t:type("for b")
      t:press("Enter")
      t:wait("first: false loom.Cancelled")
      t:wait_line("second: for b")
    end))

  describe("gives the terminal back", function()
    it("when the editor closes", with_term({ "plain" }, function(t)
      t:wait_line(">")
      t:press("C-d")
      assert.equal(0, (t:exit_status()))
      assert.truthy(t:restored())
    end))

    it("when a read is cancelled (a timeout)", with_term({ "timeout" },
      function(t)
        t:wait("timed out: false loom.Timeout")
        t:wait_line(">")
        t:type("typed after")
        t:press("Enter")
        t:wait_line("[typed after|nil]")
        t:press("C-d")
        assert.equal(0, (t:exit_status()))
        assert.truthy(t:restored())
      end))

    it("after an uncaught error", with_term({ "error" }, function(t)
      t:wait_line("e>")
      helper.sh("kill -USR1 " .. t:pid())
      local status, s = t:exit_status()
      assert.equal(1, status)
      assert.truthy(s:find("boom", 1, true), s)
      assert.truthy(t:restored())
    end))

    it("at exit (os.exit at the prompt)", with_term({ "exit" },
      function(t)
        t:wait_line(">")
        t:type("half")
        t:wait("> half")
        helper.sh("kill -USR1 " .. t:pid())
        assert.equal(3, (t:exit_status()))
        assert.truthy(t:restored())
      end))

    it("after SIGTERM", with_term({ "plain" }, function(t)
      t:wait_line(">")
      helper.sh("kill -TERM " .. t:pid())
      assert.equal(143, (t:exit_status()))
      assert.truthy(t:restored())
    end))

    it("on a SIGTERM that a script watches", with_term({ "killed" },
      function(t)
        t:wait_line(">")
        helper.sh("kill -TERM " .. t:pid())
        assert.equal(137, (t:exit_status()))
        assert.truthy(t:restored())
      end))
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
