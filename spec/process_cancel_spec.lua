--[[ spec/process_cancel_spec.lua: loom.process when things go wrong:
  strings that C would cut, a process.run that is cancelled or timed
  out (the child must go, even one that ignores SIGTERM), and loom
  interrupted while a child runs.

  Every child is bounded: by timeout(1) when it is the loom binary, by
  the test's own kill otherwise.
]]
local loom = require "loom"
local process = require "loom.process"
local async = require("loom.busted").async
local h = require "spec.helper"

local function has(hay, needle)
  return type(hay) == "string" and hay:find(needle, 1, true) ~= nil
end

-- The message of the error raised by fn(...), or nil if it returned.
local function raised(fn, ...)
  local ok, e = pcall(fn, ...)
  if ok then return nil end
  return tostring(e)
end

describe("loom.process safety", function()
  describe("a string with a NUL inside is refused, never cut", function()
    local cases = {
      { "the command", { "ec\0ho", "x" }, "argument 1 contains a NUL" },
      { "an argument", { "echo", "x\0y" }, "argument 2 contains a NUL" },
      { "an env value", { "echo", env = { A = "x\0y" } },
        "env value of A contains a NUL" },
      { "an env name", { "echo", env = { ["A\0B"] = "x" } },
        "env name contains a NUL" },
      { "cwd", { "echo", cwd = "/\0tmp" }, "cwd contains a NUL" },
    }
    for _, c in ipairs(cases) do
      local what, opts, msg = c[1], c[2], c[3]
      for _, fname in ipairs { "spawn", "run" } do
        it(("process.%s: %s"):format(fname, what), async(function()
          local e = raised(function()
            local p = process[fname](opts)
            if p and p.close then p:wait() p:close() end  -- (not refused)
          end)
          assert.is_true(has(e, ("bad argument #1 to 'process.%s' (%s)")
            :format(fname, msg)), e)
        end))
      end
    end

    it("a signal name: p:kill and process.kill", async(function()
      local p <close> = assert(process.spawn{"sleep", "30", stdin = "null",
                                             stdout = "null"})
      local e = raised(p.kill, p, "SIGTERM\0x")
      assert.is_true(has(e, "bad argument #1 to 'kill' (string contains a NUL)"), e)
      e = raised(process.kill, p.pid, "SIGTERM\0x")
      assert.is_true(has(e, "bad argument #2 to 'process.kill' (string "
        .. "contains a NUL)"), e)
      assert.is_nil(p:status())  -- no signal went
      p:kill("SIGKILL")
      assert.are.same({ nil, "SIGKILL" }, { p:wait() })
    end))
  end)
end)
