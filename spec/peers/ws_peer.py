#!/usr/bin/env python3
"""spec/peers/ws_peer.py: WebSocket peers for the specs of loom's
WebSockets, on Python's websockets (10.x) and aiohttp (3.8): code loom
did not write, so that both ends are not the same code's mistakes.

  ws_peer.py server LIB [cert=PATH key=PATH]
  ws_peer.py client LIB URL ACTION [ca=PATH] [protocols=a,b] [n=N]

LIB is "websockets" or "aiohttp", or "raw": asyncio's streams and
frames made here, for what those libraries will not do.  Everything
stays on 127.0.0.1.

The server binds port 0 (TLS with cert and key), prints "listening
PORT", then serves until it is killed.  Its subprotocols are chat.v1
and chat.v2.  Each connection's end prints "closed PATH CODE REASON"
(the close the peer sent or answered with).  Paths:

  /echo       every message back, text as text, binary as binary
  /fragments  (websockets) a text and a binary message sent in
              fragments (a list, then an async iterator), then "h\u00e9llo"
              in two hand-made fragments that cut the "\u00e9" in two, a
              ping between them; then /echo
  /ping       pings with b"peer-ping"; once its pong came, the text
              "pong received", then /echo
  /close      after the first message, closes with 4002 "later"
  /vanish     after the first message, is gone without a close
              (websockets: the transport aborted; aiohttp: the process
              kills itself)
  /big        the text "x" * 2000, then /echo
  /badutf8    a text frame (hand-made) of b"ok\\xff\\xfe", then waits
  /proto      the subprotocol chosen as a text ("none" without one)
  /rogue      (websockets) answers with the subprotocol "rogue", which
              no client offers
  /deaf       (aiohttp) reads nothing, so answers neither pings nor a
              close, for 30 s
  /raw/CASE   (websockets) the hand-made frames of SERVER_CASES[CASE]

The raw server answers any path with its 101 and the text frame "early
bird" in one write, then waits for the client's close and answers it.

The client connects to URL, prints what it sees on lines, and exits.
ACTION:

  echo        sends TEXT and BINARY (below); prints "text HEX" and
              "binary HEX" of the two messages that come back
  fragments   (websockets) sends TEXT and BINARY in fragments, then
              "h\u00e9llo" as /fragments does; prints the three echoes
              as echo does
  ping        pings with b"peer-ping": "pong" once the pong came
              (aiohttp: "pong HEX" of its data); then sends "ping me"
              and prints "got MESSAGE" for the answer, then sends
              "still there" and prints "got MESSAGE" for its echo
  closeme     sends "close me"; prints "closed CODE REASON" of the
              close that comes
  close       closes with 4002 "later"; prints "closed CODE REASON"
  vanish      sends "hi", waits for an answer, then kills itself
  big         sends 1 MiB of text and 1 MiB of binary (BIG_TEXT,
              BIG_BINARY); prints "big text ok" / "big binary ok" when
              each came back unchanged ("... bad N" otherwise)
  over        sends "x" * 2000; prints "closed CODE REASON"
  send        sends "x"; prints "closed CODE REASON" of the close that
              comes
  badutf8     (websockets) a masked text frame (hand-made) of
              b"ok\\xff\\xfe"; prints "closed CODE REASON"
  proto       offers 'protocols'; prints "protocol P" ("none")
  wait        sends "hi", waits for an answer, then for the close;
              prints "closed CODE REASON"
  idle        sends "hi", waits for an answer, stays idle for 'secs'
              (1 s; pings answered), then sends "still there" and prints
              "got MESSAGE" for its echo
  deaf        (aiohttp) sends "hi", then reads nothing for 30 s
  raw         (websockets) for each of CLIENT_CASES in turn, a
              connection that sends its hand-made frames; prints
              "CASE CODE" of the close that came back
  early       (raw) sends its handshake and the text frame "early bird"
              in one write; prints "text HEX" of the message that comes
              back, then closes (1000) and prints "closed CODE REASON" of
              the answer
  broadcast   opens n connections (default 1000); each sends "hello"
              and waits for "welcome"; then the first sends "news";
              prints "open N", then "received N" for how many got
              "news" within 10 s
"""
import asyncio
import base64
import hashlib
import os
import re
import resource
import signal
import ssl
import struct
import sys

