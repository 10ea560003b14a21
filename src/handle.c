/*
** handle.c: the host box and the base of every host-owned thing.
**
** The box is a userdata kept in the registry for the whole life of a
** Lua state; every C function of loom holds it as upvalue 1 and finds
** the state's host through it, so a function or an object that
** outlives its host sees the host closed instead of freed memory.
**
** A handle is anything a host owns and must close with it: a stream, a
** server, a child process, a signal slot, an alarm, a watcher, a call
** from C.  It embeds 'loom_handle' as its first member, as every libuv
** handle begins with UV_HANDLE_FIELDS, and its family is a 'loom_class'
** (name, methods, close, describe).  The host keeps its handles on one
** list and closes them all by walking it, the way 'uv_walk' and
** 'uv_close' close a loop; a family never needs a hook in host.c.
**
** Objects that own no libuv handle and die with their userdata (a
** file, a queue, a deadline, a task) use the same class descriptor,
** without 'close': one registration and one checked cast for all.
**
** A handle that a script holds is reached through a box userdata (a
** pointer to the handle, NULL once closed), because libuv may use the
** handle's memory until its close callback, after the userdata is
** gone.  One registration per class makes its metatable: '__index' with
** its methods (upvalue 1: the host box), 'close', '__close' and '__gc'
** that close it once, '__tostring', and '__name' for argument errors.
*/
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static char hostkey;  /* registry key of the host box */
static char trackkey;  /* registry key of the open objects (see loom__track) */


/*
** {====================================================================
** The host box
** =====================================================================
*/

/* Pushes the state's host box, creating it with 'gc' as its __gc. */
loom_hostbox *loom__push_newbox(lua_State *L, lua_CFunction gc) {
  loom_hostbox *box;
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &hostkey) == LUA_TUSERDATA)
    return lua_touserdata(L, -1);
  lua_pop(L, 1);
  box = lua_newuserdatauv(L, sizeof *box, 0);
  box->H = NULL;
  box->gen = 0;
  lua_createtable(L, 0, 1);
  lua_pushcfunction(L, gc);
  lua_setfield(L, -2, "__gc");
  lua_setmetatable(L, -2);
  lua_pushvalue(L, -1);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &hostkey);
  return box;
}

void loom__push_box(lua_State *L) {
  lua_rawgetp(L, LUA_REGISTRYINDEX, &hostkey);
}

loom_host *loom__host_of_state(lua_State *L) {
  loom_host *H = NULL;
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &hostkey) == LUA_TUSERDATA)
    H = ((loom_hostbox *)lua_touserdata(L, -1))->H;
  lua_pop(L, 1);
  return H;
}

loom_host *loom__host(lua_State *L) {
  loom_hostbox *box = lua_touserdata(L, lua_upvalueindex(1));
  if (box->H == NULL) luaL_error(L, "loom: the host is closed");
  return box->H;
}

/* }==================================================================== */


/*
** Raises the error Lua raises when its allocator fails, so that every
** part of loom runs out of memory the same way: the message is Lua's
** own, and it is an error, never an abort.
*/
int loom__nomem(lua_State *L) {
  lua_pushliteral(L, "not enough memory");
  return lua_error(L);
}

/*
** {====================================================================
** Handles
** =====================================================================
*/

static void handle_link(loom_host *H, loom_handle *h) {
  h->hb = H->box;
  h->gen = H->box->gen;
  h->linked = 1;
  h->prev = NULL;
  h->next = H->handles;
  if (H->handles != NULL) H->handles->prev = h;
  H->handles = h;
}

/*
** Takes 'h' off its host's list: it is closing for good (its libuv
** handle, if any, is in uv_close).  The host itself is found through
** the box: it is open, since a closing host empties its list first.
*/
void loom__handle_unlink(loom_handle *h) {
  loom_host *H;
  if (!h->linked) return;
  H = h->hb->H;
  if (h->prev != NULL) h->prev->next = h->next;
  else H->handles = h->next;
  if (h->next != NULL) h->next->prev = h->prev;
  h->next = h->prev = NULL;
  h->linked = 0;
  free(h->where);  /* nobody lists it any more */
  h->where = NULL;
}

void loom__handle_detach(loom_handle *h) {
  if (h->box != NULL) *h->box = NULL;
  h->box = NULL;
}

void *loom__handle_alloc(loom_host *H, const loom_class *cls, size_t size) {
  loom_handle *h = calloc(1, size);
  if (h == NULL) return NULL;
  h->cls = cls;
  handle_link(H, h);
  return h;
}

