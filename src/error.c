/*
** error.c: loom's own error objects.  'loom.Cancelled' and
** 'loom.Timeout' are metatables that double as constructors:
** loom.Cancelled("why") makes a table {code = "ECANCELED", message =
** "why"} with that metatable, so 'getmetatable(e) == loom.Cancelled'
** tells them apart and tostring(e) reads "loom.Cancelled: why".  Also
** the argument checks of loom's C functions, whose errors name the
** function as the user calls it and the user's line.
*/
#include <stdarg.h>
#include <stdio.h>
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
** {====================================================================
** Argument errors
** =====================================================================
*/

/*
** Raises "bad argument #narg to 'fname' (msg)" at the user's line.
** 'fname' is the name as the user calls it: 'loom.sleep',
** 'stream:read', 'net.resolve'.  Every argument check of loom's C
** functions ends here, so that all name their function alike (Lua's own
** luaL_argerror names the call site instead: 'read', 'sleep').
** 'narg' is the stack index.  A method, named with ':', counts its
** arguments after the receiver as the user writes them (s:read(n): n
** is #1), as Lua does; a bad receiver is #1, as in s.read(42).
*/
int loom__argerror(lua_State *L, int narg, const char *fname,
                   const char *msg) {
  if (narg > 1 && strchr(fname, ':') != NULL) narg--;
  loom__where(L);
  lua_pushfstring(L, "bad argument #%d to '%s' (%s)", narg, fname, msg);
  lua_concat(L, 2);
  return lua_error(L);
}

/* "<tname> expected, got <type>" */
int loom__typeerror(lua_State *L, int narg, const char *fname,
                    const char *tname) {
  const char *got = luaL_typename(L, narg);
  if (luaL_getmetafield(L, narg, "__name") == LUA_TSTRING)
    got = lua_tostring(L, -1);
  return loom__argerror(L, narg, fname, lua_pushfstring(L,
                        "%s expected, got %s", tname, got));
}

/* Raises the message made of 'fmt' at the user's line. */
int loom__errorf(lua_State *L, const char *fmt, ...) {
  va_list ap;
  loom__where(L);
  va_start(ap, fmt);
  lua_pushvfstring(L, fmt, ap);
  va_end(ap);
  lua_concat(L, 2);
  return lua_error(L);
}

/* A number as the user would write it: 1, 0.5, -1, nan, inf. */
const char *loom__shownumber(lua_State *L, int idx) {
  lua_Number n = lua_tonumber(L, idx);
  if (n != n) return lua_pushliteral(L, "nan");
  lua_pushvalue(L, idx);
  return luaL_tolstring(L, -1, NULL);
}

void loom__checktype(lua_State *L, int narg, const char *fname, int t) {
  if (lua_type(L, narg) != t) loom__typeerror(L, narg, fname,
                                              lua_typename(L, t));
}

void loom__checkany(lua_State *L, int narg, const char *fname) {
  if (lua_type(L, narg) == LUA_TNONE)
    loom__argerror(L, narg, fname, "value expected");
}

lua_Number loom__checknumber(lua_State *L, int narg, const char *fname) {
  int isnum;
  lua_Number n = lua_tonumberx(L, narg, &isnum);
  if (!isnum) loom__typeerror(L, narg, fname, "number");
  return n;
}

lua_Integer loom__checkinteger(lua_State *L, int narg, const char *fname) {
  int isnum;
  lua_Integer n = lua_tointegerx(L, narg, &isnum);
  if (!isnum) {
    if (lua_isnumber(L, narg))
      loom__argerror(L, narg, fname, lua_pushfstring(L,
                     "integer expected, got %s", loom__shownumber(L, narg)));
    loom__typeerror(L, narg, fname, "integer");
  }
  return n;
}

lua_Integer loom__optinteger(lua_State *L, int narg, const char *fname,
                             lua_Integer def) {
  return lua_isnoneornil(L, narg) ? def : loom__checkinteger(L, narg, fname);
}

const char *loom__checklstring(lua_State *L, int narg, const char *fname,
                               size_t *len) {
  const char *s = lua_tolstring(L, narg, len);
  if (s == NULL) loom__typeerror(L, narg, fname, "string");
  return s;
}

const char *loom__optlstring(lua_State *L, int narg, const char *fname,
                             const char *def, size_t *len) {
  if (lua_isnoneornil(L, narg)) {
    if (len != NULL) *len = def != NULL ? strlen(def) : 0;
    return def;
  }
  return loom__checklstring(L, narg, fname, len);
}

/*
** A string that goes to C as a C string: one with a NUL inside would
** mean another ("local\0host" is "local"), so it is refused.
*/
const char *loom__checkcstring(lua_State *L, int narg, const char *fname) {
  size_t len;
  const char *s = loom__checklstring(L, narg, fname, &len);
  if (strlen(s) != len)
    loom__argerror(L, narg, fname, "string contains a NUL");
  return s;
}

int loom__checkoption(lua_State *L, int narg, const char *fname,
                      const char *def, const char *const list[]) {
  const char *name = def != NULL && lua_isnoneornil(L, narg) ? def
                     : loom__checklstring(L, narg, fname, NULL);
  int i;
  for (i = 0; list[i] != NULL; i++)
    if (strcmp(list[i], name) == 0) return i;
  return loom__argerror(L, narg, fname, lua_pushfstring(L,
                        "invalid option '%s'", name));
}

/*
** The object of class 'cls' at 'narg' (for a method, its receiver):
** raises "bad argument #1 to 'stream:read' (loom.stream expected, got
** number)" when it is something else.
*/
void *loom__checkobject_as(lua_State *L, int narg, const loom_class *cls,
                           const char *fname) {
  void *p = loom__toobject(L, narg, cls);
  if (p == NULL) loom__typeerror(L, narg, fname, cls->name);
  return p;
}

/* The same for a handle: the open handle; raises when it is closed. */
void *loom__checkhandle_as(lua_State *L, int narg, const loom_class *cls,
                           const char *fname) {
  loom_handle **box = loom__checkobject_as(L, narg, cls, fname);
  if (*box == NULL)
    loom__errorf(L, "attempt to use a closed %s", loom__class_noun(cls));
  return *box;
}

/* }==================================================================== */


static char passkey;  /* registry: C functions a task may suspend through */

/*
** Lets a task suspend through the C function 'f' (a loom-aware
** coroutine.resume): the boundary error does not name it.
*/
void loom__let_suspend(lua_State *L, lua_CFunction f) {
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &passkey) != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &passkey);
  }
  lua_pushboolean(L, 1);
  lua_rawsetp(L, -2, *(void **)&f);
  lua_pop(L, 1);
}

