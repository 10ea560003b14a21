--[[ loom.http: an HTTP/1.1 server and client.

  The server (lua/loom/http_server.lua) parses requests with llhttp
  (src/http_parser.c) over loom's streams; the client
  (lua/loom/http_client.lua) runs libcurl's multi interface on loom's
  loop (src/http_client.c).  Loaded on first use: require "loom.http",
  or loom.http.
]]
local loom = require "loom"
local _, core = ...  -- the private core, from src/module.c's loader

local M = {}
for _, name in ipairs { "loom.http_server", "loom.http_client" } do
  for k, v in pairs(core.embedded(name)(core, loom)) do M[k] = v end
end

return M
