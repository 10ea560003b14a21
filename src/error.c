/*
** error.c: loom's own error objects.  'loom.Cancelled' and
** 'loom.Timeout' are metatables that double as constructors:
** loom.Cancelled("why") makes a table {code = "ECANCELED", message =
** "why"} with that metatable, so 'getmetatable(e) == loom.Cancelled'
** tells them apart and tostring(e) reads "loom.Cancelled: why".
*/
#include <string.h>

#include "internal.h"

/*
** Pushes "chunk:line: " of the user's code that called into loom: the
** first frame that is not one of loom's embedded chunks, as luaL_where
** does for the caller of a C function ("" when that frame is C).  So a
** C function reached through a Lua wrapper still names the user's line.
*/
void loom__where(lua_State *L) {
  lua_Debug ar;
  int level;
  for (level = 1; lua_getstack(L, level, &ar); level++) {
    lua_getinfo(L, "Sl", &ar);
    if (strncmp(ar.source, "@[loom]", 7) == 0) continue;
    if (ar.currentline > 0) {
      lua_pushfstring(L, "%s:%d: ", ar.short_src, ar.currentline);
      return;
    }
    break;
  }
  lua_pushliteral(L, "");
}

/*
** Raises the error Lua raises when its allocator fails, so that every
** part of loom runs out of memory the same way: the message is Lua's
** own, and it is an error, never an abort.
*/
int loom__nomem(lua_State *L) {
  lua_pushliteral(L, "not enough memory");
  return lua_error(L);
}

static int err_tostring(lua_State *L) {
  luaL_getmetafield(L, 1, "__name");
  lua_getfield(L, 1, "message");
  lua_pushfstring(L, "%s: %s", lua_tostring(L, -2),
                  luaL_optstring(L, -1, "?"));
  return 1;
}

static void new_error(lua_State *L, int mtref, const char *code,
                      const char *msg) {
  lua_createtable(L, 0, 2);
  lua_pushstring(L, code);
  lua_setfield(L, -2, "code");
  lua_pushstring(L, msg);
  lua_setfield(L, -2, "message");
  lua_rawgeti(L, LUA_REGISTRYINDEX, mtref);
  lua_setmetatable(L, -2);
}

void loom__new_cancelled(lua_State *L, loom_host *H, const char *msg) {
  new_error(L, H->cancelled_ref, "ECANCELED", msg);
}

void loom__new_timeout(lua_State *L, loom_host *H, const char *msg) {
  new_error(L, H->timeout_ref, "ETIMEDOUT", msg);
}

static int has_mt(lua_State *L, int idx, int ref) {
  int r;
  if (!lua_getmetatable(L, idx)) return 0;
  lua_rawgeti(L, LUA_REGISTRYINDEX, ref);
  r = lua_rawequal(L, -1, -2);
  lua_pop(L, 2);
  return r;
}

int loom__is_cancelled(lua_State *L, loom_host *H, int idx) {
  return lua_type(L, idx) == LUA_TTABLE && has_mt(L, idx, H->cancelled_ref);
}

static int l_is_cancelled(lua_State *L) {
  loom_host *H = loom__host(L);
  lua_pushboolean(L, loom__is_cancelled(L, H, 1));
  return 1;
}

static int l_is_timeout(lua_State *L) {
  loom_host *H = loom__host(L);
  lua_pushboolean(L, lua_type(L, 1) == LUA_TTABLE
                  && has_mt(L, 1, H->timeout_ref));
  return 1;
}

/* loom.Cancelled([msg]) and loom.Timeout([msg]) */
static int err_new(lua_State *L) {
  loom_host *H = loom__host(L);
  int timeout = (int)lua_tointeger(L, lua_upvalueindex(2));
  const char *msg = luaL_optstring(L, 2, timeout ? "timed out"
                                                 : "task cancelled");
  if (timeout) loom__new_timeout(L, H, msg);
  else loom__new_cancelled(L, H, msg);
  return 1;
}

static int make_class(lua_State *L, loom_host *H, const char *name,
                      int timeout) {
  lua_createtable(L, 0, 3);
  lua_pushstring(L, name);
  lua_setfield(L, -2, "__name");
  lua_pushcfunction(L, err_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_createtable(L, 0, 1);  /* the class's own metatable: a constructor */
  loom__push_box(L);
  lua_pushinteger(L, timeout);
  lua_pushcclosure(L, err_new, 2);
  lua_setfield(L, -2, "__call");
  lua_setmetatable(L, -2);
  lua_pushvalue(L, -1);
  return luaL_ref(L, LUA_REGISTRYINDEX);
}

static int call_tostring(lua_State *L) {
  luaL_tolstring(L, 1, NULL);
  return 1;
}

/*
** Text of the error at 'idx' for a report, pushed on the stack; never
** raises.  Strings and numbers are themselves; a value with __tostring
** (loom's errors among them) is converted by it, in protected mode, as
** lua.c does; anything else is named by its type.
*/
const char *loom__tostring(lua_State *L, int idx) {
  idx = lua_absindex(L, idx);
  if (lua_type(L, idx) == LUA_TSTRING || lua_type(L, idx) == LUA_TNUMBER) {
    lua_pushvalue(L, idx);
    return lua_tostring(L, -1);
  }
  if (luaL_getmetafield(L, idx, "__tostring") != LUA_TNIL) {
    lua_pop(L, 1);
    lua_pushcfunction(L, call_tostring);
    lua_pushvalue(L, idx);
    if (lua_pcall(L, 1, 1, 0) == LUA_OK && lua_type(L, -1) == LUA_TSTRING)
      return lua_tostring(L, -1);
    lua_pop(L, 1);
  }
  return lua_pushfstring(L, "(error object is a %s value)",
                         luaL_typename(L, idx));
}

static const luaL_Reg funcs[] = {
  {"is_cancelled", l_is_cancelled},
  {"is_timeout", l_is_timeout},
  {NULL, NULL}
};

void loom__error_open(lua_State *L, loom_host *H) {
  H->cancelled_ref = make_class(L, H, "loom.Cancelled", 0);
  lua_setfield(L, -2, "Cancelled");
  H->timeout_ref = make_class(L, H, "loom.Timeout", 1);
  lua_setfield(L, -2, "Timeout");
  loom__push_box(L);
  luaL_setfuncs(L, funcs, 1);
}
