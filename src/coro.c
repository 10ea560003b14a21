/*
** coro.c: plain Lua coroutines inside tasks.
**
** A loom call that suspends yields a private tag.  When it runs inside
** a coroutine that user code resumed (coroutine.resume or a function
** from coroutine.wrap), the resume sees the tag come back instead of
** the user's values: it then yields the tag further up, so the whole
** task suspends, and when the task is resumed it resumes the inner
** coroutine again, which continues where it waited.  User yields still
** go to the user's resumer.  This replaces coroutine.resume and
** coroutine.wrap; outside tasks they behave as Lua's own.
*/
#include <string.h>

#include "internal.h"

/*
** Registry key of a weak-keyed set of the coroutines suspended in a
** loom call on behalf of their task: only the task's own resumption
** (resume_k, wrap_k) may resume them; anyone else is refused.
*/
static char suspendedkey;

static void mark_suspended(lua_State *L, lua_State *co, int on) {
  loom__push_weak(L, &suspendedkey, "k");
  lua_pushthread(co);
  lua_xmove(co, L, 1);
  if (on) lua_pushboolean(L, 1);
  else lua_pushnil(L);
  lua_rawset(L, -3);
  lua_pop(L, 1);
}

static int is_suspended(lua_State *L, lua_State *co) {
  int r;
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &suspendedkey) != LUA_TTABLE) {
    lua_pop(L, 1);
    return 0;
  }
  lua_pushthread(co);
  lua_xmove(co, L, 1);
  r = lua_rawget(L, -2) != LUA_TNIL;
  lua_pop(L, 2);
  return r;
}

/*
** Resumes 'co' with the 'narg' values on top of L.  Returns the number
** of values it yielded or returned (moved to L), -1 for an error
** (message moved to L) or -2 when it suspended on a loom call.
*/
static int auxresume(lua_State *L, lua_State *co, int narg) {
  int status, nres;
  if (!lua_checkstack(co, narg)) {
    lua_pushliteral(L, "too many arguments to resume");
    return -1;
  }
  if (lua_status(co) == LUA_OK && lua_gettop(co) == 0) {
    lua_pushliteral(L, "cannot resume dead coroutine");
    return -1;
  }
  lua_xmove(L, co, narg);
  status = lua_resume(co, L, narg, &nres);
  if (status == LUA_YIELD && nres == 1
      && lua_touserdata(co, -1) == &loom__tag) {
    lua_pop(co, 1);
    mark_suspended(L, co, 1);
    return -2;
  }
  if (status == LUA_OK || status == LUA_YIELD) {
    if (!lua_checkstack(L, nres + 1)) {
      lua_pop(co, nres);
      lua_pushliteral(L, "too many results to resume");
      return -1;
    }
    lua_xmove(co, L, nres);
    return nres;
  }
  lua_xmove(co, L, 1);  /* error object */
  return -1;
}

static lua_State *getco(lua_State *L) {
  lua_State *co = lua_tothread(L, 1);
  if (co == NULL) loom__typeerror(L, 1, "coroutine.resume", "coroutine");
  return co;
}

/*
** Passes a loom suspension of an inner coroutine up to the task.  When
** that cannot be done, the inner wait is dropped before raising: left
** behind, it would wake the task later for nothing.
*/
static int propagate(lua_State *L, lua_KFunction k, lua_KContext ctx) {
  if (!lua_isyieldable(L)) {
    loom_host *H = ((loom_hostbox *)lua_touserdata(L,
                                                   lua_upvalueindex(1)))->H;
    if (H != NULL && H->current != NULL) loom__unwait(H, H->current);
    return loom__boundary_error(L, "a loom call inside a coroutine");
  }
  return loom__wait(L, k, ctx);
}

/* Refuses to resume a coroutine that waits in a loom call for its task. */
static void check_resumable(lua_State *L, lua_State *co) {
  if (is_suspended(L, co))
    loom__errorf(L, "cannot resume a coroutine that waits in a loom call "
                    "(its task resumes it)");
}

static int resume_k(lua_State *L, int status, lua_KContext ctx);

