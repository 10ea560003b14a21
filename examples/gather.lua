-- gather.lua: greetings gathered from tasks that finish in any order;
-- the results come back in the order they were asked for.
local function greet(name, delay)
  loom.sleep(delay)
  print("  " .. name .. " is ready")
  return "hello, " .. name
end

local start = loom.now()
local a, b, c = loom.gather(
  function() return greet("ada", 0.3) end,
  function() return greet("brian", 0.1) end,
  function() return greet("carla", 0.2) end)
print(a)
print(b)
print(c)
print(("all three in %.1f s"):format(loom.now() - start))
