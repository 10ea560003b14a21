-- files: read a file in 64 KiB chunks, then write it back to a second file
-- in 64 KiB chunks, through loom.fs.
-- Run as: build/loom bench/files/loom.lua IN OUT [BYTES]
-- Prints: bytes=N read_s=R write_s=W sum=S chunk=65536 cpu_read=C
--         cpu_write=C clock=loom.now (on one line)
--
-- 1. read phase (timed): fs.open(IN, "r"), f:read(65536) until EOF, adding
--    the check sum of every chunk (bench/files/gen.c: the byte at each
--    multiple of 16384, weighted by its position), close.
-- 2. load (not timed): the same reads again, the chunks kept in a table, so
--    the write phase has the file's bytes to write back.
-- 3. write phase (timed): fs.open(OUT, "w"), out:write(chunk) for each
--    chunk, close. No sync: the data goes into the page cache.
-- bench/run checks N and S and compares OUT with IN byte for byte. BYTES
-- is not used here (the run script passes it to every contender).

local fs = loom.fs
local CHUNK = 65536
local STEP = 16384

local input = assert(arg and arg[1], "usage: loom.lua IN OUT [BYTES]")
local output = assert(arg[2], "usage: loom.lua IN OUT [BYTES]")

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

-- loom.now() is the loop's cached time; a zero sleep yields through the
-- loop once, which refreshes it.
local function stamp()
  loom.sleep(0)
  return loom.now(), os.clock()
end

-- f:read(n) is nil, msg, "EOF" at the end; any other failure is an error.
local function next_chunk(f)
  local chunk, err, code = f:read(CHUNK)
  if chunk then return chunk end
  if code ~= "EOF" then error(err, 2) end
  return nil
end

-- 1. read
local t0, c0 = stamp()
local total, sum = 0, 0
do
  local f <close> = assert(fs.open(input, "r"))
  while true do
    local chunk = next_chunk(f)
    if not chunk then break end
    sum = sample(chunk, total, sum)
    total = total + #chunk
  end
end
local t1, c1 = stamp()

-- 2. load
local chunks, have = {}, 0
do
  local f <close> = assert(fs.open(input, "r"))
  while true do
    local chunk = next_chunk(f)
    if not chunk then break end
    chunks[#chunks + 1] = chunk
    have = have + #chunk
  end
end
assert(have == total, "the input changed size between reads")

-- 3. write
local t2, c2 = stamp()
do
  local out <close> = assert(fs.open(output, "w"))
  for i = 1, #chunks do
    assert(out:write(chunks[i]))
  end
end
local t3, c3 = stamp()

print(string.format(
  "bytes=%d read_s=%.6f write_s=%.6f sum=%d chunk=%d cpu_read=%.6f "
    .. "cpu_write=%.6f clock=loom.now",
  total, t1 - t0, t3 - t2, sum, CHUNK, c1 - c0, c3 - c2))
