/*
** signal.c: signal watchers, the C side of loom.signal (the public
** functions are in lua/loom/signal.lua) and of the binary's Ctrl-C.
**
** Each signal a host watches has one *slot*: a uv_signal_t, malloc'd
** (libuv owns it until its close callback) and on the host's list so
** that closing the host closes it.  The slot dispatches each delivery
** to the watchers it has *when the loop handles it*, not when the
** signal came: a Ctrl-C that arrives just before a script starts
** watching SIGINT goes to the script, not to the default.
**
** A script's watcher ('loom.signal' userdata, the watcher itself) calls
** a Lua function with the signal's name, in protected mode, from the
** loop.  It stays anchored (a registry ref) until it is closed, so that
** 'signal.on' works without the caller keeping the handle.  The slot is
** unreferenced unless a watcher asks to keep the loop alive: only
** 'signal.wait' does.
**
** The host's own *default* (loom_set_signal_fn, the binary's Ctrl-C)
** runs only when no script watcher is open: a script that listens for
** SIGINT takes Ctrl-C over, as a 'SIGINT' listener does in Node.
*/
#include <signal.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define LOOM_SIGNAL_MT "loom.signal"

typedef struct loom_sigwatch loom_sigwatch;
typedef struct loom_sigslot loom_sigslot;

struct loom_sigslot {
  loom_handle base;            /* linked while open */
  uv_signal_t h;
  loom_sigwatch *watchers;     /* script watchers, newest first */
  int nopen;                   /* watchers not closed */
  int nkeep;                   /* open watchers that keep the loop alive */
  int dispatching;             /* closed watchers wait to be unlinked */
  loom_signal_fn cfn;          /* the host's default, or NULL */
  void *ud;
  int signum;
};

/* a script watcher: a handle of its own, on its slot while open */
struct loom_sigwatch {
  loom_handle base;
  loom_sigslot *slot;          /* NULL once unlinked */
  loom_sigwatch *next, *prev;
  int fn_ref;                  /* the Lua function */
  int self_ref;                /* anchors the userdata while linked */
  unsigned keep : 1;           /* keeps the loop alive */
  unsigned closed : 1;
  unsigned orphan : 1;         /* its userdata let go: freed once unlinked */
};


/* {====================================================================
** Names
** ===================================================================== */

#define SIGNAL_NAMES(X) \
  X(SIGHUP) X(SIGINT) X(SIGQUIT) X(SIGILL) X(SIGTRAP) X(SIGABRT) \
  X(SIGBUS) X(SIGFPE) X(SIGKILL) X(SIGUSR1) X(SIGSEGV) X(SIGUSR2) \
  X(SIGPIPE) X(SIGALRM) X(SIGTERM) X(SIGCHLD) X(SIGCONT) X(SIGSTOP) \
  X(SIGTSTP) X(SIGTTIN) X(SIGTTOU) X(SIGURG) X(SIGXCPU) X(SIGXFSZ) \
  X(SIGVTALRM) X(SIGPROF) X(SIGWINCH) X(SIGIO) X(SIGSYS)

static const struct { const char *name; int signum; } names[] = {
#define ENTRY(s) {#s, s},
  SIGNAL_NAMES(ENTRY)
#undef ENTRY
  {NULL, 0}
};

const char *loom__signal_name(int signum) {
  int i;
  for (i = 0; names[i].name != NULL; i++)
    if (names[i].signum == signum) return names[i].name;
  return NULL;
}

/* "SIGTERM" or "TERM" (as kill(1) takes it): its number, or 0. */
static int signum_of(const char *name) {
  int i;
  if (strncmp(name, "SIG", 3) != 0) {
    char full[32];
    if (strlen(name) > sizeof full - 4) return 0;
    snprintf(full, sizeof full, "SIG%s", name);
    return signum_of(full);
  }
  for (i = 0; names[i].name != NULL; i++)
    if (strcmp(names[i].name, name) == 0) return names[i].signum;
  return 0;
}

/*
** core.sig.signum(x): the number and name of signal 'x' (a name, or a
** number that has one), or nil.  0 is "no signal", for kill's check.
*/
static int l_signum(lua_State *L) {
  int signum = 0;
  const char *name = NULL;
  if (lua_isinteger(L, 1)) {
    lua_Integer n = lua_tointeger(L, 1);
    if (n == 0) name = "0";
    else if (n > 0 && n < 256) signum = (int)n;
  }
  else if (lua_type(L, 1) == LUA_TSTRING)
    signum = signum_of(lua_tostring(L, 1));
  if (signum != 0) name = loom__signal_name(signum);
  if (name == NULL) return 0;
  lua_pushinteger(L, signum);
  lua_pushstring(L, name);
  return 2;
}

