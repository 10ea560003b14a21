--[[ spec/log_spec.lua: loom.log, and loom's own reports through it:
  the record's format, levels, where records go, and the queue: never
  waiting on a slow reader of stderr, never losing what it queued (at
  exit, on an uncaught error, Ctrl-C, SIGTERM), dropping past its bound
  with one record that says so.  The slow reader is a Python peer
  (spec/peers/slow_reader.py); JSON records are read with lua-cjson.
]]
local h = require "spec.helper"
local q = h.quote

-- (not under the sanitizer run's LD_PRELOAD: it is not loom)
local READER = "env -u LD_PRELOAD python3 spec/peers/slow_reader.py"

local REC = "^(%d%d%d%d)%-(%d%d)%-(%d%d) (%d%d):(%d%d):(%d%d)%.(%d%d%d)(Z?) "
  .. "(%u+) +%[(.-)%] (.*)$"

local tmpfile, read = h.tmppath, h.read

-- Runs 'src' with the binary, with the environment 'env' ({NAME =
-- value}), inside the shell command line 'cmdline' where it says
-- SCRIPT (default: just the script).
local function run(src, env, cmdline)
  return h.pipeline(src, cmdline, env)
end

-- The lines of a record text that are no record's nor a continuation.
local function strays(text)
  local bad = {}
  for line in text:gmatch("([^\n]*)\n") do
    if not line:match(REC) and line:sub(1, 2) ~= "  " then bad[#bad + 1] = line end
  end
  return bad
end

describe("loom.log", function()
  it("writes time, level, task and message, one line a record", function()
    local _, err, code = run([[
      loom.log.info("hello %s, %d", "world", 42)
      loom.log.warn("careful")
      loom.log.error("bad")
      loom.log.debug("not shown by default")
    ]])
    assert.are.equal(0, code, err)
    local l = h.lines(err)
    assert.are.equal(3, #l, err)
    local y, mo, d, hh, mi, ss, ms, z, level, task, msg = l[1]:match(REC)
    assert.truthy(y, l[1])
    assert.are.equal("", z)
    assert.are.same({ "INFO", "main", "hello world, 42" }, { level, task, msg })
    assert.are.equal(os.date("%Y-%m-%d"), ("%s-%s-%s"):format(y, mo, d))
    assert.truthy(tonumber(hh) < 24 and tonumber(mi) < 60 and tonumber(ss) < 61
      and tonumber(ms) < 1000)
    assert.matches("^%S+ %S+ WARN  %[main%] careful$", l[2])
    assert.matches("^%S+ %S+ ERROR %[main%] bad$", l[3])
  end)

  it("names the task as it is when the line is written", function()
    local _, err, code = run([[
      local t = loom.spawn(function()
        loom.log.info("one")
        loom.current().name = "renamed"
        loom.log.info("two")
      end)
      t.name = "set after spawn"
      t:await()
    ]])
    assert.are.equal(0, code, err)
    local r = h.records(err)
    assert.are.same({ "set after spawn", "renamed" }, { r[1].task, r[2].task })
  end)

  it("outside any task the task is '-'; from the module too", function()
    local out, err, code = h.lua_src([[
      local log = require "loom.log"
      local loom = require "loom"
      assert(log == loom.log)
      loom.log.info("outside")
      loom.run(function() loom.log.info("inside") end)
    ]])
    assert.are.equal(0, code, err)
    assert.are.equal("", out)
    local r = h.records(err)
    assert.are.same({ "-", "outside" }, { r[1].task, r[1].msg })
    assert.are.same({ "main", "inside" }, { r[2].task, r[2].msg })
  end)

  it("keeps a message with newlines one record, its lines indented", function()
    local _, err, code = run([[
      loom.log.warn("first\nsecond\n\tthird\n")
      loom.log.info("next")
    ]])
    assert.are.equal(0, code, err)
    local l = h.lines(err)
    assert.are.equal(4, #l)
    assert.matches("%] first$", l[1])
    assert.are.same({ "  second", "  \tthird" }, { l[2], l[3] })
    local r = h.records(err)
    assert.are.equal(2, #r)
    assert.are.equal("first\nsecond\n\tthird", r[1].msg)
  end)

  it("never raises on its arguments", function()
    local _, err, code = run([[
      loom.log.info({})
      loom.log.info("count", 5, nil, true)
      loom.log.info(nil)
      loom.log.info(setmetatable({}, { __tostring = function() error("no") end }))
      loom.log.info("%d apples", "many")
      loom.log.info("100%")
      loom.log.info(3.5, "x")
      print("went on")
    ]])
    assert.are.equal(0, code, err)
    local r = h.records(err)
    assert.are.equal(7, #r, err)
    assert.matches("^table: 0x%x+$", r[1].msg)
    assert.are.equal("count 5 nil true", r[2].msg)
    assert.are.equal("nil", r[3].msg)
    assert.are.equal("(table)", r[4].msg)
    assert.matches("^%%d apples many %(bad format: .*number expected, got string%)%)$", r[5].msg)
    assert.are.equal("100%", r[6].msg)
    assert.are.equal("3.5 x", r[7].msg)
  end)

  describe("levels", function()
    it("level(name) sets the threshold and returns the one before", function()
      local out, err, code = run([[
        print(loom.log.level())
        print(loom.log.level("debug"))
        loom.log.debug("now shown")
        print(loom.log.level("error"))
        loom.log.warn("hidden")
        loom.log.error("shown")
        print(pcall(loom.log.level, "loud"))
        print(loom.log.level())
      ]])
      assert.are.equal(0, code, err)
      local l = h.lines(out)
      assert.are.same({ "info", "info", "debug" }, { l[1], l[2], l[3] })
      assert.matches("^false\t.*bad argument #1 to 'loom.log.level' %(invalid option 'loud'%)$", l[4])
      assert.are.equal("error", l[5])
      local r = h.records(err)
      assert.are.same({ "now shown", "shown" }, { r[1].msg, r[2].msg })
    end)

    it("LOOM_LOG sets it at start; loom's own warnings follow it", function()
      local src = [[
        loom.log.debug("d") loom.log.info("i") loom.log.warn("w") loom.log.error("e")
      ]]
      local function msgs(err)
        local t = {}
        for _, r in ipairs(h.records(err)) do t[#t + 1] = r.msg end
        return table.concat(t, ",")
      end
      local _, err = run(src, { LOOM_LOG = "debug" })
      assert.are.equal("d,i,w,e", msgs(err))
      _, err = run(src, { LOOM_LOG = "warn" })
      assert.are.equal("w,e", msgs(err))
      _, err = run(src, { LOOM_LOG = "nonsense" })
      assert.are.equal("i,w,e", msgs(err))
      -- a slow step warning of debug mode is a warning record
      local busy = [[
        local t0 = os.clock()
        while os.clock() - t0 < 0.15 do end
        loom.sleep(0)
      ]]
      _, err = run(busy, { LOOM_DEBUG = "1" })
      local r = h.records(err)[1]
      assert.are.equal("WARN", r and r.level, err)
      assert.matches("ran for %d+ ms without suspending\nstack traceback", r.msg)
      _, err = run(busy, { LOOM_DEBUG = "1", LOOM_LOG = "error" })
      assert.are.equal("", err)
    end)
  end)

  it("LOOM_LOG_UTC=1 writes UTC (with a Z), else local time", function()
    local function hour_offset(env)
      local before = os.date("!*t")
      local _, err = run([[loom.log.info("t")]], env)
      local after = os.date("!*t")
      local _, _, _, hh, _, _, _, z = err:match(REC)
      local d1 = (tonumber(hh) - before.hour) % 24
      local d2 = (tonumber(hh) - after.hour) % 24
      return d1 == d2 and d1 or d2, z
    end
    local off, z = hour_offset({ TZ = "UTC-5", LOOM_LOG_UTC = "1" })
    assert.are.same({ 0, "Z" }, { off, z })
    off, z = hour_offset({ TZ = "UTC-5" })
    assert.are.same({ 5, "" }, { off, z })
  end)

  describe("format('json')", function()
    it("writes one JSON object a line: ts, level, task, msg", function()
      local cjson = require "cjson"
      local out, err, code = run([[
        print(loom.log.format("json"))
        loom.log.info('say "hi"\n\tto\1 all')
        loom.spawn(function() loom.log.error("from a task") end).name = "t1"
        loom.sleep(0.01)
        print(loom.log.format())
        print(pcall(loom.log.format, "xml"))
        loom.log.format("text")
        loom.log.warn("plain again")
      ]], { TZ = "UTC-5" })
      assert.are.equal(0, code, err)
      local l = h.lines(out)
      assert.are.same({ "text", "json" }, { l[1], l[2] })
      assert.matches("bad argument #1 to 'loom.log.format' %(invalid option 'xml'%)", l[3])
      local lines = h.lines(err)
      assert.are.equal(3, #lines, err)
      local a, b = cjson.decode(lines[1]), cjson.decode(lines[2])
      assert.are.same({ level = "info", task = "main", msg = 'say "hi"\n\tto\1 all' },
                      { level = a.level, task = a.task, msg = a.msg })
      assert.matches("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d%.%d%d%d%+05:00$", a.ts)
      assert.are.same({ "error", "t1", "from a task" }, { b.level, b.task, b.msg })
      assert.matches("%] plain again$", lines[3])
    end)

    it("task is null outside tasks; UTC times end in Z", function()
      local cjson = require "cjson"
      local out, err, code = h.sh(("LOOM_LOG_UTC=1 lua5.4 -e %s"):format(q(
        ("package.cpath = %q .. package.cpath "):format(h.build .. "/lua/?.so;")
        .. [[local loom = require "loom" loom.log.format("json") loom.log.warn("w")]])))
      assert.are.equal(0, code, err)
      assert.are.equal("", out)
      local r = cjson.decode(err)
      assert.are.equal(cjson.null, r.task)
      assert.matches("Z$", r.ts)
    end)
  end)

  describe("to", function()
    it("(path) appends to a file; (nil) goes back to stderr", function()
      local path = tmpfile()
      local f = assert(io.open(path, "w"))
      f:write("kept\n")
      f:close()
      local out, err, code = run(([[
        print(loom.log.to(%q))
        loom.log.info("to the file")
        loom.log.error("also")
        print(loom.log.to(nil))
        loom.log.info("to stderr")
        print(loom.log.to("/nonexistent/dir/log"))
        print(pcall(loom.log.to, 42))
      ]]):format(path))
      local data = read(path)
      os.remove(path)
      assert.are.equal(0, code, err)
      local l = h.lines(out)
      assert.are.same({ "true", "true" }, { l[1], l[2] })
      assert.are.equal("nil\topen '/nonexistent/dir/log': no such file or directory\tENOENT", l[3])
      assert.matches("bad argument #1 to 'loom.log.to' %(path or stream expected, got number%)", l[4])
      assert.matches("^kept\n[^\n]+ INFO  %[main%] to the file\n[^\n]+ ERROR %[main%] also\n$", data)
      assert.are.equal("to stderr", h.records(err)[1].msg)
      assert.are.equal(1, #h.records(err))
    end)

    it("(stream) writes to any loom stream; a closed one sends back to stderr", function()
      local out, err, code = run([[
        local process = require "loom.process"
        local p = assert(process.spawn{"cat"})
        loom.log.to(p.stdin)
        loom.log.info("through cat")
        loom.log.to(loom.stdout)
        loom.log.warn("on stdout")
        p.stdin:close()
        io.stdout:write(p.stdout:read_all())
        p:wait()
        print(pcall(loom.log.to, p.stdin))
        p = assert(process.spawn{"cat"})
        loom.log.to(p.stdin)
        p.stdin:close()
        loom.log.info("back on stderr")
      ]])
      assert.are.equal(0, code, err)
      local r = h.records(out)
      assert.are.same({ "on stdout", "through cat" }, { r[1].msg, r[2].msg })
      assert.matches("^false\t.*attempt to use a closed stream$", r[3].msg)
      assert.are.equal("back on stderr", h.records(err)[1].msg)
    end)
  end)

  describe("the queue", function()
    it("never waits for a stalled stderr; past its bound lines drop, and one line says how many", function()
      local got, go = tmpfile(), tmpfile()
      local out, _, code = run(([[
        local ticks = 0
        local ticker = loom.spawn(function()
          while true do ticks = ticks + 1; loom.sleep(0.001) end
        end)
        local pad = string.rep("p", 1000)
        local t0 = os.clock()
        for i = 1, 3000 do loom.log.info("line %%d %%s", i, pad) end
        local cpu = os.clock() - t0
        loom.sleep(0.02)
        local during = ticks
        io.open(%q, "w"):close()
        assert(loom.stderr:flush())  -- the queue emptied
        loom.log.info("after")
        ticker:cancel()
        print(during > 0, cpu < 2)
      ]]):format(go), nil, ("SCRIPT 2>&1 >%s.out | %s %s --after %s; cat %s.out"):format(
        got, READER, got, go, got))
      os.remove(go); os.remove(got .. ".out")
      local data = read(got)
      os.remove(got)
      assert.are.equal(0, code)
      assert.are.equal("true\ttrue\n", out)
      local r = h.records(data)
      local n = 0
      while r[n + 1] and r[n + 1].msg:match("^line ") do
        n = n + 1
        assert.are.equal(n, tonumber(r[n].msg:match("^line (%d+) ")))
      end
      -- about 1 MiB of lines went (and the pipe's own buffer)
      assert.is_true(n > 900 and n < 1200, "lines kept: " .. n)
      assert.are.equal(("%d log lines dropped"):format(3000 - n), r[n + 1].msg)
      assert.are.equal("WARN", r[n + 1].level)
      assert.are.equal("after", r[n + 2].msg)
      assert.are.equal(n + 2, #r)
      assert.are.same({}, strays(data))
    end)

    it("two tasks logging at once never interleave half lines", function()
      local got = tmpfile()
      local _, _, code = run([[
        local ts = {}
        for k = 1, 8 do
          ts[k] = loom.spawn(function()
            local body = string.rep(string.char(64 + k), 5000)
            for i = 1, 20 do  -- 800 KB: below the bound
              loom.log.info("%d %s", k, body)
              -- the reader takes some meanwhile: a record written now
              -- would go into that room, before the rest of the last
              local t0 = os.clock()
              while os.clock() - t0 < 0.002 do end
              if i % 2 == 0 then loom.yield() end
            end
          end)
        end
        for _, t in ipairs(ts) do t:await() end
      ]], nil, ("SCRIPT 2>&1 | %s %s --chunk 4096 --pause 0.0005"):format(READER, got))
      local data = read(got)
      os.remove(got)
      assert.are.equal(0, code)
      local r = h.records(data)
      assert.are.equal(160, #r)
      for _, rec in ipairs(r) do
        local k, body = rec.msg:match("^(%d) (.*)$")
        assert.are.equal(string.rep(string.char(64 + tonumber(k)), 5000), body)
      end
    end)

    local function stalled(src, tail)
      local got, go = tmpfile(), tmpfile()
      local out = run(([[
        local WRITE_PID = %q
        local function write_pid()
          local f = assert(io.open("/proc/self/stat"))
          local pid = f:read("a"):match("^(%%d+)")
          f:close()
          local g = assert(io.open(WRITE_PID .. ".tmp", "w"))
          g:write(pid) g:close()
          os.rename(WRITE_PID .. ".tmp", WRITE_PID)
        end
        for i = 1, 500 do loom.log.info("queued %%d %%s", i, string.rep("q", 500)) end
        local GO = %q
      ]]):format(go .. ".pid", go) .. src, nil,
        ("SCRIPT 2>&1 >/dev/null | %s %s --after %s & %s; wait; echo \"status $?\""):format(
          READER, got, go, tail:gsub("PID", go .. ".pid"):gsub("GO", go)))
      os.remove(go); os.remove(go .. ".pid")
      local data = read(got)
      os.remove(got)
      local r = h.records(data)
      for i = 1, 500 do
        assert.are.equal(i, tonumber(r[i] and r[i].msg:match("^queued (%d+)")),
          "record " .. i .. ": " .. tostring(r[i] and r[i].msg))
      end
      assert.are.same({}, strays(data))
      return r, out
    end

    it("loses nothing at exit", function()
      local r = stalled([[
        io.open(GO, "w"):close()
        loom.log.info("last")
      ]], "true")
      assert.are.equal("last", r[501].msg)
    end)

    it("loses nothing on an uncaught error, reported after it", function()
      local r = stalled([[
        io.open(GO, "w"):close()
        loom.spawn(function() error("task failed") end).name = "failing"
        loom.yield()
        error("main failed")
      ]], "true")
      assert.are.equal(502, #r)
      local msgs = r[501].msg .. r[502].msg
      assert.truthy(msgs:find("error in task 'failing': .*task failed"), msgs)
      assert.truthy(msgs:find("main failed\nstack traceback", 1), msgs)
      assert.are.same({ "ERROR", "ERROR" }, { r[501].level, r[502].level })
    end)

    it("loses nothing on Ctrl-C (SIGINT) nor on SIGTERM", function()
      for _, sig in ipairs { "INT", "TERM" } do
        local r = stalled([[
          write_pid()
          loom.sleep(30)
        ]], "while [ ! -s PID ]; do sleep 0.01; done; kill -" .. sig
          .. " $(cat PID); touch GO")
        assert.are.equal(500, #r, sig)
      end
    end)
  end)

  describe("loom's own reports", function()
    it("an uncaught error, a failed handler and an HTTP handler are error records", function()
      local _, err, code = run([[
        local http, net = require "loom.http", require "loom.net"
        loom.log.info("before")
        local srv = http.serve("127.0.0.1", 0, function() error("handler broke") end)
        local _, port = srv:address()
        local res = http.get("http://127.0.0.1:" .. port .. "/x")
        srv:close()
        local lsn = net.listen("127.0.0.1", 0, function() error("conn broke") end)
        local _, p2 = lsn:address()
        local c = net.connect("127.0.0.1", p2)
        c:read()
        lsn:close()
        c:close()
        loom.log.info("status %d", res.status)
        error("at the end")
      ]])
      assert.are.equal(1, code)
      local r = h.records(err)
      assert.are.same({}, strays(err))
      assert.are.equal("before", r[1].msg)
      assert.are.equal("ERROR", r[2].level)
      assert.matches("^error in the HTTP handler for GET /x: .*handler broke\n", r[2].msg)
      assert.are.equal("ERROR", r[3].level)
      assert.matches("^error in task '[^']+': .*conn broke\nstack traceback", r[3].msg)
      assert.are.equal("status 500", r[4].msg)
      assert.are.equal("ERROR", r[5].level)
      assert.matches("at the end\nstack traceback of task 'main':", r[5].msg)
    end)
  end)
end)
