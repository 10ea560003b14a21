--[[ loom.http's client: http.request, http.get, http.post. ]]
local M = {}
return M
