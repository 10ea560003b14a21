/*
** internal.h: structures shared by the loom core and the 'loom__'
** prototypes.  Nothing here is part of the public API (see loom.h).
**
** The shape of the runtime, in one paragraph: a host ('loom_host') owns
** a libuv loop and a Lua state.  Tasks are Lua coroutines wrapped in a
** 'loom.task' userdata; futures are the same userdata without a
** coroutine.  A task that can run sits in the host's ready queue; the
** queue is drained by a prepare and a check handle, so the loop may be
** driven by 'uv_run' from anywhere.  Every timer (sleeps, deadlines)
** sits in a list per duration behind a single 'uv_timer_t'.  A task
** suspends by yielding a private tag with a continuation; the
** continuation runs when the task is resumed and either raises a
** pending cancellation or returns what the task waited for.  Anything
** else a host owns (a stream, a server, a process...) is a handle: one
** list per host, closed with it.
**
** The files are layers; each uses only the layers above it (and files
** before it in its own layer), never one below:
**   1. loom.h, internal.h.
**   2. The base: handle.c (the host box, the handle base, running out
**      of memory), then error.c (loom's error values, failure values,
**      argument checks and messages that point at the user's line,
**      uncaught errors).
**   3. The scheduler: sched.c (the ready queue, timers, how a task
**      runs, waits, is woken, cancelled and completes), then host.c (a
**      host's creation, running, stepping and closing).
**   4. The families, each the Lua API of one concept: task.c, time.c,
**      coro.c, call.c, then work.c, queue.c, signal.c, stream.c, fs.c,
**      then tls.c (TLS on a stream, through its hook), then net.c and
**      process.c, built on streams (process.c also names signals), then
**      stdio.c (the standard streams and their writers, the sinks) and
**      log.c (loom.log, on the sinks; error.c's reports reach it through
**      H->log_fn, which it sets), then
**      http_parser.c (llhttp's requests as Lua tables) and
**      http_client.c (libcurl's multi interface on the loop), then
**      inspect.c (what a console sees of a running host).  Those
**      after call.c wait for libuv requests through
**      its loom_call_* functions, as an embedder's C code would.
**   5. module.c (luaopen_loom and the loom_new* constructors, which
**      open the module in a state), then main.c, the binary, which
**      uses loom.h alone, and lineedit.c, the binary's line editor
**      (loom.lineedit), a family of the binary's own.
*/
#ifndef LOOM_INTERNAL_H
#define LOOM_INTERNAL_H

#include <stddef.h>
#include <signal.h>
#include <stdint.h>

#include <lua.h>
#include <lauxlib.h>
#include <uv.h>

#include "loom.h"

#define LOOM_TASK_MT     "loom.task"
#define LOOM_FUTURE_MT   "loom.future"
#define LOOM_DEADLINE_MT "loom.deadline"
#define LOOM_STREAM_MT   "loom.stream"
#define LOOM_SERVER_MT   "loom.server"
#define LOOM_UDP_MT      "loom.udp"

#define container_of(p, T, m) ((T *)((char *)(p) - offsetof(T, m)))

/*
** User value 1 of a task or future: its start function, then its
** coroutine, then its result(s) or error.  A task spawned with
** arguments keeps them in user values 2.. until it starts.
*/
#define UV_VALUE 1

/* states of a future (and so of a task): FUT_* */
enum { FUT_PENDING, FUT_OK, FUT_FAILED, FUT_CANCELLED };

typedef struct loom_hostbox loom_hostbox;
typedef struct loom_handle loom_handle;
typedef struct loom_class loom_class;
typedef struct loom_mailbox loom_mailbox;
typedef struct loom_workpool loom_workpool;
typedef struct loom_stream loom_stream;
typedef struct write_req write_req;
typedef struct loom_stream_hook loom_stream_hook;
typedef struct loom_future loom_future;
typedef struct loom_task loom_task;
typedef struct loom_timer loom_timer;
typedef struct loom_tlist loom_tlist;
typedef struct loom_sink loom_sink;
typedef struct loom_logger loom_logger;


/*
** {====================================================================
** The host
** =====================================================================
*/

/*
** The box of a Lua state's host: a userdata kept in the registry for
** the state's whole life, so that functions (upvalue 1) and futures can
** always look at it.  'H' is NULL while no host is open, and 'gen'
** changes with each host: a future from a closed host knows it.
*/
struct loom_hostbox {
  loom_host *H;
  uint32_t gen;
};

