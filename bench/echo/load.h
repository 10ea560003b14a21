/* load.h: what the load clients of echo, ws and tls share (a header of
 * static functions, included by one .c file each: bench/echo/client.c,
 * bench/ws/client.c, bench/tls/client.c). Each client only opens its
 * connections and runs its ping-pong; this file does the rest:
 *
 *   usage: NAME HOST PORT CONNS SECONDS WARMUP SERVER_PID[,PID...] [MORE]
 *   prints: conns=C size=100 seconds=.. messages=M p50_us=.. p99_us=..
 *           server_cpu_s=.. client_cpu_s=.. conn_min=.. conn_max=..
 *           cpu_clock=.. [the client's own fields] errors=0
 *
 * load_init() reads and checks the arguments (MORE is the tls client's CA
 * file). load_run() arms a 30 s deadline for all CONNS connections to be
 * up, starts the first CONNECT_BATCH connects (each connection that comes
 * up starts the next one, so a small listen backlog drops none) and runs
 * the loop. Once every connection is up the client starts its ping-pong
 * and calls load_ready(): after WARMUP seconds the measured window opens
 * and lasts SECONDS; it closes on time even when the server has stopped
 * answering, the line above is printed and the process exits (the kernel
 * closes the connections).
 *
 * In the window, round_trip() counts each round trip that completes and
 * records its latency (from uv_hrtime just before the send) in a fixed
 * histogram, which gives p50_us and p99_us. The CPU time (user + sys, all
 * threads) of the server process SERVER_PID is sampled at the window's two
 * ends: its process CPU-time clock when the kernel gives one
 * (cpu_clock=cpuclock, nanoseconds), else /proc/PID/stat utime + stime
 * (cpu_clock=proc, clock ticks). SERVER_PID may be a comma-separated list
 * (a server of several processes: bench/run's prefork), whose CPU times
 * are summed. client_cpu_s is this process's own CPU
 * time over the window: near 1 core means the client, not the server,
 * bounded the rate. conn_min and conn_max are the fewest and most round
 * trips one connection completed in the window (fairness). A window
 * without a round trip fails the run.
 *
 * fail() prints "NAME: reason" and exits 1; bench/run reports that last
 * line. Before load_init() the client sets load_name, and where it has
 * them load_fields (prints its own fields, each with a leading space) and
 * load_on_fail (prints more after a failure's reason). Every client's
 * message is MSG_SIZE bytes.
 */
#ifndef BENCH_LOAD_H
#define BENCH_LOAD_H

#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#define MSG_SIZE 100               /* bench/run's ECHO_SIZE */
#define CONNECT_BATCH 32
#define CONNECT_DEADLINE_MS 30000  /* for all of them to be up */

/* Latency histogram: 1 us buckets below 100 ms, 100 us buckets from there
 * to 10 s; anything longer lands in the last bucket. */
#define FINE_US 100000
#define COARSE_STEP_US 100
#define COARSE_BUCKETS ((10000000 - FINE_US) / COARSE_STEP_US)
#define BUCKETS (FINE_US + COARSE_BUCKETS)

/* Set by the client. */
static const char *load_name = "client";
static void (*load_fields)(void);
static void (*load_on_fail)(void);

/* Set by load_init(); connected is the client's count of connections up. */
static uv_loop_t *loop;
static const char *load_host;
static int load_port;
static struct sockaddr_in server_addr;
static int nconns, connected;

static double window_s, warmup_s;
#define MAX_SERVER_PIDS 64
static pid_t server_pids[MAX_SERVER_PIDS];
static clockid_t server_clocks[MAX_SERVER_PIDS];
static int have_server_clock;  /* every pid has its clock */
static int nserver_pids;
static uv_timer_t timer;
static int measuring;
static uint64_t messages;      /* round trips recorded */
static uint64_t *hist;
static uint64_t *in_window;    /* round trips per connection */
static double t_open, cpu_open, self_open;

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void fail(const char *fmt, ...) {
  va_list ap;
  fprintf(stderr, "%s: ", load_name);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
  if (load_on_fail) load_on_fail();
  exit(1);
}

/* ---------------------------------------------------------------- clocks */

/* The CPU time (user + sys, every thread) of process 'server_pid' (its
 * clock 'server_clock' when have_server_clock), in seconds. */
