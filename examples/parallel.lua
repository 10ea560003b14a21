-- parallel.lua: runs shell commands in parallel, at most K at a time (a
-- semaphore), and streams their output as it comes: each line of
-- command N is printed as "[N] line" ("[N!] line" from its stderr), and
-- "[N] exit CODE" (or "[N] killed by SIGNAL") when it ends.
--
--   loom examples/parallel.lua [-j K] 'command 1' 'command 2' ...
-- Without commands it runs a demo of six.  The exit status is 1 when a
-- command failed.
local process = loom.process

local limit, commands = 3, {}
local i = 1
while arg[i] do
  if arg[i] == "-j" then
    limit = assert(math.tointeger(tonumber(arg[i + 1])), "-j needs a number")
    i = i + 2
  else
    commands[#commands + 1] = arg[i]
    i = i + 1
  end
end
if #commands == 0 then  -- the demo
  for n = 1, 5 do
    commands[n] = ("for i in 1 2 3; do echo tick $i; sleep 0.0%d; done")
      :format(n)
  end
  commands[6] = "echo about to fail >&2; exit 2"
end

local slots = loom.semaphore(limit)
local running, busiest, failed = 0, 0, 0

-- Prints every line of 's' with 'prefix' until EOF.
local function relay(s, prefix)
  for line in s:lines() do
    io.write(prefix, line, "\n")
    io.stdout:flush()
  end
end

local function run(n, cmd)
  local _ <close> = slots:hold()
  running = running + 1
  busiest = math.max(busiest, running)
  local p, err = process.spawn{"sh", "-c", cmd, stdin = "null",
                               stderr = "pipe"}
  if not p then
    print(("[%d] cannot start: %s"):format(n, err))
    failed = failed + 1
    running = running - 1
    return
  end
  local _ <close> = p
  -- both pipes at once: a command may fill either while we read the other
  loom.gather(function() relay(p.stdout, ("[%d] "):format(n)) end,
              function() relay(p.stderr, ("[%d!] "):format(n)) end)
  local code, sig = p:wait()
  running = running - 1
  if code ~= 0 then failed = failed + 1 end
  print(code and ("[%d] exit %d"):format(n, code)
             or ("[%d] killed by %s"):format(n, sig))
end

local started = loom.now()
loom.group(function(g)
  for n, cmd in ipairs(commands) do g:spawn(run, n, cmd) end
end)
print(("%d commands, %d failed, at most %d at a time, in %.2f s")
  :format(#commands, failed, busiest, loom.now() - started))
if failed > 0 then os.exit(1) end
