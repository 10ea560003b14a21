---@meta loom.process
-- LuaCATS annotations for loom.process: child processes.

---@class loom.process
local process = {}

---The pid of this process.
---@type integer
process.pid = 0

---@alias loom.Stdio "pipe"|"inherit"|"null"

---A signal: its name ("SIGTERM", "SIGKILL", ...) or its number.
---@alias loom.Signal string|integer

---The command and its arguments in the list part (`{"ls", "-l", ...}`),
---and options.
---@class loom.SpawnOptions
---@field [integer] string the command, then its arguments
---@field cwd? string
---@field env? table<string, string|number|boolean> the child's environment (replaces this one's)
---@field stdin? loom.Stdio default "pipe"
---@field stdout? loom.Stdio default "pipe"
---@field stderr? loom.Stdio default "inherit"

---@class loom.ProcessRunOptions: loom.SpawnOptions
---@field input? string written to the child's stdin, which is then closed
---@field timeout? number seconds; then the child is ended and loom.Timeout raised
---@field kill_grace? number seconds between SIGTERM and SIGKILL (default 5)

---@class loom.Completed
---@field code integer? the exit status, nil when a signal ended it
---@field signal string? the signal's name, when one ended it
---@field stdout string
---@field stderr string

---Starts a child. A command that does not exist: `nil, msg, "ENOENT"`.
---@param opts loom.SpawnOptions
---@return loom.Process? proc
---@return string? err
---@return loom.ErrorCode? code
function process.spawn(opts) end

---Runs a child to its end and collects its output; on timeout the child
---is killed and `loom.Timeout` raised.
---@async
---@param opts loom.ProcessRunOptions
---@return loom.Completed? result
---@return string? err
---@return loom.ErrorCode? code
function process.run(opts) end

---Sends a signal (default "SIGTERM") to any process.
---@param pid integer
---@param sig? loom.Signal
---@return true? ok
---@return string? err
---@return loom.ErrorCode? code
function process.kill(pid, sig) end

---A child process (process.spawn).
---@class loom.Process
---@field pid integer
---@field stdin loom.Stream? the child's stdin, when a pipe
---@field stdout loom.Stream? the child's stdout, when a pipe
---@field stderr loom.Stream? the child's stderr, when a pipe
local Process = {}

---Waits for the child to end (at once if it has): `code, nil` when it
---exited, `nil, signal` when a signal ended it.
---@async
---@return integer? code
---@return string? signal
function Process:wait() end

---Sends `sig` (default "SIGTERM"); `nil, msg, "ESRCH"` once the child
---has ended.
---@param sig? loom.Signal
---@return true? ok
---@return string? err
---@return loom.ErrorCode? code
function Process:kill(sig) end

---nil while the child runs, else what `:wait()` returns.
---@return integer? code
---@return string? signal
function Process:status() end

---Closes the pipes; the child goes on and is reaped when it ends.
function Process:close() end

return process
