/*
** time.c: loom's time API: loom.sleep, loom.now, the deadlines under
** loom.timeout and loom.wait_for, and alarms (real-time callbacks, for
** the test helper's timeout).  The timers themselves are the
** scheduler's (sched.c).
*/
#include <math.h>
#include <stdlib.h>

#include "internal.h"

/*
** 2^52 ms, some 142,000 years: a duration this long or longer (math.huge
** among them) is "never", and no timer is queued for it at all.  So a
** deadline of math.huge never fires, even on the virtual clock (which
** jumps to the next timer), and loom.sleep(math.huge) sleeps until the
** task is cancelled: alone, it is a task nothing could wake, cancelled
** as one that awaits a future nobody will set.
*/
#define MAX_MS 4503599627370496.0
#define NEVER UINT64_MAX

/*
** {====================================================================
** Lua API
** =====================================================================
*/

double loom__checkduration(lua_State *L, int idx, const char *fname) {
  double s = loom__checknumber(L, idx, fname);
  if (!(s >= 0))  /* also catches NaN */
    loom__argerror(L, idx, fname, lua_pushfstring(L,
                   "duration must be a non-negative number, got %s",
                   loom__shownumber(L, idx)));
  return s;
}

/*
** Whole milliseconds, rounded up: a sleep never ends early.  The small
** slack keeps a duration computed as a difference of loom.now() values
** (0.1000000000002) from costing a whole extra millisecond.  NEVER for
** one too long to ever end.
*/
static uint64_t to_ms(double s) {
  double ms = ceil(s * 1000.0 - 1e-6);
  return ms >= MAX_MS ? NEVER : (uint64_t)ms;
}

/* Queues 'tm' to fire after 'ms' (none for NEVER); raises without memory. */
static void timer_add(lua_State *L, loom_host *H, loom_timer *tm,
                      uint64_t ms) {
  tm->next = tm->prev = NULL;
  if (ms != NEVER && loom__timer_add(H, tm, ms) != 0) loom__nomem(L);
}

static int sleep_k(lua_State *L, loom_host *H, loom_task *t) {
  (void)L; (void)H; (void)t;
  return 0;
}


static int l_sleep(lua_State *L) {
  loom_host *H = loom__host(L);
  double s = loom__checkduration(L, 1, "loom.sleep");
  loom_task *t;
  if (s == 0) return loom__yield(L, H, "loom.sleep");
  t = loom__enter(L, H, "loom.sleep");
  t->u.sleep.kind = TIMER_SLEEP;
  timer_add(L, H, &t->u.sleep, to_ms(s));
  t->wait = WAIT_SLEEP;
  return loom__suspend(L, sleep_k);
}

static int l_now(lua_State *L) {
  loom_host *H = loom__host(L);
  lua_pushnumber(L, (double)loom__now(H) / 1000.0);
  return 1;
}

static const loom_class deadline_class;

/* deadline:close(), also __close and __gc */
static int deadline_close(lua_State *L) {
  loom_deadline *d = loom__checkobject_as(L, 1, &deadline_class,
                                          "deadline:close");
  loom_host *H = d->hb != NULL ? loom__gen_host(d->hb, d->gen) : NULL;
  if (H != NULL) loom__timer_remove(H, &d->tm);
  d->hb = NULL;
  return 0;
}

/*
** deadline:open([s]): opens a closed deadline again, for the running
** task, for 's' seconds (default: as before).  A loop that reads under
** a deadline again and again need not make one each time.
*/
static int deadline_open(lua_State *L) {
  loom_deadline *d = loom__checkobject_as(L, 1, &deadline_class,
                                          "deadline:open");
  loom_host *H = loom__host(L);
  if (!lua_isnoneornil(L, 2)) d->s = loom__checkduration(L, 2,
                                                          "deadline:open");
  if (d->hb != NULL) return loom__errorf(L, "deadline:open: it is open");
  loom__current(L, H, "deadline:open");
  d->hb = H->box;
  d->gen = H->box->gen;
  d->t = H->current;
  d->fired = 0;
  loom__push_task(L, H, d->t);
  lua_setiuservalue(L, 1, 1);
  timer_add(L, H, &d->tm, to_ms(d->s));
  lua_settop(L, 1);
  return 1;
}

static int deadline_fired(lua_State *L) {
  loom_deadline *d = loom__checkobject_as(L, 1, &deadline_class,
                                          "deadline:fired");
  lua_pushboolean(L, d->fired);
  return 1;
}

