/* ws client: the load generator of the ws benchmark, on one libuv loop.
 *
 *   usage: ws-client HOST PORT CONNS SECONDS WARMUP SERVER_PID
 *   prints: conns=C size=100 seconds=S messages=M p50_us=.. p99_us=..
 *           server_cpu_s=.. client_cpu_s=.. conn_min=.. conn_max=..
 *           cpu_clock=.. kind=binary errors=0
 *
 * bench/echo/client.c with WebSocket framing: it opens CONNS TCP
 * connections to HOST:PORT (at most CONNECT_BATCH connects and handshakes
 * in flight), and on each does the client's opening handshake (GET / with
 * a random Sec-WebSocket-Key, no extension and no subprotocol offered); a
 * server must answer 101 with the Sec-WebSocket-Accept that key calls
 * for. Once all are up, every connection ping-pongs one 100-byte binary
 * message: it sends one masked frame (FIN, opcode 2, a fresh mask for
 * every message), waits for the server's one unmasked frame with the same
 * 100 bytes, and sends the next. The arguments, the connect batches and
 * deadline, the warm-up, the window, the server's CPU time, the latency
 * histogram and the line printed (with kind=binary added) are echo's
 * (bench/echo/load.h). When the window closes the process exits without
 * a closing handshake: every server sees its connections end (1006).
 *
 * Every echo is checked: it must be one frame, FIN and binary, unmasked,
 * of 100 bytes, the same bytes as sent (each message carries its
 * connection and sequence number). Anything else (another opcode, a ping,
 * a close, a split frame, an extra byte, an early end of file, a refused
 * handshake) prints a reason and exits 1. The frames are built and parsed
 * here, without a WebSocket library, so that the client costs little next
 * to the servers.
 */
#include "../echo/load.h"

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <strings.h>

#define FRAME_OUT (2 + 4 + MSG_SIZE)   /* header, mask, payload */
#define FRAME_IN (2 + MSG_SIZE)        /* header, payload */
#define GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

typedef struct {
  uv_tcp_t tcp;
  uv_connect_t connect;
  uv_write_t write;
  int id;
  int open;                    /* the handshake is done */
  uint64_t seq;
  uint64_t sent_at;            /* uv_hrtime of the last send */
  size_t got;                  /* bytes received so far */
  char accept[29];             /* the Sec-WebSocket-Accept expected */
  char payload[MSG_SIZE];
  char out[1024];              /* the handshake request, then frames */
  char in[2048];               /* the handshake response, then frames */
} conn;

static conn *conns;
static int started;
static char host_port[64];

/* ---------------------------------------------------------------- writing */

static void on_write(uv_write_t *req, int status) {
  conn *c = req->data;
  if (status < 0) fail("write on connection %d: %s", c->id, uv_strerror(status));
}

/* Writes LEN bytes of c->out: uv_try_write, and a request for what the
 * kernel did not take (one thing in flight per connection at a time). */
static void put(conn *c, size_t len) {
  uv_buf_t buf = uv_buf_init(c->out, (unsigned)len);
  int n = uv_try_write((uv_stream_t *)&c->tcp, &buf, 1);
  if (n == (int)len) return;
  if (n < 0 && n != UV_EAGAIN)
    fail("write on connection %d: %s", c->id, uv_strerror(n));
  if (n < 0) n = 0;
  buf = uv_buf_init(c->out + n, (unsigned)(len - (size_t)n));
  c->write.data = c;
  int r = uv_write(&c->write, (uv_stream_t *)&c->tcp, &buf, 1, on_write);
  if (r < 0) fail("write on connection %d: %s", c->id, uv_strerror(r));
}

static void send_msg(conn *c) {
  c->seq++;
  memcpy(c->payload, &c->id, sizeof c->id);
  memcpy(c->payload + 8, &c->seq, sizeof c->seq);
  /* A mask that changes with every message (RFC 6455 wants it
   * unpredictable; for a load test it need only vary). */
  uint32_t mask = (uint32_t)(c->seq * 2654435761u) ^ (uint32_t)c->id;
  unsigned char *f = (unsigned char *)c->out;
  f[0] = 0x82;                 /* FIN, binary */
  f[1] = 0x80 | MSG_SIZE;      /* masked, 7-bit length */
  memcpy(f + 2, &mask, 4);
  for (int i = 0; i < MSG_SIZE; i++)
    f[6 + i] = (unsigned char)c->payload[i] ^ f[2 + (i & 3)];
  c->got = 0;
  c->sent_at = uv_hrtime();
  put(c, FRAME_OUT);
}

/* ---------------------------------------------------------------- handshake */

static void b64(const unsigned char *in, int n, char *out) {
  EVP_EncodeBlock((unsigned char *)out, in, n);
}

