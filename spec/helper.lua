--[[ spec/helper.lua: loaded by busted before the specs (see .busted).

  Gives the specs the build under test: LOOM_BUILD (default build/)
  holds lua/loom.so, which 'require "loom"' finds, and the binary
  'loom', which spec.helper.loom_bin names.  'run_bin' runs the binary
  as a subprocess and returns its stdout, stderr and exit status.  Every
  command a spec runs here is killed when it outlives its time limit,
  so a hang fails its test instead of stopping the suite.
]]
local build = os.getenv("LOOM_BUILD") or "build"

local M = {}
M.build = build
M.loom_bin = build .. "/loom"

-- A wall clock in seconds: luasystem's (it comes with busted), else
-- os.time, whose whole seconds make 'coarse' true.
do
  local ok, system = pcall(require, "system")
  if ok and system.monotime then M.clock = system.monotime
  elseif ok and system.gettime then M.clock = system.gettime
  else M.clock, M.coarse = os.time, true end
end

--- The lines of 's', without their newlines.
function M.lines(s)
  local t = {}
  for l in s:gmatch("[^\n]+") do t[#t + 1] = l end
  return t
end

--- The contents of the file 'path', which is then removed.
function M.slurp(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  os.remove(path)
  return s
end

local function quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end
M.quote = quote

--- Writes 'src' to the file 'path' (default: a fresh temporary file)
-- and returns its path.
function M.script(src, path)
  path = path or os.tmpname()
  local f = assert(io.open(path, "wb"))
  f:write(src)
  f:close()
  return path
end

--- A fresh temporary path, with no file at it yet.
function M.tmppath()
  local path = os.tmpname()
  os.remove(path)
  return path
end

--- The contents of the file 'path', or nil if there is none.
function M.read(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

-- How long a command that a spec runs may take, in seconds, unless the
-- spec says otherwise: generous, for the sanitizer builds.
M.LIMIT = tonumber(os.getenv("LOOM_SPEC_LIMIT")) or 60

--- Runs a shell command line, killed (with everything it started) after
-- 'limit' seconds (default M.LIMIT); returns stdout, stderr and the exit
-- status, 124 when it ran out of time.
function M.sh(cmdline, stdin, limit)
  local out, err = os.tmpname(), os.tmpname()
  local input = "/dev/null"
  if stdin then input = M.script(stdin) end
  limit = limit or M.LIMIT
  local _, how, code = os.execute(("timeout -k 5 %g sh -c %s <%s >%s 2>%s")
    :format(limit, quote(cmdline), quote(input), quote(out), quote(err)))
  if stdin then os.remove(input) end
  if how == "signal" then code = 128 + code end
  local o, e = M.slurp(out), M.slurp(err)
  if code == 124 or code == 137 then
    e = e .. ("\n(killed: still running after %g s: %s)\n"):format(limit,
      cmdline)
  end
  return o, e, code
end

--- Runs the loom binary with the given arguments (strings, quoted), for
-- at most 'limit' seconds (see sh).
function M.run_bin(args, stdin, limit)
  local parts = { quote(M.loom_bin) }
  for _, a in ipairs(args or {}) do parts[#parts + 1] = quote(a) end
  return M.sh(table.concat(parts, " "), stdin, limit)
end

--- Runs the source 'src' as a script with the binary (see run_bin).
function M.run_src(src, args, stdin, limit)
  local path = M.script(src)
  local all = { path }
  for _, a in ipairs(args or {}) do all[#all + 1] = a end
  local out, err, code = M.run_bin(all, stdin, limit)
  os.remove(path)
  return out, err, code, path
end

--- Runs 'src' as a script with the binary inside the shell command line
-- 'cmdline' where it says SCRIPT (default: just the script), with the
-- environment 'env' ({NAME = value}) added, on the input 'stdin', for
-- at most 'limit' seconds (see sh); returns stdout, stderr and status.
function M.pipeline(src, cmdline, env, stdin, limit)
  local path = M.script(src)
  local parts = {}
  for k, v in pairs(env or {}) do parts[#parts + 1] = quote(k .. "=" .. v) end
  local bin = (#parts > 0 and "env " .. table.concat(parts, " ") .. " " or "")
    .. quote(M.loom_bin) .. " " .. quote(path)
  local out, err, code = M.sh(((cmdline or "SCRIPT"):gsub("SCRIPT",
    function() return bin end)), stdin, limit)
  os.remove(path)
  return out, err, code
end

--- Runs 'src' in a stock lua5.4 with the module under test (see sh for
-- 'limit'); returns stdout, stderr and the exit status.
function M.lua_src(src, limit)
  local path = M.script(("package.cpath = %q .. package.cpath\n%s")
    :format(build .. "/lua/?.so;", src))
  local out, err, code = M.sh("lua5.4 " .. quote(path), nil, limit)
  os.remove(path)
  return out, err, code
end

--- The environment for peer programs a spec starts (curl, python3,
-- openssl...): the sanitizer run's LD_PRELOAD and its options are not
-- passed on, since those programs are not built with the sanitizers
-- (curl's resolver thread and LeakSanitizer do not get on).
function M.peer_env()
  local env = {}
  for _, k in ipairs { "PATH", "HOME", "TMPDIR", "LANG", "LC_ALL", "USER" } do
    env[k] = os.getenv(k)
  end
  env.PATH = env.PATH or "/usr/local/bin:/usr/bin:/bin"
  return env
end

--- A port nobody listens on on 127.0.0.1: one the system gave, then
-- released (in a task).
function M.free_port()
  local srv = assert(require("loom").net.listen("127.0.0.1", 0, function() end))
  local _, port = srv:address()
  srv:close()
  return port
end

--- A fresh temporary folder (mode 700); rmtree removes it.
function M.tmpdir()
  local path = os.tmpname()
  os.remove(path)
  assert(os.execute("mkdir -m 700 " .. quote(path)))
  return path
end

function M.rmtree(path) os.execute("rm -rf " .. quote(path)) end

--- The records of loom.log's text format in 's' (a program's stderr):
-- a list of {ts =, level =, task =, msg =}, 'msg' with its further
-- lines joined back, unindented; lines that are no record's are
-- records of their own with only 'msg'.
function M.records(s)
  local list = {}
  for line in s:gmatch("([^\n]*)\n") do
    local ts, level, task, msg = line:match(
      "^(%d%d%d%d%-%d%d%-%d%d %d%d:%d%d:%d%d%.%d%d%dZ?) (%u+) +%[(.-)%] (.*)$")
    local last = list[#list]
    if ts then
      list[#list + 1] = { ts = ts, level = level, task = task, msg = msg }
    elseif last and last.level and line:sub(1, 2) == "  " then
      last.msg = last.msg .. "\n" .. line:sub(3)
    else
      list[#list + 1] = { msg = line }
    end
  end
  return list
end

--- Runs fn() with loom.log's records going to a file rather than to
-- stderr; returns the records it logged (M.records) as "LEVEL message",
-- in order.  (In a loop: loom.log must be loaded.)
function M.logged(fn)
  local log = require("loom").log
  local path = os.tmpname()
  assert(log.to(path))
  local ok, e = pcall(fn)
  log.to(nil)
  local msgs = {}
  for _, r in ipairs(M.records(M.slurp(path))) do
    msgs[#msgs + 1] = tostring(r.level) .. " " .. r.msg
  end
  if not ok then error(e, 0) end
  return msgs
end

--- The text of 's' (stderr) without the log's time, level and task: the
-- messages of its records, each ending with a newline.
function M.unlog(s)
  local t = {}
  for _, r in ipairs(M.records(s)) do t[#t + 1] = r.msg .. "\n" end
  return table.concat(t)
end

--[=[ terminal(dir): a real terminal for a test that runs as a task
  (in_dir): a pane of 100x30 of a tmux server of its own (its socket in
  the folder 'dir').  t:start(args [, env]) runs the loom binary with the
  arguments 'args' in the pane, in 'dir' with HOME set to it (so a
  history file is the test's own), with the sanitizer run's variables
  (tmux runs without them) and 'env' ({NAME = value}).  The pane's shell
  notes the terminal's mode (stty -a) before loom starts and after it
  ends, then prints "exit status N".

  A test types with t:type(text), t:keys(key...) (tmux's names: Enter,
  C-c, Left...) and t:line(text) (the text, then Enter), reads
  t:screen([all]) (with what scrolled off it when 'all'; lines without
  trailing blanks, as tmux gives them, so a prompt "> " is ">"; no
  empty lines below) and waits, reading all of it again every 20 ms
  for at most M.WAIT seconds: t:wait(text [, pat])
  until it holds 'text' (a pattern when 'pat'), t:wait_line(line) for a
  line that is 'line', t:prompt([p]) until its last line is ">" (or
  'p').  Each returns the screen.  t:exit_status() waits for loom's end:
  its status and the screen; t:modes() then the terminal's mode before
  and after loom; t:pid() is loom's pid, t:signal(sig) signals it,
  t:assert_clean() fails on a sanitizer's report on the screen.

  A watchdog kills the pane's processes after M.LIMIT seconds (not
  coreutils' timeout, which would pass the terminal's Ctrl-C on a
  second time); the pane's shell lives through a Ctrl-C (a trap, which
  loom does not inherit).  Closing 't' (<close>) kills the server and
  waits for the pane's processes to be gone, whatever happened: without
  suspending, since an error's unwinding may be what closes it. ]=]

-- How long a test waits for a terminal's screen, in seconds.
M.WAIT = tonumber(os.getenv("LOOM_SPEC_WAIT")) or 20

local SANITIZER_VARS = { "LD_PRELOAD", "ASAN_OPTIONS", "UBSAN_OPTIONS",
                         "LSAN_OPTIONS", "LOOM_CLOSE_AT_EXIT" }

local function absolute(path)
  if path:sub(1, 1) == "/" then return path end
  return assert(os.getenv("PWD")) .. "/" .. path
end

local Terminal = {}
Terminal.__index = Terminal
local terminals = 0  -- each has files of its own, though in one folder

function M.terminal(dir)
  terminals = terminals + 1
  local base = ("%s/.tty%d"):format(dir, terminals)
  local t = setmetatable({ dir = dir, base = base, sock = base .. ".sock" },
                         Terminal)
  return t
end

function Terminal:tmux(...)
  local argv = { "tmux", "-u", "-S", self.sock, "-f", "/dev/null", ... }
  argv.env, argv.timeout = M.peer_env(), 10
  local r = assert(require("loom").process.run(argv))
  assert(r.code == 0, ("tmux %s: %s"):format((...), r.stderr))
  return r.stdout
end

function Terminal:start(args, env)
  local words = { "HOME=" .. self.dir }
  for _, k in ipairs(SANITIZER_VARS) do
    if os.getenv(k) then words[#words + 1] = k .. "=" .. os.getenv(k) end
  end
  local names = {}
  for k in pairs(env or {}) do names[#names + 1] = k end
  table.sort(names)
  for _, k in ipairs(names) do words[#words + 1] = k .. "=" .. env[k] end
  words[#words + 1] = absolute(M.loom_bin)
  for _, a in ipairs(args) do words[#words + 1] = a end
  for i, w in ipairs(words) do words[i] = quote(w) end
  -- the inner shell writes its pid and becomes env, then loom
  local cmd = ("(trap '' INT; sleep %d; kill -KILL 0) & trap : INT; "
    .. "stty -a > %s; sh -c 'echo $$ > \"$0\"; exec \"$@\"' %s env %s; "
    .. "status=$?; stty -a > %s; echo \"exit status $status\"; wait")
    :format(M.LIMIT, quote(self.base .. ".before"), quote(self.base .. ".pid"),
            table.concat(words, " "), quote(self.base .. ".after"))
  local out = self:tmux("new-session", "-d", "-P", "-F", "#{pane_pid}",
    "-x", "100", "-y", "30", "-c", self.dir, cmd)
  self.pane = assert(math.tointeger(tonumber(out)), out)
end

function Terminal:type(text) self:tmux("send-keys", "-t", "0", "-l", text) end

function Terminal:keys(...) self:tmux("send-keys", "-t", "0", ...) end

function Terminal:line(text)
  self:type(text)
  self:keys("Enter")
end

function Terminal:screen(all)
  return (self:tmux("capture-pane", "-p", "-t", "0", all and "-S" or nil,
                    all and "-" or nil)
    :gsub("[ \t]+\n", "\n"):gsub("\n+$", ""))
end

-- Reads the whole screen until found(screen) gives a value, which it
-- returns with the screen; 'what' names what it waits for (in the
-- error, which names the caller's caller).
function Terminal:poll(what, found)
  local loom = require "loom"
  local deadline = loom.now() + M.WAIT
  while true do
    local s = self:screen(true)
    local v = found(s)
    if v then return v, s end
    if loom.now() > deadline then
      error(("no %s on the screen after %g s; it shows:\n%s")
        :format(what, M.WAIT, s), 3)
    end
    loom.sleep(0.02)
  end
end

function Terminal:wait(text, pat)
  local what = ("%q"):format(text):gsub("\\\n", "\\n")
  return select(2, self:poll(what, function(s)
    return s:find(text, 1, not pat)
  end))
end

function Terminal:wait_line(line)
  return select(2, self:poll(("line %q"):format(line), function(s)
    for l in s:gmatch("[^\n]+") do if l == line then return true end end
  end))
end

function Terminal:prompt(p)
  p = p or ">"
  return select(2, self:poll(("prompt %q"):format(p), function(s)
    return s:match("[^\n]*$") == p
  end))
end

function Terminal:exit_status()
  local status, s = self:poll("exit status", function(s)
    return s:match("exit status (%d+)")
  end)
  return tonumber(status), s
end

function Terminal:modes()
  self:exit_status()  -- the shell wrote both before it said so
  local function read(path)
    local f = assert(io.open(path))
    local text = f:read("a")
    f:close()
    return text
  end
  return read(self.base .. ".before"), read(self.base .. ".after")
end

function Terminal:pid()
  local path = self.base .. ".pid"
  return self:poll("pid in " .. path, function()
    local f = io.open(path)
    local pid = f and f:read("a"):match("^(%d+)\n")
    if f then f:close() end
    return math.tointeger(tonumber(pid))
  end)
end

function Terminal:signal(sig)
  assert(require("loom").process.kill(self:pid(), sig))
end

function Terminal:assert_clean()
  local s = self:screen(true)
  assert(not s:find("Sanitizer") and not s:find("runtime error:"), s)
end

-- Whether the process 'pid' runs (it is neither gone nor a zombie).
local function alive(pid)
  local f = io.open("/proc/" .. pid .. "/stat")
  if not f then return false end
  local stat = f:read("a")  -- nil when it went between open and read
  f:close()
  local state = stat and stat:match("%) (%a)")
  return state ~= nil and state ~= "Z"
end

function Terminal:close()
  if self.closed then return end
  self.closed = true
  M.sh(("env -u LD_PRELOAD tmux -S %s kill-server"):format(quote(self.sock)),
       nil, 10)
  if not self.pane then return end
  -- the pane's processes are its shell's group; the shell and loom are
  -- those that write in 'dir'
  require("loom").process.kill(-self.pane, "SIGKILL")
  local f = io.open(self.base .. ".pid")
  local pid = f and f:read("a"):match("^%d+")
  if f then f:close() end
  local deadline = M.clock() + M.WAIT
  while (alive(self.pane) or pid and alive(pid)) and M.clock() < deadline do
    require("system").sleep(0.01)
  end
end
Terminal.__close = Terminal.close

--- Whether the string 'hay' holds 'needle' (plain text).
function M.has(hay, needle)
  return type(hay) == "string" and hay:find(needle, 1, true) ~= nil
end

--- A test body (run as a task) given a fresh folder made under 'prefix'
-- (a path prefix for fs.mkdtemp), removed afterwards whatever happens.
function M.in_dir(prefix, fn, opts)
  -- (by way of 'loom': busted empties package.loaded after each spec
  -- file, and only 'require "loom"' puts loom.fs back in it)
  local fs = require("loom").fs
  return require("loom.busted").async(function()
    local d = assert(fs.mkdtemp(prefix))
    local ok, e = pcall(fn, d)
    fs.remove(d, { recursive = true })
    if not ok then error(e, 0) end
  end, opts)
end

--- raiser(file): a function raises(msg, f [, at]) that calls f, which
-- must raise exactly 'msg' from line 'at' of 'file' (by default, the
-- line where f is written).
function M.raiser(file)
  return function(msg, f, at)
    local ok, e = pcall(f)
    if ok then error("no error raised", 2) end
    at = at or debug.getinfo(f, "S").linedefined
    local want = ("%s:%d: %s"):format(file, at, msg)
    if e ~= want then
      error(("expected the error\n  %s\ngot\n  %s"):format(want,
        tostring(e)), 2)
    end
  end
end

--- The message of a suspending call 'name' made outside a task.
function M.outside(name)
  return ("loom: %s called outside a task (use loom.run or the loom binary)")
    :format(name)
end

--- The message of the error raised by fn(...), or nil if it returned.
function M.raised(fn, ...)
  local ok, e = pcall(fn, ...)
  if ok then return nil end
  return tostring(e)
end

-- {==================================================================
-- Task helpers for specs that run inside a loop (loom.busted's async)

M.VIRTUAL = { clock = "virtual" }

--- Asserts that 'got' seconds are 'expected' give or take 'eps'
-- (default 10 ms).
function M.near(expected, got, eps)
  eps = eps or 0.01
  assert(math.abs(got - expected) <= eps,
    ("expected about %.9f s, got %.9f s"):format(expected, got))
end

--- The seconds on the loop's clock since 't0'.
function M.since(t0) return require("loom").now() - t0 end

--- Asserts that 'e' is a loom.Cancelled.
function M.assert_cancelled(e)
  assert(require("loom").is_cancelled(e),
    "not a loom.Cancelled: " .. tostring(e))
end

--- Asserts that 'e' is a loom.Timeout.
function M.assert_timeout(e)
  local loom = require "loom"
  assert(type(e) == "table" and getmetatable(e) == loom.Timeout,
    "not a loom.Timeout: " .. tostring(e))
  assert(loom.is_timeout(e) and not loom.is_cancelled(e))
  assert(e.code == "ETIMEDOUT", "code " .. tostring(e.code))
  assert(tostring(e):find("timed out", 1, true), tostring(e))
end

--- Lets every ready task run until it suspends again (a few rounds).
function M.settle(rounds)
  local loom = require "loom"
  for _ = 1, rounds or 3 do loom.yield() end
end

--- Awaits 't' and returns its error (nil when it succeeded).
function M.error_of(t)
  local ok, e = pcall(require("loom").await, t)
  if ok then return nil end
  return e
end

--- A function that sleeps 's' seconds, then raises 'e' unchanged.
function M.failing(s, e)
  return function()
    require("loom").sleep(s)
    error(e, 0)
  end
end

--- A function that waits until it is cancelled, then runs a cleanup that
-- takes 'cleanup' seconds (if any), appends 'name' to 'log' and lets the
-- cancellation go on.
function M.until_cancelled(log, name, cleanup)
  return function()
    local loom = require "loom"
    local _, e = pcall(loom.sleep, 1000)
    if cleanup then loom.sleep(cleanup) end
    log[#log + 1] = name
    error(e, 0)
  end
end
-- }==================================================================

package.loaded["spec.helper"] = M
return M
