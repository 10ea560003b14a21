--[[ loom.console: a live console into a running program.

  loom.console(path) listens on a Unix socket that only its owner may
  use (mode 0600).  Each client that connects gets a session: a REPL
  whose inputs run as tasks of the program, beside its own (their
  'print' goes to the client), and commands that look at the program
  (.tasks, .tb, .cancel, .handles, .stats, .quit, .help).  The console
  costs nothing until a client connects: step timing is on only while
  one is attached.  Nothing of it keeps the program alive (its server
  and its connections count as Node's unref'd ones): a program whose
  work is done ends, and its sessions with it.

  The protocol is lines both ways.  By default a session speaks to a
  person (socat, nc): lines of output, and a prompt ("> ", or ">> "
  inside an unfinished input) without a newline when it waits for a
  line.  A first line ".attach" (loom --attach sends it) switches it to
  tagged lines, so that a client can tell output from prompts: from
  the program "o TEXT" (output), "e TEXT" (an error), "p PROMPT" (it
  waits for a line); from the client "l LINE" (a line), "i" (cancel the
  input that runs: Ctrl-C), "r" (drop an unfinished input).

  console.attach(path) is the client of 'loom --attach'.
]]
local loom = require "loom"
local repl = require "loom.repl"
local _, core = ...  -- the private core, from src/module.c's loader
local net = loom.net

local tostring, tonumber, select, pcall, ipairs, pairs, setmetatable, rawget =
  tostring, tonumber, select, pcall, ipairs, pairs, setmetatable, rawget
local concat, sort = table.concat, table.sort
local spawn, await = loom.spawn, loom.await
local check = core.check

local M = {}

