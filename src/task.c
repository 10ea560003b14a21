/*
** task.c: tasks and futures.
**
** A future is a 'loom.future' userdata; a task is a 'loom.task'
** userdata whose struct begins with the future's.  Both keep their
** outcome in user value UV_VALUE (nothing, the single result, a table
** of results, or the error).  Rarely used fields live in the host's
** aux table (weak keys), one table per future that needs them: 'name',
** 'trace' (traceback of a failure), 'throw' (an error waiting to be
** raised in the task), 'cause' and 'cause_trace' (the failure it got
** from a task it awaited), 'callbacks' (on_done), 'watch'.
**
** A pending task is anchored in the host's live table at 't->ref'.
** Before it starts, UV_VALUE holds its function and user values 2..
** its arguments; coroutines are taken from a small pool only when the
** task first runs, so a million spawned tasks that have not run yet
** cost no stacks, and a finished task gives its coroutine back.
*/
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define POOL_MAX 256  /* idle coroutines kept for reuse */
#define SLOW_MS 100   /* debug: a step longer than this is reported */

char loom__tag;


/*
** {====================================================================
** Helpers
** =====================================================================
*/

/* The Task or Future at 'idx', or NULL. */
static loom_future *tofuture(lua_State *L, int idx) {
  loom_future *f = luaL_testudata(L, idx, LOOM_TASK_MT);
  return f != NULL ? f : luaL_testudata(L, idx, LOOM_FUTURE_MT);
}

/*
** The same for the functions that hold the host box as upvalue 1 (every
** method and core function here): the metatable is compared with the
** host's by registry index, where luaL_testudata would look its name up
** as a string, and await runs this for every task.
*/
static loom_future *tofuture_up(lua_State *L, int idx) {
  loom_host *H = ((loom_hostbox *)lua_touserdata(L, lua_upvalueindex(1)))->H;
  loom_future *f = lua_touserdata(L, idx);
  int ok;
  if (H == NULL) return tofuture(L, idx);
  if (f == NULL || !lua_getmetatable(L, idx)) return NULL;
  lua_rawgeti(L, LUA_REGISTRYINDEX, H->task_mt_ref);
  ok = lua_rawequal(L, -1, -2);
  if (!ok) {
    lua_pop(L, 1);
    lua_rawgeti(L, LUA_REGISTRYINDEX, H->future_mt_ref);
    ok = lua_rawequal(L, -1, -2);
  }
  lua_pop(L, 2);
  return ok ? f : NULL;
}

static loom_future *checkfuture(lua_State *L, int idx, const char *what) {
  loom_future *f = tofuture_up(L, idx);
  if (f == NULL) {
    const char *msg = lua_pushfstring(L, "%s expected, got %s", what,
                                      luaL_typename(L, idx));
    luaL_argerror(L, idx, msg);
  }
  if (loom__fhost(f) == NULL)
    luaL_error(L, "loom: the host of this %s is closed",
               f->is_task ? "task" : "future");
  return f;
}

static loom_task *checktask(lua_State *L, int idx) {
  loom_task *t = luaL_checkudata(L, idx, LOOM_TASK_MT);
  if (loom__fhost(&t->f) == NULL)
    luaL_error(L, "loom: the host of this task is closed");
  return t;
}

/*
** Pushes the aux table of the future at 'idx' (creating it if 'create',
** else pushing nil when it has none).
*/
static int push_aux(lua_State *L, int idx, int create) {
  loom_future *f = lua_touserdata(L, idx);
  loom_host *H = loom__fhost(f);
  idx = lua_absindex(L, idx);
  if (H == NULL || !(f->has_aux || create)) {
    lua_pushnil(L);
    return 0;
  }
  f->has_aux = 1;
  lua_rawgeti(L, LUA_REGISTRYINDEX, H->aux_ref);
  lua_pushvalue(L, idx);
  if (lua_rawget(L, -2) != LUA_TTABLE && create) {
    lua_pop(L, 1);
    lua_createtable(L, 0, 2);
    lua_pushvalue(L, idx);
    lua_pushvalue(L, -2);
    lua_rawset(L, -4);
  }
  lua_remove(L, -2);  /* remove the host's aux table */
  return lua_istable(L, -1);
}

/* Pushes field 'k' of the aux table of the future at 'idx'. */
static int get_aux(lua_State *L, int idx, const char *k) {
  if (!push_aux(L, idx, 0)) return LUA_TNIL;
  lua_getfield(L, -1, k);
  lua_remove(L, -2);
  return lua_type(L, -1);
}

/* Sets field 'k' of the aux table of 'idx' to the value on top. */
static void set_aux(lua_State *L, int idx, const char *k) {
  idx = lua_absindex(L, idx);
  if (!push_aux(L, idx, 1)) {
    lua_pop(L, 2);  /* an orphaned future keeps nothing */
    return;
  }
  lua_insert(L, -2);
  lua_setfield(L, -2, k);
  lua_pop(L, 1);  /* remove aux */
}

void loom__push_task(lua_State *L, loom_host *H, loom_task *t) {
  lua_rawgeti(L, LUA_REGISTRYINDEX, H->live_ref);
  lua_rawgeti(L, -1, t->ref);
  lua_remove(L, -2);
}

/* Makes the task at 'idx' the main task (0: none), keeping it alive. */
void loom__set_main(lua_State *L, loom_host *H, int idx) {
  luaL_unref(L, LUA_REGISTRYINDEX, H->main_ref);
  H->main_ref = LUA_NOREF;
  H->main = NULL;
  if (idx == 0) return;
  H->main = lua_touserdata(L, idx);
  lua_pushvalue(L, idx);
  H->main_ref = luaL_ref(L, LUA_REGISTRYINDEX);
}

