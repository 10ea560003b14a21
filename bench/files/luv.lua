-- files peer: read a file in 64 KiB chunks, then write it back to a second
-- file in 64 KiB chunks, on luv (libuv bindings for stock Lua, Debian
-- package lua-luv), in one coroutine resumed by luv's callbacks.
-- Run as: lua5.4 bench/files/luv.lua IN OUT [BYTES]
-- Prints: bytes=N read_s=R write_s=W sum=S chunk=65536 cpu_read=C
--         cpu_write=C clock=uv_hrtime (on one line)
--
-- 1. read phase (timed): uv.fs_open(IN), uv.fs_read(fd, 65536, offset, cb)
--    until it returns "", adding the check sum of every chunk
--    (bench/files/gen.c), uv.fs_close.
-- 2. load (not timed): read IN again with luv's synchronous calls (no
--    callback), the chunks kept in a table, so that the write phase has the
--    file's bytes to write back.
-- 3. write phase (timed): uv.fs_open(OUT, "w"), uv.fs_write(fd, chunk,
--    offset, cb) for each chunk, uv.fs_close. No sync: the data goes into
--    the page cache.
-- With a callback each request runs on libuv's thread pool, as loom's and
-- Node's would. bench/run checks N and S and compares OUT with IN byte for
-- byte. BYTES is not used here (the run script passes it to every contender).

local uv = require("luv")

local CHUNK = 65536
local STEP = 16384

local input = assert(arg and arg[1], "usage: luv.lua IN OUT [BYTES]")
local output = assert(arg[2], "usage: luv.lua IN OUT [BYTES]")

local byte = string.byte

-- The check sum of 'chunk', found at file offset 'off', added to 's'.
local function sample(chunk, off, s)
  local at = (off + STEP - 1) // STEP * STEP
  local last = off + #chunk - 1
  while at <= last do
    s = s + byte(chunk, at - off + 1) * (at // STEP + 1)
    at = at + STEP
  end
  return s
end

-- One coroutine does the work; every request gets the same callback, which
-- resumes it with the request's (err, result).
local co, failure

local function cb(err, res)
  local ok, e = coroutine.resume(co, err, res)
  if not ok then failure = debug.traceback(co, e) end
end

-- Waits for the request just issued with 'cb'.
local function wait()
  local err, res = coroutine.yield()
  if err then error(err, 2) end
  return res
end

local function main()
  -- 1. read
  local t0, c0 = uv.hrtime(), os.clock()
  local total, sum = 0, 0
  uv.fs_open(input, "r", 420, cb)
  local fd = wait()
  while true do
    uv.fs_read(fd, CHUNK, total, cb)
    local chunk = wait()
    if #chunk == 0 then break end
    sum = sample(chunk, total, sum)
    total = total + #chunk
  end
  uv.fs_close(fd, cb)
  wait()
  local t1, c1 = uv.hrtime(), os.clock()

  -- 2. load
  local chunks, have = {}, 0
  fd = assert(uv.fs_open(input, "r", 420))
  while true do
    local chunk = assert(uv.fs_read(fd, CHUNK, have))
    if #chunk == 0 then break end
    chunks[#chunks + 1] = chunk
    have = have + #chunk
  end
  assert(uv.fs_close(fd))
  assert(have == total, "the input changed size between reads")

  -- 3. write
  local t2, c2 = uv.hrtime(), os.clock()
  uv.fs_open(output, "w", 420, cb)
  fd = wait()
  local at = 0
  for i = 1, #chunks do
    local chunk = chunks[i]
    local done = 0
    while done < #chunk do
      uv.fs_write(fd, done == 0 and chunk or chunk:sub(done + 1), at, cb)
      local n = wait()
      done = done + n
      at = at + n
    end
  end
  uv.fs_close(fd, cb)
  wait()
  local t3, c3 = uv.hrtime(), os.clock()

  print(string.format(
    "bytes=%d read_s=%.6f write_s=%.6f sum=%d chunk=%d cpu_read=%.6f "
      .. "cpu_write=%.6f clock=uv_hrtime",
    total, (t1 - t0) / 1e9, (t3 - t2) / 1e9, sum, CHUNK, c1 - c0, c3 - c2))
end

co = coroutine.create(main)
local ok, e = coroutine.resume(co)
if not ok then failure = debug.traceback(co, e) end
uv.run()
if failure then
  io.stderr:write("luv.lua: ", failure, "\n")
  os.exit(1)
end
if coroutine.status(co) ~= "dead" then
  io.stderr:write("luv.lua: the loop ended before the work did\n")
  os.exit(1)
end
