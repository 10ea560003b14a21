--[[ loom.json: JSON, on lua-cjson (Debian's lua-cjson).

  json.encode(v) -> text, json.decode(text) -> value, json.null: the
  value of a JSON null (cjson's).  Failures are values, nil, message
  (a value JSON cannot hold, text that is not JSON), as the rest of
  loom's I/O; misuse (decode of something that is not a string) raises.
  It has a cjson instance of its own, so that a script's settings of
  the global cjson do not change loom's JSON, nor the other way round.
]]
local core = ...

local pcall, tostring, type, pairs = pcall, tostring, type, pairs
local tointeger, mtype = math.tointeger, math.type
local check = core.check

local M = {}

local ok, cjson = pcall(require, "cjson")
local cj = ok and cjson.new() or nil
if cj then
  cj.encode_sparse_array(true)  -- {[1] = 1, [5] = 5}: an array with nulls
  M.null = cj.null
end

local function need()
  if not cj then
    check.raise("loom.json needs lua-cjson (Debian: lua-cjson)")
  end
end

-- The message of a cjson error, as loom's: no Lua position in it.
local function reason(e)
  return (tostring(e):gsub("^[^:]*:%d+: ", ""))
end

--- json.encode(v): the JSON text of v, or nil, message
function M.encode(v)
  need()
  local done, r = pcall(cj.encode, v)
  if not done then return nil, "json.encode: " .. reason(r) end
  return r
end

-- RATIONALE: lua-cjson 2.1 reads every number as a float; in Lua 5.4 a
-- JSON 7 should be the integer 7, as Python's json makes it an int.
-- Whole numbers within 2^53 (where a double is exact) become integers.
local function integers(v)
  if mtype(v) == "float" then
    if v == v and v > -2^53 and v < 2^53 then return tointeger(v) or v end
    return v
  end
  if type(v) == "table" then
    for k, x in pairs(v) do
      if type(x) == "table" or mtype(x) == "float" then v[k] = integers(x) end
    end
  end
  return v
end

--- json.decode(text): the value of the JSON 'text', or nil, message
function M.decode(text)
  need()
  check.string(text, 1, "loom.json.decode")
  local done, r = pcall(cj.decode, text)
  if not done then return nil, "json.decode: " .. reason(r) end
  return integers(r)
end

return M
