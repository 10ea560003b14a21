/*
** loom.h: the public API of libloom, an embeddable Lua 5.4 host with
** asyncio-style tasks on libuv.
**
** A 'loom_host' ties one Lua state to one libuv loop; either may be the
** host's own or one the embedder already has.  Everything loom does
** hangs off a host, so several hosts may live in one process (one per
** thread, each with its own state).  Unless a comment says otherwise, a
** function must be called on the thread that runs the host's loop (the
** "loop thread"), and never from a signal handler.
**
** Who owns what, unless a comment says otherwise: a 'loom_host *' is
** the embedder's from loom_new/loom_new_with until loom_free; a loop
** or a state the embedder passes in stays the embedder's (loom never
** closes it) and must outlive loom_close; a loop or state the host made
** is the host's, and the embedder must not close it.  Strings passed in
** are only read during the call (loom copies what it keeps); strings
** passed out to a callback live only during the call.  Functions that
** take an 'idx' or 'nargs' work on the stack of loom_state(H), the
** host's main thread, and say what they push or pop.
**
** Functions that return 'int' return LOOM_OK (0) or a count on
** success, and one of the negative LOOM_E* codes on failure; none of
** them raises a Lua error except those documented as callable only
** from a lua_CFunction.
**
** Build with:  cc prog.c $(pkg-config --cflags --libs loom)
*/
#ifndef LOOM_H
#define LOOM_H

#include <lua.h>
#include <uv.h>

#if defined(LOOM_BUILDING) && defined(__GNUC__)
#define LOOM_API __attribute__((visibility("default")))
#else
#define LOOM_API
#endif

#define LOOM_VERSION "0.1.0"

#define LOOM_OK         0
#define LOOM_ECLOSED  (-1)  /* the host (or the call's host) is closed */
#define LOOM_EDONE    (-2)  /* the call was completed already */
#define LOOM_EBUSY    (-3)  /* not allowed from inside the running loop */
#define LOOM_EPENDING (-4)  /* the task or future is not done yet */
#define LOOM_EINVAL   (-5)  /* an argument is not what the function takes */
#define LOOM_EFAILED  (-6)  /* the task failed: its error is on the stack */
#define LOOM_ENOMEM   (-7)  /* out of memory */
#define LOOM_ELOAD    (-8)  /* a chunk did not load: its message is pushed */

/* How a task stands (loom_task_state) */
#define LOOM_TASK_PENDING   0  /* not done: not started, running or waiting */
#define LOOM_TASK_OK        1  /* returned: loom_results pushes its values */
#define LOOM_TASK_FAILED    2  /* raised: loom_results pushes its error */
#define LOOM_TASK_CANCELLED 3  /* cancelled: its error is a loom.Cancelled */
#define LOOM_TASK_STALLED   4  /* cancelled by loom, as nothing could ever
                                  wake it; the main task's Cancelled says
                                  where every task waited */

typedef struct loom_host loom_host;
typedef struct loom_call loom_call;


/* {=====================================================================
** Hosts
** ====================================================================== */

/*
** Creates a host with a loop and a Lua state of its own; the state has
** the standard libraries, 'require "loom"' works and the global 'loom'
** is set.  Returns NULL when memory or the loop cannot be had.  The
** host, with its loop and state, is the caller's to loom_free.  Any
** thread may call it; the thread that then runs the host is its loop
** thread.
*/
LOOM_API loom_host *loom_new(void);

/*
** Creates a host on the embedder's 'loop' and/or state 'L'; NULL for
** either gives the host one of its own.  On the embedder's state, loom
** is registered in package.loaded (no global is set) and
** coroutine.resume, coroutine.wrap and require are replaced by
** loom-aware versions until the host closes.  One host per state:
** returns NULL if 'L' has one already, or on lack of memory.  'loop'
** and 'L' stay the embedder's: they must outlive loom_close (a state
** closed first closes the host with it; 'H' then stays valid until
** loom_free).  Call it on the thread that owns 'loop' and 'L'.
*/
LOOM_API loom_host *loom_new_with(uv_loop_t *loop, lua_State *L);

/*
** The host's Lua state (main thread) and loop; NULL once it is closed.
** They remain the owner's (the host's or the embedder's): use them on
** the loop thread, and do not close ones the host made.
*/
LOOM_API lua_State *loom_state(loom_host *H);
LOOM_API uv_loop_t *loom_loop(loom_host *H);

