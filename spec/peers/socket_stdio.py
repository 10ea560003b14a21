#!/usr/bin/env python3
"""spec/peers/socket_stdio.py: runs a command with its stdin and stdout
on one end of a Unix socket pair (one description for both, as inetd
or systemd's socket activation give them), for the specs of loom's
standard streams.

    socket_stdio.py INPUT_FILE CMD [ARG...]

It sends INPUT_FILE's bytes to the command and ends its writes, then
reads all the command writes, slowly (4096 bytes, then a pause of
0.5 ms), so that the command finds the socket full; it copies what it
read to its own stdout and exits with the command's status.  At most
60 s.
"""
import socket
import subprocess
import sys
import time


def main():
    with open(sys.argv[1], "rb") as f:
        data = f.read()
    a, b = socket.socketpair()
    p = subprocess.Popen(sys.argv[2:], stdin=b, stdout=b)
    b.close()
    a.sendall(data)
    a.shutdown(socket.SHUT_WR)
    got = bytearray()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        chunk = a.recv(4096)
        if not chunk:
            break
        got += chunk
        time.sleep(0.0005)
    sys.stdout.buffer.write(got)
    sys.exit(p.wait(timeout=max(1, deadline - time.monotonic())))


if __name__ == "__main__":
    main()
