"""ws peer: a WebSocket echo server on the websockets library.

Run as: python3 bench/ws/websockets.py [PORT]     (default 0: a free port)
Prints: port=P    (once listening on 127.0.0.1)

websockets.serve runs one handler coroutine per connection, which sends
every message back as it came (str or bytes), until the peer closes or
the connection ends. Its keepalive pings are off (ping_interval=None), so
that the client only ever sees echoes; compression is negotiated only
when the client offers it, and bench/ws/client.c does not. Runs until
killed (bench/run sends SIGTERM).
"""
import os
import sys

# This file is named websockets.py and Python puts the script's directory
# first on sys.path, so drop it or "import websockets" would import this
# file.
if sys.path and os.path.abspath(sys.path[0]) == os.path.dirname(os.path.abspath(__file__)):
    del sys.path[0]

import asyncio  # noqa: E402

import websockets  # noqa: E402


async def echo(ws, path=None):
    try:
        async for msg in ws:
            await ws.send(msg)
    except websockets.ConnectionClosed:
        pass


async def main(port):
    async with websockets.serve(echo, "127.0.0.1", port, ping_interval=None) as server:
        print(f"port={server.sockets[0].getsockname()[1]}", flush=True)
        await asyncio.Event().wait()


if __name__ == "__main__":
    raw = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("BENCH_PORT", "0")
    asyncio.run(main(int(raw)))
