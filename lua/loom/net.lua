--[[ loom.net: TCP, Unix sockets, UDP, name resolution and TLS.

  The Streams, servers and sockets are C (src/stream.c, src/net.c, and
  src/tls.c for TLS on a stream); this module resolves names, tries each
  address in turn, applies opts.timeout (to the TLS handshake too),
  checks the TLS options and makes their contexts, and runs each
  accepted connection as its own task (after its handshake, on a TLS
  server) that closes its stream when the handler returns or fails.
  Failures are values: nil, message, code, the message naming the
  address.
]]
local core, loom = ...
local cnet, ctls = core.net, core.tls

local type, error, pcall, ipairs, tostring, setmetatable = type, error,
  pcall, ipairs, tostring, setmetatable
local math_type = math.type
local char, concat = string.char, table.concat
local spawn, is_timeout, fail = core.spawn, core.is_timeout, core.fail
local watch = core.watch

local M = {}

local check = core.check
local argerror, check_cstring, check_callable, check_opts =
  check.argerror, check.cstring, check.callable, check.opts

local function check_port(port, n, fname)
  if math_type(port) ~= "integer" or port < 0 or port > 65535 then
    argerror(n, fname, "port must be an integer from 0 to 65535, got "
      .. tostring(port))
  end
end

local function is_ip(host)
  return host:match("^%d+%.%d+%.%d+%.%d+$") ~= nil or host:find(":", 1, true)
end

local function where(host, port)
  if host:find(":", 1, true) then return ("[%s]:%d"):format(host, port) end
  return ("%s:%d"):format(host, port)
end

--- net.resolve(host) (suspends): a list of address strings
function M.resolve(host)
  check_cstring(host, 1, "net.resolve")
  return cnet.resolve(host)
end

