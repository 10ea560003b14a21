/*
** module.c: the 'loom' module.  luaopen_loom gathers the C functions
** of every part of the core into one table (the private 'core'),
** registers the Lua-side modules that were embedded at build time in
** package.preload, and runs the embedded 'loom' chunk, which builds the
** public table from 'core'.  The same entry serves 'require "loom"'
** from a stock lua5.4, the loom binary and embedders; luaopen_loom_net
** and the like serve 'require "loom.net"' on its own.
*/
#include <stdlib.h>
#include <string.h>

#include <lualib.h>

#include "internal.h"

/* Generated from lua/ at build time (see meson.build). */
struct loom_chunk {
  const char *name;
  const unsigned char *src;
  size_t len;
};
extern const struct loom_chunk loom__chunks[];

static const struct loom_chunk *find_chunk(const char *name) {
  const struct loom_chunk *c;
  for (c = loom__chunks; c->name != NULL; c++)
    if (strcmp(c->name, name) == 0) return c;
  return NULL;
}

/* Loads the embedded module 'name'; returns the load status. */
int loom__open_lua(lua_State *L, const char *name) {
  const struct loom_chunk *c = find_chunk(name);
  char chunkname[128];
  if (c == NULL) {
    lua_pushfstring(L, "no embedded module '%s'", name);
    return LUA_ERRFILE;
  }
  snprintf(chunkname, sizeof chunkname, "@[loom] %s", name);
  return luaL_loadbufferx(L, (const char *)c->src, c->len, chunkname, "t");
}

/*
** The private 'core' sits in the registry under CORE_KEY, where only
** loom's own chunks (and a spec, through debug.getregistry) reach it;
** the public 'loom' table does not name it.
*/
#define CORE_KEY "loom.core"

/*
** Runs the embedded module 'name' with its name and the private core,
** as 'local name, core = ...'; pushes its value.
*/
static int run_embedded(lua_State *L, const char *name) {
  if (loom__open_lua(L, name) != LUA_OK) return lua_error(L);
  lua_pushstring(L, name);
  lua_getfield(L, LUA_REGISTRYINDEX, CORE_KEY);
  lua_call(L, 2, 1);
  return 1;
}

/* package.preload loader of the embedded modules */
static int preload(lua_State *L) {
  return run_embedded(L, luaL_checkstring(L, 1));
}

/* core.embedded(name): the chunk of an embedded module, uncalled */
static int l_embedded(lua_State *L) {
  if (loom__open_lua(L, luaL_checkstring(L, 1)) != LUA_OK)
    return lua_error(L);
  return 1;
}

static void register_preload(lua_State *L) {
  const struct loom_chunk *c;
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  for (c = loom__chunks; c->name != NULL; c++) {
    if (strcmp(c->name, "loom") == 0) continue;
    lua_pushcfunction(L, preload);
    lua_setfield(L, -2, c->name);
  }
  lua_pop(L, 1);
}

/* core.run(fn, ...) / core.run_with(opts, fn, ...): see loom.run */
/*
** Runs the function at 'fidx' with the values above it as the main
** task, on the virtual clock if 'is_virtual', in debug mode if 'debug'
** (else as set), and returns its results or raises its error; 'fname'
** names the call in errors.
*/
static int run_main(lua_State *L, const char *fname, int fidx,
                    int is_virtual, int debug) {
  loom_host *H = loom__host(L);
  int saved_debug = H->debug;
  loom_task *t;
  if (H->running)
    return luaL_error(L, "loom.run() cannot be called from a running "
                         "event loop");
  if (lua_type(L, fidx) != LUA_TFUNCTION)
    return luaL_error(L, "bad argument #%d to '%s' (function expected, got "
                      "%s)", fidx, fname, luaL_typename(L, fidx));
  t = loom__spawn(L, H, lua_gettop(L) - fidx);  /* task at 'fidx' */
  t->f.observed = 1;  /* its outcome is ours to return or raise */
  loom__set_main(L, H, fidx);
  H->L = L;
  H->vnow = uv_now(H->loop);
  H->is_virtual = (unsigned char)is_virtual;
  if (debug) H->debug = 1;
  loom__loop(H);
  H->L = H->mainL;
  loom__set_main(L, H, 0);
  H->is_virtual = 0;
  if (debug) H->debug = saved_debug;  /* else as the run left it */
  if (t->f.state == FUT_PENDING)
    return luaL_error(L, "loom.run: the main task never finished");
  if (loom__state(&t->f) == LOOM_TASK_STALLED) {  /* where each waited */
    lua_getiuservalue(L, fidx, UV_VALUE);
    lua_getfield(L, -1, "message");
    return luaL_error(L, "loom.run: %s", lua_tostring(L, -1));
  }
  lua_settop(L, fidx);  /* nothing a callback left behind */
  lua_getfield(L, fidx, "result");
  lua_pushvalue(L, fidx);
  lua_call(L, 1, LUA_MULTRET);
  return lua_gettop(L) - fidx;
}

