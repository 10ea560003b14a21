--[[ spec/fs_safety_spec.lua: loom.fs against what could lose or
  misplace data: paths with a NUL inside, write_file over links, devices
  and other people's files, reads that never end, over-long lines.

  Every test works in a folder of its own under /tmp, removed when the
  test ends.  The tests of reads that must stop run the binary as a
  subprocess bounded by timeout(1), and check that it ended in time and
  small.
]]
local loom = require "loom"
local fs = require "loom.fs"
local async = require("loom.busted").async
local h = require "spec.helper"

local PREFIX = "/tmp/loom-fs-safety-"

local function has(hay, needle)
  return type(hay) == "string" and hay:find(needle, 1, true) ~= nil
end

local function in_dir(fn, opts)
  return async(function()
    local d = assert(fs.mkdtemp(PREFIX))
    local ok, e = pcall(fn, d)
    fs.remove(d, { recursive = true })
    if not ok then error(e, 0) end
  end, opts)
end

-- The message of the error raised by fn(...), or nil if it returned.
local function raised(fn, ...)
  local ok, e = pcall(fn, ...)
  if ok then return nil end
  return tostring(e)
end

-- Checks nil, message, code, the message naming 'path'.
local function fails(code, path, v, msg, c)
  assert.is_nil(v, ("expected a failure %s, got %s"):format(code, tostring(v)))
  assert.are.equal(code, c)
  assert.is_true(has(msg, path), ("message %q does not name %q")
    :format(tostring(msg), path))
end

describe("loom.fs safety", function()
  describe("a path with a NUL inside is refused, never cut", function()
    -- Each call with the argument that is a path; 'd' is the test folder,
    -- where "x" exists, so a cut path would find something.  (Not tail
    -- calls: the error names the line of the frame that calls fs.)
    local calls = {
      { "open", 1, function(d, p) return (fs.open(p)) end },
      { "open", 1, function(d, p) return (fs.open(p, "w")) end },
      { "read_file", 1, function(d, p) return (fs.read_file(p)) end },
      { "write_file", 1, function(d, p) return (fs.write_file(p, "data")) end },
      { "append_file", 1, function(d, p) return (fs.append_file(p, "data")) end },
      { "stat", 1, function(d, p) return (fs.stat(p)) end },
      { "lstat", 1, function(d, p) return (fs.lstat(p)) end },
      { "exists", 1, function(d, p) return (fs.exists(p)) end },
      { "list", 1, function(d, p) return (fs.list(p)) end },
      { "dir", 1, function(d, p) return (fs.dir(p)) end },
      { "mkdir", 1, function(d, p) return (fs.mkdir(p)) end },
      { "mkdir", 1, function(d, p) return (fs.mkdir(p, { parents = true })) end },
      { "remove", 1, function(d, p) return (fs.remove(p)) end },
      { "rename", 1, function(d, p) return (fs.rename(p, d .. "/y")) end },
      { "rename", 2, function(d, p) return (fs.rename(d .. "/x", p)) end },
      { "copy", 1, function(d, p) return (fs.copy(p, d .. "/y")) end },
      { "copy", 2, function(d, p) return (fs.copy(d .. "/x", p)) end },
      { "symlink", 1, function(d, p) return (fs.symlink(p, d .. "/y")) end },
      { "symlink", 2, function(d, p) return (fs.symlink("x", p)) end },
      { "readlink", 1, function(d, p) return (fs.readlink(p)) end },
      { "realpath", 1, function(d, p) return (fs.realpath(p)) end },
      { "chmod", 1, function(d, p) return (fs.chmod(p, tonumber("600", 8))) end },
      { "mkdtemp", 1, function(d, p) return (fs.mkdtemp(p)) end },
      { "watch", 1, function(d, p)
        local w = fs.watch(p)
        if w then w:close() end  -- (when not refused)
      end },
    }
    for _, c in ipairs(calls) do
      local name, n, call = c[1], c[2], c[3]
      it(("fs.%s, argument #%d"):format(name, n), in_dir(function(d)
        assert.is_true(fs.write_file(d .. "/x", "x"))
        local mode = fs.stat(d .. "/x").mode
        local e = raised(call, d, d .. "/x\0y")
        assert.is_true(has(e, ("bad argument #%d to 'fs.%s' (string contains "
          .. "a NUL)"):format(n, name)), e)
        assert.is_true(has(e, "fs_safety_spec.lua:"), e)  -- the user's line
        -- nothing was made, moved or changed
        local names = {}
        for _, ent in ipairs(fs.list(d)) do names[#names + 1] = ent.name end
        assert.are.same({ "x" }, names)
        assert.are.equal("x", fs.read_file(d .. "/x"))
        assert.are.equal(mode, fs.stat(d .. "/x").mode)
      end))
    end

    it("a folder part with a NUL: fs.stat('d\\0/x')", in_dir(function(d)
      local e = raised(fs.stat, d .. "\0/x")
      assert.is_true(has(e, "bad argument #1 to 'fs.stat' (string contains a NUL)"), e)
    end))

    it("data may hold NULs: it is bytes, not a path", in_dir(function(d)
      assert.is_true(fs.write_file(d .. "/b", "a\0b"))
      assert.is_true(fs.append_file(d .. "/b", "\0c"))
      assert.are.equal("a\0b\0c", fs.read_file(d .. "/b"))
    end))
  end)
end)
