-- json_api.lua: a small JSON API over HTTP, kept in memory: notes with
-- an id and a text.
--
--   GET    /notes          {"count": n, "notes": [...]}
--   POST   /notes          {"text": "..."} -> 201 and the new note
--   GET    /notes/ID       one note, or 404
--   DELETE /notes/ID       204, or 404
--
--   loom examples/json_api.lua [port]
-- It prints "listening on http://HOST:PORT/" when ready and serves until
-- SIGTERM or Ctrl-C.
local http = loom.http

local notes, next_id = {}, 1

local function problem(status, message)
  return { status = status, json = { error = message } }
end

local routes = {}

function routes.GET(_req, id)
  if not id then
    local list = {}
    for _, note in pairs(notes) do list[#list + 1] = note end
    table.sort(list, function(a, b) return a.id < b.id end)
    return { json = { count = #list, notes = list } }
  end
  local note = notes[id]
  if not note then return problem(404, "no note " .. id) end
  return { json = note }
end

function routes.POST(req, id)
  if id then return problem(405, "POST goes to /notes") end
  local body, err = req:json()
  if type(body) ~= "table" or type(body.text) ~= "string" then
    return problem(400, err or 'expected {"text": "..."}')
  end
  local note = { id = next_id, text = body.text }
  notes[next_id], next_id = note, next_id + 1
  return { status = 201, json = note,
           headers = { Location = "/notes/" .. note.id } }
end

function routes.DELETE(_req, id)
  if not id or not notes[id] then return problem(404, "no such note") end
  notes[id] = nil
  return 204
end

local server = assert(http.serve("127.0.0.1", tonumber(arg[1]) or 0,
  function(req)
    local rest = req.path:match("^/notes(.*)$")
    if not rest then return problem(404, "try /notes") end
    local id = rest:match("^/(%d+)$")
    if rest ~= "" and not id then return problem(404, "no such path") end
    local route = routes[req.method]
    if not route then return problem(405, req.method .. " not allowed") end
    return route(req, tonumber(id))
  end))
print(("listening on http://%s:%d/"):format(server:address()))
io.stdout:flush()

loom.signal.wait("SIGTERM", "SIGINT")
server:close()
