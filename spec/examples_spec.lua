--[[ spec/examples_spec.lua: the scripts in examples/ run with the binary
  and do what their comments say.  The assertions are on behaviour
  (order of lines, cleanup seen, timing within a margin), not on the
  exact formatting of floats.
]]
local helper = require("spec.helper")

local clock, coarse, lines = helper.clock, helper.coarse, helper.lines

-- Runs examples/<name>.lua; returns its lines, stderr, status, seconds.
local function run_example(name)
  local t0 = clock()
  local out, err, code = helper.run_bin({ "examples/" .. name .. ".lua" })
  return lines(out), err, code, clock() - t0, out
end

-- Index of the first line matching 'pattern' (plain text when 'plain').
local function find_line(l, pattern, plain)
  for i, line in ipairs(l) do
    if line:find(pattern, 1, plain) then return i end
  end
end

describe("examples", function()
  it("demo.lua: concurrent sleeps, timeout, cancellation cleanup, errors across await", function()
    local l, err, code, secs, out = run_example("demo")
    assert.are.equal("", err)
    assert.are.equal(0, code)
    assert.are.equal(10, #l, out)

    -- every line is stamped with the loop time since the start
    local stamps = {}
    for i, line in ipairs(l) do
      stamps[i] = tonumber(line:match("^%[%s*([%d.]+)s%] "))
      assert.is_truthy(stamps[i], "no time stamp on: " .. line)
      if i > 1 then assert.is_true(stamps[i] >= stamps[i - 1], out) end
    end

    -- 1. the three workers finish in order of their sleeps, concurrently
    assert.matches("%] beta done after 0%.1s$", l[1])
    assert.matches("%] gamma done after 0%.2s$", l[2])
    assert.matches("%] alpha done after 0%.3s$", l[3])
    assert.matches("%] awaited: ALPHA BETA GAMMA$", l[4])
    -- one after the other they would take 0.6 s
    assert.is_true(stamps[4] >= 0.28 and stamps[4] < 0.55,
      "three sleeps of at most 0.3 s took " .. stamps[4] .. " s")

    -- 2. the timeout interrupts the 10 s sleep after 0.1 s
    assert.matches("%] slow call: ok=false, loom%.Timeout", l[5])
    local dt = stamps[5] - stamps[4]
    assert.is_true(dt >= 0.09 and dt < 5, "the 0.1 s timeout took " .. dt .. " s")

    -- 3. cancelling the holder releases its connection before the await returns
    local opened = find_line(l, "connection opened, waiting...", true)
    local released = find_line(l, "connection released", true)
    local cancelled = find_line(l, "holder cancelled: loom.Cancelled", true)
    assert.is_truthy(opened and released and cancelled, out)
    assert.is_true(opened < released and released < cancelled, out)

    -- 4. the table error crossed the await unchanged
    assert.matches("%] error object crossed the await: code=42$", l[9])

    -- 5. main is the last task alive
    assert.matches("%] main done; 1 task%(s%) alive$", l[10])

    assert.is_true(stamps[10] < 5, "the demo's loop time: " .. stamps[10] .. " s")
    assert.is_true(secs < 8, "the demo took " .. secs .. " s")
  end)

  it("sleepers.lua: hello after ~1 s, world after ~2 s, all in ~2 s not 3", function()
    local l, err, code, secs, out = run_example("sleepers")
    assert.are.equal("", err)
    assert.are.equal(0, code)
    assert.are.equal(3, #l, out)

    local t_hello = tonumber(l[1]:match("^([%d.]+) hello$"))
    local t_world = tonumber(l[2]:match("^([%d.]+) world$"))
    assert.is_truthy(t_hello, out)  -- "hello" comes first ...
    assert.is_truthy(t_world, out)  -- ... then "world"
    -- loop time; one sleep after the other, world would come at 3 s
    assert.is_true(t_hello >= 0.9 and t_hello < 1.8, "hello at " .. t_hello)
    assert.is_true(t_world >= 1.9 and t_world < 2.8, "world at " .. t_world)

    local total = tonumber(l[3]:match("^finished in ([%d.]+) s$"))
    assert.is_truthy(total, out)
    assert.is_true(total >= 1.9 and total < 2.8, "finished in " .. total .. " s")

    -- the process itself: at least its 2 s of sleeping (the bound above
    -- is on loop time; wall time adds the start, slow in a sanitizer build)
    if coarse then
      assert.is_true(secs >= 1 and secs <= 6, "wall time " .. secs .. " s")
    else
      assert.is_true(secs >= 1.9 and secs < 6, "wall time " .. secs .. " s")
    end
  end)

  it("timeout.lua: the slow operation's cleanup runs and loom.Timeout is raised", function()
    local l, err, code, secs, out = run_example("timeout")
    assert.are.equal("", err)
    assert.are.equal(0, code)
    assert.are.equal(3, #l, out)

    -- the cleanup ran first, and saw the timeout at the sleep
    assert.matches("^cleanup ran, the sleep raised: loom%.Timeout", l[1])
    -- loom.timeout raised loom.Timeout: ok is false, is_timeout is true
    local ok, text, is_timeout = l[2]:match("^(%a+)\t(.-)\t(%a+)$")
    assert.are.equal("false", ok)
    assert.matches("^loom%.Timeout", text)
    assert.are.equal("true", is_timeout)
    -- wait_for raised a timeout (ETIMEDOUT) and cancelled the task
    assert.are.equal("false\tETIMEDOUT\ttask cancelled: true", l[3])

    -- 0.5 s + 0.2 s of timeouts, not the 10 s sleeps
    assert.is_true(secs < 3, "took " .. secs .. " s")
    if not coarse then assert.is_true(secs >= 0.65, "took " .. secs .. " s") end
  end)

  it("cancel.lua: the cancelled worker releases its resource by <close> and pcall", function()
    local l, err, code, secs, out = run_example("cancel")
    assert.are.equal("", err)
    assert.are.equal(0, code)

    local acquired = find_line(l, "^acquired database connection$")
    local working = find_line(l, "^working%.%.%.$")
    local cancel_returned = find_line(l, "^cancel returned true$")
    local pcall_saw = find_line(l, "^pcall saw: loom%.Cancelled: shutting down$")
    local released = find_line(l, "^released database connection$")
    local result = find_line(l, "^worker cancelled: ")
    assert.is_truthy(acquired and working and cancel_returned and pcall_saw
                     and released and result, out)
    assert.are.equal(6, #l, out)
    assert.is_true(acquired < working and working < cancel_returned, out)
    assert.is_true(cancel_returned < pcall_saw, out)
    -- the <close> variable is released when the worker's function exits,
    -- after its pcall cleanup, and before the awaiter sees the result
    assert.is_true(pcall_saw < released and released < result, out)
    assert.are.equal("worker cancelled: true\tloom.Cancelled: shutting down", l[result])

    assert.is_true(secs < 3, "took " .. secs .. " s (the worker sleeps 60 s)")
  end)

  it("gather.lua: results in the order asked, whatever the finishing order", function()
    local l, err, code, _, out = run_example("gather")
    assert.are.equal("", err)
    assert.are.equal(0, code)
    local ready = { find_line(l, "brian is ready", true), find_line(l, "carla is ready", true),
                    find_line(l, "ada is ready", true) }
    assert.truthy(ready[1] and ready[2] and ready[3], out)
    assert.is_true(ready[1] < ready[2] and ready[2] < ready[3], out)
    local ha = find_line(l, "^hello, ada$")
    assert.are.equal(ha + 1, find_line(l, "^hello, brian$"))
    assert.are.equal(ha + 2, find_line(l, "^hello, carla$"))
    local secs = tonumber(out:match("all three in ([%d.]+) s"))
    -- loop time, to a tenth: one after the other they would take 0.6 s
    assert.truthy(secs and secs >= 0.25 and secs <= 0.5, out)
  end)

  it("producer_consumer.lua: a bounded queue, two consumers, join", function()
    local l, err, code = run_example("producer_consumer")
    assert.are.equal("", err)
    assert.are.equal(0, code)
    local seen = {}
    for _, line in ipairs(l) do
      local who, item, held = line:match("^(c%d) processed (item%d+) %(queue holds (%d+)%)$")
      if who then
        seen[#seen + 1] = item
        assert.is_true(tonumber(held) <= 3, line)  -- never more than maxsize
      end
    end
    assert.are.equal(10, #seen)
    for i = 1, 10 do assert.are.equal("item" .. i, seen[i]) end  -- FIFO
    assert.are.equal("all 10 items processed", l[#l])
  end)

  it("offload.lua: the ticker keeps ticking while loom.work computes", function()
    local _, err, code, _, out = run_example("offload")
    assert.are.equal("", err)
    assert.are.equal(0, code)
    local primes, secs, ticks = out:match("(%d+) primes below 300,000 in ([%d.]+) s; the ticker ticked (%d+) times")
    assert.are.equal("25997", primes)
    ticks, secs = tonumber(ticks), tonumber(secs)
    -- the loop was not blocked: a blocked loop ticks at most once, a free
    -- one about every 20 ms of the job; half of that leaves room for a
    -- loaded machine (or a sanitizer) delaying each tick
    assert.is_true(ticks >= 2, out)
    assert.is_true(ticks >= math.floor(secs / 0.02 / 2), out)
  end)

  it("group_fetch.lua: one fetch fails, the others are cancelled, none is left", function()
    local l, err, code, _, out = run_example("group_fetch")
    assert.are.equal("", err)
    assert.are.equal(0, code)
    assert.truthy(find_line(l, "fetched: https://example.org/a", true), out)
    assert.truthy(find_line(l, "cancelled: https://example.org/c", true), out)
    assert.truthy(find_line(l, "cancelled: https://example.org/d", true), out)
    assert.falsy(find_line(l, "fetched: https://example.org/c", true), out)
    assert.are.equal("group failed: https://example.org/b (connection reset)", l[#l - 1])
    assert.are.equal("tasks still alive: 0", l[#l])
  end)

  it("echo.lua: the server echoes the client's lines, one task per connection", function()
    local l, err, code = run_example("echo")
    assert.are.equal("", err)
    assert.are.equal(0, code)
    assert.matches("^connection from 127%.0%.0%.1:%d+$", l[1])
    assert.are.equal("echoed: hello", l[2])
    assert.are.equal("echoed: loom", l[3])
    assert.matches(" left$", l[4])
  end)

  it("echo.lua client mode talks to a server given by host and port", function()
    local out, err, code = helper.run_bin({ "-e", [[
      local server = loom.net.listen("127.0.0.1", 0, function(s)
        for line in s:lines() do s:write(line:upper(), "\n") end
      end)
      local _, port = server:address()
      arg = { [0] = "examples/echo.lua", "client", "127.0.0.1", tostring(port) }
      local t = loom.spawn(dofile, "examples/echo.lua")
      t:await()
      server:close()
    ]] }, "one\ntwo\n")
    assert.are.equal("", err)
    assert.are.equal(0, code)
    assert.are.equal("echoed: ONE\nechoed: TWO\n", out)
  end)

  it("tls_echo.lua: its own certificate, trusted with ca =; echoed over TLS; refused without", function()
    local l, err, code, _, out = run_example("tls_echo")
    assert.are.equal("", err)
    assert.are.equal(0, code)
    assert.are.same({
      "connected: TLSv1.3, verified: true",
      "echoed: hello",
      "echoed: over TLS",
      "without ca: certificate verify failed: self-signed certificate",
    }, l, out)
  end)

  it("chat.lua: every client gets the others' messages through its queue", function()
    local l, err, code, _, out = run_example("chat")
    assert.are.equal("", err)
    assert.are.equal(0, code)
    assert.truthy(find_line(l, "bob got: <ann> hi all", true), out)
    assert.truthy(find_line(l, "ann got: <bob> hello ann", true), out)
    assert.truthy(find_line(l, "cy got: <ann> hi all", true), out)
    assert.falsy(find_line(l, "ann got: <ann>", true), out)  -- not to oneself
  end)

  it("portscan.lua: finds the open ports, never more connects than the limit", function()
    local _, err, code, _, out = run_example("portscan")
    assert.are.equal("", err)
    assert.are.equal(0, code)
    local lo, hi, busiest = out:match("ports (%d+)%-(%d+) in [%d.]+ s, at most (%d+) at a time")
    assert.truthy(lo, out)
    assert.is_true(tonumber(busiest) <= 50)
    local open = {}
    for p in (out:match("open: ([%d ]*)") or ""):gmatch("%d+") do open[#open + 1] = tonumber(p) end
    assert.is_true(#open >= 3, out)  -- the three listeners (others may exist)
    for _, p in ipairs(open) do assert.is_true(p >= tonumber(lo) and p <= tonumber(hi)) end
  end)

  it("fetch_many.lua: every URL once, at most 8 at once, failures as values", function()
    local l, err, code, _, out = run_example("fetch_many")
    assert.are.equal("", err)
    assert.are.equal(0, code)
    assert.are.equal(43, #l, out)
    -- the progress lines count up, one per URL
    local seen = {}
    for i = 1, 42 do
      local k, n = l[i]:match("^%[%s*(%d+)/(%d+)%] ")
      assert.are.equal(i, tonumber(k), out)
      assert.are.equal("42", n)
      local item = l[i]:match("^%[.-%] 200 http://127%.0%.0%.1:%d+/item/(%d+)$")
      if item then seen[#seen + 1] = tonumber(item) end
    end
    table.sort(seen)
    assert.are.equal(40, #seen, out)
    for i = 1, 40 do assert.are.equal(i, seen[i]) end
    assert.truthy(find_line(l, "%] 404 http://127%.0%.0%.1:%d+/missing$"), out)
    assert.truthy(find_line(l, "] ECONNREFUSED: GET 'http://127.0.0.1:9/': ", true), out)
    local failed, most, conns = l[43]:match(
      "^fetched 42 URLs in [%d.]+ s: (%d+) failed, 283 bytes, at most (%d+) at once, (%d+) connections$")
    assert.are.equal("2", failed, out)
    assert.is_true(tonumber(most) <= 8 and tonumber(most) >= 2, out)
    -- keep-alive: the 41 requests to the server went over few connections
    assert.is_true(tonumber(conns) <= 8, out)
  end)
end)

describe("examples (files)", function()

  it("tail.lua: follows a growing file, woken by fs.watch", function()
    local out, err, code = helper.run_bin({ "examples/tail.lua" })
    assert.are.equal("", err)
    assert.are.equal(0, code)
    assert.are.equal("tail: started\ntail: entry 1\ntail: entry 2\ntail: entry 3\n"
      .. "tail: entry 4\ntail: entry 5\n", out)
  end)
end)

-- {==================================================================
-- examples/parallel.lua and examples/graceful.lua (loom.process,
-- loom.signal): self-contained, the second drives the binary from a task
describe("examples: processes and signals", function()
  local helper_ = require("spec.helper")
  local loom = require("loom")  -- also makes loom.busted available
  local async = require("loom.busted").async

  it("parallel.lua: at most K at a time, output streamed with prefixes", function()
    local t0 = helper_.clock()
    local out, err, code = helper_.run_bin({ "examples/parallel.lua", "-j", "2",
      "echo a1; sleep 0.2; echo a2", "echo b1; sleep 0.2; echo b2",
      "echo c1 >&2; exit 3", "kill -TERM $$" })
    local secs = helper_.clock() - t0
    assert.are.equal("", err)
    assert.are.equal(1, code)  -- two commands failed
    local l = helper_.lines(out)
    local where = {}
    for i, line in ipairs(l) do
      if i < #l then assert.matches("^%[%d!?%] ", line) end  -- then the summary
      where[line] = i
    end
    -- 1 and 2 ran together: both had started before either went on
    assert.is_true(where["[1] a1"] < where["[1] a2"] and where["[2] b1"] < where["[1] a2"], out)
    assert.is_true(where["[2] b1"] < where["[2] b2"], out)
    -- 3 and 4 waited for a slot
    assert.is_true(where["[3!] c1"] > where["[1] a1"] and where["[3!] c1"] > where["[2] b1"], out)
    assert.truthy(where["[1] exit 0"] and where["[2] exit 0"] and where["[3] exit 3"], out)
    assert.truthy(where["[4] killed by SIGTERM"], out)
    assert.matches("^4 commands, 2 failed, at most 2 at a time", l[#l])
    if not helper_.coarse then assert.is_true(secs < 3, "took " .. secs .. " s") end
  end)

  it("parallel.lua demo", function()
    local out, err, code = helper_.run_bin({ "examples/parallel.lua" })
    assert.are.equal("", err)
    assert.are.equal(1, code)  -- its sixth command fails on purpose
    assert.truthy(out:find("[6!] about to fail\n", 1, true), out)
    assert.truthy(out:find("\n6 commands, 1 failed, at most 3 at a time", 1, true), out)
  end)

  it("graceful.lua: on SIGTERM it stops accepting, finishes the job in flight, exits 0", async(function()
    local p = assert(loom.process.spawn{ helper_.loom_bin, "examples/graceful.lua",
                                         stderr = "pipe" })
    local _ <close> = setmetatable({}, { __close = function()
      if not p:status() then p:kill("SIGKILL") end  -- never left behind
      p:close()
    end })
    local port = tonumber(p.stdout:read_line():match("^listening on 127%.0%.0%.1:(%d+)$"))
    assert.truthy(port)
    local busy = assert(loom.net.connect("127.0.0.1", port))
    local idle = assert(loom.net.connect("127.0.0.1", port))
    -- both lines in one write: once "done 0.05" is sent, the server
    -- takes the next job from what it has buffered, without waiting, and
    -- so holds it when it next looks at the signal
    busy:write("work 0.05\nwork 1\n")
    assert.are.equal("done 0.05", busy:read_line())  -- it serves
    p:kill("SIGTERM")
    assert.are.equal("SIGTERM: stopped accepting; 1 job(s) in flight", p.stdout:read_line())
    local s, _, code = loom.net.connect("127.0.0.1", port)
    assert.is_nil(s)
    assert.are.equal("ECONNREFUSED", code)
    assert.are.equal("done 1", busy:read_line())  -- the job finished
    assert.is_nil(busy:read_line())  -- then the connection closed
    assert.is_nil(idle:read_line())  -- the idle one was closed at once
    assert.are.equal("bye\n", p.stdout:read_all())
    assert.are.equal("", p.stderr:read_all())
    assert.are.same({ 0 }, { p:wait() })
    busy:close()
    idle:close()
  end))
end)
-- }==================================================================


-- examples/http_hello.lua, json_api.lua and ws_chat.lua: servers, driven
-- by curl (and loom clients) from a task; each child is killed if a test leaves it running
describe("examples: HTTP", function()
  local loom = require("loom")
  local async = require("loom.busted").async

  -- Starts examples/<name>.lua; the process and the port it serves.
  local function start(name)
    local p = assert(loom.process.spawn{ helper.loom_bin, "examples/" .. name .. ".lua",
                                         stderr = "pipe" })
    local line = p.stdout:read_line()
    local port = tonumber(line and line:match("^listening on http://127%.0%.0%.1:(%d+)/$"))
    assert.truthy(port, line)
    return p, port
  end

  local function reaper(p)
    return setmetatable({}, { __close = function()
      if not p:status() then p:kill("SIGKILL") end
      p:close()
    end })
  end

  local function curl(...)
    local argv = { "curl", "-sS", ... }
    argv.timeout = 20
    argv.env = helper.peer_env()
    local r = assert(loom.process.run(argv))
    return r.stdout
  end

  it("http_hello.lua: answers, then on SIGTERM lets the slow request finish", async(function()
    local p, port = start("http_hello")
    local _ <close> = reaper(p)
    local base = "http://127.0.0.1:" .. port
    assert.are.equal("hello from loom: GET /world\n", (curl(base .. "/world")))
    local slow = loom.spawn(curl, base .. "/slow?s=0.3")
    assert.are.equal("slow request: 0.3 s", p.stdout:read_line())
    p:kill("SIGTERM")
    assert.are.equal("SIGTERM: closing", p.stdout:read_line())
    assert.are.equal("hello from loom: GET /slow\n", slow:await())
    assert.are.equal("closed", p.stdout:read_line())
    assert.are.equal(0, p:wait())
  end))

  it("reverse_proxy.lua: passes method, target, headers and body, streams the answer back", async(function()
    local http = loom.http
    local seen
    local up = assert(http.serve("127.0.0.1", 0, function(req)
      if req.path == "/big" then
        local n = 0
        return 200, function()
          n = n + 1
          if n <= 50 then return ("b"):rep(100000) end
        end
      end
      seen = { method = req.method, target = req.target, body = req:body(),
               xff = req.headers["x-forwarded-for"], custom = req.headers["x-custom"] }
      return 201, "from upstream", { ["X-Up"] = "yes", ["Set-Cookie"] = { "a=1", "b=2" } }
    end))
    local _, uport = up:address()
    local p = assert(loom.process.spawn{ helper.loom_bin, "examples/reverse_proxy.lua",
                                         "http://127.0.0.1:" .. uport, stderr = "pipe" })
    local _ <close> = reaper(p)
    local line = p.stdout:read_line()
    local port = tonumber(line and line:match("^listening on http://127%.0%.0%.1:(%d+)/$"))
    assert.truthy(port, line)
    local base = "http://127.0.0.1:" .. port
    local res = assert(http.post(base .. "/x?y=1", "payload", { headers = { ["X-Custom"] = "c" } }))
    assert.are.equal(201, res.status)
    assert.are.equal("from upstream", res.body)
    assert.are.equal("yes", res.headers["x-up"])
    assert.are.same({ "a=1", "b=2" }, res.headers["set-cookie"])
    assert.are.same({ method = "POST", target = "/x?y=1", body = "payload",
                      xff = "127.0.0.1", custom = "c" }, seen)
    res = assert(http.get(base .. "/big"))
    assert.are.equal(5000000, #res.body)
    p:kill("SIGTERM")
    assert.are.equal(0, p:wait())
    up:close()
  end))

  it("ws_chat.lua: serves its page; its client's message comes back (spec/websocket_chat_spec.lua has more)",
     async(function()
    local p = assert(loom.process.spawn{ helper.loom_bin, "examples/ws_chat.lua", "0",
                                         stderr = "pipe" })
    local _ <close> = reaper(p)
    local line = p.stdout:read_line()
    local url = line and line:match("^chat on (http://127%.0%.0%.1:%d+/)$")
    assert.truthy(url, line)
    assert.truthy(curl(url):find("new WebSocket(url)", 1, true))
    local r = assert(loom.process.run{ helper.loom_bin, "examples/ws_chat.lua", "client",
                                       url .. "?name=ann", "hi", timeout = 20 })
    assert.are.equal("", r.stderr)
    assert.are.equal("* welcome, ann (1 here)\n<ann> hi\n", r.stdout)
    p:kill("SIGTERM")
    assert.are.equal("SIGTERM: closing", p.stdout:read_line())
    assert.are.equal(0, p:wait())
    assert.are.equal("", p.stderr:read_all())
  end))

  it("json_api.lua: creates, lists, reads and deletes notes", async(function()
    local p, port = start("json_api")
    local _ <close> = reaper(p)
    local base = "http://127.0.0.1:" .. port
    local json = loom.json
    local created = json.decode(curl("-H", "Content-Type: application/json",
      "--data-binary", '{"text": "buy milk"}', base .. "/notes"))
    assert.are.same({ id = 1, text = "buy milk" }, created)
    curl("--data-binary", '{"text": "call ann"}', base .. "/notes")
    local list = json.decode(curl(base .. "/notes"))
    assert.are.equal(2, list.count)
    assert.are.equal("call ann", list.notes[2].text)
    assert.are.same({ id = 2, text = "call ann" }, json.decode(curl(base .. "/notes/2")))
    local out = curl("-i", "-X", "DELETE", base .. "/notes/1")
    assert.truthy(out:find("^HTTP/1.1 204"), out)
    out = curl("-i", base .. "/notes/1")
    assert.truthy(out:find("^HTTP/1.1 404"), out)
    assert.truthy(out:find("application/json", 1, true), out)
    out = curl("-i", "--data-binary", "not json", base .. "/notes")
    assert.truthy(out:find("^HTTP/1.1 400"), out)
    p:kill("SIGTERM")
    assert.are.equal(0, p:wait())
  end))
end)