/* }==================================================================== */


/* {====================================================================
** Slots
** ===================================================================== */

static void slot_closed(uv_handle_t *h) {
  free(h->data);
}

/* The host of an open slot, else NULL. */
static loom_host *slot_host(loom_sigslot *s) {
  return s->base.linked ? loom__handle_host(&s->base) : NULL;
}

static void slot_close(loom_sigslot *s) {
  loom__handle_unlink(&s->base);
  uv_close((uv_handle_t *)&s->h, slot_closed);
}

/* The loop stays alive for the slot only while a watcher asks it to. */
static void slot_update(loom_sigslot *s) {
  if (s->dispatching) return;
  if (s->nopen == 0 && s->cfn == NULL && s->watchers == NULL) slot_close(s);
  else if (s->nkeep > 0) uv_ref((uv_handle_t *)&s->h);
  else uv_unref((uv_handle_t *)&s->h);
}

/*
** Takes 'w' off its slot and lets go of its function and its anchor;
** a watcher whose userdata is gone is freed.
*/
static void watch_unlink(lua_State *L, loom_sigwatch *w) {
  loom_sigslot *s = w->slot;
  if (s != NULL) {
    if (w->prev) w->prev->next = w->next;
    else s->watchers = w->next;
    if (w->next) w->next->prev = w->prev;
    w->slot = NULL;
  }
  if (L != NULL) {
    luaL_unref(L, LUA_REGISTRYINDEX, w->fn_ref);
    luaL_unref(L, LUA_REGISTRYINDEX, w->self_ref);
  }
  w->fn_ref = w->self_ref = LUA_NOREF;
  if (w->orphan) {
    loom__handle_unlink(&w->base);
    free(w);
  }
}

/*
** Closes 'w' (once).  While its slot dispatches, 'w' stays linked (and
** anchored) so that the walk over the watchers stays valid.
*/
static void watch_close(lua_State *L, loom_sigwatch *w) {
  loom_sigslot *s = w->slot;
  if (w->closed || s == NULL) return;
  w->closed = 1;
  s->nopen--;
  if (w->keep) s->nkeep--;
  if (s->dispatching) return;
  watch_unlink(L, w);
  slot_update(s);
}

/* The host closes: the watchers still on the slot close on their own. */
static void slot_close_h(loom_handle *h, int why) {
  loom_sigslot *s = (loom_sigslot *)h;
  loom_sigwatch *w;
  (void)why;  /* a slot has no userdata: only its host closes it */
  for (w = s->watchers; w != NULL; w = w->next) w->slot = NULL;
  s->watchers = NULL;
  slot_close(s);
}

/*
** The userdata lets go (cancel, close, __close, __gc) or the host
** closes.  A watcher still on a slot that is dispatching is freed when
** the dispatch unlinks it.
*/
static void watch_close_h(loom_handle *h, int why) {
  loom_sigwatch *w = (loom_sigwatch *)h;
  loom_host *H = loom__handle_host(h);
  lua_State *L = H != NULL ? H->mainL : NULL;
  w->orphan = 1;
  if (why == LOOM_CLOSE_HOST || w->slot == NULL) {
    w->closed = 1;
    watch_unlink(L, w);
    return;
  }
  if (w->closed) {  /* cancelled during a dispatch that still runs */
    if (!w->slot->dispatching) watch_unlink(L, w);
    return;
  }
  watch_close(L, w);
}

static const char *watch_describe(loom_handle *h) {
  loom_sigwatch *w = (loom_sigwatch *)h;
  return w->closed || w->slot == NULL ? "cancelled"
                                      : loom__signal_name(w->slot->signum);
}

static const loom_class watch_class;

static const loom_class slot_class = {
  .name = "loom.signal_slot",
  .close = slot_close_h
};

/* Calls fn(name) of a script watcher, reporting what it raises. */
static void call_script(loom_host *H, loom_sigwatch *w, int signum) {
  lua_State *L = H->L;
  int top = lua_gettop(L);
  lua_rawgeti(L, LUA_REGISTRYINDEX, w->fn_ref);
  lua_pushstring(L, loom__signal_name(signum));
  if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
    lua_pushfstring(L, "error in a %s watcher: %s",
                    loom__signal_name(signum), loom__tostring(L, -1));
    loom__report(L, H, lua_tostring(L, -1), "");
  }
  lua_settop(L, top);
}

