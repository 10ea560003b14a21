--[[ spec/console_spec.lua: the live console (lua/loom/console.lua,
  loom.console, LOOM_CONSOLE and 'loom --attach').

  A loom TCP server runs as a child, with its console on a socket in a
  fresh folder, while a task of the spec keeps it busy with a loop of
  connections.  Clients attach with 'loom --attach' (stdin piped: plain
  lines, no prompts) and with python3's raw socket (the protocol is
  lines a person could type).  After each command the spec sends a
  marker (print "@@") and reads up to it, so it waits on output, never
  on time.  Every child is killed when its test ends.
]]
local helper = require "spec.helper"
local loom = require "loom"

local has, q = helper.has, helper.quote

local OPTS = { timeout = 30 }

-- The program under test: a line server whose "hang" line makes its
-- handler wait for ever (its cleanup says so on stdout).
local SERVER = [[
local path = arg[1]
served = 0
local srv = assert(loom.net.listen("127.0.0.1", 0, function(s)
  for line in s:lines() do
    if line == "hang" then
      local _ <close> = setmetatable({}, { __close = function()
        print("hang cleanup")
      end })
      loom.current().name = "hanging handler"
      s:write("hanging\n")
      loom.sleep(1000)
    end
    served = served + 1
    s:write("echo " .. line .. "\n")
  end
end))
if path ~= "-" then assert(loom.console(path)) end
print("port " .. select(2, srv:address()))
]]

-- Kills 'p' (if it still runs) and lets it go, when closed.
local function reaper(p)
  return setmetatable({}, { __close = function()
    if not p:status() then p:kill("SIGKILL") end
    p:wait()
    p:close()
  end })
end

-- Starts 'src' as a script with the binary, under a umask that would
-- leave a socket open to all, and with the environment 'env' (a string
-- of NAME=value words); the process, once it said "port N", and N.
local function start(dir, src, arg1, env)
  local script = helper.script(src, dir .. "/prog.lua")
  local p = assert(loom.process.spawn { "sh", "-c",
    "umask 000; " .. (env or "") .. ' exec "$0" "$@"', helper.loom_bin,
    script, arg1, stderr = "pipe" })
  local line = p.stdout:read_line()
  return p, tonumber(line and line:match("^port (%d+)$"))
end

-- A client loop that keeps the server busy until 'stop.now'; counts
-- the answers it got in 'stop.n'.
local function load(port, stop)
  return loom.spawn(function()
    while not stop.now do
      local c = assert(loom.net.connect("127.0.0.1", port))
      assert(c:write("ping\n"))
      assert.are.equal("echo ping", c:read_line())
      c:close()
      stop.n = stop.n + 1
    end
  end)
end

-- A test body given SERVER running with its console at 'sock' in a
-- fresh folder: fn(sock, p, port, dir), p killed after.
local function with_server(fn)
  return helper.in_dir("/tmp/loom-console-", function(dir)
    local sock = dir .. "/console.sock"
    local p, port = start(dir, SERVER, sock)
    local _ <close> = reaper(p)
    fn(sock, p, port, dir)
  end, OPTS)
end

local GREETING = "^loom console: pid %d+, Lua 5%.4; %.help lists the commands$"

-- 'loom --attach path', its stdin and stdout piped, once it printed
-- the program's greeting.
local function attach(path)
  local p = assert(loom.process.spawn { helper.loom_bin, "--attach", path,
                                        stderr = "pipe" })
  local r = reaper(p)
  assert.matches(GREETING, p.stdout:read_line() or "")
  return p, r
end

