/* tls client: the load generator of the tls benchmark, OpenSSL on
 * non-blocking sockets polled by one libuv loop.
 *
 *   usage: tls-client HOST PORT CONNS SECONDS WARMUP SERVER_PID CA
 *   prints: conns=C size=100 seconds=S messages=M p50_us=.. p99_us=..
 *           server_cpu_s=.. client_cpu_s=.. conn_min=.. conn_max=..
 *           cpu_clock=.. proto=.. cipher=.. errors=0
 *
 * bench/echo/client.c over TLS: it opens CONNS TCP connections to
 * HOST:PORT (at most CONNECT_BATCH connects and handshakes in flight), and
 * makes each a TLS client (OpenSSL's defaults, so TLS 1.3 here) that
 * checks the server's certificate against CA, the PEM file of the
 * self-signed certificate bench/run made, and for the address HOST. Once
 * all are up, every connection ping-pongs one 100-byte message: send it,
 * wait for the same 100 bytes back, send the next. After WARMUP seconds
 * the measured window opens and lasts SECONDS; then the line above is
 * printed and the process exits (the kernel closes the connections). The
 * window closes on time even when the server has stopped answering; a
 * server that does not take all the connections and finish their
 * handshakes within 30 s fails the run.
 *
 * In the window it counts the round trips that complete, records each
 * one's latency (uv_hrtime from just before the SSL_write to the SSL_read
 * that completes the echo) in a fixed histogram, and samples the CPU time
 * (user + sys, all threads) of the server process SERVER_PID at the
 * window's two ends: its process CPU-time clock when the kernel gives one
 * (cpu_clock=cpuclock), else /proc/PID/stat utime + stime
 * (cpu_clock=proc). client_cpu_s is this process's own CPU time over the
 * window: near 1 core means the client, not the server, bounded the rate.
 * conn_min and conn_max are the fewest and most round trips one
 * connection completed in the window (fairness). proto and cipher are
 * what the first connection negotiated.
 *
 * OpenSSL reads the sockets itself with read-ahead on; a connection goes
 * back to its poll as soon as OpenSSL holds no more bytes
 * (SSL_has_pending), so it never asks for an EAGAIN: the same economy
 * as the floor server's (bench/tls/floor.c).
 *
 * Every echo is checked byte for byte against what was sent (each message
 * carries its connection and sequence number); a wrong or extra byte, an
 * early end of file, a failed connect or handshake prints a reason and
 * exits 1, so a broken server fails instead of reporting a fast time.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#define MSG_SIZE 100
#define CONNECT_BATCH 32
#define CONNECT_DEADLINE_MS 30000  /* for all of them to be up */

/* Latency histogram: 1 us buckets below 100 ms, 100 us buckets from there
 * to 10 s; anything longer lands in the last bucket. */
#define FINE_US 100000
#define COARSE_STEP_US 100
#define COARSE_BUCKETS ((10000000 - FINE_US) / COARSE_STEP_US)
#define BUCKETS (FINE_US + COARSE_BUCKETS)

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
  uint64_t in_window;          /* round trips completed in the window */
  char out[MSG_SIZE];
  char in[2 * MSG_SIZE];       /* room to notice an over-long echo */
} conn;

static uv_loop_t *loop;
static SSL_CTX *ctx;
static const char *host;
static conn *conns;
static int nconns, started, connected, running;
static int measuring;
static uint64_t messages;
static uint64_t *hist;
static pid_t server_pid;
static clockid_t server_clock;
static int have_server_clock;

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void fail(const char *fmt, ...) {
  va_list ap;
  fputs("tls-client: ", stderr);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
  ERR_print_errors_fp(stderr);
  exit(1);
}

/* ---------------------------------------------------------------- clocks */

/* The server's CPU time (user + sys, every thread) in seconds. */
static double server_cpu(void) {
  if (have_server_clock) {
    struct timespec ts;
    if (clock_gettime(server_clock, &ts) == 0)
      return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
    fail("cannot read the CPU clock of process %d: %s", (int)server_pid,
         strerror(errno));
  }
  char path[64], buf[4096];
  snprintf(path, sizeof path, "/proc/%d/stat", (int)server_pid);
  FILE *f = fopen(path, "r");
  if (f == NULL) fail("cannot open %s: %s", path, strerror(errno));
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = '\0';
  /* Fields 14 and 15 (utime, stime) count from the ')' that ends the
   * command name, which may itself hold spaces. */
  char *p = strrchr(buf, ')');
  unsigned long utime, stime;
  if (p == NULL ||
      sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
             &utime, &stime) != 2)
    fail("cannot parse %s", path);
  return (double)(utime + stime) / (double)sysconf(_SC_CLK_TCK);
}

