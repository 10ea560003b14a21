--[[ loom.process: child processes.

  process.spawn{cmd, arg1, ..., cwd=, env=, stdin=, stdout=, stderr=}
  starts a child and returns a Process: .pid, .stdin / .stdout / .stderr
  (Streams, where piped), :wait() (suspends) -> code, signal, :kill([sig])
  and :close().  process.run{cmd, ..., input=, timeout=, kill_grace=}
  runs one to the end and captures its output; cancelled or timed out,
  it ends the child (SIGTERM, then SIGKILL) and reaps it.  A cancelled
  p:wait() leaves the child running.

  The child and its handle are C (src/process.c); the stdio pipes are
  ordinary Streams (src/stream.c).  A child is reaped when it exits even
  if its Process was dropped, and keeps the loop alive until then.

  NOTE: wait gives Node's pair: the exit code and nil, or nil and the
  name of the signal that ended the child ("SIGKILL").
]]
local core, loom = ...
local cproc, csig = core.proc, core.sig

local type, error, pcall, pairs, tostring, setmetatable, getmetatable =
  type, error, pcall, pairs, tostring, setmetatable, getmetatable
local math_type = math.type
local find = string.find

local M = {}

--- process.pid: the pid of this process.
M.pid = cproc.getpid()

local check = core.check
local argerror, check_task = check.argerror, check.task

-- The number and the name of signal 'sig' (a name or a number).
local function signum(sig, n, fname)
  if type(sig) == "string" then check.cstring(sig, n, fname) end
  local num, name = csig.signum(sig)
  if not num then
    argerror(n, fname, "unknown signal '" .. tostring(sig) .. "'")
  end
  return num, name
end

