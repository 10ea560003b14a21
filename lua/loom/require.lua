--[[ loom.require: Lua's 'require', written in Lua so that a task can
  suspend inside a module's main chunk (a module that sleeps or does I/O
  while it loads).  Outside tasks it behaves exactly like the original:
  same search through package.searchers, same messages, same results.
  Two tasks that require the same module at once load it once: the
  second waits for the first.
]]
local current, future = ...
local type, error, tostring, setmetatable = type, error, tostring, setmetatable
local concat = table.concat

local loading = {}  -- module name -> {task = loader, done = future}

-- NOTE: a <close> variable, not pcall, ends a load: the loader's errors
-- travel unchanged and keep their traceback.
local loading_mt = {
  __close = function(entry)
    loading[entry.name] = nil
    entry.done:set_result()
  end,
}

local function findloader(name)
  local searchers = package.searchers
  if type(searchers) ~= "table" then
    error("'package.searchers' must be a table", 3)
  end
  local msg = {}
  for i = 1, #searchers + 1 do
    local searcher = searchers[i]
    if searcher == nil then
      error(("module '%s' not found:%s"):format(name, concat(msg)), 3)
    end
    local loader, extra = searcher(name)
    if type(loader) == "function" then return loader, extra end
    if type(loader) == "string" then msg[#msg + 1] = "\n\t" .. loader end
  end
end

local function require(name)
  if type(name) == "number" then name = tostring(name) end
  if type(name) ~= "string" then
    error(("bad argument #1 to 'require' (string expected, got %s)")
      :format(name == nil and "no value" or type(name)), 2)
  end
  local loaded = package.loaded
  if loaded[name] then return loaded[name] end
  local me = current()
  local busy = loading[name]
  if busy and me and busy.task ~= me then
    busy.done:await()
    if loaded[name] then return loaded[name] end
  end
  local loader, extra = findloader(name)
  local entry <close> = me and setmetatable(
    { name = name, task = me, done = future() }, loading_mt) or nil
  if entry then loading[name] = entry end
  local r = loader(name, extra)
  if r ~= nil then loaded[name] = r end
  if loaded[name] == nil then loaded[name] = true end
  return loaded[name], extra
end

return require