/*
** Pushes a box userdata of class 'cls' (with 'nuv' user values) and
** allocates (zeroed) the handle of 'size' bytes that it points to,
** linked to 'H'.  The box is made first, empty, so that nothing leaks
** when memory runs out.
*/
void *loom__handle_new(lua_State *L, loom_host *H, const loom_class *cls,
                       size_t size, int nuv) {
  loom_handle **box = lua_newuserdatauv(L, sizeof *box, nuv);
  loom_handle *h;
  *box = NULL;
  lua_rawgetp(L, LUA_REGISTRYINDEX, cls);
  lua_setmetatable(L, -2);
  h = loom__handle_alloc(H, cls, size);
  if (h == NULL) loom__nomem(L);
  h->box = box;
  *box = h;
  if (H->debug) {  /* where it was made, for the report at exit */
    char where[LOOM_SITE_MAX];
    if (loom__site(L, H, where, sizeof where)) h->where = strdup(where);
  }
  return h;
}

/*
** The handle of the box at 'idx', or NULL when it is closed; raises an
** argument error when 'idx' is not a box of class 'cls'.  The class's
** metatable is found by its address, not by name.
*/
loom_handle *loom__tohandle(lua_State *L, int idx, const loom_class *cls) {
  loom_handle **box = loom__toobject(L, idx, cls);
  if (box == NULL) luaL_typeerror(L, idx, cls->name);
  return *box;
}

/* "stream" for "loom.stream": how messages call a handle of 'cls'. */
const char *loom__class_noun(const loom_class *cls) {
  if (cls->noun != NULL) return cls->noun;
  return strncmp(cls->name, "loom.", 5) == 0 ? cls->name + 5 : cls->name;
}

/* The userdata lets go of its handle: close(), __close or __gc. */
static void handle_release(lua_State *L, int idx) {
  loom_handle **box = lua_touserdata(L, idx);
  loom_handle *h = *box;
  if (h == NULL) return;
  loom__handle_detach(h);
  h->cls->close(h, LOOM_CLOSE_USER);
}

/* __gc: no type check, this is the class's own metatable */
static int handle_gc(lua_State *L) {
  handle_release(L, 1);
  return 0;
}

/*
** handle:close(), also __close (and any alias, like :cancel()): true,
** the second time too.  Any class's handle is accepted: they all share
** this __gc.
*/
int loom__handle_close(lua_State *L) {
  int ok = lua_getmetatable(L, 1)
           && lua_getfield(L, -1, "__gc") == LUA_TFUNCTION
           && lua_tocfunction(L, -1) == handle_gc;
  if (!ok) luaL_typeerror(L, 1, "loom handle");
  handle_release(L, 1);
  lua_pushboolean(L, 1);
  return 1;
}

/* Pushes what tostring of the open handle 'h' says. */
void loom__handle_describe(lua_State *L, loom_handle *h) {
  const loom_class *cls = h->cls;
  if (cls->describe == NULL) lua_pushfstring(L, "%s: %p", cls->name, h);
  else lua_pushfstring(L, "%s (%s)", cls->name, cls->describe(h));
}

static int handle_tostring(lua_State *L) {
  const loom_class *cls = lua_touserdata(L, lua_upvalueindex(1));
  loom_handle *h = loom__tohandle(L, 1, cls);
  if (h == NULL)
    lua_pushfstring(L, "%s (%s)", cls->name,
                    cls->closed_as ? cls->closed_as : "closed");
  else loom__handle_describe(L, h);
  return 1;
}

/*
** Makes the metatable of class 'cls' in state 'L' (once per state):
** kept in the registry under the class's address, and under its name
** as luaL_newmetatable does.  '__index' holds the methods; a handle
** class (one with 'close') gets the common 'close' method when it has
** none, '__close', '__gc' and '__tostring'; 'meta' adds metamethods
** (or replaces those).  Every function gets the host box as upvalue 1.
*/
void loom__class_register(lua_State *L, const loom_class *cls) {
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, cls) == LUA_TTABLE) {
    lua_pop(L, 1);
    return;
  }
  lua_pop(L, 1);
  luaL_newmetatable(L, cls->name);
  lua_newtable(L);
  if (cls->methods != NULL) {
    loom__push_box(L);
    luaL_setfuncs(L, cls->methods, 1);
  }
  if (cls->close != NULL && lua_getfield(L, -1, "close") == LUA_TNIL) {
    lua_pushcfunction(L, loom__handle_close);
    lua_setfield(L, -3, "close");
  }
  if (cls->close != NULL) lua_pop(L, 1);
  lua_setfield(L, -2, "__index");
  if (cls->close != NULL) {
    lua_pushcfunction(L, loom__handle_close);
    lua_setfield(L, -2, "__close");
    lua_pushcfunction(L, handle_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushlightuserdata(L, (void *)cls);
    lua_pushcclosure(L, handle_tostring, 1);
    lua_setfield(L, -2, "__tostring");
  }
  if (cls->meta != NULL) {
    loom__push_box(L);
    luaL_setfuncs(L, cls->meta, 1);
  }
  lua_pushvalue(L, -1);
  lua_rawsetp(L, LUA_REGISTRYINDEX, cls);
  lua_pop(L, 1);
}

