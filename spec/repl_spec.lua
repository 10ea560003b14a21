--[[ spec/repl_spec.lua: the REPL (lua/loom/repl.lua and the binary's
  -i, src/main.c).

  The evaluator, the printer and the completer are tested in a loop of
  this process; the binary's REPL with its input piped, where it reads
  plain lines and prints values and errors only (no banner, no
  prompts), driven either by a whole input at once or line by line
  from a task that waits for each answer (and sends SIGINT once the
  REPL says it is where the test wants it).  Every child is bounded.
]]
local helper = require "spec.helper"
local loom = require "loom"
local repl = require "loom.repl"
local async = require("loom.busted").async

local run_bin, has = helper.run_bin, helper.has

-- {====================================================================
-- repl.format

describe("repl.format", function()
  it("shows values as print does, separated by tabs", function()
    assert.are.equal("1\tx\tnil\ttrue\t2.0", repl.format(1, "x", nil, true, 2.0))
    assert.are.equal("", repl.format())
    assert.are.equal("nil", repl.format(nil))
  end)

  it("shows a table one level deep: the sequence, then sorted keys", function()
    assert.are.equal('{ 3, 1, "two", [10] = true, a = {...}, b = "x", e = {} }',
      repl.format({ 3, 1, "two", b = "x", a = { 1 }, e = {}, [10] = true }))
    assert.are.equal("{}", repl.format({}))
    assert.are.equal('{ [1.5] = 1, ["a b"] = 2, ["end"] = 3, [false] = 4, [true] = 5 }',
      repl.format({ ["a b"] = 2, [1.5] = 1, ["end"] = 3, [true] = 5, [false] = 4 }))
  end)

  it("quotes strings inside tables, escapes on one line", function()
    assert.are.equal([[{ "a\n\"b\"\t\\", "\0001" }]], repl.format({ 'a\n"b"\t\\', "\0" .. "1" }))
  end)

  it("puts a long table one entry a line, and counts what it leaves out", function()
    local t = {}
    for i = 1, 150 do t[i] = i * 1000 end
    local text = repl.format(t)
    assert.are.equal("{\n  1000,\n  2000,", text:sub(1, 17))
    assert.truthy(has(text, "  100000,\n  ... (50 more)\n}"), text)
  end)

  it("uses __tostring, and survives one that fails", function()
    local obj = setmetatable({}, { __tostring = function() return "<obj>" end })
    assert.are.equal("<obj>\t{ <obj> }", repl.format(obj, { obj }))
    local bad = setmetatable({}, { __tostring = function() error("no") end })
    assert.matches("^table: 0x%x+$", repl.format(bad))
  end)
end)

-- }====================================================================


-- {====================================================================
-- repl.complete

describe("repl.complete", function()
  local G = setmetatable({ loom = loom }, { __index = _G })

  it("completes fields of tables, whole words", function()
    assert.are.same({ "loom.net" }, repl.complete("loom.ne", G))
    assert.are.same({ "loom.net" }, repl.complete("x = loom.ne", G))
    assert.are.same({ "string.format" }, repl.complete("string.fo"))
    assert.are.same({ "loom.net.listen", "loom.net.listen_unix" },
      repl.complete("print(loom.net.lis", G))
  end)

  it("completes globals and keywords", function()
    local env = { alpha = 1, alps = 2, beta = 3 }
    assert.are.same({ "alpha", "alps", "and" }, repl.complete("a", env))
    assert.are.same({ "print" }, repl.complete("pri"))
  end)

  it("completes methods after ':', through the metatable's __index", function()
    local obj = setmetatable({ size = 1 }, { __index = { send = print, sum = print } })
    assert.are.same({ "o:send", "o:sum" }, repl.complete("o:s", { o = obj }))
    assert.are.same({ "s:upper" }, repl.complete("s:up", { s = "abc" }))
  end)

  it("gives nothing where there is nothing to complete", function()
    assert.are.same({}, repl.complete("nothing.he"))
    assert.are.same({}, repl.complete("x = 3.fo"))
    assert.are.same({}, repl.complete(""))
    assert.are.same({}, repl.complete("f(x):y.z"))
  end)
end)

-- }====================================================================


