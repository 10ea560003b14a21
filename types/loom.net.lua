---@meta loom.net
-- LuaCATS annotations for loom.net: TCP, Unix sockets, UDP, TLS, and
-- the Stream that every byte stream of loom is.

---@class loom.net
local net = {}

---Client TLS: `true`, or the settings.
---@class loom.TLSClientOptions
---@field verify? boolean false: do not check the server's certificate
---@field ca? string a CA bundle (path or PEM text)
---@field servername? string the name the certificate is checked against (and SNI)
---@field alpn? string[] protocols offered

---Server TLS.
---@class loom.TLSServerOptions
---@field cert string certificate chain (path or PEM text)
---@field key string private key (path or PEM text)
---@field alpn? string[] protocols accepted
---@field handshake_timeout? number seconds (default 10)

---@class loom.ConnectOptions
---@field timeout? number seconds for the connection
---@field nodelay? boolean TCP_NODELAY (default true)
---@field tls? true|loom.TLSClientOptions

---@class loom.ListenOptions
---@field backlog? integer
---@field reuseport? boolean
---@field tls? loom.TLSServerOptions
---@field max_connections? integer open at once; the next wait (default: no limit)
---@field on_full? fun() called when a client waits for a place

---A TCP connection (host names resolved asynchronously, IPv4 and IPv6).
---@async
---@param host string
---@param port integer
---@param opts? loom.ConnectOptions
---@return loom.Stream? stream
---@return string? err
---@return loom.ErrorCode? code
function net.connect(host, port, opts) end

---A connection to a Unix domain socket.
---@async
---@param path string
---@return loom.Stream? stream
---@return string? err
---@return loom.ErrorCode? code
function net.connect_unix(path) end

---Listens at once; each accepted connection runs `handler(stream)` as its
---own task, and the stream is closed when the handler ends. Port 0 picks
---a free port; host is an IP address, "localhost" or "*".
---@param host string
---@param port integer
---@param handler async fun(stream: loom.Stream)
---@param opts? loom.ListenOptions
---@return loom.Server? server
---@return string? err
---@return loom.ErrorCode? code
function net.listen(host, port, handler, opts) end

---As `net.listen`, on a Unix domain socket.
---@param path string
---@param handler async fun(stream: loom.Stream)
---@param opts? {backlog?: integer, tls?: loom.TLSServerOptions, max_connections?: integer, on_full?: fun()}
---@return loom.Server? server
---@return string? err
---@return loom.ErrorCode? code
function net.listen_unix(path, handler, opts) end

---A UDP socket, bound when host is given.
---@overload fun(): loom.UDP?, string?, loom.ErrorCode?
---@param host string
---@param port? integer
---@return loom.UDP? socket
---@return string? err
---@return loom.ErrorCode? code
function net.udp(host, port) end

---The addresses of `host`.
---@async
---@param host string
---@return string[]? addresses
---@return string? err
---@return loom.ErrorCode? code
function net.resolve(host) end

---A listening socket (net.listen, net.listen_unix, loom.console).
---@class loom.Server
local Server = {}

---The bound host and port (a Unix socket: its path).
---@return string host
---@return integer? port
function Server:address() end

---Stops accepting; open connections go on. Harmless the second time.
function Server:close() end

---A byte stream: TCP, Unix socket, pipe, process stdio, standard
---streams, TLS. Reads and writes on a closed stream return
---`nil, msg, "ECANCELED"`.
---@class loom.Stream
local Stream = {}

---Up to `n` bytes (default: whatever is buffered or next arrives);
---`nil, "... end of file", "EOF"` at the end.
---@async
---@param n? integer
---@return string? data
---@return string? err
---@return loom.ErrorCode? code
function Stream:read(n) end

---Exactly `n` bytes; at EOF before that, `nil, msg, "EOF", partial`.
---@async
---@param n integer
---@return string? data
---@return string? err
---@return loom.ErrorCode? code
---@return string? partial the bytes read before EOF
function Stream:read_exactly(n) end

