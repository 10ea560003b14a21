/* soak client: TCP echo at CONNS connections, a tenth of them vanishing
 * mid-message every second and connecting again.
 *
 *   usage: soak-churn HOST PORT CONNS SECONDS
 *   prints, every 10 s and at the end:
 *     t=S messages=M vanished=V reconnects=R errors=E
 *
 * Each connection sends 100 bytes, reads them back and sends again.  Once
 * a second a tenth of the connections, picked at random, are marked: at
 * its next send a marked one writes half a message, then closes with
 * SO_LINGER 0 (the kernel sends RST, as a client whose process died or
 * whose network went does), and a new connection takes its place.  An
 * error (a refused connect, a reset the client did not cause) is counted
 * and the slot connects again after 100 ms.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <uv.h>

#define MSG 100

typedef struct conn {
  uv_tcp_t tcp;
  uv_connect_t creq;
  uv_write_t wreq;
  uv_timer_t retry;
  int got;            /* bytes of the echo received */
  int vanish;         /* marked: half a message, then RST */
  int live;
  char rbuf[MSG * 2];
} conn;

static uv_loop_t *loop;
static struct sockaddr_in addr;
static conn *conns;
static int nconns;
static double seconds;
static unsigned long long messages, vanished, reconnects, errors;
static uint64_t t0;
static char msg[MSG];

static void start(conn *c);

static void on_closed(uv_handle_t *h) {
  conn *c = h->data;
  reconnects++;
  start(c);
}

static void retry_cb(uv_timer_t *t);

static void on_closed_later(uv_handle_t *h) {
  conn *c = h->data;
  uv_timer_start(&c->retry, retry_cb, 100, 0);
}

static void retry_cb(uv_timer_t *t) { start(t->data); }

static void fail(conn *c) {
  errors++;
  c->live = 0;
  uv_read_stop((uv_stream_t *)&c->tcp);
  uv_close((uv_handle_t *)&c->tcp, on_closed_later);
}

static void send_msg(conn *c);

static void on_write(uv_write_t *w, int status) {
  conn *c = w->data;
  if (!c->live) return;
  if (status < 0) { fail(c); return; }
  if (c->vanish) {  /* half a message went: now the reset */
    uv_os_fd_t fd;
    struct linger l = {1, 0};
    c->vanish = 0;
    c->live = 0;
    vanished++;
    if (uv_fileno((uv_handle_t *)&c->tcp, &fd) == 0)
      setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    uv_read_stop((uv_stream_t *)&c->tcp);
    uv_close((uv_handle_t *)&c->tcp, on_closed);
  }
}

static void send_msg(conn *c) {
  uv_buf_t b = uv_buf_init(msg, c->vanish ? MSG / 2 : MSG);
  c->got = 0;
  c->wreq.data = c;
  if (uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &b, 1, on_write) < 0)
    fail(c);
}

static void on_alloc(uv_handle_t *h, size_t sz, uv_buf_t *b) {
  conn *c = h->data;
  (void)sz;
  *b = uv_buf_init(c->rbuf, sizeof c->rbuf);
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b) {
  conn *c = s->data;
  (void)b;
  if (!c->live) return;
  if (n < 0) { fail(c); return; }
  c->got += (int)n;
  if (c->got >= MSG) {
    messages++;
    send_msg(c);
  }
}

static void on_connect(uv_connect_t *r, int status) {
  conn *c = r->data;
  if (status < 0) { fail(c); return; }
  uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
  send_msg(c);
}

static void start(conn *c) {
  uv_tcp_init(loop, &c->tcp);
  c->tcp.data = c;
  c->creq.data = c;
  c->live = 1;
  c->vanish = 0;
  if (uv_tcp_connect(&c->creq, &c->tcp, (struct sockaddr *)&addr,
                     on_connect) < 0)
    fail(c);
}

static void report(void) {
  printf("t=%.0f messages=%llu vanished=%llu reconnects=%llu errors=%llu\n",
         (double)(uv_now(loop) - t0) / 1000, messages, vanished, reconnects,
         errors);
  fflush(stdout);
}

static void tick(uv_timer_t *t) {
  static int n;
  int i;
  if ((double)(uv_now(loop) - t0) >= seconds * 1000) {
    report();
    exit(0);  /* the OS closes every socket */
  }
  for (i = 0; i < nconns / 10; i++) conns[rand() % nconns].vanish = 1;
  if (++n % 10 == 0) report();
  (void)t;
}

int main(int argc, char **argv) {
  uv_timer_t timer;
  int i;
  if (argc != 5) {
    fprintf(stderr, "usage: soak-churn HOST PORT CONNS SECONDS\n");
    return 2;
  }
  loop = uv_default_loop();
  if (uv_ip4_addr(argv[1], atoi(argv[2]), &addr) != 0) {
    fprintf(stderr, "soak-churn: bad address %s\n", argv[1]);
    return 2;
  }
  nconns = atoi(argv[3]);
  seconds = atof(argv[4]);
  memset(msg, 'x', sizeof msg);
  conns = calloc((size_t)nconns, sizeof *conns);
  if (conns == NULL) return 1;
  srand(1);
  t0 = uv_now(loop);
  for (i = 0; i < nconns; i++) {
    uv_timer_init(loop, &conns[i].retry);
    conns[i].retry.data = &conns[i];
    start(&conns[i]);
  }
  uv_timer_init(loop, &timer);
  uv_timer_start(&timer, tick, 1000, 1000);
  return uv_run(loop, UV_RUN_DEFAULT);
}
