-- The WebSocket framing engine (src/websocket.c): two engines, a
-- client's and a server's, talk through the bytes each gives out.
require "loom"
local ws = debug.getregistry()["loom.core"].websocket

describe("websocket engine", function()
  it("computes RFC 6455's accept value", function()
    assert.are.equal("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=",
      ws.accept("dGhlIHNhbXBsZSBub25jZQ=="))
  end)

  it("carries text and binary messages from a client to a server", function()
    local c, s = ws.engine(false, 100), ws.engine(true, 100)
    local ok, out1 = c:queue(0, "héllo")
    assert.is_true(ok)
    local _, out2 = c:queue(1, "\0\1")
    assert.are.equal("", c:output())  -- queue gave what it made
    local ev = s:feed(out1 .. out2)
    assert.are.same({ { "text", "héllo" }, { "binary", "\0\1" } }, ev)
  end)

  it("closes with 1007 on invalid UTF-8 and 1009 over the limit", function()
    local c, s = ws.engine(false, 10), ws.engine(true, 10)
    local evs, out, refused = s:feed(select(2, c:queue(0, "\xff")))
    assert.are.same({}, evs)
    assert.are.equal(1007, refused)
    assert.are.equal(1007, c:feed(out)[1][3])
    c, s = ws.engine(false, 10), ws.engine(true, 10)
    local _, out2, refused2 = s:feed(select(2, c:queue(0, ("a"):rep(11))))
    assert.are.equal(1009, refused2)
    assert.are.equal(1009, c:feed(out2)[1][3])
  end)

  it("takes a message in 16384 frames and closes 1009 on one in more", function()
    local masked = "\0\0\0\0"
    local first, more, last = "\x01\x80" .. masked, "\x00\x80" .. masked,
      "\x80\x80" .. masked  -- text not fin, continuation, final continuation
    local s = ws.engine(true, 1 << 20)
    local evs, _, refused = s:feed(first .. more:rep(16382) .. last)
    assert.are.same({ { "text", "" } }, evs)
    assert.is_nil(refused)
    s = ws.engine(true, 1 << 20)
    evs, _, refused = s:feed(first .. more:rep(16383) .. last)
    assert.are.same({}, evs)
    assert.are.equal(1009, refused)
  end)

  it("closes with 1002 on a frame wslay cannot parse or half a status", function()
    local masked = "\0\0\0\0"  -- a mask key of zeros: the bytes as they are
    for name, frame in pairs {
      ["a ping of 126 bytes"] = "\x89\xfe\x00\x7e" .. masked .. ("a"):rep(126),
      ["a fragmented ping"] = "\x09\x81" .. masked .. "x",
      ["a length with its top bit set"] = "\x82\xff\x80" .. ("\0"):rep(7) .. masked,
      ["a close of one byte"] = "\x88\x81" .. masked .. "\x03",
    } do
      local s = ws.engine(true, 1 << 20)
      local evs, out, refused = s:feed(frame)
      assert.are.same({}, evs, name)
      assert.are.equal(1002, refused, name)
      assert.are.equal("\x88\x02\x03\xea", out, name)  -- close 1002
      local c = ws.engine(false, 1 << 20)
      assert.are.equal(1002, c:feed(out)[1][3], name)
    end
    -- a client's close 1002 is masked
    local c = ws.engine(false, 1 << 20)
    local _, out, refused = c:feed("\x89\x7e\x00\x7e" .. ("a"):rep(126))
    assert.are.equal(1002, refused)
    local s = ws.engine(true, 1 << 20)
    local evs = s:feed(out)
    assert.are.same({ "close", "", 1002 }, evs[1])
    -- a peer's close without a status is answered with none
    s = ws.engine(true, 100)
    evs, out, refused = s:feed("\x88\x80" .. masked)
    assert.are.same({ "close", "" }, { evs[1][1], evs[1][2] })
    assert.are.equal("\x88\x00", out)
    assert.is_nil(refused)
  end)
end)