TEXT = "h\u00e9llo\x00w\u00f6rld \u2603 \U0001f600"
BINARY = bytes(range(256)) + b"\x00\xff\x00"
BIG_TEXT = "a\u00e9\u2603\x00\n" * 131072           # 1 MiB of UTF-8
BIG_BINARY = bytes((i * 7 + 3) % 256 for i in range(1 << 20))
PROTOCOLS = ["chat.v1", "chat.v2"]


def out(*words):
    print(*words, flush=True)


def reason_of(r):
    return r if r else ""


def tls_server(opts):
    if "cert" not in opts:
        return None
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(opts["cert"], opts["key"])
    return ctx


def tls_client(opts):
    if "ca" not in opts:
        return None
    return ssl.create_default_context(cafile=opts["ca"])


def frame(first, payload, masked=False):
    """A frame of at most 125 bytes; 'first' its first byte (FIN and
    opcode)."""
    if not masked:
        return struct.pack("!BB", first, len(payload)) + payload
    mask = os.urandom(4)
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return struct.pack("!BB", first, 0x80 | len(payload)) + mask + body


def split_utf8(masked):
    """The text "h\u00e9llo" in two fragments that cut the "\u00e9" in
    two, with a ping between them."""
    return (frame(0x01, b"h\xc3", masked) + frame(0x89, b"mid", masked)
            + frame(0x80, b"\xa9llo", masked))


def close_frame(code, reason=b"", masked=True):
    return frame(0x88, struct.pack("!H", code) + reason, masked)


# Frames that break RFC 6455, from a client (masked)
CLIENT_CASES = {
    "unmasked": frame(0x81, b"hi"),
    "rsv1": frame(0xc1, b"x", True),
    "opcode3": frame(0x83, b"x", True),
    "continuation-first": frame(0x80, b"x", True),
    "text-in-fragments": frame(0x01, b"a", True) + frame(0x81, b"b", True),
    "close-999": close_frame(999),
    "close-1005": close_frame(1005),
    "close-5000": close_frame(5000),
    "close-reason-not-utf8": close_frame(4000, b"\xff"),
    "utf8-cut-at-end": frame(0x01, b"a", True) + frame(0x80, b"\xc3", True),
    "overlong-utf8": frame(0x81, b"\xc0\xaf", True),
    "surrogate": frame(0x81, b"\xed\xa0\x80", True),
    "ping-126": b"\x89\xfe\x00\x7e" + os.urandom(4) + b"a" * 126,
    "ping-fragmented": frame(0x09, b"x", True),
    "length-msb": b"\x82\xff\x80" + b"\x00" * 7 + os.urandom(4),
    "close-1-byte": frame(0x88, b"\x03", True),
}

# Frames that break it, from a server (unmasked)
SERVER_CASES = {
    "masked": frame(0x81, b"hi", True),
    "rsv1": frame(0xc1, b"x"),
    "opcode3": frame(0x83, b"x"),
    "close-1005": close_frame(1005, masked=False),
    "surrogate": frame(0x81, b"\xed\xa0\x80"),
}


GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def accept_of(key):
    return base64.b64encode(hashlib.sha1(key + GUID).digest())


async def read_frame(reader):
    """One frame: (first byte, payload), unmasked."""
    first, second = await reader.readexactly(2)
    n = second & 0x7f
    if n == 126:
        n = struct.unpack("!H", await reader.readexactly(2))[0]
    elif n == 127:
        n = struct.unpack("!Q", await reader.readexactly(8))[0]
    mask = await reader.readexactly(4) if second & 0x80 else None
    data = await reader.readexactly(n)
    if mask:
        data = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
    return first, data


def close_of(data):
    if len(data) < 2:
        return 1005, ""
    return struct.unpack("!H", data[:2])[0], data[2:].decode()


# {=================================================================
# Servers

