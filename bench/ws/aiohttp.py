"""ws peer: a WebSocket echo server on aiohttp.

Run as: python3 bench/ws/aiohttp.py [PORT]     (default 0: a free port)
Prints: port=P    (once listening on 127.0.0.1)

One route, GET /, whose handler prepares a web.WebSocketResponse() and
sends every text or binary message back as it came, until the peer closes
or the connection ends. No heartbeat (aiohttp's default), the access log
off, asyncio's default event loop. Runs until killed (bench/run sends
SIGTERM).
"""
import os
import sys

# This file is named aiohttp.py and Python puts the script's directory
# first on sys.path, so drop it or "import aiohttp" would import this file.
if sys.path and os.path.abspath(sys.path[0]) == os.path.dirname(os.path.abspath(__file__)):
    del sys.path[0]

import asyncio  # noqa: E402

from aiohttp import WSMsgType, web  # noqa: E402


async def echo(request):
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    async for msg in ws:
        if msg.type == WSMsgType.BINARY:
            await ws.send_bytes(msg.data)
        elif msg.type == WSMsgType.TEXT:
            await ws.send_str(msg.data)
    return ws


async def main(port):
    app = web.Application()
    app.router.add_get("/", echo)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    print(f"port={runner.addresses[0][1]}", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    raw = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("BENCH_PORT", "0")
    asyncio.run(main(int(raw)))
