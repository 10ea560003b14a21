"""soak peer: an HTTP server (asyncio, not loom) whose every tenth response
is reset mid-body.

Run as: python3 bench/soak/resetter.py PORT
Prints "port=N" once listening.  Each request (keep-alive) is answered with
200 and a 65,536-byte body; every tenth, the server sends the head and half
the body, then resets the connection (SO_LINGER 0, then abort: RST).
"""
import asyncio
import socket
import struct
import sys

BODY = b"x" * 65536
HEAD = b"HTTP/1.1 200 OK\r\nContent-Length: 65536\r\nContent-Type: text/plain\r\n\r\n"
count = 0


async def handle(reader, writer):
    global count
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            if not head:
                break
            count += 1
            if count % 10 == 0:
                writer.write(HEAD + BODY[: len(BODY) // 2])
                await writer.drain()
                sock = writer.get_extra_info("socket")
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                writer.transport.abort()
                return
            writer.write(HEAD + BODY)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    writer.close()


async def main(port):
    server = await asyncio.start_server(handle, "127.0.0.1", port)
    print("port=%d" % server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 0))
