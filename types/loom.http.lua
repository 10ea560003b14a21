---@meta loom.http
-- LuaCATS annotations for loom.http: an HTTP/1.1 client (libcurl) and
-- server (llhttp), loaded on first use.

---@class loom.http
local http = {}

---@class loom.http.RequestOptions
---@field url? string (http.request with a table)
---@field method? string default "GET" ("POST" for http.post)
---@field headers? table<string, string|number>
---@field body? string
---@field json? any the body, encoded by loom.json, with content-type application/json
---@field timeout? number seconds for the whole transfer: then nil, msg, "ETIMEDOUT"
---@field redirects? integer most redirects followed (default 5; 0: none)
---@field verify? boolean false: do not check the server's TLS certificate
---@field ca? string a CA bundle: a path, or PEM text
---@field stream? boolean return once the headers are in; read the body with res:read or res:chunks

---An HTTP request (HTTP/1.1 and HTTPS, redirects, keep-alive, chunked
---and gzip bodies). An error status (404, 500) is a response too.
---@async
---@overload fun(opts: loom.http.RequestOptions): loom.http.Response?, string?, loom.ErrorCode?
---@param url string
---@param opts? loom.http.RequestOptions
---@return loom.http.Response? response
---@return string? err
---@return loom.ErrorCode? code
function http.request(url, opts) end

---@async
---@param url string
---@param opts? loom.http.RequestOptions
---@return loom.http.Response? response
---@return string? err
---@return loom.ErrorCode? code
function http.get(url, opts) end

---`body` a string, or nil with `opts.json`.
---@async
---@param url string
---@param body string?
---@param opts? loom.http.RequestOptions
---@return loom.http.Response? response
---@return string? err
---@return loom.ErrorCode? code
function http.post(url, body, opts) end

---@class loom.ServeOptions
---@field backlog? integer
---@field reuseport? boolean
---@field tls? loom.TLSServerOptions
---@field max_header_size? integer bytes (default 16 KiB; over it: 431)
---@field max_body_size? integer bytes (default 1 MiB; over it: 413)
---@field header_timeout? number seconds (default 60)
---@field body_timeout? number seconds (default 60)
---@field keepalive_timeout? number seconds (default 75)
---@field max_requests? integer per connection (default 1000)
---@field max_connections? integer open at once; the next wait (default 10000)

---What a handler returns instead of `status, body [, headers]`.
---@class loom.HTTPReply
---@field status? integer
---@field headers? table<string, string|number>
---@field body? string|fun(): string?
---@field json? any

---Serves HTTP: `handler(req)` runs as a task per request and returns
---`status, body [, headers]` or a `loom.HTTPReply`; a handler error gives
---500 and is logged.
---@param host string
---@param port integer
---@param handler async fun(req: loom.http.Request): (integer|loom.HTTPReply), string?, table<string, string|number>?
---@param opts? loom.ServeOptions
---@return loom.http.Server? server
---@return string? err
---@return loom.ErrorCode? code
function http.serve(host, port, handler, opts) end

---A response of the client.
---@class loom.http.Response
---@field status integer
---@field headers table<string, string|string[]> lower-case names
---@field body string? the body (nil when streamed)
---@field url string the final URL, after redirects
local Response = {}

---Up to `n` bytes of the body as they come; `nil, msg, "EOF"` at the end.
---@async
---@param n? integer
---@return string? data
---@return string? err
---@return loom.ErrorCode? code
function Response:read(n) end

---`for chunk in res:chunks() do ... end`: the body to its end.
---@return async fun(): string?
function Response:chunks() end

---Ends a streamed transfer that is not done.
function Response:close() end

---Of a streamed body, the bytes received and not yet read.
---@return integer
function Response:buffered() end

---The body decoded by loom.json.
---@async
---@return any value
---@return string? err
function Response:json() end

---A request, as `http.serve`'s handler gets it.
---@class loom.http.Request
---@field method string
---@field path string without the query
---@field target string as sent
---@field query table<string, string|true|string[]> the query, decoded
---@field version string "1.1" or "1.0"
---@field headers table<string, string> lower-case names
---@field peer string the client's address
local Request = {}

