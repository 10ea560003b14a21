--[[ spec/websocket_chat_spec.lua: examples/ws_chat.lua, a chat over
  WebSockets, run with the binary as a child process and joined by loom's
  client (http.websocket, in this process, and the example's own client
  mode as children), then by a headless Chromium whose page is driven
  through the DevTools Protocol by spec/peers/cdp.py: the page's own
  script talks to loom's server.

  Every child runs under coreutils' timeout, which makes it the leader
  of a process group of its own; a test kills the whole group when it
  ends, whatever happened.  With WS_CHAT_SCREENSHOT=path, the browser
  test also copies its screenshot there (docs/ws_chat.png is one).
]]
local helper = require("spec.helper")
local loom = require("loom")
local async = require("loom.busted").async
local http, json, process = loom.http, loom.json, loom.process

local WAIT = 10        -- seconds a step may take
local LIMITS = { timeout = 30 }  -- a test's
local CHROMIUM = "/usr/bin/chromium"
local PYTHON = "/usr/bin/python3"  -- Debian's, with 'websockets'

-- The processes (zombies aside) of the group 'pgid' or whose command
-- line holds 'text': "pid command" lines.
local function survivors(pgid, text)
  local r = assert(process.run{ "ps", "-e", "-o", "pid=,pgid=,stat=,args=", timeout = WAIT,
                                env = helper.peer_env() })
  local found = {}
  for line in r.stdout:gmatch("[^\n]+") do
    local pid, g, stat, args = line:match("^%s*(%d+)%s+(%d+)%s+(%S+)%s+(.*)$")
    if pid and not stat:find("^Z") and (tonumber(g) == pgid or args:find(text, 1, true)) then
      found[#found + 1] = pid .. " " .. args:sub(1, 100)
    end
  end
  return found
end

-- Kills the process group of 'p' (led by its timeout) and reaps 'p';
-- harmless the second time.
local reaped = setmetatable({}, { __mode = "k" })
local function kill_group(p)
  if reaped[p] then return end
  reaped[p] = true
  process.kill(-p.pid, "SIGKILL")
  if not p:status() then p:kill("SIGKILL") end
  p:wait()
  p:close()
end

-- Starts argv under a timeout of 'limit' seconds; a to-be-closed value
-- that kills its group.  opts: as process.spawn's.
local function start(argv, opts, limit)
  local full = { "timeout", "-k", "2", tostring(limit or 30) }
  for _, a in ipairs(argv) do full[#full + 1] = a end
  for k, v in pairs(opts or {}) do full[k] = v end
  local p = assert(process.spawn(full))
  local guard = setmetatable({}, { __close = function() kill_group(p) end })
  return p, guard
end

-- Reads a line of 'stream' within WAIT seconds.
local function read_line(stream)
  return loom.timeout(WAIT, stream.read_line, stream)
end

-- Starts the chat on a free port (or with the command 'argv'): the
-- process, its guard and the URL.
local function chat_server(argv)
  local p, guard = start(argv or { helper.loom_bin, "examples/ws_chat.lua", "0" },
                         { stderr = "pipe" })
  local line = read_line(p.stdout)
  local url = line and line:match("^chat on (http://127%.0%.0%.1:%d+/)$")
  if not url then
    process.kill(-p.pid, "SIGKILL")
    local err = loom.timeout(WAIT, p.stderr.read_all, p.stderr)
    kill_group(p)
    error(("no URL from the server: %s %s"):format(line, err))
  end
  return p, guard, url
end

-- The chat's WebSocket URL, for 'name' (none: a guest).
local function ws_url(url, name)
  return (url:gsub("^http", "ws")) .. "ws" .. (name and "?name=" .. name or "")
end

-- The next message of 'ws', within WAIT seconds: the chat's are text.
local function recv(ws)
  local data, kind = loom.timeout(WAIT, ws.receive, ws)
  assert(data, kind)
  assert.are.equal("text", kind)
  return data
end

-- A loom client joined as 'name': the WebSocket and its welcome.
local function join(url, name, opts)
  local ws = assert(http.websocket(ws_url(url, name), opts))
  return ws, recv(ws)
end

describe("examples/ws_chat.lua", function()
  it("serves the page at /, refuses /ws without an upgrade, 404 elsewhere", async(function()
    local _, _guard <close>, url = chat_server()
    local res = assert(http.get(url))
    assert.are.equal(200, res.status)
    assert.are.equal("text/html; charset=utf-8", res.headers["content-type"])
    assert.truthy(res.body:find("new WebSocket(url)", 1, true))
    assert.truthy(res.body:find('<input id="text"', 1, true))
    assert.truthy(res.body:find('<button id="send"', 1, true))
    res = assert(http.get(url .. "ws"))
    assert.are.equal(400, res.status)
    assert.are.equal(404, assert(http.get(url .. "other")).status)
  end, LIMITS))

  it("broadcasts each message to every client, the sender too", async(function()
    local _, _guard <close>, url = chat_server()
    local ann <close>, w1 = join(url, "ann")
    assert.are.equal("* welcome, ann (1 here)", w1)
    local bob <close>, w2 = join(url, "bob")
    assert.are.equal("* welcome, bob (2 here)", w2)
    assert.are.equal("* bob joined", recv(ann))
    local ann2 <close>, w3 = join(url, "ann")  -- a name taken gets a number
    assert.are.equal("* welcome, ann-3 (3 here)", w3)
    assert.are.equal("* ann-3 joined", recv(ann))
    assert.are.equal("* ann-3 joined", recv(bob))

    assert(ann:send("hi all"))
    assert(bob:send("héllo ann"))
    for _, ws in ipairs { ann, bob, ann2 } do  -- in the order sent
      assert.are.equal("<ann> hi all", recv(ws))
      assert.are.equal("<bob> héllo ann", recv(ws))
    end
    local _guest <close>, w4 = join(url, nil)  -- no name: a guest
    assert.matches("^%* welcome, guest%-%d+ %(4 here%)$", w4)
    assert.are.equal("* guest-4 joined", recv(ann))
  end, LIMITS))

  it("removes a client that leaves, cleanly or killed, and goes on with the others", async(function()
    local _, _guard <close>, url = chat_server()
    local ann <close> = join(url, "ann")
    local bob <close> = join(url, "bob")
    assert.are.equal("* bob joined", recv(ann))
    -- cy: the example's client, sending the lines of its stdin
    local cy, _cy_guard <close> = start({ helper.loom_bin, "examples/ws_chat.lua", "client",
                                  url .. "?name=cy" }, { stdin = "pipe" })
    assert.are.equal("* welcome, cy (3 here)", read_line(cy.stdout))
    assert.are.equal("* cy joined", recv(ann))
    assert.are.equal("* cy joined", recv(bob))
    cy.stdin:write("hello from cy\n")
    assert.are.equal("<cy> hello from cy", read_line(cy.stdout))
    assert.are.equal("<cy> hello from cy", recv(ann))
    assert.are.equal("<cy> hello from cy", recv(bob))

    -- killed (its group: timeout and loom): its connection ends without a close
    assert(process.kill(-cy.pid, "SIGKILL"))
    assert.are.same({ nil, "SIGKILL" }, { cy:wait() })
    assert.are.equal("* cy left", recv(ann))
    assert.are.equal("* cy left", recv(bob))
    -- bob closes cleanly
    assert.is_true(bob:close())
    assert.are.equal(1000, bob.close_code)
    assert.are.equal("* bob left", recv(ann))
    -- the chat goes on: ann's messages reach her and a newcomer
    local dan <close>, welcome = join(url, "dan")
    assert.are.equal("* welcome, dan (2 here)", welcome)
    assert.are.equal("* dan joined", recv(ann))
    assert(ann:send("still here"))
    assert.are.equal("<ann> still here", recv(ann))
    assert.are.equal("<ann> still here", recv(dan))
  end, LIMITS))

  it("client URL message: sends it, prints what came, leaves once it came back", async(function()
    local _, _guard <close>, url = chat_server()
    local ann <close> = join(url, "ann")
    local r = assert(process.run{ "timeout", "-k", "2", "20", helper.loom_bin,
      "examples/ws_chat.lua", "client", url .. "?name=eve", "hi there", timeout = 25 })
    assert.are.equal("", r.stderr)
    assert.are.equal(0, r.code)
    assert.are.equal("* welcome, eve (2 here)\n<eve> hi there\n", r.stdout)
    assert.are.equal("* eve joined", recv(ann))
    assert.are.equal("<eve> hi there", recv(ann))
    assert.are.equal("* eve left", recv(ann))
    -- without a message: the lines of its input, then it leaves
    r = assert(process.run{ "timeout", "-k", "2", "20", helper.loom_bin,
      "examples/ws_chat.lua", "client", ws_url(url, "fay"),
      input = "one\n\ntwo\n", timeout = 25 })
    assert.are.equal("", r.stderr)
    assert.are.equal(0, r.code)
    assert.are.equal("* welcome, fay (2 here)\n<fay> one\n<fay> two\n", r.stdout)
    for _, text in ipairs { "* fay joined", "<fay> one", "<fay> two", "* fay left" } do
      assert.are.equal(text, recv(ann))
    end
  end, LIMITS))

  it("a client that never reads does not hold up the others", async(function()
    local _, _guard <close>, url = chat_server()
    -- 'stuck' holds one message and reads no more: TCP backs up to the
    -- server, whose sends to it wait
    local stuck <close> = join(url, "stuck", { max_queue = 1 })
    local ann <close> = join(url, "ann")
    local bob <close> = join(url, "bob")
    assert.are.equal("* bob joined", recv(ann))
    local n, chunk = 1000, ("x"):rep(15000)  -- 15 MB, past what sockets buffer
    -- (each client here reads until it is closed: a WebSocket holding
    -- more than max_queue unread messages answers no close)
    local got, done = 0, loom.event()
    loom.spawn(function()
      for text in bob:messages() do
        if text == "<ann> done" then done:set() end
        if text:find("^<ann> %d+ x") then got = got + 1 end
      end
    end)
    local t0 = helper.clock()
    for i = 1, n do  -- each waits for its own echo
      assert(ann:send(i .. " " .. chunk))
      assert.are.equal("<ann> " .. i .. " " .. chunk, recv(ann))
    end
    assert(ann:send("done"))
    assert.are.equal("<ann> done", recv(ann))
    loom.timeout(WAIT, done.wait, done)
    assert.are.equal(n, got)
    assert.is_true(helper.clock() - t0 < WAIT, "took " .. helper.clock() - t0 .. " s")

    -- what 'stuck' missed was dropped, not kept for it: once it reads
    -- again it gets some of the flood, in order, then what comes next
    local seen, last, back = 0, 0, loom.event()
    loom.spawn(function()  -- until it closes, so that its close is answered
      for text in stuck:messages() do
        local i = tonumber(text:match("^<ann> (%d+) x"))
        if i then
          assert.is_true(i > last, text:sub(1, 20))
          seen, last = seen + 1, i
        elseif text:find("^<ann> after") then
          back:set()
        end
      end
    end)
    for k = 1, 1000 do  -- until one reaches it, past what it had queued
      assert(ann:send("after " .. k))
      assert.are.equal("<ann> after " .. k, recv(ann))
      if back:is_set() then break end
    end
    loom.timeout(WAIT, back.wait, back)
    assert.is_true(seen > 0 and seen < n, ("it got %d of %d"):format(seen, n))
  end, LIMITS))

  it("SIGTERM closes every WebSocket with 1001 (going away) and the server exits 0", async(function()
    -- the port from the environment this time
    local p, _guard <close>, url = chat_server({ "env", "CHAT_PORT=0", "CHAT_HOST=127.0.0.1",
                                                 helper.loom_bin, "examples/ws_chat.lua" })
    local ann <close> = join(url, "ann")
    local bob <close> = join(url, "bob")
    assert.are.equal("* bob joined", recv(ann))
    p:kill("SIGTERM")
    assert.are.equal("SIGTERM: closing", read_line(p.stdout))
    for _, ws in ipairs { ann, bob } do
      local data, msg, status = loom.timeout(WAIT, ws.receive, ws)
      assert.is_nil(data)
      assert.are.equal(1001, status, msg)
      assert.are.equal("server shutting down", ws.close_reason)
    end
    assert.are.same({ 0 }, { loom.timeout(WAIT, p.wait, p) })
    assert.are.equal("", p.stderr:read_all())
  end, LIMITS))
end)

describe("examples/ws_chat.lua in a browser", function()
  it("headless Chromium: the page's own script sends what is typed and shows the broadcast", async(function()
    assert(io.open(CHROMIUM), CHROMIUM .. " is missing: this test needs Debian's chromium package "
      .. "(apt-get install chromium)"):close()
    local _, _server_guard <close>, url = chat_server()
    local ann <close> = join(url, "ann")
    local page = url .. "?name=browser"

    -- the browser, in a profile of its own; port 0: it prints the one
    -- it took ("DevTools listening on ws://127.0.0.1:PORT/...")
    local dir = helper.tmpdir()
    local _rm <close> = setmetatable({}, { __close = function() helper.rmtree(dir) end })
    local env = helper.peer_env()
    env.HOME = dir
    local chromium, _chromium_guard <close> = start({ CHROMIUM, "--headless=new", "--no-sandbox",
      "--disable-gpu", "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
      "--user-data-dir=" .. dir, "--window-size=800,600", "--no-first-run",
      "--no-default-browser-check", "--disable-background-networking",
      "--disable-component-update", "--disable-sync", "--disable-extensions",
      "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1", page },
      { stdin = "null", stdout = "null", stderr = "pipe", env = env })
    local said, port = {}, nil
    while not port do
      local line = read_line(chromium.stderr)
      if not line then error("chromium ended: " .. table.concat(said, "\n")) end
      said[#said + 1] = line
      port = line:match("^DevTools listening on ws://127%.0%.0%.1:(%d+)/")
    end
    loom.spawn(function()  -- what else it says, so that it never blocks on it
      while true do
        local line = chromium.stderr:read_line()
        if not line then return end
        if #said < 200 then said[#said + 1] = line end
      end
    end)

    local cdp, _cdp_guard <close> = start({ PYTHON, "spec/peers/cdp.py", port, page },
                                  { stdin = "pipe", env = helper.peer_env() })
    local function call(cmd)
      assert(cdp.stdin:write(json.encode(cmd), "\n"))
      local line = read_line(cdp.stdout)
      assert(line, "cdp.py ended; chromium said:\n" .. table.concat(said, "\n"))
      local answer = json.decode(line)
      assert(not answer.error, answer.error)
      return answer.value, answer
    end
    assert.are.same({ ready = true }, json.decode(read_line(cdp.stdout)))
    call{ wait = [[document.getElementById("status")?.textContent === "connected"]] }
    assert.are.equal("* browser joined", recv(ann))

    -- typed into the page's input, sent with its button
    local first = "héllo ann, from Chromium"
    call{ eval = ([[(() => {
      const input = document.getElementById("text");
      input.focus();
      input.value = %s;
      input.dispatchEvent(new Event("input", { bubbles: true }));
      document.getElementById("send").click();
      return input.value;
    })()]]):format(json.encode(first)) }
    assert.are.equal("<browser> " .. first, recv(ann))
    assert.are.equal("", call{ eval = [[document.getElementById("text").value]] })
    -- keys: text inserted at the focus, then Enter
    local second = "and this one with Enter"
    call{ keys = second }
    assert.are.equal("<browser> " .. second, recv(ann))

    -- what ann says shows in the page
    assert(ann:send("hello, browser"))
    assert.are.equal("<ann> hello, browser", recv(ann))
    call{ wait = [[document.body.innerText.includes("<ann> hello, browser")]] }
    local text = call{ eval = "document.body.innerText" }
    for _, want in ipairs { "* welcome, browser (2 here)", "<browser> " .. first,
                            "<browser> " .. second, "<ann> hello, browser" } do
      assert.truthy(text:find(want, 1, true), want .. " not in " .. text)
    end
    assert.are.equal(4, call{ eval = [[document.querySelectorAll("#log li").length]] })

    local shot = helper.tmppath() .. ".png"
    local _, answer = call{ screenshot = shot }
    local png = helper.slurp(shot)
    assert.are.equal(answer.bytes, #png)
    assert.are.equal("\137PNG\r\n\26\n", png:sub(1, 8))
    assert.are.equal("IHDR", png:sub(13, 16))
    assert.are.equal(800, (string.unpack(">I4", png, 17)))  -- its width
    if os.getenv("WS_CHAT_SCREENSHOT") then
      assert(loom.fs.write_file(os.getenv("WS_CHAT_SCREENSHOT"), png))
    end

    -- the browser leaves: its tab's socket goes with its process group
    cdp.stdin:close()
    assert.are.same({ 0 }, { loom.timeout(WAIT, cdp.wait, cdp) })
    local pgid = chromium.pid
    kill_group(chromium)
    assert.are.equal("* browser left", recv(ann))
    -- and so do its helpers of other groups (crashpad), on their own
    local deadline, left = loom.now() + WAIT
    repeat
      left = survivors(pgid, dir)
      if #left > 0 then loom.sleep(0.05) end
    until #left == 0 or loom.now() > deadline
    assert.are.same({}, left)
  end, LIMITS))
end)