static int resume_finish(lua_State *L, int r) {
  if (r == -2) return propagate(L, resume_k, 0);
  if (r < 0) {
    lua_pushboolean(L, 0);
    lua_insert(L, -2);
    return 2;
  }
  lua_pushboolean(L, 1);
  lua_insert(L, -(r + 1));
  return r + 1;
}

/* The task was resumed: resume the inner coroutine (at 1) again. */
static int resume_k(lua_State *L, int status, lua_KContext ctx) {
  lua_State *co = lua_tothread(L, 1);
  (void)status; (void)ctx;
  mark_suspended(L, co, 0);
  return resume_finish(L, auxresume(L, co, lua_gettop(L) - 1));
}

static int co_resume(lua_State *L) {
  lua_State *co = getco(L);
  check_resumable(L, co);
  return resume_finish(L, auxresume(L, co, lua_gettop(L) - 1));
}

static int wrap_k(lua_State *L, int status, lua_KContext ctx);

static int wrap_finish(lua_State *L, int r) {
  lua_State *co = lua_tothread(L, lua_upvalueindex(2));
  if (r == -2) return propagate(L, wrap_k, 0);
  if (r >= 0) return r;
  if (lua_status(co) != LUA_OK && lua_status(co) != LUA_YIELD) {
#if defined(LUA_VERSION_RELEASE_NUM) && LUA_VERSION_RELEASE_NUM >= 50406
    lua_closethread(co, L);
#else
    lua_resetthread(co);
#endif
    lua_settop(co, 0);
  }
  if (lua_type(L, -1) == LUA_TSTRING) {  /* add position, as Lua does */
    luaL_where(L, 1);
    lua_insert(L, -2);
    lua_concat(L, 2);
  }
  return lua_error(L);
}

static int wrap_k(lua_State *L, int status, lua_KContext ctx) {
  lua_State *co = lua_tothread(L, lua_upvalueindex(2));
  (void)status; (void)ctx;
  mark_suspended(L, co, 0);
  return wrap_finish(L, auxresume(L, co, lua_gettop(L)));
}

static int auxwrap(lua_State *L) {
  lua_State *co = lua_tothread(L, lua_upvalueindex(2));
  check_resumable(L, co);
  return wrap_finish(L, auxresume(L, co, lua_gettop(L)));
}

static int co_wrap(lua_State *L) {
  lua_State *co;
  loom__checktype(L, 1, "coroutine.wrap", LUA_TFUNCTION);
  lua_pushvalue(L, lua_upvalueindex(1));  /* keep the host upvalue */
  co = lua_newthread(L);
  lua_pushvalue(L, 1);
  lua_xmove(L, co, 1);
  lua_pushcclosure(L, auxwrap, 2);
  return 1;
}

/*
** coroutine.running(), which also marks a task whose own coroutine it
** returns: that coroutine's identity is now known (a weak table may key
** on it), so it is not reused for another task.
*/
static int co_running(lua_State *L) {
  loom_host *H = ((loom_hostbox *)lua_touserdata(L, lua_upvalueindex(1)))->H;
  int ismain = lua_pushthread(L);
  if (H != NULL && H->current != NULL && H->current->co == L)
    H->current->escaped = 1;
  lua_pushboolean(L, ismain);
  return 2;
}

void loom__coro_open(lua_State *L, loom_host *H) {
  (void)H;
  lua_getglobal(L, "coroutine");
  if (lua_type(L, -1) != LUA_TTABLE) {
    lua_pop(L, 1);
    return;
  }
  loom__push_box(L);
  lua_pushcclosure(L, co_resume, 1);
  lua_setfield(L, -2, "resume");
  loom__push_box(L);
  lua_pushcclosure(L, co_wrap, 1);
  lua_setfield(L, -2, "wrap");
  loom__push_box(L);
  lua_pushcclosure(L, co_running, 1);
  lua_setfield(L, -2, "running");
  lua_pop(L, 1);
  loom__let_suspend(L, co_resume);
  loom__let_suspend(L, auxwrap);
}
