-- chat.lua: a chat server.  Each client has a queue of messages to send
-- it, drained by a task of its own, so a slow client never holds up the
-- others (its queue is bounded: when full, messages to it are dropped).
--
--   loom examples/chat.lua server [port]    then: nc 127.0.0.1 PORT
--   loom examples/chat.lua                  a demo with three clients
local net = loom.net
local clients = {}  -- name -> queue

local function broadcast(from, text)
  for name, q in pairs(clients) do
    if name ~= from then q:put_nowait(("<%s> %s"):format(from, text)) end
  end
end

local function session(s)
  s:write("name? ")
  local name = s:read_line()
  if not name or name == "" or clients[name] then
    s:write("bye\n")
    return
  end
  local q = loom.queue{maxsize = 100}
  clients[name] = q
  local sender = loom.spawn(function()  -- the client's own writer
    for text in q:iter() do s:write(text, "\n") end
  end)
  broadcast(name, "joined")
  for line in s:lines() do broadcast(name, line) end
  clients[name] = nil
  q:close()
  sender:await()
  broadcast(name, "left")
end

local server = assert(net.listen("127.0.0.1", tonumber(arg[2]) or 0, session))
local _, port = server:address()

if arg[1] == "server" then
  print("chat on port " .. port)
  return
end

-- the demo: three clients talk; each prints what it receives
local function client(name, says, wait)
  local s <close> = assert(net.connect("127.0.0.1", port))
  s:read(6)                               -- "name? "
  s:write(name, "\n")
  loom.sleep(wait)
  for _, text in ipairs(says) do s:write(text, "\n") end
  loom.sleep(0.1)
  s:shutdown()
  local got = s:read_all() or ""
  for line in got:gmatch("[^\n]+") do print(name .. " got: " .. line) end
end

loom.gather(
  function() return client("ann", { "hi all" }, 0.02) end,
  function() return client("bob", { "hello ann" }, 0.04) end,
  function() return client("cy", {}, 0.0) end)
server:close()