static void send_handshake(conn *c) {
  unsigned char raw[16], md[EVP_MAX_MD_SIZE];
  char key[25], both[64];
  unsigned mdlen;
  if (RAND_bytes(raw, sizeof raw) != 1) fail("RAND_bytes failed");
  b64(raw, sizeof raw, key);
  snprintf(both, sizeof both, "%s%s", key, GUID);
  if (!EVP_Digest(both, strlen(both), md, &mdlen, EVP_sha1(), NULL))
    fail("SHA-1 failed");
  b64(md, (int)mdlen, c->accept);
  int n = snprintf(c->out, sizeof c->out,
                   "GET / HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\n"
                   "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                   "Sec-WebSocket-Version: 13\r\n\r\n", host_port, key);
  put(c, (size_t)n);
}

static void start_all(void);

/* The response so far in c->in: returns once it is incomplete, fails on
 * anything but a 101 with the right accept value and nothing after it. */
static void on_response(conn *c) {
  c->in[c->got] = '\0';
  char *end = strstr(c->in, "\r\n\r\n");
  if (end == NULL) {
    if (c->got + 1 >= sizeof c->in)
      fail("connection %d: a handshake response over %zu bytes", c->id,
           sizeof c->in);
    return;
  }
  if (strncmp(c->in, "HTTP/1.1 101", 12) != 0)
    fail("connection %d: the handshake was refused: %.*s", c->id,
         (int)strcspn(c->in, "\r\n"), c->in);
  if ((size_t)(end + 4 - c->in) != c->got)
    fail("connection %d: bytes came after the handshake response", c->id);
  const char *p = c->in;
  int ok = 0;
  while ((p = strstr(p, "\r\n")) != NULL && p < end) {
    p += 2;
    if (strncasecmp(p, "Sec-WebSocket-Accept:", 21) == 0) {
      const char *v = p + 21;
      while (*v == ' ' || *v == '\t') v++;
      ok = strncmp(v, c->accept, 28) == 0 && (v[28] == '\r' || v[28] == ' ');
      break;
    }
  }
  if (!ok) fail("connection %d: no or a wrong Sec-WebSocket-Accept", c->id);
  c->open = 1;
  c->got = 0;
  connected++;
  start_all();
}

/* ---------------------------------------------------------------- ping-pong */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  conn *c = h->data;
  (void)suggested;
  /* One byte kept for the handshake's terminating NUL. */
  *buf = uv_buf_init(c->in + c->got, (unsigned)(sizeof c->in - 1 - c->got));
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  conn *c = s->data;
  (void)buf;
  if (nread == 0) return;
  if (nread < 0)
    fail("read on connection %d: %s (the server closed it?)", c->id,
         uv_strerror((int)nread));
  c->got += (size_t)nread;
  if (!c->open) {
    on_response(c);
    return;
  }
  if (c->seq == 0)
    fail("connection %d: %zu bytes before the first message", c->id, c->got);
  const unsigned char *f = (const unsigned char *)c->in;
  if (f[0] != 0x82)
    fail("connection %d: a frame with first byte 0x%02x, not 0x82 (FIN, "
         "binary)", c->id, f[0]);
  if (c->got < 2) return;
  if (f[1] != MSG_SIZE)
    fail("connection %d: a frame with second byte 0x%02x, not an unmasked "
         "length of %d", c->id, f[1], MSG_SIZE);
  if (c->got < FRAME_IN) return;
  if (c->got > FRAME_IN)
    fail("connection %d: %zu bytes came back for one %d-byte frame", c->id,
         c->got, FRAME_IN);
  if (memcmp(c->in + 2, c->payload, MSG_SIZE) != 0)
    fail("connection %d: the echo of message %" PRIu64 " differs from it",
         c->id, c->seq);
  round_trip(c->id, c->sent_at);
  send_msg(c);
}

/* ---------------------------------------------------------------- connecting */

static void start_connect(void);

/* After each handshake: the next connect, and once every connection is
 * open the ping-pong on all of them and the warm-up clock. */
static void start_all(void) {
  start_connect();
  if (connected < nconns) return;
  for (int i = 0; i < nconns; i++) send_msg(&conns[i]);
  load_ready();
}

static void on_connect(uv_connect_t *req, int status) {
  conn *c = req->data;
  if (status < 0) fail("connect %d: %s", c->id, uv_strerror(status));
  uv_tcp_nodelay(&c->tcp, 1);
  int r = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
  if (r < 0) fail("read_start %d: %s", c->id, uv_strerror(r));
  send_handshake(c);
}

static void start_connect(void) {
  if (started >= nconns) return;
  conn *c = &conns[started];
  c->id = started++;
  uv_tcp_init(loop, &c->tcp);
  c->tcp.data = c;
  c->connect.data = c;
  int r = uv_tcp_connect(&c->connect, &c->tcp,
                         (const struct sockaddr *)&server_addr, on_connect);
  if (r < 0) fail("connect %d: %s", c->id, uv_strerror(r));
}

static void print_kind(void) { printf(" kind=binary"); }

int main(int argc, char **argv) {
  load_name = "ws-client";
  load_fields = print_kind;
  load_init(argc, argv, NULL);
  snprintf(host_port, sizeof host_port, "%s:%d", load_host, load_port);
  conns = calloc((size_t)nconns, sizeof *conns);
  if (conns == NULL) fail("out of memory");
  /* The filler of every payload: bytes 16 to 99, the same on each. */
  for (int i = 0; i < nconns; i++)
    for (int j = 16; j < MSG_SIZE; j++) conns[i].payload[j] = (char)(j * 7);
  load_run(start_connect);
}
