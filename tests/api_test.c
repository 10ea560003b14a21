/*
** api_test.c: tests of every function of loom.h, misuse included.
** Each case is its own meson test: api_test NAME runs case NAME and
** exits 0 when it passed.  Run under valgrind or ASan by the CI.
*/
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include <lauxlib.h>
#include <lualib.h>
#include <loom.h>

static int failed;

#define CHECK(cond) do { \
    if (!(cond)) { \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
      failed = 1; \
    } \
  } while (0)

/* Runs 'code' in the host's state (outside the loop); returns its
** string result, or the error message. */
static const char *eval(loom_host *H, const char *code) {
  lua_State *L = loom_state(H);
  static char buf[512];
  if (luaL_dostring(L, code) != LUA_OK) {
    snprintf(buf, sizeof buf, "error: %s", lua_tostring(L, -1));
    lua_pop(L, 1);
    return buf;
  }
  snprintf(buf, sizeof buf, "%s", lua_isnoneornil(L, -1) ? "nil"
           : luaL_tolstring(L, -1, NULL));
  lua_settop(L, 0);
  return buf;
}

/*
** Steps H (about 1 ms a step) until its script sets the global 'ready',
** within 'limit' steps, then five steps more: far enough into what the
** script does next (a call C never completes, a long sleep).
*/
static void step_until_ready(loom_host *H, int limit) {
  int i;
  for (i = 0; i < limit; i++) {
    CHECK(loom_step(H) == 1);
    if (strcmp(eval(H, "return tostring(ready)"), "true") == 0) break;
    usleep(1000);
  }
  CHECK(strcmp(eval(H, "return tostring(ready)"), "true") == 0);
  for (i = 0; i < 5; i++) CHECK(loom_step(H) == 1);
}

/* {====================================================================
** Hosts
** ===================================================================== */

static void t_new_and_free(void) {
  loom_host *H = loom_new();
  CHECK(H != NULL);
  CHECK(loom_state(H) != NULL);
  CHECK(loom_loop(H) != NULL);
  CHECK(strcmp(eval(H, "return type(loom.spawn)"), "function") == 0);
  CHECK(loom_close(H) == LOOM_OK);
  CHECK(loom_close(H) == LOOM_OK);  /* twice is harmless */
  CHECK(loom_state(H) == NULL);
  CHECK(loom_loop(H) == NULL);
  loom_free(H);
  loom_free(NULL);
}

static void t_embedder_loop(void) {
  uv_loop_t loop;
  loom_host *H;
  uv_loop_init(&loop);
  H = loom_new_with(&loop, NULL);
  CHECK(H != NULL);
  CHECK(loom_loop(H) == &loop);
  CHECK(loom_spawn_string(H, "loom.sleep(0.01) ran = true", "=t", 0)
        == LOOM_OK);
  CHECK(loom_run(H) == 0);
  CHECK(strcmp(eval(H, "return tostring(ran)"), "true") == 0);
  loom_free(H);
  uv_run(&loop, UV_RUN_DEFAULT);  /* loom's close callbacks */
  CHECK(uv_loop_close(&loop) == 0);  /* nothing of loom is left on it */
}

static void t_embedder_state(void) {
  lua_State *L = luaL_newstate();
  loom_host *H, *H2;
  luaL_openlibs(L);
  CHECK(luaL_dostring(L, "original_resume = coroutine.resume "
                         "original_require = require") == LUA_OK);
  H = loom_new_with(NULL, L);
  CHECK(H != NULL);
  CHECK(loom_state(H) == L);
  CHECK(loom_new_with(NULL, L) == NULL);  /* one host per state */
  CHECK(strcmp(eval(H, "return tostring(loom == nil)"), "true") == 0);
  CHECK(strcmp(eval(H, "local l = require 'loom' return "
                       "tostring(l.run(function() l.sleep(0.001) "
                       "return 42 end))"), "42") == 0);
  CHECK(strcmp(eval(H, "return tostring(coroutine.resume ~= "
                       "original_resume)"), "true") == 0);
  CHECK(luaL_dostring(L, "keep_loom = require 'loom' "
                         "keep_f = keep_loom.future()") == LUA_OK);
  CHECK(loom_close(H) == LOOM_OK);
  /* the state lives on, with its own functions back */
  CHECK(loom_state(H) == NULL);
  lua_settop(L, 0);
  CHECK(luaL_dostring(L, "return coroutine.resume == original_resume "
                         "and require == original_require "
                         "and package.loaded.loom == nil") == LUA_OK);
  CHECK(lua_toboolean(L, -1));
  lua_settop(L, 0);
  CHECK(luaL_dostring(L, "return select(2, pcall(keep_loom.spawn, "
                         "print))") == LUA_OK);
  CHECK(strstr(lua_tostring(L, -1), "host is closed") != NULL);
  lua_settop(L, 0);
  CHECK(luaL_dostring(L, "return select(2, pcall(keep_f.done, keep_f))")
        == LUA_OK);
  CHECK(strstr(lua_tostring(L, -1), "closed") != NULL);
  lua_settop(L, 0);
  loom_free(H);
  /* a new host on the same state works, old objects stay refused */
  H2 = loom_new_with(NULL, L);
  CHECK(H2 != NULL);
  CHECK(luaL_dostring(L, "local l = require 'loom' return l.run(function() "
                         "return l.spawn(function() return 7 end):await() "
                         "end)") == LUA_OK);
  CHECK(lua_tointeger(L, -1) == 7);
  lua_settop(L, 0);
  CHECK(luaL_dostring(L, "return (pcall(keep_f.set_result, keep_f, 1))")
        == LUA_OK);
  CHECK(!lua_toboolean(L, -1));
  lua_settop(L, 0);
  loom_free(H2);
  lua_close(L);
}

static void t_module_entry(void) {
  lua_State *L = luaL_newstate();
  luaL_openlibs(L);
  luaL_requiref(L, "loom", luaopen_loom, 0);
  lua_pop(L, 1);
  CHECK(luaL_dostring(L, "local l = require 'loom' return l.run("
                         "function() l.sleep(0.001) return 'ok' end)")
        == LUA_OK);
  CHECK(strcmp(lua_tostring(L, -1), "ok") == 0);
  lua_close(L);  /* frees the host it made: valgrind checks */
}

/* }==================================================================== */


/* {====================================================================
** Running
** ===================================================================== */