/*
** Searches the table on top for the function at 'fidx'; pushes its key
** ("name", or "prefix.name") and returns 1 when found.
*/
static int find_in(lua_State *L, int fidx, const char *prefix) {
  lua_pushnil(L);
  while (lua_next(L, -2)) {
    if (lua_rawequal(L, -1, fidx) && lua_type(L, -2) == LUA_TSTRING) {
      if (prefix == NULL) lua_pushvalue(L, -2);
      else lua_pushfstring(L, "%s.%s", prefix, lua_tostring(L, -2));
      lua_replace(L, -3);  /* over the key */
      lua_pop(L, 1);  /* remove value */
      return 1;
    }
    lua_pop(L, 1);
  }
  return 0;
}

/*
** Pushes a name for the function at stack level 'ar': a global name,
** else its name in a loaded module ("table.sort"), else what the call
** site calls it.
*/
static void push_funcname(lua_State *L, lua_Debug *ar) {
  int fidx, top = lua_gettop(L);
  lua_getinfo(L, "f", ar);
  fidx = lua_gettop(L);
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  lua_getglobal(L, "_G");
  if (lua_type(L, -1) == LUA_TTABLE && find_in(L, fidx, NULL)) goto found;
  lua_pop(L, 1);  /* remove _G */
  lua_pushnil(L);
  while (lua_next(L, fidx + 1)) {
    if (lua_type(L, -1) == LUA_TTABLE && lua_type(L, -2) == LUA_TSTRING
        && find_in(L, fidx, lua_tostring(L, -2))) {
      lua_remove(L, -2);  /* remove the module name */
      goto found;
    }
    lua_pop(L, 1);
  }
  lua_settop(L, top);
  lua_pushstring(L, ar->name ? ar->name : "?");
  return;
found:
  lua_replace(L, top + 1);
  lua_settop(L, top + 1);
}

