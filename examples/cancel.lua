-- cancel.lua: a task cancelled while it holds a resource; the resource
-- is released, by a <close> variable and by pcall cleanup alike.
local function open_resource(name)
  print("acquired " .. name)
  return setmetatable({ name = name }, {
    __close = function(r) print("released " .. r.name) end,
  })
end

local worker = loom.spawn(function()
  local _res <close> = open_resource("database connection")
  local _, err = pcall(function()
    print("working...")
    loom.sleep(60)
  end)
  print("pcall saw: " .. tostring(err))
  error(err, 0)  -- let the cancellation finish the task
end)

loom.sleep(0.1)
print("cancel returned " .. tostring(worker:cancel("shutting down")))
local _, err = pcall(worker.await, worker)
print("worker cancelled: " .. tostring(worker:cancelled()), tostring(err))