struct loom_host {
  loom_hostbox *box;
  lua_State *L;            /* thread used for callbacks */
  lua_State *mainL;        /* the state's main thread */
  uv_loop_t *loop;
  unsigned char owns_loop, owns_state, closed, running, is_virtual;
  unsigned char stalled;   /* the last run ended with tasks waiting */
  unsigned char api;       /* the embedder holds it: freed by loom_free */
  unsigned char freed;     /* free once the last handle is closed */
  unsigned char main_ended;  /* the main task failed or was cancelled */
  unsigned char state_closing;  /* closed because its state closes */
  int debug;
  void (*tty_guard)(loom_host *H, int after);  /* around terminal output */
  uv_prepare_t prepare;
  uv_check_t check;
  uv_idle_t idle;
  uv_timer_t timer;
  int handles_open;        /* our handles not yet through close_cb */
  loom_handle *handles;    /* everything else it owns (handle.c) */
  loom_mailbox *mb;        /* calls completed from other threads */
  struct loom_curlm *curlm;  /* the HTTP client's (http_client.c) */
  loom_workpool *workpool; /* Lua states for loom.work */
  char *slab;              /* stream.c: where small reads land first */
  loom_task *ready_head, *ready_tail;
  size_t nready;
  loom_task *current;      /* the running task, or NULL */
  loom_task *main;         /* the task of loom.run / the script */
  int main_ref;            /* registry: keeps 'main' alive */
  loom_tlist **heap;       /* lists of timers, by their first deadline */
  size_t nheap, heapcap;
  loom_tlist **buckets;    /* lists of timers, by duration */
  size_t ntimers;          /* timers queued */
  uint32_t seq;
  uint64_t armed;          /* due time the uv timer is set for */
  uint64_t vnow;           /* virtual clock: the time it reads, ms */
  int live_ref;            /* registry: table of live tasks */
  int aux_ref;             /* registry: task/future -> table of rare fields */
  int task_mt_ref, future_mt_ref;  /* registry: their metatables */
  int pool_ref;            /* registry: idle coroutines */
  int npool;
  int failed_ref;          /* registry: weak table of unobserved failures */
  int cancelled_ref, timeout_ref;  /* registry: error metatables */
  int ntasks;              /* live tasks */
  unsigned next_id;
  int failures;            /* failures reported */
  int report_ref;          /* registry: core.set_report's function */
  /* debug mode and what the introspection primitives read (inspect.c) */
  unsigned char timing;    /* core.timing: steps are timed */
  int run_depth;           /* frames of 'L' below the loop's callbacks */
  uint64_t slow_ns;        /* debug: a step longer than this is reported */
  uint64_t iterations;     /* loop iterations so far */
  uint64_t slowest_ns;     /* the longest step timed so far */
  char slowest[64];        /* the name of its task */
  struct {                 /* loom_interrupt's, written by a handler */
    volatile sig_atomic_t pending, raised, grace, started;
    volatile uint64_t loop_time;  /* loop time when it came */
    lua_State *volatile co;  /* the coroutine it was set on */
    uint64_t cpu0;         /* CPU time when the grace began */
  } intr;
  loom_error_fn on_error;
  void *on_error_ud;
  struct loom_stdio *stdio;  /* the standard streams (stdio.c), or NULL */
  loom_logger *log;        /* loom.log's writer (log.c), or NULL */
  /* how error.c's reports and warnings reach the log (log.c sets it) */
  void (*log_fn)(loom_host *H, int level, const char *msg,
                 const char *trace);
};

/*
** The host of something made for the host of generation 'gen' (a
** future, a handle, a queue): NULL when that host has closed.
*/
static inline loom_host *loom__gen_host(const loom_hostbox *hb,
                                        uint32_t gen) {
  return gen == hb->gen ? hb->H : NULL;
}

/* tag yielded by every loom suspension */
extern char loom__tag;

/* }==================================================================== */


/*
** {====================================================================
** The base: handle.c, error.c
** =====================================================================
*/

/* why a handle's class is asked to close it */
enum {
  LOOM_CLOSE_USER,  /* its userdata let go: close(), __close or __gc */
  LOOM_CLOSE_HOST   /* its host closes: nothing may stay open or linked */
};

