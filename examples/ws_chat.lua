-- ws_chat.lua: a chat in the browser.  GET / gives one page whose own
-- script joins the chat over a WebSocket at /ws; every message a client
-- sends goes to every client connected (the sender too, so its page
-- shows what the others saw).
--
--   loom examples/ws_chat.lua [port [host]]     then open the URL it prints
--   loom examples/ws_chat.lua client URL [message]
--
-- The server listens on 127.0.0.1:8080 unless told otherwise (the
-- arguments, else CHAT_HOST and CHAT_PORT; port 0 picks a free one) and
-- prints "chat on http://HOST:PORT/" when ready; add ?name=ann to the
-- URL to pick a nickname.  It serves until SIGTERM or Ctrl-C, which
-- close every WebSocket with 1001 (going away).
--
-- The client joins the chat at URL (the server's http:// URL, as
-- printed, or a ws:// URL of /ws) and prints each message it gets.
-- It sends the message given, else each line of its standard input;
-- then it leaves, once what it sent last came back.
local http, signal = loom.http, loom.signal

local PAGE = [==[
<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>loom chat</title>
<style>
  body { font: 16px/1.4 system-ui, sans-serif; margin: 0; background: #eef1f5;
         display: flex; flex-direction: column; height: 100vh; }
  header { background: #2b3a55; color: #fff; padding: 10px 16px; }
  header h1 { font-size: 18px; margin: 0; display: inline; }
  #status { float: right; font-size: 14px; opacity: 0.8; }
  #log { flex: 1; overflow-y: auto; list-style: none; margin: 0;
         padding: 12px 16px; }
  #log li { background: #fff; border-radius: 6px; margin: 0 0 6px;
            padding: 6px 10px; box-shadow: 0 1px 2px rgba(0,0,0,0.1); }
  #log li.notice { background: none; box-shadow: none; color: #667;
                   font-style: italic; padding: 0 10px; }
  form { display: flex; gap: 8px; padding: 10px 16px; background: #fff;
         border-top: 1px solid #ccd; }
  #text { flex: 1; font: inherit; padding: 6px 8px; }
  #send { font: inherit; padding: 6px 16px; }
</style>
</head>
<body>
<header><h1>loom chat</h1> <span id="status">connecting...</span></header>
<ul id="log"></ul>
<form id="form">
  <input id="text" autocomplete="off" placeholder="Say something" autofocus>
  <button id="send" type="submit">Send</button>
</form>
<script>
  const log = document.getElementById("log");
  const status = document.getElementById("status");
  const form = document.getElementById("form");
  const text = document.getElementById("text");
  // the page's own ?name=... goes on to /ws
  const name = new URLSearchParams(location.search).get("name");
  const url = (location.protocol === "https:" ? "wss://" : "ws://")
    + location.host + "/ws"
    + (name ? "?name=" + encodeURIComponent(name) : "");
  const ws = new WebSocket(url);

  function show(line) {
    const li = document.createElement("li");
    li.textContent = line;            // text, never HTML
    if (line.startsWith("* ")) li.className = "notice";
    log.appendChild(li);
    li.scrollIntoView();
  }
  ws.onopen = () => { status.textContent = "connected"; };
  ws.onmessage = (ev) => show(ev.data);
  ws.onclose = (ev) => {
    status.textContent = "disconnected (" + ev.code + ")";
  };
  form.onsubmit = (ev) => {           // the button and Enter both submit
    ev.preventDefault();
    if (text.value !== "" && ws.readyState === WebSocket.OPEN) {
      ws.send(text.value);
      text.value = "";
    }
  };
</script>
</body>
</html>
]==]

