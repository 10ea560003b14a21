-- sleepers.lua: two tasks sleeping 2 s and 1 s finish in about 2 s,
-- because they sleep at the same time (asyncio's "hello world").
local start = loom.now()

local function say_after(delay, what)
  loom.sleep(delay)
  print(("%.1f %s"):format(loom.now() - start, what))
end

local t1 = loom.spawn(say_after, 2, "world")
local t2 = loom.spawn(say_after, 1, "hello")
t1:await()
t2:await()
print(("finished in %.1f s"):format(loom.now() - start))
