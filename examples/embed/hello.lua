-- hello.lua: run by examples/embed/minimal
local t = loom.spawn(function(name)
  loom.sleep(0.01)
  return "hello, " .. name
end, "embedder")
print(t:await())