/* C functions that let a task suspend through them. */
static int transparent(lua_State *L, lua_Debug *ar) {
  static const char *const names[] = {
    "pcall", "xpcall", "dofile", NULL
  };
  int i, r = 0;
  lua_getinfo(L, "f", ar);
  if (lua_tocfunction(L, -1) != NULL) {
    lua_CFunction f = lua_tocfunction(L, -1);
    if (lua_rawgetp(L, LUA_REGISTRYINDEX, &passkey) == LUA_TTABLE) {
      r = lua_rawgetp(L, -1, *(void **)&f) != LUA_TNIL;
      lua_pop(L, 1);
    }
    lua_pop(L, 1);
  }
  for (i = 0; !r && names[i] != NULL; i++) {
    lua_getglobal(L, names[i]);
    r = lua_rawequal(L, -1, -2);
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  return r;
}

/*
** Raises the error for a suspending call 'name' made where Lua cannot
** yield, naming the C function in the way ("table.sort", "load", ...).
*/
int loom__boundary_error(lua_State *L, const char *name) {
  lua_Debug ar;
  int level;
  for (level = 1; lua_getstack(L, level, &ar); level++) {
    lua_getinfo(L, "Sn", &ar);
    if (*ar.what == 'C' && !transparent(L, &ar)) {
      push_funcname(L, &ar);
      return luaL_error(L, "loom: %s cannot suspend inside '%s' (Lua "
                        "cannot yield across this C function)", name,
                        lua_tostring(L, -1));
    }
  }
  return luaL_error(L, "loom: %s cannot suspend here (attempt to yield "
                    "across a C-call boundary)", name);
}

/*
** {====================================================================
** Failure values
** =====================================================================
*/

/*
** Pushes the failure value of an I/O call, nil, "<what> '<subject>':
** <reason>", code, and returns 3.  The reason is libuv's message for
** 'err' and the code its name ("EOF" at end of file).  Every failure
** loom returns is built here, so that all read alike: the subject (a
** path, a peer, a command) is always quoted, the reason always last.
** A NULL 'subject' gives "<what>: <reason>".
*/
int loom__fail(lua_State *L, const char *what, const char *subject, int err) {
  lua_pushnil(L);
  if (subject != NULL)
    lua_pushfstring(L, "%s '%s': %s", what, subject, uv_strerror(err));
  else lua_pushfstring(L, "%s: %s", what, uv_strerror(err));
  lua_pushstring(L, err == UV_EOF ? "EOF" : uv_err_name(err));
  return 3;
}

/*
** The same with the reason given as text and the code as a name: for
** failures that are not a libuv error ("closed"), and for the Lua side.
** A NULL 'what' leaves the reason alone ("the stream is closed").
*/
int loom__fail_reason(lua_State *L, const char *what, const char *subject,
                      const char *reason, const char *code) {
  lua_pushnil(L);
  if (what == NULL) lua_pushstring(L, reason);
  else if (subject != NULL)
    lua_pushfstring(L, "%s '%s': %s", what, subject, reason);
  else lua_pushfstring(L, "%s: %s", what, reason);
  lua_pushstring(L, code);
  return 3;
}

/* core.fail(what, subject, reason, code): loom__fail_reason */
static int l_fail(lua_State *L) {
  return loom__fail_reason(L, luaL_checkstring(L, 1),
                           luaL_optstring(L, 2, NULL),
                           luaL_checkstring(L, 3), luaL_checkstring(L, 4));
}

/* }==================================================================== */


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

static int make_class(lua_State *L, const char *name, int timeout) {
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
    /* No collection meanwhile: a __tostring may recurse to the end of
    ** the stack, and a finalizer the collector ran down there (a failure
    ** watch's report, say) would fail for want of stack, unseen. */
    int running = lua_gc(L, LUA_GCISRUNNING) == 1, ok;
    lua_pop(L, 1);
    if (running) lua_gc(L, LUA_GCSTOP);
    lua_pushcfunction(L, call_tostring);
    lua_pushvalue(L, idx);
    ok = lua_pcall(L, 1, 1, 0) == LUA_OK;
    if (running) lua_gc(L, LUA_GCRESTART);
    if (ok && lua_type(L, -1) == LUA_TSTRING) return lua_tostring(L, -1);
    lua_pop(L, 1);
  }
  return lua_pushfstring(L, "(error object is a %s value)",
                         luaL_typename(L, idx));
}