async def ws_server(opts):
    import websockets

    async def handler(ws):
        path = ws.path.split("?")[0]
        try:
            if path == "/fragments":
                await ws.send(["h\u00e9", "llo\x00", " w\u00f6rld"])

                async def pieces():
                    for p in (b"\x00\x01", b"\xff", b"\x80\x00"):
                        yield p
                await ws.send(pieces())
                ws.transport.write(split_utf8(False))
            elif path == "/ping":
                waiter = await ws.ping(b"peer-ping")
                await asyncio.wait_for(waiter, 10)
                await ws.send("pong received")
            elif path == "/close":
                await ws.recv()
                await ws.close(4002, "later")
            elif path == "/vanish":
                await ws.recv()
                ws.transport.abort()
                return
            elif path == "/big":
                await ws.send("x" * 2000)
            elif path == "/badutf8":
                ws.transport.write(b"\x81\x04ok\xff\xfe")
            elif path == "/proto":
                await ws.send(ws.subprotocol or "none")
            elif path.startswith("/raw/"):
                ws.transport.write(SERVER_CASES[path[5:]])
            async for msg in ws:
                await ws.send(msg)
        except websockets.ConnectionClosed:
            pass
        finally:
            await ws.wait_closed()
            out("closed", path, ws.close_code, reason_of(ws.close_reason))

    class Protocol(websockets.WebSocketServerProtocol):
        def select_subprotocol(self, client, server):
            if self.path == "/rogue":
                return "rogue"
            return super().select_subprotocol(client, server)

    server = await websockets.serve(handler, "127.0.0.1", 0,
                                    create_protocol=Protocol,
                                    ssl=tls_server(opts),
                                    subprotocols=PROTOCOLS, max_size=None,
                                    ping_interval=None)
    port = server.sockets[0].getsockname()[1]
    out("listening", port)
    await asyncio.Future()


async def aio_server(opts):
    from aiohttp import web, WSMsgType

    async def handler(request):
        path = request.path
        ws = web.WebSocketResponse(protocols=PROTOCOLS, max_msg_size=0,
                                   autoping=path != "/ping")
        await ws.prepare(request)
        code, reason = None, ""
        try:
            if path == "/ping":
                await ws.ping(b"peer-ping")
                msg = await asyncio.wait_for(ws.receive(), 10)
                if msg.type != WSMsgType.PONG:
                    raise RuntimeError("not a pong: %r" % (msg,))
                await ws.send_str("pong received")
            elif path == "/close":
                await ws.receive()
                await ws.close(code=4002, message=b"later")
            elif path == "/vanish":
                await ws.receive()
                os.kill(os.getpid(), signal.SIGKILL)
            elif path == "/big":
                await ws.send_str("x" * 2000)
            elif path == "/badutf8":
                request.transport.write(b"\x81\x04ok\xff\xfe")
            elif path == "/proto":
                await ws.send_str(ws.ws_protocol or "none")
            elif path == "/deaf":
                await asyncio.sleep(30)
            while not ws.closed:
                msg = await ws.receive()
                if msg.type == WSMsgType.TEXT:
                    await ws.send_str(msg.data)
                elif msg.type == WSMsgType.BINARY:
                    await ws.send_bytes(msg.data)
                elif msg.type == WSMsgType.PING:
                    await ws.pong(msg.data)
                elif msg.type == WSMsgType.CLOSE:
                    code, reason = msg.data, msg.extra
                    await ws.close()
                else:
                    break
        finally:
            if code is None:
                code = ws.close_code
            out("closed", path, code, reason_of(reason))
        return ws

    app = web.Application()
    app.router.add_get("/{tail:.*}", handler)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=tls_server(opts))
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    out("listening", port)
    await asyncio.Future()


async def raw_server(opts):
    async def conn(reader, writer):
        head = await reader.readuntil(b"\r\n\r\n")
        path = head.split(b" ")[1].decode()
        key = re.search(rb"(?im)^sec-websocket-key:[ \t]*(\S+)", head)[1]
        writer.write(b"HTTP/1.1 101 Switching Protocols\r\n"
                     b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
                     b"Sec-WebSocket-Accept: " + accept_of(key)
                     + b"\r\n\r\n" + frame(0x81, b"early bird"))
        await writer.drain()
        code = 1006
        try:
            while True:
                first, data = await asyncio.wait_for(read_frame(reader), 10)
                if first & 0x0f == 8:
                    code, _ = close_of(data)
                    writer.write(frame(0x88, data[:2]))
                    await writer.drain()
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        out("closed", path, code)
        writer.close()

    server = await asyncio.start_server(conn, "127.0.0.1", 0)
    out("listening", server.sockets[0].getsockname()[1])
    await asyncio.Future()

# }=================================================================


# {=================================================================
# Clients: raw

