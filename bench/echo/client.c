/* echo client: the load generator of the echo benchmark, on one libuv loop.
 *
 *   usage: echo-client HOST PORT CONNS SECONDS WARMUP SERVER_PID
 *   prints: conns=C size=100 seconds=S messages=M p50_us=.. p99_us=..
 *           server_cpu_s=.. client_cpu_s=.. conn_min=.. conn_max=..
 *           cpu_clock=.. errors=0
 *
 * Opens CONNS TCP connections to HOST:PORT (at most CONNECT_BATCH
 * connects in flight, so a small listen backlog cannot drop any), then
 * every connection ping-pongs one 100-byte message: send it, wait for the
 * same 100 bytes back, send the next. After WARMUP seconds the measured
 * window opens and lasts SECONDS; then the line above is printed and the
 * process exits (the kernel closes the connections). The window closes on
 * time even when the server has stopped answering; a server that does not
 * take all the connections within 30 s fails the run.
 *
 * In the window it counts the round trips that complete, records each
 * one's latency (uv_hrtime from just before the send to the read that
 * completes the echo) in a fixed histogram, and samples the CPU time
 * (user + sys, all threads) of the server process SERVER_PID at the
 * window's two ends: its process CPU-time clock when the kernel gives one
 * (cpu_clock=cpuclock, nanoseconds), else /proc/PID/stat utime + stime
 * (cpu_clock=proc, clock ticks). client_cpu_s is this process's own CPU
 * time over the window: near 1 core means the client, not the server,
 * bounded the rate. conn_min and conn_max are the fewest and most round
 * trips one connection completed in the window (fairness).
 *
 * Every echo is checked byte for byte against what was sent (each message
 * carries its connection and sequence number); a wrong or extra byte, an
 * early end of file or a failed connect prints a reason and exits 1, so a
 * broken server fails instead of reporting a fast time.
 *
 * The clocks and the histogram are in load.h, shared with
 * bench/ws/client.c.
 */
#include "load.h"

#include <uv.h>

#define MSG_SIZE 100
#define CONNECT_BATCH 32
#define CONNECT_DEADLINE_MS 30000  /* for all of them to be up */

typedef struct {
  uv_tcp_t tcp;
  uv_connect_t connect;
  uv_write_t write;
  int id;
  uint64_t seq;
  uint64_t sent_at;            /* uv_hrtime of the last send */
  size_t got;                  /* bytes of the echo received so far */
  uint64_t in_window;          /* round trips completed in the window */
  char out[MSG_SIZE];
  char in[2 * MSG_SIZE];       /* room to notice an over-long echo */
} conn;

static uv_loop_t *loop;
static conn *conns;
static int nconns, started, connected;
static int measuring;

/* ---------------------------------------------------------------- ping-pong */

static void on_write(uv_write_t *req, int status) {
  conn *c = req->data;
  if (status < 0) fail("write on connection %d: %s", c->id, uv_strerror(status));
}

static void send_msg(conn *c) {
  c->seq++;
  memcpy(c->out, &c->id, sizeof c->id);
  memcpy(c->out + 8, &c->seq, sizeof c->seq);
  c->got = 0;
  c->sent_at = uv_hrtime();
  uv_buf_t buf = uv_buf_init(c->out, MSG_SIZE);
  int n = uv_try_write((uv_stream_t *)&c->tcp, &buf, 1);
  if (n == MSG_SIZE) return;
  if (n < 0 && n != UV_EAGAIN)
    fail("write on connection %d: %s", c->id, uv_strerror(n));
  if (n < 0) n = 0;
  /* The kernel took part of it (or none): queue the rest. Only one message
   * is ever in flight per connection, so one request per connection does. */
  buf = uv_buf_init(c->out + n, (unsigned)(MSG_SIZE - n));
  c->write.data = c;
  int r = uv_write(&c->write, (uv_stream_t *)&c->tcp, &buf, 1, on_write);
  if (r < 0) fail("write on connection %d: %s", c->id, uv_strerror(r));
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  conn *c = h->data;
  (void)suggested;
  *buf = uv_buf_init(c->in + c->got, (unsigned)(sizeof c->in - c->got));
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  conn *c = s->data;
  (void)buf;
  if (nread == 0) return;
  if (nread < 0)
    fail("read on connection %d: %s (the server closed it?)", c->id,
         uv_strerror((int)nread));
  c->got += (size_t)nread;
  if (c->got < MSG_SIZE) return;
  if (c->got > MSG_SIZE)
    fail("connection %d: %zu bytes came back for a %d-byte message", c->id,
         c->got, MSG_SIZE);
  if (memcmp(c->in, c->out, MSG_SIZE) != 0)
    fail("connection %d: the echo of message %" PRIu64 " differs from it",
         c->id, c->seq);
  if (measuring) {
    record(uv_hrtime() - c->sent_at);
    c->in_window++;
  }
  send_msg(c);
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
         " conn_max=%" PRIu64 " cpu_clock=%s errors=0\n",
         nconns, MSG_SIZE, t_close - t_open, messages, percentile(0.50),
         percentile(0.99), cpu_close - cpu_open, self_close - self_open, lo,
         hi, server_clock_name());
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

static void start_connect(void);

static void on_connect(uv_connect_t *req, int status) {
  conn *c = req->data;
  if (status < 0)
    fail("connect %d: %s", c->id, uv_strerror(status));
  uv_tcp_nodelay(&c->tcp, 1);
  int r = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
  if (r < 0) fail("read_start %d: %s", c->id, uv_strerror(r));
  connected++;
  start_connect();
  if (connected < nconns) return;
  /* Everyone is connected: the ping-pong starts on every connection at
   * once, and the warm-up runs before the window opens. */
  for (int i = 0; i < nconns; i++) send_msg(&conns[i]);
}

static struct sockaddr_in server_addr;

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

static void on_warm(uv_timer_t *t) { open_window(t); }

/* Starts the warm-up clock once the last connection is up. */
static uv_check_t wait_all;
static double warmup_s;

static void on_check(uv_check_t *h) {
  if (connected < nconns) return;
  uv_check_stop(h);
  uv_timer_start(&timer, on_warm, (uint64_t)(warmup_s * 1000 + 0.5), 0);
}

static void on_connect_deadline(uv_timer_t *t) {
  (void)t;
  fail("only %d of %d connections were up after %d s", connected, nconns,
       CONNECT_DEADLINE_MS / 1000);
}

int main(int argc, char **argv) {
  if (argc != 7) {
    fprintf(stderr,
            "usage: echo-client HOST PORT CONNS SECONDS WARMUP SERVER_PID\n");
    return 2;
  }
  load_name = "echo-client";
  const char *host = argv[1];
  int port = atoi(argv[2]);
  nconns = atoi(argv[3]);
  window_s = strtod(argv[4], NULL);
  warmup_s = strtod(argv[5], NULL);
  server_pid = (pid_t)atoi(argv[6]);
  if (nconns <= 0 || window_s <= 0 || warmup_s < 0 || server_pid <= 0)
    fail("bad arguments");
  if (uv_ip4_addr(host, port, &server_addr) != 0) fail("bad address %s", host);
  load_init();

  conns = calloc((size_t)nconns, sizeof *conns);
  if (conns == NULL) fail("out of memory");

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
