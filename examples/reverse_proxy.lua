-- reverse_proxy.lua: an HTTP reverse proxy.  Each request goes to the
-- upstream with the same method, path, headers and body; the answer
-- streams back as it comes, so a large download is never held whole.
--
--   loom examples/reverse_proxy.lua UPSTREAM [port]
--       e.g. UPSTREAM = http://127.0.0.1:8000
-- It prints "listening on http://HOST:PORT/" when ready.
local http = loom.http
local upstream = assert(arg[1], "usage: reverse_proxy.lua UPSTREAM [port]")

-- headers of one hop, not passed on (RFC 9110, 7.6.1); curl sets the
-- length and decodes what it asked to be compressed
local HOP = { connection = true, ["keep-alive"] = true, te = true,
  trailer = true, ["transfer-encoding"] = true, upgrade = true,
  ["proxy-connection"] = true, host = true, ["content-length"] = true,
  ["content-encoding"] = true }

local function pass(headers)
  local out = {}
  for k, v in pairs(headers) do if not HOP[k] then out[k] = v end end
  return out
end

local server = assert(http.serve("127.0.0.1", tonumber(arg[2]) or 0,
  function(req)
    local headers = pass(req.headers)
    headers["X-Forwarded-For"] = req.peer
    local res, err = http.request{ method = req.method, headers = headers,
      url = upstream .. req.target, body = req:body(), redirects = 0,
      stream = true }
    if not res then return 502, "bad gateway: " .. err .. "\n" end
    return res.status, function() return res:read() end, pass(res.headers)
  end))
print(("listening on http://%s:%d/"):format(server:address()))
io.stdout:flush()

loom.signal.wait("SIGTERM", "SIGINT")
server:close()
