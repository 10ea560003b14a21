-- timeout.lua: a timeout that fires.  The slow operation is interrupted
-- where it waits, its cleanup runs, and loom.timeout raises loom.Timeout.
local function slow_operation()
  local _, err = pcall(loom.sleep, 10)
  print("cleanup ran, the sleep raised: " .. tostring(err))
  error(err, 0)  -- pass the timeout on
end

local ok, err = pcall(loom.timeout, 0.5, slow_operation)
print(ok, tostring(err), loom.is_timeout(err))

-- wait_for does the same for a task, and cancels it.
local task = loom.spawn(function() loom.sleep(10) end)
local ok2, err2 = pcall(loom.wait_for, task, 0.2)
print(ok2, err2.code, "task cancelled: " .. tostring(task:cancelled()))
