/*
** harness.h: what the fuzz targets share (harness.c).  One loom host
** lives for the whole fuzzing process; each input runs as a task of
** it, and any error the host reports (a task that failed with nobody
** to see it, a handler's error) aborts, as a crash does.
*/
#ifndef LOOM_FUZZ_HARNESS_H
#define LOOM_FUZZ_HARNESS_H

#include <stddef.h>
#include <stdint.h>

#include <lua.h>

#include "loom.h"

/* The host, made on the first call. */
loom_host *fz_host(void);

/* Pushes the function of fuzz/'name' (a Lua file), loaded once. */
void fz_push_script(loom_host *H, const char *name);

/*
** Spawns the function below the 'nargs' values on top of the host's
** stack as a task, runs the loop until all is done and pushes the
** task's first result.  Aborts, with the message, as soon as the task
** fails (what it left open would keep the loop running), or when the
** host reports an error.
*/
void fz_run(loom_host *H, int nargs);

/* Aborts with a message (printf-like). */
void fz_fail(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));

#endif
