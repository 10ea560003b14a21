/*
** process.c: child processes, the C side of loom.process (the public
** functions and the Process object are in lua/loom/process.lua).
**
** Ownership: a child is a malloc'd 'loom_proc' whose uv_process_t libuv
** owns until its close callback; the 'loom.process' userdata holds a
** pointer to it.  The handle must stay open until the child has exited:
** libuv reaps a child (waitpid) only through an open handle, and a
** handle closed earlier would leave a zombie.  So the userdata is not
** what keeps it: the proc is on its host's list from the spawn until
** its handle closes, which is when both the child has exited (exit_cb)
** and the userdata is gone (collected or closed).  A Process dropped
** while its child runs is therefore still reaped, and the child keeps
** the loop alive until then, as in Node.
**
** The child's piped stdio are ordinary Streams (stream.c): their
** uv_pipe_t, initialised by loom__stream_new, is what uv_spawn opens.
*/
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define LOOM_PROCESS_MT "loom.process"

struct loom_proc {
  loom_handle base;           /* linked until the handle closes */
  uv_process_t h;
  loom_task *waiters;         /* WAIT_LIST: tasks in :wait() */
  int64_t status;             /* exit code, once exited */
  int term_signal;            /* signal that ended it, or 0 */
  int pid;
  unsigned exited : 1;
  char name[72];              /* "cmd (pid N)", for messages */
};

typedef struct loom_proc loom_proc;


/* {====================================================================
** Lifetime
** ===================================================================== */

static void proc_closed(uv_handle_t *h) {
  free(h->data);
}

/* The host of 'p' while its handle is open, else NULL. */
static loom_host *proc_host(loom_proc *p) {
  return p->base.linked ? loom__handle_host(&p->base) : NULL;
}

/* Closes the handle of 'p' (once): off the list, the userdata cleared. */
static void proc_close(loom_proc *p) {
  if (!p->base.linked) return;
  loom__handle_unlink(&p->base);
  loom__handle_detach(&p->base);
  uv_close((uv_handle_t *)&p->h, proc_closed);
}

/* Wakes the tasks in :wait(); they look at the proc when they run. */
static void wake_waiters(loom_proc *p) {
  loom_host *H = proc_host(p);
  if (H == NULL) return;
  while (p->waiters != NULL) loom__list_wake(H, &p->waiters);
}

/*
** The child has exited and libuv has reaped it.  The handle can go now
** unless the userdata still needs it (it reads pid and status there).
*/
static void exit_cb(uv_process_t *h, int64_t status, int term_signal) {
  loom_proc *p = h->data;
  p->exited = 1;
  p->status = status;
  p->term_signal = term_signal;
  wake_waiters(p);
  if (p->base.box == NULL) proc_close(p);
}

/*
** The userdata lets go of 'p' (closed or collected).  A child still
** running keeps its handle until exit_cb, so that it is reaped.
*/
static void proc_release(loom_proc *p) {
  wake_waiters(p);
  if (p->exited) proc_close(p);
}

/* The class's close: by the userdata, or by the host (which reaps no
** more: the child is left to run, as a closing libuv loop leaves it) */
static void proc_close_h(loom_handle *h, int why) {
  if (why == LOOM_CLOSE_HOST) proc_close((loom_proc *)h);
  else proc_release((loom_proc *)h);
}

static const char *proc_describe(loom_handle *h) {
  return ((loom_proc *)h)->name;
}

static const loom_class proc_class;

/* }==================================================================== */


/* {====================================================================
** Spawning
** ===================================================================== */

/*
** Fills a NULL-terminated array with the strings of the list at 'idx'
** (a userdata on the stack holds it; the list keeps the strings alive).
*/
static char **string_list(lua_State *L, int idx, const char *what) {
  int n = (int)lua_rawlen(L, idx), i;
  char **list = lua_newuserdatauv(L, (size_t)(n + 1) * sizeof *list, 0);
  for (i = 0; i < n; i++) {
    if (lua_rawgeti(L, idx, i + 1) != LUA_TSTRING)
      loom__errorf(L, "process.spawn: %s must be strings", what);
    list[i] = (char *)lua_tostring(L, -1);
    lua_pop(L, 1);
  }
  list[n] = NULL;
  return list;
}

