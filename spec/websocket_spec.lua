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
end)
