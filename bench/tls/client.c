/* tls client: the load generator of the tls benchmark, OpenSSL on
 * non-blocking sockets polled by one libuv loop.
 *
 *   usage: tls-client HOST PORT CONNS SECONDS WARMUP SERVER_PID CA
 *   prints: conns=C size=100 seconds=S messages=M p50_us=.. p99_us=..
 *           server_cpu_s=.. client_cpu_s=.. conn_min=.. conn_max=..
 *           cpu_clock=.. proto=.. cipher=.. errors=0
 *
 * bench/echo/client.c over TLS: it opens CONNS TCP connections to
 * HOST:PORT and makes each a TLS client (OpenSSL's defaults, so TLS 1.3
 * here) that checks the server's certificate against CA, the PEM file of
 * the self-signed certificate bench/run made, and for the address HOST.
 * Once all have finished their handshakes, every connection ping-pongs one
 * 100-byte message: send it, wait for the same 100 bytes back, send the
 * next. A round trip's latency runs from just before the SSL_write to the
 * SSL_read that completes the echo. The arguments, the connect batches and
 * deadline (handshakes included), the warm-up, the measured window, the
 * clocks, the latency histogram and the line printed are echo's
 * (bench/echo/load.h); proto and cipher, added to the line, are what the
 * first connection negotiated.
 *
 * OpenSSL reads the sockets itself with read-ahead on; a connection goes
 * back to its poll as soon as OpenSSL holds no more bytes
 * (SSL_has_pending), so it never asks for an EAGAIN: the same economy
 * as the floor server's (bench/tls/floor.c).
 *
 * Every echo is checked byte for byte against what was sent (each message
 * carries its connection and sequence number); a wrong or extra byte, an
 * early end of file, a failed connect or handshake prints a reason (and
 * OpenSSL's error queue) and exits 1, so a broken server fails instead of
 * reporting a fast time.
 */
#include "../echo/load.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <signal.h>
#include <sys/socket.h>

enum { CONNECTING, HANDSHAKE, RUNNING };

typedef struct {
  uv_poll_t poll;
  int fd;
  int events;                  /* what the poll watches now */
  int state;
  int id;
  int sending;                 /* the message waits to be written */
  SSL *ssl;
  uint64_t seq;
  uint64_t sent_at;            /* uv_hrtime of the last send */
  size_t got;                  /* bytes of the echo received so far */
  char out[MSG_SIZE];
  char in[2 * MSG_SIZE];       /* room to notice an over-long echo */
} conn;

static SSL_CTX *ctx;
static conn *conns;
static int started, running;

/* ---------------------------------------------------------------- ping-pong */

static void on_poll(uv_poll_t *p, int status, int events);

/* Watches for 'events', touching the poll only when they change. */
static void want(conn *c, int events) {
  if (c->events == events) return;
  c->events = events;
  int r = uv_poll_start(&c->poll, events, on_poll);
  if (r < 0) fail("poll on connection %d: %s", c->id, uv_strerror(r));
}

/* What to wait for after an OpenSSL call on 'c' failed with 'r'. */
static int wait_for(conn *c, int r, const char *what) {
  int e = SSL_get_error(c->ssl, r);
  if (e == SSL_ERROR_WANT_READ) return UV_READABLE;
  if (e == SSL_ERROR_WANT_WRITE) return UV_WRITABLE;
  if (e == SSL_ERROR_ZERO_RETURN || (e == SSL_ERROR_SYSCALL && errno == 0))
    fail("%s on connection %d: end of file (the server closed it?)", what, c->id);
  const char *why = ERR_reason_error_string(ERR_peek_error());
  fail("%s on connection %d: OpenSSL error %d (%s)", what, c->id, e,
       e == SSL_ERROR_SYSCALL ? strerror(errno) : why ? why : "no reason given");
}

static void send_msg(conn *c) {
  c->seq++;
  memcpy(c->out, &c->id, sizeof c->id);
  memcpy(c->out + 8, &c->seq, sizeof c->seq);
  c->got = 0;
  c->sending = 1;
  c->sent_at = uv_hrtime();
}

/* A whole echo is in: checked, counted, and the next message queued. */
static void received(conn *c) {
  if (c->got > MSG_SIZE)
    fail("connection %d: %zu bytes came back for a %d-byte message", c->id,
         c->got, MSG_SIZE);
  if (memcmp(c->in, c->out, MSG_SIZE) != 0)
    fail("connection %d: the echo of message %" PRIu64 " differs from it",
         c->id, c->seq);
  round_trip(c->id, c->sent_at);
  send_msg(c);
}