static double process_cpu(pid_t server_pid, clockid_t server_clock) {
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

/* The server's CPU time: the sum over its processes. */
static double server_cpu(void) {
  double total = 0;
  for (int i = 0; i < nserver_pids; i++)
    total += process_cpu(server_pids[i], server_clocks[i]);
  return total;
}

static double self_cpu(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
         (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static double now_s(void) { return (double)uv_hrtime() / 1e9; }

/* ---------------------------------------------------------------- latency */

/* Connection 'id' got the whole echo of the message it sent at uv_hrtime
 * 'sent_at': counted and recorded if the window is open. */
static void round_trip(int id, uint64_t sent_at) {
  if (!measuring) return;
  uint64_t us = (uv_hrtime() - sent_at) / 1000;
  size_t i;
  if (us < FINE_US) i = (size_t)us;
  else {
    uint64_t c = (us - FINE_US) / COARSE_STEP_US;
    i = FINE_US + (size_t)(c < COARSE_BUCKETS ? c : COARSE_BUCKETS - 1);
  }
  hist[i]++;
  messages++;
  in_window[id]++;
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

/* ---------------------------------------------------------------- window */

static void close_window(uv_timer_t *t) {
  double t_close = now_s();
  double cpu_close = server_cpu();
  double self_close = self_cpu();
  measuring = 0;
  uv_timer_stop(t);

  uint64_t lo = UINT64_MAX, hi = 0;
  for (int i = 0; i < nconns; i++) {
    if (in_window[i] < lo) lo = in_window[i];
    if (in_window[i] > hi) hi = in_window[i];
  }
  if (messages == 0) fail("no round trip completed in the window");
  printf("conns=%d size=%d seconds=%.6f messages=%" PRIu64
         " p50_us=%" PRIu64 " p99_us=%" PRIu64
         " server_cpu_s=%.6f client_cpu_s=%.6f conn_min=%" PRIu64
         " conn_max=%" PRIu64 " cpu_clock=%s",
         nconns, MSG_SIZE, t_close - t_open, messages, percentile(0.50),
         percentile(0.99), cpu_close - cpu_open, self_close - self_open, lo,
         hi, have_server_clock ? "cpuclock" : "proc");
  if (load_fields) load_fields();
  printf(" errors=0\n");
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

/* Every connection is up and its ping-pong started: the warm-up runs
 * before the window opens. */
static void load_ready(void) {
  uv_timer_stop(&timer);
  uv_timer_start(&timer, open_window, (uint64_t)(warmup_s * 1000 + 0.5), 0);
}

/* ---------------------------------------------------------------- running */

/* Reads HOST PORT CONNS SECONDS WARMUP SERVER_PID and, when 'more' names
 * one, an argument after them (left in argv[7]); exits 2 with the usage
 * on a wrong count. Checks that the server can be sampled. */
static void load_init(int argc, char **argv, const char *more) {
  if (argc != (more ? 8 : 7)) {
    fprintf(stderr,
            "usage: %s HOST PORT CONNS SECONDS WARMUP SERVER_PID%s%s\n",
            load_name, more ? " " : "", more ? more : "");
    exit(2);
  }
  load_host = argv[1];
  load_port = atoi(argv[2]);
  nconns = atoi(argv[3]);
  window_s = strtod(argv[4], NULL);
  warmup_s = strtod(argv[5], NULL);
  for (const char *p = argv[6];;) {
    char *end;
    if (nserver_pids == MAX_SERVER_PIDS)
      fail("more than %d server pids", MAX_SERVER_PIDS);
    long pid = strtol(p, &end, 10);
    if (pid <= 0 || end == p || (*end != ',' && *end != '\0'))
      fail("bad server pid list '%s'", argv[6]);
    server_pids[nserver_pids++] = (pid_t)pid;
    if (*end == '\0') break;
    p = end + 1;
  }
  if (nconns <= 0 || window_s <= 0 || warmup_s < 0)
    fail("bad arguments");
  if (uv_ip4_addr(load_host, load_port, &server_addr) != 0)
    fail("bad address %s", load_host);
  have_server_clock = 1;
  for (int i = 0; i < nserver_pids; i++)
    if (clock_getcpuclockid(server_pids[i], &server_clocks[i]) != 0)
      have_server_clock = 0;
  (void)server_cpu();  /* fails now if the server cannot be sampled */
  hist = calloc(BUCKETS, sizeof *hist);
  in_window = calloc((size_t)nconns, sizeof *in_window);
  if (hist == NULL || in_window == NULL) fail("out of memory");
  loop = uv_default_loop();
}

static void on_connect_deadline(uv_timer_t *t) {
  (void)t;
  fail("only %d of %d connections were up after %d s", connected, nconns,
       CONNECT_DEADLINE_MS / 1000);
}

/* Starts the first connects with 'start_connect' (which does nothing once
 * CONNS have been started) and runs the loop until the window closes. */
static void load_run(void (*start_connect)(void)) __attribute__((noreturn));

static void load_run(void (*start_connect)(void)) {
  uv_timer_init(loop, &timer);
  /* Armed until the warm-up timer takes its place. */
  uv_timer_start(&timer, on_connect_deadline, CONNECT_DEADLINE_MS, 0);
  for (int i = 0; i < CONNECT_BATCH; i++) start_connect();
  uv_run(loop, UV_RUN_DEFAULT);
  fail("the loop ended before the window closed");
}

#endif
