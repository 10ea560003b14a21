-- offload.lua: a CPU-bound function runs on the thread pool with
-- loom.work while a ticker keeps ticking on the loop.
local function count_primes(limit)  -- runs in a worker's own Lua state
  local count = 0
  for n = 2, limit do
    local prime = true
    for d = 2, math.floor(math.sqrt(n)) do
      if n % d == 0 then prime = false; break end
    end
    if prime then count = count + 1 end
  end
  return count
end

local ticks = 0
local ticker = loom.every(0.02, function()
  ticks = ticks + 1
  print("tick " .. ticks)
end)

local start = loom.now()
local primes = loom.work(count_primes, 300000)
ticker:cancel()
print(("%d primes below 300,000 in %.2f s; the ticker ticked %d times "
  .. "meanwhile")
  :format(primes, loom.now() - start, ticks))