static void t_spawn_file(void) {
  loom_host *H = loom_new();
  lua_State *L = loom_state(H);
  char path[] = "/tmp/loom_api_XXXXXX";
  int fd = mkstemp(path);
  const char *src = "local a, b = ... loom.sleep(0.001) return a + b\n";
  CHECK(fd >= 0);
  CHECK(write(fd, src, strlen(src)) == (ssize_t)strlen(src));
  close(fd);
  lua_pushinteger(L, 2);
  lua_pushinteger(L, 3);
  CHECK(loom_spawn_file(H, path, 2) == LOOM_OK);
  CHECK(lua_gettop(L) == 1);  /* the task, in place of the arguments */
  CHECK(loom_results(H, -1) == LOOM_EPENDING);
  CHECK(loom_run(H) == 0);
  CHECK(loom_results(H, 1) == 1);
  CHECK(lua_tointeger(L, -1) == 5);
  lua_settop(L, 0);
  unlink(path);
  CHECK(loom_spawn_file(H, "/nonexistent/x.lua", 0) == LOOM_ELOAD);
  CHECK(strstr(lua_tostring(L, -1), "cannot open") != NULL);
  lua_settop(L, 0);
  loom_free(H);
}

static void t_spawn_string(void) {
  loom_host *H = loom_new();
  lua_State *L = loom_state(H);
  CHECK(loom_spawn_string(H, "return 1 +", "=bad", 0) == LOOM_ELOAD);
  CHECK(strstr(lua_tostring(L, -1), "bad:1:") != NULL);
  lua_settop(L, 0);
  lua_pushstring(L, "x");
  CHECK(loom_spawn_string(H, "return (...) .. 'y'", "=s", 1) == LOOM_OK);
  CHECK(loom_spawn_string(H, NULL, "=n", 0) == LOOM_EINVAL);
  CHECK(loom_run(H) == 0);
  CHECK(loom_results(H, 1) == 1);
  CHECK(strcmp(lua_tostring(L, -1), "xy") == 0);
  loom_free(H);
}

static void t_spawn_function(void) {
  loom_host *H = loom_new();
  lua_State *L = loom_state(H);
  CHECK(luaL_dostring(L, "return function(a) loom.sleep(0) return a * 2, "
                         "'b' end") == LUA_OK);
  lua_pushinteger(L, 21);
  CHECK(loom_spawn(H, 1) == LOOM_OK);
  CHECK(lua_gettop(L) == 1);
  CHECK(loom_results(H, 1) == LOOM_EPENDING);
  CHECK(loom_run(H) == 0);
  CHECK(loom_results(H, 1) == 2);
  CHECK(lua_tointeger(L, -2) == 42);
  CHECK(strcmp(lua_tostring(L, -1), "b") == 0);
  lua_settop(L, 0);
  lua_pushinteger(L, 1);
  lua_pushinteger(L, 2);
  CHECK(loom_spawn(H, 1) == LOOM_EINVAL);  /* 1 is not callable */
  CHECK(lua_gettop(L) == 1 && lua_isstring(L, 1));
  lua_settop(L, 0);
  loom_free(H);
}

static int failures_seen;
static char last_msg[256], last_trace[1024];

static void hook(loom_host *H, const char *msg, const char *tb, void *ud) {
  (void)H;
  failures_seen += *(int *)ud;
  snprintf(last_msg, sizeof last_msg, "%s", msg);
  snprintf(last_trace, sizeof last_trace, "%s", tb);
}

static void t_run_and_error_hook(void) {
  loom_host *H = loom_new();
  int one = 1;
  loom_set_error_fn(H, hook, &one);
  CHECK(loom_spawn_string(H, "local t = loom.spawn(function() "
                             "loom.sleep(0) error('lost', 0) end) "
                             "t.name = 'w'", "=main", 0) == LOOM_OK);
  lua_settop(loom_state(H), 0);
  CHECK(loom_run(H) == 1);  /* one failure reported */
  CHECK(failures_seen == 1);
  CHECK(strstr(last_msg, "task 'w'") != NULL);
  CHECK(strstr(last_msg, "lost") != NULL);
  CHECK(strstr(last_trace, "stack traceback") != NULL);
  loom_set_error_fn(H, NULL, NULL);  /* back to stderr */
  CHECK(loom_spawn_string(H, "return 1", "=ok", 0) == LOOM_OK);
  CHECK(loom_run(H) == 0);
  loom_free(H);
}

/* a function spawned from C, with no main task: its failure is a task's */
static void t_spawned_failure(void) {
  loom_host *H = loom_new();
  lua_State *L = loom_state(H);
  int one = 1;
  failures_seen = 0;
  loom_set_error_fn(H, hook, &one);
  CHECK(luaL_dostring(L, "return function() error('lost', 0) end")
        == LUA_OK);
  CHECK(loom_spawn(H, 0) == LOOM_OK);
  CHECK(loom_push_main(H) == LOOM_EINVAL);  /* none */
  CHECK(loom_run(H) == 1);
  CHECK(failures_seen == 1);
  CHECK(strstr(last_msg, "error in task") != NULL);
  CHECK(strstr(last_msg, "lost") != NULL);
  loom_free(H);
}

/* a C function that calls loom_run / loom_step / loom_close from inside */
static int reenter(lua_State *L) {
  loom_host *H = lua_touserdata(L, lua_upvalueindex(1));
  lua_pushboolean(L, loom_run(H) == LOOM_EBUSY && loom_step(H) == LOOM_EBUSY
                     && loom_close(H) == LOOM_EBUSY);
  return 1;
}

static void t_reentry_refused(void) {
  loom_host *H = loom_new();
  lua_State *L = loom_state(H);
  lua_pushlightuserdata(L, H);
  lua_pushcclosure(L, reenter, 1);
  lua_setglobal(L, "reenter");
  CHECK(loom_spawn_string(H, "return reenter()", "=r", 0) == LOOM_OK);
  CHECK(loom_run(H) == 0);
  CHECK(loom_results(H, 1) == 1 && lua_toboolean(L, -1));
  loom_free(H);
}

static void t_step_and_backend(void) {
  loom_host *H = loom_new();
  int steps = 0, r;
  uint64_t t0 = uv_hrtime();
  CHECK(loom_backend_fd(H) >= 0);
  CHECK(loom_spawn_string(H, "loom.sleep(0.02) done = true", "=s", 0)
        == LOOM_OK);
  lua_settop(loom_state(H), 0);
  CHECK(loom_backend_timeout(H) == 0);  /* a task is ready */
  while ((r = loom_step(H)) == 1) {
    int timeout = loom_backend_timeout(H);
    CHECK(timeout >= -1 && timeout <= 20);
    if (timeout > 0) usleep((useconds_t)timeout * 1000);
    steps++;
    CHECK(steps < 100);  /* it waited as told: no spinning */
    if (steps >= 100) break;
  }
  CHECK(r == 0);
  CHECK(steps >= 1);
  CHECK(uv_hrtime() - t0 >= 19 * 1000000ull);  /* the sleep took its time */
  CHECK(strcmp(eval(H, "return tostring(done)"), "true") == 0);
  CHECK(loom_step(H) == 0);  /* nothing left */
  loom_free(H);
}

