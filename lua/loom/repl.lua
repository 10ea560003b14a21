--[[ loom.repl: the read-eval-print loop.

  An evaluator takes input a line at a time, as lua.c does: a first
  line is tried as 'return <line>' (so an expression shows its values,
  '=' optional), else compiled as statements; input that stops in the
  middle of a statement (the compiler's error is at '<eof>') asks for
  another line.  Each complete input runs as a task of its own, so it
  may sleep, await or do I/O while the program's other tasks go on;
  globals it sets stay in the environment, its locals end with it, as
  at lua.c's prompt.

  repl.format shows values as the prompt prints them: as print does,
  but a table one level deep with its keys sorted, as Node's REPL
  does, strings quoted inside it.  repl.complete gives the words that
  can complete a line: globals, fields of tables, methods after ':'.
  repl.run is the loom binary's REPL (see src/main.c), on the line
  editor when the terminal has one, else on plain lines.
]]
local loom = require "loom"
local _, core = ...  -- the private core, from src/module.c's loader

local type, tostring, select, pcall, xpcall, error, next, rawget =
  type, tostring, select, pcall, xpcall, error, next, rawget
local getmetatable, setmetatable, load = getmetatable, setmetatable, load
local ipairs, pairs, math_type = ipairs, pairs, math.type
local pack, concat, sort = table.pack, table.concat, table.sort
local traceback = debug.traceback
local spawn, await = loom.spawn, loom.await
local check = core.check

local M = {}

-- {====================================================================
-- Values as text

local KEYWORDS = {}
for w in ([[and break do else elseif end false for function goto if in
  local nil not or repeat return then true until while]]):gmatch("%a+") do
  KEYWORDS[w] = true
end

local function is_name(s)
  return type(s) == "string" and s:find("^[%a_][%w_]*$") ~= nil
    and not KEYWORDS[s]
end

local ESCAPES = {
  ['"'] = '\\"', ["\\"] = "\\\\", ["\a"] = "\\a", ["\b"] = "\\b",
  ["\f"] = "\\f", ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t",
  ["\v"] = "\\v",
}

--- quote(s): 's' as a Lua string literal, on one line.
local function quote(s)
  return '"' .. s:gsub('[%c"\\]', function(c)
    return ESCAPES[c] or ("\\%03d"):format(c:byte())
  end) .. '"'
end

-- tostring that never raises (a __tostring may fail, or suspend where
-- nothing can: then the value's type and address).
local function safe_tostring(v)
  local ok, s = pcall(tostring, v)
  if ok and type(s) == "string" then return s end
  return ("%s: %p"):format(type(v), v)
end

-- Whether tostring shows 'v' better than its fields do.
local function has_tostring(v)
  local ok, mt = pcall(getmetatable, v)
  return ok and type(mt) == "table" and rawget(mt, "__tostring") ~= nil
end

-- A value inside a table: no deeper than this.
local function inner(v)
  local tv = type(v)
  if tv == "string" then return quote(v) end
  if tv == "table" and not has_tostring(v) then
    return next(v) == nil and "{}" or "{...}"
  end
  return safe_tostring(v)
end

local KEY_RANK = { number = 1, string = 2, boolean = 3 }

local function key_before(a, b)
  local ta, tb = type(a), type(b)
  local ra, rb = KEY_RANK[ta] or 4, KEY_RANK[tb] or 4
  if ra ~= rb then return ra < rb end
  if ta == "number" or ta == "string" then return a < b end
  if ta == "boolean" then return not a and b end
  return safe_tostring(a) < safe_tostring(b)
end

local function key_text(k)
  if is_name(k) then return k end
  if type(k) == "string" then return "[" .. quote(k) .. "]" end
  return "[" .. safe_tostring(k) .. "]"
end

local MAX_ENTRIES = 100  -- shown of a table; the rest are counted
local WIDTH = 72         -- beyond: one entry a line

-- A table one level deep: its sequence 1..n first, then the other keys
-- sorted (numbers, strings, booleans, the rest).
local function table_text(t)
  local parts, n = {}, 0
  while rawget(t, n + 1) ~= nil do
    n = n + 1
    if n <= MAX_ENTRIES then parts[n] = inner(rawget(t, n)) end
  end
  local keys = {}
  for k in next, t do
    if not (math_type(k) == "integer" and k >= 1 and k <= n) then
      keys[#keys + 1] = k
    end
  end
  sort(keys, key_before)
  for _, k in ipairs(keys) do
    if #parts >= MAX_ENTRIES then break end
    parts[#parts + 1] = key_text(k) .. " = " .. inner(rawget(t, k))
  end
  local total = n + #keys
  if total > #parts then
    parts[#parts + 1] = ("... (%d more)"):format(total - #parts)
  end
  if #parts == 0 then return "{}" end
  local line = "{ " .. concat(parts, ", ") .. " }"
  if #line <= WIDTH then return line end
  return "{\n  " .. concat(parts, ",\n  ") .. "\n}"
end

-- A value at the top: as print shows it, a table as table_text.
local function value_text(v)
  if type(v) == "table" and not has_tostring(v) then
    return table_text(v)
  end
  return safe_tostring(v)
end

--- repl.format(...): the values as the prompt shows them, separated by
-- tabs as print separates them; "" for none.
function M.format(...)
  local n = select("#", ...)
  local parts = {}
  for i = 1, n do parts[i] = value_text((select(i, ...))) end
  return concat(parts, "\t")
end

-- }====================================================================


-- {====================================================================
-- The evaluator

-- The text of an error value, as lua.c's message handler makes it.
local function message_of(e)
  if type(e) == "string" then return e end
  if type(e) == "number" then return tostring(e) end
  if has_tostring(e) then return safe_tostring(e) end
  if type(e) == "table" then
    return ("(error object is a table value: %s)"):format(table_text(e))
  end
  return ("(error object is a %s value)"):format(type(e))
end

-- The frames of the input's own code: the evaluator's below them go.
local OWN_FRAMES = "\n\t%[C%]: in function 'xpcall'\n"

local function on_error(e)
  local tb = traceback(message_of(e), 2)
  local cut = tb:find(OWN_FRAMES)
  if cut then tb = tb:sub(1, cut - 1) end
  return tb
end

-- The body of an input's task: its results, or its error's text.
local function run_input(fn)
  return pack(xpcall(fn, on_error))
end

local ev_methods = {}
local ev_mt = {
  __name = "loom.repl.evaluator",
  __index = ev_methods,
  __tostring = function(ev)
    return ("loom.repl.evaluator (%s)"):format(
      ev.task and "running" or ev.buf and "more" or "idle")
  end,
}

--- repl.evaluator([env [, {chunkname = "=stdin", name = "repl"}]]): an
-- evaluator whose inputs see 'env' (default: the globals) as their
-- globals; 'chunkname' names them in messages, 'name' their tasks.
function M.evaluator(env, opts)
  if env ~= nil then check.table(env, 1, "repl.evaluator") end
  opts = check.opts(opts, 2, "repl.evaluator")
  return setmetatable({
    env = env or _G,
    chunkname = opts.chunkname or "=stdin",
    name = opts.name or "repl",
    buf = nil,   -- the lines of an incomplete input
    task = nil,  -- the task of the input that runs
  }, ev_mt)
end

-- Compiles the input so far: the function, or nil and "more" or the
-- syntax error.
local function compile(ev, line)
  if ev.buf == nil then
    if line:sub(1, 1) == "=" then line = "return " .. line:sub(2) end
    local fn = load("return " .. line, ev.chunkname, "t", ev.env)
    if fn then return fn end
    ev.buf = line
  else
    ev.buf = ev.buf .. "\n" .. line
  end
  local fn, err = load(ev.buf, ev.chunkname, "t", ev.env)
  if fn then
    ev.buf = nil
    return fn
  end
  if err:sub(-5) == "<eof>" then return nil, "more" end
  ev.buf = nil
  return nil, err
end

--- ev:feed(line) (suspends): "more" when the input is incomplete; else
-- runs it as a task and returns "ok", text of its values ("" for
-- none), or "error", text of its error and traceback.  A caller
-- cancelled meanwhile cancels the input too.
function ev_methods:feed(line)
  check.self(self, ev_mt, "evaluator:feed")
  check.string(line, 1, "evaluator:feed")
  check.task("evaluator:feed")
  if self.task then
    check.raise("evaluator:feed: an input is running already")
  end
  local fn, err = compile(self, line)
  if not fn then
    if err == "more" then return "more" end
    return "error", err
  end
  local t = spawn(run_input, fn)
  t.name = self.name
  self.task = t
  local ok, r = pcall(await, t)
  self.task = nil
  if not ok then
    if not t:done() then  -- this caller was cancelled, not the input
      t:cancel()
      pcall(await, t)
      error(r, 0)
    end
    return "error", on_error(r)  -- cancelled before it started
  end
  if r[1] then return "ok", M.format(table.unpack(r, 2, r.n)) end
  return "error", r[2]
end

--- ev:more(): whether the input so far is incomplete.
function ev_methods:more()
  return self.buf ~= nil
end

--- ev:reset(): drops an incomplete input.
function ev_methods:reset()
  self.buf = nil
end

--- ev:cancel([msg]): cancels the input that runs; false when none does.
function ev_methods:cancel(msg)
  local t = self.task
  if t == nil or t:done() then return false end
  return t:cancel(msg or "interrupted")
end

-- }====================================================================


-- {====================================================================
-- Completion

-- The fields of 'v' and of the tables its metatables' __index chain
-- leads to, into 'set' (names only).
local function add_fields(set, v, methods_only)
  for _ = 1, 8 do  -- a chain longer than this is not followed
    if type(v) == "table" then
      for k, x in next, v do
        if is_name(k) and (not methods_only or type(x) == "function"
                           or (type(x) == "table" and getmetatable(x)
                               and getmetatable(x).__call)) then
          set[k] = true
        end
      end
    end
    local ok, mt = pcall(getmetatable, v)
    if not ok or type(mt) ~= "table" then return end
    v = rawget(mt, "__index")
    if type(v) ~= "table" then return end
  end
end

-- The value that the dotted 'path' ("loom.net") names in 'env', or nil.
local function lookup(env, path)
  local v = env
  for name in path:gmatch("[^.]+") do
    local ok, x = pcall(function() return v[name] end)
    if not ok or x == nil then return nil end
    v = x
  end
  return v
end

--- repl.complete(line, env): the words that can replace the word the
-- line ends with ("x = loom.ne" gives {"loom.net"}), sorted: globals
-- (and keywords), fields after '.', methods after ':'.
function M.complete(line, env)
  check.string(line, 1, "repl.complete")
  if env ~= nil then check.table(env, 2, "repl.complete") end
  env = env or _G
  local word = line:match("[%a_][%w_%.:]*$")
  if word == nil or line:sub(-#word - 1, -#word - 1):find("[%w_.:]") then
    return {}
  end
  local path, sep, part = word:match("^(.-)([.:]?)([%w_]*)$")
  if path:find(":", 1, true) or (sep ~= "" and path == "") then return {} end
  local set = {}
  if sep == "" then
    add_fields(set, env)
    for k in pairs(KEYWORDS) do set[k] = true end
  else
    local v = lookup(env, path)
    if v == nil then return {} end
    add_fields(set, v, sep == ":")
  end
  local list = {}
  for k in pairs(set) do
    if k:sub(1, #part) == part then list[#list + 1] = path .. sep .. k end
  end
  sort(list)
  return list
end

-- }====================================================================


-- {====================================================================
-- The binary's REPL

--- repl.interrupt(): what the binary's Ctrl-C does while an interactive
-- loop runs: cancels its input and returns true; false when no input
-- runs; nil when no loop runs (the binary then acts as ever).
local on_interrupt
function M.interrupt()
  if on_interrupt == nil then return nil end
  return on_interrupt() and true or false
end

--- repl.set_interrupt(fn): 'fn' (or nil) is what repl.interrupt calls.
function M.set_interrupt(fn)
  on_interrupt = fn
end

local function prompt_of(more)
  local p = rawget(_G, more and "_PROMPT2" or "_PROMPT")
  if p == nil then return more and ">> " or "> " end
  return safe_tostring(p)
end

local input_methods = {}
local input_mt = {
  __name = "loom.repl.input",
  __index = input_methods,
  __close = function(self) self:close() end,
}

--- repl.input([{tty = bool, complete = fn}]): where an interactive loop
-- reads its lines: the terminal through the line editor (the binary's
-- loom.lineedit, with history in ~/.loom_history and 'complete' for
-- Tab) when 'tty' and it has one, else plain lines from standard input,
-- with prompts only when 'tty': piped output holds values and nothing
-- else.  :read(prompt) (suspends) gives a line, or nil, "eof" | nil,
-- "interrupt" (Ctrl-C at the prompt); :add_history(line); :close().
function M.input(opts)
  opts = check.opts(opts, 1, "repl.input")
  local self = setmetatable({ tty = opts.tty }, input_mt)
  if opts.tty then
    local ok, le = pcall(require, "loom.lineedit")
    if ok and le.isatty() then
      local home = os.getenv("HOME")
      self.ed = le.open {
        history = home and home .. "/.loom_history" or nil,
        history_size = 1000,
        complete = opts.complete,
      }
      return self
    end
  end
  self.stdin = loom.stdin
  return self
end

function input_methods:read(prompt)
  if self.ed then return self.ed:read(prompt) end
  if self.tty then
    io.stdout:write(prompt)
    io.stdout:flush()
  end
  local line = self.stdin:read_line()
  if line ~= nil then return line end
  if self.tty then io.stdout:write("\n") end
  return nil, "eof"
end

function input_methods:add_history(line)
  if self.ed and line:find("%S") then self.ed:add_history(line) end
end

function input_methods:close()
  if self.ed then self.ed:close() end
  self.ed = nil
end

-- Cancels every other task and waits for their cleanup.
local function cancel_others()
  local me = loom.current()
  local others = {}
  for _, t in ipairs(loom.tasks()) do
    if t ~= me and not t:done() then
      others[#others + 1] = t
      t:cancel("the REPL ended")
    end
  end
  for _, t in ipairs(others) do pcall(await, t) end
end

--- repl.run([{tty = bool}]) (suspends): the binary's REPL on standard
-- input, until end of input (Ctrl-D).  Then every other task is
-- cancelled and its cleanup runs, and the run ends, whatever handles
-- are still open (the task that runs the REPL ends cancelled).
function M.run(opts)
  opts = check.opts(opts, 1, "repl.run")
  check.task("repl.run")
  local ev = M.evaluator(_G)
  local input = M.input { tty = opts.tty,
                          complete = function(l) return M.complete(l, _G) end }
  M.set_interrupt(function() return ev:cancel() end)
  local lines = {}
  while true do
    local line, why = input:read(prompt_of(ev:more()))
    if line == nil and why ~= "interrupt" then break end
    if line == nil then  -- Ctrl-C at the prompt: the input goes
      ev:reset()
      lines = {}
    else
      lines[#lines + 1] = line
      local status, text = ev:feed(line)
      if status ~= "more" then
        input:add_history(concat(lines, "\n"))
        lines = {}
      end
      if status == "ok" and text ~= "" then
        io.stdout:write(text, "\n")
      elseif status == "error" then
        io.stdout:flush()
        io.stderr:write(text, "\n")
      end
      io.stdout:flush()
    end
  end
  M.set_interrupt(nil)
  input:close()
  cancel_others()
  local me = loom.current()
  me:cancel("the REPL ended")
  loom.yield()
end

-- }====================================================================

return M