async def raw_client(url, action, opts):
    if action != "early":
        raise SystemExit("unknown action " + action)
    m = re.match(r"ws://([^:/]+):(\d+)(/.*)?$", url)
    host, port, path = m[1], int(m[2]), m[3] or "/"
    reader, writer = await asyncio.open_connection(host, port)
    key = base64.b64encode(os.urandom(16))
    writer.write(("GET %s HTTP/1.1\r\nHost: %s:%d\r\n"
                  "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                  "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: "
                  % (path, host, port)).encode() + key + b"\r\n\r\n"
                 + frame(0x81, b"early bird", True))
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    if not head.startswith(b"HTTP/1.1 101 ") or accept_of(key) not in head:
        raise SystemExit("not an upgrade: %r" % head)
    first, data = await asyncio.wait_for(read_frame(reader), 10)
    out("text" if first == 0x81 else "frame %x" % first, data.hex())
    writer.write(close_frame(1000))
    await writer.drain()
    first, data = await asyncio.wait_for(read_frame(reader), 10)
    out("closed", *close_of(data))
    writer.close()

# }=================================================================


# {=================================================================
# Clients: websockets

async def ws_client(url, action, opts):
    import websockets

    protocols = opts.get("protocols")
    kw = dict(ssl=tls_client(opts), max_size=None, ping_interval=None,
              open_timeout=10, close_timeout=10)
    if protocols:
        kw["subprotocols"] = protocols.split(",")
    if action == "broadcast":
        return await ws_broadcast(url, int(opts.get("n", 1000)))
    if action == "raw":
        for case, data in CLIENT_CASES.items():
            async with websockets.connect(url, **kw) as ws:
                ws.transport.write(data)
                await ws.wait_closed()
            out(case, ws.close_code)
        return
    async with websockets.connect(url, **kw) as ws:
        if action in ("echo", "fragments"):
            if action == "echo":
                await ws.send(TEXT)
                await ws.send(BINARY)
            else:
                await ws.send([TEXT[:2], TEXT[2:7], TEXT[7:]])

                async def pieces():
                    yield BINARY[:1]
                    yield BINARY[1:200]
                    yield BINARY[200:]
                await ws.send(pieces())
                ws.transport.write(split_utf8(True))
            for _ in range(2 if action == "echo" else 3):
                m = await ws.recv()
                if isinstance(m, str):
                    out("text", m.encode().hex())
                else:
                    out("binary", m.hex())
        elif action == "ping":
            waiter = await ws.ping(b"peer-ping")
            await asyncio.wait_for(waiter, 10)
            out("pong")
            await ws.send("ping me")
            out("got", await ws.recv())
            await ws.send("still there")
            out("got", await ws.recv())
        elif action == "closeme":
            await ws.send("close me")
            await ws.wait_closed()
        elif action == "close":
            await ws.close(4002, "later")
        elif action == "vanish":
            await ws.send("hi")
            await ws.recv()
            os.kill(os.getpid(), signal.SIGKILL)
        elif action == "big":
            for data, kind in ((BIG_TEXT, "text"), (BIG_BINARY, "binary")):
                await ws.send(data)
                back = await ws.recv()
                out("big", kind, "ok" if back == data else
                    "bad %d" % len(back))
        elif action in ("over", "send"):
            try:  # (the close may come first)
                await ws.send("x" * (2000 if action == "over" else 1))
            except websockets.ConnectionClosed:
                pass
            await ws.wait_closed()
        elif action == "badutf8":
            ws.transport.write(frame(0x81, b"ok\xff\xfe", True))
            await ws.wait_closed()
        elif action == "proto":
            out("protocol", ws.subprotocol or "none")
        elif action in ("wait", "idle"):
            await ws.send("hi")
            await ws.recv()
            if action == "wait":
                await ws.wait_closed()
            else:
                await asyncio.sleep(float(opts.get("secs", 1)))
                await ws.send("still there")
                out("got", await ws.recv())
    if action in ("closeme", "close", "over", "send", "badutf8", "wait"):
        out("closed", ws.close_code, reason_of(ws.close_reason))


