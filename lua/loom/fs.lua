--[[ loom.fs: files.

  All functions suspend; the work runs on libuv's thread pool (or, for a
  read or write the page cache can serve, on the loop thread without
  blocking: see src/fs.c).  Failures are nil, message, code, the message
  naming the path; calls that produce no value return true.
]]
local core = ...
local cfs = core.fs

local type, error, ipairs, tostring, select = type, error, ipairs, tostring,
  select
local math_type, tointeger, huge = math.type, math.tointeger, math.huge

local M = {}

local check = core.check
local argerror, check_string, check_opts, check_task =
  check.argerror, check.string, check.opts, check.task

-- A path goes to C as a C string: one with a NUL inside is refused.
local check_path = check.cstring

-- One-argument calls: checked, then straight to C.
for _, name in ipairs { "stat", "lstat", "list", "readlink", "realpath",
                        "mkdtemp" } do
  local f = cfs[name]
  M[name] = function(path)
    check_path(path, 1, "fs." .. name)
    return f(path)
  end
end

for _, name in ipairs { "rename", "copy", "symlink" } do
  local f = cfs[name]
  M[name] = function(a, b)
    check_path(a, 1, "fs." .. name)
    check_path(b, 2, "fs." .. name)
    return f(a, b)
  end
end

-- A path and data (which may hold any byte).
for _, name in ipairs { "write_file", "append_file" } do
  local f = cfs[name]
  M[name] = function(path, data)
    check_path(path, 1, "fs." .. name)
    check_string(data, 2, "fs." .. name)
    return f(path, data)
  end
end

--- fs.read_file(path [, {max = bytes}]): the whole file, or nil, msg,
-- code; more than 'max' bytes (default: no limit) is "EFBIG".
-- NOTE: the read runs on a worker.  A task that leaves it (cancelled,
-- timed out) raises its stop flag, so the worker ends at its next step
-- and frees what it read: loom.timeout(1, fs.read_file, "/dev/zero")
-- stops, and the process can exit.
local read_file, stop_flag, stop = cfs.read_file, cfs.stop_flag, cfs.stop

function M.read_file(path, opts)
  check_path(path, 1, "fs.read_file")
  opts = check_opts(opts, 2, "fs.read_file")
  local max = opts.max
  if max ~= nil then
    if type(max) ~= "number" or not (max >= 0)
       or (max ~= huge and not tointeger(max)) then
      argerror(2, "fs.read_file", "max must be a non-negative integer, "
        .. "got " .. tostring(max))
    end
    max = max ~= huge and tointeger(max) or nil
  end
  check_task("fs.read_file")
  local flag = stop_flag()
  local ok, s, err, code = pcall(read_file, path, max, flag)
  if not ok then
    stop(flag)
    error(s, 0)
  end
  if s == nil then return nil, err, code end
  return s  -- the bytes alone, as every call that succeeds

end

local modes = { r = 1, w = 1, a = 1, ["r+"] = 1, ["w+"] = 1, ["a+"] = 1 }

function M.open(path, mode)
  check_path(path, 1, "fs.open")
  if mode ~= nil and type(mode) ~= "string" then
    argerror(2, "fs.open", "string expected, got " .. type(mode))
  end
  if mode ~= nil and not modes[mode:gsub("b", "")] then
    argerror(2, "fs.open", "invalid mode '" .. mode .. "'")
  end
  return cfs.open(path, mode)
end

function M.chmod(path, mode)
  check_path(path, 1, "fs.chmod")
  if math_type(mode) ~= "integer" or mode < 0 or mode > 4095 then
    argerror(2, "fs.chmod", "integer mode from 0 to 0o7777 expected, "
      .. "e.g. tonumber('644', 8), got " .. tostring(mode))
  end
  return cfs.chmod(path, mode)
end

--- fs.exists(path): true when something is there (a broken link too)
function M.exists(path)
  check_path(path, 1, "fs.exists")
  check_task("fs.exists")
  return cfs.lstat(path) ~= nil
end

--- fs.dir(path): for entry in fs.dir(path) do ... (entry.name, .type)
-- Raises when the folder cannot be listed, as io.lines does.
function M.dir(path)
  check_path(path, 1, "fs.dir")
  check_task("fs.dir")
  local list, err = cfs.list(path)
  if not list then error(err, 2) end
  local i = 0
  return function()
    i = i + 1
    return list[i]
  end
end