static void push_name(lua_State *L, int idx) {
  loom_task *t = lua_touserdata(L, idx);
  if (get_aux(L, idx, "name") == LUA_TNIL) {
    lua_pop(L, 1);
    loom_host *H = loom__fhost(&t->f);
    if (H != NULL && t == H->main) lua_pushliteral(L, "main");
    else lua_pushfstring(L, "task-%d", (int)t->id);
  }
}

/* Pushes the outcome stored in the future at 'idx'; returns how many. */
static int push_value(lua_State *L, loom_future *f, int idx) {
  int i, n = f->state == FUT_OK ? f->nres : 1;
  if (n == 0) return 0;
  lua_getiuservalue(L, idx, UV_VALUE);
  if (n == 1) return 1;
  luaL_checkstack(L, n, "too many results");
  for (i = 1; i <= n; i++) lua_rawgeti(L, -i, i);
  lua_remove(L, -(n + 1));  /* remove the table */
  return n;
}

void loom__push_results(lua_State *L, loom_future *f, int idx) {
  push_value(L, f, idx);
}

/*
** Stores the 'n' values on top of 'from' (which may be L itself) as the
** outcome of the userdata at 'idx' of L, popping them.
*/
static void store_values(lua_State *L, int idx, lua_State *from, int n) {
  int i;
  if (n == 0) lua_pushnil(L);
  else if (n == 1) lua_xmove(from, L, 1);
  else {
    lua_createtable(L, n, 0);
    for (i = n; i >= 1; i--) {
      if (from == L) lua_rotate(L, -2, 1);  /* value above the table */
      else lua_xmove(from, L, 1);
      lua_rawseti(L, -2, i);
    }
  }
  lua_setiuservalue(L, idx, UV_VALUE);
}

/* }==================================================================== */


/*
** {====================================================================
** Completion
** =====================================================================
*/

static void report_failure(lua_State *L, loom_host *H, int idx);

#define LOOM_WATCH_MT "loom.failure_watch"

/*
** A failure watch reports the failure of its future when the future is
** collected unobserved.  Only failed futures get one, so the others
** carry no finalizer.  It sits in the future's aux table and holds the
** future in its user value: both become garbage together, and the
** watch's finalizer brings the future back for the report.
*/
static int watch_gc(lua_State *L) {
  loom_future *f;
  lua_getiuservalue(L, 1, 1);
  f = lua_touserdata(L, -1);
  if (f != NULL && f->state == FUT_FAILED && !f->observed && !f->reported
      && loom__fhost(f) != NULL)
    report_failure(L, loom__fhost(f), lua_gettop(L));
  return 0;
}

