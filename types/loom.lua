---@meta loom
-- LuaCATS annotations for loom's core: tasks, futures, combinators,
-- time, synchronisation and threads.  Read by lua-language-server and
-- EmmyLua; nothing here runs.  See README.md, "Editor support".

---An I/O failure: `nil, message, code`, where code is the libuv error
---name ("ENOENT", "ECONNREFUSED", "EOF", "ETIMEDOUT", "ECANCELED", ...).
---@alias loom.ErrorCode string

---A task or a future: what `loom.await` takes.
---@alias loom.Awaitable loom.Task|loom.Future

---Something the combinators take: a Task, a Future, or a function
---(which is spawned).
---@alias loom.Runnable loom.Task|loom.Future|fun(...): ...

---@class loom
---@field stdin loom.Stream standard input, on the loop (made on first use)
---@field stdout loom.Stream standard output, on the loop (made on first use)
---@field stderr loom.Stream standard error, on the loop (made on first use)
local loom = {}

loom.net = require("loom.net")
loom.fs = require("loom.fs")
loom.process = require("loom.process")
loom.signal = require("loom.signal")
loom.json = require("loom.json")
loom.log = require("loom.log")
loom.http = require("loom.http")

---The version of loom, as "0.1.0".
---@type string
loom.version = "0.1.0"

-- {=== Running

---Starts a loop, runs `fn(...)` as the main task until it and every task
---and open handle are done; returns fn's results or raises its error.
---Raises when called from a running loop.
---@param fn async fun(...): ...
---@param ... any
---@return any ...
function loom.run(fn, ...) end

---@class loom.RunOptions
---@field clock? "real"|"virtual" "virtual": time jumps to the next deadline whenever every task waits on timers
---@field debug? boolean debug mode for this run

---As `loom.run`, with options: `{clock = "virtual"}`, `{debug = true}`.
---@param opts loom.RunOptions
---@param fn async fun(...): ...
---@param ... any
---@return any ...
function loom.run_with(opts, fn, ...) end

---Turns debug mode on or off (a table turns it on with its settings:
---`slow`, the seconds a step may run before it is reported). Returns the
---state after the call.
---@param on? boolean|{slow?: number}
---@return boolean on
---@return number slow
function loom.debug(on) end

---A live console into this program on the Unix socket `path` (mode 0600),
---for `loom --attach path`; the Server, or nil, msg, code.
---@param path string
---@return loom.Server? server
---@return string? err
---@return loom.ErrorCode? code
function loom.console(path) end

-- }===

