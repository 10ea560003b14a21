-- demo.lua: what loom is about, in one screen.  Run: loom examples/demo.lua
--
-- Sequential-looking code, concurrent execution: C schedules the
-- coroutines on libuv while each task reads top to bottom.

local t0 = loom.now()
local function stamp(fmt, ...)
  print(("[%5.2fs] " .. fmt):format(loom.now() - t0, ...))
end

-- 1. Three tasks sleep at the same time: the whole takes 0.3 s, not 0.6 s.
local function worker(name, seconds)
  loom.sleep(seconds)
  stamp("%s done after %.1fs", name, seconds)
  return name:upper()
end
local a = loom.spawn(worker, "alpha", 0.3)
local b = loom.spawn(worker, "beta", 0.1)
local c = loom.spawn(worker, "gamma", 0.2)
stamp("awaited: %s %s %s", a:await(), b:await(), c:await())

-- 2. A timeout interrupts a slow call at its suspension point.
local ok, err = pcall(loom.timeout, 0.1, function()
  loom.sleep(10)
end)
stamp("slow call: ok=%s, %s", ok, tostring(err))

-- 3. Cancelling a task runs its cleanup: <close> variables release.
local holder = loom.spawn(function()
  local _conn <close> = setmetatable({}, {
    __close = function() stamp("connection released") end,
  })
  stamp("connection opened, waiting...")
  loom.sleep(60)
end)
loom.sleep(0.05)
holder:cancel()
stamp("holder cancelled: %s", tostring(select(2, pcall(holder.await, holder))))

-- 4. Errors cross await unchanged, with the failing task's traceback.
local failing = loom.spawn(function()
  loom.sleep(0.01)
  error({ code = 42 })
end)
local _, e = pcall(loom.await, failing)
stamp("error object crossed the await: code=%d", e.code)

-- 5. The process lives until every task is done; main is the last.
stamp("main done; %d task(s) alive", #loom.tasks())
