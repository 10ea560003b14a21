--[[ loom.http's server: http.serve(host, port, handler [, opts]).

  Each connection is a task (net.listen's); it parses requests with
  llhttp (src/http_parser.c) and calls handler(req) for each in turn,
  so pipelined requests are answered in the order they came.  A
  request's body is not read until the handler asks (req:body(),
  req:read(), req:chunks()): the handler reads it from the connection
  itself, so a large upload is never held whole; once the response has
  been sent, the connection belongs to the next request, and the old
  req reads nothing more.

  The handler returns status, body [, headers], or a table {status =,
  headers =, body =} (or json = value instead of body); a body that is
  a function is called for chunks until it returns nil and sent chunked
  (HTTP/1.1) or up to the end of the connection (HTTP/1.0).  A handler
  error gives 500 and is logged with its traceback (loom.log, level
  "error").

  A malformed request gets 400, one over a limit 414, 431 or 413, and
  the connection is closed.  Timeouts (one loom deadline per
  connection, opened around each read) end connections that are idle
  too long between requests or too slow to send a head (counted from
  its first byte) or a body.  A connection the server ends is shut down
  on its side and read to its end for a while first, so that the
  client gets every response rather than a reset.  server:close() stops
  accepting, ends idle connections and lets requests in flight finish.
]]
local core, loom, websocket = ...

local type, tostring, pairs, ipairs, next = type, tostring, pairs, ipairs,
  next
local setmetatable, getmetatable, rawset = setmetatable, getmetatable, rawset
local error, xpcall, pcall = error, xpcall, pcall
local math_type, tointeger = math.type, math.tointeger
local concat = table.concat
local lower, find, format = string.lower, string.find, string.format
local os_time, os_date = os.time, os.date
local traceback = debug.traceback

local new_parser = core.http.parser
local deadline, current, now = core.deadline, core.current, core.now
local is_cancelled, is_timeout = core.is_cancelled, core.is_timeout
local check = core.check
local argerror = check.argerror

local net, json = loom.net, loom.json

local M = {}

local REASONS = {
  [100] = "Continue", [101] = "Switching Protocols",
  [200] = "OK", [201] = "Created", [202] = "Accepted",
  [203] = "Non-Authoritative Information", [204] = "No Content",
  [205] = "Reset Content", [206] = "Partial Content",
  [300] = "Multiple Choices", [301] = "Moved Permanently", [302] = "Found",
  [303] = "See Other", [304] = "Not Modified", [307] = "Temporary Redirect",
  [308] = "Permanent Redirect",
  [400] = "Bad Request", [401] = "Unauthorized", [402] = "Payment Required",
  [403] = "Forbidden", [404] = "Not Found", [405] = "Method Not Allowed",
  [406] = "Not Acceptable", [408] = "Request Timeout", [409] = "Conflict",
  [410] = "Gone", [411] = "Length Required",
  [412] = "Precondition Failed", [413] = "Content Too Large",
  [414] = "URI Too Long", [415] = "Unsupported Media Type",
  [416] = "Range Not Satisfiable", [417] = "Expectation Failed",
  [418] = "I'm a teapot", [421] = "Misdirected Request",
  [422] = "Unprocessable Content", [425] = "Too Early",
  [426] = "Upgrade Required", [428] = "Precondition Required",
  [429] = "Too Many Requests", [431] = "Request Header Fields Too Large",
  [451] = "Unavailable For Legal Reasons",
  [500] = "Internal Server Error", [501] = "Not Implemented",
  [502] = "Bad Gateway", [503] = "Service Unavailable",
  [504] = "Gateway Timeout", [505] = "HTTP Version Not Supported",
}

-- "HTTP/1.1 200 OK\r\n", made once per status
local status_lines = setmetatable({}, { __index = function(t, status)
  local line = ("HTTP/1.1 %d %s\r\n"):format(status,
    REASONS[status] or "Unknown")
  t[status] = line
  return line
end })

