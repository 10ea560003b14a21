/*
** inspect.c: looking inside a running host, for a console attached to
** it and for the reports of debug mode: what the script has open
** (core.handles), how a task stands (core.task_info), the host's
** counters (core.stats) and the timing of steps (core.timing).
**
** Nothing here costs anything until it is called, but what the
** scheduler keeps for it: a counter of loop iterations, the time each
** task was spawned (in a hole of its struct), and, only while timing is
** on, a clock read around each step.  Where a handle was made and
** where a task was spawned are known in debug mode alone.
*/
#include "internal.h"

/* core.handles(): list of {kind =, what =, where =} (see handle.c) */
static int l_handles(lua_State *L) {
  loom__push_handles(L, loom__host(L));
  return 1;
}

static const char *const state_names[] = {
  "pending", "done", "failed", "cancelled"
};

/*
** core.task_info(task): {id =, name =, state =, age =, spawned =}.
** 'state' is "running" for the task that asks; 'age' is in seconds of
** the loop's clock since the task was spawned; 'spawned' is its
** "file:line" when it was spawned in debug mode.
*/
static int l_task_info(lua_State *L) {
  loom_host *H = loom__host(L);
  loom_task *t = loom__totask(L, 1);
  uint32_t age;
  if (t == NULL) loom__typeerror(L, 1, "task_info", "loom.task");
  if (loom__fhost(&t->f) != H)
    loom__errorf(L, "loom: the host of this task is closed");
  age = (uint32_t)loom__now(H) - t->born;
  lua_settop(L, 1);
  lua_createtable(L, 0, 5);
  lua_pushinteger(L, (lua_Integer)t->id);
  lua_setfield(L, 2, "id");
  loom__push_name(L, 1);
  lua_setfield(L, 2, "name");
  lua_pushstring(L, t == H->current ? "running" : state_names[t->f.state]);
  lua_setfield(L, 2, "state");
  lua_pushnumber(L, (lua_Number)age / 1000.0);
  lua_setfield(L, 2, "age");
  if (loom__get_aux(L, 1, "spawned") == LUA_TSTRING)
    lua_setfield(L, 2, "spawned");
  else lua_pop(L, 1);
  return 1;
}

/* Pushes {kind = count} of the list of core.handles at 'lidx'. */
static void count_kinds(lua_State *L, int lidx, int n) {
  int i;
  lua_newtable(L);
  for (i = 1; i <= n; i++) {
    lua_rawgeti(L, lidx, i);
    lua_getfield(L, -1, "kind");
    lua_pushvalue(L, -1);
    lua_rawget(L, -4);  /* the count so far */
    lua_pushinteger(L, lua_tointeger(L, -1) + 1);
    lua_replace(L, -2);
    lua_rawset(L, -4);  /* counts[kind] = count + 1 */
    lua_pop(L, 1);  /* remove the entry */
  }
}

/*
** core.stats(): {tasks =, handles = {kind = count}, memory_kb =,
** iterations =, slowest = {ms =, task =} (nil until a step is timed)}
*/
static int l_stats(lua_State *L) {
  loom_host *H = loom__host(L);
  int n;
  lua_createtable(L, 0, 5);
  lua_pushinteger(L, H->ntasks);
  lua_setfield(L, -2, "tasks");
  n = loom__push_handles(L, H);
  count_kinds(L, lua_gettop(L), n);
  lua_setfield(L, -3, "handles");
  lua_pop(L, 1);  /* remove the list */
  lua_pushnumber(L, lua_gc(L, LUA_GCCOUNT, 0)
                    + lua_gc(L, LUA_GCCOUNTB, 0) / 1024.0);
  lua_setfield(L, -2, "memory_kb");
  lua_pushinteger(L, (lua_Integer)H->iterations);
  lua_setfield(L, -2, "iterations");
  if (H->slowest_ns > 0) {
    lua_createtable(L, 0, 2);
    lua_pushnumber(L, (lua_Number)H->slowest_ns / 1e6);
    lua_setfield(L, -2, "ms");
    lua_pushstring(L, H->slowest);
    lua_setfield(L, -2, "task");
    lua_setfield(L, -2, "slowest");
  }
  return 1;
}

/*
** core.timing([on]): steps are timed while it is on (debug mode times
** them too), for core.stats's 'slowest'.  Returns whether they are.
*/
static int l_timing(lua_State *L) {
  loom_host *H = loom__host(L);
  if (!lua_isnone(L, 1)) H->timing = (unsigned char)lua_toboolean(L, 1);
  lua_pushboolean(L, H->timing || H->debug);
  return 1;
}

static const luaL_Reg funcs[] = {
  {"handles", l_handles},
  {"task_info", l_task_info},
  {"stats", l_stats},
  {"timing", l_timing},
  {NULL, NULL}
};

void loom__inspect_register(lua_State *L, loom_host *H) {
  (void)H;
  loom__push_box(L);
  luaL_setfuncs(L, funcs, 1);
}
