/*
** host.c: the host object.  A host ties one Lua state to one libuv
** loop and drives the scheduler from two loop phases: the prepare
** handle runs the ready tasks before the loop polls for I/O, the check
** handle runs those that the poll woke.  An idle handle, active only
** while tasks are ready, keeps the poll from blocking.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lualib.h>

#include "internal.h"

static char hostkey;  /* registry key of the host's sentinel userdata */


/*
** {====================================================================
** Running ready tasks
** =====================================================================
*/

/*
** Runs every task that is ready now, once: a task that becomes ready
** again while this round runs (loom.yield) waits for the next round,
** so one busy task cannot starve the poll.
*/
static void run_ready(loom_host *H) {
  size_t n = H->nready;
  while (n-- > 0 && H->ready_head != NULL) {
    loom_task *t = H->ready_head;
    H->ready_head = t->next_ready;
    if (H->ready_head == NULL) H->ready_tail = NULL;
    H->nready--;
    t->queued = 0;
    loom__step(H, t);
  }
  if (H->nready == 0) uv_idle_stop(&H->idle);
}

static void idle_cb(uv_idle_t *h) {
  (void)h;  /* exists only to make the poll non-blocking */
}

static void prepare_cb(uv_prepare_t *h) {
  loom_host *H = h->data;
  run_ready(H);
  if (H->is_virtual && H->nready == 0) loom__timer_jump(H);
}

static void check_cb(uv_check_t *h) {
  run_ready((loom_host *)h->data);
}

void loom__wake(loom_host *H, loom_task *t) {
  t->unwait = NULL;
  if (t->queued) return;
  t->queued = 1;
  t->next_ready = NULL;
  if (H->ready_tail) H->ready_tail->next_ready = t;
  else H->ready_head = t;
  H->ready_tail = t;
  if (H->nready++ == 0) uv_idle_start(&H->idle, idle_cb);
}

uint64_t loom__now(loom_host *H) {
  return H->is_virtual ? H->vnow : uv_now(H->loop);
}

/*
** Runs until no task, timer or handle is left.  Tasks still pending
** when the loop has nothing left to wait for can never be woken (they
** await a future nobody will set): they are cancelled so that their
** cleanup runs, a few rounds at most in case they wait again.
*/
int loom__loop(loom_host *H) {
  int rounds = 0;
  int failures = H->failures;
  H->running = 1;
  H->stalled = 0;
  for (;;) {
    uv_run(H->loop, UV_RUN_DEFAULT);
    if (H->ntasks == 0 || ++rounds > 3) break;
    if (H->debug) loom__report_pending(H);
    H->stalled = 1;
    loom__cancel_all(H);
  }
  H->running = 0;
  loom__report_unobserved(H);
  return H->failures - failures;
}

/* }==================================================================== */


/*
** {====================================================================
** Errors nobody caught
** =====================================================================
*/

static void default_error_fn(loom_host *H, const char *msg,
                             const char *traceback, void *ud) {
  (void)H; (void)ud;
  fprintf(stderr, "loom: %s\n%s\n", msg, traceback ? traceback : "");
  fflush(stderr);
}

void loom__report(loom_host *H, const char *msg, const char *trace) {
  H->failures++;
  H->on_error(H, msg, trace, H->on_error_ud);
}

LOOM_API void loom_set_error_fn(loom_host *H, loom_error_fn fn, void *ud) {
  H->on_error = fn ? fn : default_error_fn;
  H->on_error_ud = fn ? ud : NULL;
}

/* }==================================================================== */


/*
** {====================================================================
** Creation and teardown
** =====================================================================
*/

static void handle_closed(uv_handle_t *h) {
  loom_host *H = h->data;
  if (--H->handles_open == 0 && H->closed) free(H);
}

static int newref(lua_State *L, const char *mode) {
  lua_newtable(L);
  if (mode != NULL) {
    lua_createtable(L, 0, 1);
    lua_pushstring(L, mode);
    lua_setfield(L, -2, "__mode");
    lua_setmetatable(L, -2);
  }
  return luaL_ref(L, LUA_REGISTRYINDEX);
}

static void walk_close(uv_handle_t *h, void *arg) {
  (void)arg;
  if (!uv_is_closing(h)) uv_close(h, NULL);
}

/*
** Closes the host's handles and, when the loop is the host's own, runs
** it until every close callback has been called, then closes it.  The
** host memory goes with the last of its handles.
*/
static void host_close(loom_host *H, int state_closing) {
  uv_loop_t *loop = H->loop;
  int owns_loop = H->owns_loop;
  int refs[] = {H->live_ref, H->pool_ref, H->failed_ref, H->aux_ref,
                H->task_mt_ref, H->future_mt_ref, H->cancelled_ref,
                H->timeout_ref};
  size_t i;
  if (H->closed) return;
  H->closed = 1;
  /* every task and future of this host now sees it closed */
  H->box->H = NULL;
  H->box->gen++;
  if (!state_closing)
    for (i = 0; i < sizeof refs / sizeof refs[0]; i++)
      luaL_unref(H->mainL, LUA_REGISTRYINDEX, refs[i]);
  free(H->heap);
  H->heap = NULL;
  H->nheap = 0;
  uv_close((uv_handle_t *)&H->prepare, handle_closed);
  uv_close((uv_handle_t *)&H->check, handle_closed);
  uv_close((uv_handle_t *)&H->idle, handle_closed);
  uv_close((uv_handle_t *)&H->timer, handle_closed);
  if (owns_loop) {
    /* H may be freed by the last close callback: use locals only */
    uv_walk(loop, walk_close, NULL);
    uv_run(loop, UV_RUN_DEFAULT);
    uv_loop_close(loop);
    free(loop);
  }
}