/*
** Closes the host.  Pending tasks are dropped without running again.
** A state and a loop of the host's own are freed.  The embedder's state
** stays usable (loom's functions and objects there raise "the host is
** closed"; coroutine.*, require and package.loaded.loom are restored);
** on the embedder's loop, loom's handles are closed and the loop must
** run again (uv_run with UV_RUN_DEFAULT) for their close callbacks, and
** for any file or work job still running on libuv's thread pool to end,
** before it can be closed.  Returns LOOM_EBUSY if called from inside
** the loop (a callback or a task), else LOOM_OK (also when closed
** already).  'H' stays valid and the embedder's: every function given
** it returns LOOM_ECLOSED (NULL for loom_state and loom_loop) until
** loom_free.  Call it on the loop thread, outside the loop.
*/
LOOM_API int loom_close(loom_host *H);

/*
** Closes the host if it is open and releases the handle itself; 'H'
** must not be used after.  Does nothing if called from inside the loop.
** Loop thread, outside the loop; 'H' NULL is ignored.
*/
LOOM_API void loom_free(loom_host *H);

/* }===================================================================== */


/* {=====================================================================
** Running
** ====================================================================== */

/*
** Loads the file 'path' (NULL or "-": standard input) and spawns it as
** a task with the 'nargs' values on top of the stack as its arguments.
** On success pushes the Task (in place of the arguments) and returns
** LOOM_OK; the first file spawned becomes the main task.  Otherwise
** pops the arguments, pushes the message and returns LOOM_ELOAD.  The
** task runs when the loop runs.  'path' is only read during the call.
** The Task pushed is a Lua value like any other: the embedder pops it
** when done with it (the task runs on either way).  Loop thread.
*/
LOOM_API int loom_spawn_file(loom_host *H, const char *path, int nargs);

/*
** The same for the chunk 'code', named 'name' in messages ("=name";
** NULL: the code itself).  Both strings are copied or only read during
** the call.  Loop thread.
*/
LOOM_API int loom_spawn_string(loom_host *H, const char *code,
                               const char *name, int nargs);

/*
** Spawns the function below the 'nargs' values on top of the stack as a
** task; replaces them by the Task and returns LOOM_OK, or pops them,
** pushes a message and returns LOOM_EINVAL when it is not callable.
** Loop thread.
*/
LOOM_API int loom_spawn(loom_host *H, int nargs);

/*
** Runs the loop until every task, timer and handle is done.  Returns the
** number of errors reported through the error hook during the run (0:
** all went well), or LOOM_ECLOSED / LOOM_EBUSY.  Loop thread, not from
** inside the loop (a task or a callback: LOOM_EBUSY).
*/
LOOM_API int loom_run(loom_host *H);

/*
** Runs one non-blocking iteration of the loop: the tasks that are
** ready, the timers that are due, the I/O that is waiting.  Returns 1
** while there is more to do, 0 once all is done (errors nobody saw are
** then reported), or LOOM_ECLOSED / LOOM_EBUSY.  Between steps, an
** embedder with its own main loop waits on loom_backend_fd() for
** loom_backend_timeout() milliseconds.  Loop thread, outside the loop.
*/
LOOM_API int loom_step(loom_host *H);

/*
** The file descriptor to poll for readability, and how long (ms; -1:
** no limit, 0: do not wait, tasks are ready) until loom_step has work.
** The descriptor is the loop's: poll it, never read or close it.
** Loop thread; LOOM_ECLOSED once the host is closed.
*/
LOOM_API int loom_backend_fd(loom_host *H);
LOOM_API int loom_backend_timeout(loom_host *H);

/* }===================================================================== */


/* {=====================================================================
** Tasks from C
** ====================================================================== */

/*
** Called once the task or future is done, on the loop thread: 'nres'
** >= 0 results are on top of 'L', or, when 'nres' < 0, its error (a
** failure or a loom.Cancelled).  The values are popped after the call:
** 'fn' may read them but must not pop them or keep pointers into them
** (strings) past its return.  'ud' stays the embedder's; loom only
** passes it on.
*/
typedef void (*loom_done_fn)(loom_host *H, lua_State *L, int nres,
                             void *ud);

/*
** Calls 'fn' when the Task or Future at 'idx' is done (at once if it
** is).  Returns LOOM_OK or LOOM_EINVAL.  Counts as observing its error.
** The Task or Future stays on the stack; 'fn' is not called once the
** host has closed, so free 'ud' yourself after loom_close if it was
** never called.  Loop thread.
*/
LOOM_API int loom_on_done(loom_host *H, int idx, loom_done_fn fn, void *ud);

