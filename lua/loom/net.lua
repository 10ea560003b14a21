--[[ loom.net: TCP, Unix sockets, UDP and name resolution.

  The Streams, servers and sockets are C (src/stream.c, src/net.c); this
  module resolves names, tries each address in turn, applies
  opts.timeout, and runs each accepted connection as its own task that
  closes its stream when the handler returns or fails.  Failures are
  values: nil, message, code, the message naming the address.
]]
local core, loom = ...
local cnet = core.net

local type, error, pcall, ipairs, tostring = type, error, pcall, ipairs,
  tostring
local math_type = math.type
local spawn, is_timeout, fail = core.spawn, core.is_timeout, core.fail

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

--- net.connect(host, port [, {timeout =, nodelay = true}]) (suspends)
function M.connect(host, port, opts)
  check_cstring(host, 1, "net.connect")
  check_port(port, 2, "net.connect")
  opts = check_opts(opts, 3, "net.connect")
  check.task("net.connect")
  local s, err, code
  if opts.timeout ~= nil then
    local t = opts.timeout
    if type(t) ~= "number" or not (t >= 0) then
      argerror(3, "net.connect", "timeout must be a non-negative number")
    end
    local ok
    ok, s, err, code = pcall(loom.timeout, t, connect_any, host, port)
    if not ok then
      if is_timeout(s) then
        return fail("connect to", where(host, port),
          ("timed out after %gs"):format(t), "ETIMEDOUT")
      end
      error(s, 0)
    end
  else
    s, err, code = connect_any(host, port)
  end
  if s and opts.nodelay ~= false then s:nodelay(true) end
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

local function on_conn_for(handler)
  return function(stream)
    local t = spawn(serve, handler, stream)
    t.name = "conn " .. tostring(stream):match("%((.*)%)")
  end
end

local hosts = { localhost = "127.0.0.1", ["*"] = "0.0.0.0", [""] = "0.0.0.0" }

--- net.listen(host, port, handler [, {backlog =, reuseport =}]): a Server
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
  local ip = hosts[host] or host
  if not is_ip(ip) then
    argerror(1, "net.listen", "an IP address, 'localhost' or '*' expected, "
      .. "got '" .. host .. "'")
  end
  return cnet.tcp_listen(ip, port, opts.backlog, opts.reuseport,
                         on_conn_for(handler))
end

--- net.listen_unix(path, handler): a Server
function M.listen_unix(path, handler, opts)
  check_cstring(path, 1, "net.listen_unix")
  check_callable(handler, 2, "net.listen_unix")
  opts = check_opts(opts, 3, "net.listen_unix")
  if opts.backlog ~= nil and math_type(opts.backlog) ~= "integer" then
    argerror(3, "net.listen_unix", "backlog must be an integer")
  end
  return cnet.pipe_listen(path, opts.backlog, on_conn_for(handler))
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

return M
