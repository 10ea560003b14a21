--[[ loom.log: timestamped records of what a program does.

  loom.log.debug/info/warn/error(fmt, ...) format their arguments as
  string.format does; a first argument that is not a string, or one
  with no '%' followed by more arguments, is tostring'ed and joined with
  spaces, so that loom.log.info(tbl) never raises.  The record (time,
  level, the name of the running task, the message) is written by C
  (src/log.c), which also writes loom's own reports, without waiting.

  loom.log.level(name) sets the threshold ("debug", "info", "warn",
  "error"; LOOM_LOG sets it at start, default "info") and returns the
  previous one; loom.log.format("text" | "json") likewise the format;
  loom.log.to(path | stream | nil) where the records go.
]]
local core = ...

local select, type, tostring, pcall = select, type, tostring, pcall
local format, concat = string.format, table.concat
local write, get_level = core.log_write, core.log_level

local M = {}

local LEVELS = { debug = 0, info = 1, warn = 2, error = 3 }
local threshold = LEVELS[get_level()]

-- NOTE: a __tostring that raises gives a placeholder, not an error: a
-- log call must not become the failure it reports.
local function show(v)
  if type(v) == "string" then return v end
  local ok, s = pcall(tostring, v)
  if ok and type(s) == "string" then return s end
  return "(" .. type(v) .. ")"
end

local function joined(...)
  local n = select("#", ...)
  local parts = { ... }
  for i = 1, n do parts[i] = show(parts[i]) end
  return concat(parts, " ", 1, n)
end

local function message(fmt, ...)
  if type(fmt) == "string" then
    if select("#", ...) == 0 then return fmt end
    if fmt:find("%", 1, true) then
      local ok, s = pcall(format, fmt, ...)
      if ok then return s end
      return joined(fmt, ...) .. " (bad format: " .. show(s) .. ")"
    end
  end
  return joined(fmt, ...)
end

for name, n in pairs(LEVELS) do
  M[name] = function(...)
    if n < threshold then return end
    write(n, message(...))
  end
end

--- loom.log.level([name]): the threshold before; sets it when given.
function M.level(name)
  local prev = get_level(name)
  threshold = LEVELS[get_level()]
  return prev
end

--- loom.log.format([name]): "text" or "json", the format before.
M.format = core.log_format

--- loom.log.to(path | stream | nil): where records go (nil: stderr);
-- true, or nil, msg, code when the file cannot be opened.
M.to = core.log_to

return M
