--[[ spec/http_parser_spec.lua: the request parser under loom.http's
  server (src/http_parser.c, on llhttp): what it makes of requests, fed
  whole or split anywhere, and that mangled input gives an error or a
  request, never a crash (the sanitizer run checks its memory).
]]
require "loom"  -- which puts its private core in the registry
local core = debug.getregistry()["loom.core"]

local function parser(limits) return core.http.parser(limits or {}) end

-- Every event of 'data' fed in pieces of 'step' bytes (all at once
-- when nil): a list of {kind, value, ended}.
local function events(data, step, limits)
  local p, out = parser(limits), {}
  local pos = 1
  step = step or #data
  while pos <= #data do
    local piece = data:sub(pos, pos + step - 1)
    local at = 1
    while at <= #piece do
      local k, v, nx, ended = p:feed(piece, at)
      if not k then break end
      out[#out + 1] = { k, v, ended }
      if k == "error" then return out, nx end
      at = nx
    end
    pos = pos + step
  end
  return out
end

-- The events with bodies joined, as kinds and values in one list.
local function flat(evs)
  local t = {}
  for _, e in ipairs(evs) do
    if e[1] == "body" and t[#t - 1] == "body" then t[#t] = t[#t] .. e[2]
    elseif e[1] == "head" or e[1] == "request" then
      t[#t + 1] = e[1]
      t[#t + 1] = e[2].method .. " " .. e[2].path
    else
      t[#t + 1] = e[1]
      t[#t + 1] = e[2] or e[3] or false
    end
  end
  return t
end

local PIPELINE = "GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
  .. "POST /b HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello"
  .. "PUT /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
  .. "DELETE /d HTTP/1.0\r\n\r\n"

describe("the HTTP request parser", function()
  it("parses a pipeline of requests fed whole or split at every byte", function()
    local whole = flat(events(PIPELINE))
    assert.are.same({ "request", "GET /a", "head", "POST /b", "body", "hello",
      "head", "PUT /c", "body", "abcde", "request", "DELETE /d" }, whole)
    for step = 1, 7 do
      local got = flat(events(PIPELINE, step))
      -- split bodies may end with an "end" of their own
      local t = {}
      for i = 1, #got, 2 do
        if got[i] ~= "end" then t[#t + 1] = got[i]; t[#t + 1] = got[i + 1] end
      end
      assert.are.same(whole, t, "pieces of " .. step)
    end
  end)

  it("gives the request's fields", function()
    local evs = events("GET http://example.org/x%2Fy?q=1 HTTP/1.1\r\n"
      .. "Host: example.org\r\nAccept: a\r\naccept: b \r\nCookie: c=1\r\nCOOKIE: d=2\r\n"
      .. "Expect: 100-continue\r\nContent-Length: 3\r\n\r\nabc")
    local req = evs[1][2]
    assert.are.equal("head", evs[1][1])
    assert.are.equal("GET", req.method)
    assert.are.equal("http://example.org/x%2Fy?q=1", req.target)
    assert.are.equal("/x/y", req.path)
    assert.are.equal("q=1", req.rawquery)
    assert.are.equal("1.1", req.version)
    assert.are.equal("a, b", req.headers.accept)
    assert.are.equal("c=1; d=2", req.headers.cookie)
    assert.are.equal(3, req.content_length)
    assert.is_true(req.expect_continue)
    assert.is_true(req.keep_alive)
    assert.are.same({ "body", "abc", true }, evs[2])
  end)

  it("drops the trailer fields after a chunked body, fed whole or split", function()
    local data = "POST /t HTTP/1.1\r\nTransfer-Encoding: chunked\r\nX: 1\r\n\r\n"
      .. "3\r\nabc\r\n0\r\nX: 2\r\nTrailer-Two: t\r\n\r\nGET /n HTTP/1.1\r\n\r\n"
    for _, step in ipairs { #data, 1, 5, 40 } do
      local evs = events(data, step)
      local t = flat(evs)
      local rest = {}
      for i = 1, #t, 2 do
        if t[i] ~= "end" then rest[#rest + 1] = t[i]; rest[#rest + 1] = t[i + 1] end
      end
      assert.are.same({ "head", "POST /t", "body", "abc", "request", "GET /n" }, rest,
        "pieces of " .. step)
      assert.are.same({ ["transfer-encoding"] = "chunked", x = "1" }, evs[1][2].headers)
    end
  end)

  it("takes a response whose first header line is empty (':') without a crash", function()
    -- (no reason either: nothing gathered yet, no buffer made)
    local p = core.http.parser({}, true)
    local kind, res = p:feed("HTTP/1.1 200 \r\n:\r\nContent-Length: 0\r\n\r\n", 1)
    assert.is_truthy(kind)
    if kind ~= "error" then assert.are.equal(200, res.status) end
  end)

  it("refuses what is over its limits, naming the status", function()
    local evs = events("GET / HTTP/1.1\r\nX: " .. ("v"):rep(100) .. "\r\n\r\n", nil,
      { max_header_size = 64 })
    assert.are.same({ "error", 431 }, { evs[1][1], evs[1][2] })
    evs = events("GET /" .. ("p"):rep(100) .. " HTTP/1.1\r\n\r\n", nil, { max_header_size = 64 })
    assert.are.equal(414, evs[1][2])
    evs = events("POST / HTTP/1.1\r\nContent-Length: 9\r\n\r\n123456789", nil, { max_body_size = 8 })
    assert.are.equal(413, evs[1][2])
    evs = events("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n9\r\n123456789\r\n0\r\n\r\n",
      nil, { max_body_size = 8 })
    assert.are.same({ "head", 413 }, { evs[1][1], evs[2][2] })
    evs = events("GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n")
    assert.are.same({ "error", 400 }, { evs[1][1], evs[1][2] })
  end)

  it("survives mangled requests split anywhere: an error or requests, never a crash", function()
    math.randomseed(7)
    local bases = { "GET / HTTP/1.1\r\nHost: x\r\n\r\n", PIPELINE,
      "GET /%zz%4 HTTP/1.0\r\n\r\n", "OPTIONS * HTTP/1.1\r\n\r\n",
      "CONNECT h:443 HTTP/1.1\r\n\r\n" }
    local outcomes = {}
    for _ = 1, 3000 do
      local s = bases[math.random(#bases)] .. bases[math.random(#bases)]
      local b = { s:byte(1, -1) }
      for _ = 1, math.random(0, 3) do b[math.random(#b)] = math.random(0, 255) end
      local evs = events(string.char(table.unpack(b)), math.random(1, 40),
        { max_header_size = 128, max_body_size = 16 })
      local last = evs[#evs]
      outcomes[last and last[1] or "none"] = true
    end
    assert.is_true(outcomes.error and outcomes.request and true or false)
  end)

  it("raises on misuse with the method's name", function()
    local p = parser()
    assert.has_error(function() p:feed({}) end)
    local ok, err = pcall(p.feed, p, "x", 5)
    assert.is_false(ok)
    assert.truthy(tostring(err):find("position out of range", 1, true))
  end)
end)