-- "Date: ...\r\n", made once a second
local date_line, date_at = "", -1
local function date()
  local t = os_time()
  if t ~= date_at then
    date_at = t
    date_line = os_date("!Date: %a, %d %b %Y %H:%M:%S GMT\r\n", t)
  end
  return date_line
end

-- An error a handler's body read raises to answer with a status (a
-- body over the limit: 413); it is not logged.
local Refusal = {}
Refusal.__index = Refusal
Refusal.__tostring = function(e) return e.message end
local function refuse(status, message)
  error(setmetatable({ status = status, message = message }, Refusal), 0)
end

-- A record of loom.log at level "error", in the log's queue and format.
local log_write = core.log_write
local function log_error(what, msg, tb)
  log_write(3, what .. ": " .. msg .. (tb and "\n" .. tb or ""))
end


-- {====================================================================
-- Reading a connection
-- =====================================================================

-- Connection state 'c': s (the stream), p (the parser), data and pos
-- (bytes read and not yet parsed), srv; body ("none", "open", "done")
-- and continued (a 100 Continue went) for the current request.

-- The next event of 'c' (see src/http_parser.c), reading as needed
-- under the connection's deadline, of 'limit' seconds for each read;
-- nil, msg, code when the connection ends first.  A read that outlives
-- its deadline raises loom.Timeout, which ends the connection.
-- For a head ('head' true), the limit counts from the head's first
-- byte: a client sending a byte now and then cannot hold it longer.
local function next_event(c, limit, head)
  local p, dl = c.p, c.dl
  local due
  while true do
    local data = c.data
    if data then
      local kind, v, pos, ended = p:feed(data, c.pos)
      if kind == "error" then return kind, v, pos end
      if pos > #data then c.data = nil else c.pos = pos end
      if kind then return kind, v, pos, ended end
      if head and p:busy() then
        due = due or now() + c.srv.header_timeout
        limit = due - now()
        if limit < 0 then limit = 0 end
      end
    end
    dl:open(limit)
    local d, err, code = c.s:read()
    dl:close()
    if not d then return nil, err, code end
    c.data, c.pos = d, 1
  end
end

-- The next piece of the current request's body, or nil, msg, code
-- ("EOF" at its end).
local function body_chunk(c, req)
  if c.body ~= "open" then return nil, "end of request body", "EOF" end
  if req.expect_continue and not c.continued then
    c.continued = true
    local ok, err, code = c.s:write("HTTP/1.1 100 Continue\r\n\r\n")
    if not ok then
      c.body = "broken"
      return nil, err, code
    end
  end
  if c.reading then
    check.raise("req:read: another task is reading this request's body")
  end
  c.reading = true
  local ok, kind, v, code, ended = pcall(next_event, c, c.srv.body_timeout)
  c.reading = false
  if not ok then
    c.dl:close()
    c.body = "broken"
    if is_timeout(kind) then
      return nil, "request body: no data for "
        .. c.srv.body_timeout .. "s", "ETIMEDOUT"
    end
    error(kind, 0)
  end
  if kind == "body" then
    if ended then c.body = "done" end
    return v
  end
  if kind == "end" then
    c.body = "done"
    return nil, "end of request body", "EOF"
  end
  c.body = "broken"
  if kind == "error" then
    if v == 413 then
      refuse(413, ("request body larger than %d bytes")
        :format(c.srv.limits.max_body_size))
    end
    return nil, "bad request body: " .. code, "EPROTO"
  end
  if code == "EOF" then  -- not the body's end: the connection's
    return nil, "request body cut short: the client closed the connection",
      "ECONNRESET"
  end
  return nil, v, code  -- the connection failed or was closed
end

-- }====================================================================