/* core.deadline(s, name): opens a deadline for the running task */
static int l_deadline(lua_State *L) {
  loom_host *H = loom__host(L);
  const char *name = loom__optlstring(L, 2, "loom.timeout", "loom.timeout",
                                      NULL);
  double s = loom__checkduration(L, 1, name);
  loom_deadline *d;
  loom__current(L, H, name);
  d = loom__object_new(L, &deadline_class, sizeof *d, 1);
  d->hb = H->box;
  d->gen = H->box->gen;
  d->t = H->current;
  d->s = s;
  d->tm.kind = TIMER_DEADLINE;
  loom__push_task(L, H, d->t);
  lua_setiuservalue(L, -2, 1);
  timer_add(L, H, &d->tm, to_ms(s));
  return 1;
}

/*
** core.alarm(s, fn): calls fn() once after 's' seconds of real time,
** outside any task, whatever the clock of the run.  Its uv timer is
** unreferenced: it keeps nothing alive and does not stop the virtual
** clock from jumping.  Returns a handle with :cancel() (also __gc).
** The alarm is malloc'd (libuv owns it until its close callback) and on
** its host's list, so that closing the host closes it too; the handle
** userdata points to it until then.
*/
typedef struct loom_alarm {
  loom_handle base;          /* linked until its timer closes */
  uv_timer_t h;
  int ref;                   /* registry ref of fn */
} loom_alarm;

static void alarm_closed(uv_handle_t *h) {
  free(h->data);
}

/* Stops 'a' for good: off the list, fn let go, the handle cleared. */
static void alarm_stop(loom_alarm *a) {
  loom_host *H = loom__handle_host(&a->base);
  if (!a->base.linked) return;
  loom__handle_unlink(&a->base);
  loom__handle_detach(&a->base);
  luaL_unref(H->mainL, LUA_REGISTRYINDEX, a->ref);
  uv_close((uv_handle_t *)&a->h, alarm_closed);
}

static void alarm_close_h(loom_handle *h, int why) {
  (void)why;
  alarm_stop((loom_alarm *)h);
}

static void alarm_cb(uv_timer_t *h) {
  loom_alarm *a = h->data;
  loom_host *H = loom__handle_host(&a->base);
  lua_State *L = H->L;
  int top = lua_gettop(L);
  lua_rawgeti(L, LUA_REGISTRYINDEX, a->ref);
  alarm_stop(a);
  if (lua_pcall(L, 0, 0, 0) != LUA_OK) {
    lua_pushfstring(L, "error in an alarm: %s", loom__tostring(L, -1));
    loom__report(L, H, lua_tostring(L, -1), "");
  }
  lua_settop(L, top);
}

static const luaL_Reg alarm_methods[] = {
  {"cancel", loom__handle_close},
  {NULL, NULL}
};

static const loom_class alarm_class = {
  .name = "loom.alarm",
  .methods = alarm_methods,
  .close = alarm_close_h,
  .closed_as = "cancelled"
};

static int l_alarm(lua_State *L) {
  loom_host *H = loom__host(L);
  double s = loom__checkduration(L, 1, "alarm");
  uint64_t ms = to_ms(s);
  loom_alarm *a;
  loom__checktype(L, 2, "alarm", LUA_TFUNCTION);
  a = loom__handle_new(L, H, &alarm_class, sizeof *a, 0);
  a->ref = LUA_NOREF;  /* until luaL_ref, which may run out of memory */
  uv_timer_init(H->loop, &a->h);
  a->h.data = a;
  lua_pushvalue(L, 2);
  a->ref = luaL_ref(L, LUA_REGISTRYINDEX);
  if (ms != NEVER) uv_timer_start(&a->h, alarm_cb, ms, 0);
  uv_unref((uv_handle_t *)&a->h);
  return 1;
}

static const luaL_Reg deadline_methods[] = {
  {"close", deadline_close},
  {"open", deadline_open},
  {"fired", deadline_fired},
  {NULL, NULL}
};

static const luaL_Reg deadline_meta[] = {
  {"__close", deadline_close},
  {"__gc", deadline_close},
  {NULL, NULL}
};

static const loom_class deadline_class = {
  .name = LOOM_DEADLINE_MT,
  .methods = deadline_methods,
  .meta = deadline_meta
};

static const luaL_Reg funcs[] = {
  {"sleep", l_sleep},
  {"now", l_now},
  {"deadline", l_deadline},
  {"alarm", l_alarm},
  {NULL, NULL}
};

void loom__timer_open(lua_State *L, loom_host *H) {
  H->timer.data = H;
  loom__class_register(L, &alarm_class);
  loom__class_register(L, &deadline_class);
  loom__push_box(L);
  luaL_setfuncs(L, funcs, 1);
}

/* }==================================================================== */
