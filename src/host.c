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



/*
** {====================================================================
** Creation and teardown
** =====================================================================
*/

/* Frees the host struct once nobody needs it: see loom_free. */
static void host_release(loom_host *H) {
  if (H->freed && H->handles_open == 0) {
    free(H->slab);
    free(H);
  }
}

static void handle_closed(uv_handle_t *h) {
  loom_host *H = h->data;
  H->handles_open--;
  host_release(H);
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
** host struct itself stays (see host_release).
*/
static void host_close(loom_host *H, int state_closing) {
  uv_loop_t *loop = H->loop;
  int owns_loop = H->owns_loop;
  int refs[] = {H->live_ref, H->pool_ref, H->failed_ref, H->aux_ref,
                H->task_mt_ref, H->future_mt_ref, H->cancelled_ref,
                H->timeout_ref, H->main_ref, H->report_ref};
  size_t i;
  if (H->closed) return;
  H->closed = 1;
  H->state_closing = (unsigned char)state_closing;
  if (state_closing) loom__report_unrun(H->mainL, H);
  loom__handles_close(H);
  /* every task and future of this host now sees it closed */
  H->box->H = NULL;
  H->box->gen++;
  if (!state_closing)
    for (i = 0; i < sizeof refs / sizeof refs[0]; i++)
      luaL_unref(H->mainL, LUA_REGISTRYINDEX, refs[i]);
  loom__sched_close(H, handle_closed);
  H->loop = NULL;
  if (owns_loop) {
    uv_walk(loop, walk_close, NULL);
    uv_run(loop, UV_RUN_DEFAULT);
    uv_loop_close(loop);
    free(loop);
  }
}

/* The state closes: so does its host; one the embedder does not hold
** (opened by require "loom") is freed too. */
static int box_gc(lua_State *L) {
  loom_hostbox *box = lua_touserdata(L, 1);
  loom_host *H = box->H;
  if (H == NULL) return 0;
  host_close(H, 1);
  H->mainL = H->L = NULL;
  if (!H->api) {
    H->freed = 1;
    host_release(H);
  }
  return 0;
}

/*
** Creates the host of state 'L' on 'loop' (NULL: a loop of its own).
** The host is found again through the registry; a sentinel userdata
** closes it when the state closes.  Raises on memory errors.
*/
loom_host *loom__host_new(lua_State *L, uv_loop_t *loop) {
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
  H->on_error = loom__default_error_fn;
  H->main_ref = H->report_ref = LUA_NOREF;
  H->debug = getenv("LOOM_DEBUG") != NULL && *getenv("LOOM_DEBUG") != '0';
  loom__sched_open(L, H);
  H->live_ref = newref(L, NULL);
  H->failed_ref = newref(L, "v");
  H->aux_ref = newref(L, "k");
  box = loom__push_newbox(L, box_gc);
  lua_pop(L, 1);
  box->H = H;
  box->gen++;
  H->box = box;
  return H;
}

/* The host of state 'L', created on first use. */
loom_host *loom__host_of(lua_State *L) {
  loom_host *H = loom__host_of_state(L);
  return H != NULL ? H : loom__host_new(L, NULL);
}

/* }==================================================================== */


/*
** {====================================================================
** Public API
** =====================================================================
*/

LOOM_API lua_State *loom_state(loom_host *H) {
  return H->closed ? NULL : H->mainL;
}

LOOM_API uv_loop_t *loom_loop(loom_host *H) {
  return H->closed ? NULL : H->loop;
}

/* Spawns the chunk just loaded ('status') below its 'nargs' arguments. */
static int spawn_loaded(loom_host *H, int status, int nargs) {
  lua_State *L = H->mainL;
  loom_task *t;
  lua_insert(L, -(nargs + 1));  /* chunk (or message) below arguments */
  if (status != LUA_OK) {
    lua_pop(L, nargs);
    return LOOM_ELOAD;
  }
  t = loom__spawn(L, H, nargs);
  if (H->main == NULL) loom__set_main(L, H, lua_gettop(L));
  (void)t;
  return LOOM_OK;
}

LOOM_API int loom_spawn_file(loom_host *H, const char *path, int nargs) {
  if (H->closed) return LOOM_ECLOSED;
  if (path != NULL && strcmp(path, "-") == 0) path = NULL;
  return spawn_loaded(H, luaL_loadfile(H->mainL, path), nargs);
}

LOOM_API int loom_spawn_string(loom_host *H, const char *code,
                               const char *name, int nargs) {
  if (H->closed) return LOOM_ECLOSED;
  if (code == NULL) return LOOM_EINVAL;
  return spawn_loaded(H, luaL_loadbuffer(H->mainL, code, strlen(code),
                                         name ? name : code), nargs);
}

LOOM_API int loom_spawn(loom_host *H, int nargs) {
  lua_State *L;
  int fidx;
  if (H->closed) return LOOM_ECLOSED;
  L = H->mainL;
  fidx = lua_gettop(L) - nargs;
  if (fidx < 1 || (lua_type(L, fidx) != LUA_TFUNCTION
                   && luaL_getmetafield(L, fidx, "__call") == LUA_TNIL)) {
    lua_settop(L, fidx > 0 ? fidx - 1 : 0);
    lua_pushliteral(L, "loom_spawn: a function is expected below the "
                       "arguments");
    return LOOM_EINVAL;
  }
  lua_settop(L, fidx + nargs);  /* drop a __call field pushed above */
  loom__spawn(L, H, nargs);
  return LOOM_OK;
}

LOOM_API int loom_run(loom_host *H) {
  if (H->closed) return LOOM_ECLOSED;
  if (H->running) return LOOM_EBUSY;
  H->L = H->mainL;
  return loom__loop(H);
}

LOOM_API int loom_step(loom_host *H) {
  int alive;
  if (H->closed) return LOOM_ECLOSED;
  if (H->running) return LOOM_EBUSY;
  H->L = H->mainL;
  H->running = 1;
  uv_run(H->loop, UV_RUN_NOWAIT);
  alive = uv_loop_alive(H->loop) && !(H->main_ended && H->ntasks == 0);
  if (!alive && H->ntasks > 0) {  /* nothing can wake them: cancel */
    loom__stall(H);
    alive = 1;
  }
  H->running = 0;
  if (!alive) loom__report_unobserved(H->L, H);
  return alive;
}

LOOM_API int loom_backend_fd(loom_host *H) {
  return H->closed ? LOOM_ECLOSED : uv_backend_fd(H->loop);
}

LOOM_API int loom_backend_timeout(loom_host *H) {
  return H->closed ? LOOM_ECLOSED : uv_backend_timeout(H->loop);
}

/* Calls the embedder's loom_done_fn (upvalues: fn, ud, box). */
static int done_cb(lua_State *L) {
  loom_done_fn fn;
  void *ud = lua_touserdata(L, lua_upvalueindex(2));
  loom_hostbox *box = lua_touserdata(L, lua_upvalueindex(3));
  int top = lua_gettop(L), n;
  *(void **)&fn = lua_touserdata(L, lua_upvalueindex(1));
  n = loom__results(L, 1);
  if (n == LOOM_EFAILED) n = -1;
  if (box->H != NULL) fn(box->H, L, n, ud);
  lua_settop(L, top);
  return 0;
}

LOOM_API int loom_on_done(loom_host *H, int idx, loom_done_fn fn, void *ud) {
  lua_State *L;
  if (H->closed) return LOOM_ECLOSED;
  L = H->mainL;
  if (fn == NULL) return LOOM_EINVAL;
  idx = lua_absindex(L, idx);
  lua_pushlightuserdata(L, *(void **)&fn);
  lua_pushlightuserdata(L, ud);
  loom__push_box(L);
  lua_pushcclosure(L, done_cb, 3);
  return loom__on_done(L, idx);
}

LOOM_API int loom_results(loom_host *H, int idx) {
  if (H->closed) return LOOM_ECLOSED;
  return loom__results(H->mainL, idx);
}

LOOM_API int loom_task_state(loom_host *H, int idx) {
  loom_future *f;
  if (H->closed) return LOOM_ECLOSED;
  f = loom__tofuture(H->mainL, idx);
  return f != NULL ? loom__state(f) : LOOM_EINVAL;
}

LOOM_API int loom_push_main(loom_host *H) {
  if (H->closed) return LOOM_ECLOSED;
  if (H->main == NULL) return LOOM_EINVAL;
  lua_rawgeti(H->mainL, LUA_REGISTRYINDEX, H->main_ref);  /* done or not */
  return LOOM_OK;
}

LOOM_API int loom_set_main(loom_host *H, int idx) {
  lua_State *L;
  if (H->closed) return LOOM_ECLOSED;
  L = H->mainL;
  if (loom__totask(L, idx) == NULL) return LOOM_EINVAL;
  loom__set_main(L, H, lua_absindex(L, idx));
  return LOOM_OK;
}

LOOM_API int loom_cancel(loom_host *H, int idx, const char *msg) {
  lua_State *L;
  loom_task *t;
  int r;
  if (H->closed) return LOOM_ECLOSED;
  L = H->mainL;
  t = loom__totask(L, idx);
  if (t == NULL) return LOOM_EINVAL;
  if (msg != NULL) lua_pushstring(L, msg);
  r = loom__cancel(L, H, t, msg != NULL ? lua_gettop(L) : 0);
  if (msg != NULL) lua_pop(L, 1);
  return r;
}

LOOM_API int loom_close(loom_host *H) {
  if (H == NULL) return LOOM_EINVAL;
  if (H->closed) return LOOM_OK;
  if (H->running) return LOOM_EBUSY;
  if (H->owns_state) lua_close(H->mainL);  /* its box closes the host */
  else host_close(H, 0);
  H->mainL = H->L = NULL;
  return LOOM_OK;
}

LOOM_API void loom_free(loom_host *H) {
  if (H == NULL || H->freed) return;
  if (loom_close(H) != LOOM_OK) return;  /* inside its own loop */
  H->freed = 1;
  host_release(H);
}

/* }==================================================================== */
