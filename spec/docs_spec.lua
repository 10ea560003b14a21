-- docs/ against the code: every public name of the loom module, its
-- submodules and its objects (spec/exports.lua) has its entry in the
-- reference, and every entry the reference presents exists.
--
-- An entry is a code span in a Markdown heading (outside code blocks):
--   `net.connect(host, port [, opts])`  a function of a module, by its
--                                        short name (ALIAS below)
--   `loom.Stream`                        in a level-2 heading: a class,
--                                        the one the entries below it
--                                        are members of
--   `stream:read([n])`, `p.pid`          a method, a field of the class
local helper = require "spec.helper"
local exports = require "spec.exports"

-- The short names the reference gives modules, and the page of each
-- (the names of 'loom' itself may be on any page).
local ALIAS = {
  loom = "loom", net = "loom.net", fs = "loom.fs", process = "loom.process",
  signal = "loom.signal", http = "loom.http", json = "loom.json",
  log = "loom.log", busted = "loom.busted", lineedit = "loom.lineedit",
}
local PAGE = {
  ["loom.net"] = "net.md", ["loom.fs"] = "fs.md",
  ["loom.process"] = "process.md", ["loom.signal"] = "signal.md",
  ["loom.http"] = "http.md", ["loom.json"] = "http.md",
  ["loom.log"] = "stdio.md", ["loom.busted"] = "busted.md",
  ["loom.lineedit"] = "repl.md",
}

local function set(list)
  local s = {}
  for _, v in ipairs(list) do s[v] = true end
  return s
end