-- {=== Tasks and futures

---Schedules `fn(...)` as a new task; it starts on a later step of the
---loop (the caller runs on first).
---@param fn async fun(...): ...
---@param ... any
---@return loom.Task
function loom.spawn(fn, ...) end

---A function that, called, spawns `fn` with its arguments and returns the
---Task (asyncio's `async def`).
---@param fn async fun(...): ...
---@return fun(...): loom.Task
function loom.async(fn) end

---Awaits a Task or a Future: its results, all of them, or raises its
---error.
---@async
---@param x loom.Awaitable
---@return any ...
function loom.await(x) end

---A new Future: set it with `:set_result(...)` or `:set_error(e)`.
---@return loom.Future
function loom.future() end

---The running task, or nil outside tasks.
---@return loom.Task?
function loom.current() end

---Every live task.
---@return loom.Task[]
function loom.tasks() end

---Lets every other ready task run once (asyncio's `sleep(0)`).
---@async
function loom.yield() end

---@class loom.Task
---@field name string? settable; shown in tracebacks and `loom.tasks()`
local Task = {}

---Same as `loom.await(task)`.
---@async
---@return any ...
function Task:await() end

---Requests cancellation: the task's current (or next) suspension raises
---a `loom.Cancelled` in it. False when the task is already done.
---@param msg? string
---@return boolean requested
function Task:cancel(msg) end

---@return boolean
function Task:done() end

---@return boolean
function Task:cancelled() end

---The results of a finished task, or raises its error; raises when it
---is not done.
---@return any ...
function Task:result() end

---The error of a finished task, or nil.
---@return any err
function Task:error() end

---Calls `fn(task)` once the task finishes (at once if it has).
---@param fn fun(task: loom.Task)
function Task:on_done(fn) end

---Where a suspended task waits.
---@return string
function Task:traceback() end

---@class loom.Future
local Future = {}

---Sets the result; raises when the future is done.
---@param ... any
function Future:set_result(...) end

---Sets the error; raises when the future is done.
---@param e any
function Future:set_error(e) end

---Its results, or raises its error.
---@async
---@return any ...
function Future:await() end

---@return boolean
function Future:done() end

---@return boolean
function Future:cancelled() end

---The results of a done future, or raises its error; raises when it is
---not done.
---@return any ...
function Future:result() end

---The error of a done future, or nil.
---@return any err
function Future:error() end

---Calls `fn(future)` once it is done (at once if it is).
---@param fn fun(future: loom.Future)
function Future:on_done(fn) end

---Cancels the future: its awaiters get a `loom.Cancelled`. False when it
---is already done.
---@return boolean
function Future:cancel() end

-- }===

-- {=== Errors

---The error a cancelled task's suspension raises.
---@class loom.Cancelled
---@field code "ECANCELED"
---@field message string
local Cancelled = {}

---The error a deadline (loom.timeout, loom.wait_for) raises.
---@class loom.Timeout
---@field code "ETIMEDOUT"
---@field message string
local Timeout = {}

---Makes a cancellation error, as loom raises it.
---@type fun(msg?: string): loom.Cancelled
loom.Cancelled = nil

---Makes a timeout error, as loom raises it.
---@type fun(msg?: string): loom.Timeout
loom.Timeout = nil

---@param e any
---@return boolean
function loom.is_cancelled(e) end

---@param e any
---@return boolean
function loom.is_timeout(e) end

-- }===

-- {=== Combinators and structured concurrency

---The first result of each, in argument order; on the first error the
---others are cancelled and the error is raised.
---@async
---@param ... loom.Runnable
---@return any ...
function loom.gather(...) end

---@class loom.Settled
---@field ok boolean
---@field n? integer the number of results, when ok
---@field error? any the error, when not ok

---Like `gather`, but never raises: one table per argument,
---`{ok = true, n = k, ...}` or `{ok = false, error = e}`.
---@async
---@param ... loom.Runnable
---@return loom.Settled ...
function loom.settle(...) end

---The results (or error) of the first to finish; the rest are cancelled.
---@async
---@param ... loom.Runnable
---@return any ...
function loom.race(...) end

---@class loom.WaitOptions
---@field return_when? "all"|"first"|"first_error"
---@field timeout? number seconds

---Waits for the items of `list`; cancels nothing.
---@async
---@param list loom.Runnable[]
---@param opts? loom.WaitOptions
---@return loom.Awaitable[] done
---@return loom.Awaitable[] pending
function loom.wait(list, opts) end

---An iterator over the items of `list` in the order they finish:
---`for t in loom.as_completed(ts) do ... end` (each step suspends).
---@param list loom.Runnable[]
---@return async fun(): loom.Awaitable?
function loom.as_completed(list) end

---Structured concurrency: calls `fn(g)`, whose `g:spawn(f, ...)` starts
---children; returns when all are done. The first failure cancels the
---rest and is raised (the others in `err.errors`).
---@async
---@param fn async fun(g: loom.Group): ...
---@return any ...
function loom.group(fn) end

---@class loom.Group
local Group = {}

---Starts a child task of the group.
---@param f async fun(...): ...
---@param ... any
---@return loom.Task
function Group:spawn(f, ...) end

---Awaits `x`; cancelling the caller does not cancel `x`.
---@async
---@param x loom.Runnable
---@return any ...
function loom.shield(x) end

-- }===

-- {=== Time

---Non-blocking sleep (fractions allowed; 0 is `loom.yield`).
---@async
---@param s number seconds
function loom.sleep(s) end

---Monotonic loop time in seconds (the virtual time on a virtual clock).
---@return number
function loom.now() end

---Runs `fn(...)` in this task; if it is not done in `s` seconds its
---suspension raises `loom.Timeout`, its cleanup runs and the Timeout is
---raised here. Nests.
---@async
---@param s number seconds
---@param fn async fun(...): ...
---@param ... any
---@return any ...
function loom.timeout(s, fn, ...) end

---Awaits `x` for at most `s` seconds; on timeout `x` is cancelled and
---`loom.Timeout` raised.
---@async
---@param x loom.Awaitable
---@param s number seconds
---@return any ...
function loom.wait_for(x, s) end

---Spawns `fn(...)` after `s` seconds; the Task is the handle
---(`:cancel()`).
---@param s number seconds
---@param fn async fun(...): ...
---@param ... any
---@return loom.Task
function loom.later(s, fn, ...) end

---Runs `fn(...)` every `s` seconds until the handle is cancelled or fn
---returns false.
---@param s number seconds
---@param fn async fun(...): boolean?
---@param ... any
---@return loom.Task
function loom.every(s, fn, ...) end

-- }===

-- {=== Synchronisation

---A value for a `<close>` variable: closing it releases what was held.
---@class loom.Guard
---@field __close fun(self: loom.Guard)

---A lock: `local _ <close> = lock:hold()`.
---@return loom.Lock
function loom.lock() end

---@class loom.Lock
local Lock = {}

---@async
---@return true
function Lock:acquire() end

function Lock:release() end

---Acquires, and returns a to-be-closed value that releases.
---@async
---@return loom.Guard
function Lock:hold() end

---@return boolean
function Lock:locked() end

---@return loom.Event
function loom.event() end

---@class loom.Event
local Event = {}

function Event:set() end

function Event:clear() end

---@return boolean
function Event:is_set() end

---Suspends until the event is set.
---@async
---@return true
function Event:wait() end

---@param lock? loom.Lock
---@return loom.Condition
function loom.condition(lock) end

---@class loom.Condition
local Condition = {}

---Releases the lock, waits for a notification, takes the lock back.
---@async
---@return true
function Condition:wait() end

---Waits until `pred()` is true; returns its value.
---@async
---@param pred fun(): any
---@return any
function Condition:wait_for(pred) end

---@param n? integer how many waiters to wake (default 1)
function Condition:notify(n) end

function Condition:notify_all() end

---Acquires the condition's lock; the value releases it when closed.
---@async
---@return loom.Guard
function Condition:hold() end

---@param n integer permits
---@param opts? {bounded?: boolean}
---@return loom.Semaphore
function loom.semaphore(n, opts) end

---@class loom.Semaphore
local Semaphore = {}

---@async
---@return true
function Semaphore:acquire() end

---Raises past the initial count when bounded.
function Semaphore:release() end

---@async
---@return loom.Guard
function Semaphore:hold() end

---@return integer
function Semaphore:available() end

---@class loom.QueueOptions
---@field maxsize? integer 0: unbounded
---@field order? "fifo"|"lifo"|"priority"

---A queue; `order = "priority"` gets the lowest priority first, FIFO
---among equals.
---@param opts? loom.QueueOptions
---@return loom.Queue
function loom.queue(opts) end

---@class loom.Queue
local Queue = {}

---Suspends while the queue is full; raises once it is closed.
---@async
---@param v any
---@param priority? number
---@return true
function Queue:put(v, priority) end

---@param v any
---@param priority? number
---@return true? ok
---@return "full"? err
function Queue:put_nowait(v, priority) end

---Suspends while the queue is empty; `nil, "closed"` once it is closed
---and drained.
---@async
---@return any v
---@return "closed"? err
function Queue:get() end

---@return any v
---@return "empty"|"closed"? err
function Queue:get_nowait() end

---@return integer
function Queue:size() end

---@return boolean
function Queue:empty() end

---@return boolean
function Queue:full() end

---Marks one item taken by `get` as processed (for `join`).
function Queue:task_done() end

---Suspends until every item put has been marked done.
---@async
function Queue:join() end

---Further puts raise; getters drain what is left, then get nil, "closed".
function Queue:close() end

---`for v in q:iter() do ... end`, until closed and drained.
---@return async fun(): any
function Queue:iter() end

-- }===

-- {=== Threads

---Runs `fn(...)` on libuv's thread pool in a separate Lua state; `fn`
---is copied as bytecode (no upvalues), arguments and results are copied
---(nil, booleans, numbers, strings and tables of them). An error in fn is
---raised here.
---@async
---@param fn fun(...): ...
---@param ... nil|boolean|number|string|table
---@return any ...
function loom.work(fn, ...) end

-- }===

-- The `loom` binary gives scripts `loom` as a global too.
_G.loom = loom

return loom