-- {==================================================================
-- The server

-- ws -> {name =, queue =}.  Each client has a bounded queue of the
-- messages to send it, drained by a task of its own: a slow client's
-- sends wait in its own task, never in the broadcast, so the others go
-- on.  When a client falls 100 messages behind, what comes is dropped
-- for it until it catches up.
local clients = {}
local here, joined = 0, 0

local function broadcast(text)
  for _, c in pairs(clients) do c.queue:put_nowait(text) end
end

-- A name of letters, digits, '-' and '_' from ?name=, else guest-N;
-- one taken gets the number too.
local function name_of(req)
  joined = joined + 1
  local name = (req.query.name or ""):gsub("[^%w_-]", ""):sub(1, 20)
  if name == "" then return "guest-" .. joined end
  for _, c in pairs(clients) do
    if c.name == name then return name .. "-" .. joined end
  end
  return name
end

local function chat(req)
  local ws = req:websocket { max_message = 16 * 1024, heartbeat = 30 }
  if not ws then return end  -- not an upgrade: the client got a 400
  local name = name_of(req)
  local q = loom.queue { maxsize = 100 }
  local sender = loom.spawn(function()
    for text in q:iter() do
      if not ws:send(text) then break end  -- it left
    end
  end)
  here = here + 1
  q:put_nowait(("* welcome, %s (%d here)"):format(name, here))
  broadcast("* " .. name .. " joined")
  clients[ws] = { name = name, queue = q }
  for text, kind in ws:messages() do
    if kind == "text" then broadcast(("<%s> %s"):format(name, text)) end
  end
  -- it left (or the server is closing): no more puts to its queue
  clients[ws] = nil
  here = here - 1
  q:close()
  sender:await()
  broadcast("* " .. name .. " left")
end

local function handler(req)
  if req.path == "/" then
    return 200, PAGE, { ["Content-Type"] = "text/html; charset=utf-8" }
  elseif req.path == "/ws" then
    return chat(req)
  end
  return 404, "not found\n"
end

local function serve(port, host)
  local stop = loom.spawn(signal.wait, "SIGTERM", "SIGINT")
  loom.yield()  -- it watches from here on
  local server = assert(http.serve(host, port, handler))
  print(("chat on http://%s:%d/"):format(server:address()))
  io.stdout:flush()
  print(stop:await() .. ": closing")
  -- the same signal again (coreutils' timeout and systemd send it to the
  -- process and to its group) finds the server closing already
  local again = signal.on("SIGTERM", function() end)
  server:close()  -- each WebSocket gets 1001
  server:wait()
  again:cancel()
end

-- }==================================================================

-- {==================================================================
-- The client

-- The WebSocket URL of the chat at 'url': http://HOST:PORT/[?query]
-- becomes ws://HOST:PORT/ws[?query]; others are taken as they are.
local function ws_url(url)
  local scheme, authority, query = url:match("^(https?)://([^/?#]*)[^?#]*(.*)")
  if not scheme then return url end
  return (scheme == "https" and "wss://" or "ws://") .. authority .. "/ws"
    .. query:gsub("#.*", "")
end

local function client(url, message)
  local ws = assert(http.websocket(ws_url(url)))
  local me, last             -- its name (from the welcome), what it sent
  local back = loom.event()  -- set when 'last' came back
  local listener = loom.spawn(function()
    for text in ws:messages() do
      print(text)
      io.stdout:flush()
      me = me or text:match("^%* welcome, (%S+) ")
      if last and text == ("<%s> %s"):format(me, last) then back:set() end
    end
    print(("* disconnected (%d)"):format(ws.close_code))
    os.exit((last and not back:is_set()) and 1 or 0)
  end)
  local function say(text)
    last = text
    back:clear()
    assert(ws:send(text))
  end
  if message then
    say(message)
  else
    for line in loom.stdin:lines() do
      if line ~= "" then say(line) end
    end
  end
  if last then back:wait() end
  listener:cancel()
  ws:close()
end

-- }==================================================================

if arg[1] == "client" then
  client(assert(arg[2], "usage: ws_chat.lua client URL [message]"), arg[3])
else
  serve(tonumber(arg[1] or os.getenv("CHAT_PORT")) or 8080,
        arg[2] or os.getenv("CHAT_HOST") or "127.0.0.1")
end
