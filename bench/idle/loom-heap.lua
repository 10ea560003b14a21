-- idle, where loom's bytes go: echo/loom.lua with a count of the
-- connections it holds and readings of its Lua heap and VmRSS.
-- Run as: IDLE_N=10000 build/loom bench/idle/loom-heap.lua
-- then:   bench/.build/idle-client 127.0.0.1 PORT 10000
-- Prints: port=P, and once it holds IDLE_N connections (and 0.5 s later)
--   conns=N lua_bytes=L lua_bytes_before_gc=G rss_bytes=R
-- each per connection over the same server before the first one: L the
-- Lua heap after a full collection, G before it, R the VmRSS.
-- Runs until killed.

local N = math.tointeger(tonumber(os.getenv("IDLE_N"))) or 1000
local held = 0

local function echo(s)
  held = held + 1
  while true do
    local data = s:read()
    if not data then break end
    if not s:write(data) then break end
  end
end

local function lua_kib()
  collectgarbage("collect")
  collectgarbage("collect")
  return collectgarbage("count")
end

local function rss_kib()
  for line in io.lines("/proc/self/status") do
    local v = line:match("^VmRSS:%s+(%d+)")
    if v then return tonumber(v) end
  end
end

local server = loom.net.listen("127.0.0.1", 0, echo)
local _, bound = server:address()
loom.sleep(0.2)
local lua0, rss0 = lua_kib(), rss_kib()
print(("port=%d"):format(bound))
io.stdout:flush()

while held < N do loom.sleep(0.02) end
loom.sleep(0.5)
local before = collectgarbage("count")
local rss = rss_kib()
local lua = lua_kib()
local function per(kib, kib0)
  return ("%.0f"):format((kib - kib0) * 1024 / N)
end
print(("conns=%d lua_bytes=%s lua_bytes_before_gc=%s rss_bytes=%s"):format(
  N, per(lua, lua0), per(before, lua0), per(rss, rss0)))
io.stdout:flush()

while server do
  loom.sleep(3600)
end