--- fs.mkdir(path [, {parents = true, mode = n}])
function M.mkdir(path, opts)
  check_path(path, 1, "fs.mkdir")
  check_task("fs.mkdir")
  opts = check_opts(opts, 2, "fs.mkdir")
  if not opts.parents then return cfs.mkdir(path, opts.mode) end
  local prefix = path:sub(1, 1) == "/" and "/" or ""
  for part in path:gmatch("[^/]+") do
    prefix = prefix .. part
    local ok, err, code = cfs.mkdir(prefix, opts.mode)
    if not ok and code ~= "EEXIST" then return nil, err, code end
    prefix = prefix .. "/"
  end
  local st, err, code = cfs.stat(path)
  if not st then return nil, err, code end
  if st.type ~= "directory" then
    return core.fail("mkdir", path, "file already exists", "EEXIST")
  end
  return true
end

--- fs.remove(path [, {recursive = true}]): a file, a link, or a folder
-- (with what is in it when recursive); links are removed, not followed.
local function remove(path, recursive)
  local st, err, code = cfs.lstat(path)
  if not st then return nil, err, code end
  if st.type ~= "directory" then return cfs.unlink(path) end
  if recursive then
    local list
    list, err, code = cfs.list(path)
    if not list then return nil, err, code end
    for _, e in ipairs(list) do
      local ok
      ok, err, code = remove(path .. "/" .. e.name, true)
      if not ok then return nil, err, code end
    end
  end
  return cfs.rmdir(path)
end

function M.remove(path, opts)
  check_path(path, 1, "fs.remove")
  check_task("fs.remove")
  opts = check_opts(opts, 2, "fs.remove")
  return remove(path, opts.recursive)
end

--- fs.watch(path [, {recursive = true}]): a watcher; for ev in
-- w:events() do ... ev.path, ev.change ("rename" | "change")
-- NOTE: Linux has no recursive watch: each folder below 'path' that
-- exists when the watch starts gets a watch of its own.
function M.watch(path, opts)
  check_path(path, 1, "fs.watch")
  check_task("fs.watch")
  opts = check_opts(opts, 2, "fs.watch")
  local w = cfs.watcher()
  local ok, err, code = w:_add(path)
  if not ok then
    w:close()
    return nil, err, code
  end
  if opts.recursive then
    local function add_below(dir)
      local list = cfs.list(dir) or {}
      for _, e in ipairs(list) do
        if e.type == "directory" then
          local sub = dir .. "/" .. e.name
          w:_add(sub)
          add_below(sub)
        end
      end
    end
    local st = cfs.stat(path)
    if st and st.type == "directory" then add_below(path) end
  end
  return w
end

local watcher = cfs.watcher_methods
local watch_next = watcher._next

--- watcher:events() (suspends): the iterator checks its receiver and the
-- task at each step (C's watch_next).
function watcher:events()
  check_task("watcher:events")
  return function()
    local p, change = watch_next(self)
    if p == nil then
      if change ~= nil then error(change, 2) end  -- nil, msg, code
      return nil
    end
    return { path = p, change = change }
  end
end

-- {=====================================================================
-- File methods over the C primitives, which answer 'true' for "the data
-- came from the thread pool: call again".

local file = cfs.file_methods
local file_read, file_read_line, file_read_all, file_write =
  file._read, file._read_line, file._read_all, file._write

local function again(f, ...)
  local a, b, c, d = f(...)
  while a == true do a, b, c, d = f(...) end
  if a ~= nil then return a end
  if d == nil then return a, b, c end  -- nil, msg, code
  return a, b, c, d  -- and the partial data
end

function file:read(n)
  if n ~= nil and (math_type(n) ~= "integer" or n < 0) then
    argerror(1, "file:read", "non-negative integer expected")
  end
  return again(file_read, self, n)
end

function file:read_line()
  return again(file_read_line, self)
end

function file:read_all()
  return again(file_read_all, self)
end

file.lines = core.lines

--- file:write(data, ...): true, or nil, msg, code
function file:write(...)
  check_task("file:write")
  for i = 1, select("#", ...) do
    local data = select(i, ...)
    if type(data) == "number" then data = tostring(data) end
    if type(data) ~= "string" then
      argerror(i, "file:write", "string expected, got " .. type(data))
    end
    while #data > 0 do
      local n, err, code = file_write(self, data)
      if not n then return nil, err, code end
      data = n < #data and data:sub(n + 1) or ""
    end
  end
  return true
end

-- }=====================================================================

return M