-- The entries of one page: { {kind = "function" | "method" | "field" |
-- "class", module =, class =, name =, line =}, ... }; 'classes' and
-- 'modules' are the sets of class and module names.
local function entries(text, classes, modules)
  local out, current, fenced, n = {}, {}, false, 0
  for line in (text .. "\n"):gmatch("([^\n]*)\n") do
    n = n + 1
    if line:match("^%s*```") then
      fenced = not fenced
    elseif not fenced then
      local hashes, title = line:match("^(#+)%s+(.*)$")
      if hashes then
        if #hashes <= 2 then current = {} end
        for span in title:gmatch("`([^`]+)`") do
          if classes[span] then
            if #hashes == 2 then current[#current + 1] = span end
            out[#out + 1] = { kind = "class", class = span, line = n }
          end
          local prefix, sep, name, rest =
            span:match("^([%a_][%w_]*)([.:])([%a_][%w_]*)(.*)$")
          if prefix and ALIAS[prefix] and sep == "." then
            -- 'loom.http' names a module (loom's field 'http'), as
            -- 'loom.Timeout' names a class (and loom's field); a
            -- class named in a heading need not be a module's field
            if rest == "" or not (classes[span] or rest:match("^%.")) then
              out[#out + 1] = { kind = "function", module = ALIAS[prefix],
                                name = name, line = n,
                                optional = classes[span] or modules[span] }
            end
          elseif prefix then
            local kind = sep == ":" and "method" or "field"
            if #current == 0 then
              out[#out + 1] = { kind = kind, name = name, line = n }
            end
            for _, c in ipairs(current) do
              out[#out + 1] = { kind = kind, class = c, name = name, line = n }
            end
          end
        end
      end
    end
  end
  return out
end

--- The problems of the reference 'pages' ({["net.md"] = text, ...})
-- against 'modules' and 'classes' (as spec/exports gives them): a list
-- of messages, empty when the two agree.
local function check(pages, modules, classes)
  local class_names, by_class, by_module = {}, {}, {}
  for _, c in ipairs(classes) do
    class_names[c.name] = true
    by_class[c.name] = { method = set(c.methods), field = set(c.fields) }
  end
  local module_names = {}
  for _, m in ipairs(modules) do
    by_module[m.name] = set(m.names)
    module_names[m.name] = true
  end

  local problems = {}
  local function problem(fmt, ...) problems[#problems + 1] = fmt:format(...) end
  local found = {}  -- "page|module|name", "class|kind|name", "class"
  local names = {}
  for page in pairs(pages) do names[#names + 1] = page end
  table.sort(names)
  for _, page in ipairs(names) do
    for _, e in ipairs(entries(pages[page], class_names, module_names)) do
      local where = ("docs/%s:%d"):format(page, e.line)
      if e.kind == "class" then
        found[e.class] = true
      elseif e.kind == "function" then
        if not by_module[e.module] then
          problem("%s: unknown module %s", where, e.module)
        elseif not by_module[e.module][e.name] and not e.optional then
          problem("%s: %s has no '%s'", where, e.module, e.name)
        end
        found[page .. "|" .. e.module .. "|" .. e.name] = true
        found["*|" .. e.module .. "|" .. e.name] = true
      elseif not e.class then
        problem("%s: %s '%s' is under no class heading", where, e.kind, e.name)
      elseif not by_class[e.class][e.kind][e.name] then
        problem("%s: %s has no %s '%s'", where, e.class, e.kind, e.name)
      else
        found[e.class .. "|" .. e.kind .. "|" .. e.name] = true
      end
    end
  end

  for _, m in ipairs(modules) do
    local page = PAGE[m.name] or "*"
    for _, name in ipairs(m.names) do
      if not found[page .. "|" .. m.name .. "|" .. name] then
        problem("%s.%s is not in %s", m.name, name,
                page == "*" and "docs/" or "docs/" .. page)
      end
    end
  end
  for _, c in ipairs(classes) do
    if not found[c.name] then problem("class %s has no heading", c.name) end
    for kind, list in pairs { method = c.methods, field = c.fields } do
      for _, name in ipairs(list) do
        if not found[c.name .. "|" .. kind .. "|" .. name] then
          problem("%s %s '%s' is not in docs/", c.name, kind, name)
        end
      end
    end
  end
  return problems
end

local function read_pages()
  local pages = {}
  local ls = io.popen("ls docs/*.md")
  for path in ls:lines() do
    local f = assert(io.open(path, "rb"))
    pages[path:match("[^/]+$")] = f:read("a")
    f:close()
  end
  ls:close()
  return pages
end

-- loom.lineedit is the binary's alone: its names come from the binary.
local function lineedit_module()
  local out, err, code = helper.run_bin {
    "-e", 'local t = {} for k in pairs(require "loom.lineedit") do '
       .. 't[#t + 1] = k end table.sort(t) print(table.concat(t, " "))' }
  assert(code == 0, err)
  local names = {}
  for w in out:gmatch("%S+") do names[#names + 1] = w end
  return { name = "loom.lineedit", names = names }
end

describe("the reference in docs/", function()
  local pages, modules, classes

  setup(function()
    pages = read_pages()
    modules = exports.modules()
    modules[#modules + 1] = lineedit_module()
    classes = exports.classes()
  end)

  it("has a page per module", function()
    for _, page in ipairs { "index.md", "core.md", "toolkit.md", "net.md",
        "fs.md", "process.md", "signal.md", "http.md", "stdio.md",
        "repl.md", "busted.md", "cli.md", "embedding.md" } do
      assert.is_string(pages[page], page)
    end
  end)

  it("presents every exported name and only those", function()
    assert.are.same({}, check(pages, modules, classes))
  end)

  it("sees a name that is missing, and one that does not exist", function()
    local copy = {}
    for k, v in pairs(pages) do copy[k] = v end
    copy["net.md"] = copy["net.md"]:gsub("\n### `net%.udp%([^\n]*\n", "\n")
    copy["fs.md"] = copy["fs.md"] .. "\n### `fs.teleport(path)`\n"
    copy["toolkit.md"] = copy["toolkit.md"]:gsub("### `q:size%(%)`, ", "### ")
    copy["process.md"] = copy["process.md"] .. "\n## `loom.Process`\n### `p:suspend()`\n"
    local problems = check(copy, modules, classes)
    table.sort(problems)
    assert.are.equal(4, #problems, table.concat(problems, "\n"))
    assert.matches("^docs/fs%.md:%d+: loom%.fs has no 'teleport'$", problems[1])
    assert.matches("^docs/process%.md:%d+: loom%.Process has no method 'suspend'$", problems[2])
    assert.are.equal("loom.Queue method 'size' is not in docs/", problems[3])
    assert.are.equal("loom.net.udp is not in docs/net.md", problems[4])
  end)

  it("wants a module's names on its own page", function()
    local copy = {}
    for k, v in pairs(pages) do copy[k] = v end
    copy["net.md"] = copy["net.md"]:gsub("\n### `net%.resolve%([^\n]*\n", "\n")
    copy["core.md"] = copy["core.md"] .. "\n### `net.resolve(host)`\n"
    assert.are.same({ "loom.net.resolve is not in docs/net.md" },
                    check(copy, modules, classes))
  end)

  it("links only to files in the repository", function()
    local all = {}
    for k, v in pairs(pages) do all["docs/" .. k] = v end
    local f = assert(io.open("README.md", "rb"))
    all["README.md"] = f:read("a")
    f:close()
    for path, text in pairs(all) do
      local dir = path:match("^(.*/)") or ""
      for target in text:gmatch("%]%(([^)]+)%)") do
        assert.is_nil(target:match("^%a+:"), path .. " links outside: " .. target)
        -- a page of docs/ links only within docs/: the folder is read
        -- on its own too (installed, or browsed apart from the tree)
        assert.is_nil(target:find("..", 1, true),
                      path .. " links out of its folder: " .. target)
        local file = target:gsub("#.*$", "")
        if file ~= "" then
          local fh = io.open(dir .. file, "rb")
          assert.is_truthy(fh, path .. ": no file " .. dir .. file)
          fh:close()
        end
      end
    end
  end)
end)