/*
** A delivery: to every open script watcher, or when there is none to
** the default.  Watchers opened meanwhile (at the head) wait for the
** next one; those closed meanwhile are skipped, then unlinked.
*/
static void slot_cb(uv_signal_t *h, int signum) {
  loom_sigslot *s = h->data;
  loom_host *H = slot_host(s);
  loom_sigwatch *w, *next;
  if (H == NULL) return;
  if (s->nopen == 0) {
    if (s->cfn != NULL) s->cfn(H, signum, s->ud);
    return;
  }
  s->dispatching++;
  for (w = s->watchers; w != NULL; w = w->next)
    if (!w->closed) call_script(H, w, signum);
  if (--s->dispatching > 0 || slot_host(s) == NULL) return;
  for (w = s->watchers; w != NULL; w = next) {
    next = w->next;
    if (w->closed) watch_unlink(H->mainL, w);
  }
  slot_update(s);
}

/* The slot of 'signum' on H, started; NULL with '*err' on failure. */
static loom_sigslot *slot_of(loom_host *H, int signum, int *err) {
  loom_sigslot *s;
  loom_handle *h;
  for (h = H->handles; h != NULL; h = h->next)
    if (h->cls == &slot_class && ((loom_sigslot *)h)->signum == signum)
      return (loom_sigslot *)h;
  s = loom__handle_alloc(H, &slot_class, sizeof *s);
  if (s == NULL) {
    *err = UV_ENOMEM;
    return NULL;
  }
  uv_signal_init(H->loop, &s->h);
  s->h.data = s;
  s->signum = signum;
  *err = uv_signal_start(&s->h, slot_cb, signum);
  if (*err != 0) {
    slot_close(s);
    return NULL;
  }
  uv_unref((uv_handle_t *)&s->h);
  return s;
}

/* See loom.h.  The default lives on the signal's slot. */
LOOM_API int loom_set_signal_fn(loom_host *H, int signum, loom_signal_fn fn,
                                void *ud) {
  int err;
  loom_sigslot *s;
  if (H->closed) return LOOM_ECLOSED;
  if (loom__signal_name(signum) == NULL) return LOOM_EINVAL;
  s = slot_of(H, signum, &err);
  if (s == NULL) return err == UV_ENOMEM ? LOOM_ENOMEM : LOOM_EINVAL;
  s->cfn = fn;
  s->ud = fn != NULL ? ud : NULL;
  slot_update(s);
  return LOOM_OK;
}

/* Whether the host has a default for 'signum' already. */
int loom__signal_has_fn(loom_host *H, int signum) {
  loom_handle *h;
  for (h = H->handles; h != NULL; h = h->next)
    if (h->cls == &slot_class && ((loom_sigslot *)h)->signum == signum)
      return ((loom_sigslot *)h)->cfn != NULL;
  return 0;
}

/* }==================================================================== */


/* {====================================================================
** Script watchers
** ===================================================================== */

/*
** core.sig.watch(signum, fn, keep_alive): a watcher calling fn(name) on
** each delivery of 'signum', until :close().  It keeps the loop alive
** only when 'keep_alive'.  Raises when the signal cannot be caught.
*/
static int l_watch(lua_State *L) {
  loom_host *H = loom__host(L);
  int signum = (int)loom__checkinteger(L, 1, "signal.on");
  int err;
  const char *name = loom__signal_name(signum);
  loom_sigwatch *w;
  loom_sigslot *s;
  if (name == NULL) loom__argerror(L, 1, "signal.on", "unknown signal");
  loom__checktype(L, 2, "signal.on", LUA_TFUNCTION);
  w = loom__handle_new(L, H, &watch_class, sizeof *w, 0);
  w->closed = 1;  /* until linked */
  w->fn_ref = w->self_ref = LUA_NOREF;
  s = slot_of(H, signum, &err);
  if (s == NULL) {  /* no watcher after all: not one left open */
    loom__handle_detach(&w->base);
    watch_close_h(&w->base, LOOM_CLOSE_USER);
    return loom__errorf(L, "cannot watch %s: %s", name, uv_strerror(err));
  }
  lua_pushvalue(L, 2);
  w->fn_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_pushvalue(L, -1);
  w->self_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  w->closed = 0;
  w->keep = lua_toboolean(L, 3) != 0;
  w->slot = s;
  w->next = s->watchers;
  if (s->watchers) s->watchers->prev = w;
  s->watchers = w;
  s->nopen++;
  if (w->keep) s->nkeep++;
  slot_update(s);
  return 1;
}

static int w_active(lua_State *L) {
  loom_sigwatch *w = (loom_sigwatch *)loom__tohandle(L, 1, &watch_class);
  lua_pushboolean(L, w != NULL && !w->closed);
  return 1;
}

