-- sensor.lua: 100 concurrent tasks each read a sensor through the C
-- function sensor.read, which a worker thread completes after 10 ms.
local t0 = loom.now()
local tasks = {}
for id = 1, 100 do
  tasks[id] = loom.spawn(sensor.read, id)
end
local sum = 0
for id = 1, 100 do
  sum = sum + tasks[id]:await()
end
print(("100 readings, sum %.1f, in %.0f ms")
  :format(sum, (loom.now() - t0) * 1000))

-- errors raised by the C side arrive as Lua errors
local ok, err = pcall(sensor.read, -1)
print("sensor -1:", ok, err)

-- a read cancelled while the thread works: the task stops at once
local slow = loom.spawn(sensor.read, 7)
loom.yield()
slow:cancel()
print("cancelled read:", pcall(slow.await, slow))
