/* ws floor: a WebSocket echo server in C, on libuv and wslay.
 *
 *   usage: ws-floor [PORT]     (default 0: a free port)
 *   prints: port=P             (once listening on 127.0.0.1)
 *
 * The opening handshake by hand: read until the first "\r\n\r\n", take
 * Sec-WebSocket-Key (no other check), answer 101 with its
 * Sec-WebSocket-Accept (OpenSSL's SHA-1 and base64). From there wslay's
 * event API frames: each read is fed to wslay_event_recv, every message
 * it completes is queued back as it came (same opcode) and
 * wslay_event_send writes what is queued. wslay's send callback writes
 * with uv_try_write and copies what the kernel does not take into a
 * uv_write. Runs until killed (bench/run sends SIGTERM).
 */
#include <openssl/evp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <uv.h>
#include <wslay/wslay.h>

#define GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

typedef struct {
  uv_tcp_t tcp;
  wslay_event_context_ptr ws;  /* NULL until the handshake is done */
  const char *in;              /* read bytes wslay has not taken yet */
  size_t nin;
  size_t got;                  /* handshake bytes so far */
  char buf[65536];
} conn;

static uv_loop_t *loop;

static void on_closed(uv_handle_t *h) {
  conn *c = h->data;
  if (c->ws) wslay_event_context_free(c->ws);
  free(c);
}

static void drop(conn *c) {
  if (!uv_is_closing((uv_handle_t *)&c->tcp))
    uv_close((uv_handle_t *)&c->tcp, on_closed);
}

static void on_written(uv_write_t *req, int status) {
  (void)status;
  free(req);
}

/* Writes all of data: what uv_try_write leaves goes into a request. */
static int put(conn *c, const char *data, size_t len) {
  uv_buf_t b = uv_buf_init((char *)data, (unsigned)len);
  int n = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
  if (n == (int)len) return 0;
  if (n < 0 && n != UV_EAGAIN) return n;
  if (n < 0) n = 0;
  uv_write_t *req = malloc(sizeof *req + len - (size_t)n);
  if (req == NULL) return UV_ENOMEM;
  memcpy(req + 1, data + n, len - (size_t)n);
  b = uv_buf_init((char *)(req + 1), (unsigned)(len - (size_t)n));
  return uv_write(req, (uv_stream_t *)&c->tcp, &b, 1, on_written);
}

static ssize_t recv_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len,
                       int flags, void *ud) {
  conn *c = ud;
  (void)flags;
  if (c->nin == 0) {
    wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
    return -1;
  }
  if (len > c->nin) len = c->nin;
  memcpy(buf, c->in, len);
  c->in += len;
  c->nin -= len;
  return (ssize_t)len;
}

static ssize_t send_cb(wslay_event_context_ptr ctx, const uint8_t *data,
                       size_t len, int flags, void *ud) {
  (void)flags;
  if (put(ud, (const char *)data, len) < 0) {
    wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
    return -1;
  }
  return (ssize_t)len;
}

static void on_msg(wslay_event_context_ptr ctx,
                   const struct wslay_event_on_msg_recv_arg *m, void *ud) {
  (void)ud;
  if (wslay_is_ctrl_frame(m->opcode)) return;  /* wslay answers those */
  struct wslay_event_msg reply = {m->opcode, m->msg, m->msg_length};
  wslay_event_queue_msg(ctx, &reply);
}

static const struct wslay_event_callbacks callbacks = {
  recv_cb, send_cb, NULL, NULL, NULL, NULL, on_msg
};

/* The request so far in c->buf: the 101 once it is whole. */
static int handshake(conn *c) {
  c->buf[c->got] = '\0';
  char *end = strstr(c->buf, "\r\n\r\n");
  if (end == NULL) return c->got + 1 < sizeof c->buf ? 0 : -1;
  char *key = NULL, both[128], accept[32], resp[256];
  for (char *p = c->buf; (p = strstr(p, "\r\n")) != NULL && p < end;) {
    p += 2;
    if (strncasecmp(p, "Sec-WebSocket-Key:", 18) == 0) {
      key = p + 18;
      break;
    }
  }
  if (key == NULL) return -1;
  key += strspn(key, " \t");
  size_t klen = strcspn(key, " \t\r");
  if (klen > 64) return -1;
  int n = snprintf(both, sizeof both, "%.*s%s", (int)klen, key, GUID);
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned mdlen;
  EVP_Digest(both, (size_t)n, md, &mdlen, EVP_sha1(), NULL);
  EVP_EncodeBlock((unsigned char *)accept, md, (int)mdlen);
  n = snprintf(resp, sizeof resp,
               "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
               "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
               accept);
  if (put(c, resp, (size_t)n) < 0) return -1;
  if (wslay_event_context_server_init(&c->ws, &callbacks, c) != 0) return -1;
  /* Frames the client sent right behind its request. */
  c->in = end + 4;
  c->nin = c->got - (size_t)(end + 4 - c->buf);
  return 1;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  conn *c = h->data;
  (void)suggested;
  if (c->ws) *buf = uv_buf_init(c->buf, sizeof c->buf);
  else *buf = uv_buf_init(c->buf + c->got, (unsigned)(sizeof c->buf - 1 - c->got));
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  conn *c = s->data;
  if (nread == 0) return;
  if (nread < 0) {
    drop(c);
    return;
  }
  if (c->ws == NULL) {
    c->got += (size_t)nread;
    int r = handshake(c);
    if (r < 0) drop(c);
    if (r <= 0) return;
  } else {
    c->in = buf->base;
    c->nin = (size_t)nread;
  }
  if (wslay_event_recv(c->ws) != 0 || wslay_event_send(c->ws) != 0 ||
      (!wslay_event_want_read(c->ws) && !wslay_event_want_write(c->ws)))
    drop(c);
}

static void on_connection(uv_stream_t *server, int status) {
  if (status < 0) return;
  conn *c = calloc(1, sizeof *c);
  if (c == NULL) return;
  uv_tcp_init(loop, &c->tcp);
  c->tcp.data = c;
  if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
    drop(c);
    return;
  }
  uv_tcp_nodelay(&c->tcp, 1);
  uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

int main(int argc, char **argv) {
  const char *env = getenv("BENCH_PORT");
  int port = argc > 1 ? atoi(argv[1]) : env ? atoi(env) : 0;
  struct sockaddr_in addr;
  uv_tcp_t server;
  /* A write to a connection the client has just dropped: an error, not a
   * signal that ends the server. */
  signal(SIGPIPE, SIG_IGN);
  loop = uv_default_loop();
  uv_ip4_addr("127.0.0.1", port, &addr);
  uv_tcp_init(loop, &server);
  int r = uv_tcp_bind(&server, (const struct sockaddr *)&addr, 0);
  if (r == 0) r = uv_listen((uv_stream_t *)&server, 1024, on_connection);
  if (r != 0) {
    fprintf(stderr, "ws-floor: listen: %s\n", uv_strerror(r));
    return 1;
  }
  struct sockaddr_storage bound;
  int len = sizeof bound;
  uv_tcp_getsockname(&server, (struct sockaddr *)&bound, &len);
  printf("port=%d\n", ntohs(((struct sockaddr_in *)&bound)->sin_port));
  fflush(stdout);
  return uv_run(loop, UV_RUN_DEFAULT);
}
