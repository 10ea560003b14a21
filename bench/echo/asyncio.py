"""echo peer: a TCP echo server on asyncio streams.

Run as: python3 bench/echo/asyncio.py [PORT]     (default 0: a free port)
Prints: port=P    (once listening on 127.0.0.1)

asyncio.start_server runs one handler coroutine per connection, which reads
whatever has arrived (reader.read(65536)), writes it back and awaits
drain(), until end of file. Runs until killed (bench/run sends SIGTERM).
"""
import os
import sys

# This file is named asyncio.py and Python puts the script's directory first
# on sys.path, so drop it or "import asyncio" would import this file.
if sys.path and os.path.abspath(sys.path[0]) == os.path.dirname(os.path.abspath(__file__)):
    del sys.path[0]

import asyncio  # noqa: E402


async def echo(reader, writer):
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


async def main(port):
    server = await asyncio.start_server(echo, "127.0.0.1", port)
    print(f"port={server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    raw = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("BENCH_PORT", "0")
    asyncio.run(main(int(raw)))
