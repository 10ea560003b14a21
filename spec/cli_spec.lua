--[[ spec/cli_spec.lua: the loom binary's command line against lua5.4's
  (lua.c): the order in which it runs LUA_INIT, -e, -l, -W and the
  script, and how it reports what fails.

  Every child runs under coreutils 'timeout', so a binary that hangs
  fails its test instead of the run.
]]
local helper = require("spec.helper")
local q, lines = helper.quote, helper.lines

local LIMIT = 20  -- seconds any child may run

local function slurp(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  os.remove(path)
  return s
end

--[[ Runs the binary with 'args' under 'timeout', with the environment
  'env' ({NAME = value}) and stdin from /dev/null.
  Returns stdout, stderr and the exit status. ]]
local function loom(args, env)
  -- the caller's own LUA_INIT must not change what the tests see
  local parts = { "env -u LUA_INIT -u LUA_INIT_5_4" }
  for k, v in pairs(env or {}) do parts[#parts + 1] = q(k .. "=" .. v) end
  parts[#parts + 1] = ("timeout -k 5 %d"):format(LIMIT)
  parts[#parts + 1] = q(helper.loom_bin)
  for _, a in ipairs(args) do parts[#parts + 1] = q(a) end
  local out, err = os.tmpname(), os.tmpname()
  local _, how, code = os.execute(("%s </dev/null >%s 2>%s"):format(
    table.concat(parts, " "), q(out), q(err)))
  if how == "signal" then code = 128 + code end
  return slurp(out), slurp(err), code
end

describe("loom command line", function()
  describe("runs its steps as lua5.4 does", function()
    it("runs each -e in turn: a later syntax error stops the run there", function()
      local out, err, code = loom({ "-e", "print(1)", "-e", "x = = 2", "-e", "print(3)" })
      assert.are.equal("1\n", out)
      assert.are.equal("loom: (command line):1: unexpected symbol near '='\n", err)
      assert.are.equal(1, code)
    end)

    it("-l before a chunk that would not compile reports the module", function()
      local out, err, code = loom({ "-l", "nosuchmod", "-e", "1" })
      assert.are.equal("", out)
      assert.are.equal(1, code)
      assert.matches("^loom: module 'nosuchmod' not found:\n", err)
      assert.not_matches("loom%.cli", err)
      assert.not_matches("unexpected symbol", err)
    end)

    it("a -e traceback ends in the chunk, as lua5.4's, with no loom frame", function()
      local out, err, code = loom({ "-e", "x = 1", "-e", "error('x')" })
      assert.are.equal("", out)
      assert.are.equal(1, code)
      assert.are.equal("loom: (command line):1: x\n"
        .. "stack traceback of task 'main':\n"
        .. "\t[C]: in function 'error'\n"
        .. "\t(command line):1: in main chunk\n"
        .. "\t[C]: in ?\n", err)
    end)

    it("a script after -e shows 'main chunk' in its traceback", function()
      local path = helper.script("local function f() error('y') end\nf()\n")
      local _, err, code = loom({ "-e", "x = 1", path })
      assert.are.equal(1, code)
      assert.matches("\t" .. path:gsub("%p", "%%%0") .. ":2: in main chunk\n", err)
      assert.not_matches("field 'fn'", err)
      assert.not_matches("%[loom%]", err)
      -- and alone, the script is the main task itself, as before
      _, err, code = loom({ path })
      os.remove(path)
      assert.are.equal(1, code)
      assert.matches(":2: in main chunk\n$", err)
    end)

    it("-l sets its global before the next step and the script sees arg", function()
      local out, err, code = loom({ "-l", "m=string", "-e", "print(m.rep('a', 3), arg[1])",
                                    "-", "x" })
      assert.are.equal("", err)
      assert.are.equal(0, code)
      assert.are.equal("aaa\tx\n", out)
    end)
  end)

  describe("LUA_INIT", function()
    it("runs LUA_INIT before the options, with arg set", function()
      local out, err, code = loom({ "-e", "print('e', x)" },
                                  { LUA_INIT = "x = 1 print('init', arg[1])" })
      assert.are.equal("", err)
      assert.are.equal(0, code)
      assert.are.same({ "init\t-e", "e\t1" }, lines(out))  -- as lua5.4
    end)

    it("prefers LUA_INIT_5_4 to LUA_INIT", function()
      local out, _, code = loom({ "-e", "" },
                                { LUA_INIT = "print('plain')", LUA_INIT_5_4 = "print('5.4')" })
      assert.are.equal(0, code)
      assert.are.equal("5.4\n", out)
    end)

    it("@file runs the file, before a script", function()
      local init = helper.script("print('init file', ...)")
      local script = helper.script("print('script', ...)")
      local out, err, code = loom({ script, "a" }, { LUA_INIT = "@" .. init })
      os.remove(init)
      os.remove(script)
      assert.are.equal("", err)
      assert.are.equal(0, code)
      assert.are.same({ "init file", "script\ta" }, lines(out))
    end)

    it("may suspend: it runs in the main task", function()
      local out, _, code = loom({ "-e", "print('after')" },
                                { LUA_INIT = "loom.sleep(0.001) print('init slept')" })
      assert.are.equal(0, code)
      assert.are.same({ "init slept", "after" }, lines(out))
    end)

    it("is reported by its name when it fails, and nothing else runs", function()
      local out, err, code = loom({ "-e", "print('e')" }, { LUA_INIT = "x = =" })
      assert.are.equal("", out)
      assert.are.equal(1, code)
      assert.are.equal("loom: LUA_INIT:1: unexpected symbol near '='\n", err)
      out, err, code = loom({ "-e", "print('e')" }, { LUA_INIT_5_4 = "error('boom')" })
      assert.are.equal("", out)
      assert.are.equal(1, code)
      assert.matches("^loom: LUA_INIT_5_4:1: boom\n", err)
      assert.matches("LUA_INIT_5_4:1: in main chunk", err)
    end)

    it("-E ignores LUA_INIT and LUA_PATH", function()
      local out, err, code = loom({ "-E", "-e", "print(package.path:find('/nowhere', 1, true))" },
                                  { LUA_INIT = "print('init')", LUA_PATH = "/nowhere/?.lua" })
      assert.are.equal("", err)
      assert.are.equal(0, code)
      assert.are.equal("nil\n", out)
    end)
  end)

  describe("-W", function()
    it("turns warnings on from where it stands", function()
      local _, err, code = loom({ "-e", "warn('before')", "-W", "-e", "warn('after')" })
      assert.are.equal(0, code)
      assert.are.equal("Lua warning: after\n", err)
      _, err, code = loom({ "-W", "-" })
      assert.are.equal(0, code)
      assert.are.equal("", err)
    end)

    it("works with a script alone", function()
      local path = helper.script("warn('from script')")
      local _, err, code = loom({ "-W", path })
      os.remove(path)
      assert.are.equal(0, code)
      assert.are.equal("Lua warning: from script\n", err)
    end)
  end)

  describe("options", function()
    it("rejects an option as the argument of -e, and bad -E/-W forms", function()
      for _, args in ipairs({ { "-e", "-x" }, { "-Ex" }, { "-Wx" } }) do
        local out, err, code = loom(args)
        assert.are.equal("", out)
        assert.are.equal(1, code)
        assert.matches("usage:", err)
      end
    end)

    it("lists -E and -W in the usage", function()
      local _, err = loom({ "-z" })
      assert.matches("\n  %-E        ignore environment variables\n", err)
      assert.matches("\n  %-W        turn warnings on\n", err)
    end)
  end)
end)
