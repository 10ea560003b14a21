/*
** task.c: the Lua API of tasks and futures: loom.spawn, loom.await,
** loom.future and the methods of both.  What they are and how they run
** is the scheduler's (sched.c).
*/
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"


/*
** {====================================================================
** Lua API: futures and tasks
** =====================================================================
*/

static const loom_class task_class, future_class;

/* The Task or Future at 'idx', or NULL (await runs this for every task). */
static loom_future *tofuture_up(lua_State *L, int idx) {
  loom_future *f = loom__toobject(L, idx, &task_class);
  return f != NULL ? f : loom__toobject(L, idx, &future_class);
}

/*
** "future:m" or "task:m": the name of method 'm' as the user calls it,
** after the receiver at 1 (a method both have).
*/
#define MNAME(L, m) \
  (loom__toobject(L, 1, &future_class) != NULL ? "future:" m : "task:" m)

static loom_future *checkfuture(lua_State *L, int idx, const char *what,
                                const char *fname) {
  loom_future *f = tofuture_up(L, idx);
  if (f == NULL) loom__typeerror(L, idx, fname, what);
  if (loom__fhost(f) == NULL)
    loom__errorf(L, "loom: the host of this %s is closed",
                 f->is_task ? "task" : "future");
  return f;
}

/* A Future, not a task: for what only the owner of a future may do. */
static loom_future *checkownfuture(lua_State *L, const char *fname) {
  loom__checkobject_as(L, 1, &future_class, fname);
  return checkfuture(L, 1, "loom.future", fname);  /* and its host */
}

static loom_task *checktask(lua_State *L, int idx, const char *fname) {
  loom_task *t = loom__checkobject_as(L, idx, &task_class, fname);
  if (loom__fhost(&t->f) == NULL)
    loom__errorf(L, "loom: the host of this task is closed");
  return t;
}


static int await_k(lua_State *L, loom_host *H, loom_task *t);

/* Returns the outcome of the done future at 1, or raises its error. */
static int outcome(lua_State *L, loom_host *H, loom_future *f) {
  int n;
  loom__observe(L, f, 1);
  n = loom__push_value(L, f, 1);
  if (f->state == FUT_OK) return n;
  if (f->is_task && f->state == FUT_FAILED && H->current != NULL) {
    /* remember where the error came from, for the traceback */
    loom__push_task(L, H, H->current);
    lua_pushvalue(L, -2);
    loom__set_aux(L, -2, "cause");
    loom__get_aux(L, 1, "trace");
    loom__set_aux(L, -2, "cause_trace");
    lua_pop(L, 1);  /* remove current task */
  }
  return lua_error(L);
}

static int await_k(lua_State *L, loom_host *H, loom_task *t) {
  (void)t;
  return outcome(L, H, tofuture_up(L, 1));
}

static int await_future(lua_State *L, loom_host *H, loom_future *f,
                        const char *fname) {
  loom_task *t = loom__current(L, H, fname);
  if (f == &t->f) loom__errorf(L, "%s: a task cannot await itself", fname);
  if (f->state != FUT_PENDING) return outcome(L, H, f);
  t = loom__enter(L, H, fname);
  loom__link_waiter(f, t);
  t->wait = WAIT_AWAIT;
  return loom__suspend(L, await_k);
}

static int l_await(lua_State *L) {
  loom_host *H = loom__host(L);
  loom_future *f = checkfuture(L, 1, "Task or Future", "loom.await");
  lua_settop(L, 1);
  return await_future(L, H, f, "loom.await");
}