static void t_closed_host_refuses(void) {
  loom_host *H = loom_new();
  CHECK(loom_close(H) == LOOM_OK);
  CHECK(loom_step(H) == LOOM_ECLOSED);
  CHECK(loom_run(H) == LOOM_ECLOSED);
  CHECK(loom_spawn(H, 0) == LOOM_ECLOSED);
  CHECK(loom_spawn_string(H, "return 1", "=x", 0) == LOOM_ECLOSED);
  CHECK(loom_spawn_file(H, "x.lua", 0) == LOOM_ECLOSED);
  CHECK(loom_results(H, 1) == LOOM_ECLOSED);
  CHECK(loom_on_done(H, 1, NULL, NULL) == LOOM_ECLOSED);
  CHECK(loom_backend_fd(H) == LOOM_ECLOSED);
  CHECK(loom_backend_timeout(H) == LOOM_ECLOSED);
  loom_set_error_fn(H, NULL, NULL);
  loom_free(H);
}

/* }==================================================================== */


/* {====================================================================
** Tasks from C
** ===================================================================== */

static int done_calls, done_nres;
static char done_text[64];

static void on_done(loom_host *H, lua_State *L, int nres, void *ud) {
  (void)H;
  done_calls += *(int *)ud;
  done_nres = nres;
  snprintf(done_text, sizeof done_text, "%s",
           lua_isstring(L, -1) ? lua_tostring(L, -1) : "?");
}

static void t_on_done(void) {
  loom_host *H = loom_new();
  lua_State *L = loom_state(H);
  int one = 1;
  CHECK(luaL_dostring(L, "return function(x) loom.sleep(0.001) return x "
                         "end") == LUA_OK);
  lua_pushstring(L, "value");
  CHECK(loom_spawn(H, 1) == LOOM_OK);
  CHECK(loom_on_done(H, -1, on_done, &one) == LOOM_OK);
  CHECK(done_calls == 0);
  CHECK(loom_run(H) == 0);
  CHECK(done_calls == 1 && done_nres == 1);
  CHECK(strcmp(done_text, "value") == 0);
  CHECK(loom_on_done(H, 1, on_done, &one) == LOOM_OK);  /* done: at once */
  CHECK(done_calls == 2);
  lua_settop(L, 0);
  /* a failure: nres < 0 with the error, and it counts as observed */
  CHECK(luaL_dostring(L, "return function() loom.sleep(0) error('bad', 0) "
                         "end") == LUA_OK);
  CHECK(loom_spawn(H, 0) == LOOM_OK);
  CHECK(loom_on_done(H, -1, on_done, &one) == LOOM_OK);
  CHECK(loom_run(H) == 0);  /* observed: nothing reported */
  CHECK(done_nres < 0 && strcmp(done_text, "bad") == 0);
  CHECK(loom_results(H, 1) == LOOM_EFAILED);
  CHECK(strcmp(lua_tostring(L, -1), "bad") == 0);
  lua_settop(L, 0);
  lua_pushinteger(L, 5);
  CHECK(loom_on_done(H, -1, on_done, &one) == LOOM_EINVAL);
  CHECK(loom_results(H, -1) == LOOM_EINVAL);
  CHECK(loom_on_done(H, -1, NULL, NULL) == LOOM_EINVAL);
  lua_settop(L, 0);
  loom_free(H);
}

/* }==================================================================== */


/* {====================================================================
** Awaitable C functions
** ===================================================================== */

typedef struct {
  loom_call *call;
  int value;
  int delay_ms;
} job;

static int jobs_freed;

static int push_job(lua_State *L, void *ud) {
  job *j = ud;
  int v = j->value;
  free(j);
  jobs_freed++;
  if (L == NULL) return 0;
  if (v < 0) return luaL_error(L, "job failed with %d", v);
  lua_pushinteger(L, v);
  lua_pushstring(L, "second");
  return 2;
}

/* completes from a uv timer on the loop thread */
static void timer_done(uv_timer_t *t) {
  job *j = t->data;
  loom_call *c = j->call;
  CHECK(loom_call_complete(c, push_job, j) == LOOM_OK);
  CHECK(loom_call_complete(c, push_job, j) == LOOM_EDONE);  /* twice */
  loom_call_release(c);
  uv_close((uv_handle_t *)t, (uv_close_cb)free);
}

static int l_later(lua_State *L) {
  loom_host *H = lua_touserdata(L, lua_upvalueindex(1));
  job *j = malloc(sizeof *j);
  uv_timer_t *t = malloc(sizeof *t);
  j->value = (int)luaL_checkinteger(L, 1);
  j->call = loom_call_new(L);
  uv_timer_init(loom_loop(H), t);
  t->data = j;
  uv_timer_start(t, timer_done, 5, 0);
  return loom_call_await(L, j->call);
}

static void *thread_done(void *arg) {
  job *j = arg;
  loom_call *c = j->call;
  usleep((useconds_t)j->delay_ms * 1000);
  if (loom_call_complete_async(c, push_job, j) != LOOM_OK) {
    free(j);  /* refused: the data is ours */
    __atomic_add_fetch(&jobs_freed, 1000, __ATOMIC_SEQ_CST);
  }
  loom_call_release(c);
  return NULL;
}

static pthread_t last_thread;

static int l_threaded(lua_State *L) {
  job *j = malloc(sizeof *j);
  j->value = (int)luaL_checkinteger(L, 1);
  j->delay_ms = (int)luaL_optinteger(L, 2, 5);
  j->call = loom_call_new(L);
  pthread_create(&last_thread, NULL, thread_done, j);
  return loom_call_await(L, j->call);
}

static void register_calls(loom_host *H) {
  lua_State *L = loom_state(H);
  lua_pushlightuserdata(L, H);
  lua_pushcclosure(L, l_later, 1);
  lua_setglobal(L, "later");
  lua_pushcfunction(L, l_threaded);
  lua_setglobal(L, "threaded");
}

static void t_call_from_loop(void) {
  loom_host *H = loom_new();
  register_calls(H);
  jobs_freed = 0;
  CHECK(loom_spawn_string(H, "local a, b = later(7) "
                             "local ok, e = pcall(later, -1) "
                             "return a .. b .. tostring(ok) .. e", "=c", 0)
        == LOOM_OK);
  CHECK(loom_run(H) == 0);
  CHECK(loom_results(H, 1) == 1);
  CHECK(strcmp(lua_tostring(loom_state(H), -1),
               "7secondfalsejob failed with -1") == 0);
  CHECK(jobs_freed == 2);
  loom_free(H);
}

static void t_call_from_threads(void) {
  loom_host *H = loom_new();
  register_calls(H);
  jobs_freed = 0;
  CHECK(loom_spawn_string(H,
    "local ts = {} "
    "for i = 1, 50 do ts[i] = loom.spawn(threaded, i) end "
    "local sum = 0 "
    "for i = 1, 50 do sum = sum + ts[i]:await() end "
    "return sum", "=threads", 0) == LOOM_OK);
  CHECK(loom_run(H) == 0);
  CHECK(loom_results(H, 1) == 1);
  CHECK(lua_tointeger(loom_state(H), -1) == 50 * 51 / 2);
  CHECK(jobs_freed == 50);
  loom_free(H);
}