/*
** A family of handles (or of plain objects, with no 'close'): one
** static descriptor per kind.
*/
struct loom_class {
  const char *name;          /* metatable name and __name: "loom.stream" */
  const char *noun;          /* in messages ("UDP socket"); NULL: from name */
  const luaL_Reg *methods;   /* __index; each gets the host box as upvalue 1 */
  /* closes 'h' (its box already cleared); takes it off the host's list
  ** with loom__handle_unlink once it is really closing */
  void (*close)(loom_handle *h, int why);
  const char *(*describe)(loom_handle *h);  /* for __tostring, or NULL */
  const char *closed_as;     /* __tostring once closed; NULL: "closed" */
  const luaL_Reg *meta;      /* more metamethods, or NULL */
};

/* The first member of every host-owned thing. */
struct loom_handle {
  const loom_class *cls;
  loom_hostbox *hb;          /* the box of its host, and the host's */
  uint32_t gen;              /* generation: see loom__handle_host */
  unsigned linked : 1;       /* on the host's list */
  unsigned lasting : 1;      /* open for the host's life (the standard
                             ** streams): not reported at exit */
  loom_handle *next, *prev;  /* the host's list */
  loom_handle **box;         /* its userdata's pointer to it, or NULL */
  char *where;               /* debug: "file:line" that made it, or NULL */
};

/* The host of 'h', or NULL once that host has closed. */
static inline loom_host *loom__handle_host(const loom_handle *h) {
  return loom__gen_host(h->hb, h->gen);
}

/* handle.c */
loom_hostbox *loom__push_newbox(lua_State *L, lua_CFunction gc);
void loom__push_box(lua_State *L);  /* upvalue 1 of every function */
loom_host *loom__host_of_state(lua_State *L);  /* or NULL */
loom_host *loom__host(lua_State *L);  /* host of upvalue 1, or raises */
int loom__nomem(lua_State *L);  /* raises "not enough memory" */
void loom__class_register(lua_State *L, const loom_class *cls);
void loom__class_methods(lua_State *L, const loom_class *cls);  /* pushes */
void *loom__handle_new(lua_State *L, loom_host *H, const loom_class *cls,
                       size_t size, int nuv);  /* pushes its box; raises */
void *loom__handle_alloc(loom_host *H, const loom_class *cls, size_t size);
void loom__handle_unlink(loom_handle *h);
void loom__handle_detach(loom_handle *h);  /* clears its userdata */
loom_handle *loom__tohandle(lua_State *L, int idx, const loom_class *cls);
const char *loom__class_noun(const loom_class *cls);
int loom__handle_close(lua_State *L);  /* :close() of every handle */
void *loom__object_new(lua_State *L, const loom_class *cls, size_t size,
                       int nuv);  /* pushes it */
void *loom__udata_is(lua_State *L, int idx);  /* metatable on top: pops */
void *loom__toobject(lua_State *L, int idx, const loom_class *cls);
void *loom__checkobject(lua_State *L, int idx, const loom_class *cls);
void loom__handles_close(loom_host *H);
void loom__handle_describe(lua_State *L, loom_handle *h);  /* tostring */
#define LOOM_SITE_MAX 96  /* room for "file:line" */
int loom__site(lua_State *L, loom_host *H, char *buf,
               size_t size);  /* the user's "file:line", or 0 */
void loom__track(lua_State *L, loom_host *H, int idx);  /* open file */
void loom__untrack(lua_State *L, int idx);  /* closed: never allocates */
void loom__push_weak(lua_State *L, const void *key,
                     const char *mode);  /* registry[key], made weak */
int loom__push_handles(lua_State *L, loom_host *H);  /* list; how many */

/* error.c */
void loom__error_open(lua_State *L, loom_host *H);  /* core.Cancelled... */
void loom__new_cancelled(lua_State *L, loom_host *H, const char *msg);
void loom__new_timeout(lua_State *L, loom_host *H, const char *msg);
int loom__is_cancelled(lua_State *L, loom_host *H, int idx);
int loom__fail(lua_State *L, const char *what, const char *subject,
               int err);  /* nil, msg, code: every failure value */
int loom__fail_reason(lua_State *L, const char *what, const char *subject,
                      const char *reason, const char *code);
const char *loom__tostring(lua_State *L, int idx);  /* never raises */
int loom__argerror(lua_State *L, int narg, const char *fname,
                   const char *msg);  /* at the user's line */
int loom__typeerror(lua_State *L, int narg, const char *fname,
                    const char *tname);
