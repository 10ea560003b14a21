--[[ loom.http's WebSockets: req:websocket([opts]) in a server's handler,
  http.websocket(url [, opts]) for a client, and the WebSocket both give.

  The framing is wslay's (src/websocket.c: an engine that takes the
  bytes read and gives the bytes to write); this module does the
  handshakes and the I/O over a loom stream, so a WebSocket runs on TLS
  as on TCP, and a write waits under backpressure as stream:write does.

  Each WebSocket has a reader task of its own, which reads the stream
  for as long as the connection lives: pings are answered and the
  peer's close is seen even when no task is receiving.  What it reads
  of messages goes to an inbox of opts.max_queue messages (16); while
  the inbox is full the reader waits, so a peer that sends faster than
  the user receives is held back by TCP, never buffered without end.

  The state of a WebSocket lives in a table the reader shares; the
  object the user holds is a proxy over it, so dropping the object
  lets the collector close the connection although the reader task
  still waits on it.

  Close statuses, as receive() gives them once the WebSocket is
  closed: the peer's (1005 when its close had none), or loom's own
  when loom closed first (1009 a message over max_message, 1007 text
  that is not UTF-8, 1002 a protocol error, ws:close's), 1006 when the
  connection ended without a close, 1001 when the server shuts down.
]]
local core, loom = ...

local type, tostring, tonumber, setmetatable, getmetatable = type, tostring,
  tonumber, setmetatable, getmetatable
local pcall, error, pairs, ipairs = pcall, error, pairs, ipairs
local math_type, tointeger = math.type, math.tointeger
local find, lower, gmatch, concat = string.find, string.lower,
  string.gmatch, table.concat

local cws = core.websocket
local engine, accept_of, new_key, is_utf8 = cws.engine, cws.accept,
  cws.key, cws.utf8
local now, is_timeout = core.now, core.is_timeout
local check = core.check
local argerror = check.argerror

local M = {}

local KINDS = { text = 0, binary = 1 }

-- what a close status loom sends on its own says
local REFUSED = {
  [1002] = "protocol error from the peer",
  [1007] = "the peer sent text that is not UTF-8",
  [1009] = "the peer sent a message over max_message (or in over 16384 "
    .. "frames)",
}

