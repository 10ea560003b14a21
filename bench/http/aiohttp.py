"""http peer: "hello" from an aiohttp web application.

Run as: python3 bench/http/aiohttp.py [PORT]     (default 0: a free port)
Prints: port=P    (once listening on 127.0.0.1)

One route, GET /, whose handler returns web.Response(text="hello");
aiohttp adds Content-Type, Content-Length, Date and Server. The access log
is off (as nginx's), the event loop is asyncio's default one. Runs until
killed (bench/run sends SIGTERM).
"""
import os
import sys

# This file is named aiohttp.py and Python puts the script's directory
# first on sys.path, so drop it or "import aiohttp" would import this file.
if sys.path and os.path.abspath(sys.path[0]) == os.path.dirname(os.path.abspath(__file__)):
    del sys.path[0]

import asyncio  # noqa: E402

from aiohttp import web  # noqa: E402


async def hello(request):
    return web.Response(text="hello")


async def main(port):
    app = web.Application()
    app.router.add_get("/", hello)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    print(f"port={runner.addresses[0][1]}", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    raw = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("BENCH_PORT", "0")
    asyncio.run(main(int(raw)))
