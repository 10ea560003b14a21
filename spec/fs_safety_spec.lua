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

local has, raised = h.has, h.raised

local function in_dir(fn, opts) return h.in_dir(PREFIX, fn, opts) end


-- Whether 'path' can be opened, asked of io (for use outside tasks).
local function exists_plain(path)
  local f = io.open(path, "r")
  if f then f:close() end
  return f ~= nil
end

-- Checks nil, message, code, the message naming 'path'.
local function fails(code, path, v, msg, c)
  assert.is_nil(v, ("expected a failure %s, got %s"):format(code, tostring(v)))
  assert.are.equal(code, c)
  assert.is_true(has(msg, path), ("message %q does not name %q")
    :format(tostring(msg), path))
end

-- The loom binary as an absolute path (for a shell that changes folder).
local function bin_abs()
  if h.loom_bin:sub(1, 1) == "/" then return h.loom_bin end
  return os.getenv("PWD") .. "/" .. h.loom_bin
end

describe("loom.fs safety", function()
  describe("a path with a NUL inside is refused, never cut", function()
    -- Each call with the argument that is a path; 'd' is the test folder,
    -- where "x" exists, so a cut path would find something.  (Not tail
    -- calls: the error names the line of the frame that calls fs.)
    local calls = {
      { "open", 1, function(_d, p) return (fs.open(p)) end },
      { "open", 1, function(_d, p) return (fs.open(p, "w")) end },
      { "read_file", 1, function(_d, p) return (fs.read_file(p)) end },
      { "write_file", 1, function(_d, p) return (fs.write_file(p, "data")) end },
      { "append_file", 1, function(_d, p) return (fs.append_file(p, "data")) end },
      { "stat", 1, function(_d, p) return (fs.stat(p)) end },
      { "lstat", 1, function(_d, p) return (fs.lstat(p)) end },
      { "exists", 1, function(_d, p) return (fs.exists(p)) end },
      { "list", 1, function(_d, p) return (fs.list(p)) end },
      { "dir", 1, function(_d, p) return (fs.dir(p)) end },
      { "mkdir", 1, function(_d, p) return (fs.mkdir(p)) end },
      { "mkdir", 1, function(_d, p) return (fs.mkdir(p, { parents = true })) end },
      { "remove", 1, function(_d, p) return (fs.remove(p)) end },
      { "rename", 1, function(d, p) return (fs.rename(p, d .. "/y")) end },
      { "rename", 2, function(d, p) return (fs.rename(d .. "/x", p)) end },
      { "copy", 1, function(d, p) return (fs.copy(p, d .. "/y")) end },
      { "copy", 2, function(d, p) return (fs.copy(d .. "/x", p)) end },
      { "symlink", 1, function(d, p) return (fs.symlink(p, d .. "/y")) end },
      { "symlink", 2, function(_d, p) return (fs.symlink("x", p)) end },
      { "readlink", 1, function(_d, p) return (fs.readlink(p)) end },
      { "realpath", 1, function(_d, p) return (fs.realpath(p)) end },
      { "chmod", 1, function(_d, p) return (fs.chmod(p, tonumber("600", 8))) end },
      { "mkdtemp", 1, function(_d, p) return (fs.mkdtemp(p)) end },
      { "watch", 1, function(_d, p)
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

  describe("write_file keeps what is at the path", function()
    -- What is at 'p' without following a link: type, and target if a link.
    local function what(p)
      local st = assert(fs.lstat(p))
      if st.type == "link" then return "link", assert(fs.readlink(p)) end
      return st.type
    end

    local function names(d)
      local t = {}
      for _, e in ipairs(assert(fs.list(d))) do t[#t + 1] = e.name end
      table.sort(t)
      return t
    end

    it("a link to a file in another folder stays a link; the target changes, atomically there", in_dir(function(d)
      assert.is_true(fs.mkdir(d .. "/real"))
      assert.is_true(fs.mkdir(d .. "/links"))
      assert.is_true(fs.write_file(d .. "/real/f", "old"))
      local ino = fs.stat(d .. "/real/f").ino
      assert.is_true(fs.symlink(d .. "/real/f", d .. "/links/l"))
      assert.is_true(fs.write_file(d .. "/links/l", "new"))
      assert.are.same({ "link", d .. "/real/f" }, { what(d .. "/links/l") })
      assert.are.equal("new", fs.read_file(d .. "/real/f"))
      -- replaced (a new inode), not rewritten in place: atomic
      assert.are_not.equal(ino, fs.stat(d .. "/real/f").ino)
      assert.are.same({ "l" }, names(d .. "/links"))  -- no temp file there
      assert.are.same({ "f" }, names(d .. "/real"))
    end))

    it("a relative link target is relative to the link's folder", in_dir(function(d)
      assert.is_true(fs.mkdir(d .. "/a"))
      assert.is_true(fs.mkdir(d .. "/b"))
      assert.is_true(fs.write_file(d .. "/b/f", "old"))
      assert.is_true(fs.symlink("../b/f", d .. "/a/l"))
      assert.is_true(fs.write_file(d .. "/a/l", "new"))
      assert.are.same({ "link", "../b/f" }, { what(d .. "/a/l") })
      assert.are.equal("new", fs.read_file(d .. "/b/f"))
      assert.are.same({ "f" }, names(d .. "/b"))
    end))

    it("a chain of links: each stays, the last target changes", in_dir(function(d)
      assert.is_true(fs.mkdir(d .. "/x"))
      assert.is_true(fs.write_file(d .. "/x/f", "old"))
      assert.is_true(fs.symlink("x/f", d .. "/l1"))        -- relative
      assert.is_true(fs.symlink(d .. "/l1", d .. "/x/l2"))  -- absolute
      assert.is_true(fs.symlink("l2", d .. "/x/l3"))       -- relative
      assert.is_true(fs.write_file(d .. "/x/l3", "new"))
      assert.are.same({ "link", "x/f" }, { what(d .. "/l1") })
      assert.are.same({ "link", d .. "/l1" }, { what(d .. "/x/l2") })
      assert.are.same({ "link", "l2" }, { what(d .. "/x/l3") })
      assert.are.equal("new", fs.read_file(d .. "/x/f"))
      assert.are.same({ "f", "l2", "l3" }, names(d .. "/x"))
    end))

    it("a dangling link gets its target made; a loop of links fails ELOOP", in_dir(function(d)
      assert.is_true(fs.symlink("made", d .. "/l"))
      assert.is_true(fs.write_file(d .. "/l", "hello"))
      assert.are.same({ "link", "made" }, { what(d .. "/l") })
      assert.are.equal("hello", fs.read_file(d .. "/made"))
      assert.are.equal("file", what(d .. "/made"))
      assert.is_true(fs.symlink("p", d .. "/q"))
      assert.is_true(fs.symlink("q", d .. "/p"))
      fails("ELOOP", d .. "/p", fs.write_file(d .. "/p", "x"))
      assert.are.same({ "l", "made", "p", "q" }, names(d))
    end))

    it("a link relative to the current folder", in_dir(function(d)
      -- a link given without a folder: its target is relative to '.'
      local _, err, code = h.sh(("cd %s && printf old > f && ln -s f l && %s -e %s")
        :format(h.quote(d), h.quote(bin_abs()),
                h.quote([[assert(require("loom.fs").write_file("l", "new"))]])))
      assert.are.equal(0, code, err)
      assert.are.same({ "link", "f" }, { what(d .. "/l") })
      assert.are.equal("new", fs.read_file(d .. "/f"))
      assert.are.same({ "f", "l" }, names(d))
    end))

    -- NOTE: on a node of its own, never /dev/null itself: a write_file
    -- that replaced it would break the machine's /dev/null for everyone.
    it("a device (a node of /dev/null's device) is written in place, not replaced", in_dir(function(d)
      local null = d .. "/null"
      local _, err, code = h.sh("mknod -m 666 " .. h.quote(null) .. " c 1 3")
      if code ~= 0 then return pending("mknod needs root: " .. err) end
      local before = assert(fs.stat(null))
      assert.is_true(fs.write_file(null, "into the void"))
      local after = assert(fs.stat(null))
      assert.are.equal("char", after.type)
      assert.are.same({ before.ino, before.mode }, { after.ino, after.mode })
      assert.are.equal("", fs.read_file(null))
      assert.are.same({ "null" }, names(d))
    end))

    it("a FIFO with a reader is written in place; one without fails ENXIO", in_dir(function(d)
      local fifo = d .. "/fifo"
      local _, err, code = h.sh("mkfifo " .. h.quote(fifo))
      assert.are.equal(0, code, err)
      -- a reader: opened read-write, which does not wait for a writer
      local reader = assert(io.open(fifo, "r+b"))
      local msg = "through the pipe"  -- less than a pipe holds: no block
      local ok = fs.write_file(fifo, msg)
      if what(fifo) ~= "fifo" then reader:close() end  -- a read would block
      assert.are.equal("fifo", what(fifo))
      assert.is_true(ok)
      assert.are.equal(msg, reader:read(#msg))
      reader:close()
      fails("ENXIO", fifo, fs.write_file(fifo, "nobody reads"))
      assert.are.same({ "fifo" }, names(d))
    end))

    it("an existing file keeps its mode, set-id bits too", in_dir(function(d)
      local p = d .. "/m"
      for _, m in ipairs { "640", "755", "2750", "4711", "400" } do
        assert.is_true(fs.write_file(p, "v1"))
        assert.is_true(fs.chmod(p, tonumber(m, 8)))
        assert.is_true(fs.write_file(p, "v2 " .. m))
        assert.are.equal(tonumber(m, 8), fs.stat(p).mode, m)
        assert.are.equal("v2 " .. m, fs.read_file(p))
        assert.is_true(fs.chmod(p, tonumber("600", 8)))
      end
    end))

    it("an existing file keeps its owner and group", in_dir(function(d)
      local p = d .. "/owned"
      assert.is_true(fs.write_file(p, "v1"))
      local _, err, code = h.sh("chown 4321:4322 " .. h.quote(p))
      if code ~= 0 then return pending("chown needs root: " .. err) end
      assert.is_true(fs.chmod(p, tonumber("4755", 8)))
      assert.is_true(fs.write_file(p, "v2"))
      local st = fs.stat(p)
      assert.are.same({ 4321, 4322, tonumber("4755", 8) },
                      { st.uid, st.gid, st.mode })
      assert.are.equal("v2", fs.read_file(p))
    end))

    it("a new file gets 0666 less the umask", in_dir(function(d)
      for _, mask in ipairs { "022", "077", "002" } do
        local p = d .. "/new" .. mask
        local _, err, code = h.sh(("umask %s && %s -e %s"):format(mask,
          h.quote(h.loom_bin), h.quote(("assert(require('loom.fs')"
            .. ".write_file(%q, 'x'))"):format(p))))
        assert.are.equal(0, code, err)
        assert.are.equal(tonumber("666", 8) & ~tonumber(mask, 8),
                         fs.stat(p).mode, mask)
      end
    end))
  end)

  describe("read_file of an endless or too large file", function()
    it("a read_file that timed out or was cancelled stops: the process exits, small", function()
      if not exists_plain("/usr/bin/time") then
        return pending("no /usr/bin/time to measure the peak RSS")
      end
      local src = [[
        local loom = require "loom"
        local fs = require "loom.fs"
        local t = loom.spawn(fs.read_file, "/dev/zero")  -- reads meanwhile
        local ok, e = pcall(loom.timeout, 0.05, fs.read_file, "/dev/zero")
        print(ok, loom.is_timeout(e))
        t:cancel()
        print(loom.is_cancelled(select(2, pcall(t.await, t))))
      ]]
      local script = h.script(src)
      local stats = os.tmpname()
      local out, err, code = h.sh(("/usr/bin/time -o %s -f '%%e %%M' timeout 20 %s %s")
        :format(h.quote(stats), h.quote(h.loom_bin), h.quote(script)))
      os.remove(script)
      local f = assert(io.open(stats))
      local secs, kib = f:read("a"):match("([%d.]+) (%d+)%s*$")
      f:close()
      os.remove(stats)
      assert.are.equal(0, code, "the process did not exit: " .. err)
      assert.are.equal("false\ttrue\ntrue\n", out)
      assert.is_true(tonumber(secs) < 5, "took " .. tostring(secs) .. " s")
      -- two jobs read for 0.05 s at most, a few hundred MiB at worst
      assert.is_true(tonumber(kib) < 1024 * 1024,
        ("peak RSS %d MiB"):format(tonumber(kib) // 1024))
    end)

    it("a FIFO nobody writes to: a timed-out read_file ends, and the process exits", in_dir(function(d)
      local fifo = d .. "/fifo"
      assert.are.equal(0, select(3, h.sh("mkfifo " .. h.quote(fifo))))
      local out, err, code = h.run_src(([[
        local fs = require "loom.fs"
        local ok, e = pcall(loom.timeout, 0.05, fs.read_file, %q)
        print(ok, loom.is_timeout(e))
      ]]):format(fifo), nil, nil, 20)
      assert.are.equal(0, code, "the process did not exit: " .. err)
      assert.are.equal("false\ttrue\n", out)
    end))

    it("a FIFO: read_file waits for its writer and takes all it writes", in_dir(function(d)
      local fifo = d .. "/fifo"
      assert.are.equal(0, select(3, h.sh("mkfifo " .. h.quote(fifo))))
      local reader = loom.spawn(function()
        return table.pack(fs.read_file(fifo))
      end)
      loom.sleep(0.05)  -- the reader is waiting; a writer comes later
      assert.is_false(reader:done())
      local w = assert(loom.process.spawn { "sh", "-c",
        "printf one > " .. h.quote(fifo) .. "; :" , stdin = "null" })
      assert.are.equal(0, (w:wait()))
      local r = reader:await()
      assert.are.same({ n = 1, "one" }, r)  -- the bytes alone
    end))

    it("max: past it nil, msg, EFBIG (the message names the path)", in_dir(function(d)
      fails("EFBIG", "/dev/zero", fs.read_file("/dev/zero", { max = 1000 }))
      fails("EFBIG", "/dev/zero", fs.read_file("/dev/zero", { max = 0 }))
      local p = d .. "/f"
      assert.is_true(fs.write_file(p, ("x"):rep(5000)))
      fails("EFBIG", p, fs.read_file(p, { max = 4999 }))
      assert.are.equal(5000, #fs.read_file(p, { max = 5000 }))
      assert.are.equal(5000, #fs.read_file(p, { max = 2^20 }))  -- a float
      assert.are.equal(5000, #fs.read_file(p, { max = math.huge }))
      assert.are.equal(5000, #fs.read_file(p, {}))
      -- a file stat cannot size: counted as it is read
      local status = assert(fs.read_file("/proc/self/status"))
      fails("EFBIG", "/proc/self/status",
            fs.read_file("/proc/self/status", { max = 10 }))
      assert.is_true(#status > 10)
      assert.is_true(fs.write_file(d .. "/empty", ""))
      assert.are.equal("", fs.read_file(d .. "/empty", { max = 0 }))
    end))

    it("max must be a non-negative integer", async(function()
      for _, bad in ipairs { -1, 1.5, 0 / 0, "10", true } do
        local e = raised(fs.read_file, "/dev/null", { max = bad })
        assert.is_true(has(e, "bad argument #2 to 'fs.read_file' (max must be "
          .. "a non-negative integer"), e)
      end
      local e = raised(fs.read_file, "/dev/null", 5)
      assert.is_true(has(e, "bad argument #2 to 'fs.read_file' (table expected"), e)
    end))
  end)

  describe("File", function()
    it(":close() returns true, the second time too", in_dir(function(d)
      local f = assert(fs.open(d .. "/c", "w"))
      assert.is_true(f:write("x"))
      assert.are.same({ true }, { f:close() })
      assert.are.same({ true }, { f:close() })
      assert.are.equal("x", fs.read_file(d .. "/c"))
      local e = raised(f.write, f, "y")
      assert.is_true(has(e, "attempt to use a closed file"), e)
    end))

    it(":close() while another task's read is in flight: nil, msg, EBUSY; then true", in_dir(function(d)
      local fifo = d .. "/fifo"
      local _, err, code = h.sh("mkfifo " .. h.quote(fifo))
      assert.are.equal(0, code, err)
      local f = assert(fs.open(fifo, "r+"))  -- read-write: no wait for a writer
      local reader = loom.spawn(function() return f:read() end)
      h.settle()  -- the reader is on a worker, waiting for data
      local ok, msg, c = f:close()
      assert.are.same({ nil, "EBUSY" }, { ok, c })
      assert.is_true(has(msg, fifo), msg)
      local w = assert(io.open(fifo, "w"))  -- a reader is there: no wait
      w:write("data")
      w:close()
      assert.are.equal("data", reader:await())
      assert.is_true(f:close())
      assert.is_true(f:close())
    end))

    it(":read_line() has a Stream's limit, 64 KiB: longer lines fail ELINE and are dropped", in_dir(function(d)
      local LIMIT = 64 * 1024
      local p = d .. "/lines"
      local exact = ("a"):rep(LIMIT)
      local crlf = ("c"):rep(LIMIT)
      assert.is_true(fs.write_file(p, table.concat {
        "short\n",
        exact, "\n",                          -- exactly the limit: fine
        crlf, "\r\n",                          -- the \r does not count
        ("b"):rep(LIMIT + 1), "\n",           -- one byte too many
        ("z"):rep(10 * LIMIT), "\n",          -- far too long, many reads
        "after\n",
        ("t"):rep(LIMIT + 1),                 -- too long, at the very end
      }))
      local f <close> = assert(fs.open(p))
      assert.are.equal("short", f:read_line())
      assert.are.equal(exact, f:read_line())
      assert.are.equal(crlf, f:read_line())
      for _ = 1, 2 do
        local v, msg, code = f:read_line()
        assert.is_nil(v)
        assert.are.equal("ELINE", code)
        assert.are.equal(("read_line '%s': line longer than %d bytes")
          :format(p, LIMIT), msg)
      end
      assert.are.equal("after", f:read_line())  -- the long ones are gone
      local v, _, code = f:read_line()
      assert.are.same({ nil, "ELINE" }, { v, code })
      v, _, code = f:read_line()
      assert.are.same({ nil, "EOF" }, { v, code })
    end))

    it(":read_line() of an endless line (/dev/zero) fails ELINE, not growing for ever", async(function()
      local f <close> = assert(fs.open("/dev/zero"))
      local v, msg, code = f:read_line()
      assert.are.same({ nil, "ELINE" }, { v, code })
      assert.is_true(has(msg, "/dev/zero"), msg)
      -- (a next read_line would skip the rest of this line: for ever)
    end, { timeout = 10 }))
  end)
end)
