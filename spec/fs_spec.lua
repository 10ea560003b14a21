--[[ spec/fs_spec.lua: loom.fs (SPEC "Files: loom.fs").

  Every test works in a folder of its own, made with fs.mkdtemp under
  /tmp and removed when the test ends (pass or fail).  The large-file
  tests share one 64 MiB file, made once and removed at the end.  The
  tests that need a process of their own (peak memory, a crash) run the
  binary as a subprocess.
]]
local loom = require "loom"
local fs = require "loom.fs"
local async = require("loom.busted").async
local h = require "spec.helper"

local KiB, MiB = 1024, 1024 * 1024
local PREFIX = "/tmp/loom-fs-spec-"

local has, raised = h.has, h.raised

-- Checks that the values are nil, message, code with the message naming
-- 'path' (when given); returns the message.
local function fails(code, path, v, msg, c)
  assert.is_nil(v, ("expected a failure %s, got %s"):format(code, tostring(v)))
  assert.are.equal(code, c)
  assert.is_string(msg)
  if path then
    assert.is_true(has(msg, path),
      ("message %q does not name %q"):format(msg, path))
  end
  return msg
end

-- A test body (run as a task) given a fresh temporary folder, which is
-- removed afterwards whatever happens.
local function in_dir(fn, opts) return h.in_dir(PREFIX, fn, opts) end

