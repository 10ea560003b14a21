/*
** timer.c: every timer of a host (sleeps, deadlines) behind a single
** uv_timer_t set for the earliest deadline.
**
** Timers are kept as Node keeps them: one FIFO list per duration.  The
** clock never goes back, so a new timer always belongs at the tail of
** its list, and each list stays in deadline order.  A small binary heap
** orders the lists by their first timer.  Adding, cancelling and firing
** a timer are O(1) (plus O(log lists) when a list's first timer
** changes); a pending sleep costs only the node inside its task, so a
** million sleepers stay cheap, and a hundred thousand that are due at
** once fire in a straight walk down one list.
**
** A list's heap key is kept lazily: it is never later than the list's
** first timer, and is made exact (or the empty list dropped) whenever
** the list reaches the top.  Timers due at the same millisecond fire in
** the order they were set, whatever their lists.
**
** The virtual clock ('vnow', as Trio's autojump clock) stands still
** while tasks run: when the ready queue is empty and the loop holds
** nothing else that could wake a task (no other active handle, no
** request in flight), it jumps to the next deadline.  While some I/O
** is pending it cannot know, so the uv timer still fires after the
** same span of real time and moves it on.
*/
#include <math.h>
#include <stdlib.h>

#include "internal.h"

#define MAX_MS 4503599627370496.0  /* 2^52 ms: "forever" */
#define NBUCKETS 256               /* lists by duration: hash buckets */

#define container_of(p, T, m) ((T *)((char *)(p) - offsetof(T, m)))

typedef struct loom_alarm loom_alarm;

struct loom_tlist {
  loom_timer head;     /* sentinel: head.next is the first timer */
  uint64_t ms;         /* the duration of its timers */
  uint64_t kdue;       /* heap key, never later than the first timer */
  uint32_t kseq;
  uint32_t idx;        /* heap slot + 1; 0 when out of the heap */
  loom_tlist *chain;   /* next list in the same bucket */
};

static void fire(loom_host *H, loom_timer *tm);


/*
** {====================================================================
** Lists and their heap
** =====================================================================
*/

static int before(const loom_tlist *a, const loom_tlist *b) {
  return a->kdue < b->kdue
         || (a->kdue == b->kdue && (int32_t)(a->kseq - b->kseq) < 0);
}

static void heap_set(loom_host *H, size_t i, loom_tlist *l) {
  H->heap[i] = l;
  l->idx = (uint32_t)(i + 1);
}

static void sift_up(loom_host *H, size_t i) {
  loom_tlist *l = H->heap[i];
  while (i > 0) {
    size_t parent = (i - 1) / 2;
    if (!before(l, H->heap[parent])) break;
    heap_set(H, i, H->heap[parent]);
    i = parent;
  }
  heap_set(H, i, l);
}

static void sift_down(loom_host *H, size_t i) {
  loom_tlist *l = H->heap[i];
  for (;;) {
    size_t c = 2 * i + 1;
    if (c >= H->nheap) break;
    if (c + 1 < H->nheap && before(H->heap[c + 1], H->heap[c])) c++;
    if (!before(H->heap[c], l)) break;
    heap_set(H, i, H->heap[c]);
    i = c;
  }
  heap_set(H, i, l);
}

static void heap_push(loom_host *H, loom_tlist *l) {
  if (H->nheap == H->heapcap) {
    size_t cap = H->heapcap ? 2 * H->heapcap : 16;
    loom_tlist **heap = realloc(H->heap, cap * sizeof *heap);
    if (heap == NULL) abort();  /* as libuv does on lack of memory */
    H->heap = heap;
    H->heapcap = cap;
  }
  H->heap[H->nheap] = l;
  sift_up(H, H->nheap++);
}

/* Takes the top list out of the heap and frees it (it is empty). */
static void drop_top(loom_host *H) {
  loom_tlist *l = H->heap[0], **p;
  l->idx = 0;
  if (--H->nheap > 0) {
    heap_set(H, 0, H->heap[H->nheap]);
    sift_down(H, 0);
  }
  for (p = &H->buckets[l->ms % NBUCKETS]; *p != l; p = &(*p)->chain) {}
  *p = l->chain;
  free(l);
}

/* The list of duration 'ms', created empty if there is none. */
static loom_tlist *list_for(loom_host *H, uint64_t ms) {
  loom_tlist *l, **bucket;
  if (H->buckets == NULL) {
    H->buckets = calloc(NBUCKETS, sizeof *H->buckets);
    if (H->buckets == NULL) abort();
  }
  bucket = &H->buckets[ms % NBUCKETS];
  for (l = *bucket; l != NULL; l = l->chain)
    if (l->ms == ms) return l;
  l = calloc(1, sizeof *l);
  if (l == NULL) abort();
  l->ms = ms;
  l->head.next = l->head.prev = &l->head;
  l->chain = *bucket;
  *bucket = l;
  return l;
}