static void t_call_cancelled(void) {
  loom_host *H = loom_new();
  register_calls(H);
  jobs_freed = 0;
  /* the task is cancelled while the thread works: the loop waits for the
  ** thread, then lets the push function free the data (L == NULL) */
  CHECK(loom_spawn_string(H,
    "local t = loom.spawn(threaded, 1, 20) "
    "loom.sleep(0.005) t:cancel() "
    "local ok, e = pcall(t.await, t) "
    "return loom.is_cancelled(e)", "=cancel", 0) == LOOM_OK);
  CHECK(loom_run(H) == 0);
  CHECK(loom_results(H, 1) == 1 && lua_toboolean(loom_state(H), -1));
  CHECK(jobs_freed == 1);
  pthread_join(last_thread, NULL);
  /* a timeout does the same */
  lua_settop(loom_state(H), 0);
  CHECK(loom_spawn_string(H,
    "return select(2, pcall(loom.timeout, 0.005, threaded, 1, 20)).code",
    "=timeout", 0) == LOOM_OK);
  CHECK(loom_run(H) == 0);
  CHECK(loom_results(H, 1) == 1);
  CHECK(strcmp(lua_tostring(loom_state(H), -1), "ETIMEDOUT") == 0);
  pthread_join(last_thread, NULL);
  CHECK(jobs_freed == 2);
  loom_free(H);
}

static void t_call_after_close(void) {
  loom_host *H = loom_new();
  register_calls(H);
  jobs_freed = 0;
  /* a thread that completes 50 ms after the host closed is refused */
  CHECK(loom_spawn_string(H, "threaded(1, 50)", "=late", 0) == LOOM_OK);
  CHECK(loom_step(H) == 1);  /* the task starts and waits */
  CHECK(loom_close(H) == LOOM_OK);
  pthread_join(last_thread, NULL);
  CHECK(jobs_freed == 1000);  /* the thread freed its own data */
  loom_free(H);
}

static int l_outside(lua_State *L) {
  loom_call *c = loom_call_new(L);  /* raises: not in a task */
  (void)c;
  return 0;
}

static void t_call_outside_task(void) {
  loom_host *H = loom_new();
  lua_State *L = loom_state(H);
  lua_pushcfunction(L, l_outside);
  CHECK(lua_pcall(L, 0, 0, 0) != LUA_OK);
  CHECK(strstr(lua_tostring(L, -1), "outside a task") != NULL);
  lua_settop(L, 0);
  lua_pushcfunction(L, l_outside);
  lua_setglobal(L, "outside");
  /* inside a table.sort comparator the task cannot suspend */
  CHECK(loom_spawn_string(H, "return select(2, pcall(table.sort, {2, 1}, "
                             "function() outside() end))", "=b", 0)
        == LOOM_OK);
  CHECK(loom_run(H) == 0);
  CHECK(loom_results(H, 1) == 1);
  CHECK(strstr(lua_tostring(L, -1), "table.sort") != NULL);
  loom_free(H);
}

static int l_released(lua_State *L) {
  loom_call *c = loom_call_new(L);
  loom_call_release(c);  /* gives up without ever completing it */
  return loom_call_await(L, c);
}

static void t_call_released(void) {
  loom_host *H = loom_new();
  lua_State *L = loom_state(H);
  lua_pushcfunction(L, l_released);
  lua_setglobal(L, "released");
  CHECK(loom_spawn_string(H, "return select(2, pcall(released))", "=r", 0)
        == LOOM_OK);
  CHECK(loom_run(H) == 0);  /* returns: the task is not left waiting */
  CHECK(loom_results(H, 1) == 1);
  CHECK(strstr(lua_tostring(L, -1), "released its call") != NULL);
  loom_free(H);
}

static void t_resume_after_close(void) {
  lua_State *L = luaL_newstate();
  loom_host *H;
  luaL_openlibs(L);
  H = loom_new_with(NULL, L);
  /* a coroutine left suspended in a loom call, resumed after close */
  CHECK(loom_spawn_string(H, "co = coroutine.create(function() "
                             "loom.sleep(1) end) coroutine.resume(co)",
                          "=s", 0) == LOOM_OK);
  CHECK(luaL_dostring(L, "loom = require 'loom'") == LUA_OK);
  lua_settop(L, 0);
  CHECK(loom_step(H) >= 0);
  CHECK(loom_close(H) == LOOM_OK);
  CHECK(luaL_dostring(L, "return select(2, coroutine.resume(co))")
        == LUA_OK);
  CHECK(lua_isstring(L, -1) && strstr(lua_tostring(L, -1), "closed"));
  lua_settop(L, 0);
  loom_free(H);
  lua_close(L);
}

/* }==================================================================== */


/* {====================================================================
** The main task and how tasks end
** ===================================================================== */

static int sig_calls;

static void on_signal(loom_host *H, int signum, void *ud) {
  (void)ud;
  sig_calls++;
  CHECK(signum == SIGUSR1);
  CHECK(loom_push_main(H) == LOOM_OK);
  CHECK(loom_cancel(H, -1, "stop now") == 1);
  lua_pop(loom_state(H), 1);
}

