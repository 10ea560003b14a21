---@meta loom.log
-- LuaCATS annotations for loom.log: timestamped records, with the
-- task's name, written without blocking the loop.

---@class loom.log
local log = {}

---@alias loom.LogLevel "debug"|"info"|"warn"|"error"

---A record at level "debug": `fmt` as string.format when it has `%`,
---else the arguments joined.
---@param fmt any
---@param ... any
function log.debug(fmt, ...) end

---@param fmt any
---@param ... any
function log.info(fmt, ...) end

---@param fmt any
---@param ... any
function log.warn(fmt, ...) end

---@param fmt any
---@param ... any
function log.error(fmt, ...) end

---The threshold before the call; sets it when `name` is given.
---@param name? loom.LogLevel
---@return loom.LogLevel
function log.level(name) end

---The format before the call; sets it when `name` is given.
---@param name? "text"|"json"
---@return "text"|"json"
function log.format(name) end

---Where records go: a file path, a Stream, or nil for stderr.
---@param target string|loom.Stream|nil
---@return true? ok
---@return string? err
---@return loom.ErrorCode? code
function log.to(target) end

return log
