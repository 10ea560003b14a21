--[[ spec/exports.lua: the public surface of the loom module, read from
  the module itself (for the specs that check docs/ and other lists of
  names against it).

    local exports = require("spec.exports")
    exports.modules()  --> { {name = "loom", names = {...}}, {name = "loom.fs", ...}, ... }
    exports.classes()  --> { {name = "loom.Task", methods = {...}, fields = {...}}, ... }

  Both sorted.  A module's names are its keys (those loaded on first use
  too: loom.http and the standard streams); a class's methods are the
  keys of its metatable's __index, found by making one of each in a
  loom.run.  Names starting with "_" are private and left out.
]]
local M = {}

local build = os.getenv("LOOM_BUILD") or "build"
if not package.cpath:find(build .. "/lua/?.so", 1, true) then
  package.cpath = build .. "/lua/?.so;" .. package.cpath
end

-- The public submodules: each is found by require "loom.<name>" in a
-- stock lua5.4 (src/module.c's SUBMODULES).  The other modules under
-- lua/loom/ are loom's own parts, merged into 'loom' or loaded by it.
M.SUBMODULES = { "busted", "fs", "http", "json", "log", "net", "process", "signal" }

-- Keys of 'loom' made on first use by its __index (not seen by pairs).
local LAZY = { "http", "stdin", "stdout", "stderr" }

local function public(k)
  return type(k) == "string" and k:sub(1, 1) ~= "_"
end

local function sorted_keys(t, extra)
  local seen, out = {}, {}
  for k in pairs(t) do
    if public(k) and not seen[k] then seen[k] = true; out[#out + 1] = k end
  end
  for _, k in ipairs(extra or {}) do
    if not seen[k] then seen[k] = true; out[#out + 1] = k end
  end
  table.sort(out)
  return out
end

function M.modules()
  local loom = require "loom"
  local out = { { name = "loom", names = sorted_keys(loom, LAZY) } }
  for _, sub in ipairs(M.SUBMODULES) do
    local mod = require("loom." .. sub)
    out[#out + 1] = { name = "loom." .. sub, names = sorted_keys(mod) }
  end
  table.sort(out, function(a, b) return a.name < b.name end)
  return out
end

-- The methods of 'obj': the keys of its metatable's __index that give a
-- function.  An __index that is a function (tasks, HTTP requests) looks
-- its methods up in a table it holds as an upvalue: each such table's
-- keys are tried on the object.
local function methods_of(obj)
  local mt = getmetatable(obj)
  local idx = mt and mt.__index
  local candidates = {}
  if type(idx) == "table" then
    candidates[1] = idx
  elseif type(idx) == "function" then
    for i = 1, math.huge do
      local name, v = debug.getupvalue(idx, i)
      if name == nil then break end
      if type(v) == "table" then candidates[#candidates + 1] = v end
    end
  end
  local seen, out = {}, {}
  for _, t in ipairs(candidates) do
    for k in pairs(t) do
      if public(k) and k:sub(1, 2) ~= "__" and not seen[k]
          and type(obj[k]) == "function" then
        seen[k] = true
        out[#out + 1] = k
      end
    end
  end
  table.sort(out)
  return out
end

-- The fields users read: not in a metatable, so named here; each must
-- be there on the object made ('fields_of' raises when one is not).
local FIELDS = {
  ["loom.Task"] = { "name" },
  ["loom.Process"] = { "pid", "stderr", "stdin", "stdout" },
  ["loom.Cancelled"] = { "code", "message" },
  ["loom.Timeout"] = { "code", "message" },
  ["loom.http.Request"] = { "headers", "method", "path", "peer", "query", "target", "version" },
  ["loom.http.Response"] = { "body", "headers", "status", "url" },
  ["loom.http.WebSocket"] = { "close_code", "close_reason", "protocol" },
}

local function fields_of(name, obj)
  local list = FIELDS[name] or {}
  for _, k in ipairs(list) do
    if obj[k] == nil then
      error(("spec.exports: %s has no field '%s'"):format(name, k), 2)
    end
  end
  return list
end

-- Makes one of each object a user gets and hands it to 'add(name, obj)'.
-- (classes() runs a loop of its own: call it outside loom.run.)
local function make_all(loom, add)
  local net, fs, process, signal = loom.net, loom.fs, loom.process, loom.signal
  add("loom.Task", loom.spawn(function() end))
  add("loom.Future", loom.future())
  add("loom.Lock", loom.lock())
  add("loom.Event", loom.event())
  add("loom.Condition", loom.condition())
  add("loom.Semaphore", loom.semaphore(1))
  add("loom.Queue", loom.queue())
  loom.group(function(g) add("loom.Group", g) end)
  local srv = assert(net.listen("127.0.0.1", 0, function() end))
  add("loom.Server", srv)
  local c = assert(net.connect(srv:address()))
  add("loom.Stream", c)
  c:close()
  srv:close()
  local u = assert(net.udp("127.0.0.1", 0))
  add("loom.UDP", u)
  u:close()
  local dir = assert(fs.mkdtemp("/tmp/loom-exports-"))
  local f = assert(fs.open(dir .. "/f", "w"))
  add("loom.File", f)
  f:close()
  local w = assert(fs.watch(dir))
  add("loom.Watcher", w)
  w:close()
  local p = assert(process.spawn { "true", stderr = "pipe" })
  add("loom.Process", p)
  p:wait()
  p:close()
  local h = signal.on("SIGUSR1", function() end)
  add("loom.SignalHandler", h)
  h:cancel()
  local _, tmo = pcall(loom.timeout, 0, loom.sleep, 1)
  add("loom.Timeout", tmo)
  add("loom.Cancelled", loom.Cancelled("x"))
  local http = loom.http
  local hs = assert(http.serve("127.0.0.1", 0, function(req)
    add("loom.http.Request", req)
    return 200, "x"
  end))
  add("loom.http.Server", hs)
  local host, port = hs:address()
  local res = assert(http.get(("http://%s:%d/"):format(host, port)))
  add("loom.http.Response", res)
  hs:close()
  local wss = assert(http.serve("127.0.0.1", 0, function(req)
    local ws = assert(req:websocket { protocols = "p" })
    ws:receive()
  end))
  local _, wport = wss:address()
  local ws = assert(http.websocket(("ws://127.0.0.1:%d/"):format(wport),
    { protocols = "p" }))
  ws:close(1000, "done")
  add("loom.http.WebSocket", ws)
  wss:close()
  assert(fs.remove(dir, { recursive = true }))
end

function M.classes()
  local loom = require "loom"
  local out = {}
  loom.run(function()
    make_all(loom, function(name, obj)
      out[#out + 1] = { name = name, methods = methods_of(obj),
                        fields = fields_of(name, obj) }
    end)
  end)
  table.sort(out, function(a, b) return a.name < b.name end)
  return out
end

return M
