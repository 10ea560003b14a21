/* echo floor: a TCP echo server in C on one libuv loop, nothing else.
 *
 *   usage: echo-floor [PORT]      (default 0: a free port)
 *   prints: port=P                (once listening, on 127.0.0.1)
 *
 * uv_read_start on each accepted connection; each read is echoed as it is
 * with uv_write, straight from the buffer it was read into. No copies, no
 * options on the sockets, no bookkeeping: the least a libuv server can do
 * per message, so the other servers of the benchmark are measured against
 * it. It runs until it is killed.
 *
 * Buffers: each connection owns one read buffer and one write request,
 * reused for as long as no write from it is pending (always, in a
 * ping-pong); a read that arrives while one is pending gets a malloc'd
 * chunk, freed by its write's callback. A malloc of libuv's suggested
 * 64 KiB per read would not do as a floor: glibc gives such a chunk back
 * to the system on every free (brk, then page faults on the next read),
 * which nearly doubled this server's CPU per message.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <uv.h>

#define BUF_SIZE (64 * 1024)

typedef struct {
  uv_write_t req;
  char data[BUF_SIZE];
} chunk;

typedef struct {
  uv_tcp_t tcp;
  int busy;    /* own chunk in use: read into, or being written from */
  chunk own;
} conn;

static chunk *chunk_of(const char *base) {
  return (chunk *)(base - offsetof(chunk, data));
}

static void release(conn *c, chunk *k) {
  if (k == &c->own) c->busy = 0;
  else free(k);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  conn *c = h->data;
  chunk *k = &c->own;
  (void)suggested;
  if (c->busy) k = malloc(sizeof *k);
  else c->busy = 1;
  *buf = uv_buf_init(k ? k->data : NULL, k ? BUF_SIZE : 0);
}

static void on_close(uv_handle_t *h) { free(h->data); }

static void on_write(uv_write_t *req, int status) {
  (void)status;  /* a failed write shows up as a read error too */
  release(req->data, (chunk *)req);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  conn *c = s->data;
  chunk *k = buf->base ? chunk_of(buf->base) : NULL;
  if (nread > 0) {
    uv_buf_t out = uv_buf_init(buf->base, (unsigned)nread);
    k->req.data = c;
    if (uv_write(&k->req, s, &out, 1, on_write) == 0) return;
    nread = UV_EOF;
  }
  if (k) release(c, k);
  if (nread < 0) uv_close((uv_handle_t *)s, on_close);
}

static void on_connection(uv_stream_t *server, int status) {
  if (status < 0) return;
  conn *c = malloc(sizeof *c);
  if (c == NULL) return;
  c->busy = 0;
  uv_tcp_init(server->loop, &c->tcp);
  c->tcp.data = c;
  if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0 ||
      uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0)
    uv_close((uv_handle_t *)&c->tcp, on_close);
}

int main(int argc, char **argv) {
  int port = argc > 1 ? atoi(argv[1]) : 0;
  uv_loop_t *loop = uv_default_loop();
  uv_tcp_t server;
  struct sockaddr_in addr;
  struct sockaddr_storage bound;
  int len = sizeof bound, r;

  uv_tcp_init(loop, &server);
  uv_ip4_addr("127.0.0.1", port, &addr);
  r = uv_tcp_bind(&server, (const struct sockaddr *)&addr, 0);
  if (r == 0) r = uv_listen((uv_stream_t *)&server, 511, on_connection);
  if (r == 0) r = uv_tcp_getsockname(&server, (struct sockaddr *)&bound, &len);
  if (r != 0) {
    fprintf(stderr, "echo-floor: %s\n", uv_strerror(r));
    return 1;
  }
  printf("port=%d\n", ntohs(((struct sockaddr_in *)&bound)->sin_port));
  fflush(stdout);
  return uv_run(loop, UV_RUN_DEFAULT);
}