---The next piece of the body (at most `n` bytes); `nil, msg, "EOF"` at
---its end.
---@async
---@param n? integer
---@return string? data
---@return string? err
---@return loom.ErrorCode? code
function Request:read(n) end

---`for chunk in req:chunks() do ... end`; raises on a failure other than
---the end of the body.
---@return async fun(): string?
function Request:chunks() end

---The whole body (what `read` did not take).
---@async
---@return string? body
---@return string? err
---@return loom.ErrorCode? code
function Request:body() end

---The body decoded as JSON.
---@async
---@return any value
---@return string? err
---@return loom.ErrorCode? code
function Request:json() end

---Completes a WebSocket upgrade (101, the accept hash, a subprotocol
---from `opts.protocols`). A request that is no upgrade gets 400 (426
---for a version other than 13) and this returns `nil, msg, "EPROTO"`.
---After it, what the handler returns is no response: when it returns,
---the WebSocket is closed (1011 when it raised).
---@async
---@param opts? loom.http.WebSocketOptions
---@return loom.http.WebSocket? ws
---@return string? err
---@return loom.ErrorCode? code
function Request:websocket(opts) end

---@class loom.http.WebSocketOptions
---@field protocols? string|string[] subprotocols: the client's offer, the server's choice in order of preference
---@field max_message? integer bytes (default 1 MiB; over it: close 1009)
---@field max_queue? integer messages received and not yet read (default 16); then the peer is held back
---@field heartbeat? number seconds: a ping after that long without input; no answer within half of it drops the connection
---@field close_timeout? number seconds to wait for the peer's close (default 5)
---@field headers? table<string, string|number> extra headers of the upgrade request (client) or of the 101 (server)
---@field timeout? number the client's handshake, in seconds (default 30): then nil, msg, "ETIMEDOUT"
---@field verify? boolean wss://: false to skip the certificate check
---@field ca? string wss://: a CA bundle, a path or PEM text

---Opens a WebSocket to a `ws://` or `wss://` URL (`http://`, `https://`
---too).
---@async
---@param url string
---@param opts? loom.http.WebSocketOptions
---@return loom.http.WebSocket? ws
---@return string? err
---@return loom.ErrorCode? code
function http.websocket(url, opts) end

---A WebSocket, of either side.
---@class loom.http.WebSocket
---@field protocol string? the subprotocol agreed on
---@field close_code integer? once closed: the close status (1006: no close came)
---@field close_reason string? once closed: the close reason
local WebSocket = {}

---Sends one message: "text" (the default; valid UTF-8) or "binary".
---Waits while the peer does not read.
---@async
---@param data string|number
---@param kind? "text"|"binary"
---@return true? ok
---@return string? err
---@return (loom.ErrorCode|integer)? code
function WebSocket:send(data, kind) end

---The next message; once the WebSocket is closed, `nil, msg, status`.
---@async
---@return string? data
---@return "text"|"binary"|string kind or err
---@return integer? status
function WebSocket:receive() end

---`for data, kind in ws:messages() do ... end`, until it is closed.
---@return async fun(): string?, ("text"|"binary")?
function WebSocket:messages() end

---Sends a ping (at most 125 bytes); the peer's pong is awaited by
---nobody.
---@async
---@param data? string
---@return true? ok
---@return string? err
---@return (loom.ErrorCode|integer)? code
function WebSocket:ping(data) end

---The closing handshake: the close frame, then the peer's (for at most
---`close_timeout` seconds). Status 1000 by default.
---@async
---@param status? integer
---@param reason? string
---@return true
function WebSocket:close(status, reason) end

---What http.serve returns.
---@class loom.http.Server
local Server = {}

---@return string host
---@return integer port
function Server:address() end

---Stops accepting; idle connections end at once, the others after the
---response in flight. Harmless the second time.
function Server:close() end

---Until the server is closed and its last connection has ended.
---@async
function Server:wait() end

return http
