--[[ loom.http: an HTTP/1.1 server and client.

  The server (lua/loom/http_server.lua) parses requests with llhttp
  (src/http_parser.c) over loom's streams; the client
  (lua/loom/http_client.lua) runs libcurl's multi interface on loom's
  loop (src/http_client.c).  WebSockets (lua/loom/websocket.lua) are
  the server's req:websocket and the client's http.websocket.  Loaded
  on first use: require "loom.http", or loom.http.
]]
local loom = require "loom"
local _, core = ...  -- the private core, from src/module.c's loader

local websocket = core.embedded("loom.websocket")(core, loom)

local M = { websocket = websocket.connect }
for _, name in ipairs { "loom.http_server", "loom.http_client" } do
  for k, v in pairs(core.embedded(name)(core, loom, websocket)) do
    M[k] = v
  end
end

return M