static const char *const modes[] = {"pipe", "inherit", "null", NULL};
enum { MODE_PIPE, MODE_INHERIT, MODE_NULL };

/*
** Sets up stdio slot 'fd' as mode 'm'; a pipe is a new Stream, pushed
** (else nil is pushed).  'name' names the command, for messages.
*/
static void set_stdio(lua_State *L, loom_host *H, uv_stdio_container_t *c,
                      int fd, int m, const char *name) {
  static const char *const which[] = {"stdin", "stdout", "stderr"};
  char sname[72];
  loom_stream *s;
  if (m == MODE_INHERIT) {
    c->flags = UV_INHERIT_FD;
    c->data.fd = fd;
  }
  else if (m == MODE_NULL) c->flags = UV_IGNORE;  /* /dev/null */
  if (m != MODE_PIPE) {
    lua_pushnil(L);
    return;
  }
  snprintf(sname, sizeof sname, "%s of %s", which[fd], name);
  s = loom__stream_new(L, H, LOOM_STREAM_PIPE, sname);
  /* the flags say what the child does with its end */
  c->flags = UV_CREATE_PIPE | (fd == 0 ? UV_READABLE_PIPE
                                       : UV_WRITABLE_PIPE);
  c->data.stream = &s->u.s;
}

/* Closes the streams made for a spawn that failed (at 'first'..+2). */
static void close_stdio(lua_State *L, int first) {
  int i;
  for (i = first; i < first + 3; i++) {
    loom_stream **box = lua_touserdata(L, i);
    if (box != NULL && *box != NULL) loom__stream_close(*box, 1);
  }
}

static int spawn_failed(lua_State *L, loom_proc *p, const char *cmd,
                        const char *cwd, int err) {
  close_stdio(L, 10);
  proc_close(p);  /* uv_spawn set the handle up */
  if (cwd == NULL) return loom__fail(L, "spawn", cmd, err);
  lua_pushfstring(L, "spawn '%s' in", cmd);
  return loom__fail(L, lua_tostring(L, -1), cwd, err);
}

/*
** core.proc.spawn(args, env, cwd, stdin, stdout, stderr): a Process
** userdata, its pid and its stdin, stdout and stderr Streams (nil where
** not piped); or nil, message, code.  'args' is the list of the command
** and its arguments, 'env' nil or a list of "name=value" strings, each
** stdio "pipe", "inherit" or "null".
*/
static int l_spawn(lua_State *L) {
  loom_host *H = loom__host(L);
  uv_process_options_t o;
  uv_stdio_container_t stdio[3];
  const char *cwd = loom__optlstring(L, 3, "process.spawn", NULL, NULL);
  int m[3], i, r;
  char **args;
  loom_proc *p;
  char name[64];
  loom__checktype(L, 1, "process.spawn", LUA_TTABLE);
  if (lua_rawlen(L, 1) == 0)
    loom__argerror(L, 1, "process.spawn", "a command is expected");
  for (i = 0; i < 3; i++)
    m[i] = loom__checkoption(L, 4 + i, "process.spawn", NULL, modes);
  lua_settop(L, 6);
  memset(&o, 0, sizeof o);
  args = string_list(L, 1, "the command and its arguments");  /* 7 */
  if (!lua_isnil(L, 2)) {
    loom__checktype(L, 2, "process.spawn", LUA_TTABLE);
    o.env = string_list(L, 2, "environment entries");
  }
  else lua_pushnil(L);  /* 8 */
  p = loom__handle_new(L, H, &proc_class, sizeof *p, 0);  /* 9 */
  p->h.data = p;
  snprintf(name, sizeof name, "%.60s", args[0]);
  memset(stdio, 0, sizeof stdio);
  for (i = 0; i < 3; i++) set_stdio(L, H, &stdio[i], i, m[i], name);
  o.file = args[0];
  o.args = args;
  o.cwd = cwd;
  o.exit_cb = exit_cb;
  o.stdio = stdio;
  o.stdio_count = 3;
  r = uv_spawn(H->loop, &p->h, &o);
  if (r != 0) return spawn_failed(L, p, args[0], cwd, r);
  p->h.data = p;
  p->pid = p->h.pid;
  snprintf(p->name, sizeof p->name, "%s (pid %d)", name, p->pid);
  lua_pushvalue(L, 9);
  lua_pushinteger(L, p->pid);
  for (i = 10; i <= 12; i++) lua_pushvalue(L, i);
  return 5;
}