-- Where two strings first differ (nil when equal): for big strings that
-- must not be printed.
local function first_diff(a, b)
  if a == b then return nil end
  local n = math.min(#a, #b)
  local step = 4096
  for i = 1, n, step do
    if a:sub(i, i + step - 1) ~= b:sub(i, i + step - 1) then
      for j = i, math.min(i + step - 1, n) do
        if a:byte(j) ~= b:byte(j) then return j end
      end
    end
  end
  return n + 1
end

local function same_big(expected, got, what)
  assert.is_string(got, what)
  assert.are.equal(#expected, #got, what .. ": size")
  local at = first_diff(expected, got)
  assert.is_nil(at, ("%s: content differs at byte %s"):format(what, tostring(at)))
end

-- What io and the shell say about a path: "uid gid ino nlink size mode
-- mtime atime ctime" from stat(1).
local function stat1(path, deref)
  local p = assert(io.popen(("stat %s-c '%%u %%g %%i %%h %%s %%a %%.9Y %%.9X %%.9Z' %s")
    :format(deref and "-L " or "", h.quote(path))))
  local out = p:read("a")
  p:close()
  local t = {}
  for w in out:gmatch("%S+") do t[#t + 1] = w end
  return {
    uid = tonumber(t[1]), gid = tonumber(t[2]), ino = tonumber(t[3]),
    nlink = tonumber(t[4]), size = tonumber(t[5]), mode = tonumber(t[6], 8),
    mtime = tonumber(t[7]), atime = tonumber(t[8]), ctime = tonumber(t[9]),
  }
end

-- Whether 'path' can be opened, asked of io (for use outside tasks).
local function exists_plain(path)
  local f = io.open(path, "r")
  if f then f:close() end
  return f ~= nil
end

-- The names of a listing, sorted, as "name:type".
local function names(list)
  local t = {}
  for _, e in ipairs(list) do t[#t + 1] = e.name .. ":" .. e.type end
  table.sort(t)
  return t
end

-- Waits (at most 's' seconds) for an event of 'w' that 'pred' accepts;
-- returns it.  Raises loom.Timeout if none comes.
local function wait_event(w, s, pred)
  return loom.timeout(s, function()
    for ev in w:events() do
      if pred(ev) then return ev end
    end
    error("the watcher's events ended before the expected event", 0)
  end)
end

-- The mode that io.open gives a new file in 'dir' (0666 less the umask).
local function io_new_mode(dir)
  local p = dir .. "/io-made"
  local f = assert(io.open(p, "w"))
  f:close()
  local m = fs.stat(p).mode
  os.remove(p)
  return m
end

describe("loom.fs", function()
  describe("fs.open modes", function()
    it("'r' reads an existing file; writing gives nil, msg, EBADF; a missing file ENOENT", in_dir(function(d)
      local p = d .. "/r.txt"
      assert.is_true(fs.write_file(p, "hello"))
      local f = assert(fs.open(p, "r"))
      assert.are.equal("hello", f:read())
      fails("EBADF", p, f:write("x"))
      f:close()
      assert.are.equal("hello", fs.read_file(p))
      -- the default mode is "r"
      local g = assert(fs.open(p))
      assert.are.equal("hello", g:read_all())
      fails("EBADF", p, g:write("x"))
      g:close()
      fails("ENOENT", d .. "/missing", fs.open(d .. "/missing", "r"))
    end))

    it("'w' creates or truncates; reading a write-only file gives nil, msg, EBADF", in_dir(function(d)
      local p = d .. "/w.txt"
      assert.is_true(fs.write_file(p, "old content that is long"))
      local f = assert(fs.open(p, "w"))
      assert.are.equal(0, fs.stat(p).size)  -- truncated at open
      fails("EBADF", p, f:read())
      fails("EBADF", p, f:read_line())
      fails("EBADF", p, f:read_all())
      assert.is_true(f:write("new"))
      f:close()
      assert.are.equal("new", fs.read_file(p))
      local q = d .. "/created.txt"
      local g = assert(fs.open(q, "w"))
      assert.is_true(g:write("made"))
      g:close()
      assert.are.equal("made", fs.read_file(q))
    end))

    it("'a' creates, appends, cannot read, and appends even after a seek", in_dir(function(d)
      local p = d .. "/a.txt"
      assert.is_true(fs.write_file(p, "abc"))
      local f = assert(fs.open(p, "a"))
      assert.is_true(f:write("def"))
      assert.are.equal(0, f:seek("set", 0))
      assert.is_true(f:write("X"))
      fails("EBADF", p, f:read())
      f:close()
      assert.are.equal("abcdefX", fs.read_file(p))
      local q = d .. "/new.txt"
      local g = assert(fs.open(q, "a"))
      g:write("1")
      g:close()
      assert.are.equal("1", fs.read_file(q))
    end))

    it("'a': seek() after a write reports the end of the file, as io does", in_dir(function(d)
      local p = d .. "/a.txt"
      assert.is_true(fs.write_file(p, "hello"))
      local f = assert(fs.open(p, "a"))
      assert.is_true(f:write("def"))
      assert.are.equal(8, f:seek())        -- io: 8
      f:seek("set", 0)
      assert.is_true(f:write("X"))
      assert.are.equal(9, f:seek("cur"))   -- io: 9
      f:close()
    end))

    it("'r+' reads and writes without truncating; a missing file is ENOENT", in_dir(function(d)
      local p = d .. "/rp.txt"
      assert.is_true(fs.write_file(p, "0123456789"))
      local f = assert(fs.open(p, "r+"))
      assert.are.equal(10, fs.stat(p).size)
      assert.are.equal("01", f:read(2))
      -- a write goes where the reader is, not where the buffer ends
      assert.is_true(f:write("AB"))
      assert.are.equal(4, f:seek())
      assert.are.equal("45", f:read(2))
      -- writing after a seek overwrites in place
      assert.are.equal(7, f:seek("set", 7))
      assert.is_true(f:write("xyz"))
      assert.are.equal(10, f:seek())
      assert.are.equal(0, f:seek("set"))
      assert.are.equal("01AB456xyz", f:read_all())
      f:close()
      assert.are.equal("01AB456xyz", fs.read_file(p))
      fails("ENOENT", d .. "/none", fs.open(d .. "/none", "r+"))
    end))

    it("'w+' truncates, then reads back what it wrote", in_dir(function(d)
      local p = d .. "/wp.txt"
      assert.is_true(fs.write_file(p, "previous"))
      local f = assert(fs.open(p, "w+"))
      assert.are.equal("", f:read_all())
      assert.is_true(f:write("fresh", " ", "data"))
      assert.are.equal(0, f:seek("set", 0))
      assert.are.equal("fresh data", f:read_all())
      f:close()
      assert.are.equal("fresh data", fs.read_file(p))
    end))

    it("'a+' reads from the start and always writes at the end", in_dir(function(d)
      local p = d .. "/ap.txt"
      assert.is_true(fs.write_file(p, "start"))
      local f = assert(fs.open(p, "a+"))
      assert.are.equal("start", f:read_all())
      assert.is_true(f:write("-end"))
      f:seek("set", 1)
      assert.is_true(f:write("!"))
      assert.are.equal(0, f:seek("set", 0))
      assert.are.equal("start-end!", f:read_all())
      f:close()
      assert.are.equal("start-end!", fs.read_file(p))
      local q = d .. "/new.txt"
      local g = assert(fs.open(q, "a+"))
      g:close()
      assert.is_true(fs.exists(q))
    end))

    for _, m in ipairs { "rb", "wb", "ab", "r+b", "w+b", "a+b" } do
      it(("'%s' behaves as '%s' and keeps bytes unchanged"):format(m, m:gsub("b", "")), in_dir(function(d)
        local bytes = {}
        for i = 0, 255 do bytes[#bytes + 1] = string.char(i) end
        local bin = table.concat(bytes) .. "\r\n\0\r"
        local p = d .. "/bin"
        assert.is_true(fs.write_file(p, "OLD"))
        local f = assert(fs.open(p, m))
        local base = m:sub(1, 1)
        local plus = m:find("+", 1, true) ~= nil
        if base == "r" then
          assert.are.equal("OLD", f:read_all())
          if plus then
            f:seek("set", 0)
            assert.is_true(f:write(bin))
            f:close()
            assert.are.equal(bin, fs.read_file(p))
          else
            fails("EBADF", p, f:write(bin))
            f:close()
          end
        elseif base == "w" then
          assert.is_true(f:write(bin))
          if plus then
            f:seek("set", 0)
            assert.are.equal(bin, f:read_all())
          else
            fails("EBADF", p, f:read())
          end
          f:close()
          assert.are.equal(bin, fs.read_file(p))
        else
          assert.is_true(f:write(bin))
          if plus then
            f:seek("set", 0)
            assert.are.equal("OLD" .. bin, f:read_all())
          else
            fails("EBADF", p, f:read())
          end
          f:close()
          assert.are.equal("OLD" .. bin, fs.read_file(p))
        end
      end))
    end
  end)

  describe("File", function()
    it(":read(n) gives up to n bytes, then nil, msg, 'EOF'", in_dir(function(d)
      local p = d .. "/digits"
      assert.is_true(fs.write_file(p, "0123456789"))
      local f = assert(fs.open(p))
      assert.are.equal("012", f:read(3))
      assert.are.equal("3456", f:read(4))
      assert.are.equal("789", f:read(100))
      fails("EOF", p, f:read(5))
      fails("EOF", p, f:read())
      f:close()
      local g = assert(fs.open(p))
      assert.are.equal("0123456789", g:read())  -- no n: what there is
      fails("EOF", p, g:read())
      g:close()
      local e = d .. "/empty"
      assert.is_true(fs.write_file(e, ""))
      local z = assert(fs.open(e))
      fails("EOF", e, z:read(1))
      z:close()
    end))

    it(":read(0) gives \"\" (up to 0 bytes), as io does", in_dir(function(d)
      local p = d .. "/hello"
      assert.is_true(fs.write_file(p, "hello"))
      local f = assert(fs.open(p))
      assert.are.equal("", f:read(0))
      assert.are.equal("hello", f:read(10))
      f:close()
    end))

    it(":read(n) across many chunks gives every byte in order", in_dir(function(d)
      local parts = {}
      for i = 1, 30000 do parts[i] = ("%06d"):format(i) end
      local data = table.concat(parts)  -- 180000 bytes
      local p = d .. "/seq"
      assert.is_true(fs.write_file(p, data))
      local f = assert(fs.open(p))
      local got = {}
      while true do
        local s, _, code = f:read(7000)
        if not s then assert.are.equal("EOF", code); break end
        assert.is_true(#s > 0 and #s <= 7000)
        got[#got + 1] = s
      end
      f:close()
      same_big(data, table.concat(got), "read(7000) loop")
      assert.is_true(#got >= 180000 // 7000)
    end))

    it(":read_line strips \\n and \\r\\n, gives the last line without newline, then EOF", in_dir(function(d)
      local p = d .. "/lines"
      assert.is_true(fs.write_file(p, "hello\r\nworld\n\nlast"))
      local f = assert(fs.open(p))
      assert.are.equal("hello", f:read_line())
      assert.are.equal("world", f:read_line())
      assert.are.equal("", f:read_line())
      assert.are.equal("last", f:read_line())
      fails("EOF", p, f:read_line())
      f:close()
      local q = d .. "/ends"
      assert.is_true(fs.write_file(q, "one\ntwo\n"))
      local g = assert(fs.open(q))
      assert.are.equal("one", g:read_line())
      assert.are.equal("two", g:read_line())
      fails("EOF", q, g:read_line())
      g:close()
    end))

    it(":read_line joins a line that spans read chunks (a 65536-byte line, the longest)", in_dir(function(d)
      local long = ("x"):rep(65536)
      local p = d .. "/long"
      assert.is_true(fs.write_file(p, "a\n" .. long .. "\r\nz"))
      local f = assert(fs.open(p))
      assert.are.equal("a", f:read_line())
      local l = f:read_line()
      assert.are.equal(65536, #l)
      assert.is_true(l == long)
      assert.are.equal("z", f:read_line())
      fails("EOF", p, f:read_line())
      f:close()
    end))

    it(":lines() iterates every line, across chunk boundaries", in_dir(function(d)
      local parts = {}
      for i = 1, 20000 do parts[i] = "line " .. i end
      local p = d .. "/many"
      assert.is_true(fs.write_file(p, table.concat(parts, "\n") .. "\n"))
      local f = assert(fs.open(p))
      local got = {}
      for l in f:lines() do got[#got + 1] = l end
      f:close()
      assert.are.equal(20000, #got)
      assert.are.equal("line 1", got[1])
      assert.are.equal("line 12345", got[12345])
      assert.are.equal("line 20000", got[20000])
      for i = 1, 20000 do
        if got[i] ~= parts[i] then error(("line %d: %q"):format(i, got[i])) end
      end
      local q = d .. "/crlf"
      assert.is_true(fs.write_file(q, "a\r\nb\n\nc"))
      local g = assert(fs.open(q))
      local t = {}
      for l in g:lines() do t[#t + 1] = l end
      g:close()
      assert.are.same({ "a", "b", "", "c" }, t)
    end))

    it(":read_all() gives the rest of the file, and \"\" at the end", in_dir(function(d)
      local p = d .. "/all"
      local data = ("abcdefgh"):rep(40000)  -- 320000 bytes
      assert.is_true(fs.write_file(p, data))
      local f = assert(fs.open(p))
      assert.are.equal("abc", f:read(3))
      local rest = f:read_all()
      assert.are.equal(#data - 3, #rest)
      assert.is_true(rest == data:sub(4))
      assert.are.equal("", f:read_all())
      f:close()
    end))

    it(":write(data, ...) accepts strings and numbers and returns true", in_dir(function(d)
      local p = d .. "/w"
      local f = assert(fs.open(p, "w"))
      local r = table.pack(f:write("a", 1, 2.5, "b", -3))
      assert.are.equal(1, r.n)
      assert.is_true(r[1])
      assert.is_true(f:write())
      assert.is_true(f:write(""))
      f:close()
      assert.are.equal("a12.5b-3", fs.read_file(p))
    end))

    it(":write of a large string writes all of it", in_dir(function(d)
      local data = ("0123456789abcdef"):rep(256 * KiB)  -- 4 MiB
      local p = d .. "/big"
      local f = assert(fs.open(p, "w"))
      assert.is_true(f:write(data, "END"))
      f:close()
      same_big(data .. "END", fs.read_file(p), "written file")
    end))

    it(":seek(whence, offset) has io semantics and returns the position", in_dir(function(d)
      local p = d .. "/seek"
      assert.is_true(fs.write_file(p, "0123456789"))
      local f = assert(fs.open(p, "r"))
      assert.are.equal(0, f:seek())
      assert.are.equal("012", f:read(3))
      assert.are.equal(3, f:seek())            -- "cur", 0 by default
      assert.are.equal(3, f:seek("cur"))
      assert.are.equal(5, f:seek("cur", 2))
      assert.are.equal("56", f:read(2))
      assert.are.equal(10, f:seek("end"))
      fails("EOF", p, f:read())
      assert.are.equal(8, f:seek("end", -2))
      assert.are.equal("89", f:read())
      assert.are.equal(1, f:seek("set", 1))
      assert.are.equal("1234", f:read(4))
      assert.are.equal(2, f:seek("cur", -3))
      assert.are.equal("23", f:read(2))
      assert.are.equal(20, f:seek("set", 20))  -- past the end: allowed
      fails("EOF", p, f:read())
      fails("EINVAL", p, f:seek("set", -1))
      fails("EINVAL", p, f:seek("cur", -100))
      f:close()
    end))

    it(":seek past the end then write leaves a hole of zeros ('w+')", in_dir(function(d)
      local p = d .. "/hole"
      local f = assert(fs.open(p, "w+"))
      assert.are.equal(4, f:seek("set", 4))
      assert.is_true(f:write("x"))
      assert.are.equal(5, f:seek())
      assert.are.equal(0, f:seek("set"))
      assert.are.equal("\0\0\0\0x", f:read_all())
      f:close()
    end))

    it(":sync() returns true and :stat() describes the open file", in_dir(function(d)
      local p = d .. "/st"
      local f = assert(fs.open(p, "w"))
      assert.is_true(f:write(("z"):rep(1234)))
      assert.is_true(f:sync())
      local st = assert(f:stat())
      assert.are.equal("file", st.type)
      assert.are.equal(1234, st.size)
      assert.are.equal(fs.stat(p).ino, st.ino)
      assert.are.equal("float", math.type(st.mtime))
      f:close()
    end))

    it(":close() twice is harmless; any use after close raises", in_dir(function(d)
      local p = d .. "/c"
      assert.is_true(fs.write_file(p, "x\ny\n"))
      local f = assert(fs.open(p, "r+"))
      assert.is_nil(raised(f.close, f))
      assert.is_nil(raised(f.close, f))
      for name, call in pairs {
        read = function() return f:read() end,
        read_n = function() return f:read(1) end,
        read_line = function() return f:read_line() end,
        read_all = function() return f:read_all() end,
        lines = function() for _ in f:lines() do end end,
        write = function() return f:write("x") end,
        seek = function() return f:seek("set", 0) end,
        sync = function() return f:sync() end,
        stat = function() return f:stat() end,
      } do
        local e = raised(call)
        assert.is_truthy(e, name .. " after close did not raise")
        assert.is_true(has(e, "closed"), name .. ": " .. tostring(e))
      end
      assert.are.equal("x\ny\n", fs.read_file(p))
    end))

    it("<close> closes the file at the end of the block", in_dir(function(d)
      local p = d .. "/tbc"
      local saved
      do
        local f <close> = assert(fs.open(p, "w"))
        assert.is_true(f:write("scoped"))
        saved = f
      end
      assert.is_truthy(raised(function() return saved:write("more") end))
      assert.are.equal("scoped", fs.read_file(p))
      -- and when the block is left by an error
      local ok = pcall(function()
        local g <close> = assert(fs.open(p))
        saved = g
        error("boom")
      end)
      assert.is_false(ok)
      assert.is_true(has(raised(function() return saved:read() end), "closed"))
    end))

    it("reads and writes a named pipe (FIFO), as io.open's files do", in_dir(function(d)
      local p = d .. "/fifo"
      local _, _, status = os.execute("mkfifo " .. h.quote(p))
      if status ~= 0 then return pending("no mkfifo here") end
      -- "r+" opens a FIFO without waiting for a writer (Linux), so that
      -- nothing here can block a worker thread for ever
      local f = assert(fs.open(p, "r+"))
      local w = assert(fs.open(p, "w"))
      local ok, msg, code = w:write("through the pipe\n")
      local line, lmsg, lcode
      if ok then line, lmsg, lcode = loom.timeout(2, f.read_line, f) end
      w:close()
      f:close()
      assert.is_true(ok, ("write: %s %s"):format(tostring(msg), tostring(code)))
      assert.are.equal("through the pipe", line,
        ("read_line: %s %s"):format(tostring(lmsg), tostring(lcode)))
    end))

    it("failures name the file's whole path, even a long one", in_dir(function(d)
      local dir = d .. "/" .. ("n"):rep(200) .. "/" .. ("m"):rep(200)
      assert.is_true(fs.mkdir(dir, { parents = true }))
      local p = dir .. "/file.txt"
      assert.is_true(fs.write_file(p, "abc"))
      local f = assert(fs.open(p, "a"))
      fails("EBADF", p, f:read())
      f:close()
    end))
  end)

  describe("writes behind", function()
    -- 'n' blocks of 'size' bytes, each made of its own number: a block
    -- lost, repeated or out of place changes the whole
    local function blocks(n, size)
      local t = {}
      for i = 1, n do t[i] = ("%07d\n"):format(i):rep(size // 8) end
      return t
    end

    it("reads, seek and stat of the same file see every write before them", in_dir(function(d)
      local p = d .. "/rw.bin"
      local f <close> = assert(fs.open(p, "w+"))
      local t = blocks(96, 64 * KiB)  -- 6 MiB: more than a write waits for
      for i = 1, #t do assert.is_true(f:write(t[i])) end
      assert.are.equal(6 * MiB, f:stat().size)
      assert.are.equal(6 * MiB, f:seek("end"))
      assert.are.equal(0, f:seek("set", 0))
      same_big(table.concat(t), f:read_all(), "read_all after the writes")
      assert.is_true(f:write("tail\n"))
      assert.are.equal(6 * MiB, f:seek("set", 6 * MiB))
      assert.are.equal("tail", f:read_line())
    end))

    it("keeps the order of small and large writes and of seeks between them", in_dir(function(d)
      local p = d .. "/order.bin"
      local f = assert(fs.open(p, "w"))
      local big = ("B"):rep(256 * KiB)
      assert.is_true(f:write("aaaa", big, "cccc"))
      assert.are.equal(1, f:seek("set", 1))
      assert.is_true(f:write("xy"))          -- over the 'a's
      assert.are.equal(4 + 10, f:seek("set", 4 + 10))
      assert.is_true(f:write(("Z"):rep(40 * KiB)))  -- over the 'B's
      for i = 1, 1000 do assert.is_true(f:write(tostring(i % 10))) end
      assert.is_true(f:close())
      local want = "axya" .. big:sub(1, 10) .. ("Z"):rep(40 * KiB)
      local digits = {}
      for i = 1, 1000 do digits[i] = tostring(i % 10) end
      want = want .. table.concat(digits)
      want = want .. ("aaaa" .. big .. "cccc"):sub(#want + 1)
      same_big(want, assert(fs.read_file(p)), "the file")
    end))

    it("in append mode goes to the end, and the position follows", in_dir(function(d)
      local p = d .. "/log"
      assert.is_true(fs.write_file(p, "first\n"))
      local f = assert(fs.open(p, "a+"))
      local t = blocks(40, 64 * KiB)
      for i = 1, #t do assert.is_true(f:write(t[i])) end
      assert.are.equal(6 + 40 * 64 * KiB, f:seek())
      assert.are.equal(6 + 40 * 64 * KiB, f:stat().size)
      assert.is_true(f:close())
      same_big("first\n" .. table.concat(t), assert(fs.read_file(p)), "the log")
    end))

    it("a <close> file in a task has written everything when its scope ends", in_dir(function(d)
      local p = d .. "/scoped.bin"
      local t = blocks(80, 64 * KiB)
      do
        local f <close> = assert(fs.open(p, "w"))
        for i = 1, #t do assert.is_true(f:write(t[i])) end
      end
      same_big(table.concat(t), assert(fs.read_file(p)), "the file")
    end))

    it("a writer cancelled mid-way leaves whole writes, and the file usable", in_dir(function(d)
      local p = d .. "/cancelled.bin"
      local f = assert(fs.open(p, "w"))
      local t = blocks(64, MiB)
      local n = 0
      local writer = loom.spawn(function()
        for i = 1, #t do
          assert(f:write(t[i]))
          n = i
        end
      end)
      while n < 2 do loom.sleep(0) end
      writer:cancel()
      assert.is_true(loom.is_cancelled(select(2, pcall(writer.await, writer))) or writer:done())
      assert.is_true(f:write("end"))
      assert.is_true(f:close())
      local got = assert(fs.read_file(p))
      local whole = (#got - 3) // MiB
      assert.is_true(whole >= n and whole <= #t, "whole writes: " .. whole .. ", done: " .. n)
      assert.are.equal(whole * MiB + 3, #got)
      same_big(table.concat(t, "", 1, whole) .. "end", got, "the file")
    end, { timeout = 60 }))

    it("a failed write is the answer of that write or of the file's next call; close says so too", function()
      -- the limit on a file's size (RLIMIT_FSIZE), with SIGXFSZ ignored,
      -- makes write(2) fail with EFBIG past 1 MiB
      local src = [[
        local fs = loom.fs
        local p = arg[1]
        local f = assert(fs.open(p, "w"))
        local chunk = ("x"):rep(64 * 1024)
        local failed
        for i = 1, 64 do
          local ok, msg, code = f:write(chunk)
          if not ok then failed = ("write %d %s %s"):format(i, code, msg) break end
        end
        local ok, msg, code = f:close()
        print(failed or "all writes true")
        print(ok and "close true" or ("close %s %s"):format(code, msg))
        print(fs.stat(p).size)
      ]]
      local p = h.tmppath()
      local out, err, code = h.pipeline(src,
        "prlimit --fsize=1048576 sh -c 'trap \"\" XFSZ; exec \"$0\" \"$@\"' SCRIPT " .. p)
      os.remove(p)
      assert.are.equal(0, code, err)
      local l = h.lines(out)
      local all_true = l[1] == "all writes true"
      if all_true then
        assert.truthy(l[2]:match("^close EFBIG write '.*': .*"), out)
      else
        assert.truthy(l[1]:match("^write %d+ EFBIG write '.*': .*"), out)
        assert.are.equal("close true", l[2])
      end
      assert.truthy(l[1]:find(p, 1, true) or l[2]:find(p, 1, true), "the message names the file")
      assert.are.equal("1048576", l[3])
    end)

    it("a write to a device that fails is its own answer", in_dir(function()
      local f = assert(fs.open("/dev/full", "w"))
      fails("ENOSPC", "/dev/full", f:write(("x"):rep(100 * KiB)))
      assert.is_true(f:close())
    end))

    it("a state closed while writes are behind waits for the worker, and exits cleanly", function()
      local p = h.tmppath()
      local out, err, code = h.run_src([[
        local f = assert(loom.fs.open(arg[1], "w"))
        local chunk = ("y"):rep(1024 * 1024)
        for _ = 1, 32 do assert(f:write(chunk)) end
        print("queued")
        os.exit(0, true)
      ]], { p })
      local size = h.sh("stat -c %s " .. p)
      os.remove(p)
      assert.are.equal(0, code, err)
      assert.are.equal("queued\n", out)
      local n = tonumber(size)
      assert.is_true(n ~= nil and n % (1024 * 1024) == 0 and n <= 32 * 1024 * 1024, size)
    end)
  end)

  describe("whole-file helpers", function()
    it("write_file / read_file / append_file round-trip and return true", in_dir(function(d)
      local p = d .. "/whole"
      assert.are.same({ true }, { fs.write_file(p, "one\n") })
      assert.are.equal("one\n", fs.read_file(p))
      assert.are.same({ true }, { fs.append_file(p, "two\n") })
      assert.is_true(fs.append_file(p, ""))
      assert.are.equal("one\ntwo\n", fs.read_file(p))
      assert.is_true(fs.write_file(p, "replaced"))
      assert.are.equal("replaced", fs.read_file(p))
      assert.is_true(fs.write_file(p, ""))
      assert.are.equal("", fs.read_file(p))
      local q = d .. "/appended"
      assert.is_true(fs.append_file(q, "created"))
      assert.are.equal("created", fs.read_file(q))
      local bin = "\0\1\2\r\n\255"
      assert.is_true(fs.write_file(q, bin))
      assert.are.equal(bin, fs.read_file(q))
    end))

    it("read_file reads files whose size stat cannot tell (/proc)", async(function()
      local s = assert(fs.read_file("/proc/self/status"))
      assert.is_true(has(s, "VmRSS"))
      local f = assert(io.open("/proc/self/cmdline", "rb"))
      f:close()
      assert.is_true(#assert(fs.read_file("/proc/self/cmdline")) > 0)
    end))

    it("read_file reads a sysfs attribute as io does", async(function()
      local path = "/sys/class/net/lo/address"
      local f = io.open(path, "rb")
      if not f then return pending("no " .. path .. " here") end
      local want = f:read("a")
      f:close()
      local got, msg, code = fs.read_file(path)
      assert.are.equal(want, got, tostring(msg) .. " " .. tostring(code))
    end))

    it("write_file keeps the old file's mode; a new file gets io's mode", in_dir(function(d)
      local p = d .. "/moded"
      assert.is_true(fs.write_file(p, "v1"))
      assert.are.equal(io_new_mode(d), fs.stat(p).mode)
      assert.is_true(fs.chmod(p, tonumber("751", 8)))
      assert.is_true(fs.write_file(p, "v2"))
      assert.are.equal(tonumber("751", 8), fs.stat(p).mode)
      assert.are.equal("v2", fs.read_file(p))
      assert.is_true(fs.chmod(p, tonumber("600", 8)))
      assert.is_true(fs.write_file(p, "v3"))
      assert.are.equal(tonumber("600", 8), fs.stat(p).mode)
    end))

    it("write_file leaves no temporary file behind, on success or failure", in_dir(function(d)
      assert.is_true(fs.write_file(d .. "/target", ("data"):rep(1000)))
      assert.is_true(fs.write_file(d .. "/target", "again"))
      assert.are.same({ "target:file" }, names(fs.list(d)))
      assert.is_true(fs.mkdir(d .. "/adir"))
      fails("EISDIR", d .. "/adir", fs.write_file(d .. "/adir", "x"))
      assert.are.same({ "adir:directory", "target:file" }, names(fs.list(d)))
      fails("ENOENT", d .. "/no/such", fs.write_file(d .. "/no/such", "x"))
      assert.are.same({ "adir:directory", "target:file" }, names(fs.list(d)))
    end))

    it("write_file is atomic: a concurrent reader sees only the old or the new content", in_dir(function(d)
      local p = d .. "/atomic"
      local old = ("A"):rep(16 * MiB)
      local new = ("B"):rep(16 * MiB - 7) .. "the end"
      assert.is_true(fs.write_file(p, old))
      local writing, stop = false, false
      local during, bad = 0, nil
      local reader = loom.spawn(function()
        while not stop do
          local s, msg = fs.read_file(p)
          if s == nil then bad = "read_file failed: " .. tostring(msg); return end
          if s ~= old and s ~= new then
            bad = ("a mixed file: %d bytes, differs from old at %s, from new at %s")
              :format(#s, tostring(first_diff(old, s)), tostring(first_diff(new, s)))
            return
          end
          if writing then during = during + 1 end
          loom.yield()
        end
      end)
      loom.sleep(0.01)
      writing = true
      assert.is_true(fs.write_file(p, new))
      writing = false
      loom.yield()
      stop = true
      reader:await()
      assert.is_nil(bad)
      assert.is_true(during >= 1, "the reader never read while the write ran")
      assert.is_true(fs.read_file(p) == new)
      assert.are.same({ "atomic:file" }, names(fs.list(d)))
    end, { timeout = 30 }))

    it("read_file of a file truncated meanwhile does not crash the process", async(function()
      local dir = assert(fs.mkdtemp(PREFIX))
      local src = [[
        local loom = require "loom"
        local fs = require "loom.fs"
        local p = arg[1]
        local big = string.rep("x", 8 * 1024 * 1024)
        for i = 1, 8 do
          assert(fs.write_file(p, big))
          local t = loom.spawn(function() return fs.read_file(p) end)
          loom.spawn(function() local f = assert(fs.open(p, "w")); f:close() end)
          local s, msg, code = t:await()
          assert(s ~= nil or type(code) == "string", "no value and no code")
        end
        print("survived")
      ]]
      local out, err, code = h.run_src(src, { dir .. "/shrinking" })
      fs.remove(dir, { recursive = true })
      assert.are.equal("survived\n", out, "stderr: " .. err)
      assert.are.equal(0, code)
    end, { timeout = 60 }))
  end)

  describe("large files", function()
    local dir, big_path, big
    local SIZE = 64 * MiB

    lazy_setup(function()
      loom.run(function()
        dir = assert(fs.mkdtemp(PREFIX))
        big_path = dir .. "/big.bin"
        -- 1024 blocks of 64 KiB, each made of its own number: a block
        -- missing, repeated or out of order changes the content
        local blocks = {}
        for i = 1, SIZE // (64 * KiB) do
          blocks[i] = ("%07d\n"):format(i):rep(64 * KiB // 8)
        end
        big = table.concat(blocks)
        assert(#big == SIZE)
        assert(fs.write_file(big_path, big))
      end)
    end)

    lazy_teardown(function()
      loom.run(function()
        if dir then fs.remove(dir, { recursive = true }) end
      end)
      big = nil
      collectgarbage()
    end)

    it("read_file gives all 64 MiB, unchanged", async(function()
      local s = assert(fs.read_file(big_path))
      same_big(big, s, "read_file")
    end, { timeout = 60 }))

    it("a File read in 64 KiB chunks gives all 64 MiB, unchanged", async(function()
      local f = assert(fs.open(big_path, "rb"))
      local pos, chunks = 0, 0
      while true do
        local s, msg, code = f:read(64 * KiB)
        if not s then
          assert.are.equal("EOF", code, msg)
          break
        end
        assert.is_true(#s > 0 and #s <= 64 * KiB, "chunk of " .. #s .. " bytes")
        if s ~= big:sub(pos + 1, pos + #s) then
          error(("chunk %d at %d differs"):format(chunks + 1, pos))
        end
        pos = pos + #s
        chunks = chunks + 1
      end
      f:close()
      assert.are.equal(SIZE, pos)
      assert.is_true(chunks >= SIZE // (64 * KiB))
    end, { timeout = 60 }))

    it("read_file does not hold the file twice: peak RSS stays under ~2x its size", function()
      if os.getenv("LD_PRELOAD") then
        -- the sanitizers' own bookkeeping inflates RSS: checked in the plain run
        pending("peak RSS is checked in the plain run, not under the sanitizers")
        return
      end
      local src = [[
        local fs = require "loom.fs"
        local function status(k)
          local f = io.open("/proc/self/status")
          local s = f:read("a")
          f:close()
          return tonumber(s:match(k .. ":%s*(%d+)")) * 1024
        end
        local before = status("VmHWM")
        local s = assert(fs.read_file(arg[1]))
        local peak = status("VmHWM")
        local rss = status("VmRSS")
        print(#s, before, peak, rss)
      ]]
      local out, err, code = h.run_src(src, { big_path })
      assert.are.equal(0, code, err)
      local n, before, peak, rss = out:match("^(%d+)%s+(%d+)%s+(%d+)%s+(%d+)")
      assert.is_truthy(n, "output: " .. out .. err)
      n, before, peak, rss = tonumber(n), tonumber(before), tonumber(peak), tonumber(rss)
      assert.are.equal(SIZE, n)
      -- the string (1x) plus at most the source it is copied from (1x),
      -- above what the process held before (its libraries: libcurl and
      -- its own are loaded at start), with a few MiB to spare
      assert.is_true(peak < before + 2 * SIZE + 4 * MiB,
        ("peak RSS %.1f MiB for a %d MiB file (before: %.1f MiB)")
          :format(peak / MiB, SIZE // MiB, before / MiB))
      -- once read, only the string is left
      assert.is_true(rss < SIZE + 16 * MiB,
        ("RSS after the read %.1f MiB for a %d MiB file"):format(rss / MiB, SIZE // MiB))
    end)
  end)

  describe("stat, lstat, exists", function()
    it("stat gives type, size, mode, times (float seconds), uid, gid, ino, nlink", in_dir(function(d)
      local p = d .. "/f"
      assert.is_true(fs.write_file(p, "12345"))
      assert.is_true(fs.chmod(p, tonumber("640", 8)))
      local st = assert(fs.stat(p))
      local want = stat1(p)
      assert.are.equal("file", st.type)
      assert.are.equal(5, st.size)
      assert.are.equal(tonumber("640", 8), st.mode)
      assert.are.equal(want.uid, st.uid)
      assert.are.equal(want.gid, st.gid)
      assert.are.equal(want.ino, st.ino)
      assert.are.equal(1, st.nlink)
      for _, k in ipairs { "mtime", "atime", "ctime" } do
        assert.are.equal("float", math.type(st[k]), k)
        assert.is_true(math.abs(st[k] - want[k]) < 1e-5,
          ("%s: %.9f, stat(1) says %.9f"):format(k, st[k], want[k]))
      end
      assert.is_true(math.abs(st.mtime - os.time()) < 60)
      for _, k in ipairs { "size", "mode", "uid", "gid", "ino", "nlink" } do
        assert.are.equal("integer", math.type(st[k]), k)
      end
      local ds = assert(fs.stat(d))
      assert.are.equal("directory", ds.type)
      assert.are.equal(tonumber("700", 8), ds.mode)  -- mkdtemp's
      assert.is_true(fs.mkdir(d .. "/sub"))
      assert.are.equal(3, fs.stat(d).nlink)
    end))

    it("lstat describes a link itself; stat follows it", in_dir(function(d)
      local p = d .. "/target.txt"
      assert.is_true(fs.write_file(p, "0123456789"))
      local l = d .. "/link"
      assert.is_true(fs.symlink("target.txt", l))
      local ls = assert(fs.lstat(l))
      assert.are.equal("link", ls.type)
      assert.are.equal(#"target.txt", ls.size)
      assert.are.equal(stat1(l).ino, ls.ino)
      local st = assert(fs.stat(l))
      assert.are.equal("file", st.type)
      assert.are.equal(10, st.size)
      assert.are.equal(fs.stat(p).ino, st.ino)
      assert.are_not.equal(ls.ino, st.ino)
      assert.are.equal("file", fs.lstat(p).type)
      assert.are.equal("directory", fs.lstat(d).type)
      -- a broken link: lstat works, stat fails
      assert.is_true(fs.symlink("nowhere", d .. "/broken"))
      assert.are.equal("link", fs.lstat(d .. "/broken").type)
      fails("ENOENT", d .. "/broken", fs.stat(d .. "/broken"))
    end))

    it("exists is a boolean: files, folders, links (even broken) but not missing paths", in_dir(function(d)
      assert.is_true(fs.write_file(d .. "/f", ""))
      assert.is_true(fs.symlink("gone", d .. "/dangling"))
      assert.are.equal(true, fs.exists(d .. "/f"))
      assert.are.equal(true, fs.exists(d))
      assert.are.equal(true, fs.exists(d .. "/dangling"))
      assert.are.equal(false, fs.exists(d .. "/missing"))
      assert.are.equal(false, fs.exists(d .. "/f/under-a-file"))
    end))
  end)

  describe("folders", function()
    it("list gives {name=, type=} for each entry; dir iterates the same", in_dir(function(d)
      assert.is_true(fs.write_file(d .. "/a.txt", "a"))
      assert.is_true(fs.mkdir(d .. "/sub"))
      assert.is_true(fs.symlink("a.txt", d .. "/ln"))
      assert.is_true(fs.write_file(d .. "/.hidden", ""))
      local list = assert(fs.list(d))
      assert.are.equal(4, #list)
      assert.are.same({ ".hidden:file", "a.txt:file", "ln:link", "sub:directory" }, names(list))
      local it = {}
      for e in fs.dir(d) do it[#it + 1] = e end
      assert.are.same(names(list), names(it))
      assert.are.same({}, fs.list(d .. "/sub"))
      local n = 0
      for _ in fs.dir(d .. "/sub") do n = n + 1 end
      assert.are.equal(0, n)
    end))

    it("list of a missing folder is ENOENT; dir raises naming it", in_dir(function(d)
      fails("ENOENT", d .. "/nope", fs.list(d .. "/nope"))
      assert.is_true(fs.write_file(d .. "/file", ""))
      fails("ENOTDIR", d .. "/file", fs.list(d .. "/file"))
      local e = raised(fs.dir, d .. "/nope")
      assert.is_true(has(e, d .. "/nope"), tostring(e))
    end))

    it("mkdir makes a folder; an existing one is EEXIST; parents=true makes the chain", in_dir(function(d)
      local p = d .. "/one"
      assert.are.same({ true }, { fs.mkdir(p) })
      assert.are.equal("directory", fs.stat(p).type)
      fails("EEXIST", p, fs.mkdir(p))
      fails("ENOENT", d .. "/a/b/c", fs.mkdir(d .. "/a/b/c"))
      assert.is_false(fs.exists(d .. "/a"))
      assert.is_true(fs.mkdir(d .. "/a/b/c", { parents = true }))
      assert.are.equal("directory", fs.stat(d .. "/a/b/c").type)
      assert.is_true(fs.mkdir(d .. "/a/b/c", { parents = true }))  -- already there
      assert.is_true(fs.mkdir(d .. "/a//b/./d/", { parents = true }))
      assert.are.equal("directory", fs.stat(d .. "/a/b/d").type)
      assert.is_true(fs.write_file(d .. "/file", ""))
      fails("EEXIST", d .. "/file", fs.mkdir(d .. "/file", { parents = true }))
      fails("ENOTDIR", nil, fs.mkdir(d .. "/file/x", { parents = true }))
      assert.is_true(fs.mkdir(d .. "/private", { mode = tonumber("700", 8) }))
      assert.are.equal(tonumber("700", 8), fs.stat(d .. "/private").mode)
    end))

    it("remove takes a file, an empty folder, a link (not what it points to)", in_dir(function(d)
      assert.is_true(fs.write_file(d .. "/f", "x"))
      assert.are.same({ true }, { fs.remove(d .. "/f") })
      assert.is_false(fs.exists(d .. "/f"))
      assert.is_true(fs.mkdir(d .. "/empty"))
      assert.is_true(fs.remove(d .. "/empty"))
      assert.is_false(fs.exists(d .. "/empty"))
      assert.is_true(fs.mkdir(d .. "/real"))
      assert.is_true(fs.write_file(d .. "/real/keep", "k"))
      assert.is_true(fs.symlink("real", d .. "/ln"))
      assert.is_true(fs.remove(d .. "/ln"))
      assert.is_false(fs.exists(d .. "/ln"))
      assert.are.equal("k", fs.read_file(d .. "/real/keep"))
      fails("ENOENT", d .. "/f", fs.remove(d .. "/f"))
    end))

    it("remove of a non-empty folder is ENOTEMPTY without recursive", in_dir(function(d)
      assert.is_true(fs.mkdir(d .. "/full"))
      assert.is_true(fs.write_file(d .. "/full/x", "x"))
      fails("ENOTEMPTY", d .. "/full", fs.remove(d .. "/full"))
      assert.are.equal("x", fs.read_file(d .. "/full/x"))
      assert.is_true(fs.remove(d .. "/full", { recursive = true }))
      assert.is_false(fs.exists(d .. "/full"))
    end))

    it("a recursive remove takes a tree 50 levels deep with files at each level", in_dir(function(d)
      local top = d .. "/deep"
      local p = top
      for i = 1, 50 do
        assert.is_true(fs.mkdir(p))
        assert.is_true(fs.write_file(p .. "/file" .. i, ("%d"):format(i)))
        assert.is_true(fs.write_file(p .. "/other", ""))
        if i % 10 == 0 then assert.is_true(fs.mkdir(p .. "/side")) end
        p = p .. "/l" .. i
      end
      assert.are.equal("50", fs.read_file(p:gsub("/l50$", "") .. "/file50"))
      assert.is_true(fs.remove(top, { recursive = true }))
      assert.is_false(fs.exists(top))
      assert.are.same({}, fs.list(d))
    end, { timeout = 20 }))

    it("a recursive remove does not follow links to folders outside", in_dir(function(d)
      assert.is_true(fs.mkdir(d .. "/outside"))
      assert.is_true(fs.write_file(d .. "/outside/precious", "keep me"))
      assert.is_true(fs.mkdir(d .. "/tree/sub", { parents = true }))
      assert.is_true(fs.symlink(d .. "/outside", d .. "/tree/sub/link"))
      assert.is_true(fs.remove(d .. "/tree", { recursive = true }))
      assert.is_false(fs.exists(d .. "/tree"))
      assert.are.equal("keep me", fs.read_file(d .. "/outside/precious"))
    end))

    it("mkdtemp makes a new private folder named prefix + 6 characters", in_dir(function(d)
      local a = assert(fs.mkdtemp(d .. "/tmp-"))
      local b = assert(fs.mkdtemp(d .. "/tmp-"))
      assert.are_not.equal(a, b)
      for _, p in ipairs { a, b } do
        assert.is_truthy(p:match("^" .. d:gsub("%p", "%%%0") .. "/tmp%-[%w]+$"), p)
        assert.are.equal(#(d .. "/tmp-") + 6, #p)
        local st = fs.stat(p)
        assert.are.equal("directory", st.type)
        assert.are.equal(tonumber("700", 8), st.mode)
      end
      assert.are.same({}, fs.list(a))
      fails("ENOENT", d .. "/no/x-", fs.mkdtemp(d .. "/no/x-"))
    end))
  end)

  describe("names and links", function()
    it("rename moves a file, replacing the target; a missing source is ENOENT", in_dir(function(d)
      assert.is_true(fs.write_file(d .. "/a", "A"))
      assert.is_true(fs.write_file(d .. "/b", "B"))
      assert.are.same({ true }, { fs.rename(d .. "/a", d .. "/c") })
      assert.is_false(fs.exists(d .. "/a"))
      assert.are.equal("A", fs.read_file(d .. "/c"))
      assert.is_true(fs.rename(d .. "/c", d .. "/b"))
      assert.are.equal("A", fs.read_file(d .. "/b"))
      assert.are.same({ "b:file" }, names(fs.list(d)))
      assert.is_true(fs.mkdir(d .. "/dir"))
      assert.is_true(fs.rename(d .. "/dir", d .. "/moved"))
      assert.are.equal("directory", fs.stat(d .. "/moved").type)
      fails("ENOENT", d .. "/a", fs.rename(d .. "/a", d .. "/z"))
    end))

    it("copy duplicates the content and keeps the source; overwrites the target", in_dir(function(d)
      local data = ("copy me\n"):rep(50000)
      assert.is_true(fs.write_file(d .. "/src", data))
      assert.are.same({ true }, { fs.copy(d .. "/src", d .. "/dst") })
      assert.is_true(fs.read_file(d .. "/dst") == data)
      assert.is_true(fs.read_file(d .. "/src") == data)
      assert.are_not.equal(fs.stat(d .. "/src").ino, fs.stat(d .. "/dst").ino)
      assert.is_true(fs.write_file(d .. "/small", "s"))
      assert.is_true(fs.copy(d .. "/small", d .. "/dst"))
      assert.are.equal("s", fs.read_file(d .. "/dst"))
      fails("ENOENT", d .. "/nope", fs.copy(d .. "/nope", d .. "/x"))
      assert.is_false(fs.exists(d .. "/x"))
    end))

    it("symlink, readlink and realpath", in_dir(function(d)
      local real = assert(fs.realpath(d))
      assert.are.equal("/", real:sub(1, 1))
      assert.is_true(fs.mkdir(d .. "/sub"))
      assert.is_true(fs.write_file(d .. "/sub/file", "via link"))
      assert.are.same({ true }, { fs.symlink("sub/file", d .. "/rel") })
      assert.is_true(fs.symlink(d .. "/sub", d .. "/abs"))
      assert.are.equal("sub/file", fs.readlink(d .. "/rel"))
      assert.are.equal(d .. "/sub", fs.readlink(d .. "/abs"))
      assert.are.equal("via link", fs.read_file(d .. "/rel"))
      assert.are.equal("via link", fs.read_file(d .. "/abs/file"))
      assert.are.equal(real .. "/sub/file", fs.realpath(d .. "/rel"))
      assert.are.equal(real .. "/sub/file", fs.realpath(d .. "/abs/../sub/./file"))
      assert.are.equal(real .. "/sub", fs.realpath(d .. "/abs"))
      fails("EINVAL", d .. "/sub/file", fs.readlink(d .. "/sub/file"))
      fails("EEXIST", d .. "/rel", fs.symlink("x", d .. "/rel"))
      fails("ENOENT", d .. "/nope", fs.readlink(d .. "/nope"))
      fails("ENOENT", d .. "/nope", fs.realpath(d .. "/nope"))
    end))

    it("chmod sets the mode that stat then reports", in_dir(function(d)
      local p = d .. "/m"
      assert.is_true(fs.write_file(p, ""))
      for _, m in ipairs { "640", "600", "755", "444", "4711", "0" } do
        assert.are.same({ true }, { fs.chmod(p, tonumber(m, 8)) })
        assert.are.equal(tonumber(m, 8), fs.stat(p).mode, m)
        assert.are.equal(tonumber(m, 8), stat1(p).mode, m)
      end
      assert.is_true(fs.chmod(d, tonumber("711", 8)))
      assert.are.equal(tonumber("711", 8), fs.stat(d).mode)
      assert.is_true(fs.chmod(d, tonumber("700", 8)))
      fails("ENOENT", d .. "/nope", fs.chmod(d .. "/nope", tonumber("644", 8)))
    end))
  end)

  describe("watch", function()
    it("sees a write to a file of the watched folder", in_dir(function(d)
      local p = d .. "/watched.txt"
      assert.is_true(fs.write_file(p, "one"))
      local w = assert(fs.watch(d))
      assert(fs.append_file(p, " two"))  -- queued until read
      local ev = wait_event(w, 10, function(e) return e.path == p end)
      assert.are.equal("change", ev.change)
      w:close()
    end))

    it("sees a rename: both names, as 'rename'", in_dir(function(d)
      local a, b = d .. "/before.txt", d .. "/after.txt"
      assert.is_true(fs.write_file(a, "x"))
      local w = assert(fs.watch(d))
      assert(fs.rename(a, b))  -- queued until read
      local seen = {}
      wait_event(w, 10, function(e)
        if e.change == "rename" then seen[e.path] = true end
        return seen[a] and seen[b]
      end)
      assert.is_true(seen[a] and seen[b])
      w:close()
    end))

    it("watching a file gives events whose path is that file", in_dir(function(d)
      local p = d .. "/single.txt"
      assert.is_true(fs.write_file(p, "one"))
      local w = assert(fs.watch(p))
      assert(fs.append_file(p, " two"))  -- queued until read
      local ev = loom.timeout(10, function()
        local next_event = w:events()
        return next_event()
      end)
      w:close()
      assert.is_table(ev)
      assert.are.equal("change", ev.change)
      assert.are.equal(p, ev.path)
    end))

    it("close ends the iteration of a task waiting for events", in_dir(function(d)
      local w = assert(fs.watch(d))
      local reader = loom.spawn(function()
        local n = 0
        for _ in w:events() do n = n + 1 end
        return "ended", n
      end)
      h.settle()
      assert.is_false(reader:done())
      w:close()
      local r = table.pack(loom.wait_for(reader, 1))
      assert.are.equal("ended", r[1])
      assert.are.equal(0, r[2])
      assert.is_nil(raised(w.close, w))  -- twice is harmless
      local n = 0
      for _ in w:events() do n = n + 1 end
      assert.are.equal(0, n)
    end))

    it("a missing path gives nil, msg, ENOENT", in_dir(function(d)
      fails("ENOENT", d .. "/nope", fs.watch(d .. "/nope"))
    end))

    it("recursive=true sees a change in a subfolder", in_dir(function(d)
      assert.is_true(fs.mkdir(d .. "/sub/deeper", { parents = true }))
      local p = d .. "/sub/deeper/x.txt"
      assert.is_true(fs.write_file(p, "1"))
      local w = assert(fs.watch(d, { recursive = true }))
      assert(fs.append_file(p, "2"))  -- queued until read
      local ev = wait_event(w, 10, function(e) return e.path == p end)
      assert.are.equal("change", ev.change)
      w:close()
      -- without recursive, the same change is not seen
      local w2 = assert(fs.watch(d))
      assert(fs.append_file(p, "3"))
      -- events come in order: by a later one in the folder itself, an
      -- event for the change below would have come
      assert.is_true(fs.write_file(d .. "/marker", "m"))
      local below = false
      wait_event(w2, 10, function(x)
        if x.path == p then below = true end
        return x.path == d .. "/marker"
      end)
      w2:close()
      assert.is_false(below)
    end))
  end)

  describe("errors", function()
    it("a missing file: nil, a message naming the path, ENOENT", in_dir(function(d)
      local p = d .. "/missing.txt"
      fails("ENOENT", p, fs.open(p))
      fails("ENOENT", p, fs.read_file(p))
      fails("ENOENT", p, fs.stat(p))
      fails("ENOENT", p, fs.lstat(p))
      fails("ENOENT", p, fs.list(p))
      fails("ENOENT", p, fs.remove(p))
      fails("ENOENT", p, fs.rename(p, d .. "/x"))
      fails("ENOENT", p, fs.copy(p, d .. "/x"))
      fails("ENOENT", p, fs.readlink(p))
      fails("ENOENT", p, fs.realpath(p))
      fails("ENOENT", p, fs.chmod(p, tonumber("644", 8)))
      fails("ENOENT", p, fs.watch(p))
      local q = d .. "/no/such/dir/file"
      fails("ENOENT", q, fs.write_file(q, "x"))
      fails("ENOENT", q, fs.append_file(q, "x"))
      fails("ENOENT", q, fs.open(q, "w"))
      local msg = select(2, fs.open(p))
      assert.are.equal(("open '%s': no such file or directory"):format(p), msg)
    end))

    it("a folder where a file is expected: EISDIR", in_dir(function(d)
      fails("EISDIR", d, fs.read_file(d))
      fails("EISDIR", d, fs.open(d, "w"))
      fails("EISDIR", d, fs.open(d, "a"))
      fails("EISDIR", d, fs.open(d, "r+"))
      fails("EISDIR", d, fs.append_file(d, "x"))
      fails("EISDIR", d, fs.write_file(d, "x"))
      local f, msg = fs.open(d, "r")
      if f then  -- as io.open, opening a folder to read may work: reading fails
        fails("EISDIR", d, f:read())
        f:close()
      else
        assert.is_true(has(msg, d))
      end
    end))

    it("permission denied: EACCES with the path", in_dir(function(d)
      local root = os.getenv("USER") == "root"
      if not root then
        local p = d .. "/locked"
        assert.is_true(fs.write_file(p, "secret"))
        assert.is_true(fs.chmod(p, 0))
        local f = io.open(p, "r")
        if f then f:close(); root = true end
        if not root then
          fails("EACCES", p, fs.open(p))
          fails("EACCES", p, fs.read_file(p))
          fails("EACCES", p, fs.open(p, "w"))
          fails("EACCES", p, fs.append_file(p, "x"))
          return
        end
      end
      -- root bypasses file modes; another process's environment is
      -- still refused where ptrace rules apply (reading only)
      local p = "/proc/1/environ"
      local f, msg = io.open(p, "rb")
      if f then f:close() end
      if f or not has(msg, "Permission denied") then
        return pending("runs as root: permission checks do not apply to root")
      end
      fails("EACCES", p, fs.open(p))
      fails("EACCES", p, fs.read_file(p))
    end))
  end)

  describe("bad input raises naming the function", function()
    local cases = {
      { "fs.open", function() return fs.open(42) end },
      { "fs.open", function(d) return fs.open(d .. "/f", 3) end },
      { "fs.open", function(d) return fs.open(d .. "/f", "rw") end, "invalid mode" },
      { "fs.open", function(d) return fs.open(d .. "/f", "x") end, "invalid mode" },
      { "fs.open", function(d) return fs.open(d .. "/f", "") end, "invalid mode" },
      { "fs.read_file", function() return fs.read_file(nil) end },
      { "fs.write_file", function() return fs.write_file({}, "x") end },
      { "fs.write_file", function(d) return fs.write_file(d .. "/f", {}) end },
      { "fs.append_file", function(d) return fs.append_file(d .. "/f", nil) end },
      { "fs.stat", function() return fs.stat(1) end },
      { "fs.lstat", function() return fs.lstat(false) end },
      { "fs.exists", function() return fs.exists(nil) end },
      { "fs.list", function() return fs.list({}) end },
      { "fs.dir", function() return fs.dir(7) end },
      { "fs.mkdir", function() return fs.mkdir(nil) end },
      { "fs.mkdir", function(d) return fs.mkdir(d .. "/x", "parents") end },
      { "fs.remove", function() return fs.remove(1) end },
      { "fs.remove", function(d) return fs.remove(d .. "/x", true) end },
      { "fs.rename", function(d) return fs.rename(d, nil) end },
      { "fs.copy", function(d) return fs.copy(nil, d) end },
      { "fs.symlink", function(d) return fs.symlink(1, d .. "/l") end },
      { "fs.readlink", function() return fs.readlink(nil) end },
      { "fs.realpath", function() return fs.realpath(nil) end },
      { "fs.chmod", function(d) return fs.chmod(d, "644") end },
      { "fs.chmod", function(d) return fs.chmod(d, 1.5) end },
      { "fs.chmod", function(d) return fs.chmod(d, tonumber("10000", 8)) end },
      { "fs.mkdtemp", function() return fs.mkdtemp(nil) end },
      { "fs.watch", function() return fs.watch(nil) end },
      { "fs.watch", function(d) return fs.watch(d, "recursive") end },
    }
    for i, c in ipairs(cases) do
      it(("%s (case %d)"):format(c[1], i), in_dir(function(d)
        local e = raised(c[2], d)
        assert.is_truthy(e, c[1] .. " did not raise")
        assert.is_true(has(e, "'" .. c[1] .. "'"), e)
        if c[3] then assert.is_true(has(e, c[3]), e) end
      end))
    end

    it("File methods name themselves", in_dir(function(d)
      local f = assert(fs.open(d .. "/f", "w+"))
      for name, call in pairs {
        read = function() return f:read(-1) end,
        write = function() return f:write({}) end,
        seek = function() return f:seek("bogus") end,
      } do
        local e = raised(call)
        assert.is_truthy(e, name .. " did not raise")
        assert.is_true(has(e, "'file:" .. name .. "'"), e)
      end
      assert.is_true(has(raised(function() return f:read(1.5) end), "'file:read'"))
      assert.is_true(has(raised(function() return f:write(true) end), "'file:write'"))
      assert.is_true(has(raised(function() return f:seek("set", "x") end), "'file:seek'"))
      f:close()
    end))
  end)

  describe("outside a task", function()
    local p = "/tmp/loom-fs-spec-outside"
    local calls = {
      { "fs.open", function() return fs.open(p) end },
      { "fs.read_file", function() return fs.read_file(p) end },
      { "fs.write_file", function() return fs.write_file(p, "x") end },
      { "fs.append_file", function() return fs.append_file(p, "x") end },
      { "fs.stat", function() return fs.stat(p) end },
      { "fs.lstat", function() return fs.lstat(p) end },
      { "fs.exists", function() return fs.exists(p) end },
      { "fs.list", function() return fs.list("/tmp") end },
      { "fs.dir", function() return fs.dir("/tmp") end },
      { "fs.mkdir", function() return fs.mkdir(p) end },
      { "fs.remove", function() return fs.remove(p) end },
      { "fs.rename", function() return fs.rename(p, p .. "2") end },
      { "fs.copy", function() return fs.copy(p, p .. "2") end },
      { "fs.symlink", function() return fs.symlink(p, p .. "2") end },
      { "fs.readlink", function() return fs.readlink(p) end },
      { "fs.realpath", function() return fs.realpath("/tmp") end },
      { "fs.chmod", function() return fs.chmod(p, tonumber("644", 8)) end },
      { "fs.mkdtemp", function() return fs.mkdtemp(p) end },
      { "fs.watch", function()
          local w = fs.watch("/tmp")
          if w then w:close() end
          return w
        end },
    }
    for _, c in ipairs(calls) do
      it(c[1] .. " raises 'called outside a task'", function()
        local e = raised(c[2])
        assert.is_truthy(e, c[1] .. " did not raise")
        assert.is_true(has(e, ("loom: %s called outside a task (use loom.run or the loom binary)")
          :format(c[1])), e)
        assert.is_false(exists_plain(p), "it made " .. p)
        assert.is_false(exists_plain(p .. "2"), "it made " .. p .. "2")
      end)
    end

    it("a File's reads and writes raise outside a task", function()
      local dir = loom.run(function() return assert(fs.mkdtemp(PREFIX)) end)
      local path = dir .. "/f"
      local f = loom.run(function()
        assert(fs.write_file(path, "content"))
        return assert(fs.open(path, "r+"))
      end)
      local er = raised(function() return f:read() end)
      local ew = raised(function() return f:write("x") end)
      f:close()
      loom.run(function() fs.remove(dir, { recursive = true }) end)
      assert.is_true(has(er, "called outside a task"), "read: " .. tostring(er))
      assert.is_true(has(ew, "called outside a task"), "write: " .. tostring(ew))
    end)
  end)
end)