-- {====================================================================
-- The evaluator

describe("repl.evaluator", function()
  -- An evaluator fed, in a task, an input that sleeps once it started
  -- (with a cleanup): the evaluator, that task and the log of both.
  local function sleeping_input()
    local log = {}
    local env = setmetatable({ log = log, loom = loom }, { __index = _G })
    local ev = repl.evaluator(env)
    local t = loom.spawn(ev.feed, ev, "local _ <close> = setmetatable({}, {__close = function() "
      .. "log[#log + 1] = 'cleanup' end}) log[#log + 1] = 'started' loom.sleep(10)")
    while #log == 0 do loom.yield() end
    return ev, t, log
  end

  it("shows an expression's values; '=' is optional; statements show nothing", async(function()
    local ev = repl.evaluator({})
    assert.are.same({ "ok", "2" }, { ev:feed("1 + 1") })
    assert.are.same({ "ok", "1\tx" }, { ev:feed("= 1, 'x'") })
    assert.are.same({ "ok", "" }, { ev:feed("x = 1") })
    assert.are.same({ "ok", "" }, { ev:feed("") })
  end))

  it("keeps globals, not locals, from one input to the next", async(function()
    local env = {}
    local ev = repl.evaluator(env)
    ev:feed("g = 5 local l = 6")
    assert.are.equal(5, env.g)
    assert.are.same({ "ok", "5\tnil" }, { ev:feed("g, l") })
  end))

  it("asks for more while the input is incomplete, as lua.c", async(function()
    local ev = repl.evaluator({})
    assert.are.equal("more", ev:feed("function f(a)"))
    assert.is_true(ev:more())
    assert.are.equal("more", ev:feed("  return a * 2"))
    assert.are.same({ "ok", "" }, { ev:feed("end") })
    assert.are.same({ "ok", "42" }, { ev:feed("f(21)") })
    assert.are.equal("more", ev:feed("s = [[one"))
    assert.are.same({ "ok", "" }, { ev:feed("two]]") })
    assert.are.same({ "ok", "one\ntwo" }, { ev:feed("s") })
    assert.are.equal("more", ev:feed("do"))
    ev:reset()
    assert.is_false(ev:more())
    assert.are.same({ "ok", "3" }, { ev:feed("3") })
  end))

  it("gives a syntax error as lua.c does, without a traceback", async(function()
    local ev = repl.evaluator({})
    assert.are.same({ "error", "stdin:1: unexpected symbol near ')'" }, { ev:feed("x = )") })
    assert.is_false(ev:more())
  end))

  it("gives an error's message and traceback, and goes on", async(function()
    local ev = repl.evaluator(_G)
    local status, text = ev:feed("error('boom')")
    assert.are.equal("error", status)
    assert.are.equal("stdin:1: boom\nstack traceback:\n\t[C]: in function 'error'\n"
      .. "\tstdin:1: in main chunk", text)
    status, text = ev:feed("error({code = 1})")
    assert.are.equal("error", status)
    assert.matches("^%(error object is a table value: { code = 1 }%)\nstack traceback:", text)
    assert.are.same({ "ok", "ok" }, { ev:feed("'ok'") })
  end))

  it("runs each input as a task of its own, which may suspend", async(function()
    local env = setmetatable({ loom = loom }, { __index = _G })
    local ev = repl.evaluator(env, { name = "input" })
    env.caller = loom.current()
    assert.are.same({ "ok", "input\tfalse" },
      { ev:feed("loom.sleep(0.01) return loom.current().name, loom.current() == caller") })
    ev:feed("t = loom.spawn(function() loom.sleep(0.01) return 7 end)")
    assert.are.same({ "ok", "7" }, { ev:feed("t:await()") })
  end))

  it("cancels the input that runs: its cleanup runs, the error says so", async(function()
    local ev, t, log = sleeping_input()
    assert.is_false(repl.evaluator({}):cancel())
    assert.is_true(ev:cancel())
    local status, text = t:await()
    assert.are.equal("error", status)
    assert.matches("^loom.Cancelled: interrupted\nstack traceback:\n\t%[C%]: in function 'loom.sleep'", text)
    assert.are.same({ "started", "cleanup" }, log)
    assert.is_false(ev:cancel())
  end))

  it("cancels the input when the caller of feed is cancelled", async(function()
    local _, t, log = sleeping_input()
    t:cancel()
    -- as an await does, the cancellation goes into the input, whose
    -- error the evaluator gives
    local status, text = t:await()
    assert.are.equal("error", status)
    assert.matches("^loom.Cancelled", text)
    assert.are.same({ "started", "cleanup" }, log)
  end))

  it("names itself in misuse", async(function()
    local ev = repl.evaluator()
    assert.matches("bad argument #1 to 'evaluator:feed' %(string expected, got nil%)",
      helper.raised(ev.feed, ev))
    assert.matches("bad argument #1 to 'repl.evaluator' %(table expected, got number%)",
      helper.raised(repl.evaluator, 1))
    assert.matches("bad argument #1 to 'repl.complete'", helper.raised(repl.complete))
  end))
end)

-- }====================================================================


