-- producer_consumer.lua: a producer and two consumers over a bounded
-- queue.  The producer is held back while the queue is full; join waits
-- until every item has been processed.
local q = loom.queue{maxsize = 3}
local processed = {}

local function consumer(name)
  for item in q:iter() do        -- ends when the queue is closed and drained
    loom.sleep(0.02)              -- the work
    processed[#processed + 1] = item
    print(("%s processed %s (queue holds %d)"):format(name, item, q:size()))
    q:task_done()
  end
end

local workers = { loom.spawn(consumer, "c1"), loom.spawn(consumer, "c2") }

for i = 1, 10 do
  q:put("item" .. i)              -- suspends while 3 items wait
end
q:join()                          -- every item processed
print(("all %d items processed"):format(#processed))
q:close()
for _, w in ipairs(workers) do w:await() end