static int l_run(lua_State *L) {
  return run_main(L, "loom.run", 1, 0, 0);
}

static int l_run_with(lua_State *L) {
  const char *clock;
  int is_virtual, debug;
  if (!lua_istable(L, 1))
    return luaL_error(L, "bad argument #1 to 'loom.run_with' (table "
                      "expected, got %s)", luaL_typename(L, 1));
  lua_getfield(L, 1, "clock");
  clock = lua_isnil(L, -1) ? "real" : lua_tostring(L, -1);
  is_virtual = clock != NULL && strcmp(clock, "virtual") == 0;
  if (clock == NULL || (!is_virtual && strcmp(clock, "real") != 0))
    return luaL_error(L, "bad argument #1 to 'loom.run_with' (invalid "
                         "option '%s' for clock: 'real' or 'virtual')",
                      clock ? clock : luaL_typename(L, -1));
  lua_getfield(L, 1, "debug");
  debug = lua_toboolean(L, -1);
  lua_pop(L, 2);
  return run_main(L, "loom.run_with", 2, is_virtual, debug);
}

/*
** loom.debug([on | {slow = s}]): turns debug mode on or off; a table
** turns it on with its settings ('slow': the seconds a step may run
** before it is reported).  Returns the state: on, slow.
*/
static int l_debug(lua_State *L) {
  loom_host *H = loom__host(L);
  if (lua_istable(L, 1)) {
    if (lua_getfield(L, 1, "slow") != LUA_TNIL) {
      int isnum;
      lua_Number s = lua_tonumberx(L, -1, &isnum);
      if (!isnum || !(s >= 0) || s > 1e9)
        loom__argerror(L, 1, "loom.debug", lua_pushfstring(L,
                       "'slow' must be a number of seconds, got %s",
                       isnum ? loom__shownumber(L, -1)
                             : luaL_typename(L, -1)));
      H->slow_ns = (uint64_t)(s * 1e9);
    }
    H->debug = 1;
  }
  else if (!lua_isnone(L, 1)) H->debug = lua_toboolean(L, 1);
  lua_pushboolean(L, H->debug);
  lua_pushnumber(L, (lua_Number)H->slow_ns / 1e9);
  return 2;
}

static const luaL_Reg funcs[] = {
  {"run", l_run},
  {"run_with", l_run_with},
  {"debug", l_debug},
  {"embedded", l_embedded},
  {NULL, NULL}
};

static char savedkey;  /* registry: what luaopen_loom replaced */

static void module_restore(lua_State *L);

/*
** Copies coroutine.resume, .wrap, .running and require between the
** globals and the table on top: into it when 'save', back otherwise.
*/
static void swap_globals(lua_State *L, int save) {
  static const char *const names[] = {"resume", "wrap", "running", NULL};
  int i;
  if (lua_getglobal(L, "coroutine") == LUA_TTABLE)
    for (i = 0; names[i] != NULL; i++) {
      lua_getfield(L, save ? -1 : -2, names[i]);
      lua_setfield(L, save ? -3 : -2, names[i]);
    }
  lua_pop(L, 1);
  if (save) {
    lua_getglobal(L, "require");
    lua_setfield(L, -2, "require");
  }
  else {
    lua_getfield(L, -1, "require");
    lua_setglobal(L, "require");
  }
}

/*
** The module is a handle of its host: when the host closes on a state
** that lives on (an embedder's), what luaopen_loom replaced comes back.
*/
static void module_close_h(loom_handle *h, int why) {
  loom_host *H = loom__handle_host(h);
  (void)why;
  loom__handle_unlink(h);
  if (!H->state_closing) module_restore(H->mainL);
  free(h);
}

static const loom_class module_class = {
  .name = "loom.module",
  .close = module_close_h
};

/*
** Keeps coroutine.resume, coroutine.wrap and require as they were
** before loom replaced them, once per host, for module_restore.
*/
static void save_originals(lua_State *L, loom_host *H) {
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &savedkey) == LUA_TTABLE) {
    lua_pop(L, 1);
    return;
  }
  if (loom__handle_alloc(H, &module_class, sizeof(loom_handle)) == NULL)
    loom__nomem(L);
  lua_pop(L, 1);
  lua_createtable(L, 0, 4);
  swap_globals(L, 1);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &savedkey);
}