static void t_main_task(void) {
  loom_host *H = loom_new();
  lua_State *L = loom_state(H);
  CHECK(loom_push_main(H) == LOOM_EINVAL);  /* none yet */
  /* a value */
  CHECK(loom_spawn_string(H, "loom.sleep(0) return 7", "=ok", 0) == LOOM_OK);
  CHECK(loom_task_state(H, -1) == LOOM_TASK_PENDING);
  lua_pop(L, 1);
  CHECK(loom_run(H) == 0);
  CHECK(loom_push_main(H) == LOOM_OK);
  CHECK(loom_task_state(H, -1) == LOOM_TASK_OK);
  CHECK(loom_results(H, -1) == 1 && lua_tointeger(L, -1) == 7);
  lua_settop(L, 0);
  /* an error, seen through loom_results: nothing is reported */
  CHECK(luaL_dostring(L, "return function() loom.sleep(0) error('boom', 0) "
                         "end") == LUA_OK);
  CHECK(loom_spawn(H, 0) == LOOM_OK);
  CHECK(loom_set_main(H, -1) == LOOM_OK);
  CHECK(loom_run(H) == 1);  /* nobody observed it during the run */
  CHECK(loom_push_main(H) == LOOM_OK);
  CHECK(loom_task_state(H, -1) == LOOM_TASK_FAILED);
  CHECK(loom_results(H, -1) == LOOM_EFAILED);
  CHECK(strcmp(lua_tostring(L, -1), "boom") == 0);
  lua_settop(L, 0);
  /* cancelled from C, in a libuv callback: the embedder's signal handler */
  CHECK(loom_set_signal_fn(H, SIGUSR1, on_signal, NULL) == LOOM_OK);
  CHECK(loom_spawn_string(H, "loom.sleep(0) "
                          "require('loom.process').kill(require('loom."
                          "process').pid, 'SIGUSR1') loom.sleep(30)",
                          "=cancelled", 0) == LOOM_OK);
  CHECK(loom_set_main(H, -1) == LOOM_OK);
  lua_settop(L, 0);
  CHECK(loom_run(H) == 0);
  CHECK(sig_calls == 1);
  CHECK(loom_push_main(H) == LOOM_OK);
  CHECK(loom_task_state(H, -1) == LOOM_TASK_CANCELLED);
  CHECK(loom_results(H, -1) == LOOM_EFAILED);
  lua_getfield(L, -1, "message");
  CHECK(strcmp(lua_tostring(L, -1), "stop now") == 0);
  CHECK(loom_cancel(H, -3, NULL) == 0);  /* done already */
  lua_settop(L, 0);
  CHECK(loom_set_signal_fn(H, SIGUSR1, NULL, NULL) == LOOM_OK);
  CHECK(loom_set_signal_fn(H, 0, on_signal, NULL) == LOOM_EINVAL);
  /* stalled: it waits for a future nobody can set */
  CHECK(loom_spawn_string(H, "loom.future():await()", "=stuck", 0)
        == LOOM_OK);
  CHECK(loom_set_main(H, -1) == LOOM_OK);
  lua_settop(L, 0);
  CHECK(loom_run(H) == 0);
  CHECK(loom_push_main(H) == LOOM_OK);
  CHECK(loom_task_state(H, -1) == LOOM_TASK_STALLED);
  CHECK(loom_results(H, -1) == LOOM_EFAILED);
  lua_getfield(L, -1, "message");
  CHECK(strstr(lua_tostring(L, -1), "never finished") != NULL);
  CHECK(strstr(lua_tostring(L, -1), "stuck:1") != NULL);  /* where */
  lua_settop(L, 0);
  /* misuse */
  lua_pushinteger(L, 1);
  CHECK(loom_task_state(H, -1) == LOOM_EINVAL);
  CHECK(loom_set_main(H, -1) == LOOM_EINVAL);
  CHECK(loom_cancel(H, -1, NULL) == LOOM_EINVAL);
  lua_settop(L, 0);
  CHECK(loom_close(H) == LOOM_OK);
  CHECK(loom_push_main(H) == LOOM_ECLOSED);
  CHECK(loom_task_state(H, 1) == LOOM_ECLOSED);
  CHECK(loom_set_signal_fn(H, SIGUSR1, on_signal, NULL) == LOOM_ECLOSED);
  loom_free(H);
}

/* }==================================================================== */


/* {====================================================================
** Out of memory
** ===================================================================== */

static size_t mem_used, mem_limit = (size_t)-1;

/* Lua's allocator, refusing to go past 'mem_limit' bytes in use. */
static void *limited_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  size_t old = ptr != NULL ? osize : 0;
  void *p;
  (void)ud;
  if (nsize == 0) {
    free(ptr);
    mem_used -= old;
    return NULL;
  }
  if (nsize > old && mem_used + (nsize - old) > mem_limit) return NULL;
  p = realloc(ptr, nsize);
  if (p != NULL) mem_used = mem_used - old + nsize;
  return p;
}

static int oom_reports;
static char oom_msg[128];

static void oom_hook(loom_host *H, const char *msg, const char *tb,
                     void *ud) {
  (void)H; (void)tb; (void)ud;
  oom_reports++;
  snprintf(oom_msg, sizeof oom_msg, "%s", msg);
}

/*
** A task fills the memory up to the allocator's limit and fails while
** what it filled is still held by its stack, so the scheduler itself
** finds no memory for the traceback: the task fails with the memory
** error, its awaiter gets it, the host and the other tasks go on, and
** a failure nobody awaits is reported.
*/
/*
** A host on a state whose allocator has a limit, with the error hook
** above and a global 'fill' that fills memory until it runs out; the
** script 'code' is spawned as its main task.  Then the limit is set, 2
** MiB above what is in use.
*/
static loom_host *oom_host(const char *code, const char *name) {
  lua_State *L = lua_newstate(limited_alloc, NULL);
  loom_host *H;
  luaL_openlibs(L);
  H = loom_new_with(NULL, L);
  CHECK(H != NULL);
  loom_set_error_fn(H, oom_hook, NULL);
  CHECK(luaL_dostring(L, "fill = function() local big = {} "
                         "for i = 1, math.huge do big[i] = {} end end")
        == LUA_OK);
  CHECK(loom_spawn_string(H, code, name, 0) == LOOM_OK);
  lua_settop(L, 0);
  lua_gc(L, LUA_GCCOLLECT);
  mem_limit = mem_used + 2 * 1024 * 1024;
  return H;
}

/* Lifts the limit and frees the host and its state. */
static void oom_free(loom_host *H) {
  lua_State *L = loom_state(H);
  mem_limit = (size_t)-1;
  loom_free(H);
  lua_close(L);
}

static void t_out_of_memory(void) {
  loom_host *H = oom_host(
    "local loom = require 'loom'\n"
    "local t = loom.spawn(fill)\n"
    "local ok, e = pcall(t.await, t)\n"
    "result = tostring(ok) .. ' ' .. tostring(e)\n"
    "loom.spawn(fill)\n"  /* nobody awaits this one */
    "loom.sleep(0.01)\n"
    "other = loom.spawn(function() return 'other ok' end):await()\n",
    "=oom");
  CHECK(loom_run(H) == 1);  /* the unawaited failure */
  mem_limit = (size_t)-1;
  CHECK(strcmp(eval(H, "return result"), "false not enough memory") == 0);
  CHECK(strcmp(eval(H, "return other"), "other ok") == 0);
  CHECK(oom_reports == 1);
  CHECK(strstr(oom_msg, "not enough memory") != NULL);
  oom_free(H);
}

/*
** The main task runs out the same way: the run ends, the other tasks
** cancelled (one sleeps 30 s: the run would wait for it otherwise).
*/
static void t_main_out_of_memory(void) {
  loom_host *H;
  lua_State *L;
  uint64_t t0;
  H = oom_host(
    "local loom = require 'loom'\n"
    "loom.spawn(function()\n"
    "  local ok, e = pcall(loom.sleep, 30)\n"
    "  other = loom.is_cancelled(e) and 'cancelled' or 'slept'\n"
    "end)\n"
    "loom.sleep(0)\n"
    "fill()\n", "=main_oom");
  L = loom_state(H);
  t0 = uv_hrtime();
  loom_run(H);
  mem_limit = (size_t)-1;
  CHECK(uv_hrtime() - t0 < 10 * 1000000000ull);
  CHECK(strcmp(eval(H, "return other"), "cancelled") == 0);
  CHECK(loom_push_main(H) == LOOM_OK);
  CHECK(loom_task_state(H, -1) == LOOM_TASK_FAILED);
  lua_settop(L, 0);
  oom_free(H);
}

