#!/usr/bin/env python3
"""spec/peers/http_peer.py: an HTTP/1.1 server on 127.0.0.1 for the
specs of loom's HTTP client, on Python's http.server (written apart
from loom, so that both sides are not the same code's mistakes).

It binds port 0 and prints the port on a line of stdout, then serves
until it is killed.  Routes:

  /echo                 method, path, headers and body as JSON
  /status/N             status N, body "status N"
  /redirect/N           302 to /redirect/N-1 (relative); /redirect/0: 200
  /loop                 302 to /loop, forever
  /see-other            303 to /echo (a POST becomes a GET)
  /gzip                 a gzip'd body (Content-Encoding: gzip)
  /chunked              a body in several chunks (Transfer-Encoding)
  /cookies              Set-Cookie twice, X-Dup twice, X-One once
  /large?size=N         N bytes (default 64 MiB), chunked: 64 KiB block
                        k is BASE rotated left by (k * 257) % 65536,
                        BASE[i] = (i * i + i // 256) % 256
  /slow                 headers, then a chunk every 0.05 s for 60 s
  /slow-head            the headers after 30 s
  /short                Content-Length: 100, 10 bytes, then it closes
  /barrier?n=K          answers once K requests wait here (10 s at most),
                        all K at once
  /connections          how many connections were accepted so far
  /aborted?n=K          waits (10 s at most) until K slow bodies ended
                        because their client went away; the count
  /started?n=K          waits (10 s at most) until K /slow requests came;
                        the count
"""
import gzip
import json
import socketserver
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse, parse_qs

BASE = bytes((i * i + i // 256) % 256 for i in range(65536))

lock = threading.Condition()
barriers = {}
stats = {"connections": 0, "aborted": 0, "slow": 0}


def block(k):
    r = (k * 257) % 65536
    return BASE[r:] + BASE[:r]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def setup(self):
        super().setup()
        with lock:
            stats["connections"] += 1

    def send(self, status, body, ctype="text/plain", headers=()):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def chunk(self, data):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

    def start_chunked(self, status=200):
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

    def route(self):
        u = urlparse(self.path)
        q = parse_qs(u.query)
        p = u.path
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        if p == "/echo":
            out = {"method": self.command, "path": self.path,
                   "headers": {k.lower(): v for k, v in self.headers.items()},
                   "body": body.decode("latin-1")}
            self.send(200, json.dumps(out).encode(), "application/json")
        elif p.startswith("/status/"):
            code = int(p[len("/status/"):])
            self.send(code, b"status %d" % code)
        elif p.startswith("/redirect/"):
            k = int(p[len("/redirect/"):])
            if k == 0:
                self.send(200, b"arrived")
            else:
                self.send(302, b"moved", headers=[("Location", str(k - 1))])
        elif p == "/loop":
            self.send(302, b"again", headers=[("Location", "/loop")])
        elif p == "/see-other":
            self.send(303, b"", headers=[("Location", "/echo")])
        elif p == "/gzip":
            data = b"squeezed " * 1000
            self.send(200, gzip.compress(data),
                      headers=[("Content-Encoding", "gzip")])
        elif p == "/chunked":
            self.start_chunked()
            for piece in (b"one,", b"two,", b"three"):
                self.chunk(piece)
                self.wfile.flush()
            self.chunk(b"")
        elif p == "/cookies":
            self.send(200, b"ok", headers=[
                ("Set-Cookie", "a=1; Path=/"),
                ("Set-Cookie", "b=2; Expires=Wed, 21 Oct 2037 07:28:00 GMT"),
                ("X-Dup", "first"), ("X-Dup", "second"), ("X-One", "only")])
        elif p == "/large":
            size = int(q.get("size", [64 << 20])[0])
            self.start_chunked()
            k = 0
            while size > 0:
                b = block(k)[:size]
                self.chunk(b)
                size -= len(b)
                k += 1
            self.chunk(b"")
        elif p == "/slow":
            with lock:
                stats["slow"] += 1
                lock.notify_all()
            self.start_chunked()
            try:
                for _ in range(1200):
                    self.chunk(b"tick\n")
                    self.wfile.flush()
                    time.sleep(0.05)
                self.chunk(b"")
            except (BrokenPipeError, ConnectionResetError):
                with lock:
                    stats["aborted"] += 1
                    lock.notify_all()
                self.close_connection = True
        elif p == "/slow-head":
            time.sleep(30)
            self.send(200, b"late")
        elif p == "/short":
            self.send_response(200)
            self.send_header("Content-Length", "100")
            self.end_headers()
            self.wfile.write(b"0123456789")
            self.wfile.flush()
            self.close_connection = True
        elif p == "/barrier":
            k = int(q.get("n", ["1"])[0])
            with lock:
                b = barriers.setdefault(k, threading.Barrier(k, timeout=10))
            b.wait()
            self.send(200, b"together")
        elif p == "/connections":
            with lock:
                c = stats["connections"]
            self.send(200, str(c).encode())
        elif p in ("/aborted", "/started"):
            key = "aborted" if p == "/aborted" else "slow"
            want = int(q.get("n", ["1"])[0])
            with lock:
                lock.wait_for(lambda: stats[key] >= want, timeout=10)
                c = stats[key]
            self.send(200, str(c).encode())
        else:
            self.send(404, b"no such route")

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = route


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128


def main():
    srv = Server(("127.0.0.1", 0), Handler)
    print(srv.server_address[1], flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