static int box_gc(lua_State *L) {
  loom_hostbox *box = lua_touserdata(L, 1);
  if (box->H != NULL) host_close(box->H, 1);
  return 0;
}

/* Pushes the state's host box, creating it. */
static loom_hostbox *push_box(lua_State *L) {
  loom_hostbox *box;
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &hostkey) == LUA_TUSERDATA)
    return lua_touserdata(L, -1);
  lua_pop(L, 1);
  box = lua_newuserdatauv(L, sizeof *box, 0);
  box->H = NULL;
  box->gen = 0;
  lua_createtable(L, 0, 1);
  lua_pushcfunction(L, box_gc);
  lua_setfield(L, -2, "__gc");
  lua_setmetatable(L, -2);
  lua_pushvalue(L, -1);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &hostkey);
  return box;
}

void loom__push_box(lua_State *L, loom_host *H) {
  (void)H;
  lua_rawgetp(L, LUA_REGISTRYINDEX, &hostkey);
}

static void init_handle(uv_handle_t *h, loom_host *H) {
  h->data = H;
  H->handles_open++;
}

/*
** Creates the host of state 'L' on 'loop' (NULL: a loop of its own).
** The host is found again through the registry; a sentinel userdata
** closes it when the state closes.  Raises on memory errors.
*/
static loom_host *host_create(lua_State *L, uv_loop_t *loop) {
  loom_hostbox *box;
  loom_host *H = calloc(1, sizeof *H);
  if (H == NULL) luaL_error(L, "loom: not enough memory");
  if (loop == NULL) {
    loop = malloc(sizeof *loop);
    if (loop == NULL || uv_loop_init(loop) != 0) {
      free(loop);
      free(H);
      luaL_error(L, "loom: cannot create an event loop");
    }
    H->owns_loop = 1;
  }
  H->loop = loop;
  lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
  H->mainL = H->L = lua_tothread(L, -1);
  lua_pop(L, 1);
  H->on_error = default_error_fn;
  H->debug = getenv("LOOM_DEBUG") != NULL && *getenv("LOOM_DEBUG") != '0';
  uv_prepare_init(loop, &H->prepare);
  uv_check_init(loop, &H->check);
  uv_idle_init(loop, &H->idle);
  uv_timer_init(loop, &H->timer);
  init_handle((uv_handle_t *)&H->prepare, H);
  init_handle((uv_handle_t *)&H->check, H);
  init_handle((uv_handle_t *)&H->idle, H);
  init_handle((uv_handle_t *)&H->timer, H);
  uv_prepare_start(&H->prepare, prepare_cb);
  uv_check_start(&H->check, check_cb);
  uv_unref((uv_handle_t *)&H->prepare);  /* they keep nothing alive */
  uv_unref((uv_handle_t *)&H->check);
  H->live_ref = newref(L, NULL);
  H->pool_ref = newref(L, NULL);
  H->failed_ref = newref(L, "v");
  H->aux_ref = newref(L, "k");
  box = push_box(L);
  lua_pop(L, 1);
  box->H = H;
  box->gen++;
  H->box = box;
  return H;
}

/* The host of state 'L', created on first use. */
loom_host *loom__host_of(lua_State *L) {
  loom_host *H = push_box(L)->H;
  lua_pop(L, 1);
  return H != NULL ? H : host_create(L, NULL);
}

loom_host *loom__host(lua_State *L) {
  loom_hostbox *box = lua_touserdata(L, lua_upvalueindex(1));
  if (box->H == NULL) luaL_error(L, "loom: the host is closed");
  return box->H;
}

/* }==================================================================== */


/*
** {====================================================================
** Public API
** =====================================================================
*/

static int open_host(lua_State *L) {
  luaL_openlibs(L);
  luaL_requiref(L, "loom", luaopen_loom, 1);
  lua_pushlightuserdata(L, loom__host_of(L));
  return 1;
}

LOOM_API loom_host *loom_new(void) {
  loom_host *H;
  lua_State *L = luaL_newstate();
  if (L == NULL) return NULL;
  lua_pushcfunction(L, open_host);
  if (lua_pcall(L, 0, 1, 0) != LUA_OK) {
    lua_close(L);
    return NULL;
  }
  H = lua_touserdata(L, -1);
  lua_pop(L, 1);
  H->owns_state = 1;
  return H;
}

LOOM_API lua_State *loom_state(loom_host *H) {
  return H->mainL;
}

LOOM_API int loom_spawn_file(loom_host *H, const char *path, int nargs) {
  lua_State *L = H->mainL;
  if (path != NULL && strcmp(path, "-") == 0) path = NULL;
  if (luaL_loadfile(L, path) != LUA_OK) {
    lua_insert(L, -(nargs + 1));  /* message below the arguments */
    lua_pop(L, nargs);
    return 1;
  }
  lua_insert(L, -(nargs + 1));  /* chunk below its arguments */
  H->main = loom__spawn(L, H, nargs);
  lua_pop(L, 1);  /* remove task: the live table holds it */
  return 0;
}

LOOM_API int loom_run(loom_host *H) {
  if (H->closed || H->running) return -1;
  H->L = H->mainL;
  return loom__loop(H);
}

LOOM_API void loom_close(loom_host *H) {
  lua_State *L;
  if (H == NULL) return;
  L = H->mainL;
  if (H->owns_state) {
    lua_close(L);  /* its sentinel closes the host */
    return;
  }
  host_close(H, 0);
}

/* }==================================================================== */