async def ws_broadcast(url, n):
    import websockets
    gate = asyncio.Semaphore(64)  # not more connects than a backlog takes
    conns = []

    async def one():
        async with gate:
            ws = await websockets.connect(url, open_timeout=10,
                                          ping_interval=None)
            await ws.send("hello")
            if await asyncio.wait_for(ws.recv(), 10) != "welcome":
                raise RuntimeError("no welcome")
            conns.append(ws)

    await asyncio.gather(*(one() for _ in range(n)))
    out("open", len(conns))

    async def news(ws):
        try:
            return await asyncio.wait_for(ws.recv(), 10) == "news"
        except (asyncio.TimeoutError, websockets.ConnectionClosed):
            return False

    waiting = [asyncio.ensure_future(news(ws)) for ws in conns]
    await conns[0].send("news")
    got = await asyncio.gather(*waiting)
    out("received", sum(got))
    await asyncio.gather(*(ws.close() for ws in conns))

# }=================================================================


# {=================================================================
# Clients: aiohttp

async def aio_client(url, action, opts):
    import aiohttp
    from aiohttp import WSMsgType

    protocols = opts.get("protocols")
    kw = dict(max_msg_size=0, autoping=action not in ("ping", "deaf"),
              protocols=protocols.split(",") if protocols else ())
    ctx = tls_client(opts)
    if ctx:
        kw["ssl"] = ctx
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        async with session.ws_connect(url, **kw) as ws:
            async def closed():
                msg = await asyncio.wait_for(ws.receive(), 10)
                if msg.type == WSMsgType.CLOSE:
                    out("closed", msg.data, reason_of(msg.extra))
                else:
                    out("closed", ws.close_code, "(%s)" % msg.type)

            if action == "echo":
                await ws.send_str(TEXT)
                await ws.send_bytes(BINARY)
                for _ in range(2):
                    msg = await ws.receive()
                    if msg.type == WSMsgType.TEXT:
                        out("text", msg.data.encode().hex())
                    else:
                        out("binary", msg.data.hex())
            elif action == "ping":
                await ws.ping(b"peer-ping")
                msg = await asyncio.wait_for(ws.receive(), 10)
                if msg.type != WSMsgType.PONG:
                    raise RuntimeError("not a pong: %r" % (msg,))
                out("pong", msg.data.hex())
                await ws.send_str("ping me")
                while True:  # loom's ping comes first, then its answer
                    msg = await asyncio.wait_for(ws.receive(), 10)
                    if msg.type == WSMsgType.PING:
                        await ws.pong(msg.data)
                        out("ping", msg.data.hex())
                    else:
                        break
                out("got", msg.data)
                await ws.send_str("still there")
                out("got", (await ws.receive()).data)
            elif action == "closeme":
                await ws.send_str("close me")
                await closed()
            elif action == "close":
                await ws.close(code=4002, message=b"later")
                out("closed", ws.close_code, "")
            elif action == "vanish":
                await ws.send_str("hi")
                await ws.receive()
                os.kill(os.getpid(), signal.SIGKILL)
            elif action == "big":
                for data, kind in ((BIG_TEXT, "text"),
                                   (BIG_BINARY, "binary")):
                    if kind == "text":
                        await ws.send_str(data)
                    else:
                        await ws.send_bytes(data)
                    back = (await ws.receive()).data
                    out("big", kind, "ok" if back == data else
                        "bad %d" % len(back))
            elif action in ("over", "send"):
                try:  # (the close may come first)
                    await ws.send_str("x" * (2000 if action == "over" else 1))
                except ConnectionError:
                    pass
                await closed()
            elif action == "proto":
                out("protocol", ws.protocol or "none")
            elif action == "wait":
                await ws.send_str("hi")
                await ws.receive()
                await closed()
            elif action == "deaf":
                await ws.send_str("hi")
                await asyncio.sleep(30)
            else:
                raise SystemExit("unknown action " + action)

# }=================================================================


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 4096 if hard == resource.RLIM_INFINITY else min(4096, hard)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


def main(argv):
    mode, lib = argv[1], argv[2]
    servers = {"websockets": ws_server, "aiohttp": aio_server,
               "raw": raw_server}
    clients = {"websockets": ws_client, "aiohttp": aio_client,
               "raw": raw_client}
    if lib not in servers:
        raise SystemExit("unknown library " + lib)
    if mode == "server":
        opts = dict(a.split("=", 1) for a in argv[3:])
        coro = servers[lib](opts)
    elif mode == "client":
        url, action = argv[3], argv[4]
        opts = dict(a.split("=", 1) for a in argv[5:])
        raise_nofile()
        coro = clients[lib](url, action, opts)
    else:
        raise SystemExit("unknown mode " + mode)
    asyncio.run(coro)


if __name__ == "__main__":
    main(sys.argv)