static int l_spawn(lua_State *L) {
  loom_host *H = loom__host(L);
  loom__checkany(L, 1, "loom.spawn");
  if (lua_type(L, 1) != LUA_TFUNCTION
      && luaL_getmetafield(L, 1, "__call") == LUA_TNIL)
    loom__typeerror(L, 1, "loom.spawn", "function");
  lua_settop(L, lua_gettop(L) - (lua_type(L, 1) != LUA_TFUNCTION ? 1 : 0));
  loom__spawn(L, H, lua_gettop(L) - 1);
  return 1;
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
  loom_future *f = checkfuture(L, 1, "Task or Future", "loom.state");
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

static int l_yield(lua_State *L) {
  return loom__yield(L, loom__host(L), "loom.yield");
}

/*
** Debug mode: the future 'f' at 1 remembers who set it and where
** ('fname' at "file:line"), for the error of a second attempt.
*/
static void mark_set(lua_State *L, loom_future *f, const char *fname) {
  char where[LOOM_SITE_MAX];
  if (!loom__site(L, loom__fhost(f), where, sizeof where)) return;
  lua_pushfstring(L, "%s set it at %s", fname, where);
  loom__set_aux(L, 1, "set_at");
}

/*
** Raises the error of setting the done future at 1 with 'fname', at
** the user's line; in debug mode, it says where it was set first.
*/
static int already_done(lua_State *L, const char *fname) {
  if (loom__get_aux(L, 1, "set_at") == LUA_TSTRING)
    return loom__errorf(L, "%s: the future is already done (%s)", fname,
                        lua_tostring(L, -1));
  return loom__errorf(L, "%s: the future is already done", fname);
}

/* future:set_result(...) */
static int f_set_result(lua_State *L) {
  loom_future *f = checkownfuture(L, "future:set_result");
  int n = lua_gettop(L) - 1;
  if (f->state != FUT_PENDING) return already_done(L, "future:set_result");
  if (loom__fhost(f)->debug) mark_set(L, f, "future:set_result");
  f->state = FUT_OK;
  loom__set_nres(f, n);
  loom__store_values(L, 1, L, n);
  loom__complete(L, loom__fhost(f), f, 1);
  return 0;
}

/* future:set_error(e) */
static int f_set_error(lua_State *L) {
  loom_future *f = checkownfuture(L, "future:set_error");
  lua_settop(L, 2);
  if (f->state != FUT_PENDING) return already_done(L, "future:set_error");
  if (loom__fhost(f)->debug) mark_set(L, f, "future:set_error");
  f->state = loom__is_cancelled(L, loom__fhost(f), 2) ? FUT_CANCELLED
                                                       : FUT_FAILED;
  f->nres = 1;
  lua_setiuservalue(L, 1, UV_VALUE);
  loom__complete(L, loom__fhost(f), f, 1);
  return 0;
}

static int f_cancel(lua_State *L) {
  loom_future *f = checkownfuture(L, "future:cancel");
  const char *msg = loom__optlstring(L, 2, "future:cancel",
                                     "future cancelled", NULL);
  if (f->state != FUT_PENDING) {
    lua_pushboolean(L, 0);
    return 1;
  }
  if (loom__fhost(f)->debug) mark_set(L, f, "future:cancel");
  f->state = FUT_CANCELLED;
  f->nres = 1;
  loom__new_cancelled(L, loom__fhost(f), msg);
  lua_setiuservalue(L, 1, UV_VALUE);
  loom__complete(L, loom__fhost(f), f, 1);
  lua_pushboolean(L, 1);
  return 1;
}

static int t_cancel(lua_State *L) {
  loom_task *t = checktask(L, 1, "task:cancel");
  if (!lua_isnoneornil(L, 2)) loom__checklstring(L, 2, "task:cancel", NULL);
  lua_pushboolean(L, loom__cancel(L, loom__fhost(&t->f), t,
                                  lua_isnoneornil(L, 2) ? 0 : 2));
  return 1;
}

static int m_await(lua_State *L) {
  const char *fname = MNAME(L, "await");
  loom_future *f = checkfuture(L, 1, "Task or Future", fname);
  lua_settop(L, 1);
  return await_future(L, loom__fhost(f), f, fname);
}

static int m_done(lua_State *L) {
  loom_future *f = checkfuture(L, 1, "Task or Future", MNAME(L, "done"));
  lua_pushboolean(L, f->state != FUT_PENDING);
  return 1;
}

static int m_cancelled(lua_State *L) {
  loom_future *f = checkfuture(L, 1, "Task or Future",
                               MNAME(L, "cancelled"));
  lua_pushboolean(L, f->state == FUT_CANCELLED);
  return 1;
}

static int m_result(lua_State *L) {
  loom_future *f = checkfuture(L, 1, "Task or Future", MNAME(L, "result"));
  lua_settop(L, 1);
  if (f->state == FUT_PENDING)
    loom__errorf(L, "%s:result: the %s is not done",
                 f->is_task ? "task" : "future",
                 f->is_task ? "task" : "future");
  loom__observe(L, f, 1);
  if (f->state == FUT_OK) return loom__push_value(L, f, 1);
  loom__push_value(L, f, 1);
  return lua_error(L);
}

static int m_error(lua_State *L) {
  loom_future *f = checkfuture(L, 1, "Task or Future", MNAME(L, "error"));
  if (f->state == FUT_OK || f->state == FUT_PENDING) {
    lua_pushnil(L);  /* one value, as for a failure: print(t:error()) */
    return 1;
  }
  loom__observe(L, f, 1);
  return loom__push_value(L, f, 1);
}

/* Adds callback 2 to the future at 1 (see loom__add_callback). */
static int add_callback(lua_State *L, int quiet, const char *fname) {
  loom_future *f = checkfuture(L, 1, "Task or Future", fname);
  loom__checktype(L, 2, fname, LUA_TFUNCTION);
  lua_settop(L, 2);
  loom__add_callback(L, f, 1, 2, quiet);
  return 0;
}

static int m_on_done(lua_State *L) {
  return add_callback(L, 0, MNAME(L, "on_done"));
}

/* core.watch(x, fn): x:on_done(fn) that leaves its error unobserved */
static int l_watch(lua_State *L) {
  return add_callback(L, 1, "loom.watch");
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
  loom_future *f = checkfuture(L, 1, "Task or Future", "loom.shield");
  loom_task *t = loom__current(L, H, "loom.shield");
  if (f == &t->f) loom__errorf(L, "loom.shield: a task cannot await itself");
  if (f->state != FUT_PENDING) return 0;
  t = loom__enter(L, H, "loom.shield");
  loom__link_waiter(f, t);
  t->wait = WAIT_DONE;
  return loom__suspend(L, wait_done_k);
}

static int t_traceback(lua_State *L) {
  loom_task *t = checktask(L, 1, "task:traceback");
  loom_host *H = loom__fhost(&t->f);
  if (t == H->current) luaL_traceback(L, L, NULL, 1);
  else if (t->co != NULL) luaL_traceback(L, t->co, NULL, 0);
  else if (!t->started) lua_pushliteral(L, "stack traceback:\n\t(not started)");
  else if (loom__get_aux(L, 1, "trace") != LUA_TSTRING) {
    lua_pop(L, 1);
    lua_pushliteral(L, "stack traceback:\n\t(finished)");
  }
  return 1;
}

static const char *const state_names[] = {
  "pending", "done", "failed", "cancelled"
};

static int t_tostring(lua_State *L) {
  loom_task *t = loom__checkobject(L, 1, &task_class);
  loom__push_name(L, 1);
  lua_pushfstring(L, "loom.task '%s' (%s)", lua_tostring(L, -1),
                  state_names[t->f.state]);
  return 1;
}

static int f_tostring(lua_State *L) {
  loom_future *f = loom__checkobject(L, 1, &future_class);
  lua_pushfstring(L, "loom.future (%s): %p", state_names[f->state], f);
  return 1;
}

/* __index of tasks: 'name' is a field, the rest are methods */
static int t_index(lua_State *L) {
  const char *k = lua_tostring(L, 2);
  if (k != NULL && strcmp(k, "name") == 0) {
    loom__push_name(L, 1);
    return 1;
  }
  lua_pushvalue(L, 2);
  lua_rawget(L, lua_upvalueindex(1));
  return 1;
}

/* task.name = s: a string, or nil for the default name */
static int t_newindex(lua_State *L) {
  const char *k = lua_type(L, 2) == LUA_TSTRING ? lua_tostring(L, 2) : NULL;
  if (k == NULL || strcmp(k, "name") != 0)
    loom__errorf(L, "loom.task: cannot set field '%s' (only 'name')",
                 k ? k : luaL_typename(L, 2));
  if (!lua_isnil(L, 3) && lua_type(L, 3) != LUA_TSTRING)
    loom__errorf(L, "task.name: string expected, got %s",
                 luaL_typename(L, 3));
  lua_settop(L, 3);
  loom__set_aux(L, 1, "name");
  return 0;
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

/* core.report_unobserved(): reports now every failure nobody observed */
static int l_report_unobserved(lua_State *L) {
  loom__report_unobserved(L, loom__host(L));
  return 0;
}

static const luaL_Reg funcs[] = {
  {"spawn", l_spawn},
  {"report_unobserved", l_report_unobserved},
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

static const luaL_Reg task_meta[] = {
  {"__newindex", t_newindex},
  {"__tostring", t_tostring},
  {NULL, NULL}
};

static const luaL_Reg future_meta[] = {
  {"__tostring", f_tostring},
  {NULL, NULL}
};

static const loom_class task_class = {
  .name = LOOM_TASK_MT,
  .methods = task_methods,
  .meta = task_meta
};

static const loom_class future_class = {
  .name = LOOM_FUTURE_MT,
  .methods = future_methods,
  .meta = future_meta
};

/*
** Registers the classes and puts the functions in the table on top.
** A task's __index is a function ('name' is a field, the rest methods),
** over the methods table; the scheduler finds both metatables through
** the host's refs.
*/
void loom__task_open(lua_State *L, loom_host *H) {
  loom__class_register(L, &task_class);
  loom__class_register(L, &future_class);
  lua_rawgetp(L, LUA_REGISTRYINDEX, &task_class);
  lua_getfield(L, -1, "__index");
  if (lua_istable(L, -1)) {
    lua_pushcclosure(L, t_index, 1);
    lua_setfield(L, -2, "__index");
  }
  else lua_pop(L, 1);
  H->task_mt_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_rawgetp(L, LUA_REGISTRYINDEX, &future_class);
  H->future_mt_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  loom__push_box(L);
  luaL_setfuncs(L, funcs, 1);
}

/* }==================================================================== */
