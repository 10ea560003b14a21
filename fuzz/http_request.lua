-- fuzz/http_request.c's task: the bytes 'data' go, in pieces, to a
-- loom.http server on 127.0.0.1 (a new one each time) over a real
-- connection; the client half-closes and reads what comes back, which
-- must be whole, well-formed responses (100 Continue, a 200 for each
-- request the handler saw, in order, or an error status ending the
-- connection), and the server must close cleanly.  A failed check
-- raises, and the harness aborts.
local data = ...
local http, net = require "loom.http", require "loom.net"
local listen = require "listen"
local byte = string.byte

-- byte 1: how many pieces (1 to 4), then their sizes (1 to 256)
local npieces = byte(data, 1) % 4 + 1
local sizes = { byte(data, 2, npieces) }
local body_of = data:sub(npieces + 1)

-- The handler: reads the body as the request's path says, then
-- answers 200 (a string, JSON or a chunked stream).
local seen = {}
local function handler(req)
  seen[#seen + 1] = req.method
  local path, got = req.path, nil
  for k, v in pairs(req.headers) do
    assert(type(k) == "string" and type(v) == "string", "a header's type")
    assert(k == k:lower(), "a header name not in lower case")
  end
  assert(type(req.query) == "table", "req.query")
  if path:find("r", 1, true) then  -- read in small pieces
    local parts = {}
    while true do
      local chunk, _, code = req:read(5)
      if not chunk then
        got = code == "EOF" and table.concat(parts) or nil
        break
      end
      assert(#chunk <= 5 and #chunk > 0, "req:read(5) gave " .. #chunk)
      parts[#parts + 1] = chunk
    end
  elseif path:find("c", 1, true) then
    local ok, parts = pcall(function()
      local t = {}
      for chunk in req:chunks() do t[#t + 1] = chunk end
      return t
    end)
    got = ok and table.concat(parts) or nil
  elseif not path:find("n", 1, true) then  -- "n": the body left unread
    got = req:body()
  end
  if got and req.content_length then
    assert(#got == req.content_length, "a body of " .. #got
      .. " bytes, not its Content-Length " .. req.content_length)
  end
  local n = got and #got or -1
  if path:find("j", 1, true) then return { json = { n = n, p = path } } end
  if path:find("s", 1, true) then
    local i = 0
    return 200, function()
      i = i + 1
      if i <= 2 then return "part" .. i end
    end
  end
  return 200, "got " .. n .. "\n"
end

local srv, port = listen("http", function(port)
  return http.serve("127.0.0.1", port, handler)
end)
local c = assert(net.connect("127.0.0.1", port))
c:nodelay(true)
local at = 1
for i = 1, npieces do
  local n = i < npieces and (sizes[i] or 0) + 1 or #body_of
  local piece = body_of:sub(at, at + n - 1)
  at = at + n
  if #piece > 0 and not c:write(piece) then break end
  loom.sleep(0)  -- the server reads it before the next
end
c:shutdown()
local out = c:read_all() or ""
c:close()
srv:close()
srv:wait()

if os.getenv("FUZZ_DEBUG") then io.stderr:write(out, "\n") end

-- The responses in 'out'.
local i, answered = 1, 0
local ENDING = { [400] = true, [408] = true, [413] = true, [414] = true,
                 [431] = true, [505] = true }
while i <= #out do
  local e = out:find("\r\n\r\n", i, true)
  assert(e, "a response head cut short: " .. ("%q"):format(out:sub(i)))
  local head = out:sub(i, e + 1)
  i = e + 4
  local status = tonumber(head:match("^HTTP/1%.1 (%d%d%d) [^\r\n]*\r\n"))
  assert(status, "not a status line: " .. ("%q"):format(head))
  local len = head:match("\r\nContent%-Length: (%d+)\r\n")
  local chunked = head:find("\r\nTransfer%-Encoding: chunked\r\n")
  if status == 100 then
    assert(answered < #seen, "a 100 Continue for no request")
  elseif status == 200 then
    answered = answered + 1
    assert(answered <= #seen, "more responses than requests")
    if seen[answered] == "HEAD" then len, chunked = 0, false end
  else
    assert(ENDING[status], "status " .. status)
  end
  if chunked then
    while true do
      local sz, e2 = out:match("^(%x+)\r\n()", i)
      assert(sz, "a bad chunk in " .. ("%q"):format(out))
      i = e2 + tonumber(sz, 16)
      assert(out:sub(i, i + 1) == "\r\n", "a chunk not ended")
      i = i + 2
      if tonumber(sz, 16) == 0 then break end
    end
  elseif len then i = i + tonumber(len)
  elseif status ~= 100 then i = #out + 1  -- to the end of the connection
  end
  assert(i <= #out + 1, "a body cut short")
  if ENDING[status] then
    assert(i == #out + 1, "more after status " .. status)
  end
end
assert(answered == #seen, #seen .. " requests, " .. answered .. " answered")
return true
