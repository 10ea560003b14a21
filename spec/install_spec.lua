local h = require "spec.helper"

-- The install is a build-system matter: it is checked in the plain run.
-- Under the sanitizer run (LD_PRELOAD set), meson, cc, pkg-config and
-- luarocks would carry the sanitizer runtime and report their own leaks.
local describe_install = os.getenv("LD_PRELOAD") and function(name)
  describe(name, function()
    pending("checked in the plain run (not under the sanitizer runtime)")
  end)
end or describe

local function have(cmd)
  local _, _, code = h.sh("command -v " .. cmd)
  return code == 0
end

-- The lua5.4 templates of package.cpath (or path) with 'dest' before each
-- absolute one: where a stock lua5.4 would look once the stage is '/'.
local function staged(templates, dest)
  local t = {}
  for template in templates:gmatch("[^;]+") do
    if template:sub(1, 1) == "/" then t[#t + 1] = dest .. template end
  end
  return table.concat(t, ";")
end

describe_install("meson install", function()
  local dest

  setup(function()
    dest = h.tmpdir()
    local _, err, code = h.sh(("meson install -C %s --destdir %s --quiet")
      :format(h.quote(h.build), h.quote(dest)))
    assert.are.equal(0, code, err)
  end)

  teardown(function()
    if dest then h.rmtree(dest) end
  end)

  local function find(pattern)
    local out = h.sh(("cd %s && find . -path %s"):format(h.quote(dest), h.quote(pattern)))
    return out:match("[^\n]+")
  end

  it("puts the module where Debian's lua5.4 looks for C modules", function()
    local path = find("*/lua/5.4/loom.so")
    assert.truthy(path)
    local rel = path:gsub("^%.", "")
    local found = false
    for template in package.cpath:gmatch("[^;]+") do
      if template:gsub("%?", "loom") == rel then found = true end
    end
    assert.is_true(found, rel .. " is not in lua5.4's package.cpath")
  end)

  it("installs the binary, the header, the libraries, loom.pc and the man page", function()
    assert.truthy(find("*/bin/loom"))
    assert.truthy(find("*/include/loom.h"))
    assert.truthy(find("*/lib/x86_64-linux-gnu/libloom.so"))
    assert.truthy(find("*/lib/x86_64-linux-gnu/libloom.a"))
    assert.truthy(find("*/lib/x86_64-linux-gnu/pkgconfig/loom.pc"))
    assert.truthy(find("*/share/man/man1/loom.1"))
  end)

  it("gives libloom the soname libloom.so.0, and the link name points at it", function()
    local so = dest .. find("*/libloom.so"):gsub("^%.", "")
    local out = h.sh("readelf -d " .. h.quote(so))
    assert.matches("%(SONAME%)%s+Library soname: %[libloom%.so%.0%]", out)
    assert.truthy(find("*/libloom.so.0"))
  end)

  it("a stock lua5.4 requires loom and loom.busted from the stage, by Debian's own paths", function()
    local cpath = staged(package.cpath, dest)
    -- from /, so that neither the build's nor the checkout's files are found
    local out, err, code = h.sh(("cd / && LUA_CPATH_5_4=%s LUA_PATH_5_4=';;' lua5.4 -e %s")
      :format(h.quote(cpath), h.quote([[
        local loom = require "loom"
        print(package.searchpath("loom", package.cpath))
        print(type(require("loom.busted").async), type(require("loom.net").connect))
        print(loom.run(function() loom.sleep(0) return "ran" end))]])))
    assert.are.equal(0, code, err)
    assert.are.equal(dest .. find("*/lua/5.4/loom.so"):gsub("^%.", "")
      .. "\nfunction\tfunction\nran\n", out)
  end)

  it("pkg-config --cflags --libs loom builds the minimal example", function()
    local pc = find("*/pkgconfig/loom.pc"):gsub("^%.", ""):gsub("/loom%.pc$", "")
    -- the .pc of the staged install, its prefix pointed at the stage
    local f = assert(io.open(dest .. pc .. "/loom.pc"))
    local text = f:read("a"):gsub("prefix=([^\n]*)", "prefix=" .. dest .. "%1", 1)
    f:close()
    os.execute("mkdir -p " .. h.quote(dest .. "/pc"))
    f = assert(io.open(dest .. "/pc/loom.pc", "w"))
    f:write(text)
    f:close()
    local flags, err, code = h.sh(("PKG_CONFIG_PATH=%s pkg-config --cflags --libs loom")
      :format(h.quote(dest .. "/pc")))
    assert.are.equal(0, code, err)
    assert.matches("%-lloom", flags)
    local exe = dest .. "/minimal"
    local _, cerr, ccode = h.sh(("cc examples/embed/minimal.c -o %s %s")
      :format(h.quote(exe), flags:gsub("\n", "")))
    assert.are.equal(0, ccode, cerr)
    local libdir = find("*/libloom.so"):gsub("^%.", ""):gsub("/libloom%.so$", "")
    local out, rerr, rcode = h.sh(("LD_LIBRARY_PATH=%s %s examples/embed/hello.lua")
      :format(h.quote(dest .. libdir), h.quote(exe)))
    assert.are.equal(0, rcode, rerr)
    assert.are.equal("hello, embedder\n", out)
  end)

  it("exports only the public API from libloom", function()
    local so = dest .. find("*/libloom.so"):gsub("^%.", "")
    local out = h.sh("nm -D --defined-only " .. h.quote(so))
    for sym in out:gmatch("%S+ [TDB] (%S+)") do
      assert.matches("^l[ou][oa]", sym)  -- loom_* or luaopen_loom
      assert.is_nil(sym:match("^loom__"), sym)
    end
    assert.matches(" T loom_new\n", out)
    assert.matches(" T luaopen_loom\n", out)
  end)
end)

describe_install("the layout for the prefix /usr (Debian's packages)", function()
  local dir, installed

  setup(function()
    -- configured only: meson's install plan is known before anything builds
    dir = h.tmpdir()
    local _, err, code = h.sh(("meson setup --prefix=/usr %s . >/dev/null && meson introspect --installed %s")
      :format(h.quote(dir .. "/b"), h.quote(dir .. "/b")))
    assert.are.equal(0, code, err)
    local out = h.slurp(dir .. "/b/meson-info/intro-installed.json")
    installed = {}
    for to in out:gmatch('"[^"]*"%s*:%s*"([^"]*)"') do installed[#installed + 1] = to end
  end)

  teardown(function()
    if dir then h.rmtree(dir) end
  end)

  local function has(path)
    for _, p in ipairs(installed) do
      if p == path then return true end
    end
    return false
  end

  it("puts loom.so in the multiarch folder on lua5.4's package.cpath", function()
    local so = "/usr/lib/x86_64-linux-gnu/lua/5.4/loom.so"
    assert.is_true(has(so), table.concat(installed, "\n"))
    local found = false
    for template in package.cpath:gmatch("[^;]+") do
      if template:gsub("%?", "loom") == so then found = true end
    end
    assert.is_true(found)
  end)

  it("puts the libraries in /usr/lib/x86_64-linux-gnu", function()
    assert.is_true(has("/usr/lib/x86_64-linux-gnu/libloom.so.0"))
    assert.is_true(has("/usr/lib/x86_64-linux-gnu/pkgconfig/loom.pc"))
    assert.is_true(has("/usr/share/man/man1/loom.1"))
    assert.is_true(has("/usr/bin/loom"))
  end)
  it("packages every installed file in exactly one of debian/'s packages", function()
    local globs = {}
    for _, pkg in ipairs { "loom", "libloom0", "libloom-dev", "lua-loom" } do
      for line in io.lines("debian/" .. pkg .. ".install") do
        local pattern = "^/" .. line:gsub("%${DEB_HOST_MULTIARCH}", "x86_64-linux-gnu")
          :gsub("[%.%-]", "%%%0"):gsub("%*", "[^/]*") .. "$"
        globs[#globs + 1] = { pkg = pkg, pattern = pattern }
      end
    end
    for _, path in ipairs(installed) do
      local owners = {}
      for _, g in ipairs(globs) do
        if path:match(g.pattern) then owners[#owners + 1] = g.pkg end
      end
      assert.are.equal(1, #owners, path .. ": " .. table.concat(owners, ", "))
    end
  end)
end)

describe_install("the man page", function()
  it("renders with no warnings", function()
    local out, err, code = h.sh("groff -man -ww -z docs/loom.1")
    assert.are.equal(0, code, err)
    assert.are.equal("", err)
    assert.are.equal("", out)
  end)

  it("names every option of the binary's usage, and its environment", function()
    local text = h.sh("groff -man -Tutf8 -P-cbou docs/loom.1")
    local _, usage = h.run_bin({ "-X" })
    local n = 0
    for opt in usage:gmatch("\n  (%-%-?%a*)") do
      n = n + 1
      assert.truthy(text:find("\n       " .. opt, 1, true), opt .. " is not in loom(1)")
    end
    assert.is_true(n >= 9, usage)
    for _, var in ipairs { "LOOM_DEBUG", "LOOM_LOG", "LOOM_LOG_UTC", "LOOM_CONSOLE",
                           "LOOM_CLOSE_AT_EXIT", "LUA_INIT_5_4", "LUA_PATH" } do
      assert.truthy(text:find(var, 1, true), var)
    end
  end)
end)

-- luarocks make in a copy of the checkout, into a tree of its own: the
-- checkout, ~/.luarocks and the system's folders stay as they were.
local describe_rock = (os.getenv("LD_PRELOAD") or not have("luarocks"))
  and function(name)
    describe(name, function()
      pending("needs luarocks, in the plain run")
    end)
  end or describe

describe_rock("luarocks make", function()
  local tmp, tree

  setup(function()
    tmp = h.tmpdir()
    tree = tmp .. "/tree"
    local list = "git ls-files --cached --others --exclude-standard 2>/dev/null"
      .. " || find . -path './build*' -prune -o -type f -print"
    local _, err, code = h.sh(("mkdir %s && (%s) | tar -cf - -T - | tar -xf - -C %s")
      :format(h.quote(tmp .. "/src"), list, h.quote(tmp .. "/src")))
    assert.are.equal(0, code, err)
  end)

  teardown(function()
    if tmp then h.rmtree(tmp) end
  end)

  it("builds and installs the module; stock lua5.4 and busted find loom and loom.busted", function()
    local out, err, code = h.sh(("cd %s/src && HOME=%s luarocks --lua-version 5.4 make --tree %s")
      :format(h.quote(tmp), h.quote(tmp), h.quote(tree)), nil, 600)
    assert.are.equal(0, code, out .. err)
    assert.matches("loom scm%-1 is now installed", out)
    local env = ("cd %s && LUA_CPATH_5_4=%s LUA_PATH_5_4=';;' "):format(h.quote(tmp),
      h.quote(tree .. "/lib/lua/5.4/?.so"))
    out, err, code = h.sh(env .. [[lua5.4 -e 'require "loom"
      print(package.searchpath("loom", package.cpath))']])
    assert.are.equal(0, code, err)
    assert.are.equal(tree .. "/lib/lua/5.4/loom.so\n", out)
    local f = assert(io.open(tmp .. "/rock_spec.lua", "w"))
    f:write([[
local async = require("loom.busted").async
local loom = require "loom"
describe("a spec using the rock", function()
  it("awaits", async(function() assert.are.equal(3, loom.sleep(0.01) or 3) end))
end)
]])
    f:close()
    out, err, code = h.sh(env .. "LUA_CPATH_5_4=\"$LUA_CPATH_5_4;;\" busted --lua=lua5.4 -o TAP rock_spec.lua")
    assert.are.equal(0, code, out .. err)
    assert.matches("ok 1 %- a spec using the rock awaits", out)
    -- HOME was the temporary folder: what luarocks keeps stayed in it too
    out = h.sh(("cd %s && ls -A"):format(h.quote(tmp)))
    out = out:gsub("%.cache\n", ""):gsub("%.luarocks\n", "")
    assert.are.equal("rock_spec.lua\nsrc\ntree\n", out)
  end)
end)
