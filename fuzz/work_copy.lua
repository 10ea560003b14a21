-- fuzz/work_copy.c's task: values built from the bytes 'data' go to a
-- loom.work job and come back; what comes back equals what went, or
-- loom.work refused them with the error that fits (a cycle, nesting
-- over 200 tables, a function).  Returns true, or aborts through an
-- error (the harness aborts on a failed task).
local data = ...
local byte, unpack, rep = string.byte, string.unpack, string.rep
local at = 1

local function u8()
  local b = byte(data, at) or 0
  at = at + 1
  return b
end

local function take(n)
  local s = data:sub(at, at + n - 1)
  at = at + n
  return s
end

local tables, open = {}, {}  -- every table made; those being made

local function scalar()
  local k = u8() % 6
  if k == 0 then return u8() % 2 == 0
  elseif k == 1 then return (unpack("<i8", take(8) .. rep("\0", 8)))
  elseif k == 2 then return (unpack("<d", take(8) .. rep("\0", 8)))
  elseif k == 3 then return take(u8() % 24)
  elseif k == 4 then return u8() - 128
  else return u8() / 4 end
end

local value
local function table_of(n, depth)
  local t = {}
  tables[#tables + 1], open[t] = t, true
  for _ = 1, n do
    local k, v = scalar(), value(depth + 1)
    if k ~= k then k = "nan" end  -- NaN is no key
    if v ~= nil then t[k] = v end
  end
  open[t] = nil
  return t
end

function value(depth)
  local k = u8() % 10
  if k <= 3 or depth > 40 then return scalar()
  elseif k == 4 then return nil
  elseif k <= 6 then return table_of(u8() % 6, depth)
  elseif k == 7 then  -- a table made before: shared, or a cycle
    return #tables > 0 and tables[u8() % #tables + 1] or {}
  elseif k == 8 then  -- a chain of tables, 1 to 511 deep
    local t = {}
    for _ = 2, 1 + u8() * 2 do t = { t } end
    return t
  else return print end  -- not to be copied
end

local n = 1 + u8() % 6
local vals = { n = n }
for i = 1, n do vals[i] = value(0) end

-- What loom.work may refuse in them (a set of reasons), from the values
-- as they are: each table's height (1 + its highest), ancestors open;
-- and how many tables a copy makes (a table met twice is copied twice).
local why, heights, sizes, high, size = {}, {}, {}, 0, 0
local function height(v)
  if type(v) == "function" then why.copied = true end
  if type(v) ~= "table" then return 0, 0 end
  if open[v] then
    why.cycle = true
    return 1, 1
  end
  if heights[v] then return heights[v], sizes[v] end
  local h, sz = 1, 1.0  -- (a float: sizes may pass 2^63)
  open[v] = true
  for _, x in pairs(v) do
    local xh, xs = height(x)
    if xh + 1 > h then h = xh + 1 end
    sz = sz + xs
  end
  open[v] = nil
  heights[v], sizes[v] = h, sz
  return h, sz
end
for i = 1, n do
  local h, sz = height(vals[i])
  if h > high then high = h end
  size = size + sz
end
if high > 201 then why.deep = true end  -- tables at depths 0 to 200
-- tables shared again and again make copies exponentially large (as
-- loom.work copies a table met twice twice): not worth the time
if size > 100000 then return true end

local function same(a, b)
  if a ~= a then return b ~= b end  -- NaN
  if type(a) ~= "table" then
    return a == b and math.type(a) == math.type(b)
  end
  if type(b) ~= "table" then return false end
  for k, v in pairs(a) do
    if not same(v, b[k]) then return false end
  end
  for k in pairs(b) do
    if a[k] == nil then return false end
  end
  return true
end

local back = table.pack(pcall(loom.work, function(...) return ... end,
                              table.unpack(vals, 1, n)))
if back[1] then
  assert(not next(why), "loom.work copied what it should have refused")
  assert(back.n - 1 == n, "loom.work gave " .. (back.n - 1) .. " values, not "
    .. n)
  for i = 1, n do
    assert(same(vals[i], back[i + 1]), "value " .. i .. " changed")
  end
  return true
end
local msg = tostring(back[2])
assert(next(why), "loom.work refused: " .. msg)
assert(msg:find("bad argument", 1, true), msg)
assert((why.cycle and msg:find("(a cycle)", 1, true))
  or (why.deep and msg:find("nested too deep", 1, true))
  or (why.copied and msg:find("cannot be copied", 1, true)), msg)
return true