-- {====================================================================
-- Requests
-- =====================================================================

local CONN = {}  -- req[CONN]: its connection

local Request = {}

--- req:read([n]) (suspends): the next piece of the body (at most n
-- bytes), or nil, msg, "EOF" at its end.
-- The connection of 'req', while its body may still be read: until
-- its response has been sent (a streamed response may pass the body
-- on as it comes); nil after.
local function live(req)
  local c = req[CONN]
  if c.req == req and not c.finished then return c end
end

local OVER = "request body: the response was already sent"

function Request:read(n)
  if n ~= nil then n = check.count(n, 2, "req:read") end
  check.task("req:read")
  if n == 0 then return "" end  -- as stream:read(0)
  local c = live(self)
  if not c then return nil, OVER, "ECANCELED" end
  local rest = c.rest
  local chunk, err, code
  if rest then
    c.rest = nil
    chunk = rest
  else
    chunk, err, code = body_chunk(c, self)
    if not chunk then return nil, err, code end
  end
  if n and n > 0 and #chunk > n then
    c.rest = chunk:sub(n + 1)
    chunk = chunk:sub(1, n)
  end
  return chunk
end

--- req:chunks(): for chunk in req:chunks() do ... end; raises on a
-- failure other than the end of the body.
function Request:chunks()
  return function()
    local chunk, err, code = self:read()
    if chunk then return chunk end
    if code ~= "EOF" then error(err, 2) end
    return nil
  end
end

--- req:body() (suspends): the whole body (what read() did not take),
-- or nil, msg, code.
function Request:body()
  check.task("req:body")
  local c = self[CONN]
  if c.req == self and c.whole then return c.whole end
  c = live(self)
  if not c then return nil, OVER, "ECANCELED" end
  local parts, n = {}, 0
  if c.rest then
    n = 1
    parts[1], c.rest = c.rest, nil
  end
  while true do
    local chunk, err, code = body_chunk(c, self)
    if not chunk then
      if code ~= "EOF" then return nil, err, code end
      break
    end
    n = n + 1
    parts[n] = chunk
  end
  c.whole = concat(parts)
  return c.whole
end

--- req:json() (suspends): the body decoded as JSON, or nil, msg
function Request:json()
  local body, err, code = self:body()
  if not body then return nil, err, code end
  return json.decode(body)
end

-- req.query: the query string, decoded
local unescape = core.http.unescape  -- src/http_parser.c's decoder

local function decode_query(raw)
  local q = {}
  for pair in raw:gmatch("[^&;]+") do
    local k, v = pair:match("^([^=]*)=(.*)$")
    if k then v = unescape(v) else k, v = pair, true end
    k = unescape(k)
    local old = q[k]
    if old == nil then q[k] = v
    elseif type(old) == "table" then old[#old + 1] = v
    else q[k] = { old, v } end
  end
  return q
end

local lazy = {
  query = function(req)
    return req.rawquery and decode_query(req.rawquery) or {}
  end,
  peer = function(req) return req[CONN].peer end,
}

local request_mt = {
  __name = "loom.http.request",
  __index = function(req, k)
    local m = Request[k]
    if m then return m end
    local f = lazy[k]
    if f then
      local v = f(req)
      rawset(req, k, v)
      return v
    end
  end,
  __tostring = function(req)
    return ("loom.http.request (%s %s)"):format(req.method, req.target)
  end,
}

-- }====================================================================


-- {====================================================================
-- Responses
-- =====================================================================

local NO_BODY = { [204] = true, [304] = true }
local PLAIN = "\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
local s_write = core.net.stream_methods.write

local function bad_header(name, v)
  error(("bad response header '%s': %s"):format(tostring(name), v), 0)
end

local function header_line(k, v)
  local tv = type(v)
  if tv ~= "string" and tv ~= "number" then bad_header(k, tv .. " value") end
  v = tostring(v)
  if find(v, "[\r\n]") then bad_header(k, "CR or LF in value") end
  return k .. ": " .. v .. "\r\n"
end

-- The lines of the handler's headers; what they set of the ones the
-- server would add.
local function header_lines(headers, out, n)
  local has_type, has_len, close
  for k, v in pairs(headers) do
    if type(k) ~= "string" or not find(k, check.TOKEN) then
      bad_header(k, "not a token")
    end
    local lk = lower(k)
    if lk == "content-type" then has_type = true
    elseif lk == "content-length" or lk == "transfer-encoding" then
      has_len = true
    elseif lk == "connection" and lower(tostring(v)):find("close") then
      close = true
    end
    if type(v) == "table" then  -- the same header several times (set-cookie)
      for _, x in ipairs(v) do n = n + 1; out[n] = header_line(k, x) end
    else
      n = n + 1
      out[n] = header_line(k, v)
    end
  end
  return n, has_type, has_len, close
end

-- Sends a function body chunk by chunk; false when it failed (the
-- connection must end).
local function send_stream(c, req, body, chunked)
  local s = c.s
  while true do
    local ok, chunk = xpcall(body, traceback)
    if not ok then
      if is_cancelled(chunk) then error(chunk, 0) end
      log_error("error in the body of the response to " .. req.method
        .. " " .. req.target, tostring(chunk):match("^[^\n]*"), chunk)
      return false
    end
    if chunk == nil then break end
    chunk = tostring(chunk)
    if #chunk > 0 then
      local w
      if chunked then w = s:write(format("%x\r\n", #chunk), chunk, "\r\n")
      else w = s:write(chunk) end
      if not w then return false end
    end
  end
  if chunked then return s:write("0\r\n\r\n") ~= nil end
  return true
end

-- The head of the common response (a string body, no headers of the
-- handler's), made once per status and length for the current second.
local heads, heads_date, nheads = {}, nil, 0

local function plain_head(status, len)
  local d = date()
  if d ~= heads_date then heads, heads_date, nheads = {}, d, 0 end
  local k = len * 1000 + status
  local head = heads[k]
  if head then return head end
  head = status_lines[status] .. d .. "Content-Length: " .. len
    .. (len > 0 and PLAIN or "\r\n\r\n")
  if nheads < 256 then  -- bounded: bodies of many lengths are not kept
    heads[k], nheads = head, nheads + 1
  end
  return head
end

-- Sends a response; returns true when the connection may go on.
local function send(c, req, status, body, headers, keep)
  if c.srv.closing then keep = false end
  if not headers and keep and type(body) == "string" and status >= 200
     and not NO_BODY[status] and req.version == "1.1"
     and req.method ~= "HEAD" then
    c.sent = true
    return s_write(c.s, plain_head(status, #body), body) ~= nil
  end
  local out, n = { status_lines[status], date() }, 2
  local has_type, has_len, close
  if headers then
    n, has_type, has_len, close = header_lines(headers, out, n)
  end
  if close then keep = false end
  local head_only = req.method == "HEAD"
  local stream = type(body) == "function"
  local chunked = false
  if status < 200 or NO_BODY[status] then
    body, stream = nil, false
  elseif stream then
    if req.version == "1.1" then
      chunked = not has_len
      if chunked then
        n = n + 1
        out[n] = "Transfer-Encoding: chunked\r\n"
      end
    elseif not has_len then
      keep = false  -- the end of the connection ends the body
    end
  else
    if body == nil then body = ""
    elseif type(body) ~= "string" then body = tostring(body) end
    if not has_len then
      n = n + 1
      out[n] = "Content-Length: " .. #body .. "\r\n"
    end
    if not has_type and #body > 0 then
      n = n + 1
      out[n] = "Content-Type: text/plain; charset=utf-8\r\n"
    end
  end
  if not keep then
    n = n + 1
    out[n] = "Connection: close\r\n"
  elseif req.version == "1.0" then
    n = n + 1
    out[n] = "Connection: keep-alive\r\n"
  end
  n = n + 1
  out[n] = "\r\n"
  local s = c.s
  c.sent = true
  if stream then
    if not s:write(concat(out)) then return false end
    if head_only then return keep end
    return send_stream(c, req, body, chunked) and keep
  end
  local ok
  if head_only or not body or #body == 0 then ok = s:write(concat(out))
  else ok = s:write(concat(out), body) end
  return ok ~= nil and keep
end

-- Status, body, headers of what the handler returned.
local function check_status(status)
  local n = math_type(status) and tointeger(status)
  if not n or n < 200 or n > 999 then
    error("handler returned a bad status: " .. tostring(status)
      .. " (an integer from 200 to 999 expected)", 0)
  end
  return n
end

local BODY_TYPES = { string = true, number = true, ["function"] = true,
                     ["nil"] = true }

-- status, body, headers, checked
local function checked(status, body, headers)
  if not BODY_TYPES[type(body)] then
    error("handler returned a " .. type(body) .. " body (a string, a "
      .. "function or nil expected)", 0)
  end
  if headers ~= nil and type(headers) ~= "table" then
    error("handler returned " .. type(headers) .. " headers (a table "
      .. "expected)", 0)
  end
  return check_status(status), body, headers
end

local function response_of(a, b, h)
  local ta = type(a)
  if ta == "number" then return checked(a, b, h) end
  if ta == "table" then
    local status = check_status(a.status or 200)
    if a.json ~= nil then
      local text, err = json.encode(a.json)
      if not text then error("handler's json: " .. err, 0) end
      local headers = { ["Content-Type"] = "application/json" }
      checked(status, nil, a.headers)
      for k, v in pairs(a.headers or {}) do
        if type(k) == "string" and lower(k) == "content-type" then
          headers["Content-Type"] = nil
        end
        headers[k] = v
      end
      return status, text, headers
    end
    return checked(status, a.body, a.headers)
  end
  if ta == "string" then return checked(200, a, b) end
  if a == nil then return 204 end
  error("handler returned a " .. ta .. " (status, body [, headers] or a "
    .. "table expected)", 0)
end

--- req:websocket([opts]) (suspends): the WebSocket this request asks
-- for (lua/loom/websocket.lua), its 101 sent; or nil, msg, "EPROTO"
-- when it asks for none, its 400 (426 for another version) sent.
-- Either way the handler's return value is not a response: the
-- connection ends when the handler returns, the WebSocket closed.
function Request:websocket(opts)
  local o = websocket.options(opts, 2, "req:websocket")
  check.task("req:websocket")
  local c = live(self)
  if not c or c.sent then
    check.raise("req:websocket: the response to " .. self.method .. " "
      .. self.target .. " was already sent")
  end
  local head, protocol, why = websocket.handshake(self, o)
  if not head then
    c.ws = false
    local status = protocol
    send(c, self, status, why .. "\n", {
      ["Content-Type"] = "text/plain; charset=utf-8",
      ["Sec-WebSocket-Version"] = status == 426 and "13" or nil }, false)
    return nil, "req:websocket: " .. why, "EPROTO"
  end
  c.sent = true
  local ok, err, code = c.s:write(head)
  if not ok then
    c.ws = false
    return nil, err, code
  end
  local rest = c.data and c.data:sub(c.pos) or ""
  c.data = nil
  local ws = websocket.new(c.s, true, rest, protocol, o)
  c.ws = ws
  if c.srv.closing then  -- upgraded as the server closed: going away
    loom.spawn(websocket.close_state, ws, 1001, "server shutting down")
  end
  return ws
end

-- }====================================================================


-- {====================================================================
-- Connections
-- =====================================================================

local HANDLED = {}  -- what on_error leaves of an error it logged

-- Ends a connection the server ends (an error response, Connection:
-- close, max_requests, a timeout): what the client still sends is read
-- and dropped for a while, until its end of the connection closes:
-- closing with unread bytes would reset the connection, and the client
-- might lose the responses sent last.  A client the server cut off for
-- being too slow (c.cut: a timeout) gets only LINGER_CUT, the time to
-- read the 408: a client trickling bytes must not hold the connection
-- (and its place under max_connections) much past the timeout.
local LINGER, LINGER_CUT = 2, 0.2  -- seconds

local function linger(c)
  local s, dl = c.s, c.dl
  if c.lingered then return end
  c.lingered = true
  if s:shutdown() then
    dl:close()
    dl:open(c.cut and LINGER_CUT or LINGER)
    pcall(function() repeat until not s:read() end)
    dl:close()
  end
end

local function refuse_conn(c, req, status)
  local text = (REASONS[status] or "Error") .. "\n"
  send(c, req or { method = "GET", version = "1.1" }, status, text,
    { ["Content-Type"] = "text/plain; charset=utf-8" }, false)
  linger(c)
  return false
end

-- The handler's part of a request, under the message handler of the
-- connection: the handler, then the response, which is checked before
-- any of it is sent.  True when the connection may go on.
local function run(c, req, keep)
  local a, b, h = c.srv.handler(req)
  local ws = c.ws
  if ws ~= nil then  -- upgraded (or refused): no response of its own
    if ws then ws:close() end
    return false
  end
  local status, body, headers = response_of(a, b, h)
  local state = c.body
  if state ~= "none" and state ~= "done" then
    -- an unread body: read and dropped before the next request, unless
    -- its client still waits for a 100 Continue that never went
    if state ~= "open" or (req.expect_continue and not c.continued) then
      keep = false
    end
  end
  return send(c, req, status, body, headers, keep)
end

-- Answers one request; true when the connection may go on.
local function answer(c, req, kind)
  local srv = c.srv
  c.body = kind == "head" and "open" or "none"
  c.continued, c.rest, c.whole, c.ws = false, nil, nil, nil
  req[CONN] = c
  setmetatable(req, request_mt)
  c.n = c.n + 1
  c.req, c.sent, c.finished = req, false, false
  local keep = req.keep_alive and c.n < srv.max_requests
  local ok, more = xpcall(run, c.on_error, c, req, keep)
  if not ok then
    if is_cancelled(more) then error(more, 0) end
    if getmetatable(more) == Refusal then
      return refuse_conn(c, req, more.status)
    end
    if c.ws then c.ws:close(1011, "internal error") end
    if c.sent then return false end  -- the head went: cut it short
    return send(c, req, 500, "Internal Server Error\n", nil,
      keep and (c.body == "none" or c.body == "done"))
  end
  c.finished = true
  if not more then return false end
  while c.body == "open" do  -- drop the rest of the body
    local chunk, _, code = body_chunk(c, req)
    if not chunk and code ~= "EOF" then return false end
  end
  return true
end

-- The connection's loop: request after request.
local function serve_conn(c)
  local srv = c.srv
  while true do
    local limit = c.n == 0 and srv.header_timeout or srv.keepalive_timeout
    c.idle = c.data == nil
    c.idle_since = now()
    if srv.closing and c.idle then return end
    if srv.starved and c.idle and c.n > 0 then  -- a client waits for it
      srv.starved = false
      c.lingered = true  -- nothing in flight: no need to linger
      return
    end
    local kind, req, code = next_event(c, limit, true)
    c.idle = false
    if not kind then return end  -- the client went, or closed
    if kind == "error" then return refuse_conn(c, nil, req, code) end
    if not answer(c, req, kind) then return end
  end
end

-- }====================================================================


-- {====================================================================
-- The server
-- =====================================================================

local Server = {}
Server.__index = Server
Server.__name = "loom.http.server"

--- server:address(): host, port
function Server:address()
  check.self(self, Server, "server:address")
  return self.listener:address()
end

--- server:close(): stops accepting; idle connections end at once, the
-- others after the response in flight.  Harmless the second time.
function Server:close()
  check.self(self, Server, "server:close")
  if self.closing then return end
  self.closing = true
  self.listener:close()
  for c in pairs(self.conns) do
    if c.idle then c.task:cancel("server closed")
    elseif c.ws then  -- a WebSocket: told the server is going away
      loom.spawn(websocket.close_state, c.ws, 1001, "server shutting down")
    end
  end
  if next(self.conns) == nil then self.done:set() end
end
Server.__close = Server.close

--- server:wait() (suspends): until the server is closed and its last
-- connection has ended.
function Server:wait()
  check.self(self, Server, "server:wait")
  self.done:wait()
end

function Server:__tostring()
  local ok, host, port = pcall(self.listener.address, self.listener)
  if self.closing or not ok then return "loom.http.server (closed)" end
  return ("loom.http.server (%s:%d)"):format(host, port)
end

-- The message handler of a connection's handler calls.
local function on_error_of(c)
  return function(e)
    if is_cancelled(e) or getmetatable(e) == Refusal then return e end
    local req = c.req
    local tb = traceback(nil, 2)
    local cut = tb:find("\n%s*%[C%]: in function 'xpcall'")  -- loom's own
    log_error("error in the HTTP handler for " .. req.method .. " "
      .. req.target, tostring(e), cut and tb:sub(1, cut - 1) or tb)
    return HANDLED
  end
end

local function connection(srv, s)
  local c = { s = s, p = new_parser(srv.limits), srv = srv, n = 0,
              task = current() }
  c.on_error = on_error_of(c)
  c.peer = s:peer()
  c.dl = deadline(1, "http.serve")
  c.dl:close()
  srv.conns[c] = true
  srv.starved = false  -- the client that waited, if one did, is in
  local ok, e = pcall(serve_conn, c)
  c.dl:close()
  if not ok and is_timeout(e) then  -- too slow: 408 when a head began
    c.cut = true
    if c.p:busy() then pcall(refuse_conn, c, nil, 408) end
    ok = true
  end
  if ok then pcall(linger, c) end
  srv.conns[c] = nil
  if srv.closing and next(srv.conns) == nil then srv.done:set() end
  if not ok and not is_cancelled(e) then error(e, 0) end
end

-- The server is full and a client waits: the connection idle longest
-- between requests (none mid-head) ends, and the client takes its place,
-- as nginx reuses its idle keep-alive connections.  When every one is
-- busy, the first to finish its request ends instead (srv.starved).
local function drop_idle(srv)
  local oldest
  for c in pairs(srv.conns) do
    if c.idle and not c.p:busy()
       and (oldest == nil or c.idle_since < oldest.idle_since) then
      oldest = c
    end
  end
  if oldest then oldest.task:cancel("server full")
  else srv.starved = true end
end

local function positive(opts, k, def, integer)
  local v = opts[k]
  if v == nil then return def end
  if type(v) ~= "number" or not (v > 0)
     or (integer and math_type(v) ~= "integer") then
    argerror(4, "http.serve", ("%s must be a positive %s"):format(k,
      integer and "integer" or "number"))
  end
  return v
end

--- http.serve(host, port, handler [, opts]): a Server
function M.serve(host, port, handler, opts)
  check.cstring(host, 1, "http.serve")
  if math_type(port) ~= "integer" or port < 0 or port > 65535 then
    argerror(2, "http.serve", "port must be an integer from 0 to 65535, got "
      .. tostring(port))
  end
  check.callable(handler, 3, "http.serve")
  opts = check.opts(opts, 4, "http.serve")
  local srv = setmetatable({
    handler = handler,
    conns = {},
    done = loom.event(),
    limits = {
      max_header_size = positive(opts, "max_header_size", 16 * 1024, true),
      max_body_size = positive(opts, "max_body_size", 1024 * 1024, true),
    },
    header_timeout = positive(opts, "header_timeout", 60),
    body_timeout = positive(opts, "body_timeout", 60),
    keepalive_timeout = positive(opts, "keepalive_timeout", 75),
    max_requests = positive(opts, "max_requests", 1000, true),
  }, Server)
  local max_connections = positive(opts, "max_connections", 10000, true)
  local listener, err, code = net.listen(host, port, function(s)
    connection(srv, s)
  end, { backlog = opts.backlog, reuseport = opts.reuseport,
         tls = opts.tls, max_connections = max_connections,
         on_full = function() drop_idle(srv) end })
  if not listener then return nil, err, code end
  srv.listener = listener
  return srv
end

-- }====================================================================

return M