static double self_cpu(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
         (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* ---------------------------------------------------------------- latency */

static void record(uint64_t ns) {
  uint64_t us = ns / 1000;
  size_t i;
  if (us < FINE_US) i = (size_t)us;
  else {
    uint64_t c = (us - FINE_US) / COARSE_STEP_US;
    i = FINE_US + (size_t)(c < COARSE_BUCKETS ? c : COARSE_BUCKETS - 1);
  }
  hist[i]++;
}

static uint64_t bucket_us(size_t i) {
  if (i < FINE_US) return i;
  return FINE_US + (uint64_t)(i - FINE_US) * COARSE_STEP_US;
}

/* The latency in us below which a fraction q of the round trips fell. */
static uint64_t percentile(double q) {
  uint64_t rank = (uint64_t)(q * (double)messages + 0.999999), seen = 0;
  if (rank == 0) rank = 1;
  for (size_t i = 0; i < BUCKETS; i++) {
    seen += hist[i];
    if (seen >= rank) return bucket_us(i);
  }
  return bucket_us(BUCKETS - 1);
}

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
  if (measuring) {
    record(uv_hrtime() - c->sent_at);
    messages++;
    c->in_window++;
  }
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

static struct sockaddr_in server_addr;

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
  if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl), host) != 1)
    fail("connection %d: %s is not an IP address", c->id, host);
  int r = uv_poll_init_socket(loop, &c->poll, c->fd);
  if (r < 0) fail("poll %d: %s", c->id, uv_strerror(r));
  c->poll.data = c;
  if (connect(c->fd, (const struct sockaddr *)&server_addr, sizeof server_addr) != 0 &&
      errno != EINPROGRESS)
    fail("connect %d: %s", c->id, strerror(errno));
  c->state = CONNECTING;
  want(c, UV_WRITABLE);
}

/* ---------------------------------------------------------------- phases */

static double t_open, cpu_open, self_open;
static uv_timer_t timer;
static double window_s;

static double now_s(void) { return (double)uv_hrtime() / 1e9; }

static void close_window(uv_timer_t *t) {
  double t_close = now_s();
  double cpu_close = server_cpu();
  double self_close = self_cpu();
  measuring = 0;
  uv_timer_stop(t);

  uint64_t lo = UINT64_MAX, hi = 0;
  for (int i = 0; i < nconns; i++) {
    if (conns[i].in_window < lo) lo = conns[i].in_window;
    if (conns[i].in_window > hi) hi = conns[i].in_window;
  }
  if (messages == 0) fail("no round trip completed in the window");
  printf("conns=%d size=%d seconds=%.6f messages=%" PRIu64
         " p50_us=%" PRIu64 " p99_us=%" PRIu64
         " server_cpu_s=%.6f client_cpu_s=%.6f conn_min=%" PRIu64
         " conn_max=%" PRIu64 " cpu_clock=%s proto=%s cipher=%s errors=0\n",
         nconns, MSG_SIZE, t_close - t_open, messages, percentile(0.50),
         percentile(0.99), cpu_close - cpu_open, self_close - self_open, lo,
         hi, have_server_clock ? "cpuclock" : "proc",
         SSL_get_version(conns[0].ssl), SSL_get_cipher_name(conns[0].ssl));
  fflush(stdout);
  /* The connections go with the process; the server sees them end. */
  _exit(0);
}

static void open_window(uv_timer_t *t) {
  cpu_open = server_cpu();
  self_open = self_cpu();
  t_open = now_s();
  measuring = 1;
  uv_timer_start(t, close_window, (uint64_t)(window_s * 1000 + 0.5), 0);
}

static void on_warm(uv_timer_t *t) { open_window(t); }

/* Starts the warm-up clock once the last connection is up. */
static uv_check_t wait_all;
static double warmup_s;

static void on_check(uv_check_t *h) {
  if (!running) return;
  uv_check_stop(h);
  uv_timer_start(&timer, on_warm, (uint64_t)(warmup_s * 1000 + 0.5), 0);
}

static void on_connect_deadline(uv_timer_t *t) {
  (void)t;
  fail("only %d of %d connections were up after %d s", connected, nconns,
       CONNECT_DEADLINE_MS / 1000);
}

int main(int argc, char **argv) {
  if (argc != 8) {
    fprintf(stderr,
            "usage: tls-client HOST PORT CONNS SECONDS WARMUP SERVER_PID CA\n");
    return 2;
  }
  host = argv[1];
  int port = atoi(argv[2]);
  nconns = atoi(argv[3]);
  window_s = strtod(argv[4], NULL);
  warmup_s = strtod(argv[5], NULL);
  server_pid = (pid_t)atoi(argv[6]);
  if (nconns <= 0 || window_s <= 0 || warmup_s < 0 || server_pid <= 0)
    fail("bad arguments");
  if (uv_ip4_addr(host, port, &server_addr) != 0) fail("bad address %s", host);
  have_server_clock = clock_getcpuclockid(server_pid, &server_clock) == 0;
  (void)server_cpu();  /* fails now if the server cannot be sampled */
  signal(SIGPIPE, SIG_IGN);

  ctx = SSL_CTX_new(TLS_client_method());
  if (ctx == NULL) fail("SSL_CTX_new");
  if (SSL_CTX_load_verify_locations(ctx, argv[7], NULL) != 1)
    fail("cannot load the CA file %s", argv[7]);
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
  SSL_CTX_set_read_ahead(ctx, 1);

  conns = calloc((size_t)nconns, sizeof *conns);
  hist = calloc(BUCKETS, sizeof *hist);
  if (conns == NULL || hist == NULL) fail("out of memory");

  loop = uv_default_loop();
  uv_timer_init(loop, &timer);
  /* Armed until the warm-up timer takes its place. */
  uv_timer_start(&timer, on_connect_deadline, CONNECT_DEADLINE_MS, 0);
  uv_check_init(loop, &wait_all);
  uv_check_start(&wait_all, on_check);
  for (int i = 0; i < CONNECT_BATCH; i++) start_connect();
  uv_run(loop, UV_RUN_DEFAULT);
  fail("the loop ended before the window closed");
}
