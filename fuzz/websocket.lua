-- fuzz/websocket.c's task: the bytes 'data' as WebSocket frames (and
-- handshakes) from the peer, over a real connection on 127.0.0.1.
--
-- byte 1: the mode (bits 0-1) and max_message (bits 2-3: 16, 125, 1000
-- or 1 MiB); byte 2: how many pieces (1 to 4), then their sizes; the
-- rest is what the peer sends, in those pieces:
--   mode 0  to a server's WebSocket, after a good upgrade request
--   mode 1  to a server, the upgrade request included
--   mode 2  to a client's WebSocket, after a good 101
--   mode 3  to a client, the 101 included
-- What the WebSocket receives is echoed back.  It must give messages
-- of its kinds, text in UTF-8 and within max_message, end with a close
-- status loom may give, and never fail; the server must answer an
-- upgrade with 101 or an error status.  A failed check raises.
local data = ...
local http, net = require "loom.http", require "loom.net"
local listen = require "listen"
local core = debug.getregistry()["loom.core"]
local byte = string.byte
local debug_out = os.getenv("FUZZ_DEBUG") and io.stderr

local flags = byte(data, 1) or 0
local mode = flags % 4
local max_message = ({ 16, 125, 1000, 1024 * 1024 })[(flags >> 2) % 4 + 1]
local npieces = (byte(data, 2) or 0) % 4 + 1
local sizes = { byte(data, 3, npieces + 1) }
local input = data:sub(npieces + 2)

local UPGRADE = "GET /chat HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
  .. "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
  .. "Sec-WebSocket-Version: 13\r\n\r\n"

-- Writes 'input' to 's' in its pieces, the server or client reading
-- each before the next.
local function send_pieces(s)
  local at = 1
  for i = 1, npieces do
    local n = i < npieces and (sizes[i] or 0) + 1 or #input
    local piece = input:sub(at, at + n - 1)
    at = at + n
    if #piece > 0 and not s:write(piece) then return end
    loom.sleep(0)
  end
end

local failure  -- the first failed check of a task other than this one
local function checked(fn)
  return function(...)
    local ok, err = xpcall(fn, debug.traceback, ...)
    if not ok and not failure then failure = tostring(err) end
  end
end

-- A WebSocket's life: messages echoed, then its close status checked.
local function serve(ws)
  for msg, kind in ws:messages() do
    assert(kind == "text" or kind == "binary", "a message of kind "
      .. tostring(kind))
    assert(#msg <= max_message, "a message over max_message")
    if kind == "text" then assert(utf8.len(msg), "text not in UTF-8") end
    if debug_out then debug_out:write(kind, " ", ("%q"):format(msg), "\n") end
    if not ws:send(msg, kind) then break end
  end
  local code = ws.close_code
  if debug_out then debug_out:write("closed ", tostring(code), "\n") end
  assert(math.type(code) == "integer" and code >= 1000 and code <= 4999,
    "close status " .. tostring(code))
  assert(code ~= 1004 and code ~= 1015, "close status " .. code)
  local reason = ws.close_reason
  assert(type(reason) == "string" and #reason <= 123 and utf8.len(reason),
    "close reason " .. ("%q"):format(tostring(reason)))
  assert(ws:close() == true, "ws:close")
end

if mode <= 1 then
  local answered
  local handler = checked(function(req)
    local ws, _, code = req:websocket { max_message = max_message }
    answered = ws and 101 or code
    if ws then serve(ws) end
  end)
  local srv, port = listen("http", function(port)
    return http.serve("127.0.0.1", port, handler)
  end)
  local c = assert(net.connect("127.0.0.1", port))
  c:nodelay(true)
  if mode == 0 then assert(c:write(UPGRADE)) end
  send_pieces(c)
  c:shutdown()
  local out = c:read_all() or ""
  c:close()
  srv:close()
  srv:wait()
  assert(not failure, failure)
  if debug_out then debug_out:write(out:match("^[^\r\n]*"), "\n") end
  if #out > 0 then
    local status = tonumber(out:match("^HTTP/1%.1 (%d%d%d) "))
    assert(status == 101 or status == 400 or status == 426
      or status == 413 or status == 414 or status == 431
      or (status == 200 and not answered),  -- another request first
      "the server answered " .. ("%q"):format(out:sub(1, 60)))
  end
  if mode == 0 then assert(answered == 101, "the upgrade was refused") end
else
  local peer = checked(function(s)
    local head = s:read_until("\r\n\r\n")
    if not head then return end
    local key = head:match("\r\nSec%-WebSocket%-Key: ([^\r\n]+)\r\n")
    if mode == 2 then
      assert(s:write("HTTP/1.1 101 Switching Protocols\r\n"
        .. "Upgrade: websocket\r\nConnection: Upgrade\r\n"
        .. "Sec-WebSocket-Accept: " .. core.websocket.accept(key)
        .. "\r\n\r\n"))
    end
    send_pieces(s)
    s:shutdown()
    repeat until not s:read()
  end)
  local srv, port = listen("raw", function(port)
    return net.listen("127.0.0.1", port, peer)
  end)
  local ws, err, code = http.websocket("ws://127.0.0.1:" .. port .. "/",
    { max_message = max_message, close_timeout = 1 })
  if ws then checked(serve)(ws)
  else
    if debug_out then debug_out:write(err, "\n") end
    assert(code == "EPROTO", "http.websocket: " .. tostring(err))
    assert(mode == 3, "http.websocket refused a good 101: " .. err)
  end
  srv:close()
  assert(not failure, failure)
end
return true