/* }==================================================================== */


static const luaL_Reg watch_methods[] = {
  {"cancel", loom__handle_close},
  {"active", w_active},
  {NULL, NULL}
};

static const luaL_Reg funcs[] = {
  {"watch", l_watch},
  {"signum", l_signum},
  {NULL, NULL}
};

static const loom_class watch_class = {
  .name = LOOM_SIGNAL_MT,
  .noun = "signal watcher",
  .methods = watch_methods,
  .close = watch_close_h,
  .describe = watch_describe,
  .closed_as = "cancelled"
};

void loom__signal_register(lua_State *L, loom_host *H) {
  (void)H;
  loom__class_register(L, &watch_class);
  lua_createtable(L, 0, 2);
  loom__push_box(L);
  luaL_setfuncs(L, funcs, 1);
  lua_setfield(L, -2, "sig");
}


/*
** {====================================================================
** Interrupts
** =====================================================================
*/

/* instructions between two looks at the clock during the grace */
#define GRACE_CHECK_EVERY 1000

/* The interrupt waiting for its task is the host's 'intr': a signal
** handler writes it, the hook reads it. */

/* The CPU time of the calling thread (the loop's), in ms. */
static uint64_t thread_cpu_ms(void) {
  struct timespec ts;
  if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) != 0) return 0;
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Whether a script watches SIGINT: its slot has an open watcher. */
static int sigint_watched(loom_host *H) {
  loom_handle *h;
  for (h = H->handles; h != NULL; h = h->next)
    if (h->cls == &slot_class && ((loom_sigslot *)h)->signum == SIGINT)
      return ((loom_sigslot *)h)->nopen > 0;
  return 0;
}

/*
** The hook that loom_interrupt sets on the running task's coroutine.
** It first runs at the next instruction, then every GRACE_CHECK_EVERY
** while the grace lasts; then it raises, as lua.c's 'lstop' does (with
** no position: the error comes from no line of the script's).  The
** interrupt is dropped once the loop has run since it came (the loop
** time moved: the task suspended, and the loop saw the signal), and
** when a script watches SIGINT.  On a coroutine that is not the
** running task's (one that finished and went back to the pool) the
** hook only removes itself.
*/
static void interrupt_hook(lua_State *L, lua_Debug *ar) {
  loom_host *H = loom__host_of_state(L);
  (void)ar;
  if (H == NULL || !H->intr.pending || H->closed || H->current == NULL
      || H->current->co != L || H->current->closing) {
    lua_sethook(L, NULL, 0, 0);
    return;
  }
  if (uv_now(H->loop) != H->intr.loop_time) {
    H->intr.pending = 0;
    lua_sethook(L, NULL, 0, 0);
    return;
  }
  if (!H->intr.started) {
    H->intr.started = 1;
    H->intr.cpu0 = thread_cpu_ms();
    if (H->intr.grace > 0) {
      lua_sethook(L, interrupt_hook, LUA_MASKCOUNT, GRACE_CHECK_EVERY);
      return;
    }
  }
  if (thread_cpu_ms() - H->intr.cpu0 < (uint64_t)H->intr.grace) return;
  H->intr.pending = 0;
  lua_sethook(L, NULL, 0, 0);
  if (sigint_watched(H)) return;
  H->intr.raised++;
  /* Lua turns hooks off while one runs and turns them back on when it
  ** returns, or when a pcall catches what it raised; a coroutine that
  ** this error ends keeps them off: it must not go back to the pool */
  H->current->escaped = 1;
  lua_pushliteral(L, "interrupted!");  /* the traceback says where */
  lua_error(L);
}

LOOM_API int loom_interrupt(loom_host *H, int grace_ms) {
  int before;
  loom_task *t;
  if (H == NULL || H->closed) return 0;
  before = (int)H->intr.raised;
  t = H->current;
  if (t == NULL || t->co == NULL || t->closing) {
    H->intr.pending = 0;  /* the loop runs: it sees the signal */
    return before;
  }
  if (H->intr.pending && H->intr.loop_time == uv_now(H->loop)
      && H->intr.co == t->co) {
    H->intr.grace = 0;  /* again before the loop could run: at once */
    return before;
  }
  H->intr.co = t->co;  /* a task of its own: a fresh interrupt */
  H->intr.grace = grace_ms > 0 ? grace_ms : 0;
  H->intr.started = 0;
  H->intr.loop_time = uv_now(H->loop);
  H->intr.pending = 1;
  lua_sethook(t->co, interrupt_hook, LUA_MASKCOUNT, 1);
  return before;
}

/* }==================================================================== */