-- Sends 'line' to the attached client, then a marker; the lines it
-- printed up to the marker.
local function ask(p, line)
  assert(p.stdin:write(line .. '\nprint("@@")\n'))
  local out = {}
  while true do
    local l = p.stdout:read_line()
    assert(l, "the client ended; it printed:\n" .. table.concat(out, "\n"))
    if l == "@@" then return out end
    out[#out + 1] = l
  end
end

-- The row of '.tasks' for the task named 'name': id, state, where.
local function task_row(rows, name)
  for _, r in ipairs(rows) do
    local id, rest = r:match("^(%d+)%s+" .. name:gsub("%p", "%%%0") .. "%s+(.*)$")
    if id then return tonumber(id), rest end
  end
end

local function run_python(src, ...)
  local r = assert(loom.process.run { "python3", "-c", src, ...,
                                       timeout = 20, env = helper.peer_env() })
  return r
end

describe("loom.console", function()
  it("lists, shows and cancels a server's tasks under load; the server goes on", with_server(function(sock, p, port)
    assert.truthy(port)
    local stop = { n = 0 }
    local busy = load(port, stop)
    local hang = assert(loom.net.connect("127.0.0.1", port))
    hang:write("hang\n")
    assert.are.equal("hanging", hang:read_line())

    local a, _ <close> = attach(sock)
    local rows = ask(a, ".tasks")
    assert.matches("^ID%s+NAME%s+STATE%s+AGE%s+WHERE$", rows[1])
    assert.matches("^%d+ tasks$", rows[#rows])
    local id, rest = task_row(rows, "hanging handler")
    assert.truthy(id, table.concat(rows, "\n"))
    assert.matches("prog%.lua:11 in loom%.sleep$", rest)

    local tb = ask(a, ".tb " .. id)
    assert.are.equal(("task %d 'hanging handler':"):format(id), tb[1])
    assert.are.equal("stack traceback:", tb[2])
    assert.are.equal("\t[C]: in function 'loom.sleep'", tb[3])
    assert.matches("prog%.lua:11:", tb[4])

    local served = stop.n
    assert.are.same({ ("task %d 'hanging handler' cancelled"):format(id) },
      ask(a, ".cancel " .. id))
    assert.are.equal("hang cleanup", p.stdout:read_line())
    assert.is_nil(hang:read_line())  -- its connection closed with it
    assert.is_nil(task_row(ask(a, ".tasks"), "hanging handler"))
    assert.are.same({}, ask(a, ".cancel " .. id))  -- an error: on stderr
    assert.are.equal(("no task %d (.tasks lists them)"):format(id), a.stderr:read_line())

    -- Lua at the prompt runs inside the program, and sees its globals
    local n = tonumber(ask(a, "served")[1])
    assert.truthy(n and n > 0)
    assert.are.same({ "4" }, ask(a, "loom.sleep(0.01) return 2 + 2"))

    -- the load went on all along, and goes on
    local before = stop.n
    while stop.n < before + 5 do loom.sleep(0.01) end
    assert.truthy(stop.n > served)
    stop.now = true
    busy:await()

    assert(a.stdin:write(".quit\n"))
    assert.are.equal("detached", a.stdout:read_line())
    assert.are.same({ 0 }, { a:wait() })
    assert.are.equal("", a.stderr:read_all())
    -- the program goes on after the client left
    local c = assert(loom.net.connect("127.0.0.1", port))
    c:write("after\n")
    assert.are.equal("echo after", c:read_line())
    c:close()
    hang:close()
  end))

  it("has a socket only its owner may use, whatever the umask", with_server(function(sock)
    local r = assert(loom.process.run { "stat", "-c", "%a %F", sock, timeout = 10 })
    assert.are.equal("600 socket\n", r.stdout)
  end))

  it("shows errors, handles and stats, and the commands", with_server(function(sock)
    local a, _ <close> = attach(sock)
    assert.are.same({}, ask(a, "x = 1"))
    assert.are.same({ "x is 1" }, ask(a, "print('x is ' .. x)"))
    a.stdin:write("function f()\n")  -- more: its marker would be in f
    assert.are.same({}, ask(a, "return 'multi' end"))
    assert.are.same({ "multi" }, ask(a, "f()"))
    assert.are.same({}, ask(a, ".nope"))
    assert.are.equal("unknown command .nope (.help lists them)", a.stderr:read_line())
    assert.are.same({}, ask(a, "error('oops')"))
    assert.are.equal("console:1: oops", a.stderr:read_line())
    assert.are.equal("stack traceback:", a.stderr:read_line())
    local help = ask(a, ".help")
    for _, cmd in ipairs { ".tasks", ".tb ID", ".cancel ID", ".handles", ".stats", ".quit" } do
      local found = false
      for _, l in ipairs(help) do found = found or l:sub(1, #cmd) == cmd end
      assert.truthy(found, cmd)
    end
    local handles = table.concat(ask(a, ".handles"), "\n")
    assert.matches("^KIND", handles)
    assert.truthy(has(handles, "127.0.0.1"), handles)
    assert.truthy(has(handles, sock), handles)
    -- a step of 60 ms, timed since the client attached
    assert.are.same({}, ask(a, "local t = os.clock() while os.clock() - t < 0.06 do end"))
    local stats = table.concat(ask(a, ".stats"), "\n")
    for _, k in ipairs { "tasks", "handles", "memory", "iterations", "slowest" } do
      assert.matches("\n?" .. k .. "%s+%S", stats)
    end
    assert.matches("handles +server 2, stream 1", stats)
    local ms = tonumber(stats:match("slowest +([%d.]+) ms %(task 'console input'%)"))
    assert.truthy(ms and ms >= 60, stats)
    a.stdin:close()  -- Ctrl-D: detaches
    assert.are.same({ 0 }, { a:wait() })
  end))

  it("speaks plain lines to a raw socket client, and takes its misbehaviour", with_server(function(sock, p)
    local r = run_python([[
import json, socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(15)
s.connect(sys.argv[1])
buf = b""
def until_prompt():
    global buf
    while not buf.endswith(b"> "):
        d = s.recv(65536)
        if not d:
            return buf.decode("utf-8", "replace") + "<closed>"
        buf += d
    out, buf = buf, b""
    return out.decode("utf-8", "replace")
print(json.dumps(until_prompt()))
for line in [b"1 + 1", b"= 'a', 2\r", b"function g()", b"return 3 end", b"g()",
             b"\xff\xfe not lua", b".tasks", b""]:
    s.sendall(line + b"\n")
    print(json.dumps(until_prompt()))
s.sendall(b"local _ <close> = setmetatable({}, {__close = function() "
          b"io.write('raw cleanup\\n') io.stdout:flush() end}) print('started') loom.sleep(100)\n")
while not buf.endswith(b"started\n"):
    buf += s.recv(65536)
s.close()
]], sock)
    assert.are.equal("", r.stderr)
    local l = {}
    for i, line in ipairs(helper.lines(r.stdout)) do l[i] = loom.json.decode(line) end
    assert.matches("^loom console: pid %d+, Lua 5%.4; %.help lists the commands\n> $", l[1])
    assert.are.equal("2\n> ", l[2])
    assert.are.equal("a\t2\n> ", l[3])
    assert.are.equal(">> ", l[4])
    assert.are.equal("> ", l[5])
    assert.are.equal("3\n> ", l[6])
    assert.matches("^console:1: unexpected symbol near '<\\255>'\n> $", l[7])
    assert.matches("^ID +NAME +STATE.*console session.*tasks\n> $", l[8])
    assert.are.equal("> ", l[9])
    assert.are.equal(9, #l)
    -- the client left with its input running: it was cancelled
    assert.are.equal("raw cleanup", p.stdout:read_line())
    local a, _ <close> = attach(sock)
    assert.is_nil(task_row(ask(a, ".tasks"), "console input"))
  end))

  it("survives a client killed mid-command, and takes a second client", with_server(function(sock, p, port)
    local a1, _ <close> = attach(sock)
    local a2, _ <close> = attach(sock)
    assert.are.same({ "one" }, ask(a1, "'one'"))
    assert.are.same({ "two" }, ask(a2, "'two'"))
    a1.stdin:write("local _ <close> = setmetatable({}, {__close = function() "
      .. "io.write('input cleanup\\n') io.stdout:flush() end}) print('running') loom.sleep(100)\n")
    assert.are.equal("running", a1.stdout:read_line())
    a1:kill("SIGKILL")
    assert.are.equal("input cleanup", p.stdout:read_line())
    assert.is_nil(task_row(ask(a2, ".tasks"), "console input"))
    local c = assert(loom.net.connect("127.0.0.1", port))
    c:write("still\n")
    assert.are.equal("echo still", c:read_line())
    c:close()
    local a3, _ <close> = attach(sock)
    assert.are.same({ "three" }, ask(a3, "'three'"))
  end))

  it("Ctrl-C in the client cancels its input and the session goes on", with_server(function(sock)
    local a, _ <close> = attach(sock)
    a.stdin:write("print('sleeping') loom.sleep(100)\n")
    assert.are.equal("sleeping", a.stdout:read_line())
    a:kill("SIGINT")
    assert.are.equal("loom.Cancelled: interrupted from the console", a.stderr:read_line())
    assert.are.same({ "after" }, ask(a, "'after'"))
  end))

  it("attaches with line editing on a terminal (tmux)", with_server(function(sock, _, _, dir)
    local t <close> = helper.terminal(dir)
    t:start { "--attach", sock }
    t:prompt()
    assert.matches("^loom console: pid %d+, Lua 5%.4; %.help lists the commands\n>$", t:screen())
    t:line("served")
    t:wait("\n> served\n0\n>$", true)
    t:line("function f()")
    t:prompt(">>")
    t:keys("C-c")  -- at the prompt: drops the unfinished input
    t:prompt()
    t:line("print('sleeping') loom.sleep(100)")
    t:wait("\nsleeping$", true)
    t:keys("C-c")  -- while it runs: cancels it, in the program
    t:wait("loom.Cancelled: interrupted from the console\nstack traceback:", true)
    t:prompt()
    t:line(".tasks")
    local s = t:wait("\n%d+ tasks\n>$", true)
    assert.falsy(has(s, "console input"), s)
    t:keys("C-d")
    t:wait("\ndetached\nexit status 0$", true)
    t:assert_clean()
  end))

  it("LOOM_CONSOLE opens a console for any script", helper.in_dir("/tmp/loom-console-", function(dir)
    local sock = dir .. "/env.sock"
    local p = start(dir, "secret = 42\n" .. SERVER, "-", "LOOM_CONSOLE=" .. q(sock))
    local _ <close> = reaper(p)
    local a, _ <close> = attach(sock)
    assert.are.same({ "42" }, ask(a, "secret"))
  end, OPTS))

  it("keeps no program alive: it ends when its work is done, attached or not",
     helper.in_dir("/tmp/loom-console-", function(dir)
    local sock = dir .. "/console.sock"
    local src = ("assert(loom.console(%q))\nprint('port 0')\n"
      .. "while not go do loom.sleep(0.01) end\nprint('done')\n"):format(sock)
    local p = start(dir, src)
    local _ <close> = reaper(p)
    local a, _ <close> = attach(sock)
    a.stdin:write("go = true\n")
    assert.are.equal("done", p.stdout:read_line())
    assert.are.same({ 0 }, { p:wait() })
    assert.are.same({ 0 }, { a:wait() })
    assert.are.equal("loom: the console at " .. sock .. " closed\n", a.stderr:read_all())
    -- and without a client: the script ends at once
    local p2 = start(dir, ("assert(loom.console(%q))\nprint('port 0')\n"):format(sock))
    local _ <close> = reaper(p2)
    assert.are.same({ 0 }, { p2:wait() })
    assert.are.equal("", p2.stderr:read_all())
  end, OPTS))

  it("times steps only while a client is attached", helper.in_dir("/tmp/loom-console-", function(dir)
    local sock = dir .. "/console.sock"
    local src = ("assert(loom.console(%q))\nprint('port 0')\n"
      .. "print('before', debug.getregistry()['loom.core'].timing())\n"
      .. "while not go do loom.sleep(0.01) end\n"
      .. "while debug.getregistry()['loom.core'].timing() do loom.sleep(0.01) end\n"
      .. "print('after', debug.getregistry()['loom.core'].timing())\n"):format(sock)
    local p = start(dir, src)
    local _ <close> = reaper(p)
    assert.are.equal("before\tfalse", p.stdout:read_line())
    local a, _ <close> = attach(sock)
    assert.are.same({ "true" }, ask(a, "debug.getregistry()['loom.core'].timing()"))
    a.stdin:write("go = true\n.quit\n")
    assert.are.same({ 0 }, { a:wait() })
    assert.are.equal("after\tfalse", p.stdout:read_line())
    assert.are.same({ 0 }, { p:wait() })
  end, OPTS))

  it("refuses a path where a live program listens; takes over a stale one",
     helper.in_dir("/tmp/loom-console-", function(dir)
    local sock = dir .. "/console.sock"
    local srv = assert(loom.console(sock))
    local s, err, code = loom.console(sock)
    assert.is_nil(s)
    assert.are.equal("EADDRINUSE", code)
    assert.truthy(has(err, sock), err)
    srv:close()
    -- a socket file left by a program that ended without closing it
    local src = ("assert(loom.console(%q)) os.exit(0)\n"):format(sock)
    helper.script(src, dir .. "/leave.lua")
    assert(loom.process.run { helper.loom_bin, dir .. "/leave.lua", timeout = 10 })
    assert.truthy(loom.fs.exists(sock))
    srv = assert(loom.console(sock))
    srv:close()
  end, OPTS))

  it("names itself in misuse", function()
    assert.matches("bad argument #1 to 'loom.console' %(string expected, got nil%)",
      helper.raised(loom.console))
  end)
end)