/* }==================================================================== */


/* {====================================================================
** The Process userdata
** ===================================================================== */

static loom_proc *checkproc(lua_State *L, const char *fname) {
  return loom__checkhandle_as(L, 1, &proc_class, fname);
}

/* Pushes code, nil for an exit, nil, name for a signal; returns 2. */
static int push_status(lua_State *L, loom_proc *p) {
  if (p->term_signal != 0) {
    const char *name = loom__signal_name(p->term_signal);
    lua_pushnil(L);
    if (name != NULL) lua_pushstring(L, name);
    else lua_pushfstring(L, "SIG%d", p->term_signal);
  }
  else {
    lua_pushinteger(L, (lua_Integer)p->status);
    lua_pushnil(L);
  }
  return 2;
}

static int wait_k(lua_State *L, int status, lua_KContext ctx);

static int wait_body(lua_State *L) {
  loom_proc *p = *(loom_proc **)lua_touserdata(L, 1);
  loom_task *t;
  if (p == NULL)  /* closed while we waited */
    return loom__fail_reason(L, NULL, NULL, "the process was closed",
                             "ECANCELED");
  if (p->exited) return push_status(L, p);
  t = loom__enter(L, proc_host(p), "process:wait");
  loom__list_wait(&p->waiters, t);
  return loom__wait(L, wait_k, 0);
}

static int wait_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status; (void)ctx;
  loom__list_resumed(L, NULL);
  return wait_body(L);
}

/* proc:wait() (suspends): code, nil or nil, signal name */
static int p_wait(lua_State *L) {
  checkproc(L, "process:wait");
  loom__current(L, loom__host(L), "process:wait");  /* even when done */
  lua_settop(L, 1);
  return wait_body(L);
}

/* proc:kill(signum): true, or nil, msg, code ("ESRCH" once exited) */
static int p_kill(lua_State *L) {
  loom_proc *p = checkproc(L, "process:kill");
  int signum = (int)loom__checkinteger(L, 2, "process:kill"), r;
  /* once reaped, the pid may belong to another process already */
  if (p->exited) return loom__fail(L, "kill", p->name, UV_ESRCH);
  r = uv_process_kill(&p->h, signum);
  if (r != 0) return loom__fail(L, "kill", p->name, r);
  lua_pushboolean(L, 1);
  return 1;
}

/* proc:status(): nil while running, else as :wait() */
static int p_status(lua_State *L) {
  loom_proc *p = checkproc(L, "process:status");
  if (!p->exited) {
    lua_pushnil(L);
    return 1;
  }
  return push_status(L, p);
}

/* core.proc.kill(pid, signum): true, or nil, msg, code (os-level kill) */
static int l_kill(lua_State *L) {
  lua_Integer pid = loom__checkinteger(L, 1, "process.kill");
  int signum = (int)loom__checkinteger(L, 2, "process.kill"), r;
  char name[32];
  snprintf(name, sizeof name, "pid %lld", (long long)pid);
  r = uv_kill((int)pid, signum);
  if (r != 0) return loom__fail(L, "kill", name, r);
  lua_pushboolean(L, 1);
  return 1;
}

static int l_getpid(lua_State *L) {
  lua_pushinteger(L, uv_os_getpid());
  return 1;
}

/* }==================================================================== */


static const luaL_Reg proc_methods[] = {
  {"wait", p_wait},
  {"kill", p_kill},
  {"status", p_status},
  {NULL, NULL}
};

static const luaL_Reg funcs[] = {
  {"spawn", l_spawn},
  {"kill", l_kill},
  {"getpid", l_getpid},
  {NULL, NULL}
};

static const loom_class proc_class = {
  .name = LOOM_PROCESS_MT,
  .noun = "process",
  .methods = proc_methods,
  .close = proc_close_h,
  .describe = proc_describe
};

void loom__process_register(lua_State *L, loom_host *H) {
  (void)H;
  loom__class_register(L, &proc_class);
  lua_createtable(L, 0, 3);
  loom__push_box(L);
  luaL_setfuncs(L, funcs, 1);
  lua_setfield(L, -2, "proc");
}