/*
** On the embedder's loop, a task that allocates without bound (strings,
** in a table it holds) while other tasks talk over a TCP connection:
** the hog fails with "not enough memory", the talk goes on to its end,
** a task spawned afterwards runs, and loom_close leaves the loop with
** nothing of loom's (uv_loop_close returns 0).
*/
static void t_out_of_memory_io(void) {
  uv_loop_t loop;
  lua_State *L = lua_newstate(limited_alloc, NULL);
  loom_host *H;
  uv_loop_init(&loop);
  luaL_openlibs(L);
  H = loom_new_with(&loop, L);
  CHECK(H != NULL);
  loom_set_error_fn(H, oom_hook, NULL);
  CHECK(loom_spawn_string(H,
    "local loom = require 'loom'\n"
    "local net = require 'loom.net'\n"
    "local srv = assert(net.listen('127.0.0.1', 0, function(s)\n"
    "  for line in s:lines() do s:write(line, '\\n') end\n"
    "end))\n"
    "local _, port = srv:address()\n"
    "local c = assert(net.connect('127.0.0.1', port))\n"
    "local talk = loom.spawn(function()\n"
    "  local n = 0\n"
    "  for i = 1, 50 do\n"
    "    c:write('ping ', i, '\\n')\n"
    "    if c:read_line() == 'ping ' .. i then n = n + 1 end\n"
    "    loom.sleep(0.001)\n"
    "  end\n"
    "  return n\n"
    "end)\n"
    "local hog = loom.spawn(function()\n"
    "  local parts = {}\n"
    "  loom.sleep(0.005)\n"
    "  for i = 1, math.huge do parts[i] = ('x'):rep(200) .. i end\n"
    "end)\n"
    "local ok, e = pcall(hog.await, hog)\n"
    "result = tostring(ok) .. ' ' .. tostring(e)\n"
    "echoed = talk:await()\n"
    "after = loom.spawn(function() return 'after ok' end):await()\n"
    "c:close()\n"
    "srv:close()\n", "=oom_io", 0) == LOOM_OK);
  lua_settop(L, 0);
  lua_gc(L, LUA_GCCOLLECT);
  mem_limit = mem_used + 4 * 1024 * 1024;
  CHECK(loom_run(H) == 0);  /* the hog's failure was awaited */
  mem_limit = (size_t)-1;
  CHECK(strcmp(eval(H, "return result"), "false not enough memory") == 0);
  CHECK(strcmp(eval(H, "return tostring(echoed)"), "50") == 0);
  CHECK(strcmp(eval(H, "return after"), "after ok") == 0);
  CHECK(oom_reports == 0);
  CHECK(loom_close(H) == LOOM_OK);
  uv_run(&loop, UV_RUN_NOWAIT);  /* loom's close callbacks */
  CHECK(uv_loop_close(&loop) == 0);
  loom_free(H);
  lua_close(L);
}

/* }==================================================================== */


/* {====================================================================
** Closing a host that owns one of everything
** ===================================================================== */

static loom_call *pending_call;

static int l_pending(lua_State *L) {
  pending_call = loom_call_new(L);
  return loom_call_await(L, pending_call);
}

/*
** On the embedder's loop and state, a script opens a watcher, a
** server, a UDP socket, an alarm, a sleeping task, a signal watcher, a
** child process, a loom.work job's pool and a call C never completes,
** and keeps them all in globals: loom_close must leave the loop with
** nothing of loom's on it, although the state lives on.
*/
static void t_close_with_handles(void) {
  uv_loop_t loop;
  loom_host *H;
  lua_State *L;
  char dir[] = "/tmp/loom-api-XXXXXX";
  int pid;
  CHECK(mkdtemp(dir) != NULL);
  uv_loop_init(&loop);
  L = luaL_newstate();
  luaL_openlibs(L);
  H = loom_new_with(&loop, L);
  lua_pushcfunction(L, l_pending);
  lua_setglobal(L, "pending");
  lua_pushstring(L, dir);
  lua_setglobal(L, "dir");
  CHECK(loom_spawn_string(H,
    "local loom = require 'loom'\n"
    "local fs, net = require 'loom.fs', require 'loom.net'\n"
    "local process, signal = require 'loom.process', require 'loom.signal'\n"
    "watcher = assert(fs.watch(dir))\n"
    "server = assert(net.listen('127.0.0.1', 0, function() end))\n"
    "udp = assert(net.udp('127.0.0.1', 0))\n"
    "later = loom.later(60, function() end)\n"
    "sleeper = loom.spawn(loom.sleep, 60)\n"
    "sig = signal.on('SIGUSR2', function() end)\n"
    "child = assert(process.spawn{'sleep', '30'})\n"
    "pid = child.pid\n"
    "assert(loom.work(function(x) return x end, 1) == 1)\n"
    "ready = true\n"
    "pending()\n", "=handles", 0) == LOOM_OK);
  step_until_ready(H, 2000);
  CHECK(pending_call != NULL);
  pid = atoi(eval(H, "return pid"));
  CHECK(pid > 0);
  CHECK(loom_close(H) == LOOM_OK);
  CHECK(loom_call_complete_async(pending_call, NULL, NULL) == LOOM_ECLOSED);
  loom_call_release(pending_call);
  uv_run(&loop, UV_RUN_NOWAIT);  /* loom's close callbacks */
  CHECK(uv_loop_close(&loop) == 0);
  loom_free(H);
  CHECK(luaL_dostring(L, "return tostring(server)") == LUA_OK);
  CHECK(strcmp(lua_tostring(L, -1), "loom.server (closed)") == 0);
  lua_close(L);
  if (pid > 0) kill(pid, SIGKILL);
  rmdir(dir);
}

