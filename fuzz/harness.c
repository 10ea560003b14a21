/*
** harness.c: the host the fuzz targets share (see harness.h).
*/
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include <lauxlib.h>

#include "harness.h"

#ifndef FUZZ_DIR
#error "FUZZ_DIR: where fuzz/*.lua are (fuzz/meson.build sets it)"
#endif

static loom_host *host;

void fz_fail(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("fuzz: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  abort();
}

static void on_error(loom_host *H, const char *msg, const char *tb,
                     void *ud) {
  (void)H; (void)ud;
  fz_fail("the host reported an error: %s\n%s", msg, tb ? tb : "");
}

/*
** At exit the host closes, so that the leak check at exit finds what
** the whole run lost: libFuzzer's check after each input is off
** (fuzz/run.sh), as the host keeps what it caches between inputs.
*/
static void fz_close(void) {
  loom_free(host);
  host = NULL;
}

loom_host *fz_host(void) {
  lua_State *L;
  if (host != NULL) return host;
  host = loom_new();
  if (host == NULL) fz_fail("loom_new failed");
  loom_set_error_fn(host, on_error, NULL);
  L = loom_state(host);
  /* require finds the Lua files of fuzz/ */
  lua_getglobal(L, "package");
  lua_pushstring(L, FUZZ_DIR "/?.lua;");
  lua_getfield(L, -2, "path");
  lua_concat(L, 2);
  lua_setfield(L, -2, "path");
  lua_pop(L, 1);
  atexit(fz_close);
  return host;
}

void fz_push_script(loom_host *H, const char *name) {
  lua_State *L = loom_state(H);
  char path[512];
  if (lua_getfield(L, LUA_REGISTRYINDEX, name) == LUA_TFUNCTION) return;
  lua_pop(L, 1);
  snprintf(path, sizeof path, "%s/%s", FUZZ_DIR, name);
  if (luaL_loadfile(L, path) != LUA_OK)
    fz_fail("%s", lua_tostring(L, -1));
  lua_pushvalue(L, -1);
  lua_setfield(L, LUA_REGISTRYINDEX, name);
}

/* The task failed: at once, before what it left open keeps the loop. */
static void on_done(loom_host *H, lua_State *L, int nres, void *ud) {
  (void)H; (void)ud;
  if (nres < 0) fz_fail("the task failed: %s", luaL_tolstring(L, -1, NULL));
}

void fz_run(loom_host *H, int nargs) {
  lua_State *L = loom_state(H);
  int task, r;
  if (loom_spawn(H, nargs) != LOOM_OK)
    fz_fail("loom_spawn: %s", lua_tostring(L, -1));
  task = lua_gettop(L);
  loom_on_done(H, task, on_done, NULL);
  r = loom_run(H);
  if (r != 0) fz_fail("loom_run: %d", r);
  r = loom_results(H, task);
  if (r == LOOM_EFAILED)
    fz_fail("the task failed: %s", luaL_tolstring(L, -1, NULL));
  if (r < 0) fz_fail("loom_results: %d", r);
  lua_settop(L, task + (r > 0 ? 1 : 0));
  if (r == 0) lua_pushnil(L);
  lua_remove(L, task);
  /* what the input made goes now: libFuzzer checks for leaks (at a
  ** cost) after an input that freed less than it allocated */
  lua_gc(L, LUA_GCCOLLECT, 0);
}
