"""soak peer: clients that misbehave against an HTTP server.

Run as: python3 bench/soak/slow.py HOST PORT SECONDS [SLOW]
For SECONDS: SLOW clients (default 50) each send a request head that
never ends (slowloris: a header line after another), one byte a second,
connecting again when the server closes them (its header timeout), and
every second ten clients send half a request head and leave.  Prints at the
end "slow_closed=N longest_s=S half=N errors=N": how many slow connections
the server closed, the longest one held (seconds), half requests sent,
connections that failed.
"""
import asyncio
import sys
import time

REQ = b"GET / HTTP/1.1\r\nHost: soak\r\nUser-Agent: slow\r\n\r\n"
HEAD = b"GET / HTTP/1.1\r\nHost: soak\r\n"
MORE = b"X-Slow: 1\r\n"
stats = {"slow_closed": 0, "longest_s": 0, "half": 0, "errors": 0}


def byte(i):
    """The i-th byte of a head that never ends."""
    if i < len(HEAD):
        return HEAD[i: i + 1]
    j = (i - len(HEAD)) % len(MORE)
    return MORE[j: j + 1]


async def slow(host, port, deadline):
    while time.monotonic() < deadline:
        try:
            reader, writer = await asyncio.open_connection(host, port)
        except OSError:
            stats["errors"] += 1
            await asyncio.sleep(1)
            continue
        closed = asyncio.ensure_future(reader.read())
        began = time.monotonic()
        i = 0
        while time.monotonic() < deadline and not closed.done():
            writer.write(byte(i))
            i += 1
            try:
                await asyncio.wait_for(asyncio.shield(closed), 1)
            except asyncio.TimeoutError:
                pass
            except OSError:
                break
        if closed.done():
            stats["slow_closed"] += 1
            stats["longest_s"] = max(stats["longest_s"], round(time.monotonic() - began))
        else:
            closed.cancel()
        writer.close()


async def half(host, port, deadline):
    while time.monotonic() < deadline:
        for _ in range(10):
            try:
                _, writer = await asyncio.open_connection(host, port)
                writer.write(REQ[: len(REQ) // 2])
                await writer.drain()
                writer.close()
                stats["half"] += 1
            except OSError:
                stats["errors"] += 1
        await asyncio.sleep(1)


async def main(host, port, seconds, nslow):
    deadline = time.monotonic() + seconds
    await asyncio.gather(*[slow(host, port, deadline) for _ in range(nslow)],
                         half(host, port, deadline))
    print(" ".join("%s=%d" % kv for kv in stats.items()), flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), float(sys.argv[3]),
                     int(sys.argv[4]) if len(sys.argv) > 4 else 50))