static void set_failed(lua_State *L, loom_host *H, loom_future *f,
                       int idx) {
  lua_rawgeti(L, LUA_REGISTRYINDEX, H->failed_ref);
  lua_pushvalue(L, idx);
  lua_rawsetp(L, -2, f);
  lua_pop(L, 1);
  lua_newuserdatauv(L, 1, 1);
  if (luaL_newmetatable(L, LOOM_WATCH_MT)) {
    lua_pushcfunction(L, watch_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_setmetatable(L, -2);
  lua_pushvalue(L, idx);
  lua_setiuservalue(L, -2, 1);
  set_aux(L, idx, "watch");
}

/* Marks the outcome of 'f' (at 'idx') as seen by someone. */
static void observe(lua_State *L, loom_future *f, int idx) {
  if (f->observed) return;
  f->observed = 1;
  if (f->state == FUT_FAILED && loom__fhost(f) != NULL) {
    (void)idx;
    lua_rawgeti(L, LUA_REGISTRYINDEX, loom__fhost(f)->failed_ref);
    lua_pushnil(L);
    lua_rawsetp(L, -2, f);
    lua_pop(L, 1);
  }
}

static int msghandler(lua_State *L) {
  const char *msg = loom__tostring(L, 1);
  luaL_traceback(L, L, msg, 1);
  return 1;
}

/* Calls the on_done callbacks of the future at 'idx', reporting errors. */
static void run_callbacks(lua_State *L, loom_host *H, int idx) {
  int i, n;
  if (get_aux(L, idx, "callbacks") != LUA_TTABLE) {
    lua_pop(L, 1);
    return;
  }
  n = (int)lua_rawlen(L, -1);
  lua_pushnil(L);
  set_aux(L, idx, "callbacks");
  for (i = 1; i <= n; i++) {
    lua_pushcfunction(L, msghandler);
    lua_rawgeti(L, -2, i);
    lua_pushvalue(L, idx);
    if (lua_pcall(L, 1, 0, -3) != LUA_OK) {
      const char *s = lua_tostring(L, -1);
      lua_pushfstring(L, "error in an on_done callback: %s",
                      s ? s : "?");
      loom__report(H, lua_tostring(L, -1), "");
      lua_pop(L, 2);  /* remove messages */
    }
    lua_pop(L, 1);  /* remove msghandler */
  }
  lua_pop(L, 1);  /* remove callbacks */
}

/* Appends 't' to the waiters of 'f' (a circular list: head->prev is the tail). */
static void link_waiter(loom_future *f, loom_task *t) {
  loom_task *head = f->waiters;
  t->u.w.on = f;
  if (head == NULL) {
    t->u.w.next = t->u.w.prev = t;
    f->waiters = t;
  }
  else {
    t->u.w.next = head;
    t->u.w.prev = head->u.w.prev;
    head->u.w.prev->u.w.next = t;
    head->u.w.prev = t;
  }
}

static void unlink_waiter(loom_future *f, loom_task *t) {
  if (t->u.w.next == t) f->waiters = NULL;
  else {
    t->u.w.prev->u.w.next = t->u.w.next;
    t->u.w.next->u.w.prev = t->u.w.prev;
    if (f->waiters == t) f->waiters = t->u.w.next;
  }
  t->u.w.next = t->u.w.prev = NULL;
  t->u.w.on = NULL;
}

/*
** The future at 'idx' just got its outcome: wake its waiters, run its
** callbacks, and remember an error nobody has seen yet.
*/
static void complete(lua_State *L, loom_host *H, loom_future *f, int idx) {
  loom_task *w;
  idx = lua_absindex(L, idx);
  while ((w = f->waiters) != NULL) {
    if (w->wait == WAIT_AWAIT) f->observed = 1;  /* not WAIT_DONE */
    unlink_waiter(f, w);
    loom__wake(H, w);
  }
  run_callbacks(L, H, idx);
  if (f->state == FUT_FAILED && !f->observed) set_failed(L, H, f, idx);
}

/* }==================================================================== */


/*
** {====================================================================
** The resume path
** =====================================================================
*/

static void pool_put(lua_State *L, loom_host *H) {
  if (H->npool >= POOL_MAX) {
    lua_pop(L, 1);
    return;
  }
  lua_rawgeti(L, LUA_REGISTRYINDEX, H->pool_ref);
  lua_insert(L, -2);
  lua_rawseti(L, -2, ++H->npool);
  lua_pop(L, 1);  /* remove pool */
}

static lua_State *pool_get(lua_State *L, loom_host *H) {
  if (H->npool == 0) return lua_newthread(L);
  lua_rawgeti(L, LUA_REGISTRYINDEX, H->pool_ref);
  lua_rawgeti(L, -1, H->npool);
  lua_pushnil(L);
  lua_rawseti(L, -3, H->npool--);
  lua_remove(L, -2);  /* remove pool */
  return lua_tothread(L, -1);
}

/* Closes pending to-be-closed variables of a dead coroutine. */
static int close_thread(lua_State *co, lua_State *L) {
#if defined(LUA_VERSION_RELEASE_NUM) && LUA_VERSION_RELEASE_NUM >= 50406
  return lua_closethread(co, L);
#else
  (void)L;
  return lua_resetthread(co);
#endif
}

/*
** Builds the traceback of a failure of the task at 'idx', whose error
** is at 'eidx': the frames of its coroutine, named after the task and,
** when the error came out of an await, preceded by the traceback of
** the task it came from.
*/
static void push_trace(lua_State *L, lua_State *co, int idx, int eidx) {
  luaL_Buffer b;
  int chained = get_aux(L, idx, "cause") != LUA_TNIL
                && lua_rawequal(L, -1, eidx);
  lua_pop(L, 1);
  luaL_buffinit(L, &b);
  if (chained) {
    get_aux(L, idx, "cause_trace");
    luaL_addvalue(&b);
    luaL_addstring(&b, "\nawaited by ");
  }
  else luaL_addstring(&b, "stack traceback of ");
  luaL_addstring(&b, "task '");
  push_name(L, idx);
  luaL_addvalue(&b);
  luaL_addstring(&b, "':");
  luaL_traceback(L, co, NULL, 0);
  lua_pushstring(L, strchr(lua_tostring(L, -1), '\n'));  /* no header */
  lua_remove(L, -2);
  luaL_addvalue(&b);
  luaL_pushresult(&b);
}

static void release(loom_host *H, loom_task *t) {
  lua_State *L = H->L;
  t->co = NULL;
  lua_rawgeti(L, LUA_REGISTRYINDEX, H->live_ref);
  luaL_unref(L, -1, t->ref);
  lua_pop(L, 1);
  t->ref = LUA_NOREF;
  H->ntasks--;
}

/* The task at 'idx' ends with the error on top of L. */
static void fail(lua_State *L, loom_host *H, loom_task *t, int idx) {
  int cancelled = loom__is_cancelled(L, H, -1);
  t->f.state = cancelled ? FUT_CANCELLED : FUT_FAILED;
  t->f.nres = 1;
  lua_setiuservalue(L, idx, UV_VALUE);
}

/*
** The coroutine of 't' returned ('status' LUA_OK, 'nres' values on its
** stack) or raised.  Stores the outcome, recycles the coroutine and
** completes the task.
*/
static void finish(loom_host *H, loom_task *t, int status, int nres) {
  lua_State *L = H->L, *co = t->co;
  int idx;
  loom__push_task(L, H, t);
  idx = lua_gettop(L);
  lua_getiuservalue(L, idx, UV_VALUE);  /* the coroutine */
  if (status == LUA_OK) {
    store_values(L, idx, co, nres);
    t->f.state = FUT_OK;
    t->f.nres = nres;
  }
  else {
    lua_pushvalue(co, -1);
    lua_xmove(co, L, 1);  /* error */
    if (!loom__is_cancelled(L, H, -1)) {
      push_trace(L, co, idx, lua_gettop(L));
      set_aux(L, idx, "trace");
    }
    /* the __close handlers run as part of the task: it is current, and
    ** nothing may queue it again (it is as good as done) */
    t->closing = 1;
    H->current = t;
    if (close_thread(co, L) != LUA_OK) {  /* a __close raised: new error */
      lua_pop(L, 1);
      lua_xmove(co, L, 1);
    }
    H->current = NULL;
    fail(L, H, t, idx);
  }
  loom__unwait(H, t);  /* a wait left behind by an abandoned coroutine */
  lua_settop(co, 0);
  release(H, t);
  if (t->escaped) lua_pop(L, 1);  /* its identity is known: not reused */
  else pool_put(L, H);  /* the coroutine */
  complete(L, H, &t->f, idx);
  lua_settop(L, idx - 1);
  if (t == H->main && t->f.state != FUT_OK) {  /* as asyncio.run does */
    H->main_ended = 1;
    loom__cancel_all(H, "the main task ended with an error");
  }
}

/* Raises the error waiting in 't'. */
int loom__rethrow(lua_State *L, loom_host *H, loom_task *t) {
  loom__push_task(L, H, t);
  get_aux(L, -1, "throw");
  lua_pushnil(L);
  set_aux(L, -3, "throw");
  t->throwing = 0;
  return lua_error(L);
}

/*
** Gives 't' its coroutine with the function and arguments on it.
** Returns 0 when the task was cancelled before it ran: it is finished.
*/
static int start(loom_host *H, loom_task *t, int *narg) {
  lua_State *L = H->L, *co;
  int i, idx;
  loom__push_task(L, H, t);
  idx = lua_gettop(L);
  t->started = 1;
  if (t->throwing) {
    t->throwing = 0;
    get_aux(L, idx, "throw");
    fail(L, H, t, idx);
    release(H, t);
    complete(L, H, &t->f, idx);
    lua_settop(L, idx - 1);
    return 0;
  }
  co = pool_get(L, H);
  luaL_checkstack(co, t->nargs + 1, "too many arguments");
  for (i = 1; i <= t->nargs + 1; i++) {
    lua_getiuservalue(L, idx, i);
    lua_xmove(L, co, 1);
    if (i > 1) {  /* let go of the argument */
      lua_pushnil(L);
      lua_setiuservalue(L, idx, i);
    }
  }
  lua_setiuservalue(L, idx, UV_VALUE);  /* the coroutine */
  lua_settop(L, idx - 1);
  t->co = co;
  *narg = t->nargs;
  return 1;
}

static void warn_slow(loom_host *H, loom_task *t, uint64_t ns) {
  lua_State *L = H->L;
  loom__push_task(L, H, t);
  if (t->co != NULL) luaL_traceback(L, t->co, NULL, 0);
  else lua_pushliteral(L, "");
  push_name(L, -2);
  fprintf(stderr, "loom: task '%s' ran for %d ms without suspending\n%s\n",
          lua_tostring(L, -1), (int)(ns / 1000000), lua_tostring(L, -2));
  lua_pop(L, 3);
}

/*
** Runs 't' until it suspends or ends.  A yield that does not carry the
** loom tag is a plain coroutine.yield at the top of the task: it acts
** as loom.yield.
*/
void loom__step(loom_host *H, loom_task *t) {
  int status, nres, narg = 0;
  uint64_t t0 = 0;
  if (!t->started && !start(H, t, &narg)) return;
  if (H->debug) t0 = uv_hrtime();
  H->current = t;
  status = lua_resume(t->co, H->L, narg, &nres);
  H->current = NULL;
  if (H->debug && uv_hrtime() - t0 > SLOW_MS * 1000000ull
      && status == LUA_YIELD)
    warn_slow(H, t, uv_hrtime() - t0);
  if (status == LUA_YIELD) {
    if (nres != 1 || lua_touserdata(t->co, -1) != &loom__tag)
      loom__wake(H, t);
    lua_pop(t->co, nres);
    return;
  }
  finish(H, t, status, nres);
}

/* }==================================================================== */


/*
** {====================================================================
** Suspension and cancellation
** =====================================================================
*/

/* The running task; raises, naming the function 'name', when none is. */
loom_task *loom__current(lua_State *L, loom_host *H, const char *name) {
  if (H->current == NULL) {
    loom__where(L);
    lua_pushfstring(L, "loom: %s called outside a task (use loom.run or "
                       "the loom binary)", name);
    lua_concat(L, 2);
    lua_error(L);
  }
  return H->current;
}

/*
** Checks that the running task may suspend now: raises when there is
** no task, when a cancellation waits, or when a C function that Lua
** cannot yield across stands between here and the task.  A wait left
** behind by a coroutine that was abandoned mid-wait is dropped.
*/
loom_task *loom__enter(lua_State *L, loom_host *H, const char *name) {
  loom_task *t = loom__current(L, H, name);
  if (t->throwing) loom__rethrow(L, H, t);
  if (!lua_isyieldable(L)) loom__boundary_error(L, name);
  loom__unwait(H, t);
  return t;
}

static void unlink_waiter(loom_future *f, loom_task *t);

/*
** Lists of waiting tasks (queues use them): circular, oldest first, the
** head's 'prev' being the newest.  A task on one waits with WAIT_LIST.
*/
static void list_unlink(loom_task *t) {
  loom_task **list = t->u.l.list;
  if (list == NULL) return;
  if (t->u.l.next == t) *list = NULL;
  else {
    t->u.l.prev->u.l.next = t->u.l.next;
    t->u.l.next->u.l.prev = t->u.l.prev;
    if (*list == t) *list = t->u.l.next;
  }
  t->u.l.next = t->u.l.prev = NULL;
  t->u.l.list = NULL;
}

void loom__list_wait(loom_task **list, loom_task *t) {
  loom_task *head = *list;
  t->u.l.list = list;
  if (head == NULL) {
    t->u.l.next = t->u.l.prev = t;
    *list = t;
  }
  else {
    t->u.l.next = head;
    t->u.l.prev = head->u.l.prev;
    head->u.l.prev->u.l.next = t;
    head->u.l.prev = t;
  }
  t->woken = 0;
  t->wait = WAIT_LIST;
}

/*
** Takes the first task off 'list' and runs it at once, as a libuv
** callback would run its own code: used from I/O callbacks (never from
** inside a task) so that a reply goes out in the same poll round, not
** after every other event of the round.
*/
void loom__list_resume(loom_host *H, loom_task **list) {
  loom_task *t = *list;
  if (t == NULL) return;
  if (H->current != NULL || t->queued) {  /* not from the top: queue it */
    loom__list_wake(H, list);
    return;
  }
  list_unlink(t);
  t->woken = 1;
  t->wait = WAIT_NONE;
  loom__step(H, t);
}

/*
** For the continuation of a wait on a list: checks that the running
** task may go on (its host open, the coroutine resumed by its own task)
** and raises a cancellation or timeout that came meanwhile.  Returns
** the task, its 'woken' flag cleared.  'H' may be NULL (looked up).
*/
loom_task *loom__list_resumed(lua_State *L, loom_host *H) {
  loom_task *t;
  if (H == NULL) H = loom__host_of_state(L);
  if (H == NULL) luaL_error(L, "loom: the host is closed");
  t = H->current;
  if (t == NULL)
    luaL_error(L, "loom: a coroutine suspended in a loom call was resumed "
                  "outside its task");
  t->woken = 0;
  if (t->throwing) loom__rethrow(L, H, t);
  return t;
}

/* Wakes the first task of 'list' (marked 'woken'); returns it or NULL. */
loom_task *loom__list_wake(loom_host *H, loom_task **list) {
  loom_task *t = *list;
  if (t == NULL) return NULL;
  list_unlink(t);
  t->woken = 1;
  loom__wake(H, t);
  return t;
}

void loom__unwait(loom_host *H, loom_task *t) {
  switch (t->wait) {
    case WAIT_SLEEP: loom__timer_remove(H, &t->u.sleep); break;
    case WAIT_AWAIT: case WAIT_DONE:
      if (t->u.w.on != NULL) unlink_waiter(t->u.w.on, t);
      break;
    case WAIT_CALL: loom__call_unwait(H, t); break;
    case WAIT_LIST: list_unlink(t); break;
    default: break;  /* WAIT_YIELD: it stays queued; nothing to leave */
  }
  t->wait = WAIT_NONE;
}

static int suspend_k(lua_State *L, int status, lua_KContext ctx) {
  loom_host *H = ((loom_hostbox *)lua_touserdata(L, lua_upvalueindex(1)))->H;
  loom_task *t;
  (void)status;
  if (H == NULL) return luaL_error(L, "loom: the host is closed");
  t = H->current;
  if (t == NULL)
    return luaL_error(L, "loom: a coroutine suspended in a loom call was "
                         "resumed outside its task");
  if (t->throwing) return loom__rethrow(L, H, t);
  return ((loom_k)ctx)(L, H, t);
}

int loom__suspend(lua_State *L, loom_k k) {
  lua_pushlightuserdata(L, &loom__tag);
  return lua_yieldk(L, 1, (lua_KContext)k, suspend_k);
}

/*
** Makes the error on top of L (popped) the next thing 't' sees: at
** once if it is suspended, at its next suspension if it is running,
** or instead of running at all if it has not started.
*/
void loom__throw(lua_State *L, loom_host *H, loom_task *t) {
  if (t->throwing || t->closing || t->f.state != FUT_PENDING) {
    lua_pop(L, 1);
    return;
  }
  loom__push_task(L, H, t);
  lua_insert(L, -2);
  set_aux(L, -2, "throw");
  lua_pop(L, 1);  /* remove task */
  t->throwing = 1;
  if (t == H->current || t->queued) return;
  loom__unwait(H, t);
  loom__wake(H, t);
}

/*
** Cancels 't' with message 'msgidx' (0: default).  As in asyncio, a
** task that awaits another task passes the cancellation on and ends
** when that one has finished its cleanup.  Returns 0 if 't' is done.
*/
int loom__cancel(lua_State *L, loom_host *H, loom_task *t, int msgidx) {
  const char *msg = msgidx ? lua_tostring(L, msgidx) : NULL;
  int steps = 0;
  if (t->f.state != FUT_PENDING || t->closing) return 0;
  /* down the chain of awaited tasks; a cycle (tasks awaiting each other)
  ** ends the walk, at a task of the cycle */
  while (t->wait == WAIT_AWAIT && t->u.w.on->is_task && !t->throwing
         && t != H->current && steps++ <= H->ntasks)
    t = (loom_task *)t->u.w.on;
  loom__new_cancelled(L, H, msg ? msg : "task cancelled");
  loom__throw(L, H, t);
  return 1;
}

void loom__cancel_all(loom_host *H, const char *why) {
  lua_State *L = H->L;
  lua_rawgeti(L, LUA_REGISTRYINDEX, H->live_ref);
  lua_pushnil(L);
  while (lua_next(L, -2)) {
    loom_task *t = luaL_testudata(L, -1, LOOM_TASK_MT);
    if (t != NULL && t->f.state == FUT_PENDING) {
      loom__new_cancelled(L, H, why);
      loom__throw(L, H, t);
    }
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
}

/* }==================================================================== */


/*
** {====================================================================
** Reporting
** =====================================================================
*/

/* Reports the unobserved failure of the future at 'idx'. */
static void report_failure(lua_State *L, loom_host *H, int idx) {
  loom_future *f = lua_touserdata(L, idx);
  int top = lua_gettop(L);
  f->reported = 1;
  lua_getiuservalue(L, idx, UV_VALUE);
  if (!f->is_task) lua_pushfstring(L, "error in a future nobody awaited: %s",
                                   loom__tostring(L, -1));
  else if (f == &H->main->f) lua_pushstring(L, loom__tostring(L, -1));
  else {
    const char *msg = loom__tostring(L, -1);
    push_name(L, idx);
    lua_pushfstring(L, "error in task '%s': %s", lua_tostring(L, -1), msg);
  }
  if (get_aux(L, idx, "trace") != LUA_TSTRING) {
    lua_pop(L, 1);
    lua_pushliteral(L, "");
  }
  loom__report(H, lua_tostring(L, -2), lua_tostring(L, -1));
  lua_settop(L, top);
}

void loom__report_unobserved(loom_host *H) {
  lua_State *L = H->L;
  lua_rawgeti(L, LUA_REGISTRYINDEX, H->failed_ref);
  lua_pushnil(L);
  while (lua_next(L, -2)) {
    report_failure(L, H, lua_gettop(L));
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  lua_newtable(L);  /* start afresh: everything was reported */
  lua_createtable(L, 0, 1);
  lua_pushliteral(L, "v");
  lua_setfield(L, -2, "__mode");
  lua_setmetatable(L, -2);
  lua_rawseti(L, LUA_REGISTRYINDEX, H->failed_ref);
}

/*
** Pushes a description of the tasks still pending: for each, its name
** and where it waits.
*/
void loom__describe_pending(lua_State *L, loom_host *H) {
  int acc;
  lua_pushliteral(L, "");
  acc = lua_gettop(L);
  lua_rawgeti(L, LUA_REGISTRYINDEX, H->live_ref);
  lua_pushnil(L);
  while (lua_next(L, -2)) {
    loom_task *t = luaL_testudata(L, -1, LOOM_TASK_MT);
    if (t != NULL) {
      push_name(L, -1);
      if (t->co != NULL) luaL_traceback(L, t->co, NULL, 0);
      else lua_pushliteral(L, "stack traceback:\n\t(not started)");
      lua_pushfstring(L, "%s\ntask '%s' waits: %s", lua_tostring(L, acc),
                      lua_tostring(L, -2), lua_tostring(L, -1));
      lua_replace(L, acc);
      lua_pop(L, 2);
    }
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
}

void loom__report_pending(loom_host *H) {
  loom__describe_pending(H->L, H);
  fprintf(stderr, "loom: tasks still waiting:%s\n", lua_tostring(H->L, -1));
  lua_pop(H->L, 1);
}

/* }==================================================================== */


/*
** {====================================================================
** Lua API: futures and tasks
** =====================================================================
*/

static int await_k(lua_State *L, loom_host *H, loom_task *t);

/* Returns the outcome of the done future at 1, or raises its error. */
static int outcome(lua_State *L, loom_host *H, loom_future *f) {
  int n;
  observe(L, f, 1);
  n = push_value(L, f, 1);
  if (f->state == FUT_OK) return n;
  if (f->is_task && f->state == FUT_FAILED && H->current != NULL) {
    /* remember where the error came from, for the traceback */
    loom__push_task(L, H, H->current);
    lua_pushvalue(L, -2);
    set_aux(L, -2, "cause");
    get_aux(L, 1, "trace");
    set_aux(L, -2, "cause_trace");
    lua_pop(L, 1);  /* remove current task */
  }
  return lua_error(L);
}

static int await_k(lua_State *L, loom_host *H, loom_task *t) {
  (void)t;
  return outcome(L, H, tofuture_up(L, 1));
}

static int await_future(lua_State *L, loom_host *H, loom_future *f) {
  loom_task *t = loom__current(L, H, "loom.await");
  if (f == &t->f) luaL_error(L, "loom.await: a task cannot await itself");
  if (f->state != FUT_PENDING) return outcome(L, H, f);
  t = loom__enter(L, H, "loom.await");
  link_waiter(f, t);
  t->wait = WAIT_AWAIT;
  return loom__suspend(L, await_k);
}

static int l_await(lua_State *L) {
  loom_host *H = loom__host(L);
  loom_future *f = checkfuture(L, 1, "Task or Future");
  lua_settop(L, 1);
  return await_future(L, H, f);
}

static int l_spawn(lua_State *L) {
  loom_host *H = loom__host(L);
  luaL_checkany(L, 1);
  if (lua_type(L, 1) != LUA_TFUNCTION
      && luaL_getmetafield(L, 1, "__call") == LUA_TNIL)
    luaL_typeerror(L, 1, "function");
  lua_settop(L, lua_gettop(L) - (lua_type(L, 1) != LUA_TFUNCTION ? 1 : 0));
  loom__spawn(L, H, lua_gettop(L) - 1);
  return 1;
}

/*
** Spawns the function below the 'nargs' values on top of L as a task;
** replaces them all by the task.
*/
loom_task *loom__spawn(lua_State *L, loom_host *H, int nargs) {
  int i, base = lua_gettop(L) - nargs;
  loom_task *t;
  if (nargs > USHRT_MAX - 1) luaL_error(L, "loom.spawn: too many arguments");
  t = lua_newuserdatauv(L, sizeof *t, 1 + nargs);
  memset(t, 0, sizeof *t);
  t->f.hb = H->box;
  t->f.gen = H->box->gen;
  t->f.is_task = 1;
  t->id = ++H->next_id;
  t->nargs = (unsigned short)nargs;
  lua_rawgeti(L, LUA_REGISTRYINDEX, H->task_mt_ref);
  lua_setmetatable(L, -2);
  for (i = 0; i <= nargs; i++) {
    lua_pushvalue(L, base + i);
    lua_setiuservalue(L, -2, i + 1);
  }
  lua_rawgeti(L, LUA_REGISTRYINDEX, H->live_ref);
  lua_pushvalue(L, -2);
  t->ref = luaL_ref(L, -2);
  lua_pop(L, 1);  /* remove live table */
  H->ntasks++;
  lua_replace(L, base);
  lua_settop(L, base);
  loom__wake(H, t);
  return t;
}

static int l_future(lua_State *L) {
  loom_host *H = loom__host(L);
  loom_future *f = lua_newuserdatauv(L, sizeof *f, 1);
  memset(f, 0, sizeof *f);
  f->hb = H->box;
  f->gen = H->box->gen;
  lua_rawgeti(L, LUA_REGISTRYINDEX, H->future_mt_ref);
  lua_setmetatable(L, -2);
  return 1;
}

/* core.state(x): "pending", "done", "failed" or "cancelled", quietly */
static int l_state(lua_State *L) {
  loom_future *f = checkfuture(L, 1, "Task or Future");
  static const char *const names[] = {"pending", "done", "failed",
                                      "cancelled"};
  lua_pushstring(L, names[f->state]);
  return 1;
}

static int l_is_future(lua_State *L) {
  lua_pushboolean(L, tofuture_up(L, 1) != NULL);
  return 1;
}

static int l_current(lua_State *L) {
  loom_host *H = loom__host(L);
  if (H->current == NULL) lua_pushnil(L);
  else loom__push_task(L, H, H->current);
  return 1;
}

static int l_tasks(lua_State *L) {
  loom_host *H = loom__host(L);
  int n = 0;
  lua_createtable(L, H->ntasks, 0);
  lua_rawgeti(L, LUA_REGISTRYINDEX, H->live_ref);
  lua_pushnil(L);
  while (lua_next(L, -2)) {
    if (lua_type(L, -1) == LUA_TUSERDATA) lua_rawseti(L, -4, ++n);
    else lua_pop(L, 1);
  }
  lua_pop(L, 1);
  return 1;
}

static int yield_k(lua_State *L, loom_host *H, loom_task *t) {
  (void)L; (void)H; (void)t;
  return 0;
}

/* Queues the running task behind every ready one and suspends it. */
int loom__yield(lua_State *L, loom_host *H, const char *name) {
  loom_task *t = loom__enter(L, H, name);
  loom__wake(H, t);
  t->wait = WAIT_YIELD;
  return loom__suspend(L, yield_k);
}

static int l_yield(lua_State *L) {
  return loom__yield(L, loom__host(L), "loom.yield");
}

/* future:set_result(...) */
static int f_set_result(lua_State *L) {
  loom_future *f = checkfuture(L, 1, "Future");
  int n = lua_gettop(L) - 1;
  if (f->state != FUT_PENDING)
    luaL_error(L, "future:set_result: the future is already done");
  f->state = FUT_OK;
  f->nres = n;
  store_values(L, 1, L, n);
  complete(L, loom__fhost(f), f, 1);
  return 0;
}

/* future:set_error(e) */
static int f_set_error(lua_State *L) {
  loom_future *f = checkfuture(L, 1, "Future");
  lua_settop(L, 2);
  if (f->state != FUT_PENDING)
    luaL_error(L, "future:set_error: the future is already done");
  f->state = loom__is_cancelled(L, loom__fhost(f), 2) ? FUT_CANCELLED
                                                       : FUT_FAILED;
  f->nres = 1;
  lua_setiuservalue(L, 1, UV_VALUE);
  complete(L, loom__fhost(f), f, 1);
  return 0;
}

static int f_cancel(lua_State *L) {
  loom_future *f = checkfuture(L, 1, "Future");
  const char *msg = luaL_optstring(L, 2, "future cancelled");
  if (f->state != FUT_PENDING) {
    lua_pushboolean(L, 0);
    return 1;
  }
  f->state = FUT_CANCELLED;
  f->nres = 1;
  loom__new_cancelled(L, loom__fhost(f), msg);
  lua_setiuservalue(L, 1, UV_VALUE);
  complete(L, loom__fhost(f), f, 1);
  lua_pushboolean(L, 1);
  return 1;
}

static int t_cancel(lua_State *L) {
  loom_task *t = checktask(L, 1);
  if (!lua_isnoneornil(L, 2)) luaL_checkstring(L, 2);
  lua_pushboolean(L, loom__cancel(L, loom__fhost(&t->f), t,
                                  lua_isnoneornil(L, 2) ? 0 : 2));
  return 1;
}

static int m_await(lua_State *L) {
  loom_future *f = checkfuture(L, 1, "Task or Future");
  lua_settop(L, 1);
  return await_future(L, loom__fhost(f), f);
}

static int m_done(lua_State *L) {
  loom_future *f = checkfuture(L, 1, "Task or Future");
  lua_pushboolean(L, f->state != FUT_PENDING);
  return 1;
}

static int m_cancelled(lua_State *L) {
  loom_future *f = checkfuture(L, 1, "Task or Future");
  lua_pushboolean(L, f->state == FUT_CANCELLED);
  return 1;
}

static int m_result(lua_State *L) {
  loom_future *f = checkfuture(L, 1, "Task or Future");
  lua_settop(L, 1);
  if (f->state == FUT_PENDING)
    luaL_error(L, "%s:result: the %s is not done",
               f->is_task ? "task" : "future",
               f->is_task ? "task" : "future");
  observe(L, f, 1);
  if (f->state == FUT_OK) return push_value(L, f, 1);
  push_value(L, f, 1);
  return lua_error(L);
}

static int m_error(lua_State *L) {
  loom_future *f = checkfuture(L, 1, "Task or Future");
  if (f->state == FUT_OK || f->state == FUT_PENDING) return 0;
  observe(L, f, 1);
  return push_value(L, f, 1);
}

/*
** Adds callback 2 to the future at 1; 'quiet' callbacks do not count as
** observing its error (the combinators use them and report otherwise).
*/
static int add_callback(lua_State *L, int quiet) {
  loom_future *f = checkfuture(L, 1, "Task or Future");
  luaL_checktype(L, 2, LUA_TFUNCTION);
  lua_settop(L, 2);
  if (!quiet) observe(L, f, 1);
  if (f->state != FUT_PENDING) {
    lua_pushvalue(L, 1);
    lua_call(L, 1, 0);
    return 0;
  }
  if (!push_aux(L, 1, 1)) return 0;  /* orphaned: nothing to call */
  if (lua_getfield(L, -1, "callbacks") != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_setfield(L, -3, "callbacks");
  }
  lua_pushvalue(L, 2);
  lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
  return 0;
}

static int m_on_done(lua_State *L) {
  return add_callback(L, 0);
}

/* core.watch(x, fn): x:on_done(fn) that leaves its error unobserved */
static int l_watch(lua_State *L) {
  return add_callback(L, 1);
}

static int wait_done_k(lua_State *L, loom_host *H, loom_task *t) {
  (void)L; (void)H; (void)t;
  return 0;
}

/*
** core.wait_done(x): suspends until x is done, without taking its
** outcome and without passing a cancellation of the caller on to x
** (loom.shield is built on it).
*/
static int l_wait_done(lua_State *L) {
  loom_host *H = loom__host(L);
  loom_future *f = checkfuture(L, 1, "Task or Future");
  loom_task *t = loom__current(L, H, "loom.shield");
  if (f == &t->f) luaL_error(L, "loom.shield: a task cannot await itself");
  if (f->state != FUT_PENDING) return 0;
  t = loom__enter(L, H, "loom.shield");
  link_waiter(f, t);
  t->wait = WAIT_DONE;
  return loom__suspend(L, wait_done_k);
}

static int t_traceback(lua_State *L) {
  loom_task *t = checktask(L, 1);
  loom_host *H = loom__fhost(&t->f);
  if (t == H->current) luaL_traceback(L, L, NULL, 1);
  else if (t->co != NULL) luaL_traceback(L, t->co, NULL, 0);
  else if (!t->started) lua_pushliteral(L, "stack traceback:\n\t(not started)");
  else if (get_aux(L, 1, "trace") != LUA_TSTRING) {
    lua_pop(L, 1);
    lua_pushliteral(L, "stack traceback:\n\t(finished)");
  }
  return 1;
}

static const char *const state_names[] = {
  "pending", "done", "failed", "cancelled"
};

static int t_tostring(lua_State *L) {
  loom_task *t = luaL_checkudata(L, 1, LOOM_TASK_MT);
  push_name(L, 1);
  lua_pushfstring(L, "loom.task '%s' (%s)", lua_tostring(L, -1),
                  state_names[t->f.state]);
  return 1;
}

static int f_tostring(lua_State *L) {
  loom_future *f = luaL_checkudata(L, 1, LOOM_FUTURE_MT);
  lua_pushfstring(L, "loom.future (%s): %p", state_names[f->state], f);
  return 1;
}

/* __index of tasks: 'name' is a field, the rest are methods */
static int t_index(lua_State *L) {
  const char *k = lua_tostring(L, 2);
  if (k != NULL && strcmp(k, "name") == 0) {
    push_name(L, 1);
    return 1;
  }
  lua_pushvalue(L, 2);
  lua_rawget(L, lua_upvalueindex(1));
  return 1;
}

static int t_newindex(lua_State *L) {
  const char *k = lua_tostring(L, 2);
  if (k == NULL || strcmp(k, "name") != 0)
    luaL_error(L, "loom.task: cannot set field '%s' (only 'name')",
               k ? k : luaL_typename(L, 2));
  if (!lua_isnil(L, 3)) luaL_checkstring(L, 3);
  lua_settop(L, 3);
  lua_tostring(L, 3);  /* a number becomes its text */
  set_aux(L, 1, "name");
  return 0;
}

/* loom_results: the outcome of the done future at 'idx', pushed. */
int loom__results(lua_State *L, int idx) {
  loom_future *f = tofuture(L, idx);
  idx = lua_absindex(L, idx);
  if (f == NULL) return LOOM_EINVAL;
  if (f->state == FUT_PENDING) return LOOM_EPENDING;
  observe(L, f, idx);
  if (f->state == FUT_OK) {
    if (!lua_checkstack(L, (int)f->nres + 1)) return LOOM_ENOMEM;
    return push_value(L, f, idx);
  }
  push_value(L, f, idx);
  return LOOM_EFAILED;
}

/* loom_on_done: future at 'idx', callback on top (popped). */
int loom__on_done(lua_State *L, int idx) {
  loom_future *f;
  idx = lua_absindex(L, idx);
  f = tofuture(L, idx);
  if (f == NULL || loom__fhost(f) == NULL) {
    lua_pop(L, 1);
    return LOOM_EINVAL;
  }
  loom__push_box(L);
  lua_pushcclosure(L, m_on_done, 1);  /* with the box, as registered */
  lua_pushvalue(L, idx);
  lua_rotate(L, -3, -1);  /* on_done, future, callback */
  return lua_pcall(L, 2, 0, 0) == LUA_OK ? LOOM_OK : (lua_pop(L, 1), LOOM_ENOMEM);
}

static const luaL_Reg future_methods[] = {
  {"set_result", f_set_result},
  {"set_error", f_set_error},
  {"await", m_await},
  {"done", m_done},
  {"cancelled", m_cancelled},
  {"result", m_result},
  {"error", m_error},
  {"on_done", m_on_done},
  {"cancel", f_cancel},
  {NULL, NULL}
};

static const luaL_Reg task_methods[] = {
  {"await", m_await},
  {"cancel", t_cancel},
  {"done", m_done},
  {"cancelled", m_cancelled},
  {"result", m_result},
  {"error", m_error},
  {"on_done", m_on_done},
  {"traceback", t_traceback},
  {NULL, NULL}
};

static const luaL_Reg funcs[] = {
  {"spawn", l_spawn},
  {"await", l_await},
  {"future", l_future},
  {"current", l_current},
  {"is_future", l_is_future},
  {"state", l_state},
  {"watch", l_watch},
  {"wait_done", l_wait_done},
  {"tasks", l_tasks},
  {"yield", l_yield},
  {NULL, NULL}
};

/* Registers the metatables and puts the functions in the table on top. */
void loom__task_open(lua_State *L, loom_host *H) {
  luaL_newmetatable(L, LOOM_TASK_MT);
  lua_newtable(L);
  loom__push_box(L);
  luaL_setfuncs(L, task_methods, 1);
  lua_pushcclosure(L, t_index, 1);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, t_newindex);
  lua_setfield(L, -2, "__newindex");
  lua_pushcfunction(L, t_tostring);
  lua_setfield(L, -2, "__tostring");
  H->task_mt_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  luaL_newmetatable(L, LOOM_FUTURE_MT);
  lua_newtable(L);
  loom__push_box(L);
  luaL_setfuncs(L, future_methods, 1);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, f_tostring);
  lua_setfield(L, -2, "__tostring");
  H->future_mt_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  loom__push_box(L);
  luaL_setfuncs(L, funcs, 1);
}

/* }==================================================================== */
