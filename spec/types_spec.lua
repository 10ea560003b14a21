-- The editor annotations in types/ (LuaCATS '---@meta' files) name
-- exactly what loom exports (spec/exports.lua reads it from the module):
-- every module's functions and fields, every class's methods and
-- fields; nothing missing, nothing invented.
local h = require "spec.helper"

local DIR = "types"

--[[ types.parse(text): what one '---@meta' file declares:
  {meta = "loom.net", classes = {[name] = {fields = {...}, methods =
  {...}, var = "Stream" | nil}}, vars = {[var] = class name},
  funcs = {[var] = {names}}, sets = {[var] = {names}}}.
  A class followed by 'local X = {}' has a table of its own (a module or
  a class with methods); the others are shapes (options, results). ]]
local function parse(text)
  local d = { classes = {}, vars = {}, funcs = {}, sets = {} }
  local class  -- the class whose '---@field' lines come next
  local function add(t, k, v)
    t[k] = t[k] or {}
    t[k][#t[k] + 1] = v
  end
  for line in (text .. "\n"):gmatch("([^\n]*)\n") do
    local meta = line:match("^%-%-%-@meta%s+([%w_.]+)")
    local cname = line:match("^%-%-%-@class%s+([%w_.]+)")
    local field = line:match("^%-%-%-@field%s+([%a_][%w_]*)")
    local var = line:match("^local%s+([%a_][%w_]*)%s*=%s*{}%s*$")
    local fv, fsep, fname =
      line:match("^function%s+([%a_][%w_]*)([.:])([%a_][%w_]*)%s*%(")
    local sv, sname = line:match("^([%a_][%w_]*)%.([%a_][%w_]*)%s*=")
    if meta then d.meta = meta
    elseif cname then
      class = { fields = {}, methods = {} }
      d.classes[cname] = class
      class.name = cname
    elseif field and class then
      class.fields[#class.fields + 1] = field
    elseif var and class then
      class.var = var
      d.vars[var] = class.name
      class = nil
    elseif fv then
      add(fsep == ":" and d.sets or d.funcs, fv .. fsep, fname)
      class = nil
    elseif sv then
      add(d.funcs, sv .. ".", sname)
      class = nil
    elseif not line:match("^%-%-%-") then
      class = nil
    end
  end
  return d
end

local function sorted(t)
  local r = {}
  for _, v in ipairs(t) do r[#r + 1] = v end
  table.sort(r)
  return r
end

local function append(t, list)
  for _, v in ipairs(list or {}) do t[#t + 1] = v end
end

--[[ The annotated API: modules = {[name] = {names}}, classes =
  {[name] = {methods =, fields =}} (classes with a table of their own
  only), files = {[module] = path}. ]]
local function annotated()
  local modules, classes, files = {}, {}, {}
  local ls = io.popen("ls " .. DIR .. "/*.lua")
  for path in ls:lines() do
    local f = assert(io.open(path))
    local d = parse(f:read("a"))
    f:close()
    assert(d.meta, path .. ": no ---@meta line")
    files[d.meta] = path
    for cname, c in pairs(d.classes) do
      if c.var then
        local names = {}
        local dot, colon = d.funcs[c.var .. "."], d.sets[c.var .. ":"]
        if cname == d.meta then  -- the module's own table
          append(names, c.fields)
          append(names, dot)
          assert(colon == nil, path .. ": a module with methods")
          modules[cname] = sorted(names)
        else
          append(names, colon)
          assert(dot == nil, path .. ": " .. cname .. " with functions")
          classes[cname] = { methods = sorted(names),
                             fields = sorted(c.fields) }
        end
      end
    end
  end
  ls:close()
  return modules, classes, files
end

-- What 'got' lacks of 'want' and has beyond it, as two sorted lists.
local function diff(want, got)
  local w, g, missing, extra = {}, {}, {}, {}
  for _, v in ipairs(want) do w[v] = true end
  for _, v in ipairs(got) do g[v] = true end
  for _, v in ipairs(want) do if not g[v] then missing[#missing + 1] = v end end
  for _, v in ipairs(got) do if not w[v] then extra[#extra + 1] = v end end
  return missing, extra
end

local function same(what, want, got)
  local missing, extra = diff(want, got)
  local msg = ("%s: not annotated {%s}; annotated, not exported {%s}")
    :format(what, table.concat(missing, ", "), table.concat(extra, ", "))
  assert(#missing == 0 and #extra == 0, msg)
end

describe("types/ (editor annotations)", function()
  it("the parser reads functions, fields, classes and methods", function()
    local d = parse(table.concat({
      "---@meta loom.x",
      "---@class loom.x",
      "---@field a string",
      "local x = {}",
      "x.b = 1",
      "---@param n integer",
      "function x.c(n) end",
      "---@class loom.Thing",
      "---@field size integer",
      "local Thing = {}",
      "function Thing:m() end",
      "---@class loom.Shape",
      "---@field k integer",
      "",
      "return x",
    }, "\n"))
    assert.are.equal("loom.x", d.meta)
    assert.are.same({ "a" }, d.classes["loom.x"].fields)
    assert.are.same({ "b", "c" }, d.funcs["x."])
    assert.are.same({ "m" }, d.sets["Thing:"])
    assert.are.equal("Thing", d.classes["loom.Thing"].var)
    assert.is_nil(d.classes["loom.Shape"].var)
  end)

  it("each file is valid Lua and names its module", function()
    local _, _, files = annotated()
    for name, path in pairs(files) do
      assert(loadfile(path))
      assert.are.equal(DIR .. "/" .. name .. ".lua", path)
    end
  end)

  local exports = require "spec.exports"
  local modules, classes = annotated()

  it("annotate every exported module, and no other", function()
    local want = {}
    for _, m in ipairs(exports.modules()) do want[#want + 1] = m.name end
    local got = {}
    for name in pairs(modules) do got[#got + 1] = name end
    same("modules", sorted(want), sorted(got))
  end)

  for _, m in ipairs(exports.modules()) do
    it("name what " .. m.name .. " exports", function()
      same(m.name, m.names, modules[m.name] or {})
    end)
  end

  it("annotate every exported class, and no other", function()
    local want = {}
    for _, c in ipairs(exports.classes()) do want[#want + 1] = c.name end
    local got = {}
    for name in pairs(classes) do got[#got + 1] = name end
    same("classes", sorted(want), sorted(got))
  end)

  for _, c in ipairs(exports.classes()) do
    it("name the methods and fields of " .. c.name, function()
      local got = classes[c.name] or {}
      same(c.name .. " methods", c.methods, got.methods or {})
      same(c.name .. " fields", c.fields or {}, got.fields or {})
    end)
  end

  it("are installed in share/loom/types", function()
    local dest = h.tmpdir()
    local build = h.build
    -- (meson is Python: not under the sanitizer run's LD_PRELOAD)
    local _, err, status = h.sh(("env -u LD_PRELOAD DESTDIR=%s meson install -C %s "
      .. "--no-rebuild --quiet"):format(h.quote(dest), h.quote(build)))
    local out = h.sh(("cd %s && find . -path '*/share/loom/types/*' "
      .. "-name '*.lua' | sort"):format(h.quote(dest)))
    h.rmtree(dest)
    assert.are.equal(0, status, err)
    local names = {}
    for _, l in ipairs(h.lines(out)) do
      names[#names + 1] = l:match("([^/]+)%.lua$")
    end
    table.sort(names)
    local want = {}
    for name in pairs(modules) do want[#want + 1] = name end
    assert.are.same(sorted(want), names)
  end)
end)