/*
** Makes the key of the top list exact, dropping empty lists, and
** returns that list, or NULL when no timer is queued.  Its first timer
** is then the earliest of all.
*/
static loom_tlist *top(loom_host *H) {
  while (H->nheap > 0) {
    loom_tlist *l = H->heap[0];
    loom_timer *first = l->head.next;
    if (first == &l->head) drop_top(H);
    else if (first->due == l->kdue && first->seq == l->kseq) return l;
    else {
      l->kdue = first->due;
      l->kseq = first->seq;
      sift_down(H, 0);
    }
  }
  return NULL;
}

/* }==================================================================== */


/*
** {====================================================================
** Timers
** =====================================================================
*/

static void timer_cb(uv_timer_t *h) {
  loom_host *H = h->data;
  loom_tlist *l = top(H);
  if (H->is_virtual && l != NULL && l->head.next->due > H->vnow)
    H->vnow = l->head.next->due;
  loom__timer_run(H);
}

/* Sets the uv timer for the earliest deadline, or stops it. */
static void arm(loom_host *H) {
  loom_tlist *l = top(H);
  uint64_t now, due;
  if (l == NULL) {
    uv_timer_stop(&H->timer);
    return;
  }
  now = loom__now(H);
  due = l->head.next->due;
  uv_timer_start(&H->timer, timer_cb, due > now ? due - now : 0, 0);
  H->armed = due;
}

/* Queues 'tm' to fire 'ms' milliseconds from now. */
void loom__timer_add(loom_host *H, loom_timer *tm, uint64_t ms) {
  loom_tlist *l = list_for(H, ms);
  tm->due = loom__now(H) + ms;
  tm->seq = H->seq++;
  tm->next = &l->head;
  tm->prev = l->head.prev;
  l->head.prev->next = tm;
  l->head.prev = tm;
  H->ntimers++;
  if (l->idx == 0) {
    l->kdue = tm->due;
    l->kseq = tm->seq;
    heap_push(H, l);
  }
  else if (tm->due < l->kdue) {
    /* the list was empty with the key of a later time: the clock went
    ** back, as when a run on the virtual clock is followed by a real one */
    l->kdue = tm->due;
    l->kseq = tm->seq;
    sift_up(H, l->idx - 1);
  }
  if (!uv_is_active((uv_handle_t *)&H->timer) || tm->due < H->armed)
    arm(H);
}

/*
** Takes 'tm' out of its list.  The uv timer is left as it is unless no
** timer is left: firing early for a removed deadline costs one wake-up,
** while an armed timer with nothing behind it would keep the loop alive.
*/
void loom__timer_remove(loom_host *H, loom_timer *tm) {
  if (tm->next == NULL) return;
  tm->prev->next = tm->next;
  tm->next->prev = tm->prev;
  tm->next = tm->prev = NULL;
  if (--H->ntimers == 0) uv_timer_stop(&H->timer);
}

void loom__timer_run(loom_host *H) {
  uint64_t now = loom__now(H);
  loom_tlist *l;
  while ((l = top(H)) != NULL && l->head.next->due <= now) {
    loom_timer *tm = l->head.next;
    loom__timer_remove(H, tm);
    fire(H, tm);
  }
  arm(H);
}

int loom__timer_jump(loom_host *H) {
  loom_tlist *l;
  if (H->ntimers == 0 || H->loop->active_handles != 1
      || H->loop->active_reqs.count != 0)
    return 0;
  l = top(H);
  if (l == NULL) return 0;
  if (l->head.next->due > H->vnow) H->vnow = l->head.next->due;
  loom__timer_run(H);
  return 1;
}

void loom__timer_close(loom_host *H) {
  size_t i;
  loom_tlist *l, *next;
  for (i = 0; H->buckets != NULL && i < NBUCKETS; i++)
    for (l = H->buckets[i]; l != NULL; l = next) {
      next = l->chain;
      free(l);
    }
  free(H->buckets);
  free(H->heap);
  H->buckets = NULL;
  H->heap = NULL;
  H->nheap = H->heapcap = H->ntimers = 0;
}

/* }==================================================================== */


/*
** {====================================================================
** Lua API
** =====================================================================
*/

double loom__checkduration(lua_State *L, int idx) {
  double s = luaL_checknumber(L, idx);
  if (!(s >= 0))  /* also catches NaN */
    luaL_argerror(L, idx, lua_pushfstring(L,
                  "duration must be a non-negative number, got %f", s));
  return s;
}

/*
** Whole milliseconds, rounded up: a sleep never ends early.  The small
** slack keeps a duration computed as a difference of loom.now() values
** (0.1000000000002) from costing a whole extra millisecond.
*/
static uint64_t to_ms(double s) {
  double ms = ceil(s * 1000.0 - 1e-6);
  return ms > MAX_MS ? (uint64_t)MAX_MS : (uint64_t)ms;
}

