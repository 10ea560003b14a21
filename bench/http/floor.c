/* http floor: an HTTP/1.1 "hello" server in C on one libuv loop, and no
 * HTTP parser.
 *
 *   usage: http-floor [PORT]      (default 0: a free port)
 *   prints: port=P                (once listening, on 127.0.0.1)
 *
 * Each connection counts the request heads it reads (each "\r\n\r\n",
 * also when one is split across two reads) and answers each with the same
 * canned response:
 *
 *   HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello
 *
 * Nothing is parsed, no header is looked at, a request body is not
 * understood (a GET has none): the least an HTTP server on libuv can do
 * per request, so the other servers of the benchmark are measured against
 * it. Connections stay open until the client ends them. It runs until it
 * is killed.
 *
 * Buffers: each connection owns one 64 KiB read buffer (reads do not
 * overlap on one connection, so one is enough); responses are written
 * straight from a static block of canned responses with uv_try_write, and
 * only what the kernel did not take goes through uv_write (a malloc'd
 * request that holds the rest).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#define BUF_SIZE (64 * 1024)
#define RESPONSE "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
#define RESPONSE_LEN (sizeof RESPONSE - 1)
#define BLOCK 64  /* responses in the static block */

static char block[BLOCK * RESPONSE_LEN];

typedef struct {
  uv_tcp_t tcp;
  int state;  /* how much of "\r\n\r\n" the bytes so far end with: 0..3 */
  char buf[BUF_SIZE];
} conn;

typedef struct {
  uv_write_t req;
  char data[];
} pending;

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  conn *c = h->data;
  (void)suggested;
  *buf = uv_buf_init(c->buf, BUF_SIZE);
}

static void on_close(uv_handle_t *h) { free(h->data); }

static void on_write(uv_write_t *req, int status) {
  (void)status;  /* a failed write shows up as a read error too */
  free(req);
}

/* Request heads that end in p[0..n), given how much of the terminator the
 * bytes before ended with; updates that state. */
static size_t count_heads(int *state, const char *p, size_t n) {
  size_t heads = 0;
  int s = *state;
  for (size_t i = 0; i < n; i++) {
    char ch = p[i];
    if (ch == '\r') s = (s == 2) ? 3 : 1;
    else if (ch == '\n' && (s == 1 || s == 3)) {
      if (s == 3) {
        heads++;
        s = 0;
      } else s = 2;
    } else s = 0;
  }
  *state = s;
  return heads;
}

/* Writes 'len' bytes of the block; 0 or a libuv error. */
static int send_bytes(uv_stream_t *s, size_t len) {
  uv_buf_t b = uv_buf_init(block, (unsigned)len);
  int n = uv_try_write(s, &b, 1);
  if (n == (int)len) return 0;
  if (n < 0 && n != UV_EAGAIN) return n;
  if (n < 0) n = 0;
  size_t rest = len - (size_t)n;
  pending *w = malloc(sizeof *w + rest);
  if (w == NULL) return UV_ENOMEM;
  memcpy(w->data, block + n, rest);
  b = uv_buf_init(w->data, (unsigned)rest);
  int r = uv_write(&w->req, s, &b, 1, on_write);
  if (r != 0) free(w);
  return r;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  conn *c = s->data;
  if (nread > 0) {
    size_t heads = count_heads(&c->state, buf->base, (size_t)nread);
    while (heads > 0) {
      size_t k = heads < BLOCK ? heads : BLOCK;
      if (send_bytes(s, k * RESPONSE_LEN) != 0) {
        uv_close((uv_handle_t *)s, on_close);
        return;
      }
      heads -= k;
    }
    return;
  }
  if (nread < 0) uv_close((uv_handle_t *)s, on_close);
}

static void on_connection(uv_stream_t *server, int status) {
  if (status < 0) return;
  conn *c = malloc(sizeof *c);
  if (c == NULL) return;
  c->state = 0;
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

  for (int i = 0; i < BLOCK; i++)
    memcpy(block + (size_t)i * RESPONSE_LEN, RESPONSE, RESPONSE_LEN);
  uv_tcp_init(loop, &server);
  uv_ip4_addr("127.0.0.1", port, &addr);
  r = uv_tcp_bind(&server, (const struct sockaddr *)&addr, 0);
  if (r == 0) r = uv_listen((uv_stream_t *)&server, 511, on_connection);
  if (r == 0) r = uv_tcp_getsockname(&server, (struct sockaddr *)&bound, &len);
  if (r != 0) {
    fprintf(stderr, "http-floor: %s\n", uv_strerror(r));
    return 1;
  }
  printf("port=%d\n", ntohs(((struct sockaddr_in *)&bound)->sin_port));
  fflush(stdout);
  return uv_run(loop, UV_RUN_DEFAULT);
}
