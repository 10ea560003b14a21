/*
** timer.c: every timer of a host (sleeps, deadlines) in one binary
** min-heap of 'loom_timer' nodes, driven by a single uv_timer_t set for
** the earliest deadline.  A pending sleep costs one heap slot and the
** node inside its task, so a million sleepers stay cheap.  Deadlines
** that are equal fire in the order they were set.
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

#define container_of(p, T, m) ((T *)((char *)(p) - offsetof(T, m)))


/*
** {====================================================================
** The heap
** =====================================================================
*/

/* Deadline order; among equal deadlines, the order they were set in
** (the sequence numbers wrap, so they are compared by difference). */
static int before(const loom_timer *a, const loom_timer *b) {
  return a->due < b->due
         || (a->due == b->due && (int32_t)(a->seq - b->seq) < 0);
}

static void heap_set(loom_host *H, size_t i, loom_timer *tm) {
  H->heap[i] = tm;
  tm->idx = (uint32_t)(i + 1);
}

static void sift_up(loom_host *H, size_t i) {
  loom_timer *tm = H->heap[i];
  while (i > 0) {
    size_t parent = (i - 1) / 2;
    if (!before(tm, H->heap[parent])) break;
    heap_set(H, i, H->heap[parent]);
    i = parent;
  }
  heap_set(H, i, tm);
}

static void sift_down(loom_host *H, size_t i) {
  loom_timer *tm = H->heap[i];
  for (;;) {
    size_t c = 2 * i + 1;
    if (c >= H->nheap) break;
    if (c + 1 < H->nheap && before(H->heap[c + 1], H->heap[c])) c++;
    if (!before(H->heap[c], tm)) break;
    heap_set(H, i, H->heap[c]);
    i = c;
  }
  heap_set(H, i, tm);
}

static void timer_cb(uv_timer_t *h) {
  loom_host *H = h->data;
  if (H->is_virtual && H->nheap > 0 && H->heap[0]->due > H->vnow)
    H->vnow = H->heap[0]->due;
  loom__timer_run(H);
}

/* Sets the uv timer for the earliest deadline, or stops it. */
static void arm(loom_host *H) {
  uint64_t now, due;
  if (H->nheap == 0) {
    uv_timer_stop(&H->timer);
    return;
  }
  now = loom__now(H);
  due = H->heap[0]->due;
  uv_timer_start(&H->timer, timer_cb, due > now ? due - now : 0, 0);
  H->armed = due;
}

/* Queues 'tm' to fire 'ms' milliseconds from now.  Aborts on no memory. */
void loom__timer_add(loom_host *H, loom_timer *tm, uint64_t ms) {
  if (tm->idx != 0) loom__timer_remove(H, tm);
  if (H->nheap == H->heapcap) {
    size_t cap = H->heapcap ? 2 * H->heapcap : 64;
    loom_timer **heap = realloc(H->heap, cap * sizeof *heap);
    if (heap == NULL) abort();
    H->heap = heap;
    H->heapcap = cap;
  }
  tm->due = loom__now(H) + ms;
  tm->seq = H->seq++;
  H->heap[H->nheap] = tm;
  sift_up(H, H->nheap++);
  if (H->heap[0] == tm && (!uv_is_active((uv_handle_t *)&H->timer)
                           || tm->due < H->armed))
    arm(H);
}

/*
** Takes 'tm' out of the heap.  The uv timer is left as it is unless the
** heap is empty: firing early for a removed deadline costs one wake-up,
** while an armed timer with nothing behind it would keep the loop alive.
*/
void loom__timer_remove(loom_host *H, loom_timer *tm) {
  size_t i = tm->idx;
  if (i == 0) return;
  tm->idx = 0;
  i--;
  if (--H->nheap > i) {
    heap_set(H, i, H->heap[H->nheap]);
    sift_down(H, i);
    sift_up(H, H->heap[i]->idx - 1);
  }
  if (H->nheap == 0) uv_timer_stop(&H->timer);
}

void loom__timer_run(loom_host *H) {
  uint64_t now = loom__now(H);
  while (H->nheap > 0 && H->heap[0]->due <= now) {
    loom_timer *tm = H->heap[0];
    loom__timer_remove(H, tm);
    tm->fire(H, tm);
  }
  arm(H);
}

int loom__timer_jump(loom_host *H) {
  uint64_t now;
  if (H->nheap == 0 || H->loop->active_handles != 1
      || H->loop->active_reqs.count != 0)
    return 0;
  now = loom__now(H);
  if (H->heap[0]->due > now) H->vnow = H->heap[0]->due;
  loom__timer_run(H);
  return 1;
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

static void sleep_fire(loom_host *H, loom_timer *tm) {
  loom__wake(H, container_of(tm, loom_task, u.sleep));
}

static void sleep_unwait(loom_host *H, loom_task *t) {
  loom__timer_remove(H, &t->u.sleep);
}

static int l_sleep(lua_State *L) {
  loom_host *H = loom__host(L);
  double s = loom__checkduration(L, 1);
  loom_task *t;
  if (s == 0) return loom__yield(L, H, "loom.sleep");
  t = loom__enter(L, H, "loom.sleep");
  t->u.sleep.idx = 0;  /* the union held an await's links before */
  t->u.sleep.fire = sleep_fire;
  loom__timer_add(H, &t->u.sleep, to_ms(s));
  t->unwait = sleep_unwait;
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
  if (H->current == NULL)
    luaL_error(L, "loom: %s called outside a task (use loom.run or the "
                  "loom binary)", name);
  d = lua_newuserdatauv(L, sizeof *d, 1);
  d->hb = H->box;
  d->gen = H->box->gen;
  d->t = H->current;
  d->s = s;
  d->fired = 0;
  d->tm.idx = 0;
  d->tm.fire = deadline_fire;
  luaL_setmetatable(L, LOOM_DEADLINE_MT);
  loom__push_task(L, H, d->t);
  lua_setiuservalue(L, -2, 1);
  loom__timer_add(H, &d->tm, to_ms(s));
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
  {NULL, NULL}
};

void loom__timer_open(lua_State *L, loom_host *H) {
  H->timer.data = H;
  luaL_newmetatable(L, LOOM_DEADLINE_MT);
  luaL_newlib(L, deadline_methods);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, deadline_close);
  lua_setfield(L, -2, "__close");
  lua_pushcfunction(L, deadline_close);
  lua_setfield(L, -2, "__gc");
  lua_pop(L, 1);
  loom__push_box(L, H);
  luaL_setfuncs(L, funcs, 1);
}

/* }==================================================================== */