/*
** The userdata at 'idx' when its metatable is the table on top (which
** is popped), else NULL: the one comparison behind every checked cast.
*/
void *loom__udata_is(lua_State *L, int idx) {
  void *p = lua_touserdata(L, idx);
  int ok = p != NULL && lua_getmetatable(L, idx);
  if (ok) {
    ok = lua_rawequal(L, -1, -2);
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  return ok ? p : NULL;
}

/*
** The object of class 'cls' at 'idx' (a plain userdata, not a box), or
** NULL when it is something else.  The one checked cast of objects.
*/
void *loom__toobject(lua_State *L, int idx, const loom_class *cls) {
  idx = lua_absindex(L, idx);
  lua_rawgetp(L, LUA_REGISTRYINDEX, cls);
  return loom__udata_is(L, idx);
}

/* The same, raising an argument error naming the class. */
void *loom__checkobject(lua_State *L, int idx, const loom_class *cls) {
  void *p = loom__toobject(L, idx, cls);
  if (p == NULL) luaL_typeerror(L, idx, cls->name);
  return p;
}

/* Pushes a new object of class 'cls' ('size' bytes, zeroed). */
void *loom__object_new(lua_State *L, const loom_class *cls, size_t size,
                       int nuv) {
  void *p = lua_newuserdatauv(L, size, nuv);
  memset(p, 0, size);
  lua_rawgetp(L, LUA_REGISTRYINDEX, cls);
  lua_setmetatable(L, -2);
  return p;
}

/* Pushes the __index table (the methods) of class 'cls'. */
void loom__class_methods(lua_State *L, const loom_class *cls) {
  lua_rawgetp(L, LUA_REGISTRYINDEX, cls);
  lua_getfield(L, -1, "__index");
  lua_remove(L, -2);
}

/*
** Closes every handle of 'H', as the host closes.  Each class's close
** must take its handle off the list (LOOM_CLOSE_HOST leaves nothing
** open), so the walk always ends.
*/
void loom__handles_close(loom_host *H) {
  while (H->handles != NULL) {
    loom_handle *h = H->handles;
    loom__handle_detach(h);
    h->cls->close(h, LOOM_CLOSE_HOST);
    if (H->handles == h) loom__handle_unlink(h);  /* a class forgot to */
  }
}

/* }==================================================================== */


/*
** {====================================================================
** What is open, and where it was made
** =====================================================================
*/

/*
** Writes "file:line" of the user's code running in 'L' into 'buf': the
** innermost Lua frame that is not one of loom's embedded chunks, so a
** binding reached through a Lua wrapper or through pcall still names
** the user's line.  In a callback of the loop, on the thread that runs
** the loop, only the frames above the loop count: the call of loom.run
** below them made nothing there (an accepted connection has no line).
** Returns 0, 'buf' empty, when there is no such frame.  A lua_getinfo
** per frame: debug mode alone pays it.
*/
int loom__site(lua_State *L, loom_host *H, char *buf, size_t size) {
  lua_Debug ar;
  int level, limit = INT_MAX;
  if (L == H->L && H->running) {
    for (limit = 0; lua_getstack(L, limit, &ar); limit++) {}
    limit -= H->run_depth;
  }
  for (level = 0; level < limit && lua_getstack(L, level, &ar); level++) {
    lua_getinfo(L, "Sl", &ar);
    if (ar.currentline <= 0 || strncmp(ar.source, "@[loom]", 7) == 0)
      continue;
    snprintf(buf, size, "%s:%d", ar.short_src, ar.currentline);
    return 1;
  }
  buf[0] = '\0';
  return 0;
}

/* "stream" for "loom.stream": the kind core.handles gives. */
static const char *kind_of(const char *name) {
  if (strcmp(name, "loom.alarm") == 0) return "timer";
  return strncmp(name, "loom.", 5) == 0 ? name + 5 : name;
}

/*
** Pushes the table at 'key' in the registry, made on first use with
** the weak mode 'mode' ("k", "v" or "kv").
*/
void loom__push_weak(lua_State *L, const void *key, const char *mode) {
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, key) == LUA_TTABLE) return;
  lua_pop(L, 1);
  lua_newtable(L);
  lua_createtable(L, 0, 1);
  lua_pushstring(L, mode);
  lua_setfield(L, -2, "__mode");
  lua_setmetatable(L, -2);
  lua_pushvalue(L, -1);
  lua_rawsetp(L, LUA_REGISTRYINDEX, key);
}