---One line without its "\n" or "\r\n" (the last unterminated line at
---EOF); a line over the stream's limit gives `nil, msg, "ELINE"`.
---@async
---@return string? line
---@return string? err
---@return loom.ErrorCode? code
function Stream:read_line() end

---The bytes up to and including `sep`.
---@async
---@param sep string
---@return string? data
---@return string? err
---@return loom.ErrorCode? code
function Stream:read_until(sep) end

---Everything to EOF.
---@async
---@return string? data
---@return string? err
---@return loom.ErrorCode? code
function Stream:read_all() end

---`for line in s:lines() do ... end`; ends at EOF, raises on other
---failures.
---@return async fun(): string?
function Stream:lines() end

---Queues the data; suspends while more than the high-water mark is
---waiting to be sent.
---@async
---@param data string|number
---@param ... string|number
---@return true? ok
---@return string? err
---@return loom.ErrorCode? code
function Stream:write(data, ...) end

---Suspends until everything written has been handed to the kernel.
---@async
---@return true? ok
---@return string? err
---@return loom.ErrorCode? code
function Stream:flush() end

---Half-close: the end of writes, after the pending ones.
---@async
---@return true? ok
---@return string? err
---@return loom.ErrorCode? code
function Stream:shutdown() end

---Closes; pending and later reads and writes get `nil, msg, "ECANCELED"`.
---Harmless the second time.
function Stream:close() end

---The remote end.
---@return string host
---@return integer? port
function Stream:peer() end

---The local end.
---@return string host
---@return integer? port
function Stream:address() end

---TCP_NODELAY on or off (raises on a stream that is not TCP).
---@param on boolean
---@return true? ok
---@return string? err
---@return loom.ErrorCode? code
function Stream:nodelay(on) end

---TCP keep-alive on or off, probing after `delay` seconds (default 60).
---@param on boolean
---@param delay? integer
---@return true? ok
---@return string? err
---@return loom.ErrorCode? code
function Stream:keepalive(on, delay) end

---The stream's limits in bytes, set when given: the write high-water
---mark and the longest line `read_line` takes.
---@param limits? {high_water?: integer, line?: integer}
---@return integer high_water
---@return integer line
function Stream:limits(limits) end

---The timeout of each read, write and flush call in seconds (`nil`: none),
---set first when given (`nil` or 0: none). A call that waits longer
---returns `nil, msg, "ETIMEDOUT"`; the stream stays usable.
---@param s? number
---@return number? timeout
function Stream:timeout(s) end

---A terminal's raw mode on or off; `nil, msg, "ENOTTY"` on a stream that
---is not a terminal.
---@param on boolean
---@return true? ok
---@return string? err
---@return loom.ErrorCode? code
function Stream:raw(on) end

---The TLS client handshake on a connected plain stream, which is then a
---TLS stream (or, when it fails, closed).
---@async
---@param opts? loom.TLSClientOptions
---@return loom.Stream? stream
---@return string? err
---@return loom.ErrorCode? code
function Stream:starttls(opts) end

---@class loom.TLSInfo
---@field version string
---@field cipher string
---@field alpn? string
---@field verified boolean

---nil for a plain stream, else what its TLS uses.
---@return loom.TLSInfo?
function Stream:tls() end

---A UDP socket (net.udp).
---@class loom.UDP
local UDP = {}

---Sends one datagram (suspends only while the kernel cannot take it).
---@async
---@param data string
---@param host string an IP address
---@param port integer
---@return true? ok
---@return string? err
---@return loom.ErrorCode? code
function UDP:send(data, host, port) end

---The next datagram and where it came from.
---@async
---@return string? data
---@return string? host_or_err
---@return integer|loom.ErrorCode|nil port_or_code
function UDP:recv() end

---@return string host
---@return integer port
function UDP:address() end

function UDP:close() end

return net
