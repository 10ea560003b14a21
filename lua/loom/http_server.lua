--[[ loom.http's server: http.serve. ]]
local M = {}
return M
