/* idle client: the connections of the idle benchmark, plain non-blocking
 * sockets on one epoll set.
 *
 *   usage: idle-client HOST PORT CONNS
 *   prints: conns=C sources=S seconds=T     (once all C are connected)
 *
 * Opens CONNS TCP connections to HOST:PORT, at most INFLIGHT connects at a
 * time, so no listen backlog overflows. One source address holds at most
 * PER_SOURCE connections (the ephemeral ports of one address towards one
 * server port run out near 28,000): connection i binds 127.0.0.(2 + i /
 * PER_SOURCE) before it connects, with IP_BIND_ADDRESS_NO_PORT, so the
 * kernel picks the port at connect time for the whole 4-tuple. Once all
 * are up it prints its line and then holds them, sending nothing, until it
 * is killed. The open files limit is raised to CONNS + 64 (up to the hard
 * limit; root may raise that too).
 *
 * A failed connect, a connection the server closes or resets, or not
 * having all of them up within CONNECT_DEADLINE seconds prints a reason and
 * exits 1, so a server that drops connections fails the run.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

#define INFLIGHT 256
#ifndef PER_SOURCE
#define PER_SOURCE 10000
#endif
#define CONNECT_DEADLINE 120

static void fail(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("idle-client: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  exit(1);
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void raise_fd_limit(long conns) {
  struct rlimit rl;
  rlim_t need = (rlim_t)conns + 64;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= need) return;
  if (rl.rlim_max < need) {
    struct rlimit up = {need, need};
    if (setrlimit(RLIMIT_NOFILE, &up) == 0) return;
    fail("open files limit %lu (hard) < %lu needed",
         (unsigned long)rl.rlim_max, (unsigned long)need);
  }
  rl.rlim_cur = need;
  if (setrlimit(RLIMIT_NOFILE, &rl) != 0) fail("setrlimit: %s", strerror(errno));
}

/* Starts connect number i; the socket goes in the epoll set, its index as
 * the event's data. */
static void start(int ep, long i, const struct sockaddr_in *to) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int one = 1;
  struct sockaddr_in from;
  struct epoll_event ev;
  if (fd < 0) fail("socket for connection %ld: %s", i, strerror(errno));
  memset(&from, 0, sizeof from);
  from.sin_family = AF_INET;
  from.sin_addr.s_addr = htonl(0x7f000000u + 2u + (uint32_t)(i / PER_SOURCE));
  setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
  if (bind(fd, (struct sockaddr *)&from, sizeof from) != 0)
    fail("bind of connection %ld to %s: %s", i, inet_ntoa(from.sin_addr),
         strerror(errno));
  if (connect(fd, (const struct sockaddr *)to, sizeof *to) != 0 &&
      errno != EINPROGRESS)
    fail("connect %ld: %s", i, strerror(errno));
  ev.events = EPOLLOUT | EPOLLRDHUP;
  ev.data.u64 = (uint64_t)fd;
  if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0)
    fail("epoll_ctl: %s", strerror(errno));
}

int main(int argc, char **argv) {
  struct sockaddr_in to;
  struct epoll_event evs[256];
  long conns, started = 0, up = 0;
  int ep;
  double t0, deadline;

  if (argc != 4) {
    fprintf(stderr, "usage: idle-client HOST PORT CONNS\n");
    return 2;
  }
  conns = atol(argv[3]);
  if (conns < 1) fail("CONNS must be positive");
  memset(&to, 0, sizeof to);
  to.sin_family = AF_INET;
  to.sin_port = htons((uint16_t)atoi(argv[2]));
  if (inet_pton(AF_INET, argv[1], &to.sin_addr) != 1) fail("bad host %s", argv[1]);
  raise_fd_limit(conns);
  setvbuf(stdout, NULL, _IOLBF, 0);
  ep = epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) fail("epoll_create1: %s", strerror(errno));

  t0 = now();
  deadline = t0 + CONNECT_DEADLINE;
  for (;;) {
    while (started < conns && started - up < INFLIGHT) start(ep, started++, &to);
    if (up == conns) break;
    int n = epoll_wait(ep, evs, 256, 1000);
    if (n < 0 && errno != EINTR) fail("epoll_wait: %s", strerror(errno));
    for (int k = 0; k < n; k++) {
      int fd = (int)evs[k].data.u64, err = 0;
      socklen_t len = sizeof err;
      getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
      if (err != 0) fail("connect: %s (%ld up)", strerror(err), up);
      if (evs[k].events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))
        fail("the server closed a connection while connecting (%ld up)", up);
      /* Up: from now on only its end is of interest. */
      struct epoll_event ev = {.events = EPOLLRDHUP, .data.u64 = (uint64_t)fd};
      if (epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev) != 0)
        fail("epoll_ctl: %s", strerror(errno));
      up++;
    }
    if (now() > deadline)
      fail("only %ld of %ld connections up after %d s", up, conns,
           CONNECT_DEADLINE);
  }
  printf("conns=%ld sources=%ld seconds=%.3f\n", conns,
         (conns + PER_SOURCE - 1) / PER_SOURCE, now() - t0);

  /* Hold them. The server ending a connection ends the client. */
  for (;;) {
    int n = epoll_wait(ep, evs, 256, -1);
    if (n < 0 && errno != EINTR) fail("epoll_wait: %s", strerror(errno));
    if (n > 0) fail("the server closed a connection");
  }
}
