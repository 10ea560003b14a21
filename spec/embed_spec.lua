local h = require "spec.helper"

local function bin(name)
  return h.quote(h.build .. "/" .. name)
end

describe("embedding examples", function()
  it("minimal runs a script with loom", function()
    local out, err, code = h.sh(bin("embed-minimal") .. " examples/embed/hello.lua")
    assert.are.equal("hello, embedder\n", out)
    assert.are.equal("", err)
    assert.are.equal(0, code)
  end)

  it("minimal reports a script that cannot be loaded, and exits 1", function()
    local _, err, code = h.sh(bin("embed-minimal") .. " /nonexistent.lua")
    assert.matches("cannot open /nonexistent.lua", err)
    assert.are.equal(1, code)
  end)

  it("mainloop steps loom inside its own poll() loop", function()
    local out, _, code = h.sh(bin("embed-mainloop"), "first\nsecond\n")
    assert.are.equal(0, code)
    assert.matches("tick 1\ntick 2\ntick 3\n", out, 1, true)
    assert.matches("script saw 2 line%(s%): first,second", out)
    assert.matches("host: loom done after %d+ steps", out)
  end)

  it("sensor: 100 tasks await a C function completed from threads", function()
    local out, err, code = h.sh(bin("embed-sensor") .. " examples/embed/sensor.lua")
    assert.are.equal(0, code, err)
    local ms = tonumber(out:match("100 readings, sum 2505%.0, in (%d+) ms"))
    assert.truthy(ms, out)
    -- concurrent: less than 100 sequential 10 ms reads (1 s), with room
    -- for a loaded machine or a sanitizer
    assert.is_true(ms < 900, "took " .. tostring(ms) .. " ms")
    assert.matches("sensor %-1:\tfalse\tsensor %-1 does not exist", out)
    assert.matches("cancelled read:\tfalse\tloom.Cancelled", out)
  end)
end)