/*
** The same with TLS: a server, streams past their handshake (one with
** a context of its own, since collected), one mid-handshake and the
** host's default client context open when loom_close comes.  Every
** SSL and SSL_CTX must go (valgrind's leak check), and the loop be left
** with nothing of loom's.
*/
static void t_close_with_tls(void) {
  uv_loop_t loop;
  loom_host *H;
  lua_State *L;
  char dir[] = "/tmp/loom-api-XXXXXX";
  char path[64];
  CHECK(mkdtemp(dir) != NULL);
  uv_loop_init(&loop);
  L = luaL_newstate();
  luaL_openlibs(L);
  H = loom_new_with(&loop, L);
  lua_pushcfunction(L, l_pending);
  lua_setglobal(L, "pending");
  lua_pushstring(L, dir);
  lua_setglobal(L, "dir");
  CHECK(loom_spawn_string(H,
    "local net, process = require 'loom.net', require 'loom.process'\n"
    "local cert, key = dir .. '/cert.pem', dir .. '/key.pem'\n"
    "local r = assert(process.run{'openssl', 'req', '-x509', '-newkey',\n"
    "  'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',\n"
    "  '-days', '1', '-subj', '/CN=localhost', '-keyout', key,\n"
    "  '-out', cert, timeout = 30})\n"
    "assert(r.code == 0, r.stderr)\n"
    "server = assert(net.listen('127.0.0.1', 0, function(s)\n"
    "  s:write('hi\\n') s:read_all() end, {tls = {cert = cert, key = key}}))\n"
    "local _, port = server:address()\n"
    "client = assert(net.connect('localhost', port, {tls = {ca = cert}}))\n"
    "assert(client:read_line() == 'hi')\n"
    "assert(net.connect('localhost', port, {tls = {ca = cert,\n"
    "  alpn = {'x'}}}))\n"
    "assert(not net.connect('localhost', port, {tls = true}))\n"
    "half = assert(net.connect('127.0.0.1', port))\n"
    "collectgarbage()\n"
    "ready = true\n"
    "pending()\n", "=tls", 0) == LOOM_OK);
  step_until_ready(H, 20000);
  CHECK(pending_call != NULL);
  CHECK(loom_close(H) == LOOM_OK);
  loom_call_release(pending_call);
  uv_run(&loop, UV_RUN_NOWAIT);  /* loom's close callbacks */
  CHECK(uv_loop_close(&loop) == 0);
  loom_free(H);
  CHECK(luaL_dostring(L, "return tostring(client)") == LUA_OK);
  CHECK(strcmp(lua_tostring(L, -1), "loom.stream (closed)") == 0);
  lua_close(L);
  snprintf(path, sizeof path, "%s/cert.pem", dir);
  remove(path);
  snprintf(path, sizeof path, "%s/key.pem", dir);
  remove(path);
  rmdir(dir);
}

/* }==================================================================== */


/* {====================================================================
** Interrupts
** ===================================================================== */

/* poke([grace_ms]): what a SIGINT handler does, from inside the task */
static int l_poke(lua_State *L) {
  loom_host *H = lua_touserdata(L, lua_upvalueindex(1));
  lua_pushinteger(L, loom_interrupt(H, (int)luaL_optinteger(L, 1, 0)));
  return 1;
}

/* interrupts, then suspends before the task runs another instruction;
** a uv timer completes the call after 5 ms (the loop time moves) */
static int l_poke_then_wait(lua_State *L) {
  loom_host *H = lua_touserdata(L, lua_upvalueindex(1));
  loom_interrupt(H, 0);
  return l_later(L);
}

/* the same, completed by the test between two loom_step */
static loom_call *held;
static int l_poke_then_hold(lua_State *L) {
  loom_host *H = lua_touserdata(L, lua_upvalueindex(1));
  loom_interrupt(H, 0);
  held = loom_call_new(L);
  return loom_call_await(L, held);
}

static const char *run_string(loom_host *H, const char *code) {
  lua_State *L = loom_state(H);
  static char buf[256];
  lua_settop(L, 0);
  if (loom_spawn_string(H, code, "=interrupt", 0) != LOOM_OK
      || loom_run(H) != 0 || loom_results(H, 1) != 1)
    snprintf(buf, sizeof buf, "failed: %s", lua_tostring(L, -1));
  else snprintf(buf, sizeof buf, "%s", lua_tostring(L, -1));
  lua_settop(L, 0);
  return buf;
}

static void t_interrupt(void) {
  loom_host *H = loom_new();
  lua_State *L = loom_state(H);
  const char *r;
  int before, i, one = 1;
  register_calls(H);
  lua_pushlightuserdata(L, H);
  lua_pushcclosure(L, l_poke, 1);
  lua_setglobal(L, "poke");
  lua_pushlightuserdata(L, H);
  lua_pushcclosure(L, l_poke_then_wait, 1);
  lua_setglobal(L, "poke_then_wait");
  lua_pushlightuserdata(L, H);
  lua_pushcclosure(L, l_poke_then_hold, 1);
  lua_setglobal(L, "poke_then_hold");
  /* no task runs: nothing to interrupt, nothing raised */
  before = loom_interrupt(H, 0);
  CHECK(before >= 0);
  CHECK(loom_interrupt(H, 0) == before);
  /* at the next instruction: a loop that never suspends stops; the
  ** error is an ordinary one, a pcall catches it */
  r = run_string(H, "local ok, e = pcall(function() local n = poke() "
                    "  while true do end end) return tostring(ok) .. ' ' .. e");
  CHECK(strcmp(r, "false interrupted!") == 0);
  CHECK(loom_interrupt(H, 0) == before + 1);
  /* uncaught, it fails the task with a traceback */
  lua_settop(L, 0);
  CHECK(loom_spawn_string(H, "local n = poke()\nwhile true do end", "=busy",
                          0) == LOOM_OK);
  failures_seen = 0;
  loom_set_error_fn(H, hook, &one);
  CHECK(loom_run(H) == 1);
  CHECK(failures_seen == 1);
  CHECK(strstr(last_msg, ": interrupted!") != NULL);
  CHECK(strstr(last_trace, "\n\tbusy:") != NULL);
  CHECK(strstr(last_trace, ": in main chunk") != NULL);
  loom_set_error_fn(H, NULL, NULL);
  /* after a grace of CPU time: a loop shorter than it runs to its end */
  r = run_string(H, "local ok, e = pcall(function() poke(300) "
                    "  local t = os.clock() + 0.02 while os.clock() < t do end "
                    "  stage = 'past the short loop' while true do end "
                    "end) return stage .. ': ' .. e");
  CHECK(strcmp(r, "past the short loop: interrupted!") == 0);
  /* called again before the loop could run: at once */
  r = run_string(H, "local ok, e = pcall(function() poke(60000) poke(60000) "
                    "  while true do end end) return e");
  CHECK(strcmp(r, "interrupted!") == 0);
  /* the task suspends before its next instruction: the loop runs, the
  ** interrupt is dropped */
  r = run_string(H, "poke_then_wait(1) for i = 1, 1000 do end return 'ran'");
  CHECK(strcmp(r, "ran") == 0);
  /* likewise when a loop callback calls it with no task running */
  lua_settop(L, 0);
  held = NULL;
  CHECK(loom_spawn_string(H, "poke_then_hold() for i = 1, 1000 do end "
                             "return 'ran'", "=hold", 0) == LOOM_OK);
  for (i = 0; i < 100 && held == NULL; i++) CHECK(loom_step(H) >= 0);
  CHECK(held != NULL);
  if (held != NULL) {
    loom_interrupt(H, 0);
    CHECK(loom_call_complete(held, NULL, NULL) == LOOM_OK);
    loom_call_release(held);
  }
  CHECK(loom_run(H) == 0);
  CHECK(loom_results(H, 1) == 1);
  CHECK(strcmp(lua_tostring(L, -1), "ran") == 0);
  /* a script that watches SIGINT takes Ctrl-C over: no interrupt */
  r = run_string(H, "local w = require('loom.signal').on('SIGINT', function() end) "
                    "local ok, e = pcall(function() poke() "
                    "  for i = 1, 1000 do end return 'done' end) "
                    "w:cancel() return tostring(ok) .. ' ' .. e");
  CHECK(strcmp(r, "true done") == 0);
  CHECK(loom_interrupt(H, 0) == before + 4);
  loom_free(H);
}

