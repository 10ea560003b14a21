/* echo client: the load generator of the echo benchmark, on one libuv loop.
 *
 *   usage: echo-client HOST PORT CONNS SECONDS WARMUP SERVER_PID
 *   prints: conns=C size=100 seconds=S messages=M p50_us=.. p99_us=..
 *           server_cpu_s=.. client_cpu_s=.. conn_min=.. conn_max=..
 *           cpu_clock=.. errors=0
 *
 * Opens CONNS TCP connections to HOST:PORT, then every connection
 * ping-pongs one 100-byte message: send it, wait for the same 100 bytes
 * back, send the next. A round trip's latency runs from just before the
 * send to the read that completes the echo. The arguments, the connect
 * batches and deadline, the warm-up, the measured window, the clocks, the
 * latency histogram and the line printed are load.h's, shared with
 * bench/ws/client.c and bench/tls/client.c.
 *
 * Every echo is checked byte for byte against what was sent (each message
 * carries its connection and sequence number); a wrong or extra byte, an
 * early end of file or a failed connect prints a reason and exits 1, so a
 * broken server fails instead of reporting a fast time.
 */
#include "load.h"

typedef struct {
  uv_tcp_t tcp;
  uv_connect_t connect;
  uv_write_t write;
  int id;
  uint64_t seq;
  uint64_t sent_at;            /* uv_hrtime of the last send */
  size_t got;                  /* bytes of the echo received so far */
  char out[MSG_SIZE];
  char in[2 * MSG_SIZE];       /* room to notice an over-long echo */
} conn;

static conn *conns;
static int started;

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
  round_trip(c->id, c->sent_at);
  send_msg(c);
}

/* ---------------------------------------------------------------- connecting */

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
  load_ready();
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

int main(int argc, char **argv) {
  load_name = "echo-client";
  load_init(argc, argv, NULL);
  conns = calloc((size_t)nconns, sizeof *conns);
  if (conns == NULL) fail("out of memory");
  load_run(start_connect);
}
