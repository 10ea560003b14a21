---@meta loom.json
-- LuaCATS annotations for loom.json (on lua-cjson).

---@class loom.json
local json = {}

---The JSON null, as `decode` gives it and `encode` takes it.
---@type lightuserdata
json.null = nil

---The JSON text of `v`.
---@param v any
---@return string? text
---@return string? err
function json.encode(v) end

---The value of the JSON `text`.
---@param text string
---@return any value
---@return string? err
function json.decode(text) end

return json
