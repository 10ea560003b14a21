--[[ loom.http's client: http.request, http.get, http.post.

  The transfers are C (src/http_client.c, libcurl's multi interface on
  loom's loop); this module checks the arguments, turns the request
  into the flat options the C side takes, waits, and makes the
  response:

    {status = 200, headers = {["content-type"] = "text/html", ...},
     body = "...", url = <the final URL, after redirects>}

  with res:json(), res:read([n]), res:chunks(), res:close() (also
  <close>) and res:buffered() (what a stream holds unread).  Header
  names are lower-case; a repeated field's values are
  joined with ", ", except set-cookie, which is a string when it comes
  once and a list of the values when it is repeated.  Only the final
  response's headers are kept (not a redirect's, not trailers).

  opts: method (default GET; POST for http.post), headers (name ->
  string or number), body (a string), json (a value: the body, encoded
  by loom.json, with content-type application/json), timeout (seconds,
  the whole transfer, as curl's --max-time: nil, msg, "ETIMEDOUT"),
  redirects (most redirects followed, default 5; 0: none followed, the
  3xx is the response), verify (false: do not check the server's TLS
  certificate), ca (a CA bundle: a path, or PEM text), stream (true:
  return once the headers are in; the body is then read with res:read
  or res:chunks, at most about 1 MiB of it buffered).

  A task that leaves a request (cancelled, timed out by loom.timeout)
  aborts its transfer at once: the C transfer is closed before the
  error goes on.  A streamed response is closed by res:close(), by a
  <close> variable or by the collector; a response read to its end
  needs nothing.
]]
local core, loom = ...
local chttp = core.http

local type, error, pcall, pairs, tostring, setmetatable =
  type, error, pcall, pairs, tostring, setmetatable
local math_type, ceil = math.type, math.ceil
local find, lower, upper = string.find, string.lower, string.upper
local concat = table.concat

local check = core.check
local argerror, check_task = check.argerror, check.task
local TOKEN = check.TOKEN

local M = {}

-- the most bytes of a streamed body buffered unread (about), for tests
M._stream_bound = chttp.stream_bound

-- {====================================================================
-- Options

local function bad(n, fname, msg) argerror(n, fname, msg) end

-- A header name is an RFC 9110 token; a value has no CR, LF or NUL.
local function check_headers(hs, n, fname, lines, names)
  if hs == nil then return end
  if type(hs) ~= "table" then
    bad(n, fname, "headers must be a table, got " .. type(hs))
  end
  for k, v in pairs(hs) do
    if type(k) ~= "string" or not find(k, TOKEN) then
      bad(n, fname, "invalid header name '" .. tostring(k) .. "'")
    end
    local tv = type(v)
    if tv == "number" then v = tostring(v)
    elseif tv ~= "string" then
      bad(n, fname, ("headers['%s'] must be a string or a number, got %s")
        :format(k, tv))
    end
    if find(v, "[\r\n%z]") then
      bad(n, fname, ("headers['%s'] contains CR, LF or NUL"):format(k))
    end
    -- curl's way to send an empty field: "Name;" ("Name:" removes it)
    lines[#lines + 1] = v == "" and k .. ";" or k .. ": " .. v
    names[lower(k)] = true
  end
end

-- The flat table core.http.start takes, from the request's options;
-- every error is argument 'n' of 'fname'.
local function build(fname, n, url, method, body, opts)
  if type(url) ~= "string" then
    bad(n, fname, "url must be a string, got " .. type(url))
  end
  if find(url, "%z") then bad(n, fname, "url contains a NUL") end
  if method ~= nil and (type(method) ~= "string"
                        or not find(method, TOKEN)) then
    bad(n, fname, "method must be a token such as 'GET', got "
      .. tostring(method))
  end
  if body ~= nil and type(body) ~= "string" then
    bad(n, fname, "body must be a string, got " .. type(body))
  end
  if body ~= nil and method and upper(method) == "HEAD" then
    bad(n, fname, "a HEAD request has no body")
  end
  local lines, names = {}, {}
  check_headers(opts.headers, n, fname, lines, names)
  if opts.json ~= nil then
    if body ~= nil then bad(n, fname, "both body and json given") end
    local text, err = loom.json.encode(opts.json)
    if not text then bad(n, fname, err) end
    body = text
    if not names["content-type"] then
      lines[#lines + 1] = "Content-Type: application/json"
      names["content-type"] = true
    end
  end
  -- curl would add a form content-type to any body, and Expect:
  -- 100-continue to a large one (a round trip more); neither unasked
  if body ~= nil and not names["content-type"] then
    lines[#lines + 1] = "Content-Type:"
  end
  if not names["expect"] then lines[#lines + 1] = "Expect:" end
  local t = opts.timeout
  if t ~= nil and (type(t) ~= "number" or not (t >= 0)) then
    bad(n, fname, "timeout must be a non-negative number, got "
      .. tostring(t))
  end
  local r = opts.redirects
  if r ~= nil and (math_type(r) ~= "integer" or r < 0) then
    bad(n, fname, "redirects must be a non-negative integer, got "
      .. tostring(r))
  end
  for _, k in pairs { "verify", "stream" } do
    if opts[k] ~= nil and type(opts[k]) ~= "boolean" then
      bad(n, fname, k .. " must be a boolean, got " .. type(opts[k]))
    end
  end
  if opts.ca ~= nil and (type(opts.ca) ~= "string" or find(opts.ca, "%z")) then
    bad(n, fname, "ca must be a path or PEM text, got " .. type(opts.ca))
  end
  return {
    method = upper(method or "GET"), url = url, headers = lines,
    body = body,
    timeout_ms = t and (t == 0 and 1 or ceil(t * 1000)) or nil,
    redirects = r, verify = opts.verify, ca = opts.ca,
    stream = opts.stream,
  }
end

-- }====================================================================


-- {====================================================================
-- Responses

local Response = { __name = "loom.http.response" }
Response.__index = Response

-- response -> its C transfer (a stream's; closed with the response)
local transfers = setmetatable({}, { __mode = "k" })
-- response -> where res:read is in the body of a response not streamed
local offsets = setmetatable({}, { __mode = "k" })

--- res:read([n]) (suspends): up to n bytes of the body as they come
-- (what is there when n is absent); nil, "... end of file", "EOF" at
-- the end.
function Response:read(n)
  check.self(self, Response, "response:read")
  if n ~= nil then n = check.count(n, 2, "response:read") end
  if n == 0 then return "" end
  local x = transfers[self]
  if x then return x:read(n) end
  check_task("response:read")
  local body, at = self.body or "", offsets[self] or 1
  if at > #body then
    return core.fail("read from", self.url, "end of file", "EOF")
  end
  local stop = n and at + n - 1 or #body
  offsets[self] = stop + 1
  return body:sub(at, stop)
end

--- for chunk in res:chunks() do ... end: the body to its end; a
-- failure on the way raises (as io.lines does).
function Response:chunks()
  check.self(self, Response, "response:chunks")
  return function()
    local s, err, code = self:read()
    if s ~= nil then return s end
    if code == "EOF" then return nil end
    error(err, 2)
  end
end

--- res:close(): ends a streamed transfer that is not done (and frees
-- what it buffered); true.
function Response:close()
  check.self(self, Response, "response:close")
  local x = transfers[self]
  if x then x:close() end
  return true
end
Response.__close = Response.close

--- res:buffered(): of a streamed body, the bytes received and not yet
-- read, the most there ever were, whether the transfer is paused (the
-- bound is reached) and how many times it was; 0, 0, false, 0 for a
-- response not streamed or closed.
function Response:buffered()
  check.self(self, Response, "response:buffered")
  local x = transfers[self]
  if not x then return 0, 0, false, 0 end
  return x:buffered()
end

--- res:json(): the body decoded by loom.json, or nil, msg.  A streamed
-- body is read to its end first (suspends; a failure there is nil,
-- msg, code).
function Response:json()
  check.self(self, Response, "response:json")
  local body = self.body
  if body == nil then
    local parts = {}
    while true do
      local s, err, code = self:read()
      if s == nil then
        if code ~= "EOF" then return nil, err, code end
        break
      end
      parts[#parts + 1] = s
    end
    body = concat(parts)
    self.body = body
    self:close()
  end
  return loom.json.decode(body)
end

-- }====================================================================


local function perform(fname, o)
  check_task(fname)
  local x, err, code = chttp.start(o)
  if not x then return nil, err, code end
  -- RATIONALE: a task that leaves the wait (cancelled, loom.timeout)
  -- gets the error here; closing the transfer before passing it on
  -- aborts it at once instead of letting it run to its end.
  local ok, status, headers, url, body = pcall(x.wait, x)
  if not ok then
    x:close()
    error(status, 0)
  end
  if status == nil then
    x:close()
    return nil, headers, url
  end
  local res = setmetatable({ status = status, headers = headers,
                             url = url, body = body }, Response)
  if o.stream then transfers[res] = x else x:close() end
  return res
end

--- http.request{method=, url=, headers=, body=, ...} or
-- http.request(url [, opts]) (suspends): a response, or nil, msg, code.
-- An HTTP error status (404, 500) is a response too.
function M.request(a, b)
  local fname = "http.request"
  if type(a) == "table" then
    if b ~= nil then
      bad(2, fname, "no second argument with a table of options")
    end
    return perform(fname, build(fname, 1, a.url, a.method, a.body, a))
  end
  if type(a) ~= "string" then
    bad(1, fname, "table or string expected, got " .. type(a))
  end
  local opts = check.opts(b, 2, fname)
  return perform(fname, build(fname, 2, a, opts.method, opts.body, opts))
end

--- http.get(url [, opts]) (suspends)
function M.get(url, opts)
  check.string(url, 1, "http.get")
  opts = check.opts(opts, 2, "http.get")
  return perform("http.get", build("http.get", 2, url, opts.method or "GET",
                                   opts.body, opts))
end

--- http.post(url, body [, opts]) (suspends): body a string (or nil with
-- opts.json)
function M.post(url, body, opts)
  check.string(url, 1, "http.post")
  if body ~= nil and type(body) ~= "string" then
    check.expected(body, "string", 2, "http.post")
  end
  opts = check.opts(opts, 3, "http.post")
  return perform("http.post", build("http.post", 3, url,
                                    opts.method or "POST", body, opts))
end

return M