/*
** Pushes the outcome of the done Task or Future at 'idx': returns the
** number of results pushed, or LOOM_EFAILED with its error pushed, or
** LOOM_EPENDING / LOOM_EINVAL with nothing pushed.  The values pushed
** are the embedder's to pop.  Loop thread.
*/
LOOM_API int loom_results(loom_host *H, int idx);

/*
** How the Task or Future at 'idx' stands: one of LOOM_TASK_*, or
** LOOM_EINVAL when it is neither.  Does not count as observing an
** error (loom_results does).  Pushes nothing.  Loop thread.
*/
LOOM_API int loom_task_state(loom_host *H, int idx);

/*
** The main task: the first file or string spawned, the function of
** loom.run while it runs, or the task made main by loom_set_main.  When
** it fails or is cancelled, every other task is cancelled and the run
** ends once they have finished, as asyncio.run does.  loom_push_main
** pushes it and returns LOOM_OK, or returns LOOM_EINVAL when there is
** none; loom_set_main makes the Task at 'idx' the main task (LOOM_OK,
** or LOOM_EINVAL when it is not a Task).  The value pushed is the
** embedder's to pop; the host keeps its own reference to the main
** task.  Loop thread.
*/
LOOM_API int loom_push_main(loom_host *H);
LOOM_API int loom_set_main(loom_host *H, int idx);

/*
** Cancels the Task at 'idx' as task:cancel(msg) does ('msg' NULL: the
** default message): returns 1, or 0 when it is done already, or
** LOOM_EINVAL.  It may be called from a libuv callback on the loop
** thread (a signal handler of the embedder's, say), never from another
** thread or a real signal handler.  'msg' is copied; the Task stays on
** the stack.
*/
LOOM_API int loom_cancel(loom_host *H, int idx, const char *msg);

/* }===================================================================== */


/* {=====================================================================
** Awaitable C functions
**
**   static int l_read(lua_State *L) {
**     loom_call *c = loom_call_new(L);   -- the running task will wait
**     start_work(c);                      -- a callback or a thread
**     return loom_call_await(L, c);       -- suspends the task
**   }
**   ...later, from the work:
**     loom_call_complete_async(c, push_reading, reading);
**     loom_call_release(c);
**
** A call has two owners: the task side, which loom keeps, and the C
** side, which the embedder gives up with loom_call_release once it will
** not complete the call (any more).
** ====================================================================== */

/*
** Pushes the results of a call onto 'L', the waiting task's stack, and
** returns how many; it may raise (lua_error) to make the task's call
** raise.  It runs on the loop thread.  When the task is gone (cancelled
** or timed out meanwhile, or its host closed) it is called with 'L'
** NULL, only to free 'ud'.  So 'ud' passes to loom with a successful
** loom_call_complete(_async), and the push function is its last owner.
*/
typedef int (*loom_push_fn)(lua_State *L, void *ud);

/*
** From a lua_CFunction running in a task: makes the task wait for a
** call that C will complete.  Raises (as any Lua API function) when
** called outside a task or where the task cannot suspend.  'L' is the
** task's own state, as the lua_CFunction received it.  The call is
** owned by loom (the task side) and by the caller (the C side) until
** loom_call_release; loop thread.
*/
LOOM_API loom_call *loom_call_new(lua_State *L);

/*
** Suspends the task until 'c' completes; use as 'return
** loom_call_await(L, c);'.  The task resumes with what the push
** function pushed, or raises loom.Cancelled / loom.Timeout if it was
** cancelled or timed out first.  Loop thread, in the same
** lua_CFunction that called loom_call_new.
*/
LOOM_API int loom_call_await(lua_State *L, loom_call *c);

/*
** Completes 'c' with the results 'push' will push ('push' may be NULL:
** no results).  loom_call_complete is for the loop thread (a libuv
** callback, a task); loom_call_complete_async may be called from any
** thread and wakes the loop.  Return LOOM_OK, or LOOM_EDONE when 'c'
** was completed before, or LOOM_ECLOSED when its host is closed; on
** failure 'push' is not called and 'ud' stays the caller's; on success
** 'ud' is the push function's to free.  'c' stays the caller's until
** loom_call_release.
*/
LOOM_API int loom_call_complete(loom_call *c, loom_push_fn push, void *ud);
LOOM_API int loom_call_complete_async(loom_call *c, loom_push_fn push,
                                      void *ud);