int loom__errorf(lua_State *L, const char *fmt, ...);  /* at the user's */
const char *loom__shownumber(lua_State *L, int idx);  /* pushes: "nan" */
void loom__checktype(lua_State *L, int narg, const char *fname, int t);
void loom__checkany(lua_State *L, int narg, const char *fname);
lua_Number loom__checknumber(lua_State *L, int narg, const char *fname);
lua_Integer loom__checkinteger(lua_State *L, int narg, const char *fname);
lua_Integer loom__optinteger(lua_State *L, int narg, const char *fname,
                             lua_Integer def);
const char *loom__checklstring(lua_State *L, int narg, const char *fname,
                               size_t *len);
const char *loom__optlstring(lua_State *L, int narg, const char *fname,
                             const char *def, size_t *len);
const char *loom__checkcstring(lua_State *L, int narg,
                               const char *fname);  /* no NUL inside */
int loom__checkoption(lua_State *L, int narg, const char *fname,
                      const char *def, const char *const list[]);
void *loom__checkobject_as(lua_State *L, int narg, const loom_class *cls,
                           const char *fname);
void *loom__checkhandle_as(lua_State *L, int narg, const loom_class *cls,
                           const char *fname);  /* open: raises if closed */
void loom__where(lua_State *L);  /* "file:line: " of the user's call */
void loom__let_suspend(lua_State *L, lua_CFunction f);
int loom__boundary_error(lua_State *L, const char *name);
void loom__report(lua_State *L, loom_host *H, const char *msg,
                  const char *trace);  /* to the hook or core.set_report */
void loom__warn(loom_host *H, const char *msg, const char *trace);
void loom__default_error_fn(loom_host *H, const char *msg,
                            const char *traceback, void *ud);

/* }==================================================================== */


/*
** {====================================================================
** The scheduler: sched.c, host.c
** =====================================================================
*/

/* A task's continuation after it is resumed: returns like a lua_CFunction. */
typedef int (*loom_k)(lua_State *L, loom_host *H, loom_task *t);

/* what a timer does when it fires (see sched.c, fire) */
enum { TIMER_SLEEP, TIMER_DEADLINE, TIMER_STREAM_READ, TIMER_STREAM_WRITE };

/* A timer: a node in the list of its duration (see sched.c). */
struct loom_timer {
  uint64_t due;      /* loop milliseconds (virtual time on that clock) */
  loom_timer *prev, *next;  /* NULL when not queued */
  uint32_t seq;      /* insertion order (wraps): equal deadlines FIFO */
  uint32_t kind;     /* TIMER_* */
};

/*
** A deadline: the scope of one loom.timeout.  While it is open, the
** task that opened it gets a loom.Timeout at its current suspension
** when the time is up (time.c opens and closes it, sched.c fires it).
** User value 1 of its userdata keeps the task alive.
*/
typedef struct {
  loom_timer tm;
  loom_hostbox *hb;        /* NULL once closed */
  uint32_t gen;
  loom_task *t;
  double s;
  int fired;
} loom_deadline;

/* what a task waits on: how to take it out of that wait (sched.c) */
enum { WAIT_NONE, WAIT_SLEEP, WAIT_AWAIT, WAIT_DONE, WAIT_YIELD, WAIT_CALL,
       WAIT_LIST };


struct loom_future {
  loom_hostbox *hb;
  loom_task *waiters;      /* tasks awaiting it: circular, oldest first */
  uint32_t gen;            /* the host generation it belongs to */
  unsigned nres : 22;      /* results stored in UV_VALUE (<= LUAI_MAXSTACK) */
  unsigned is_task : 1;
  unsigned state : 2;      /* FUT_* */
  unsigned observed : 1;   /* someone retrieved the outcome */
  unsigned reported : 1;   /* an unobserved failure was printed */
  unsigned has_aux : 1;    /* it has a table in the host's aux table */
};

/*
** Sets a future's count of results.  The count is of values on a Lua
** stack, which never holds more than LUAI_MAXSTACK of them: the mask
** changes nothing, it only tells the compiler the count fits the field.
*/
_Static_assert(LUAI_MAXSTACK < (1 << 22),
               "loom_future.nres holds the count of a Lua stack");
static inline void loom__set_nres(loom_future *f, int n) {
  f->nres = (unsigned)n & ((1u << 22) - 1);
}

/* The host of 'f', or NULL when that host was closed. */
static inline loom_host *loom__fhost(const loom_future *f) {
  return loom__gen_host(f->hb, f->gen);
}

