--[[ loom.busted: async tests for busted.

    local async = require("loom.busted").async
    it("...", async(function() ... end [, {timeout = 5, clock = "virtual"}]))

  The body runs as a task on a fresh loop, on the virtual clock when
  asked.  The timeout is real time on either clock: a test still running
  after 'timeout' seconds fails with the list of the tasks still pending
  and where each one waits.  Tasks the body leaves behind are cancelled
  when it returns, so that one test cannot leak into the next.
]]
local loom = require "loom"
local core = loom._core

local pcall, error, type, tostring, select = pcall, error, type, tostring,
  select
local concat, pack, unpack = table.concat, table.pack, table.unpack

local M = {}

-- Where each live task but 'skip' waits, one block per task.
local function describe_tasks(skip)
  local out = {}
  for _, t in ipairs(loom.tasks()) do
    if t ~= skip then
      out[#out + 1] = ("task '%s':\n%s"):format(t.name, t:traceback())
    end
  end
  return #out > 0 and concat(out, "\n") or "(none)"
end

local function cancel_others(skip)
  local left = {}
  for _, t in ipairs(loom.tasks()) do
    if t ~= skip and t ~= loom.current() then
      t:cancel("the test ended")
      left[#left + 1] = t
    end
  end
  for _, t in ipairs(left) do pcall(loom.await, t) end
end

--- async(fn [, opts]): a busted test body that runs 'fn' as a task.
function M.async(fn, opts)
  if type(fn) ~= "function" then
    error(("bad argument #1 to 'async' (function expected, got %s)")
      :format(type(fn)), 2)
  end
  opts = opts or {}
  if type(opts) ~= "table" then
    error("bad argument #2 to 'async' (table expected)", 2)
  end
  local timeout = opts.timeout or 5
  if type(timeout) ~= "number" or not (timeout > 0) then
    error("bad argument #2 to 'async' (timeout must be a positive number)", 2)
  end
  local clock = opts.clock or "real"
  return function(...)
    local args = pack(...)
    loom.run_with({ clock = clock }, function()
      local main = loom.current()
      main.name = "test"
      local report
      local alarm = core.alarm(timeout, function()
        report = describe_tasks()
        main:cancel("the test timed out")
      end)
      local ok, e = pcall(fn, unpack(args, 1, args.n))
      alarm:cancel()
      cancel_others(main)
      if report then
        error(("test timed out after %s s; pending tasks:\n%s")
          :format(tostring(timeout), report), 0)
      end
      if not ok then error(e, 0) end
    end)
  end
end

return M