static void module_restore(lua_State *L) {
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &savedkey) != LUA_TTABLE) {
    lua_pop(L, 1);
    return;
  }
  swap_globals(L, 0);
  lua_pop(L, 1);
  lua_pushnil(L);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &savedkey);
  lua_pushnil(L);
  lua_setfield(L, LUA_REGISTRYINDEX, CORE_KEY);
  loom__stdio_restore(L);
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  lua_pushnil(L);
  lua_setfield(L, -2, "loom");
  lua_pop(L, 1);
}

LOOM_API int luaopen_loom(lua_State *L) {
  loom_host *H = loom__host_of(L);
  lua_newtable(L);  /* core */
  loom__task_open(L, H);
  loom__timer_open(L, H);
  loom__error_open(L, H);
  loom__work_register(L, H);
  loom__inspect_register(L, H);
  loom__queue_register(L, H);
  loom__net_register(L, H);
  loom__tls_register(L, H);
  loom__fs_register(L, H);
  loom__process_register(L, H);
  loom__signal_register(L, H);
  loom__http_register(L, H);
  loom__http_parser_register(L, H);
  loom__websocket_register(L, H);
  loom__stdio_register(L, H);
  loom__log_register(L, H);
  loom__push_box(L);
  luaL_setfuncs(L, funcs, 1);
  lua_pushliteral(L, LOOM_VERSION);
  lua_setfield(L, -2, "version");
  lua_pushvalue(L, -1);
  lua_setfield(L, LUA_REGISTRYINDEX, CORE_KEY);
  save_originals(L, H);
  loom__stdio_install(L);
  loom__coro_open(L, H);
  register_preload(L);
  if (loom__open_lua(L, "loom") != LUA_OK) return lua_error(L);
  lua_insert(L, -2);
  lua_call(L, 1, 1);
  return 1;
}

/*
** The submodules, each requirable on its own: for require "loom.net",
** a stock lua5.4's all-in-one searcher finds luaopen_loom_net in
** loom.so.  Each opens 'loom' first unless it is loaded (which puts
** net, fs, process and signal in package.loaded and the others in
** package.preload), then returns the submodule.
*/
static int open_submodule(lua_State *L, const char *name) {
  luaL_requiref(L, "loom", luaopen_loom, 0);
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  if (lua_getfield(L, -1, name) != LUA_TNIL) return 1;
  lua_pop(L, 3);
  return run_embedded(L, name);
}

#define SUBMODULES(X) X(net) X(fs) X(process) X(signal) X(json) X(http) \
  X(busted) X(log)

#define OPEN_SUBMODULE(m) \
  LOOM_API int luaopen_loom_##m(lua_State *L); \
  LOOM_API int luaopen_loom_##m(lua_State *L) { \
    return open_submodule(L, "loom." #m); \
  }
SUBMODULES(OPEN_SUBMODULE)


/*
** {====================================================================
** Hosts with the module open
** =====================================================================
*/

typedef struct {
  uv_loop_t *loop;
  int global;  /* set the global 'loom' */
} open_args;

static int open_host(lua_State *L) {
  open_args *a = lua_touserdata(L, 1);
  loom_host *H;
  if (loom__host_of_state(L) != NULL) return 0;  /* one host per state */
  H = loom__host_new(L, a->loop);
  luaL_requiref(L, "loom", luaopen_loom, a->global);
  lua_pushlightuserdata(L, H);
  return 1;
}

LOOM_API loom_host *loom_new_with(uv_loop_t *loop, lua_State *L) {
  open_args a;
  loom_host *H;
  int own = L == NULL;
  if (own) {
    L = luaL_newstate();
    if (L == NULL) return NULL;
    luaL_openlibs(L);
  }
  a.loop = loop;
  a.global = own;
  lua_pushcfunction(L, open_host);
  lua_pushlightuserdata(L, &a);
  if (lua_pcall(L, 1, 1, 0) != LUA_OK || !lua_touserdata(L, -1)) {
    lua_pop(L, 1);
    if (own) lua_close(L);
    return NULL;
  }
  H = lua_touserdata(L, -1);
  lua_pop(L, 1);  /* the host */
  H->owns_state = (unsigned char)own;
  H->api = 1;
  return H;
}

LOOM_API loom_host *loom_new(void) {
  return loom_new_with(NULL, NULL);
}

/* }==================================================================== */