/*
** A task.  It waits on one thing at a time, so the node of a sleep and
** the links of an await share memory: a small struct matters when a
** million tasks are alive.
*/
struct loom_task {
  loom_future f;
  lua_State *co;           /* the coroutine while started and not done */
  loom_task *next_ready;
  int ref;                 /* slot in the host's live table */
  unsigned id;
  unsigned short nargs;    /* start arguments in user values 2.. */
  unsigned started : 1;
  unsigned queued : 1;     /* in the ready queue */
  unsigned throwing : 1;   /* an error waits in aux.throw */
  unsigned in_call : 1;    /* waits for (or was woken by) a loom_call */
  unsigned wait : 3;       /* WAIT_*: what it waits on */
  unsigned closing : 1;    /* its to-be-closed variables are being closed */
  unsigned escaped : 1;    /* coroutine.running() gave its coroutine out */
  unsigned woken : 1;      /* WAIT_LIST: taken off its list by a waker */
  unsigned stalled : 1;    /* cancelled because nothing could wake it */
  uint32_t born;           /* loop ms when spawned (wraps): its age */
  union {
    loom_task **back;      /* loom_call_await: the call's pointer to it */
    loom_timer sleep;      /* loom.sleep */
    struct {
      loom_task *next, *prev;  /* in the awaited future's waiters */
      loom_future *on;         /* the awaited future */
    } w;
    struct {
      loom_task *next, *prev;  /* in a list of waiting tasks */
      loom_task **list;        /* the list's head */
    } l;
  } u;
};

/* sched.c: the loop */
void loom__sched_open(lua_State *L, loom_host *H);  /* raises */
void loom__sched_close(loom_host *H, uv_close_cb cb);
int loom__loop(loom_host *H);  /* runs the loop until all is done */
uint64_t loom__now(loom_host *H);  /* loop ms, or virtual ms */
void loom__wake(loom_host *H, loom_task *t);  /* task to ready queue */
void loom__step(loom_host *H, loom_task *t);  /* resume one task */

/* sched.c: timers */
int loom__timer_add(loom_host *H, loom_timer *tm, uint64_t ms);
void loom__timer_remove(loom_host *H, loom_timer *tm);
void loom__timer_run(loom_host *H);  /* fires what is due */
void loom__timer_close(loom_host *H);  /* frees the lists */
int loom__timer_jump(loom_host *H);  /* virtual clock: skip idle time */

/* sched.c: tasks and futures */
loom_task *loom__spawn(lua_State *L, loom_host *H, int nargs);
void loom__push_task(lua_State *L, loom_host *H, loom_task *t);
void loom__set_main(lua_State *L, loom_host *H, int idx);  /* or 0: none */
void loom__push_name(lua_State *L, int idx);  /* of the task at idx */
int loom__get_aux(lua_State *L, int idx, const char *k);  /* pushes */
void loom__set_aux(lua_State *L, int idx, const char *k);  /* pops */
int loom__push_value(lua_State *L, loom_future *f, int idx);
void loom__store_values(lua_State *L, int idx, lua_State *from, int n);
void loom__observe(lua_State *L, loom_future *f, int idx);
void loom__complete(lua_State *L, loom_host *H, loom_future *f, int idx);
void loom__add_callback(lua_State *L, loom_future *f, int idx, int fidx,
                        int quiet);
int loom__results(lua_State *L, int idx);  /* loom_results */
int loom__on_done(lua_State *L, int idx);  /* fn on top: task:on_done */

/* sched.c: waiting */
loom_task *loom__current(lua_State *L, loom_host *H, const char *name);
loom_task *loom__enter(lua_State *L, loom_host *H, const char *name);
int loom__wait(lua_State *L, lua_KFunction k, lua_KContext ctx);  /* yields */
int loom__call_left(loom_call *c);  /* its task was cancelled meanwhile */
int loom__suspend(lua_State *L, loom_k k);  /* loom__wait with H and t */
loom_task *loom__resumed(lua_State *L, loom_host *H);  /* checks, or raises */
int loom__yield(lua_State *L, loom_host *H, const char *name);
void loom__link_waiter(loom_future *f, loom_task *t);  /* WAIT_AWAIT... */
void loom__unwait(loom_host *H, loom_task *t);  /* leaves its wait */
void loom__list_wait(loom_task **list, loom_task *t);  /* WAIT_LIST */
loom_task *loom__list_wake(loom_host *H, loom_task **list);  /* first */
void loom__list_resume(loom_host *H, loom_task **list);  /* first, now */
loom_task *loom__list_resumed(lua_State *L, loom_host *H);  /* checks */
int loom__rethrow(lua_State *L, loom_host *H, loom_task *t);