-- {====================================================================
-- Options

local stdio_modes = { pipe = true, inherit = true, null = true }

local function stdio_mode(v, key, default, fname)
  if v == nil then return default end
  if not stdio_modes[v] then
    argerror(1, fname, ("%s must be 'pipe', 'inherit' or 'null', got %s")
      :format(key, tostring(v)))
  end
  return v
end

-- The command and its arguments: the list part of 'opts', as strings.
-- NOTE: C sees a string up to its first NUL, so a string with a NUL
-- inside (argument, env entry, cwd) is refused rather than cut.
local function command(opts, fname)
  local args = {}
  if type(opts[1]) ~= "string" or opts[1] == "" then
    argerror(1, fname, "a command (string) expected at index 1")
  end
  for i = 1, #opts do
    local a = opts[i]
    local t = type(a)
    if t == "number" then a = tostring(a)
    elseif t ~= "string" then
      argerror(1, fname, ("argument %d must be a string, got %s")
        :format(i, t))
    end
    if find(a, "\0", 1, true) then
      argerror(1, fname, ("argument %d contains a NUL"):format(i))
    end
    args[i] = a
  end
  return args
end

-- env = {NAME = value}: the list of "NAME=value" entries.
local function environment(env, fname)
  if env == nil then return nil end
  if type(env) ~= "table" then
    argerror(1, fname, "env must be a table, got " .. type(env))
  end
  local list = {}
  for k, v in pairs(env) do
    if type(k) ~= "string" or k == "" or k:find("=", 1, true) then
      argerror(1, fname, "env names must be strings without '=', got "
        .. tostring(k))
    end
    local t = type(v)
    if t ~= "string" and t ~= "number" and t ~= "boolean" then
      argerror(1, fname, ("env value of %s must be a string, got %s")
        :format(k, t))
    end
    if find(k, "\0", 1, true) then
      argerror(1, fname, "env name contains a NUL")
    end
    v = tostring(v)
    if find(v, "\0", 1, true) then
      argerror(1, fname, ("env value of %s contains a NUL"):format(k))
    end
    list[#list + 1] = k .. "=" .. v
  end
  return list
end

--[[ Checks the options of spawn and run and returns the arguments of
  cproc.spawn in a table; 'defaults' are the stdio modes. ]]
local function check_spawn(opts, fname, defaults)
  if type(opts) ~= "table" then
    argerror(1, fname, "table expected, got " .. type(opts))
  end
  if opts.cwd ~= nil and type(opts.cwd) ~= "string" then
    argerror(1, fname, "cwd must be a string, got " .. type(opts.cwd))
  end
  if opts.cwd ~= nil and find(opts.cwd, "\0", 1, true) then
    argerror(1, fname, "cwd contains a NUL")
  end
  return {
    command(opts, fname), environment(opts.env, fname), opts.cwd,
    stdio_mode(opts.stdin, "stdin", defaults[1], fname),
    stdio_mode(opts.stdout, "stdout", defaults[2], fname),
    stdio_mode(opts.stderr, "stderr", defaults[3], fname),
  }
end

-- }====================================================================

-- {====================================================================
-- The Process object

local HANDLE = {}  -- key of the C handle in a Process

local process_methods = {}
local process_mt = {
  __name = "loom.process",
  __index = process_methods,
}

local function handle(self, fname)
  if getmetatable(self) ~= process_mt then
    argerror(1, fname, "loom.process expected, got " .. type(self))
  end
  return self[HANDLE]
end

--- p:wait() (suspends): code, nil when the child exited; nil, signal
-- name when a signal ended it.  At once if it has already ended.
function process_methods:wait()
  return handle(self, "process:wait"):wait()
end

--- p:kill([sig]): sends 'sig' (name or number, default "SIGTERM");
-- true, or nil, msg, "ESRCH" when the child has already ended.
function process_methods:kill(sig)
  local h = handle(self, "process:kill")
  return h:kill((signum(sig == nil and "SIGTERM" or sig, 1, "process:kill")))
end

--- p:status(): nil while the child runs, else what :wait() returns.
function process_methods:status()
  return handle(self, "process:status"):status()
end

--- p:close(): closes the pipes; the child goes on and is reaped when it
-- ends.  Harmless the second time.
function process_methods:close()
  local h = handle(self, "process:close")
  if self.stdin then self.stdin:close() end
  if self.stdout then self.stdout:close() end
  if self.stderr then self.stderr:close() end
  h:close()
end

process_mt.__close = process_methods.close
process_mt.__tostring = function(self)
  return ("loom.process (%s, pid %d)"):format(self.command, self.pid)
end

-- }====================================================================

-- Starts what check_spawn prepared: a Process, or nil, msg, code.
local function start(a)
  local h, pid, i, o, e = cproc.spawn(a[1], a[2], a[3], a[4], a[5], a[6])
  if not h then return nil, pid, i end
  return setmetatable({ [HANDLE] = h, pid = pid, command = a[1][1],
                        stdin = i, stdout = o, stderr = e }, process_mt)
end

--- process.spawn{cmd, ...}: a Process, or nil, msg, code.
function M.spawn(opts)
  return start(check_spawn(opts, "process.spawn",
                           { "pipe", "pipe", "inherit" }))
end

--- process.kill(pid [, sig]): sends a signal to any process.
function M.kill(pid, sig)
  if math_type(pid) ~= "integer" then
    argerror(1, "process.kill", "integer pid expected, got " .. type(pid))
  end
  return cproc.kill(pid, (signum(sig == nil and "SIGTERM" or sig, 2,
                                 "process.kill")))
end

-- {====================================================================
-- run

-- Everything to EOF (what came before a read error, too).
local function drain(s)
  local data, _, _, partial = s:read_all()
  return data or partial or ""
end

-- Feeds 'input' to the child and closes its stdin: EOF for it.  A child
-- that exits without reading it all makes the write fail (EPIPE); that
-- is the child's business, as with a shell pipe.
local function feed(s, input)
  if input ~= nil and input ~= "" then s:write(input) end
  s:close()
end

-- The body of run: the three pipes at once (a child that fills one
-- while we block on another would deadlock), then the exit status.
local function collect(p, input)
  local out, err
  loom.group(function(g)
    if p.stdin then g:spawn(feed, p.stdin, input) end
    if p.stderr then g:spawn(function() err = drain(p.stderr) end) end
    if p.stdout then out = drain(p.stdout) end
  end)
  local code, sig = p:wait()
  return { code = code, signal = sig, stdout = out, stderr = err }
end

local function call(_, f, ...)
  return f(...)
end

-- RATIONALE: as trio's run_process, a run that is cancelled or times
-- out ends its child, politely first: SIGTERM, then SIGKILL once
-- 'kill_grace' seconds went by without the child exiting (trio's 5 s
-- by default; 0 is SIGKILL at once).  The child is reaped before the
-- error goes on, so a loom interrupted with Ctrl-C leaves no orphans.
-- A bare p:wait() that is cancelled leaves its child alone, as asyncio
-- does: who spawned it decides.
local KILL_GRACE = 5

-- Ends the child of a run that failed; returns a cancellation that
-- came meanwhile (it cuts the grace short: SIGKILL at once), or nil.
local function terminate(p, grace)
  local again
  if grace > 0 and p:kill("SIGTERM") then
    local ok, e = pcall(loom.timeout, grace, p.wait, p)
    if ok then return nil end
    if loom.is_cancelled(e) then again = e end
  end
  if p:kill("SIGKILL") then
    local ok, e = pcall(p.wait, p)
    if not ok and loom.is_cancelled(e) then again = again or e end
  end
  return again
end

local function check_seconds(v, what)
  if v ~= nil and (type(v) ~= "number" or not (v >= 0)) then
    argerror(1, "process.run", what .. " must be a non-negative number")
  end
end

--- process.run{cmd, ..., input=, cwd=, env=, timeout=, kill_grace=}
-- (suspends): {code=, signal=, stdout=, stderr=}; or nil, msg, code when
-- the child cannot start.  On timeout or cancellation the child is
-- ended (SIGTERM, SIGKILL after 'kill_grace' s, default 5) and reaped,
-- and the loom.Timeout or the cancellation goes on.
function M.run(opts)
  local a = check_spawn(opts, "process.run", { "null", "pipe", "pipe" })
  local input, timeout, grace = opts.input, opts.timeout, opts.kill_grace
  if input ~= nil and type(input) ~= "string" then
    argerror(1, "process.run", "input must be a string, got " .. type(input))
  end
  check_seconds(timeout, "timeout")
  check_seconds(grace, "kill_grace")
  check_task("process.run")
  if input ~= nil then a[4] = "pipe" end
  local p, err, code = start(a)
  if not p then return nil, err, code end
  local ok, r = pcall(timeout and loom.timeout or call, timeout, collect, p,
                      input)
  if not ok then
    local again = terminate(p, grace or KILL_GRACE)
    p:close()
    error(again or r, 0)
  end
  p:close()
  return r
end

-- }====================================================================

return M