-- {====================================================================
-- TLS options

-- The host name each stream was connected to: stream:starttls checks the
-- peer's certificate against it unless told another.
local hostnames = setmetatable({}, { __mode = "k" })

-- An ALPN list, {"h2", "http/1.1"}, in wire format (each name after its
-- length), or nil.
local function alpn_wire(list, n, fname, field)
  if list == nil then return nil end
  if type(list) ~= "table" or #list == 0 then
    argerror(n, fname, field .. "alpn must be a non-empty list of strings")
  end
  local parts = {}
  for i, p in ipairs(list) do
    if type(p) ~= "string" or #p == 0 or #p > 255 then
      argerror(n, fname, ("%salpn[%d] must be a string of 1 to 255 bytes")
        :format(field, i))
    end
    parts[i] = char(#p) .. p
  end
  return concat(parts)
end

local function opt_string(v, n, fname, field, what)
  if v ~= nil and (type(v) ~= "string" or v == "" or v:find("\0", 1, true))
  then
    argerror(n, fname, ("%s must be %s, got %s"):format(field, what,
      type(v) == "string" and "a bad string" or type(v)))
  end
end

-- A client's TLS options, true or {verify =, ca =, servername =, alpn =}
-- (fields named with 'field', "tls." or ""), checked.
local function client_tls(t, n, fname, field)
  if t == true then t = {} end
  if type(t) ~= "table" then
    argerror(n, fname, ("%s must be true or a table, got %s"):format(
      field == "" and "TLS options" or "tls", type(t)))
  end
  if t.verify ~= nil and type(t.verify) ~= "boolean" then
    argerror(n, fname, field .. "verify must be a boolean")
  end
  opt_string(t.ca, n, fname, field .. "ca", "a path or PEM text")
  opt_string(t.servername, n, fname, field .. "servername", "a host name")
  return { verify = t.verify ~= false, ca = t.ca, servername = t.servername,
           alpn = alpn_wire(t.alpn, n, fname, field) }
end

-- A server's {cert =, key =, alpn =, handshake_timeout =}, checked.
local function server_tls(t, n, fname)
  if type(t) ~= "table" then
    argerror(n, fname, "tls must be a table with cert and key, got "
      .. type(t))
  end
  opt_string(t.cert, n, fname, "tls.cert", "a path or PEM text")
  opt_string(t.key, n, fname, "tls.key", "a path or PEM text")
  if t.cert == nil or t.key == nil then
    argerror(n, fname, "tls needs cert and key")
  end
  local limit = t.handshake_timeout
  if limit == nil then limit = 10
  elseif type(limit) ~= "number" or not (limit > 0) then
    argerror(n, fname, "tls.handshake_timeout must be a positive number")
  end
  return { cert = t.cert, key = t.key, limit = limit,
           alpn = alpn_wire(t.alpn, n, fname, "tls.") }
end

-- The client context of checked options (the host's default one when
-- nothing differs from it), or nil, msg, code (a CA that cannot load).
local function client_ctx(t)
  return ctls.client(t.verify, t.ca, t.alpn)
end

-- The client handshake on 's' for 'name' (suspends); 's' is closed
-- when it fails, times out or is cancelled.
local function handshake(s, ctx, name, fname)
  local ok, r, err, code = pcall(ctls.connect, s, ctx, name, fname)
  if ok and r then return r end
  s:close()
  if not ok then error(r, 0) end
  return nil, err, code
end

-- }====================================================================

-- Connects to each address of 'host' in turn; the last failure wins.
local function connect_any(host, port)
  local addrs, err, code
  if is_ip(host) then addrs = { host }
  else
    addrs, err, code = cnet.resolve(host)
    if not addrs then
      return fail("connect to", where(host, port), err, code)
    end
  end
  for _, ip in ipairs(addrs) do
    local s
    s, err, code = cnet.tcp_connect(ip, port)
    if s then return s end
  end
  if #addrs == 0 then
    return fail("connect to", where(host, port), "no address", "EAI_NONAME")
  end
  return nil, err, code
end

--- net.connect(host, port [, {timeout =, nodelay = true, tls =}])
-- (suspends); opts.tls: true or {verify =, ca =, servername =, alpn =}
function M.connect(host, port, opts)
  check_cstring(host, 1, "net.connect")
  check_port(port, 2, "net.connect")
  opts = check_opts(opts, 3, "net.connect")
  local t = opts.timeout
  if t ~= nil and (type(t) ~= "number" or not (t >= 0)) then
    argerror(3, "net.connect", "timeout must be a non-negative number")
  end
  local tls = opts.tls
  if tls ~= nil and tls ~= false then
    tls = client_tls(tls, 3, "net.connect", "tls.")
  else tls = nil end
  check.task("net.connect")
  local ctx, err, code
  if tls then
    ctx, err, code = client_ctx(tls)
    if not ctx then return nil, err, code end
  end
  local what = "connect to"
  local function open()
    local s, e, c = connect_any(host, port)
    if not s then return nil, e, c end
    if opts.nodelay ~= false then s:nodelay(true) end
    hostnames[s] = host
    if not ctx then return s end
    what = "TLS handshake with"
    return handshake(s, ctx, tls.servername or host, "net.connect")
  end
  if t == nil then return open() end
  local ok, s
  ok, s, err, code = pcall(loom.timeout, t, open)
  if not ok then
    if is_timeout(s) then
      return fail(what, where(host, port), ("timed out after %gs"):format(t),
        "ETIMEDOUT")
    end
    error(s, 0)
  end
  return s, err, code
end

--- net.connect_unix(path) (suspends)
function M.connect_unix(path)
  check_cstring(path, 1, "net.connect_unix")
  return cnet.pipe_connect(path)
end

-- The body of a connection's task: the stream goes when the handler does.
local function serve(handler, stream)
  local s <close> = stream
  core.detached(handler, s)
end

-- The connection's task is named for its peer; with max_connections,
-- 'ended' is called when it is done (quietly: its error stays the
-- handler's to report), so that the server accepts the next one.
local function started(t, stream, ended)
  t.name = "conn " .. tostring(stream):match("%((.*)%)")
  if ended then watch(t, ended) end
end

local function on_conn_for(handler, ended)
  return function(stream)
    started(spawn(serve, handler, stream), stream, ended)
  end
end

-- The body of a TLS connection's task: the handshake (for at most
-- 'limit' seconds), then the handler.  A handshake that fails or takes
-- too long closes the connection and nothing more: the server goes on.
local function serve_tls(handler, ctx, limit, stream)
  local s <close> = stream
  local ok, r = pcall(loom.timeout, limit, ctls.accept, s, ctx, nil,
                      "net.listen")
  if ok and r then return core.detached(handler, s) end
  if not ok and not is_timeout(r) then error(r, 0) end  -- cancelled
end

local function on_tls_conn_for(handler, ctx, limit, ended)
  return function(stream)
    started(spawn(serve_tls, handler, ctx, limit, stream), stream, ended)
  end
end

-- What a server calls for each connection: the handler's task, after
-- the handshake when opts.tls is given (its context made here, once:
-- or nil, msg, code when its certificate or key cannot be used).
local function on_conn_of(handler, opts, n, fname, ended)
  if opts.tls == nil then return on_conn_for(handler, ended) end
  local tls = server_tls(opts.tls, n, fname)
  local ctx, err, code = ctls.server(tls.cert, tls.key, tls.alpn)
  if not ctx then return nil, err, code end
  return on_tls_conn_for(handler, ctx, tls.limit, ended)
end

-- opts.max_connections and opts.on_full, checked: a positive integer,
-- or nil (no limit), and a function or nil.
local function check_max(opts, n, fname)
  local max = opts.max_connections
  if max ~= nil and (math_type(max) ~= "integer" or max <= 0) then
    argerror(n, fname, "max_connections must be a positive integer, got "
      .. tostring(max))
  end
  if opts.on_full ~= nil and type(opts.on_full) ~= "function" then
    argerror(n, fname, "on_full must be a function, got "
      .. type(opts.on_full))
  end
  return max, opts.on_full
end

-- Listens with 'listen'(..., on_conn, ...) (a function of on_conn):
-- with 'max', each connection's end is told to the server, which holds
-- the next connection while 'max' are open.
local function listen_with(listen, handler, opts, n, fname, max)
  local server
  local ended = max and function() cnet.release(server) end
  local on_conn, err, code = on_conn_of(handler, opts, n, fname, ended)
  if not on_conn then return nil, err, code end
  server, err, code = listen(on_conn)
  return server, err, code
end

local hosts = { localhost = "127.0.0.1", ["*"] = "0.0.0.0", [""] = "0.0.0.0" }

--- net.listen(host, port, handler [, {backlog =, reuseport =, tls =,
-- max_connections =, on_full =}]): a Server; opts.tls: {cert =, key =,
-- alpn =, handshake_timeout = 10}
function M.listen(host, port, handler, opts)
  check_cstring(host, 1, "net.listen")
  check_port(port, 2, "net.listen")
  check_callable(handler, 3, "net.listen")
  opts = check_opts(opts, 4, "net.listen")
  if opts.backlog ~= nil and math_type(opts.backlog) ~= "integer" then
    argerror(4, "net.listen", "backlog must be an integer")
  end
  if opts.reuseport ~= nil and type(opts.reuseport) ~= "boolean" then
    argerror(4, "net.listen", "reuseport must be a boolean")
  end
  local max, on_full = check_max(opts, 4, "net.listen")
  local ip = hosts[host] or host
  if not is_ip(ip) then
    argerror(1, "net.listen", "an IP address, 'localhost' or '*' expected, "
      .. "got '" .. host .. "'")
  end
  return listen_with(function(on_conn)
    return cnet.tcp_listen(ip, port, opts.backlog, opts.reuseport, on_conn,
                           max, on_full)
  end, handler, opts, 4, "net.listen", max)
end

--- net.listen_unix(path, handler [, {backlog =, tls =,
-- max_connections =, on_full =}]): a Server
function M.listen_unix(path, handler, opts)
  check_cstring(path, 1, "net.listen_unix")
  check_callable(handler, 2, "net.listen_unix")
  opts = check_opts(opts, 3, "net.listen_unix")
  if opts.backlog ~= nil and math_type(opts.backlog) ~= "integer" then
    argerror(3, "net.listen_unix", "backlog must be an integer")
  end
  local max, on_full = check_max(opts, 3, "net.listen_unix")
  return listen_with(function(on_conn)
    return cnet.pipe_listen(path, opts.backlog, on_conn, false, max,
                            on_full)
  end, handler, opts, 3, "net.listen_unix", max)
end

--- net.udp([host, port]): a UDP socket (bound when host is given)
function M.udp(host, port)
  if host ~= nil then
    check_cstring(host, 1, "net.udp")
    if port ~= nil then check_port(port, 2, "net.udp") end
    host = hosts[host] or host
  end
  return cnet.udp(host, port)
end

--- stream:lines(): for line in s:lines() do ... end; ends at EOF,
-- raises on other failures (as io.lines does).
cnet.stream_methods.lines = core.lines

--- stream:starttls([{verify =, ca =, servername =, alpn =}]) (suspends):
-- the TLS client handshake on a connected plain stream, which is then a
-- TLS stream (or, when it fails, closed); the stream, or nil, msg, code.
-- The certificate is checked against opts.servername, else the host
-- name given to net.connect, else the peer's address.
function cnet.stream_methods.starttls(s, opts)
  ctls.check(s, "stream:starttls")
  local t = client_tls(opts == nil or opts, 1, "stream:starttls", "")
  check.task("stream:starttls")
  local ctx, err, code = client_ctx(t)
  if not ctx then return nil, err, code end
  local name = t.servername or hostnames[s]
  if name == nil then
    local ok, peer = pcall(s.peer, s)
    name = ok and peer or "?"
  end
  return handshake(s, ctx, name, "stream:starttls")
end

--- stream:tls(): nil for a plain stream, else {version =, cipher =,
-- alpn =, verified =}
cnet.stream_methods.tls = ctls.info

return M
