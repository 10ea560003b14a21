---@meta loom.busted
-- LuaCATS annotations for loom.busted: async test bodies for busted.

---@class loom.busted
local busted = {}

---@class loom.AsyncTestOptions
---@field timeout? number seconds (default 5); then the test fails with the pending tasks
---@field clock? "real"|"virtual"

---A busted test body that runs `fn` as a task on a fresh loop:
---`it("...", async(function() ... end))`.
---@param fn async fun(...)
---@param opts? loom.AsyncTestOptions
---@return fun(...)
function busted.async(fn, opts) end

return busted