static int sleep_k(lua_State *L, loom_host *H, loom_task *t) {
  (void)L; (void)H; (void)t;
  return 0;
}


static int l_sleep(lua_State *L) {
  loom_host *H = loom__host(L);
  double s = loom__checkduration(L, 1);
  loom_task *t;
  if (s == 0) return loom__yield(L, H, "loom.sleep");
  t = loom__enter(L, H, "loom.sleep");
  t->u.sleep.kind = TIMER_SLEEP;
  loom__timer_add(H, &t->u.sleep, to_ms(s));
  t->wait = WAIT_SLEEP;
  return loom__suspend(L, sleep_k);
}

static int l_now(lua_State *L) {
  loom_host *H = loom__host(L);
  lua_pushnumber(L, (double)loom__now(H) / 1000.0);
  return 1;
}

/*
** A deadline: the scope of one loom.timeout.  While it is open, the
** task that opened it gets a loom.Timeout at its current suspension
** when the time is up.  User value 1 keeps that task alive.
*/
typedef struct {
  loom_timer tm;
  loom_hostbox *hb;        /* NULL once closed */
  uint32_t gen;
  loom_task *t;
  double s;
  int fired;
} loom_deadline;

static void deadline_fire(loom_host *H, loom_timer *tm) {
  loom_deadline *d = container_of(tm, loom_deadline, tm);
  char msg[64];
  d->fired = 1;
  if (d->t->f.state != FUT_PENDING) return;
  snprintf(msg, sizeof msg, "timed out after %gs", d->s);
  loom__new_timeout(H->L, H, msg);
  loom__throw(H->L, H, d->t);
}

static int deadline_close(lua_State *L) {
  loom_deadline *d = luaL_checkudata(L, 1, LOOM_DEADLINE_MT);
  if (d->hb != NULL && d->hb->gen == d->gen && d->hb->H != NULL)
    loom__timer_remove(d->hb->H, &d->tm);
  d->hb = NULL;
  return 0;
}

static int deadline_fired(lua_State *L) {
  loom_deadline *d = luaL_checkudata(L, 1, LOOM_DEADLINE_MT);
  lua_pushboolean(L, d->fired);
  return 1;
}

/* core.deadline(s, name): opens a deadline for the running task */
static int l_deadline(lua_State *L) {
  loom_host *H = loom__host(L);
  const char *name = luaL_optstring(L, 2, "loom.timeout");
  double s = loom__checkduration(L, 1);
  loom_deadline *d;
  loom__current(L, H, name);
  d = lua_newuserdatauv(L, sizeof *d, 1);
  d->hb = H->box;
  d->gen = H->box->gen;
  d->t = H->current;
  d->s = s;
  d->fired = 0;
  d->tm.next = d->tm.prev = NULL;
  d->tm.kind = TIMER_DEADLINE;
  luaL_setmetatable(L, LOOM_DEADLINE_MT);
  loom__push_task(L, H, d->t);
  lua_setiuservalue(L, -2, 1);
  loom__timer_add(H, &d->tm, to_ms(s));
  return 1;
}

static void fire(loom_host *H, loom_timer *tm) {
  switch (tm->kind) {
    case TIMER_SLEEP:
      loom__wake(H, container_of(tm, loom_task, u.sleep));
      break;
    case TIMER_DEADLINE:
      deadline_fire(H, tm);
      break;
  }
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
struct loom_alarm {
  loom_handle base;          /* linked until its timer closes */
  uv_timer_t h;
  int ref;                   /* registry ref of fn */
};

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
    loom__report(H, lua_tostring(L, -1), "");
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
  double s = loom__checkduration(L, 1);
  loom_alarm *a;
  luaL_checktype(L, 2, LUA_TFUNCTION);
  a = loom__handle_new(L, H, &alarm_class, sizeof *a, 0);
  uv_timer_init(H->loop, &a->h);
  a->h.data = a;
  lua_pushvalue(L, 2);
  a->ref = luaL_ref(L, LUA_REGISTRYINDEX);
  uv_timer_start(&a->h, alarm_cb, to_ms(s), 0);
  uv_unref((uv_handle_t *)&a->h);
  return 1;
}

static const luaL_Reg deadline_methods[] = {
  {"close", deadline_close},
  {"fired", deadline_fired},
  {NULL, NULL}
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
  luaL_newmetatable(L, LOOM_DEADLINE_MT);
  luaL_newlib(L, deadline_methods);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, deadline_close);
  lua_setfield(L, -2, "__close");
  lua_pushcfunction(L, deadline_close);
  lua_setfield(L, -2, "__gc");
  lua_pop(L, 1);
  loom__push_box(L);
  luaL_setfuncs(L, funcs, 1);
}

/* }==================================================================== */
