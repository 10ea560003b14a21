--[[ spec/helper.lua: loaded by busted before the specs (see .busted).

  Gives the specs the build under test: LOOM_BUILD (default build/)
  holds lua/loom.so, which 'require "loom"' finds, and the binary
  'loom', which spec.helper.loom_bin names.  'run_bin' runs the binary
  as a subprocess and returns its stdout, stderr and exit status.
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

local function slurp(path)
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

--- Writes 'src' to a fresh temporary file and returns its path.
function M.script(src)
  local path = os.tmpname()
  local f = assert(io.open(path, "wb"))
  f:write(src)
  f:close()
  return path
end

--- Runs a shell command line; returns stdout, stderr, exit status.
function M.sh(cmdline, stdin)
  local out, err = os.tmpname(), os.tmpname()
  local input = "/dev/null"
  if stdin then input = M.script(stdin) end
  local ok, how, code = os.execute(("%s <%s >%s 2>%s"):format(
    cmdline, quote(input), quote(out), quote(err)))
  if stdin then os.remove(input) end
  if how == "signal" then code = 128 + code end
  return slurp(out), slurp(err), code
end

--- Runs the loom binary with the given arguments (strings, quoted).
function M.run_bin(args, stdin)
  local parts = { quote(M.loom_bin) }
  for _, a in ipairs(args or {}) do parts[#parts + 1] = quote(a) end
  return M.sh(table.concat(parts, " "), stdin)
end

--- Runs the source 'src' as a script with the binary.
function M.run_src(src, args, stdin)
  local path = M.script(src)
  local all = { path }
  for _, a in ipairs(args or {}) do all[#all + 1] = a end
  local out, err, code = M.run_bin(all, stdin)
  os.remove(path)
  return out, err, code, path
end

-- {==================================================================
-- Task helpers for specs that run inside a loop (loom.busted's async)

M.VIRTUAL = { clock = "virtual" }

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
