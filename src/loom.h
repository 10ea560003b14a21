/*
** loom.h: the public API of libloom, an embeddable Lua 5.4 host with
** asyncio-style tasks on libuv.
**
** A 'loom_host' owns (or borrows) one libuv loop and one Lua state.
** Everything loom does hangs off a host, so several hosts may live in
** one process, one per thread.  Unless a comment says otherwise, every
** function must be called on the thread that created the host.
**
** Build against it with: cc prog.c $(pkg-config --cflags --libs loom)
*/
#ifndef LOOM_H
#define LOOM_H

#include <lua.h>

#if defined(LOOM_BUILDING) && defined(__GNUC__)
#define LOOM_API __attribute__((visibility("default")))
#else
#define LOOM_API
#endif

#define LOOM_VERSION "0.1.0"

typedef struct loom_host loom_host;

/*
** Receives an error nobody caught: 'msg' is the error as text,
** 'traceback' the frames of the failing task followed by those of the
** tasks that awaited it.  Both strings live only during the call.
*/
typedef void (*loom_error_fn)(loom_host *H, const char *msg,
                              const char *traceback, void *ud);

/*
** Creates a host with its own loop and its own Lua state, with the
** standard libraries open and the global 'loom' set.  Returns NULL when
** memory or the loop cannot be had.  Free it with 'loom_close'.
*/
LOOM_API loom_host *loom_new(void);

/* The host's Lua state (main thread); valid until 'loom_close'. */
LOOM_API lua_State *loom_state(loom_host *H);

/*
** Loads the file 'path' ("-" or NULL: standard input) and spawns it as
** a task named 'main' with the 'nargs' values on top of the state's
** stack as its arguments (they are popped).  Returns 0, or 1 with the
** error message on top of the stack when the file cannot be read or
** compiled.  The task runs when the loop runs.
*/
LOOM_API int loom_spawn_file(loom_host *H, const char *path, int nargs);

/*
** Runs the loop until every task and every open handle are done.
** Returns the number of failures reported through the error hook
** during the run (0 when all went well).  Must not be called from
** inside the loop.
*/
LOOM_API int loom_run(loom_host *H);

/* Replaces the error hook; 'fn' NULL restores the default (stderr). */
LOOM_API void loom_set_error_fn(loom_host *H, loom_error_fn fn, void *ud);

/*
** Closes the host: tasks still pending are dropped, the Lua state and
** the loop are freed.  'H' is invalid afterwards.
*/
LOOM_API void loom_close(loom_host *H);

/* The module entry point for require "loom". */
LOOM_API int luaopen_loom(lua_State *L);

#endif