/*
** Files are plain userdata on no list.  The table at 'trackkey' (weak
** keys) holds those open, each with the line that made it (debug mode)
** or true, so that core.handles and the report at exit see them too:
** a table store on open and one on close, nothing beside a system call.
*/
static int push_tracked(lua_State *L, int create) {
  if (create) {
    loom__push_weak(L, &trackkey, "k");
    return 1;
  }
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &trackkey) == LUA_TTABLE) return 1;
  lua_pop(L, 1);
  return 0;
}

void loom__track(lua_State *L, loom_host *H, int idx) {
  char where[LOOM_SITE_MAX];
  idx = lua_absindex(L, idx);
  push_tracked(L, 1);
  lua_pushvalue(L, idx);
  if (H->debug && loom__site(L, H, where, sizeof where))
    lua_pushstring(L, where);
  else lua_pushboolean(L, 1);
  lua_rawset(L, -3);
  lua_pop(L, 1);  /* remove the table */
}

/* Never allocates: a __gc may call it. */
void loom__untrack(lua_State *L, int idx) {
  idx = lua_absindex(L, idx);
  if (!push_tracked(L, 0)) return;
  lua_pushvalue(L, idx);
  lua_pushnil(L);
  lua_rawset(L, -3);
  lua_pop(L, 1);
}

/* Sets item 'n' of the list at 'lidx' to {kind, what, where} ('what' is
** on top: popped). */
static void add_entry(lua_State *L, int lidx, int n, const char *kind,
                      const char *where, int lasting) {
  lua_createtable(L, 0, 4);
  lua_insert(L, -2);
  lua_setfield(L, -2, "what");
  lua_pushstring(L, kind);
  lua_setfield(L, -2, "kind");
  if (where != NULL) {
    lua_pushstring(L, where);
    lua_setfield(L, -2, "where");
  }
  if (lasting) {
    lua_pushboolean(L, 1);
    lua_setfield(L, -2, "lasting");
  }
  lua_rawseti(L, lidx, n);
}

/*
** Pushes the list of what a script has open on 'H': its handles, oldest
** first (those it holds: not loom's own, not one closed and finishing
** its writes), then its files.  Each is {kind =, what = tostring of it,
** where = "file:line" when made in debug mode}; 'lasting' marks the
** standard streams.  Returns how many.
*/
static int push_handles(lua_State *L, loom_host *H) {
  loom_handle *h = H->handles;
  int n = 0, lidx;
  lua_newtable(L);
  lidx = lua_gettop(L);
  while (h != NULL && h->next != NULL) h = h->next;
  for (; h != NULL; h = h->prev) {
    if (h->box == NULL) continue;
    loom__handle_describe(L, h);
    add_entry(L, lidx, ++n, kind_of(h->cls->name), h->where, h->lasting);
  }
  if (!push_tracked(L, 0)) return n;
  lua_pushnil(L);
  while (lua_next(L, -2)) {  /* object, where or true */
    int top = lua_gettop(L);
    const char *where = lua_type(L, -1) == LUA_TSTRING
                        ? lua_tostring(L, -1) : NULL;
    const char *name = "?";
    if (luaL_getmetafield(L, -2, "__name") == LUA_TSTRING)
      name = lua_tostring(L, -1);
    luaL_tolstring(L, top - 1, NULL);
    add_entry(L, lidx, ++n, kind_of(name), where, 0);
    lua_settop(L, top - 1);  /* keep the key */
  }
  lua_pop(L, 1);  /* remove the table */
  return n;
}

/*
** The collector stands still meanwhile: a finalizer run by an
** allocation here would close a handle of the list being walked (and
** free the 'where' about to be copied).
*/
int loom__push_handles(lua_State *L, loom_host *H) {
  int running = lua_gc(L, LUA_GCISRUNNING), n;
  lua_gc(L, LUA_GCSTOP);
  n = push_handles(L, H);
  if (running) lua_gc(L, LUA_GCRESTART);
  return n;
}

/* }==================================================================== */
