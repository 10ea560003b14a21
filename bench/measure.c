/* measure: run one command, report its wall time and peak RSS.
 *
 *   usage: measure [-t SECONDS] CMD [ARGS...]
 *
 * The child inherits stdin/stdout/stderr, so its own output passes through
 * untouched. After it has exited, one line goes to stdout:
 *
 *   measure wall_s=1.234567 maxrss_kib=12345 user_s=0.5 sys_s=0.1 exit=0
 *
 * wall_s is CLOCK_MONOTONIC from just before fork to wait4's return, so it
 * covers the whole process including start-up and teardown. maxrss_kib is
 * ru_maxrss from wait4 (kilobytes on Linux): the child's peak resident set.
 * exit is the child's status, or 128+signal when it was killed; measure exits
 * with the same value so scripts can test for failure without parsing.
 *
 * -t kills the child with SIGKILL after SECONDS (reported as timeout=1), so a
 * hung contender cannot stall a whole benchmark run. The child runs in its
 * own process group so that a wrapper script and everything it started die
 * together; SIGINT and SIGTERM sent to measure are passed on to that group.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t timed_out;
static volatile pid_t child;

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double tv_s(struct timeval tv) {
  return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

static void on_alarm(int sig) {
  (void)sig;
  timed_out = 1;
  kill(-child, SIGKILL);
}

static void on_stop(int sig) {
  kill(-child, sig);
}

/* No SA_RESTART: wait4 returns EINTR, and the loop below simply waits again
 * for the signalled child. */
static void handle(int sig, void (*fn)(int)) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = fn;
  sigemptyset(&sa.sa_mask);
  sigaction(sig, &sa, NULL);
}

static int exit_code(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 1;
}

static void usage(void) {
  fprintf(stderr, "usage: measure [-t SECONDS] CMD [ARGS...]\n");
  exit(2);
}

int main(int argc, char **argv) {
  unsigned timeout = 0;
  int opt;
  /* '+' stops at the first non-option, so the command's own flags are left
   * alone. */
  while ((opt = getopt(argc, argv, "+t:")) != -1) {
    if (opt != 't') usage();
    timeout = (unsigned)strtoul(optarg, NULL, 10);
  }
  if (optind >= argc) usage();

  double start = now_s();
  pid_t pid = fork();
  if (pid < 0) {
    perror("measure: fork");
    return 1;
  }
  if (pid == 0) {
    setpgid(0, 0);
    execvp(argv[optind], argv + optind);
    fprintf(stderr, "measure: %s: %s\n", argv[optind], strerror(errno));
    _exit(127);
  }
  /* Set the group from both sides so a signal cannot arrive before it
   * exists. */
  setpgid(pid, pid);
  child = pid;
  handle(SIGINT, on_stop);
  handle(SIGTERM, on_stop);
  if (timeout > 0) {
    handle(SIGALRM, on_alarm);
    alarm(timeout);
  }

  int status;
  struct rusage ru;
  while (wait4(pid, &status, 0, &ru) < 0) {
    if (errno != EINTR) {
      perror("measure: wait4");
      return 1;
    }
  }
  double wall = now_s() - start;
  alarm(0);

  int code = exit_code(status);
  printf("measure wall_s=%.6f maxrss_kib=%ld user_s=%.3f sys_s=%.3f exit=%d",
         wall, ru.ru_maxrss, tv_s(ru.ru_utime), tv_s(ru.ru_stime), code);
  fputs(timed_out ? " timeout=1\n" : "\n", stdout);
  return code;
}
