--[[ spec/json_spec.lua: loom.json (SPEC "HTTP": loom.json.encode,
  loom.json.decode, loom.json.null), on lua-cjson. ]]
local loom = require "loom"
local h = require "spec.helper"
local json = loom.json

describe("loom.json", function()
  it("encodes and decodes values, nested, unchanged", function()
    local v = { name = "loom", n = 3, list = { 1, 2.5, "x", true, false },
                nested = { deep = { deeper = "yes" } } }
    local text = assert(json.encode(v))
    assert.are.equal("string", type(text))
    assert.are.same(v, assert(json.decode(text)))
    assert.are.equal('[1,2,3]', json.encode({ 1, 2, 3 }))
    assert.are.equal('"a\\"b"', json.encode('a"b'))
    assert.are.equal(12, json.decode("12"))
    assert.are.equal("integer", math.type(json.decode("12")))
    assert.are.equal("integer", math.type(json.decode("[1]")[1]))
    assert.are.equal("float", math.type(json.decode("1.5")))
    assert.are.equal(2^60, json.decode("1152921504606846976"))  -- past 2^53: a float
    assert.are.same({ a = { 1, { b = "c" } } }, json.decode('{"a":[1,{"b":"c"}]}'))
  end)

  it("has null, as decoded and as encoded", function()
    local v = assert(json.decode('{"a":null,"b":[null,1]}'))
    assert.are.equal(json.null, v.a)
    assert.are.equal(json.null, v.b[1])
    assert.are.equal('[null,1]', json.encode({ json.null, 1 }))
    assert.are.equal(json.null, json.decode("null"))
  end)

  it("gives a sparse array its nulls", function()
    assert.are.equal('[1,null,null,4]', json.encode({ [1] = 1, [4] = 4 }))
  end)

  it("returns nil, msg for what JSON cannot hold", function()
    for _, bad in ipairs { { f = print }, { 0 / 0 }, { math.huge },
                           { [true] = 1 } } do
      local r, msg = json.encode(bad)
      assert.is_nil(r)
      assert.matches("^json%.encode: ", msg)
    end
    local cycle = {}
    cycle.self = cycle
    local r, msg = json.encode(cycle)
    assert.is_nil(r)
    assert.matches("^json%.encode: .*nesting", msg)
  end)

  it("returns nil, msg for text that is not JSON, naming where", function()
    for _, bad in ipairs { "", "{", "[1,]", "{'a':1}", "nul", "[1] x" } do
      local r, msg = json.decode(bad)
      assert.is_nil(r, bad)
      assert.matches("^json%.decode: ", msg)
      assert.is_nil(msg:find("%.lua:%d+:"), msg)  -- no Lua position in it
    end
    local _, msg = json.decode("[1,]")
    assert.matches("character 4", msg)
  end)

  it("raises, at the caller's line, for decode of what is not a string", function()
    local raises = h.raiser("spec/json_spec.lua")
    raises("bad argument #1 to 'loom.json.decode' (string expected, got number)",
      function() local r = json.decode(42); return r end)
  end)

  it("does not share its settings with the script's cjson", function()
    local cjson = require "cjson"
    local saved = cjson.encode_sparse_array()
    cjson.encode_sparse_array(false)
    assert.are.equal('[1,null,null,4]', json.encode({ [1] = 1, [4] = 4 }))
    cjson.encode_sparse_array(saved)
  end)

  it("is requirable on its own, first, in a stock lua5.4", function()
    local out, err, code = h.lua_src([[
      local json = require "loom.json"
      print(json.encode({ ok = true }), json.decode("[7]")[1])
    ]])
    assert.are.equal(0, code, err)
    assert.are.equal('{"ok":true}\t7\n', out)
  end)
end)
