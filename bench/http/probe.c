/* probe: two small services bench/run needs around wrk.
 *
 *   usage: http-probe cpu PID...    prints cpu_s=S: the CPU time (user +
 *                                   sys, all threads) of the processes,
 *                                   summed
 *          http-probe port          prints port=P: a TCP port on 127.0.0.1
 *                                   that was free a moment ago
 *
 * cpu reads each process's CPU-time clock (clock_getcpuclockid, in
 * nanoseconds) and falls back to /proc/PID/stat utime + stime (clock
 * ticks) where the kernel gives no such clock, as bench/echo/client.c
 * does. A process that cannot be read is an error (exit 1).
 *
 * port binds port 0 on 127.0.0.1, reads the port the kernel chose and
 * closes the socket, for a server that must be told its port (nginx).
 * Another program could take it in between; on a benchmark machine
 * nothing does, and the server then fails to start rather than measure
 * the wrong thing.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static int proc_cpu(pid_t pid, double *out) {
  char path[64], buf[4096];
  snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
  FILE *f = fopen(path, "r");
  if (f == NULL) return -1;
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
    return -1;
  *out = (double)(utime + stime) / (double)sysconf(_SC_CLK_TCK);
  return 0;
}

static int cpu(int argc, char **argv) {
  double total = 0;
  const char *how = "cpuclock";
  for (int i = 0; i < argc; i++) {
    pid_t pid = (pid_t)atoi(argv[i]);
    clockid_t id;
    struct timespec ts;
    double s;
    if (pid <= 0) {
      fprintf(stderr, "http-probe: bad pid '%s'\n", argv[i]);
      return 2;
    }
    if (clock_getcpuclockid(pid, &id) == 0 && clock_gettime(id, &ts) == 0) {
      s = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
    } else if (proc_cpu(pid, &s) == 0) {
      how = "proc";
    } else {
      fprintf(stderr, "http-probe: cannot read the CPU time of process %d\n",
              (int)pid);
      return 1;
    }
    total += s;
  }
  printf("cpu_s=%.6f cpu_clock=%s\n", total, how);
  return 0;
}

static int port(void) {
  struct sockaddr_in a;
  socklen_t len = sizeof a;
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
      getsockname(fd, (struct sockaddr *)&a, &len) != 0) {
    fprintf(stderr, "http-probe: %s\n", strerror(errno));
    return 1;
  }
  close(fd);
  printf("port=%d\n", ntohs(a.sin_port));
  return 0;
}

int main(int argc, char **argv) {
  if (argc >= 3 && strcmp(argv[1], "cpu") == 0) return cpu(argc - 2, argv + 2);
  if (argc == 2 && strcmp(argv[1], "port") == 0) return port();
  fprintf(stderr, "usage: http-probe cpu PID... | http-probe port\n");
  return 2;
}