-- {====================================================================
-- The binary's REPL, piped

-- Runs 'loom -i' (or 'args') on the input 'src'.
local function piped(src, args)
  return run_bin(args or { "-i" }, src, 20)
end

describe("loom -i, piped", function()
  it("prints values only: no banner, no prompt", function()
    local out, err, code = piped("1 + 1\n= 'a', nil\nx = 3\nx * 2\n{1, 2, k = 'v'}\n")
    assert.are.equal("", err)
    assert.are.equal(0, code)
    assert.are.equal('2\na\tnil\n6\n{ 1, 2, k = "v" }\n', out)
  end)

  it("takes multi-line input", function()
    local out, err = piped("function f(n)\n  if n < 2 then return n end\n"
      .. "  return f(n - 1) + f(n - 2)\nend\nf(10)\ns = [[a\nb]]\n#s\n")
    assert.are.equal("", err)
    assert.are.equal("55\n3\n", out)
  end)

  it("reports an error with its traceback and goes on", function()
    local out, err, code = piped("print('before')\nlocal function boom() error('boom') end boom()\n"
      .. "x = )\nprint('after')\n")
    assert.are.equal("before\nafter\n", out)
    assert.are.equal(0, code)
    assert.are.equal("stdin:1: boom\nstack traceback:\n\t[C]: in function 'error'\n"
      .. "\tstdin:1: in local 'boom'\n\tstdin:1: in main chunk\n"
      .. "stdin:1: unexpected symbol near ')'\n", err)
  end)

  it("keeps globals between inputs, not locals", function()
    local out = piped("g = 1\nlocal l = 2\ng, l\n")
    assert.are.equal("1\tnil\n", out)
  end)

  it("sleeps at the prompt while other tasks run", function()
    local out, err = piped("bg = loom.spawn(function() for i = 1, 3 do print('tick', i) loom.sleep(0.01) end end)\n"
      .. "loom.sleep(0.1) return 'slept'\nt = loom.spawn(function() loom.sleep(0.01) return 'awaited' end)\n"
      .. "t:await()\n")
    assert.are.equal("", err)
    assert.are.equal("tick\t1\ntick\t2\ntick\t3\nslept\nawaited\n", out)
  end)

  it("at the end of input cancels the tasks left, runs their cleanup and exits", function()
    local out, err, code = piped("t = loom.spawn(function()\n"
      .. "  local _ <close> = setmetatable({}, {__close = function() print('cleanup ran') end})\n"
      .. "  loom.sleep(1000)\nend)\n"
      .. "srv = loom.net.listen('127.0.0.1', 0, function() end)\n"
      .. "print('left')\n")
    assert.are.equal("", err)
    assert.are.equal(0, code)
    assert.are.equal("left\ncleanup ran\n", out)
  end)

  it("-i script: the script runs first, then the REPL sees its globals", function()
    local path = helper.script("print('script', ...)\nfrom_script = 41\n")
    local out, err, code = piped("from_script + 1\narg[1]\n", { "-i", path, "a1" })
    os.remove(path)
    assert.are.equal("", err)
    assert.are.equal(0, code)
    assert.are.equal("script\ta1\n42\na1\n", out)
  end)

  it("-i after -e runs the -e chunk first", function()
    local out = piped("y\n", { "-e", "y = 'from -e'", "-i" })
    assert.are.equal("from -e\n", out)
  end)

  it("-i script that fails: the error, no REPL, status 1", function()
    local path = helper.script("error('script failed')\n")
    local out, err, code = piped("print('repl ran')\n", { "-i", path })
    os.remove(path)
    assert.are.equal(1, code)
    assert.are.equal("", out)
    assert.truthy(has(err, "script failed"), err)
  end)

  it("without -i, piped standard input still runs as a script", function()
    local out, _, code = run_bin({}, "x = 1\nprint(x + 1)\n")
    assert.are.equal(0, code)
    assert.are.equal("2\n", out)
  end)
end)

-- Starts 'loom -i' with pipes; the process, and a reaper for <close>.
local function start_repl()
  local p = assert(loom.process.spawn { helper.loom_bin, "-i", stdin = "pipe",
                                        stderr = "pipe" })
  return p, setmetatable({}, { __close = function()
    if not p:status() then p:kill("SIGKILL") end
    p:close()
  end })
end

describe("loom -i, driven line by line", function()
  it("Ctrl-C cancels the input that runs (its cleanup runs), and the REPL goes on", async(function()
    local p, _ <close> = start_repl()
    p.stdin:write("local _ <close> = setmetatable({}, {__close = function() print('cleanup') end})"
      .. " print('sleeping') loom.sleep(1000)\n")
    assert.are.equal("sleeping", p.stdout:read_line())
    p:kill("SIGINT")
    assert.are.equal("cleanup", p.stdout:read_line())
    assert.are.equal("loom.Cancelled: interrupted", p.stderr:read_line())
    p.stdin:write("print('after')\n")
    assert.are.equal("after", p.stdout:read_line())
    -- an input that never suspends is interrupted too
    p.stdin:write("print('spinning') while true do end\n")
    assert.are.equal("spinning", p.stdout:read_line())
    p:kill("SIGINT")
    local line
    repeat line = p.stderr:read_line() until line == nil or line:find("interrupted!", 1, true)
    assert.truthy(line)
    p.stdin:write("print('still here')\n")
    assert.are.equal("still here", p.stdout:read_line())
    p.stdin:close()
    assert.are.same({ 0 }, { p:wait() })
  end, { timeout = 20 }))

  it("a background task's output comes while the REPL waits for a line", async(function()
    local p, _ <close> = start_repl()
    p.stdin:write("bg = loom.spawn(function() loom.sleep(0.05) print('from the background') end)\n")
    assert.are.equal("from the background", p.stdout:read_line())
    p.stdin:write("1 + 1\n")
    assert.are.equal("2", p.stdout:read_line())
    p.stdin:close()
    assert.are.same({ 0 }, { p:wait() })
  end, { timeout = 20 }))
end)

-- }====================================================================
-- {====================================================================
-- The binary's REPL on a real terminal: tmux

-- The lines of the screen that follow the last line holding 'text'.
local function after(screen, text)
  local at = 0
  local lines = {}
  for l in (screen .. "\n"):gmatch("([^\n]*)\n") do lines[#lines + 1] = l end
  for i, l in ipairs(lines) do if has(l, text) then at = i end end
  return { table.unpack(lines, at + 1) }
end

-- A test body given the REPL ('loom' alone) on a terminal, at its
-- first prompt.
local function on_terminal(fn)
  return helper.in_dir("/tmp/loom-repl-", function(dir)
    local t <close> = helper.terminal(dir)
    t:start {}
    t:prompt()
    fn(t, dir)
    t:assert_clean()
  end, { timeout = 40 })
end

describe("the REPL on a terminal (tmux)", function()

  it("shows the banner, runs inputs, and continues an unfinished one", on_terminal(function(t)
    assert.matches("^loom %S+ %(Lua 5%.4", t:screen())
    t:line("function sq(x)")
    t:prompt(">>")
    t:line("return x * x end")
    t:line("sq(12)")
    t:wait("\n144\n>$", true)
  end))

  it("sleeps at the prompt while a background task prints", on_terminal(function(t)
    -- the background task starts printing once the sleeping input runs,
    -- so its lines come while the input sleeps however slow the typing
    t:line("go = loom.event() bg = loom.spawn(function() go:wait() "
      .. "for i = 1, 3 do loom.sleep(0.05) print('bg ' .. i) end end)")
    t:line("go:set() loom.sleep(0.4) return 'slept'")
    local s = t:wait("\nslept\n>$", true)
    local rest = after(s, "return 'slept'")
    assert.are.same({ "bg 1", "bg 2", "bg 3", "slept", ">" }, rest)
  end))

  it("Ctrl-C during a long sleep cancels it, runs its cleanup, and the REPL goes on", on_terminal(function(t)
    t:line("c = setmetatable({}, {__close = function() print('cleaned up') end})")
    t:line("local _ <close> = c print('sleeping') loom.sleep(100)")
    t:wait("\nsleeping$", true)
    t:keys("C-c")
    t:wait("loom.Cancelled: interrupted")
    local s = t:prompt()
    assert.truthy(has(s, "cleaned up"), s)
    t:line("6 * 7")
    t:wait("\n42\n>$", true)
  end))

  it("completes globals and fields with Tab", on_terminal(function(t)
    t:type("x = loom.ne")
    t:keys("Tab")
    t:wait("\n> x = loom.net$", true)
    t:type(".con")
    t:keys("Tab")
    t:wait("\n> x = loom.net.connect$", true)
    t:keys("C-u")
    t:type("prin")
    t:keys("Tab")
    t:type("(string.fo")
    t:keys("Tab")
    t:line("('%03d', 7))")
    t:wait("\n> print%(string.format%('%%03d', 7%)%)\n007\n>$", true)
  end))

  it("Ctrl-C at the prompt drops the line typed; the REPL goes on", on_terminal(function(t)
    t:type("this is not lua")
    t:keys("C-c")
    t:wait("\n> this is not lua^C\n>$", true)
    t:type("function f()")  -- an unfinished input goes too
    t:keys("Enter")
    t:prompt(">>")
    t:keys("C-c")
    t:prompt()
    t:line("1 + 1")
    local s = t:wait("\n2\n>$", true)
    assert.falsy(has(s, "stdin:"), s)  -- no syntax error of either
  end))

  it("prints a background task's output above the line being typed", on_terminal(function(t)
    t:type("go = loom.event() bg = loom.spawn(function() go:wait() "
      .. "for i = 1, 3 do print('bg ' .. i) loom.sleep(0.02) end end)")
    t:keys("Enter")
    t:prompt()
    t:type("go:set() x = 12")  -- runs once Enter is pressed: nothing yet
    t:keys("Enter")
    t:type("y = 4")
    local s = t:wait("\nbg 3\n> y = 4$", true)
    assert.are.same({ "bg 1", "bg 2", "bg 3", "> y = 4" }, after(s, "go:set() x = 12"))
    t:line("5")
    t:line("x, y")
    t:wait("\n12 +45\n>$", true)  -- the tab, as spaces
  end))

  it("keeps the history in ~/.loom_history", on_terminal(function(t, dir)
    t:line("first = 1")
    t:line("second = 2")
    t:prompt()
    t:keys("C-d")
    assert.are.equal(0, (t:exit_status()))
    local again <close> = helper.terminal(dir)  -- a second loom, same HOME
    again:start {}
    again:prompt()
    again:keys("Up")
    again:wait("\n> second = 2$", true)
    again:keys("Up")
    again:wait("\n> first = 1$", true)
    again:keys("C-u", "C-d")
    assert.are.equal(0, (again:exit_status()))
    again:assert_clean()
    local f = assert(io.open(dir .. "/.loom_history"))
    -- libedit's format: spaces and the like as octal escapes
    local text = f:read("a"):gsub("\\(%d%d%d)", function(o)
      return string.char(tonumber(o, 8))
    end)
    f:close()
    assert.truthy(has(text, "first = 1") and has(text, "second = 2"), text)
  end))

  it("Ctrl-D exits, cancelling the background tasks and running their cleanup", on_terminal(function(t)
    t:type("bg = loom.spawn(function() local _ <close> = setmetatable({}, "
      .. "{__close = function() print('background cleanup') end}) loom.sleep(1000) end)")
    t:keys("Enter")
    t:prompt()
    t:keys("C-d")
    local s = t:wait("exit status 0")
    assert.truthy(has(s, "background cleanup"), s)
  end))
end)

-- }====================================================================