-- {====================================================================
-- Options
-- =====================================================================

local function positive(opts, k, n, fname, def, integer)
  local v = opts[k]
  if v == nil then return def end
  if type(v) ~= "number" or not (v > 0)
     or (integer and math_type(v) ~= "integer") then
    argerror(n, fname, ("%s must be a positive %s, got %s"):format(k,
      integer and "integer" or "number", tostring(v)))
  end
  return v
end

-- The checked options of either side: protocols (a list of tokens),
-- max_message, max_queue, heartbeat, close_timeout, headers, and the
-- client's timeout, verify and ca.
local function options(opts, n, fname)
  opts = check.opts(opts, n, fname)
  local o = {
    max_message = positive(opts, "max_message", n, fname, 1024 * 1024, true),
    max_queue = positive(opts, "max_queue", n, fname, 16, true),
    heartbeat = positive(opts, "heartbeat", n, fname, nil),
    close_timeout = positive(opts, "close_timeout", n, fname, 5),
    timeout = positive(opts, "timeout", n, fname, 30),
    headers = opts.headers,
    verify = opts.verify,
    ca = opts.ca,
  }
  local ps = opts.protocols
  if ps ~= nil then
    if type(ps) == "string" then ps = { ps } end
    if type(ps) ~= "table" then
      argerror(n, fname, "protocols must be a list of strings, got "
        .. type(ps))
    end
    for i, p in ipairs(ps) do
      if type(p) ~= "string" or not find(p, check.TOKEN) then
        argerror(n, fname, ("protocols[%d] must be a token, got %s")
          :format(i, tostring(p)))
      end
    end
    o.protocols = ps
  end
  local hs = o.headers
  if hs ~= nil then
    if type(hs) ~= "table" then
      argerror(n, fname, "headers must be a table, got " .. type(hs))
    end
    for k, v in pairs(hs) do
      if type(k) ~= "string" or not find(k, check.TOKEN) then
        argerror(n, fname, "invalid header name '" .. tostring(k) .. "'")
      end
      if (type(v) ~= "string" and type(v) ~= "number")
         or find(tostring(v), "[\r\n%z]") then
        argerror(n, fname, ("headers['%s'] must be a string without CR, "
          .. "LF or NUL"):format(k))
      end
    end
  end
  if o.verify ~= nil and type(o.verify) ~= "boolean" then
    argerror(n, fname, "verify must be a boolean")
  end
  if o.ca ~= nil and type(o.ca) ~= "string" then
    argerror(n, fname, "ca must be a path or PEM text")
  end
  return o
end
M.options = options

-- The header lines of opts.headers.
local function header_lines(hs, out)
  if not hs then return end
  for k, v in pairs(hs) do
    out[#out + 1] = k .. ": " .. tostring(v) .. "\r\n"
  end
end

-- The comma-separated tokens of a header value, lower-cased.
local function has_token(v, token)
  if type(v) ~= "string" then return false end
  for t in gmatch(lower(v), "[^,%s]+") do
    if t == token then return true end
  end
  return false
end

-- }====================================================================


-- {====================================================================
-- The connection
-- =====================================================================

local ST = {}  -- ws[ST]: the state the reader shares

-- State 'st': s (the stream), e (the engine), inbox (a loom.queue of
-- {kind, data}), server, protocol; seen (loop time of the last bytes
-- read); closing (a close went from here, ws:close's or wslay's);
-- ended (the connection is over: status and reason set); done (an
-- event set when it is); reader and beat (tasks).

-- Writes what the engine has to send; true or nil, msg, code.
local function flush(st)
  local out = st.e:output()
  if out == "" then return true end
  return st.s:write(out)
end

-- The connection is over: receivers get what is left of the inbox,
-- then nil, msg, status.
local function ended(st, status, reason, msg)
  if st.ended then return end
  st.ended = true
  st.status, st.reason = status, reason
  st.msg = msg or ("websocket closed (" .. status
    .. (reason ~= "" and ": " .. reason or "") .. ")")
  st.inbox:close()
  if st.room then st.room:set() end  -- a reader waiting for room ends
  local ws = st.proxy[1]  -- the user's object, while it lives
  if ws then ws.close_code, ws.close_reason = status, reason end
  local beat = st.beat
  if beat and beat ~= loom.current() then beat:cancel() end
  st.done:set()
end

-- Ends the stream after a close: what is queued goes out first (the
-- close frame), for a moment at most.
local function hang_up(st)
  local s = st.s
  pcall(loom.timeout, 1, s.shutdown, s)
  s:close()
end

-- The status of a close that came: 1005 when it had none.
local function status_of(ev)
  local status = ev[3]
  if not status or status == 0 then return 1005 end
  return status
end

-- One close that came or went: what ends the connection.
local function on_close(st, ev)
  flush(st)  -- the engine's reply to the peer's close
  if st.closing then  -- loom closed first: its status stands
    ended(st, st.sent_status, st.sent_reason or "")
  else
    ended(st, status_of(ev), ev[2])
  end
  hang_up(st)
end

-- Hands message 'ev' to the inbox; while it is full, waits for a
-- receive to make room or for a close to start (what comes after
-- loom's close is not delivered, so ws:close never waits on a full
-- inbox).
local function deliver(st, ev)
  local inbox = st.inbox
  while not st.closing and not st.ended do
    if inbox:put_nowait(ev) then return end
    local room = st.room
    if not room then
      room = loom.event()
      st.room = room
    end
    room:clear()
    st.stalled = true  -- the user is not receiving: no heartbeat drop
    room:wait()
    st.stalled = false
  end
end

-- The reader task's body: the connection's life.
local function read_loop(st)
  local s, e, inbox = st.s, st.e, st.inbox
  local data = st.rest
  st.rest = nil
  while true do
    if not data then
      local err, code
      data, err, code = s:read()
      if not data then
        if st.ended then return end
        if st.closing then  -- the peer went without answering our close
          ended(st, st.sent_status, st.sent_reason or "")
          s:close()
          return
        end
        ended(st, 1006, "", "websocket connection lost: "
          .. (code == "EOF" and "the peer closed it without a close frame"
              or tostring(err)))
        s:close()
        return
      end
    end
    st.seen = now()
    local evs, out, refused = e:feed(data)
    data = nil
    if out ~= "" then s:write(out) end  -- pongs, a close wslay sent
    if refused and not st.closing then
      -- what came was refused (1002, 1007, 1009): the connection fails
      -- (RFC 6455, 7.1.7), its close sent and no answer awaited
      local sent_status = refused
      st.closing, st.sent_status = true, sent_status
      for i = 1, #evs do  -- what came before the refused part, if room
        if evs[i][1] == "text" or evs[i][1] == "binary" then
          inbox:put_nowait(evs[i])
        end
      end
      ended(st, sent_status, "", ("websocket closed (%d): %s"):format(
        sent_status, REFUSED[sent_status] or "protocol error"))
      hang_up(st)
      return
    end
    for i = 1, #evs do
      local ev = evs[i]
      local kind = ev[1]
      if kind == "text" or kind == "binary" then
        deliver(st, ev)
      elseif kind == "close" then
        on_close(st, ev)
        return
      end
    end
  end
end

local function reader(st)
  local ok, err = pcall(read_loop, st)
  if not ok then
    if not st.ended then
      ended(st, 1006, "", "websocket connection lost: " .. tostring(err))
    end
    st.s:close()
  end
end

-- The heartbeat: a ping when nothing came for 'every' seconds; when
-- nothing answers within half of that, the connection is dropped.
local function heartbeat(st, every)
  while not st.ended do
    local quiet = now() - st.seen
    if quiet < every then
      loom.sleep(every - quiet)
    else
      local _, out = st.e:queue(2, "")
      local asked = now()
      -- the ping's write counts against the answer's time: a peer that
      -- reads nothing is dropped too
      local sent = not out or pcall(loom.timeout, every / 2, st.s.write,
        st.s, out)
      local left = every / 2 - (now() - asked)
      if sent and left > 0 then loom.sleep(left) end
      if st.seen < asked and not st.ended and not st.stalled then
        ended(st, 1006, "", ("websocket connection lost: no answer to a "
          .. "ping within %gs"):format(every / 2))
        st.s:close()
        return
      end
    end
  end
end

local WebSocket = {}
local ws_mt = { __name = "loom.http.websocket", __index = WebSocket }
local WEAK = { __mode = "v" }

-- A WebSocket over stream 's' ('rest': bytes read past the handshake).
local function new(s, server, rest, protocol, o)
  local st = {
    s = s, e = engine(server, o.max_message), server = server,
    inbox = loom.queue { maxsize = o.max_queue }, done = loom.event(),
    seen = now(), rest = rest ~= "" and rest or nil,
    close_timeout = o.close_timeout,
  }
  local ws = setmetatable({ [ST] = st, protocol = protocol }, ws_mt)
  st.proxy = setmetatable({ ws }, WEAK)
  st.reader = loom.spawn(reader, st)
  st.reader.name = "websocket reader"
  if o.heartbeat then
    st.beat = loom.spawn(heartbeat, st, o.heartbeat)
    st.beat.name = "websocket heartbeat"
  end
  return ws
end
M.new = new

-- }====================================================================


-- {====================================================================
-- The WebSocket
-- =====================================================================

local function state(ws, fname)
  if getmetatable(ws) ~= ws_mt then
    argerror(1, fname, "loom.http.websocket expected, got " .. type(ws))
  end
  return ws[ST]
end

local function closed(st)
  if st.ended then return nil, st.msg, st.status end
  return nil, "websocket is closing", st.sent_status or 1000
end

--- ws:send(data [, kind]) (suspends): true, or nil, msg, code
function WebSocket:send(data, kind)
  local st = state(self, "ws:send")
  if type(data) == "number" then data = tostring(data)
  elseif type(data) ~= "string" then
    check.expected(data, "string", 2, "ws:send")
  end
  local k = KINDS[kind or "text"]
  if not k then
    argerror(3, "ws:send", "kind must be \"text\" or \"binary\", got "
      .. tostring(kind))
  end
  if k == 0 and not is_utf8(data) then
    argerror(2, "ws:send", "text is not valid UTF-8 (send it as \"binary\")")
  end
  check.task("ws:send")
  if st.closing or st.ended then return closed(st) end
  local queued, out = st.e:queue(k, data)
  if not queued then return closed(st) end  -- the engine is closing
  return st.s:write(out or "")
end

--- ws:receive() (suspends): data, kind, or nil, msg, status once closed
function WebSocket:receive()
  local st = state(self, "ws:receive")
  check.task("ws:receive")
  local ev = st.inbox:get()
  if ev then
    local room = st.room
    if room then room:set() end
    return ev[2], ev[1]
  end
  return nil, st.msg, st.status
end

--- ws:messages(): for data, kind in ws:messages() do ... end, until the
-- WebSocket closes (ws.close_code tells how)
function WebSocket:messages()
  state(self, "ws:messages")
  return function()
    local data, kind = self:receive()
    if data then return data, kind end
    return nil
  end
end

--- ws:ping([data]) (suspends): true, or nil, msg, code
function WebSocket:ping(data)
  local st = state(self, "ws:ping")
  if data == nil then data = "" end
  if type(data) ~= "string" then
    check.expected(data, "string", 2, "ws:ping")
  end
  if #data > 125 then
    argerror(2, "ws:ping", "at most 125 bytes, got " .. #data)
  end
  check.task("ws:ping")
  if st.closing or st.ended then return closed(st) end
  local queued, out = st.e:queue(2, data)
  if not queued then return closed(st) end
  return st.s:write(out or "")
end

local function check_status(status, reason)
  if status == nil then status = 1000 end
  local n = math_type(status) and tointeger(status)
  if not n or n < 1000 or n > 4999 or n == 1004 or n == 1005 or n == 1006
     or n == 1015 or (n >= 1016 and n < 3000) then
    argerror(2, "ws:close", "status must be 1000-1003, 1007-1014 or "
      .. "3000-4999, got " .. tostring(status))
  end
  if reason == nil then reason = "" end
  if type(reason) ~= "string" then
    check.expected(reason, "string", 3, "ws:close")
  end
  if #reason > 123 then
    argerror(3, "ws:close", "reason is at most 123 bytes, got " .. #reason)
  end
  if not is_utf8(reason) then
    argerror(3, "ws:close", "reason is not valid UTF-8")
  end
  return n, reason
end

-- Sends a close frame (once); the reader ends the connection when the
-- peer's answer comes.
local function start_close(st, status, reason)
  if st.closing or st.ended then return end
  st.closing, st.sent_status, st.sent_reason = true, status, reason
  if st.room then st.room:set() end  -- a reader waiting for room reads on
  st.e:close(status, reason)
  if not flush(st) then
    ended(st, 1006, "", "websocket connection lost while closing")
    st.s:close()
    return
  end
  st.close_sent = true
end

-- The closing handshake: the close frame, then the peer's, all within
-- close_timeout seconds (a peer that reads nothing cannot hold the close
-- frame's write either), after which the connection is cut.
local function close(st, status, reason)
  if not st.ended then
    local ok, e = pcall(loom.timeout, st.close_timeout, function()
      start_close(st, status, reason)
      if not st.ended then st.done:wait() end
    end)
    if not ok then
      if not is_timeout(e) then
        st.s:close()
        error(e, 0)
      end
      if st.close_sent then
        ended(st, st.sent_status or status, st.sent_reason or reason,
          ("websocket closed (%d): no answer to the close within %gs")
          :format(st.sent_status or status, st.close_timeout))
      else
        ended(st, 1006, "", ("websocket connection lost: the close could "
          .. "not be sent within %gs"):format(st.close_timeout))
      end
      st.s:close()
    end
  end
  return true
end
M.close_state = function(ws, status, reason)  -- the server's shutdown
  close(ws[ST], status, reason)
end

--- ws:close([status [, reason]]) (suspends): true, once the peer
-- answered the close or close_timeout passed
function WebSocket:close(status, reason)
  local st = state(self, "ws:close")
  status, reason = check_status(status, reason)
  if st.ended then return true end
  check.task("ws:close")
  return close(st, status, reason)
end

ws_mt.__tostring = function(ws)
  local st = ws[ST]
  local ok, host, port = pcall(st.s.peer, st.s)
  if st.ended or not ok then return "loom.http.websocket (closed)" end
  return ("loom.http.websocket (%s:%d)"):format(host, port)
end

-- <close>: the closing handshake when a task is running, else the
-- connection is cut
ws_mt.__close = function(ws)
  local st = ws[ST]
  if st.ended then return end
  if loom.current() then close(st, 1000, "")
  else  -- cut: the reader, even one waiting for room, ends
    ended(st, 1006, "", "websocket connection lost: closed outside a task")
    st.s:close()
  end
end

-- the collector: the connection is cut (the reader then ends)
ws_mt.__gc = function(ws)
  local st = ws[ST]
  if not st.ended then
    ended(st, 1006, "", "websocket connection lost: collected")
    st.s:close()
  end
end

-- }====================================================================


-- {====================================================================
-- The server's handshake (RFC 6455, 4.2)
-- =====================================================================

-- What 'req' asks, checked: the 101 response's head and the protocol
-- chosen, or nil, status, why.
function M.handshake(req, o)
  local h = req.headers
  if req.method ~= "GET" then
    return nil, 400, "a WebSocket upgrade must be a GET, not " .. req.method
  end
  if not has_token(h.upgrade, "websocket") then
    return nil, 400, "not a WebSocket upgrade (no Upgrade: websocket)"
  end
  if not has_token(h.connection, "upgrade") then
    return nil, 400, "not a WebSocket upgrade (no Connection: Upgrade)"
  end
  if h["sec-websocket-version"] ~= "13" then
    return nil, 426, "unsupported Sec-WebSocket-Version "
      .. tostring(h["sec-websocket-version"]) .. " (13 expected)"
  end
  local key = h["sec-websocket-key"]
  if type(key) ~= "string" or not find(key, "^[%w+/]+==$") or #key ~= 24 then
    return nil, 400, "bad Sec-WebSocket-Key " .. tostring(key)
  end
  local protocol
  if o.protocols and h["sec-websocket-protocol"] then
    local offered = {}
    for p in gmatch(h["sec-websocket-protocol"], "[^,%s]+") do
      offered[p] = true
    end
    for _, p in ipairs(o.protocols) do  -- the server's preference
      if offered[p] then protocol = p break end
    end
  end
  local out = { "HTTP/1.1 101 Switching Protocols\r\n",
                "Upgrade: websocket\r\nConnection: Upgrade\r\n",
                "Sec-WebSocket-Accept: ", accept_of(key), "\r\n" }
  if protocol then out[#out + 1] = "Sec-WebSocket-Protocol: " .. protocol
    .. "\r\n" end
  header_lines(o.headers, out)
  out[#out + 1] = "\r\n"
  return concat(out), protocol
end

-- }====================================================================


-- {====================================================================
-- The client: http.websocket(url [, opts])
-- =====================================================================

local SCHEMES = { ws = false, http = false, wss = true, https = true }

-- tls, host, port, the request target and the Host header of 'url';
-- raises (argument 1 of http.websocket) when it is not a WebSocket URL.
local function parse_url(url)
  local scheme, rest = url:match("^(%a[%w+.-]*)://(.*)$")
  local tls = scheme and SCHEMES[lower(scheme)]
  if tls == nil then
    argerror(1, "http.websocket", "a ws:// or wss:// URL expected, got "
      .. url)
  end
  local authority = rest:match("^[^/?#]*")
  local target = rest:sub(#authority + 1):gsub("#.*$", "")
  if target == "" or target:sub(1, 1) == "?" then target = "/" .. target end
  if find(authority, "@", 1, true) then
    argerror(1, "http.websocket", "user information in the URL is not "
      .. "supported: " .. url)
  end
  local host, port = authority:match("^%[([^%]]+)%]:?(%d*)$")
  if not host then host, port = authority:match("^([^:]+):?(%d*)$") end
  if not host or host == "" then
    argerror(1, "http.websocket", "no host in " .. url)
  end
  local default = tls and 443 or 80
  port = port ~= "" and tointeger(tonumber(port)) or default
  if port < 1 or port > 65535 then
    argerror(1, "http.websocket", "bad port in " .. url)
  end
  local hosthdr = find(host, ":", 1, true) and "[" .. host .. "]" or host
  if port ~= default then hosthdr = hosthdr .. ":" .. port end
  return tls, host, port, target, hosthdr
end

local MAX_HEAD = 16 * 1024

-- Reads the server's answer to the upgrade; checks it.  A WebSocket, or
-- nil, msg, code.
local function answer(s, url, key, o)
  local p = core.http.parser({ max_header_size = MAX_HEAD }, true)
  local data, err, code
  while true do
    data, err, code = s:read()
    if not data then
      return nil, ("websocket handshake with %s: %s"):format(url,
        code == "EOF" and "the server closed the connection" or err),
        code == "EOF" and "EPROTO" or code
    end
    local kind, res, pos = p:feed(data, 1)
    if kind == "error" then
      return nil, ("websocket handshake with %s: bad response (%s)")
        :format(url, pos), "EPROTO"
    end
    if kind == "request" or kind == "head" then
      local function refuse(why)
        return nil, ("websocket handshake with %s: %s"):format(url, why),
          "EPROTO"
      end
      if res.status ~= 101 then
        return refuse(("the server answered %d %s"):format(res.status,
          res.reason or ""))
      end
      local h = res.headers
      if not has_token(h.upgrade, "websocket")
         or not has_token(h.connection, "upgrade") then
        return refuse("the server's 101 is not an upgrade to websocket")
      end
      if h["sec-websocket-accept"] ~= accept_of(key) then
        return refuse("wrong Sec-WebSocket-Accept")
      end
      if h["sec-websocket-extensions"] then  -- none is offered
        return refuse("the server chose extensions ("
          .. h["sec-websocket-extensions"] .. "), none were offered")
      end
      local protocol = h["sec-websocket-protocol"]
      if protocol then
        local ok = false
        for _, q in ipairs(o.protocols or {}) do
          if q == protocol then ok = true end
        end
        if not ok then
          return refuse("the server chose protocol " .. protocol
            .. ", which was not offered")
        end
      end
      return new(s, false, data:sub(pos), protocol, o)
    end
  end
end

--- http.websocket(url [, opts]) (suspends): a WebSocket, or nil, msg,
-- code
function M.connect(url, opts)
  check.cstring(url, 1, "http.websocket")
  local o = options(opts, 2, "http.websocket")
  local tls, host, port, target, hosthdr = parse_url(url)
  check.task("http.websocket")
  local s  -- closed here when the time runs out
  local function open()
    local err, code
    s, err, code = loom.net.connect(host, port, {
      tls = tls and { verify = o.verify, ca = o.ca } or nil })
    if not s then return nil, err, code end
    local key = new_key()
    local out = { "GET ", target, " HTTP/1.1\r\n" }
    local names = {}
    for k in pairs(o.headers or {}) do names[lower(k)] = true end
    if not names.host then out[#out + 1] = "Host: " .. hosthdr .. "\r\n" end
    out[#out + 1] = "Upgrade: websocket\r\nConnection: Upgrade\r\n"
      .. "Sec-WebSocket-Key: " .. key .. "\r\nSec-WebSocket-Version: 13\r\n"
    if o.protocols and #o.protocols > 0 then
      out[#out + 1] = "Sec-WebSocket-Protocol: " .. concat(o.protocols, ", ")
        .. "\r\n"
    end
    header_lines(o.headers, out)
    out[#out + 1] = "\r\n"
    local ok
    ok, err, code = s:write(concat(out))
    if ok then
      local ws
      ws, err, code = answer(s, url, key, o)
      if ws then return ws end
    end
    s:close()
    return nil, err, code
  end
  local ok, ws, err, code = pcall(loom.timeout, o.timeout, open)
  if not ok then
    if s then s:close() end
    if is_timeout(ws) then
      return nil, ("websocket handshake with %s: timed out after %gs")
        :format(url, o.timeout), "ETIMEDOUT"
    end
    error(ws, 0)
  end
  return ws, err, code
end

-- }====================================================================

return M
