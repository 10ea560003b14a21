/*
** sensor.c: an awaitable C function completed from another thread.
**
** 'sensor.read(id)' starts a reading on a worker thread (a stand-in for
** slow hardware: 10 ms) and suspends the calling task; the thread
** completes the call, and the task resumes with the value.  The script
** (sensor.lua) reads 100 sensors from 100 concurrent tasks: about 10 ms
** in all, not a second.
**
**   ./sensor sensor.lua
*/
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <lauxlib.h>
#include <loom.h>

typedef struct {
  loom_call *call;
  lua_Integer id;
  double value;
} reading;

/* Runs on the loop thread when the task resumes: push the value, or
** raise for a sensor that does not exist.  L is NULL when the task is
** gone (cancelled meanwhile): then only free. */
static int push_reading(lua_State *L, void *ud) {
  reading r = *(reading *)ud;
  free(ud);
  if (L == NULL) return 0;
  if (r.id < 0) return luaL_error(L, "sensor %d does not exist", (int)r.id);
  lua_pushnumber(L, r.value);
  return 1;
}

static void *worker(void *arg) {
  reading *r = arg;
  loom_call *c = r->call;  /* 'r' belongs to the push function after this */
  usleep(10 * 1000);
  r->value = 20.0 + (double)r->id / 10.0;
  if (loom_call_complete_async(c, push_reading, r) != LOOM_OK)
    free(r);  /* refused (the host closed): the data is still ours */
  loom_call_release(c);
  return NULL;
}

/* sensor.read(id) (suspends) */
static int sensor_read(lua_State *L) {
  lua_Integer id = luaL_checkinteger(L, 1);
  loom_call *c = loom_call_new(L);  /* raises outside a task */
  reading *r = malloc(sizeof *r);
  pthread_t th;
  if (r == NULL) {
    loom_call_release(c);
    return luaL_error(L, "sensor.read: out of memory");
  }
  r->call = c;
  r->id = id;
  if (pthread_create(&th, NULL, worker, r) != 0) {
    loom_call_complete(c, NULL, NULL);
    loom_call_release(c);
    free(r);
    return luaL_error(L, "sensor.read: cannot start a thread");
  }
  pthread_detach(th);
  return loom_call_await(L, c);
}

int main(int argc, char **argv) {
  static const luaL_Reg funcs[] = {{"read", sensor_read}, {NULL, NULL}};
  loom_host *H = loom_new();
  lua_State *L;
  int failures;
  if (H == NULL) return 1;
  L = loom_state(H);
  luaL_newlib(L, funcs);
  lua_setglobal(L, "sensor");
  if (loom_spawn_file(H, argc > 1 ? argv[1] : "sensor.lua", 0) != LOOM_OK) {
    fprintf(stderr, "sensor: %s\n", lua_tostring(L, -1));
    loom_free(H);
    return 1;
  }
  lua_pop(L, 1);  /* the task */
  failures = loom_run(H);
  loom_free(H);
  return failures == 0 ? 0 : 1;
}
