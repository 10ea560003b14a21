---@meta loom.signal
-- LuaCATS annotations for loom.signal: POSIX signals on the loop.

---@class loom.signal
local signal = {}

---Waits for one of the named signals; returns its name.
---@async
---@param name string "SIGINT", "SIGTERM", "SIGHUP", ...
---@param ... string
---@return string name
function signal.wait(name, ...) end

---Spawns `fn(name)` as a task on each delivery. Does not keep the
---process alive by itself.
---@param name string
---@param fn async fun(name: string)
---@return loom.SignalHandler
function signal.on(name, fn) end

---What signal.on returns.
---@class loom.SignalHandler
local SignalHandler = {}

---Stops the deliveries. Harmless the second time.
function SignalHandler:cancel() end

---The same as `:cancel()`.
function SignalHandler:close() end

---@return boolean
function SignalHandler:active() end

return signal
