-- tail.lua: follows a growing file, as `tail -f` does, woken by
-- fs.watch instead of polling.
--
--   loom examples/tail.lua FILE      follow FILE until Ctrl-C
--   loom examples/tail.lua           a demo: a task appends, we follow
local fs = loom.fs

local function follow(path, on_line, stop)
  local f <close> = assert(fs.open(path, "r"))
  local w <close> = assert(fs.watch(path))
  local pending = ""
  while not stop() do
    local chunk = f:read(65536)               -- nil at the current end
    if chunk then
      pending = pending .. chunk
      for line in pending:gmatch("([^\n]*)\n") do on_line(line) end
      pending = pending:match("[^\n]*$")
    else
      w:events()()                            -- wait until it changes
    end
  end
end

if arg[1] then
  follow(arg[1], print, function() return false end)
  return
end

local dir = assert(fs.mkdtemp("/tmp/tail-demo"))
local path = dir .. "/log.txt"
assert(fs.write_file(path, "started\n"))
local writer = loom.spawn(function()
  for i = 1, 5 do
    loom.sleep(0.05)
    assert(fs.append_file(path, ("entry %d\n"):format(i)))
  end
end)
local seen = {}
follow(path, function(line)
  print("tail: " .. line)
  seen[#seen + 1] = line
end, function() return #seen >= 6 end)
writer:await()
fs.remove(dir, { recursive = true })