/*
** Gives up the C side of 'c'; 'c' must not be used after (loom frees it
** once the task side is done too).  'c' NULL is ignored.  Any thread.
*/
LOOM_API void loom_call_release(loom_call *c);

/* }===================================================================== */


/* {=====================================================================
** Errors and the module
** ====================================================================== */

/*
** Receives an error nobody caught: 'msg' is the error as text,
** 'traceback' the frames of the failing task followed by those of the
** tasks that awaited it.  Both strings live only during the call (copy
** them to keep them), and are loom's.  Called on the loop thread.
*/
typedef void (*loom_error_fn)(loom_host *H, const char *msg,
                              const char *traceback, void *ud);

/*
** Replaces the error hook; 'fn' NULL restores the default, which writes
** the error as a record of loom.log at level "error" (to stderr).  'ud'
** stays the embedder's (loom only passes it to 'fn'); free it after
** replacing the hook or closing the host.  Loop thread.
*/
LOOM_API void loom_set_error_fn(loom_host *H, loom_error_fn fn, void *ud);

/*
** The host's own handling of signal 'signum': 'fn' runs on the loop
** thread at each delivery that no script watches (with signal.on or
** signal.wait), so that a script may take the signal over, as a
** "SIGINT" listener does in Node.  It keeps the loop alive no more than
** the script's watchers do and goes with the host.  'fn' NULL removes
** it.  Returns LOOM_OK, LOOM_EINVAL for a signal that cannot be caught,
** or LOOM_ENOMEM.  The loom binary's Ctrl-C is built on it.  'ud'
** stays the embedder's.  Call it on the loop thread; 'fn' runs there,
** from the loop (not in the signal handler), so it may use the Lua
** state and loom's API.
*/
typedef void (*loom_signal_fn)(loom_host *H, int signum, void *ud);
LOOM_API int loom_set_signal_fn(loom_host *H, int signum, loom_signal_fn fn,
                                void *ud);

/*
** Interrupts the task running at this moment if it does not let the
** loop run, as Ctrl-C interrupts a loop in lua5.4: once it has run for
** 'grace_ms' more of CPU time (0: at its next Lua instruction) without
** suspending, it raises "interrupted!" where it is (an ordinary error:
** it fails the task with a traceback; a pcall may catch it).  Nothing
** is raised when no task runs, when the task suspends first (the loop
** then handles the signal), or when by then a script watches SIGINT
** (signal.on, signal.wait): it takes Ctrl-C over, as from the host's
** default.  It is async-signal-safe, for a SIGINT handler chained with
** libuv's (see the loom binary); called with no task running (from a
** loop callback, say) it only drops an interrupt that waits; called
** again while one waits for the same task, it raises at once.  It uses
** the coroutine's debug hook (replacing one the script set); a loop in
** a coroutine that the task resumes is interrupted once back in the
** task.  Returns how many interrupts were raised before the call (in
** the process).  Call it on the loop thread, or from a signal handler
** that interrupted it; not from another thread.
*/
LOOM_API int loom_interrupt(loom_host *H, int grace_ms);

/* Levels of loom_log, as loom.log's */
#define LOOM_LOG_DEBUG 0
#define LOOM_LOG_INFO  1
#define LOOM_LOG_WARN  2
#define LOOM_LOG_ERROR 3

/*
** Writes 'msg' as a record of loom.log at 'level' (a LOOM_LOG_*), if
** the log's level lets it through: the same line, in the same queue, as
** loom.log.info(msg) writes.  It never waits.  'msg' is copied.
** Loop thread; a closed host or a NULL 'msg' is ignored.
*/
LOOM_API void loom_log(loom_host *H, int level, const char *msg);

/*
** Writes out, waiting as long as it takes, what the host queued for
** standard output and standard error (log records among them), and
** puts a terminal left in raw mode back as it was: for an embedder
** about to exit without closing the host.  Closing the host does it
** too, and so does the exit of the process.  Loop thread, outside the
** loop.
*/
LOOM_API void loom_flush(loom_host *H);

/*
** The module entry point for require "loom" (a lua_CFunction): opens
** loom on the state that calls it, creating its host if the state has
** none; that host is the state's and closes with it.  Loop thread.
*/
LOOM_API int luaopen_loom(lua_State *L);

/* }===================================================================== */

#endif
