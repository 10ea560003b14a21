/* sleepers floor: N one-second timers on one libuv loop, nothing else.
 *
 *   usage: sleepers-floor [N]      (default 100000)
 *   prints: sleepers=N seconds=S clock=uv_hrtime
 *
 * This is the least any libuv-based runtime can do for N concurrent sleeps:
 * one allocation holds every handle and a timer carries no state beyond its
 * uv_timer_t. Each handle is closed when it fires, as a runtime that frees
 * its timers would, so teardown work is comparable too.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <uv.h>

static long fired;

static void on_timer(uv_timer_t *timer) {
  fired++;
  uv_close((uv_handle_t *)timer, NULL);
}

static void start_timers(uv_loop_t *loop, uv_timer_t *timers, long n) {
  for (long i = 0; i < n; i++) {
    uv_timer_init(loop, &timers[i]);
    uv_timer_start(&timers[i], on_timer, 1000, 0);
  }
}

int main(int argc, char **argv) {
  long n = argc > 1 ? strtol(argv[1], NULL, 10) : 100000;
  uv_loop_t *loop = uv_default_loop();
  uint64_t t0 = uv_hrtime();

  /* calloc(0) may return NULL; one spare slot keeps the N=0 baseline run on
   * the same code path. */
  uv_timer_t *timers = calloc((size_t)n + 1, sizeof *timers);
  if (timers == NULL) {
    perror("calloc");
    return 1;
  }
  start_timers(loop, timers, n);
  uv_run(loop, UV_RUN_DEFAULT);

  double seconds = (double)(uv_hrtime() - t0) / 1e9;
  free(timers);
  uv_loop_close(loop);

  printf("sleepers=%ld seconds=%.6f clock=uv_hrtime\n", n, seconds);
  return fired == n ? 0 : 1;
}
