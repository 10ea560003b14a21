/* load.h: what the load clients of echo and ws share: failing with a
 * reason, the CPU time of the server process and of this one, and the
 * latency histogram. A header of static functions, included by one .c
 * file each (bench/echo/client.c, bench/ws/client.c).
 *
 * Before anything here runs, the client sets load_name (its name, for the
 * messages), server_pid, and calls load_init().
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

/* Latency histogram: 1 us buckets below 100 ms, 100 us buckets from there
 * to 10 s; anything longer lands in the last bucket. */
#define FINE_US 100000
#define COARSE_STEP_US 100
#define COARSE_BUCKETS ((10000000 - FINE_US) / COARSE_STEP_US)
#define BUCKETS (FINE_US + COARSE_BUCKETS)

static const char *load_name = "client";
static uint64_t messages;      /* round trips recorded */
static uint64_t *hist;
static pid_t server_pid;
static clockid_t server_clock;
static int have_server_clock;

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void fail(const char *fmt, ...) {
  va_list ap;
  fprintf(stderr, "%s: ", load_name);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
  exit(1);
}

/* ---------------------------------------------------------------- clocks */

/* The server's CPU time (user + sys, every thread) in seconds: its process
 * CPU-time clock when the kernel gives one (cpu_clock=cpuclock,
 * nanoseconds), else /proc/PID/stat utime + stime (cpu_clock=proc, clock
 * ticks). */
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

static const char *server_clock_name(void) {
  return have_server_clock ? "cpuclock" : "proc";
}

static double self_cpu(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
         (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* Picks the server's clock, checks that it can be read, and allocates the
 * histogram. */
static void load_init(void) {
  have_server_clock = clock_getcpuclockid(server_pid, &server_clock) == 0;
  (void)server_cpu();  /* fails now if the server cannot be sampled */
  hist = calloc(BUCKETS, sizeof *hist);
  if (hist == NULL) fail("out of memory");
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
  messages++;
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

#endif