-- {====================================================================
-- Output to a client

local OUTBOX_LIMIT = 1024 * 1024  -- bytes a slow client may fall behind

-- What a session sends goes through its outbox: adding never suspends
-- (a 'print' may run where a task cannot suspend), a writer task sends
-- it in order, and a client that stops reading loses output past the
-- limit, never the program its time.
local outbox_methods = {}
local outbox_mt = { __name = "loom.console.outbox", __index = outbox_methods }

local function outbox(s)
  local o = setmetatable({ s = s, parts = {}, size = 0, dropped = 0,
                           framed = false, ready = loom.event(),
                           done = false }, outbox_mt)
  o.writer = spawn(function()
    while true do
      o.ready:wait()
      o.ready:clear()
      local chunk = concat(o.parts)
      o.parts, o.size = {}, 0
      if o.dropped > 0 then
        chunk = chunk .. ("(%d lines of output dropped)\n"):format(o.dropped)
        o.dropped = 0
      end
      if chunk ~= "" and not s:write(chunk) then return end
      if o.done and o.size == 0 then return end
    end
  end)
  o.writer.name = "console writer"
  return o
end

function outbox_methods:add(text)
  if self.size + #text > OUTBOX_LIMIT then
    self.dropped = self.dropped + 1
    return
  end
  self.parts[#self.parts + 1] = text
  self.size = self.size + #text
  self.ready:set()
end

--- out:lines(kind, text): 'text' as lines of output ("o") or of an
-- error ("e").
function outbox_methods:lines(kind, text)
  for line in (text .. "\n"):gmatch("([^\n]*)\n") do
    self:add(self.framed and kind .. " " .. line .. "\n" or line .. "\n")
  end
end

function outbox_methods:prompt(p)
  self:add(self.framed and "p " .. p .. "\n" or p)
end

-- Sends what is left (for at most 'limit' seconds: a client that does
-- not read does not hold the session) and stops the writer.
function outbox_methods:finish(limit)
  self.done = true
  self.ready:set()
  if not pcall(loom.wait_for, self.writer, limit) then self.writer:cancel() end
end

-- }====================================================================


-- {====================================================================
-- What the commands show

local task_info = core.task_info

-- The task whose id is 'id', or nil.
local function find_task(id)
  for _, t in ipairs(loom.tasks()) do
    if task_info(t).id == id then return t end
  end
end

-- Where a task waits, from its traceback: the call it waits in and the
-- first line of the program's own code on the way to it.
local function where_of(tb)
  local call, at
  for frame in tb:gmatch("\n\t([^\n]*)") do
    if frame:find("^%([^)]*%)$") then return frame end  -- "(not started)"
    if frame:find("^%[C%]") then
      call = call or frame:match("in %a+ '([^']*)'")
    elseif not frame:find("^%[loom%]") then
      at = frame:match("^(.-:%d+):")
      if at then break end
    end
  end
  if at and call then return at .. " in " .. call end
  return at or call or ""
end

local function age_text(s)
  if s == nil then return "?" end
  if s < 60 then return ("%.1fs"):format(s) end
  if s < 3600 then return ("%dm%02ds"):format(s // 60, s % 60 // 1) end
  return ("%dh%02dm"):format(s // 3600, s % 3600 // 60)
end

-- Rows as columns padded to their widest cell (the last one is not).
local function columns(rows)
  local width = {}
  for _, row in ipairs(rows) do
    for i, cell in ipairs(row) do
      if #cell > (width[i] or 0) then width[i] = #cell end
    end
  end
  local out = {}
  for r, row in ipairs(rows) do
    local cells = {}
    for i, cell in ipairs(row) do
      cells[i] = i < #row and cell .. (" "):rep(width[i] - #cell) or cell
    end
    out[r] = concat(cells, "  ")
  end
  return concat(out, "\n")
end

local function tasks_text()
  local list = {}
  for _, t in ipairs(loom.tasks()) do
    local info = task_info(t)
    list[#list + 1] = { t = t, info = info }
  end
  sort(list, function(a, b) return a.info.id < b.info.id end)
  local rows = { { "ID", "NAME", "STATE", "AGE", "WHERE" } }
  for _, e in ipairs(list) do
    local where = e.info.state == "running" and "" or where_of(e.t:traceback())
    rows[#rows + 1] = { tostring(e.info.id), tostring(e.t.name),
                        e.info.state, age_text(e.info.age), where }
  end
  return columns(rows) .. ("\n%d tasks"):format(#list)
end

local function handles_text()
  local rows = { { "KIND", "WHAT", "CREATED AT" } }
  for _, h in ipairs(core.handles()) do
    rows[#rows + 1] = { h.kind, h.what, h.where or "" }
  end
  return columns(rows) .. ("\n%d handles"):format(#rows - 1)
end

local function stats_text()
  local st = core.stats()
  local kinds = {}
  for k, n in pairs(st.handles) do
    kinds[#kinds + 1] = ("%s %d"):format(k, n)
  end
  sort(kinds)
  local slowest = st.slowest and ("%.1f ms (task '%s')"):format(st.slowest.ms,
    tostring(st.slowest.task)) or "none timed"
  return concat({
    ("tasks       %d"):format(st.tasks),
    ("handles     %s"):format(#kinds > 0 and concat(kinds, ", ") or "none"),
    ("memory      %.0f KiB"):format(st.memory_kb),
    ("iterations  %d"):format(st.iterations),
    ("slowest     %s"):format(slowest),
  }, "\n")
end

local HELP = [[
.tasks        the tasks: id, name, state, age, where each waits
.tb ID        the traceback of task ID
.cancel ID    cancels task ID
.handles      the open handles: kind, what, where created (debug mode)
.stats        tasks, handles by kind, Lua memory, loop iterations, slowest step
.quit         detaches (the program goes on)
.help         this list
Anything else is Lua, run as a task of the program (= shows values).]]

-- Runs the command 'name' with argument 'arg'; returns the kind and
-- text of its output, and true after .quit.
local function command(name, arg)
  if name == "quit" then return "o", "detached", true end
  if name == "help" then return "o", HELP end
  if name == "tasks" then return "o", tasks_text() end
  if name == "handles" then return "o", handles_text() end
  if name == "stats" then return "o", stats_text() end
  if name == "tb" or name == "cancel" then
    local id = tonumber(arg)
    local t = id and find_task(id)
    if not t then
      return "e", ("no task %s (.tasks lists them)"):format(
        arg ~= "" and arg or "given")
    end
    if name == "tb" then
      return "o", ("task %d '%s':\n%s"):format(id, t.name, t:traceback())
    end
    if t:cancel("cancelled from the console") then
      return "o", ("task %d '%s' cancelled"):format(id, t.name)
    end
    return "e", ("task %d '%s' is done already"):format(id, t.name)
  end
  return "e", ("unknown command .%s (.help lists them)"):format(name)
end

-- }====================================================================


-- {====================================================================
-- Sessions

local clients = 0

-- Counts an attached client for as long as the value is open: steps
-- are timed (for .stats) while there is one, at no cost before.
local attached_mt = {
  __close = function()
    clients = clients - 1
    if clients == 0 then core.timing(false) end
  end,
}
local function attached()
  clients = clients + 1
  if clients == 1 then core.timing(true) end
  return setmetatable({}, attached_mt)
end

-- The globals of a session's inputs: the program's, but 'print' writes
-- to the client.  Globals set there are the program's.
local function env_of(out)
  local function print(...)
    local parts = {}
    for i = 1, select("#", ...) do
      local ok, s = pcall(tostring, (select(i, ...)))
      parts[i] = ok and s or "?"
    end
    out:lines("o", concat(parts, "\t"))
  end
  return setmetatable({ print = print }, { __index = _G, __newindex = _G })
end

local ATTACH, RESET = {}, {}

-- Reads the client's lines into 'lines' (a queue): in tagged mode once
-- the first line is ".attach"; "i" cancels the input at once.  At the
-- end of the client (gone, or killed mid-command) the input that runs
-- is cancelled and the lines not yet run are dropped: nobody waits for
-- their answers.
local function read_client(s, lines, ev, out)
  local first = true
  while true do
    local line = s:read_line()
    if line == nil then break end
    if first and line == ".attach" then
      out.framed = true
      lines:put(ATTACH)
    elseif not out.framed then
      lines:put(line)
    else
      local tag = line:sub(1, 1)
      if tag == "l" then lines:put(line:sub(3))
      elseif tag == "i" then ev:cancel("interrupted from the console")
      elseif tag == "r" then lines:put(RESET) end
    end
    first = false
  end
  out.gone = true
  lines:close()
  ev:cancel("the console client went away")
end

local function session(stream)
  local s <close> = stream
  local _ <close> = attached()
  local out = outbox(s)
  local ev = repl.evaluator(env_of(out), { chunkname = "=console",
                                           name = "console input" })
  local lines = loom.queue { maxsize = 64 }
  local reader = spawn(read_client, s, lines, ev, out)
  reader.name = "console reader"
  local banner = ("loom console: pid %s, %s; .help lists the commands")
    :format(loom.process.pid, _VERSION)
  local ok, e = pcall(function()
    out:lines("o", banner)
    out:prompt("> ")
    while true do
      local item = lines:get()
      if item == nil or out.gone then return end  -- the client went away
      if item == RESET then ev:reset()
      elseif item ~= ATTACH then
        local name, arg = item:match("^%s*%.(%a+)%s*(.-)%s*$")
        if name and not ev:more() then
          local done, kind, text, quit = pcall(command, name, arg)
          if not done then kind, text = "e", tostring(kind) end
          out:lines(kind, text)
          if quit then return end
        else
          local status, text = ev:feed(item)
          if status == "ok" and text ~= "" then out:lines("o", text)
          elseif status == "error" then out:lines("e", text) end
        end
      else  -- .attach: the greeting again, tagged
        out:add("\n")  -- ends the line of the plain prompt sent before
        out:lines("o", banner)
      end
      out:prompt(ev:more() and ">> " or "> ")
    end
  end)
  reader:cancel()
  out:finish(5)
  if not ok then error(e, 0) end
end

local function on_conn(stream)
  local t = spawn(session, stream)
  t.name = "console session"
end

--- loom.console(path): listens for console clients on the Unix socket
-- 'path' (mode 0600; a stale socket file left by an ended program is
-- replaced); the Server (its :close() stops listening), or nil, msg,
-- code.
function M.listen(path)
  check.cstring(path, 1, "loom.console")
  return core.net.pipe_listen(path, nil, on_conn, true)
end

-- }====================================================================


-- {====================================================================
-- The client: loom --attach

--- console.attach(path [, {tty = bool}]) (suspends): a REPL into the
-- program whose console listens at 'path', until .quit, Ctrl-D or the
-- end of that program: true, or nil, msg when it cannot connect.
function M.attach(path, opts)
  check.cstring(path, 1, "console.attach")
  opts = check.opts(opts, 2, "console.attach")
  check.task("console.attach")
  local conn, err = net.connect_unix(path)
  if not conn then return nil, err end
  local s <close> = conn
  local input <close> = repl.input { tty = opts.tty }
  local prompts = loom.queue()
  local reading  -- the task that reads the user's next line
  local closed = false  -- by the program
  local reader = spawn(function()
    -- the lines before the first tagged one are the plain greeting and
    -- prompt, sent before .attach was read
    local started = false
    while true do
      local line = s:read_line()
      if line == nil then break end
      local tag, text = line:sub(1, 1), line:sub(3)
      started = started or line:find("^[oep] ") ~= nil
      if not started then  -- luacheck: ignore 542
      elseif tag == "p" then
        prompts:put(text)
      elseif tag == "o" then
        io.stdout:write(text, "\n")
        io.stdout:flush()
      elseif tag == "e" then
        io.stderr:write(text, "\n")
        io.stderr:flush()
      end
    end
    closed = true
    prompts:close()
    if reading then reading:cancel() end  -- the program went away
  end)
  reader.name = "console reader"
  repl.set_interrupt(function()
    if reading then return false end  -- at the prompt
    spawn(s.write, s, "i\n")
    return true
  end)
  s:write(".attach\n")
  local quit = false
  while true do
    local p = prompts:get()
    if p == nil or closed then break end
    reading = spawn(input.read, input, p)
    local ok, line, why = pcall(await, reading)
    reading = nil
    if not ok then
      -- NOTE: a read of loom.stdin that was cancelled leaves it reading,
      -- which would keep this process alive: nothing more is read here
      input:close()
      local stdin = rawget(loom, "stdin")
      if stdin then stdin:close() end
      break
    end
    if line ~= nil then
      input:add_history(line)
      quit = line:match("^%s*%.quit%s*$") ~= nil
      s:write("l " .. line .. "\n")
    elseif why == "interrupt" then
      s:write("r\n")
    else
      quit = true
      s:write("l .quit\n")
    end
  end
  repl.set_interrupt(nil)
  reader:cancel()
  if not quit then
    io.stderr:write("loom: the console at ", path, " closed\n")
  end
  return true
end

-- }====================================================================

return M