/* }==================================================================== */


/*
** The host's own state on the embedder's loop: loom_close frees the
** state while libuv still owes callbacks (the writes of a stream closed
** with data queued) and a worker still runs (read_file of a FIFO
** nobody has written yet).  They must touch no freed Lua memory, and
** the loop must close once they are done: the cancelled read stops at
** its flag, though nobody ever writes.
*/
static void t_close_in_flight(void) {
  uv_loop_t loop;
  loom_host *H;
  char dir[] = "/tmp/loom-api-XXXXXX", fifo[64], code[1024];
  int fd;
  CHECK(mkdtemp(dir) != NULL);
  snprintf(fifo, sizeof fifo, "%s/fifo", dir);
  CHECK(mkfifo(fifo, 0600) == 0);
  uv_loop_init(&loop);
  H = loom_new_with(&loop, NULL);
  snprintf(code, sizeof code,
    "local net, fs = require 'loom.net', require 'loom.fs'\n"
    "local srv = net.listen('127.0.0.1', 0, function(s) loom.sleep(30) end)\n"
    "local _, port = srv:address()\n"
    "local c = assert(net.connect('127.0.0.1', port))\n"
    "c:limits{high_water = 1 << 30}\n"
    "c:write(string.rep('x', 8 << 20))\n"
    "c:close()\n"  /* its writes are still queued */
    "loom.spawn(fs.read_file, '%s')\n"
    "loom.sleep(0.05)\n"
    "error('the main task fails', 0)\n", fifo);
  CHECK(loom_spawn_string(H, code, "=in_flight", 0) == LOOM_OK);
  CHECK(loom_run(H) >= 1);
  CHECK(loom_close(H) == LOOM_OK);  /* the state is freed here */
  /* a writer comes: a worker still waiting wakes and stops; one that saw
  ** its flag already is gone (ENXIO: no reader) */
  fd = open(fifo, O_WRONLY | O_NONBLOCK);
  if (fd >= 0) {
    if (write(fd, "x", 1) < 0) {}  /* EPIPE once the worker has stopped */
    close(fd);
  }
  uv_run(&loop, UV_RUN_DEFAULT);
  CHECK(uv_loop_close(&loop) == 0);
  loom_free(H);
  unlink(fifo);
  rmdir(dir);
}

/*
** HTTP transfers in flight when the host closes on the embedder's loop:
** one waiting for its headers, one streamed and paused at its bound,
** an idle keep-alive connection in the pool.  loom_close must leave
** nothing of curl's on the loop.
*/
static void t_http_close_in_flight(void) {
  uv_loop_t loop;
  loom_host *H;
  uv_loop_init(&loop);
  H = loom_new_with(&loop, NULL);
  CHECK(loom_spawn_string(H,
    "local net, http = require 'loom.net', require 'loom.http'\n"
    "local srv = assert(net.listen('127.0.0.1', 0, function(s)\n"
    "  while true do\n"
    "    local line = s:read_line()\n"
    "    if not line then return end\n"
    "    local path = line:match('^GET (%S+)')\n"
    "    repeat local h = s:read_line() until h == '' or not h\n"
    "    if path == '/ok' then\n"
    "      s:write('HTTP/1.1 200 OK\\r\\nContent-Length: 2\\r\\n\\r\\nok')\n"
    "    elseif path == '/big' then\n"
    "      s:write('HTTP/1.1 200 OK\\r\\nContent-Length: 100000000\\r\\n\\r\\n')\n"
    "      local chunk = string.rep('x', 65536)\n"
    "      while s:write(chunk) do end\n"
    "    else loom.sleep(60) end\n"
    "  end\n"
    "end))\n"
    "local _, port = srv:address()\n"
    "local base = 'http://127.0.0.1:' .. port\n"
    "assert(assert(http.get(base .. '/ok')).status == 200)\n"
    "res = assert(http.get(base .. '/big', {stream = true}))\n"
    "loom.spawn(http.get, base .. '/hang')\n"
    "repeat loom.sleep(0.01) until select(3, res:buffered())\n"
    "ready = true\n"
    "loom.sleep(60)\n", "=http", 0) == LOOM_OK);
  step_until_ready(H, 5000);
  CHECK(strcmp(eval(H, "return tostring(select(3, res:buffered()))"),
               "true") == 0);  /* paused */
  CHECK(loom_close(H) == LOOM_OK);
  uv_run(&loop, UV_RUN_DEFAULT);  /* loom's close callbacks */
  CHECK(uv_loop_close(&loop) == 0);
  loom_free(H);
}

static const struct {
  const char *name;
  void (*fn)(void);
} cases[] = {
  {"new_and_free", t_new_and_free},
  {"embedder_loop", t_embedder_loop},
  {"embedder_state", t_embedder_state},
  {"module_entry", t_module_entry},
  {"spawn_file", t_spawn_file},
  {"spawn_string", t_spawn_string},
  {"spawn_function", t_spawn_function},
  {"run_and_error_hook", t_run_and_error_hook},
  {"spawned_failure", t_spawned_failure},
  {"reentry_refused", t_reentry_refused},
  {"step_and_backend", t_step_and_backend},
  {"closed_host_refuses", t_closed_host_refuses},
  {"on_done", t_on_done},
  {"call_from_loop", t_call_from_loop},
  {"call_from_threads", t_call_from_threads},
  {"call_cancelled", t_call_cancelled},
  {"call_after_close", t_call_after_close},
  {"call_outside_task", t_call_outside_task},
  {"call_released", t_call_released},
  {"resume_after_close", t_resume_after_close},
  {"close_with_handles", t_close_with_handles},
  {"close_with_tls", t_close_with_tls},
  {"close_in_flight", t_close_in_flight},
  {"main_task", t_main_task},
  {"out_of_memory", t_out_of_memory},
  {"main_out_of_memory", t_main_out_of_memory},
  {"out_of_memory_io", t_out_of_memory_io},
  {"interrupt", t_interrupt},
  {"http_close_in_flight", t_http_close_in_flight},
  {NULL, NULL}
};

int main(int argc, char **argv) {
  int i;
  if (argc < 2) {
    for (i = 0; cases[i].name; i++) printf("%s\n", cases[i].name);
    return 0;
  }
  for (i = 0; cases[i].name; i++)
    if (strcmp(cases[i].name, argv[1]) == 0) {
      cases[i].fn();
      return failed;
    }
  fprintf(stderr, "no test case '%s'\n", argv[1]);
  return 2;
}