/* sched.c: cancellation and reports */
int loom__cancel(lua_State *L, loom_host *H, loom_task *t, int msgidx);
void loom__throw(lua_State *L, loom_host *H, loom_task *t);
void loom__cancel_all(loom_host *H, const char *why);  /* every task */
void loom__stall(loom_host *H);  /* cancels what nothing can wake */
int loom__state(const loom_future *f);  /* LOOM_TASK_* */
loom_future *loom__tofuture(lua_State *L, int idx);  /* or NULL */
loom_task *loom__totask(lua_State *L, int idx);  /* or NULL */
void loom__report_unobserved(lua_State *L, loom_host *H);
void loom__report_unrun(lua_State *L, loom_host *H);  /* state closes */
void loom__report_pending(loom_host *H);  /* debug: tasks nothing wakes */
void loom__report_exit(loom_host *H);  /* debug: what is left as a run ends */
void loom__describe_pending(lua_State *L, loom_host *H);  /* pushes it */

/* host.c */
loom_host *loom__host_new(lua_State *L, uv_loop_t *loop);  /* raises */
loom_host *loom__host_of(lua_State *L);  /* the state's host, created */

/* }==================================================================== */


/*
** {====================================================================
** The families
** =====================================================================
*/

/* task.c, time.c, coro.c, work.c, queue.c: core functions */
void loom__task_open(lua_State *L, loom_host *H);  /* task & future API */
void loom__timer_open(lua_State *L, loom_host *H);  /* time API */
double loom__checkduration(lua_State *L, int idx, const char *fname);
void loom__coro_open(lua_State *L, loom_host *H);  /* wraps coroutine.* */
void loom__work_register(lua_State *L, loom_host *H);  /* loom.work */
void loom__inspect_register(lua_State *L, loom_host *H);  /* core.stats.. */
void loom__queue_register(lua_State *L, loom_host *H);  /* loom.queue */

/* signal.c */
void loom__signal_register(lua_State *L, loom_host *H);
const char *loom__signal_name(int signum);  /* "SIGTERM", or NULL */
int loom__signal_has_fn(loom_host *H, int signum);  /* a default is set */

/* stream.c */
typedef enum {
  LOOM_STREAM_TCP, LOOM_STREAM_PIPE, LOOM_STREAM_TTY
} loom_stream_kind;

/*
** A layer between a stream's bytes and its socket (TLS: tls.c), which
** stream.c knows only through these functions, as Node's TLS sits on
** its TCP wrap.  With a hook, what the socket reads goes to 'input',
** which appends what it makes of it to the read buffer (through
** loom__stream_room); what the stream writes goes to 'output'; both
** send what they make with loom__stream_try, then loom__stream_send
** for what the kernel did not take.  Errors are libuv codes
** (UV_EOF from 'input': a clean end); 'reason' gives the text of one
** the hook made (NULL: libuv's).  'finish' ends the writes (before a
** shutdown, or a close that lets queued writes go out); 'free' lets go
** of the hook's state when the stream's memory goes.
*/
struct loom_stream_hook {
  int (*input)(loom_stream *s, const char *p, size_t n);  /* n 0: EOF */
  int (*output)(loom_stream *s, const char *p, size_t n);
  int (*finish)(loom_stream *s);
  const char *(*reason)(loom_stream *s, int err);
  void (*free)(loom_stream *s);
  /* optional (NULL): a hook that reads by itself (a file), started
  ** ('on' 1) and stopped, which calls loom__stream_got; the bytes the
  ** hook holds that are not yet with the kernel */
  int (*read)(loom_stream *s, int on);
  size_t (*queued)(loom_stream *s);
};