/*
** {====================================================================
** Errors nobody caught
** =====================================================================
*/

/*
** Writes a report to the log (log.c), which shares its queue and its
** format with loom.log's records, or, before there is one, to stderr.
*/
static void to_log(loom_host *H, int level, const char *msg,
                   const char *trace) {
  if (H->log_fn != NULL) {
    H->log_fn(H, level, msg, trace);
    return;
  }
  fprintf(stderr, "loom: %s\n", msg);
  if (trace != NULL && *trace != '\0') fprintf(stderr, "%s\n", trace);
  fflush(stderr);
}

/* The default error hook: a record of level "error". */
void loom__default_error_fn(loom_host *H, const char *msg,
                             const char *traceback, void *ud) {
  (void)ud;
  to_log(H, LOOM_LOG_ERROR, msg, traceback);
}

/*
** A warning of loom's own (debug mode's reports): a record of level
** "warn".  Not a failure, so it never goes to core.set_report's
** function; 'trace' may be NULL.
*/
void loom__warn(loom_host *H, const char *msg, const char *trace) {
  to_log(H, LOOM_LOG_WARN, msg, trace);
}

/* report_p(fn, msg, trace): the Lua report function, protected */
static int report_p(lua_State *L) {
  lua_pushvalue(L, 1);
  lua_pushstring(L, lua_touserdata(L, 2));
  lua_pushstring(L, lua_touserdata(L, 3));
  lua_call(L, 2, 0);
  return 0;
}

/*
** Reports an error nobody can catch any more: to the function set by
** core.set_report when there is one (loom.busted fails the test with
** it), else to the error hook.  A report function that fails (out of
** memory, say) passes the report on to the hook.
*/
void loom__report(lua_State *L, loom_host *H, const char *msg,
                  const char *trace) {
  H->failures++;
  if (H->report_ref != LUA_NOREF && L != NULL) {
    int top = lua_gettop(L);
    lua_pushcfunction(L, report_p);
    lua_rawgeti(L, LUA_REGISTRYINDEX, H->report_ref);
    lua_pushlightuserdata(L, (void *)msg);
    lua_pushlightuserdata(L, (void *)(trace ? trace : ""));
    if (lua_pcall(L, 3, 0, 0) == LUA_OK) return;
    lua_settop(L, top);
  }
  H->on_error(H, msg, trace, H->on_error_ud);
}

/*
** core.set_report(fn | nil): reports go to fn(msg, traceback) instead
** of the error hook; returns the function set before (or nil).
*/
static int l_set_report(lua_State *L) {
  loom_host *H = loom__host(L);
  if (!lua_isnoneornil(L, 1)) luaL_checktype(L, 1, LUA_TFUNCTION);
  lua_settop(L, 1);
  if (H->report_ref != LUA_NOREF)
    lua_rawgeti(L, LUA_REGISTRYINDEX, H->report_ref);
  else lua_pushnil(L);
  luaL_unref(L, LUA_REGISTRYINDEX, H->report_ref);
  H->report_ref = LUA_NOREF;
  if (!lua_isnil(L, 1)) {
    lua_pushvalue(L, 1);
    H->report_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  }
  return 1;
}

/* core.report(msg, traceback): an error nobody can catch, reported now */
static int l_report(lua_State *L) {
  loom_host *H = loom__host(L);
  loom__report(L, H, luaL_checkstring(L, 1), luaL_optstring(L, 2, ""));
  return 0;
}

LOOM_API void loom_set_error_fn(loom_host *H, loom_error_fn fn, void *ud) {
  if (H->closed) return;
  H->on_error = fn ? fn : loom__default_error_fn;
  H->on_error_ud = fn ? ud : NULL;
}

/* }==================================================================== */


static const luaL_Reg funcs[] = {
  {"report", l_report},
  {"set_report", l_set_report},
  {"fail", l_fail},
  {"is_cancelled", l_is_cancelled},
  {"is_timeout", l_is_timeout},
  {NULL, NULL}
};

void loom__error_open(lua_State *L, loom_host *H) {
  H->cancelled_ref = make_class(L, "loom.Cancelled", 0);
  lua_setfield(L, -2, "Cancelled");
  H->timeout_ref = make_class(L, "loom.Timeout", 1);
  lua_setfield(L, -2, "Timeout");
  loom__push_box(L);
  luaL_setfuncs(L, funcs, 1);
}