static void start_connect(void);

static void handshaken(conn *c) {
  c->state = RUNNING;
  connected++;
  start_connect();
  if (connected < nconns) return;
  /* Everyone is connected: the ping-pong starts on every connection at
   * once, and the warm-up runs before the window opens. */
  running = 1;
  for (int i = 0; i < nconns; i++) {
    send_msg(&conns[i]);
    uv_poll_t *p = &conns[i].poll;
    if (&conns[i] != c) on_poll(p, 0, UV_WRITABLE);
  }
  load_ready();
}

/* Runs connection 'c' as far as it goes without waiting. */
static void drive(conn *c) {
  int r;
  if (c->state == HANDSHAKE) {
    r = SSL_do_handshake(c->ssl);
    if (r != 1) {
      want(c, wait_for(c, r, "handshake"));
      return;
    }
    handshaken(c);
    if (!running) {
      /* Waits for the others; reads what comes meanwhile (the server's
       * post-handshake messages of TLS 1.3). */
      want(c, UV_READABLE);
      return;
    }
  }
  for (;;) {
    if (c->sending) {
      r = SSL_write(c->ssl, c->out, MSG_SIZE);
      if (r <= 0) {
        want(c, wait_for(c, r, "write"));
        return;
      }
      c->sending = 0;
      want(c, UV_READABLE);
      if (!SSL_has_pending(c->ssl)) return;
    }
    r = SSL_read(c->ssl, c->in + c->got, (int)(sizeof c->in - c->got));
    if (r <= 0) {
      want(c, wait_for(c, r, "read"));
      return;
    }
    if (!running) fail("connection %d: data before any message was sent", c->id);
    c->got += (size_t)r;
    if (c->got >= MSG_SIZE) received(c);
    else if (!SSL_has_pending(c->ssl)) return;
  }
}

static void on_poll(uv_poll_t *p, int status, int events) {
  conn *c = p->data;
  (void)events;
  if (status < 0) fail("poll on connection %d: %s", c->id, uv_strerror(status));
  if (c->state == CONNECTING) {
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
    if (err != 0) fail("connect %d: %s", c->id, strerror(err));
    c->state = HANDSHAKE;
  }
  drive(c);
}

static void start_connect(void) {
  if (started >= nconns) return;
  conn *c = &conns[started];
  c->id = started++;
  c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (c->fd < 0) fail("socket: %s", strerror(errno));
  int on = 1;
  setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
  c->ssl = SSL_new(ctx);
  if (c->ssl == NULL || SSL_set_fd(c->ssl, c->fd) != 1)
    fail("connection %d: SSL_new", c->id);
  SSL_set_connect_state(c->ssl);
  if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl), load_host) != 1)
    fail("connection %d: %s is not an IP address", c->id, load_host);
  int r = uv_poll_init_socket(loop, &c->poll, c->fd);
  if (r < 0) fail("poll %d: %s", c->id, uv_strerror(r));
  c->poll.data = c;
  if (connect(c->fd, (const struct sockaddr *)&server_addr, sizeof server_addr) != 0 &&
      errno != EINPROGRESS)
    fail("connect %d: %s", c->id, strerror(errno));
  c->state = CONNECTING;
  want(c, UV_WRITABLE);
}

/* ---------------------------------------------------------------- main */

static void print_tls(void) {
  printf(" proto=%s cipher=%s", SSL_get_version(conns[0].ssl),
         SSL_get_cipher_name(conns[0].ssl));
}

static void print_ssl_errors(void) { ERR_print_errors_fp(stderr); }

int main(int argc, char **argv) {
  load_name = "tls-client";
  load_fields = print_tls;
  load_on_fail = print_ssl_errors;
  load_init(argc, argv, "CA");
  signal(SIGPIPE, SIG_IGN);

  ctx = SSL_CTX_new(TLS_client_method());
  if (ctx == NULL) fail("SSL_CTX_new");
  if (SSL_CTX_load_verify_locations(ctx, argv[7], NULL) != 1)
    fail("cannot load the CA file %s", argv[7]);
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
  SSL_CTX_set_read_ahead(ctx, 1);

  conns = calloc((size_t)nconns, sizeof *conns);
  if (conns == NULL) fail("out of memory");
  load_run(start_connect);
}