struct loom_stream {
  loom_handle base;
  union {
    uv_handle_t h;
    uv_stream_t s;
    uv_tcp_t tcp;
    uv_pipe_t pipe;
    uv_tty_t tty;
  } u;
  char *buf;                /* read buffer: data at buf[start, start+len) */
  size_t start, len, cap;
  size_t hwm;               /* write high-water mark */
  size_t line_limit;
  int pending;              /* write requests in flight */
  int rerr, werr;           /* first read and write errors */
  unsigned kind : 2;
  unsigned reading : 1, eof : 1, closed : 1, shut : 1;
  unsigned skipline : 1;    /* dropping the rest of an over-long line */
  unsigned lingering : 1;   /* closed, its queued writes still going */
  unsigned released : 1;    /* its handle is closing: no Lua any more */
  unsigned weak : 1;        /* reads only while a task waits to read */
  unsigned lost_writes : 3; /* debug: writes after the peer went away */
  write_req *writes;        /* writes in flight (stream.c) */
  loom_task *readers, *writers;  /* WAIT_LIST */
  const loom_stream_hook *hook;  /* or NULL: the socket's bytes as they are */
  void *hook_ud;            /* the hook's state */
  struct stream_tmo *tmo;   /* stream:timeout's timers, or NULL (none) */
  char name[72];            /* the other end, for messages */
};

void loom__stream_open(lua_State *L);  /* the Stream metatable */
loom_stream *loom__stream_new(lua_State *L, loom_host *H,
                              loom_stream_kind kind,
                              const char *name);
void loom__stream_rename(loom_stream *s, const char *name);
void loom__stream_close(loom_stream *s, int force);
loom_stream *loom__tostream(lua_State *L, int idx, const char *fname);
loom_stream *loom__stream_resumed(lua_State *L);  /* at 1, or NULL */
char *loom__stream_room(loom_stream *s, size_t *room);  /* or NULL */
#define LOOM_READ_CHUNK (64 * 1024)  /* the slab; room of each read */
int loom__stream_append(loom_stream *s, const char *p, size_t n);
char *loom__stream_slab(loom_stream *s);  /* shared; or NULL */
int loom__stream_send(loom_stream *s, char *chunk, size_t n);  /* takes */
int loom__stream_try(loom_stream *s, const char *p, size_t n);  /* taken */
int loom__stream_read(loom_stream *s);  /* reads past the limit */
void loom__stream_got(loom_stream *s, int r);  /* a read came: see stream.c */
void loom__stream_timer_fire(loom_host *H, loom_timer *tm);  /* timeout */
size_t loom__stream_queued(loom_stream *s);  /* not yet with the kernel */
void loom__stream_drained(loom_stream *s, int err);  /* wakes writers */
int loom__stream_put(loom_stream *s, const char *p, size_t n);  /* at once */
int loom__stream_fail(lua_State *L, loom_stream *s, const char *what,
                      int err);
int loom__push_sockaddr(lua_State *L, const struct sockaddr *sa, char *buf);

/* stdio.c: the standard streams and their writers, the sinks */
void loom__stdio_register(lua_State *L, loom_host *H);  /* core.stdio */
void loom__stdio_install(lua_State *L);  /* print, io.write, file:write */
void loom__stdio_restore(lua_State *L);  /* ...back as they were */
loom_sink *loom__stdio_sink(loom_host *H, int fd);  /* 1 or 2; or NULL */
loom_sink *loom__sink_new(loom_host *H, int fd, int own);  /* or NULL */
int loom__sink_write(loom_sink *k, const char *p, size_t n, size_t bound);
size_t loom__sink_queued(loom_sink *k);
void loom__sink_on_drained(loom_sink *k, void (*fn)(loom_sink *, void *),
                           void *ud);  /* called when its queue empties */
void loom__sink_close(loom_sink *k);  /* writes out its queue first */
loom_sink *loom__stream_sink(loom_stream *s);  /* loom.stdout's, or NULL */

/* log.c: loom.log's writer */
void loom__log_register(lua_State *L, loom_host *H);  /* core.log_* */

/* net.c, process.c, fs.c: register their core functions */
void loom__net_register(lua_State *L, loom_host *H);  /* core.net */
void loom__tls_register(lua_State *L, loom_host *H);  /* core.tls */
void loom__process_register(lua_State *L, loom_host *H);  /* core.proc */
void loom__fs_register(lua_State *L, loom_host *H);  /* core.fs */
void loom__http_parser_register(lua_State *L, loom_host *H);  /* core.http */

/* http_client.c: core.http */
void loom__http_register(lua_State *L, loom_host *H);
/* websocket.c: wslay's framing as buffers, core.websocket */
void loom__websocket_register(lua_State *L, loom_host *H);

/* }==================================================================== */


/* module.c */
int loom__open_lua(lua_State *L, const char *name);  /* embedded chunk */

#endif
