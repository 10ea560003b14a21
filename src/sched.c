/*
** sched.c: the scheduler.  It decides what runs when: the ready queue
** and the loop phases that drain it, the timers, the resumption and
** completion of tasks, every way a task waits and is taken out of its
** wait, cancellation, and the reports of failures nobody saw.
**
** The ready queue is drained by a prepare and a check handle, so the
** loop may be driven by 'uv_run' from anywhere: the prepare handle runs
** the ready tasks before the loop polls for I/O, the check handle runs
** those that the poll woke.  An idle handle, active only while tasks
** are ready, keeps the poll from blocking.
**
** A future is a 'loom.future' userdata; a task is a 'loom.task'
** userdata whose struct begins with the future's.  Both keep their
** outcome in user value UV_VALUE (nothing, the single result, a table
** of results, or the error).  Rarely used fields live in the host's
** aux table (weak keys), one table per future that needs them: 'name',
** 'trace' (traceback of a failure), 'throw' (an error waiting to be
** raised in the task), 'cause' and 'cause_trace' (the failure it got
** from a task it awaited), 'callbacks' (on_done), 'watch', and in
** debug mode 'spawned' (a task's "file:line") and 'set_at' (who set a
** future, and where).
**
** A pending task is anchored in the host's live table at 't->ref'.
** Before it starts, UV_VALUE holds its function and user values 2..
** its arguments; coroutines are taken from a small pool only when the
** task first runs, so a million spawned tasks that have not run yet
** cost no stacks, and a finished task gives its coroutine back.
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
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define POOL_MAX 256  /* idle coroutines kept for reuse */
#define SLOW_MS 100   /* debug: a step longer than this is reported */
#define NBUCKETS 256               /* lists by duration: hash buckets */


struct loom_tlist {
  loom_timer head;     /* sentinel: head.next is the first timer */
  uint64_t ms;         /* the duration of its timers */
  uint64_t kdue;       /* heap key, never later than the first timer */
  uint32_t kseq;
  uint32_t idx;        /* heap slot + 1; 0 when out of the heap */
  loom_tlist *chain;   /* next list in the same bucket */
};

static void fire(loom_host *H, loom_timer *tm);

char loom__tag;

/*
** {====================================================================
** Running ready tasks
** =====================================================================
*/

/*
** Runs every task that is ready now, once: a task that becomes ready
** again while this round runs (loom.yield) waits for the next round,
** so one busy task cannot starve the poll.
*/
static void run_ready(loom_host *H) {
  size_t n = H->nready;
  while (n-- > 0 && H->ready_head != NULL) {
    loom_task *t = H->ready_head;
    H->ready_head = t->next_ready;
    if (H->ready_head == NULL) H->ready_tail = NULL;
    H->nready--;
    t->queued = 0;
    loom__step(H, t);
  }
  if (H->nready == 0) uv_idle_stop(&H->idle);
  /* the main task failed (or was cancelled) and the others have finished
  ** their cleanup: the run is over, whatever handles are still open (a
  ** listening server, a running child), as an uncaught error ends Node */
  if (H->main_ended && H->ntasks == 0) uv_stop(H->loop);
}

static void idle_cb(uv_idle_t *h) {
  (void)h;  /* exists only to make the poll non-blocking */
}

/*
** libuv computes the poll timeout right after this phase from the loop
** time cached when the iteration began; after a long round of tasks
** that time is stale and the poll would wait too long (a timer due in
** 1 s fired 0.2 s late after a round of 100,000 tasks).  Refresh it.
*/
static void prepare_cb(uv_prepare_t *h) {
  loom_host *H = h->data;
  H->iterations++;  /* once per iteration: core.stats */
  if (H->nready > 0) {
    run_ready(H);
    uv_update_time(H->loop);
  }
  if (H->is_virtual && H->nready == 0) loom__timer_jump(H);
}

static void check_cb(uv_check_t *h) {
  run_ready((loom_host *)h->data);
}

/*
** Sets the scheduler's own handles up on the host's loop, and its pool
** of idle coroutines, sized so that giving one back never allocates.
*/
void loom__sched_open(lua_State *L, loom_host *H) {
  uv_handle_t *hs[4];
  int i;
  uv_prepare_init(H->loop, &H->prepare);
  uv_check_init(H->loop, &H->check);
  uv_idle_init(H->loop, &H->idle);
  uv_timer_init(H->loop, &H->timer);
  hs[0] = (uv_handle_t *)&H->prepare;
  hs[1] = (uv_handle_t *)&H->check;
  hs[2] = (uv_handle_t *)&H->idle;
  hs[3] = (uv_handle_t *)&H->timer;
  for (i = 0; i < 4; i++) {
    hs[i]->data = H;
    H->handles_open++;
  }
  lua_createtable(L, POOL_MAX, 0);
  H->pool_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  H->slow_ns = SLOW_MS * 1000000ull;
  uv_prepare_start(&H->prepare, prepare_cb);
  uv_check_start(&H->check, check_cb);
  uv_unref(hs[0]);  /* they keep nothing alive */
  uv_unref(hs[1]);
}

/*
** Closes the scheduler's handles ('cb' is their close callback) and
** frees the timer lists; the tasks are the state's, and go with it.
*/
void loom__sched_close(loom_host *H, uv_close_cb cb) {
  loom__timer_close(H);
  uv_close((uv_handle_t *)&H->prepare, cb);
  uv_close((uv_handle_t *)&H->check, cb);
  uv_close((uv_handle_t *)&H->idle, cb);
  uv_close((uv_handle_t *)&H->timer, cb);
}

void loom__wake(loom_host *H, loom_task *t) {
  t->wait = WAIT_NONE;
  if (t->queued || t->closing || t->f.state != FUT_PENDING) return;
  t->queued = 1;
  t->next_ready = NULL;
  if (H->ready_tail) H->ready_tail->next_ready = t;
  else H->ready_head = t;
  H->ready_tail = t;
  if (H->nready++ == 0) uv_idle_start(&H->idle, idle_cb);
}

uint64_t loom__now(loom_host *H) {
  return H->is_virtual ? H->vnow : uv_now(H->loop);
}

/*
** Runs until no task, timer or handle is left.  Tasks still pending
** when the loop has nothing left to wait for can never be woken (they
** await a future nobody will set): they are cancelled so that their
** cleanup runs, a few rounds at most in case they wait again.
*/
int loom__loop(loom_host *H) {
  int rounds = 0;
  int failures = H->failures;
  lua_Debug ar;
  H->running = 1;
  H->stalled = 0;
  H->main_ended = 0;
  /* the frames below the loop's callbacks (see loom__site) */
  for (H->run_depth = 0; lua_getstack(H->L, H->run_depth, &ar);
       H->run_depth++) {}
  for (;;) {
    uv_run(H->loop, UV_RUN_DEFAULT);
    if (H->ntasks == 0 || ++rounds > 3) break;
    loom__stall(H);
  }
  H->running = 0;
  H->run_depth = 0;
  loom__report_unobserved(H->L, H);
  if (H->debug) loom__report_exit(H);
  return H->failures - failures;
}

/* }==================================================================== */



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

/* Makes room for one more list in the heap; 0, or UV_ENOMEM. */
static int heap_reserve(loom_host *H) {
  if (H->nheap == H->heapcap) {
    size_t cap = H->heapcap ? 2 * H->heapcap : 16;
    loom_tlist **heap = realloc(H->heap, cap * sizeof *heap);
    if (heap == NULL) return UV_ENOMEM;
    H->heap = heap;
    H->heapcap = cap;
  }
  return 0;
}

static void heap_push(loom_host *H, loom_tlist *l) {  /* room reserved */
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

/* The list of duration 'ms', created empty if there is none; NULL
** when memory runs out. */
static loom_tlist *list_for(loom_host *H, uint64_t ms) {
  loom_tlist *l, **bucket;
  if (H->buckets == NULL) {
    H->buckets = calloc(NBUCKETS, sizeof *H->buckets);
    if (H->buckets == NULL) return NULL;
  }
  bucket = &H->buckets[ms % NBUCKETS];
  for (l = *bucket; l != NULL; l = l->chain)
    if (l->ms == ms) return l;
  l = calloc(1, sizeof *l);
  if (l == NULL) return NULL;
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

/*
** Queues 'tm' to fire 'ms' milliseconds from now.  Returns 0, or
** UV_ENOMEM with nothing queued: all that can fail comes first.
*/
int loom__timer_add(loom_host *H, loom_timer *tm, uint64_t ms) {
  loom_tlist *l = list_for(H, ms);
  if (l == NULL || (l->idx == 0 && heap_reserve(H) != 0)) return UV_ENOMEM;
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
  return 0;
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



/* What a timer does when it fires. */
static void deadline_fire(loom_host *H, loom_timer *tm) {
  loom_deadline *d = container_of(tm, loom_deadline, tm);
  char msg[64];
  d->fired = 1;
  if (d->t->f.state != FUT_PENDING) return;
  snprintf(msg, sizeof msg, "timed out after %gs", d->s);
  loom__new_timeout(H->L, H, msg);
  loom__throw(H->L, H, d->t);
}

static void fire(loom_host *H, loom_timer *tm) {
  switch (tm->kind) {
    case TIMER_SLEEP:
      loom__wake(H, container_of(tm, loom_task, u.sleep));
      break;
    case TIMER_DEADLINE:
      deadline_fire(H, tm);
      break;
    case TIMER_STREAM_READ: case TIMER_STREAM_WRITE:
      loom__stream_timer_fire(H, tm);
      break;
  }
}

/*
** {====================================================================
** Helpers
** =====================================================================
*/

/* The userdata at 'idx' when its metatable is the one at 'ref'. */
static void *has_mt(lua_State *L, int idx, int ref) {
  idx = lua_absindex(L, idx);
  lua_rawgeti(L, LUA_REGISTRYINDEX, ref);
  return loom__udata_is(L, idx);
}

/*
** Pushes the aux table of the future at 'idx' (creating it if 'create',
** else pushing nil when it has none).
*/
static int push_aux(lua_State *L, int idx, int create) {
  loom_future *f = lua_touserdata(L, idx);
  loom_host *H = loom__fhost(f);
  idx = lua_absindex(L, idx);
  if (H == NULL || !(f->has_aux || create)) {
    lua_pushnil(L);
    return 0;
  }
  f->has_aux = 1;
  lua_rawgeti(L, LUA_REGISTRYINDEX, H->aux_ref);
  lua_pushvalue(L, idx);
  if (lua_rawget(L, -2) != LUA_TTABLE && create) {
    int named = lua_type(L, -1) == LUA_TSTRING;  /* a name alone, below */
    lua_createtable(L, 0, 2);
    if (named) {
      lua_insert(L, -2);
      lua_setfield(L, -2, "name");
    }
    else lua_remove(L, -2);
    lua_pushvalue(L, idx);
    lua_pushvalue(L, -2);
    lua_rawset(L, -4);
  }
  lua_remove(L, -2);  /* remove the host's aux table */
  return lua_istable(L, -1) || lua_type(L, -1) == LUA_TSTRING;
}

/*
** Pushes field 'k' of the aux table of the future at 'idx'.  A task
** whose only field is its name (every connection's task has one) keeps
** the string itself where the table would be: a table is 100 bytes.
*/
int loom__get_aux(lua_State *L, int idx, const char *k) {
  if (!push_aux(L, idx, 0)) return LUA_TNIL;
  if (lua_type(L, -1) == LUA_TSTRING) {
    if (strcmp(k, "name") != 0) {
      lua_pop(L, 1);
      lua_pushnil(L);
    }
    return lua_type(L, -1);
  }
  lua_getfield(L, -1, k);
  lua_remove(L, -2);
  return lua_type(L, -1);
}

/* Sets field 'k' of the aux table of 'idx' to the value on top. */
void loom__set_aux(lua_State *L, int idx, const char *k) {
  loom_future *f = lua_touserdata(L, idx);
  loom_host *H = loom__fhost(f);
  idx = lua_absindex(L, idx);
  if (H != NULL && strcmp(k, "name") == 0 && lua_type(L, -1) == LUA_TSTRING
      && !f->has_aux) {  /* the first field, a name: the string alone */
    f->has_aux = 1;
    lua_rawgeti(L, LUA_REGISTRYINDEX, H->aux_ref);
    lua_pushvalue(L, idx);
    lua_pushvalue(L, -3);
    lua_rawset(L, -3);
    lua_pop(L, 2);
    return;
  }
  if (H != NULL && strcmp(k, "name") == 0 && f->has_aux
      && (lua_type(L, -1) == LUA_TSTRING || lua_isnil(L, -1))) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, H->aux_ref);
    lua_pushvalue(L, idx);
    if (lua_rawget(L, -2) == LUA_TSTRING) {  /* renamed, or unnamed */
      lua_pop(L, 1);
      lua_pushvalue(L, idx);
      lua_pushvalue(L, -3);  /* the new name, or nil: no aux left */
      lua_rawset(L, -3);
      lua_pop(L, 2);
      return;
    }
    lua_pop(L, 2);
  }
  if (!push_aux(L, idx, 1)) {
    lua_pop(L, 2);  /* an orphaned future keeps nothing */
    return;
  }
  lua_insert(L, -2);
  lua_setfield(L, -2, k);
  lua_pop(L, 1);  /* remove aux */
}

void loom__push_task(lua_State *L, loom_host *H, loom_task *t) {
  lua_rawgeti(L, LUA_REGISTRYINDEX, H->live_ref);
  lua_rawgeti(L, -1, t->ref);
  lua_remove(L, -2);
}

/* Makes the task at 'idx' the main task (0: none), keeping it alive. */
void loom__set_main(lua_State *L, loom_host *H, int idx) {
  luaL_unref(L, LUA_REGISTRYINDEX, H->main_ref);
  H->main_ref = LUA_NOREF;
  H->main = NULL;
  if (idx == 0) return;
  H->main = lua_touserdata(L, idx);
  lua_pushvalue(L, idx);
  H->main_ref = luaL_ref(L, LUA_REGISTRYINDEX);
}

void loom__push_name(lua_State *L, int idx) {
  loom_task *t = lua_touserdata(L, idx);
  if (loom__get_aux(L, idx, "name") == LUA_TNIL) {
    lua_pop(L, 1);
    loom_host *H = loom__fhost(&t->f);
    if (H != NULL && t == H->main) lua_pushliteral(L, "main");
    else lua_pushfstring(L, "task-%d", (int)t->id);
  }
}

/* Pushes the outcome stored in the future at 'idx'; returns how many. */
int loom__push_value(lua_State *L, loom_future *f, int idx) {
  int i, n = f->state == FUT_OK ? f->nres : 1;
  if (n == 0) return 0;
  lua_getiuservalue(L, idx, UV_VALUE);
  if (n == 1) return 1;
  luaL_checkstack(L, n, "too many results");
  for (i = 1; i <= n; i++) lua_rawgeti(L, -i, i);
  lua_remove(L, -(n + 1));  /* remove the table */
  return n;
}

/*
** Stores the 'n' values on top of 'from' (which may be L itself) as the
** outcome of the userdata at 'idx' of L, popping them.
*/
void loom__store_values(lua_State *L, int idx, lua_State *from, int n) {
  int i;
  if (n == 0) lua_pushnil(L);
  else if (n == 1) lua_xmove(from, L, 1);
  else {
    lua_createtable(L, n, 0);
    for (i = n; i >= 1; i--) {
      if (from == L) lua_rotate(L, -2, 1);  /* value above the table */
      else lua_xmove(from, L, 1);
      lua_rawseti(L, -2, i);
    }
  }
  lua_setiuservalue(L, idx, UV_VALUE);
}

/* }==================================================================== */


/*
** {====================================================================
** Completion
** =====================================================================
*/

static void report_failure(lua_State *L, loom_host *H, int idx);


/*
** A failure watch reports the failure of its future when the future is
** collected unobserved.  Only failed futures get one, so the others
** carry no finalizer.  It sits in the future's aux table and holds the
** future in its user value: both become garbage together, and the
** watch's finalizer brings the future back for the report.
*/
static int watch_gc(lua_State *L) {
  loom_future *f;
  lua_getiuservalue(L, 1, 1);
  f = lua_touserdata(L, -1);
  if (f != NULL && f->state == FUT_FAILED && !f->observed && !f->reported
      && loom__fhost(f) != NULL)
    report_failure(L, loom__fhost(f), lua_gettop(L));
  return 0;
}

static const luaL_Reg watch_meta[] = {
  {"__gc", watch_gc},
  {NULL, NULL}
};

static const loom_class watch_class = {
  .name = "loom.failure_watch",
  .meta = watch_meta
};

static void set_failed(lua_State *L, loom_host *H, loom_future *f,
                       int idx) {
  lua_rawgeti(L, LUA_REGISTRYINDEX, H->failed_ref);
  lua_pushvalue(L, idx);
  lua_rawsetp(L, -2, f);
  lua_pop(L, 1);
  loom__class_register(L, &watch_class);
  loom__object_new(L, &watch_class, 1, 1);
  lua_pushvalue(L, idx);
  lua_setiuservalue(L, -2, 1);
  loom__set_aux(L, idx, "watch");
}

/* Marks the outcome of 'f' (at 'idx') as seen by someone. */
void loom__observe(lua_State *L, loom_future *f, int idx) {
  if (f->observed) return;
  f->observed = 1;
  if (f->state == FUT_FAILED && loom__fhost(f) != NULL) {
    (void)idx;
    lua_rawgeti(L, LUA_REGISTRYINDEX, loom__fhost(f)->failed_ref);
    lua_pushnil(L);
    lua_rawsetp(L, -2, f);
    lua_pop(L, 1);
  }
}

static int msghandler(lua_State *L) {
  const char *msg = loom__tostring(L, 1);
  luaL_traceback(L, L, msg, 1);
  return 1;
}

/* Calls the on_done callbacks of the future at 'idx', reporting errors. */
static void run_callbacks(lua_State *L, loom_host *H, int idx) {
  int i, n;
  if (loom__get_aux(L, idx, "callbacks") != LUA_TTABLE) {
    lua_pop(L, 1);
    return;
  }
  n = (int)lua_rawlen(L, -1);
  lua_pushnil(L);
  loom__set_aux(L, idx, "callbacks");
  for (i = 1; i <= n; i++) {
    lua_pushcfunction(L, msghandler);
    lua_rawgeti(L, -2, i);
    lua_pushvalue(L, idx);
    if (lua_pcall(L, 1, 0, -3) != LUA_OK) {
      const char *s = lua_tostring(L, -1);
      lua_pushfstring(L, "error in an on_done callback: %s",
                      s ? s : "?");
      loom__report(L, H, lua_tostring(L, -1), "");
      lua_pop(L, 2);  /* remove messages */
    }
    lua_pop(L, 1);  /* remove msghandler */
  }
  lua_pop(L, 1);  /* remove callbacks */
}

/* Appends 't' to the waiters of 'f' (a circular list: head->prev is the tail). */
void loom__link_waiter(loom_future *f, loom_task *t) {
  loom_task *head = f->waiters;
  t->u.w.on = f;
  if (head == NULL) {
    t->u.w.next = t->u.w.prev = t;
    f->waiters = t;
  }
  else {
    t->u.w.next = head;
    t->u.w.prev = head->u.w.prev;
    head->u.w.prev->u.w.next = t;
    head->u.w.prev = t;
  }
}

static void unlink_waiter(loom_future *f, loom_task *t) {
  if (t->u.w.next == t) f->waiters = NULL;
  else {
    t->u.w.prev->u.w.next = t->u.w.next;
    t->u.w.next->u.w.prev = t->u.w.prev;
    if (f->waiters == t) f->waiters = t->u.w.next;
  }
  t->u.w.next = t->u.w.prev = NULL;
  t->u.w.on = NULL;
}

/*
** The future at 'idx' just got its outcome: wake its waiters, run its
** callbacks, and remember an error nobody has seen yet.
*/
void loom__complete(lua_State *L, loom_host *H, loom_future *f, int idx) {
  loom_task *w;
  idx = lua_absindex(L, idx);
  while ((w = f->waiters) != NULL) {
    if (w->wait == WAIT_AWAIT) f->observed = 1;  /* not WAIT_DONE */
    unlink_waiter(f, w);
    loom__wake(H, w);
  }
  run_callbacks(L, H, idx);
  if (f->state == FUT_FAILED && !f->observed) set_failed(L, H, f, idx);
}

/* }==================================================================== */


/*
** {====================================================================
** The resume path
** =====================================================================
*/

static void pool_put(lua_State *L, loom_host *H) {
  if (H->npool >= POOL_MAX) {
    lua_pop(L, 1);
    return;
  }
  lua_rawgeti(L, LUA_REGISTRYINDEX, H->pool_ref);
  lua_insert(L, -2);
  lua_rawseti(L, -2, ++H->npool);
  lua_pop(L, 1);  /* remove pool */
}

static lua_State *pool_get(lua_State *L, loom_host *H) {
  if (H->npool == 0) return lua_newthread(L);
  lua_rawgeti(L, LUA_REGISTRYINDEX, H->pool_ref);
  lua_rawgeti(L, -1, H->npool);
  lua_pushnil(L);
  lua_rawseti(L, -3, H->npool--);
  lua_remove(L, -2);  /* remove pool */
  return lua_tothread(L, -1);
}

/* Closes pending to-be-closed variables of a dead coroutine. */
static int close_thread(lua_State *co, lua_State *L) {
#if defined(LUA_VERSION_RELEASE_NUM) && LUA_VERSION_RELEASE_NUM >= 50406
  return lua_closethread(co, L);
#else
  (void)L;
  return lua_resetthread(co);
#endif
}

/*
** Builds the traceback of a failure of the task at 'idx', whose error
** is at 'eidx': the frames of its coroutine, named after the task and,
** when the error came out of an await, preceded by the traceback of
** the task it came from.
*/
static void push_trace(lua_State *L, lua_State *co, int idx, int eidx) {
  luaL_Buffer b;
  int chained = loom__get_aux(L, idx, "cause") != LUA_TNIL
                && lua_rawequal(L, -1, eidx);
  lua_pop(L, 1);
  luaL_buffinit(L, &b);
  if (chained) {
    loom__get_aux(L, idx, "cause_trace");
    luaL_addvalue(&b);
    luaL_addstring(&b, "\nawaited by ");
  }
  else luaL_addstring(&b, "stack traceback of ");
  luaL_addstring(&b, "task '");
  loom__push_name(L, idx);
  luaL_addvalue(&b);
  luaL_addstring(&b, "':");
  luaL_traceback(L, co, NULL, 0);
  lua_pushstring(L, strchr(lua_tostring(L, -1), '\n'));  /* no header */
  lua_remove(L, -2);
  luaL_addvalue(&b);
  luaL_pushresult(&b);
}

static void release(loom_host *H, loom_task *t) {
  lua_State *L = H->L;
  t->co = NULL;
  lua_rawgeti(L, LUA_REGISTRYINDEX, H->live_ref);
  luaL_unref(L, -1, t->ref);
  lua_pop(L, 1);
  t->ref = LUA_NOREF;
  H->ntasks--;
}

/* The task at 'idx' ends with the error on top of L. */
static void fail(lua_State *L, loom_host *H, loom_task *t, int idx) {
  int cancelled = loom__is_cancelled(L, H, -1);
  t->f.state = cancelled ? FUT_CANCELLED : FUT_FAILED;
  t->f.nres = 1;
  lua_setiuservalue(L, idx, UV_VALUE);
}

/*
** The coroutine of 't' returned ('status' LUA_OK, 'nres' values on its
** stack) or raised.  Stores the outcome, recycles the coroutine and
** completes the task.
*/
static void finish(loom_host *H, loom_task *t, int status, int nres) {
  lua_State *L = H->L, *co = t->co;
  int idx;
  loom__push_task(L, H, t);
  idx = lua_gettop(L);
  lua_getiuservalue(L, idx, UV_VALUE);  /* the coroutine */
  if (status == LUA_OK) {
    loom__store_values(L, idx, co, nres);
    t->f.state = FUT_OK;
    loom__set_nres(&t->f, nres);
  }
  else {
    lua_pushvalue(co, -1);
    lua_xmove(co, L, 1);  /* error */
    if (!loom__is_cancelled(L, H, -1)) {
      push_trace(L, co, idx, lua_gettop(L));
      loom__set_aux(L, idx, "trace");
    }
    /* the __close handlers run as part of the task: it is current, and
    ** nothing may queue it again (it is as good as done) */
    t->closing = 1;
    H->current = t;
    if (close_thread(co, L) != LUA_OK) {  /* a __close raised: new error */
      lua_pop(L, 1);
      lua_xmove(co, L, 1);
    }
    H->current = NULL;
    fail(L, H, t, idx);
  }
  loom__unwait(H, t);  /* a wait left behind by an abandoned coroutine */
  lua_settop(co, 0);
  release(H, t);
  if (t->escaped) lua_pop(L, 1);  /* its identity is known: not reused */
  else pool_put(L, H);  /* the coroutine */
  loom__complete(L, H, &t->f, idx);
  lua_settop(L, idx - 1);
  if (t == H->main && t->f.state != FUT_OK) {  /* as asyncio.run does */
    H->main_ended = 1;
    loom__cancel_all(H, "the main task ended with an error");
  }
}

/* Raises the error waiting in 't'. */
int loom__rethrow(lua_State *L, loom_host *H, loom_task *t) {
  loom__push_task(L, H, t);
  loom__get_aux(L, -1, "throw");
  lua_pushnil(L);
  loom__set_aux(L, -3, "throw");
  t->throwing = 0;
  return lua_error(L);
}

/*
** Gives 't' its coroutine with the function and arguments on it.
** Returns 0 when the task was cancelled before it ran: it is finished.
*/
static int start(loom_host *H, loom_task *t, int *narg) {
  lua_State *L = H->L, *co;
  int i, idx;
  loom__push_task(L, H, t);
  idx = lua_gettop(L);
  t->started = 1;
  if (t->throwing) {
    t->throwing = 0;
    loom__get_aux(L, idx, "throw");
    fail(L, H, t, idx);
    release(H, t);
    loom__complete(L, H, &t->f, idx);
    lua_settop(L, idx - 1);
    return 0;
  }
  co = pool_get(L, H);
  luaL_checkstack(co, t->nargs + 1, "too many arguments");
  for (i = 1; i <= t->nargs + 1; i++) {
    lua_getiuservalue(L, idx, i);
    lua_xmove(L, co, 1);
    if (i > 1) {  /* let go of the argument */
      lua_pushnil(L);
      lua_setiuservalue(L, idx, i);
    }
  }
  lua_setiuservalue(L, idx, UV_VALUE);  /* the coroutine */
  lua_settop(L, idx - 1);
  t->co = co;
  *narg = t->nargs;
  return 1;
}

/*
** {====================================================================
** Out of memory
**
** Starting and finishing a task happen outside the task, in a libuv
** callback where no protected call is open: a memory error there would
** be a panic.  The common paths allocate nothing (a pooled coroutine
** and a few arguments to start; at most one result and no aux table to
** finish).  The others run under lua_pcall, and when memory runs out
** there the task fails with Lua's own memory error by 'fail_bare',
** which allocates nothing at all.
** =====================================================================
*/

#define FAST_NARGS 16  /* start arguments that fit a pooled stack */

typedef struct {
  loom_host *H;
  loom_task *t;
  int status, nres, narg, ok;
} stepargs;

static void wake_waiters(loom_host *H, loom_future *f) {
  loom_task *w;
  while ((w = f->waiters) != NULL) {
    if (w->wait == WAIT_AWAIT) f->observed = 1;
    unlink_waiter(f, w);
    loom__wake(H, w);
  }
}

/* cancel_all_p(): the others, once the main task failed (protected) */
static int cancel_all_p(lua_State *L) {
  loom__cancel_all(loom__host_of_state(L),
                   "the main task ended with an error");
  return 0;
}

/*
** Memory ran out while the scheduler started or finished 't' (not in
** the task itself: that is an ordinary error, its outcome).  't' fails
** with the memory error whatever of that work was done, its waiters
** wake with it, and the failure is reported: the message is the string
** Lua keeps for this error, the report goes out as C strings.
*/
static void fail_bare(loom_host *H, loom_task *t, int top) {
  lua_State *L = H->L;
  lua_settop(L, top);
  H->current = NULL;
  t->closing = 1;
  t->started = 1;
  if (t->ref != LUA_NOREF) {
    if (t->f.state == FUT_PENDING) {
      loom__push_task(L, H, t);
      lua_pushliteral(L, "not enough memory");  /* interned: no allocation */
      lua_setiuservalue(L, -2, UV_VALUE);
      lua_pop(L, 1);
      t->f.state = FUT_FAILED;
      t->f.nres = 1;
    }
    loom__unwait(H, t);
    if (t->co != NULL) lua_settop(t->co, 0);
    release(H, t);  /* the coroutine is dropped, not pooled */
  }
  wake_waiters(H, &t->f);
  if (t->f.state == FUT_FAILED && !t->f.observed && !t->f.reported) {
    t->f.reported = 1;
    loom__report(L, H, "not enough memory",
                 "(no memory was left for a traceback)");
  }
  if (t == H->main && t->f.state != FUT_OK) {  /* as finish would */
    H->main_ended = 1;
    lua_pushcfunction(L, cancel_all_p);
    if (lua_pcall(L, 0, 0, 0) != LUA_OK) lua_settop(L, top);
  }
}

static int start_p(lua_State *L) {
  stepargs *a = lua_touserdata(L, 1);
  a->ok = start(a->H, a->t, &a->narg);
  return 0;
}

/* start(), protected unless it cannot allocate. */
static int start_safe(loom_host *H, loom_task *t, int *narg) {
  lua_State *L = H->L;
  stepargs a;
  int top = lua_gettop(L);
  if (!t->throwing && H->npool > 0 && t->nargs < FAST_NARGS)
    return start(H, t, narg);
  a.H = H;
  a.t = t;
  a.narg = a.ok = 0;
  lua_pushcfunction(L, start_p);
  lua_pushlightuserdata(L, &a);
  if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
    fail_bare(H, t, top);
    return 0;
  }
  *narg = a.narg;
  return a.ok;
}

static int finish_p(lua_State *L) {
  stepargs *a = lua_touserdata(L, 1);
  finish(a->H, a->t, a->status, a->nres);
  return 0;
}

/* finish(), protected unless it cannot allocate. */
static void finish_safe(loom_host *H, loom_task *t, int status, int nres) {
  lua_State *L = H->L;
  stepargs a;
  int top = lua_gettop(L);
  if (status == LUA_OK && nres <= 1 && !t->f.has_aux && t != H->main) {
    finish(H, t, status, nres);
    return;
  }
  a.H = H;
  a.t = t;
  a.status = status;
  a.nres = nres;
  lua_pushcfunction(L, finish_p);
  lua_pushlightuserdata(L, &a);
  if (lua_pcall(L, 1, 0, 0) != LUA_OK) fail_bare(H, t, top);
}

/* }==================================================================== */


/* Copies the name of 't' into 'buf' (allocating nothing). */
static void name_into(loom_host *H, loom_task *t, char *buf, size_t size) {
  lua_State *L = H->L;
  loom__push_task(L, H, t);
  if (loom__get_aux(L, -1, "name") == LUA_TSTRING)
    snprintf(buf, size, "%s", lua_tostring(L, -1));
  else if (t == H->main) snprintf(buf, size, "main");
  else snprintf(buf, size, "task-%u", t->id);
  lua_pop(L, 2);  /* remove name and task */
}

/* warn_p(task, ms, ended): warn_slow's report, protected */
static int warn_p(lua_State *L) {
  loom_host *H = loom__host_of_state(L);
  loom_task *t = lua_touserdata(L, 1);
  if (t->co != NULL && !lua_toboolean(L, 3))
    luaL_traceback(L, t->co, NULL, 0);
  else lua_pushliteral(L, "");
  loom__push_name(L, 1);
  lua_pushfstring(L, "task '%s' ran for %d ms without suspending%s",
                  lua_tostring(L, -1), (int)lua_tointeger(L, 2),
                  lua_toboolean(L, 3) ? ", then ended" : "");
  loom__warn(H, lua_tostring(L, -1), lua_tostring(L, -3));
  return 0;
}

static void warn_slow(loom_host *H, loom_task *t, int ended, uint64_t ns) {
  lua_State *L = H->L;
  int top = lua_gettop(L);
  lua_pushcfunction(L, warn_p);
  loom__push_task(L, H, t);
  lua_pushinteger(L, (lua_Integer)(ns / 1000000));
  lua_pushboolean(L, ended);
  if (lua_pcall(L, 3, 0, 0) != LUA_OK) lua_settop(L, top);
}

/*
** A step of 't' took 'ns' (it suspended, or ended when 'ended'): the
** slowest so far is kept for core.stats, and debug mode warns about one
** over its threshold, with where the task suspended.
*/
static void timed(loom_host *H, loom_task *t, int ended, uint64_t ns) {
  if (ns > H->slowest_ns) {
    H->slowest_ns = ns;
    name_into(H, t, H->slowest, sizeof H->slowest);
  }
  if (H->debug && ns > H->slow_ns) warn_slow(H, t, ended, ns);
}

/*
** Runs 't' until it suspends or ends.  A yield that does not carry the
** loom tag is a plain coroutine.yield at the top of the task: it acts
** as loom.yield.  Steps are timed only while debug mode or core.timing
** asks: otherwise the cost is one test.
*/
void loom__step(loom_host *H, loom_task *t) {
  int status, nres, narg = 0;
  uint64_t t0 = 0;
  if (!t->started && !start_safe(H, t, &narg)) return;
  if (H->debug | H->timing) t0 = uv_hrtime();
  H->current = t;
  status = lua_resume(t->co, H->L, narg, &nres);
  H->current = NULL;
  if (t0 != 0) timed(H, t, status != LUA_YIELD, uv_hrtime() - t0);
  if (status == LUA_YIELD) {
    if (nres != 1 || lua_touserdata(t->co, -1) != &loom__tag)
      loom__wake(H, t);
    lua_pop(t->co, nres);
    return;
  }
  finish_safe(H, t, status, nres);
}

/* }==================================================================== */


/*
** {====================================================================
** Suspension and cancellation
** =====================================================================
*/

/* The running task; raises, naming the function 'name', when none is. */
loom_task *loom__current(lua_State *L, loom_host *H, const char *name) {
  if (H->current == NULL) {
    loom__where(L);
    lua_pushfstring(L, "loom: %s called outside a task (use loom.run or "
                       "the loom binary)", name);
    lua_concat(L, 2);
    lua_error(L);
  }
  return H->current;
}

/*
** Checks that the running task may suspend now: raises when there is
** no task, when a cancellation waits, or when a C function that Lua
** cannot yield across stands between here and the task.  A wait left
** behind by a coroutine that was abandoned mid-wait is dropped.
*/
loom_task *loom__enter(lua_State *L, loom_host *H, const char *name) {
  loom_task *t = loom__current(L, H, name);
  if (t->throwing) loom__rethrow(L, H, t);
  if (!lua_isyieldable(L)) loom__boundary_error(L, name);
  loom__unwait(H, t);
  return t;
}

/*
** Lists of waiting tasks (queues use them): circular, oldest first, the
** head's 'prev' being the newest.  A task on one waits with WAIT_LIST.
*/
static void list_unlink(loom_task *t) {
  loom_task **list = t->u.l.list;
  if (list == NULL) return;
  if (t->u.l.next == t) *list = NULL;
  else {
    t->u.l.prev->u.l.next = t->u.l.next;
    t->u.l.next->u.l.prev = t->u.l.prev;
    if (*list == t) *list = t->u.l.next;
  }
  t->u.l.next = t->u.l.prev = NULL;
  t->u.l.list = NULL;
}

void loom__list_wait(loom_task **list, loom_task *t) {
  loom_task *head = *list;
  t->u.l.list = list;
  if (head == NULL) {
    t->u.l.next = t->u.l.prev = t;
    *list = t;
  }
  else {
    t->u.l.next = head;
    t->u.l.prev = head->u.l.prev;
    head->u.l.prev->u.l.next = t;
    head->u.l.prev = t;
  }
  t->woken = 0;
  t->wait = WAIT_LIST;
}

/*
** Takes the first task off 'list' and runs it at once, as a libuv
** callback would run its own code: used from I/O callbacks (never from
** inside a task) so that a reply goes out in the same poll round, not
** after every other event of the round.
*/
void loom__list_resume(loom_host *H, loom_task **list) {
  loom_task *t = *list;
  if (t == NULL) return;
  if (H->current != NULL || t->queued) {  /* not from the top: queue it */
    loom__list_wake(H, list);
    return;
  }
  list_unlink(t);
  t->woken = 1;
  t->wait = WAIT_NONE;
  loom__step(H, t);
}

/*
** For the continuation of a wait on a list: checks that the running
** task may go on (its host open, the coroutine resumed by its own task)
** and raises a cancellation or timeout that came meanwhile.  Returns
** the task, its 'woken' flag cleared.  'H' may be NULL (looked up).
*/
loom_task *loom__list_resumed(lua_State *L, loom_host *H) {
  loom_task *t = loom__resumed(L, H);
  t->woken = 0;
  if (t->throwing) loom__rethrow(L, H != NULL ? H : loom__host_of_state(L),
                                 t);
  return t;
}

/*
** The task a continuation runs in; raises when its host has closed or
** when the coroutine was resumed by someone else than its task (a
** coroutine.resume of a coroutine that waits in a loom call).  'H' may
** be NULL (looked up).  The one check of every continuation.
*/
loom_task *loom__resumed(lua_State *L, loom_host *H) {
  if (H == NULL) H = loom__host_of_state(L);
  if (H == NULL) loom__errorf(L, "loom: the host is closed");
  if (H->current == NULL)
    loom__errorf(L, "loom: a coroutine suspended in a loom call was "
                    "resumed outside its task");
  return H->current;
}

/*
** Suspends the running task with continuation 'k' and context 'ctx':
** the one place that yields loom's tag.  Use as 'return loom__wait(L,
** k, ctx);' once the task is in its wait (loom__enter, then a list, a
** timer, a call...).
*/
int loom__wait(lua_State *L, lua_KFunction k, lua_KContext ctx) {
  lua_pushlightuserdata(L, &loom__tag);
  return lua_yieldk(L, 1, ctx, k);
}

/* Wakes the first task of 'list' (marked 'woken'); returns it or NULL. */
loom_task *loom__list_wake(loom_host *H, loom_task **list) {
  loom_task *t = *list;
  if (t == NULL) return NULL;
  list_unlink(t);
  t->woken = 1;
  loom__wake(H, t);
  return t;
}

void loom__unwait(loom_host *H, loom_task *t) {
  switch (t->wait) {
    case WAIT_SLEEP: loom__timer_remove(H, &t->u.sleep); break;
    case WAIT_AWAIT: case WAIT_DONE:
      if (t->u.w.on != NULL) unlink_waiter(t->u.w.on, t);
      break;
    case WAIT_CALL:  /* the call's task side lets go of it */
      *t->u.back = NULL;
      t->in_call = 0;
      break;
    case WAIT_LIST: list_unlink(t); break;
    default: break;  /* WAIT_YIELD: it stays queued; nothing to leave */
  }
  t->wait = WAIT_NONE;
}

static int suspend_k(lua_State *L, int status, lua_KContext ctx) {
  loom_host *H = ((loom_hostbox *)lua_touserdata(L, lua_upvalueindex(1)))->H;
  loom_task *t = loom__resumed(L, H);
  (void)status;
  if (t->throwing) return loom__rethrow(L, H, t);
  return ((loom_k)ctx)(L, H, t);
}

/* Suspends with a continuation that is given the host and the task. */
int loom__suspend(lua_State *L, loom_k k) {
  return loom__wait(L, suspend_k, (lua_KContext)k);
}

/*
** Makes the error on top of L (popped) the next thing 't' sees: at
** once if it is suspended, at its next suspension if it is running,
** or instead of running at all if it has not started.
*/
void loom__throw(lua_State *L, loom_host *H, loom_task *t) {
  if (t->throwing || t->closing || t->f.state != FUT_PENDING) {
    lua_pop(L, 1);
    return;
  }
  loom__push_task(L, H, t);
  lua_insert(L, -2);
  loom__set_aux(L, -2, "throw");
  lua_pop(L, 1);  /* remove task */
  t->throwing = 1;
  if (t == H->current || t->queued) return;
  loom__unwait(H, t);
  loom__wake(H, t);
}

/*
** Cancels 't' with message 'msgidx' (0: default).  As in asyncio, a
** task that awaits another task passes the cancellation on and ends
** when that one has finished its cleanup.  Returns 0 if 't' is done.
*/
int loom__cancel(lua_State *L, loom_host *H, loom_task *t, int msgidx) {
  const char *msg = msgidx ? lua_tostring(L, msgidx) : NULL;
  int steps = 0;
  if (t->f.state != FUT_PENDING || t->closing) return 0;
  /* down the chain of awaited tasks; a cycle (tasks awaiting each other)
  ** ends the walk, at a task of the cycle */
  while (t->wait == WAIT_AWAIT && t->u.w.on->is_task && !t->throwing
         && t != H->current && steps++ <= H->ntasks)
    t = (loom_task *)t->u.w.on;
  loom__new_cancelled(L, H, msg ? msg : "task cancelled");
  loom__throw(L, H, t);
  return 1;
}

/* Cancels every pending task; 'stall': because nothing could wake it. */
static void cancel_all(loom_host *H, const char *why, int stall) {
  lua_State *L = H->L;
  lua_rawgeti(L, LUA_REGISTRYINDEX, H->live_ref);
  lua_pushnil(L);
  while (lua_next(L, -2)) {
    loom_task *t = has_mt(L, -1, H->task_mt_ref);
    if (t != NULL && t->f.state == FUT_PENDING && !t->throwing) {
      t->stalled = stall != 0;
      loom__new_cancelled(L, H, why);
      loom__throw(L, H, t);
    }
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
}

void loom__cancel_all(loom_host *H, const char *why) {
  cancel_all(H, why, 0);
}

/*
** Nothing left can wake the tasks still pending (they await a future
** nobody will set): they are cancelled, so that their cleanup runs.
** The main task's cancellation says where every task waited: that is
** what loom.run raises and the binary prints.
*/
void loom__stall(loom_host *H) {
  lua_State *L = H->L;
  loom_task *m = H->main;
  if (H->debug) loom__report_pending(H);
  H->stalled = 1;
  if (m != NULL && m->f.state == FUT_PENDING && !m->throwing) {
    loom__describe_pending(L, H);
    lua_pushfstring(L, "the main task never finished (it waits for "
                       "something nothing will do); tasks waiting:%s",
                    lua_tostring(L, -1));
    loom__new_cancelled(L, H, lua_tostring(L, -1));
    m->stalled = 1;
    loom__throw(L, H, m);
    lua_pop(L, 2);  /* remove the messages */
  }
  cancel_all(H, "nothing left that could wake the task", 1);
}

/* How the task or future 'f' stands: LOOM_TASK_* */
int loom__state(const loom_future *f) {
  switch (f->state) {
    case FUT_OK: return LOOM_TASK_OK;
    case FUT_FAILED: return LOOM_TASK_FAILED;
    case FUT_CANCELLED:
      return f->is_task && ((const loom_task *)f)->stalled
             ? LOOM_TASK_STALLED : LOOM_TASK_CANCELLED;
    default: return LOOM_TASK_PENDING;
  }
}

/* The Task at 'idx' of the state's host, or NULL. */
loom_task *loom__totask(lua_State *L, int idx) {
  loom_host *H = loom__host_of_state(L);
  return H != NULL ? has_mt(L, idx, H->task_mt_ref) : NULL;
}

/* The Task or Future at 'idx', or NULL. */
loom_future *loom__tofuture(lua_State *L, int idx) {
  loom_host *H = loom__host_of_state(L);
  loom_future *f;
  if (H == NULL) return NULL;
  f = has_mt(L, idx, H->task_mt_ref);
  return f != NULL ? f : has_mt(L, idx, H->future_mt_ref);
}

/* }==================================================================== */


/*
** {====================================================================
** Reporting
** =====================================================================
*/

/* Reports the unobserved failure of the future at 'idx'. */
static void report_failure(lua_State *L, loom_host *H, int idx) {
  loom_future *f = lua_touserdata(L, idx);
  int top = lua_gettop(L);
  f->reported = 1;
  lua_getiuservalue(L, idx, UV_VALUE);
  if (!f->is_task) lua_pushfstring(L, "error in a future nobody awaited: %s",
                                   loom__tostring(L, -1));
  else if (H->main != NULL && f == &H->main->f)
    lua_pushstring(L, loom__tostring(L, -1));
  else {
    const char *msg = loom__tostring(L, -1);
    loom__push_name(L, idx);
    if (loom__get_aux(L, idx, "spawned") == LUA_TSTRING)  /* debug mode */
      lua_pushfstring(L, "error in task '%s' (spawned at %s): %s",
                      lua_tostring(L, -2), lua_tostring(L, -1), msg);
    else lua_pushfstring(L, "error in task '%s': %s", lua_tostring(L, -2),
                         msg);
  }
  if (loom__get_aux(L, idx, "trace") != LUA_TSTRING) {
    lua_pop(L, 1);
    lua_pushliteral(L, "");
  }
  loom__report(L, H, lua_tostring(L, -2), lua_tostring(L, -1));
  lua_settop(L, top);
}

/*
** The state closes with tasks that never ran (spawned by a script that
** ran no loom.run after): each is reported, as a failure nobody saw
** would be.
*/
void loom__report_unrun(lua_State *L, loom_host *H) {
  lua_rawgeti(L, LUA_REGISTRYINDEX, H->live_ref);
  lua_pushnil(L);
  while (lua_next(L, -2)) {
    loom_task *t = has_mt(L, -1, H->task_mt_ref);
    if (t != NULL && !t->started) {
      loom__push_name(L, -1);
      lua_pushfstring(L, "task '%s' never ran: the state closed with no "
                         "loom.run after loom.spawn", lua_tostring(L, -1));
      loom__report(L, H, lua_tostring(L, -1), "");
      lua_pop(L, 2);
    }
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
}

void loom__report_unobserved(lua_State *L, loom_host *H) {
  lua_rawgeti(L, LUA_REGISTRYINDEX, H->failed_ref);
  lua_pushnil(L);
  while (lua_next(L, -2)) {
    loom_future *f = lua_touserdata(L, -1);
    if (f != NULL && !f->reported)  /* fail_bare may have reported it */
      report_failure(L, H, lua_gettop(L));
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  lua_newtable(L);  /* start afresh: everything was reported */
  lua_createtable(L, 0, 1);
  lua_pushliteral(L, "v");
  lua_setfield(L, -2, "__mode");
  lua_setmetatable(L, -2);
  lua_rawseti(L, LUA_REGISTRYINDEX, H->failed_ref);
}

/*
** Pushes a description of the tasks still pending: for each, its name
** and where it waits.
*/
void loom__describe_pending(lua_State *L, loom_host *H) {
  int acc;
  lua_pushliteral(L, "");
  acc = lua_gettop(L);
  lua_rawgeti(L, LUA_REGISTRYINDEX, H->live_ref);
  lua_pushnil(L);
  while (lua_next(L, -2)) {
    loom_task *t = has_mt(L, -1, H->task_mt_ref);
    if (t != NULL) {
      loom__push_name(L, -1);
      if (t->co != NULL) luaL_traceback(L, t->co, NULL, 0);
      else lua_pushliteral(L, "stack traceback:\n\t(not started)");
      lua_pushfstring(L, "%s\ntask '%s' waits: %s", lua_tostring(L, acc),
                      lua_tostring(L, -2), lua_tostring(L, -1));
      lua_replace(L, acc);
      lua_pop(L, 2);
    }
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
}

#define REPORT_MAX 50  /* tasks or handles listed one by one */

/*
** Warns about each task still pending, 'why' being what became of it:
** its name, where it was spawned (debug mode) and where it waits.
*/
static void report_tasks(lua_State *L, loom_host *H, const char *why) {
  int n = 0;
  lua_rawgeti(L, LUA_REGISTRYINDEX, H->live_ref);
  lua_pushnil(L);
  while (lua_next(L, -2)) {
    loom_task *t = has_mt(L, -1, H->task_mt_ref);
    if (t != NULL && t->f.state == FUT_PENDING && ++n <= REPORT_MAX) {
      int top = lua_gettop(L);
      loom__push_name(L, top);
      if (loom__get_aux(L, top, "spawned") == LUA_TSTRING)
        lua_pushfstring(L, " (spawned at %s)", lua_tostring(L, -1));
      else lua_pushliteral(L, "");
      lua_pushfstring(L, "task '%s'%s %s", lua_tostring(L, top + 1),
                      lua_tostring(L, -1), why);
      if (t->co != NULL) luaL_traceback(L, t->co, NULL, 0);
      else lua_pushliteral(L, "stack traceback:\n\t(not started)");
      loom__warn(H, lua_tostring(L, -2), lua_tostring(L, -1));
      lua_settop(L, top);
    }
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  if (n > REPORT_MAX) {
    lua_pushfstring(L, "and %d more tasks %s", n - REPORT_MAX, why);
    loom__warn(H, lua_tostring(L, -1), NULL);
    lua_pop(L, 1);
  }
}

/*
** Warns about what the script left open, the standard streams aside:
** each with its kind and the line that made it (debug mode), in one
** warning.
*/
static void report_handles(lua_State *L, loom_host *H) {
  int i, n, lidx, acc, left = 0;
  n = loom__push_handles(L, H);
  lidx = lua_gettop(L);
  lua_pushliteral(L, "");
  acc = lua_gettop(L);
  for (i = 1; i <= n; i++) {
    lua_rawgeti(L, lidx, i);
    if (lua_getfield(L, -1, "lasting") == LUA_TNIL && ++left <= REPORT_MAX) {
      lua_getfield(L, -2, "kind");
      lua_getfield(L, -3, "what");
      if (lua_getfield(L, -4, "where") == LUA_TSTRING)
        lua_pushfstring(L, ", created at %s", lua_tostring(L, -1));
      else lua_pushliteral(L, "");
      lua_pushfstring(L, "%s\n  %s: %s%s", lua_tostring(L, acc),
                      lua_tostring(L, -4), lua_tostring(L, -3),
                      lua_tostring(L, -1));
      lua_replace(L, acc);
    }
    lua_settop(L, acc);
  }
  if (left > REPORT_MAX) {
    lua_pushfstring(L, "%s\n  and %d more", lua_tostring(L, acc),
                    left - REPORT_MAX);
    lua_replace(L, acc);
  }
  if (left > 0) {
    lua_pushfstring(L, "%d %s still open at exit:%s", left,
                    left == 1 ? "handle" : "handles", lua_tostring(L, acc));
    loom__warn(H, lua_tostring(L, -1), NULL);
  }
  lua_settop(L, lidx - 1);
}

/* report_p(why, at_exit): debug mode's reports, protected (they allocate) */
static int report_p(lua_State *L) {
  loom_host *H = loom__host_of_state(L);
  if (H->ntasks > 0) report_tasks(L, H, lua_touserdata(L, 1));
  if (lua_toboolean(L, 2)) report_handles(L, H);
  return 0;
}

static void report_debug(loom_host *H, const char *why, int at_exit) {
  lua_State *L = H->L;
  int top = lua_gettop(L);
  lua_pushcfunction(L, report_p);
  lua_pushlightuserdata(L, (void *)why);
  lua_pushboolean(L, at_exit);
  if (lua_pcall(L, 2, 0, 0) != LUA_OK)
    loom__warn(H, "debug mode: no memory was left for its report", NULL);
  lua_settop(L, top);
}

/* Debug mode: the tasks nothing can wake, before they are cancelled. */
void loom__report_pending(loom_host *H) {
  report_debug(H, "waits for something nothing will do: it is cancelled",
               0);
}

/*
** Debug mode, as a run ends: the tasks still pending (name, where each
** was spawned and where it waits) and what the script left open (kind,
** and the line that made it).
*/
void loom__report_exit(loom_host *H) {
  report_debug(H, "is still pending at exit", 1);
}

/* }==================================================================== */



/*
** {====================================================================
** Spawning, and outcomes for C
** =====================================================================
*/

/* Debug mode: the task on top remembers where it was spawned. */
static void mark_spawned(lua_State *L, loom_host *H) {
  char where[LOOM_SITE_MAX];
  if (!loom__site(L, H, where, sizeof where)) return;
  lua_pushstring(L, where);
  loom__set_aux(L, -2, "spawned");
}

/*
** Spawns the function below the 'nargs' values on top of L as a task;
** replaces them all by the task.
*/
loom_task *loom__spawn(lua_State *L, loom_host *H, int nargs) {
  int i, base = lua_gettop(L) - nargs;
  loom_task *t;
  if (nargs > USHRT_MAX - 1) luaL_error(L, "loom.spawn: too many arguments");
  t = lua_newuserdatauv(L, sizeof *t, 1 + nargs);
  memset(t, 0, sizeof *t);
  t->f.hb = H->box;
  t->f.gen = H->box->gen;
  t->f.is_task = 1;
  t->id = ++H->next_id;
  t->born = (uint32_t)loom__now(H);
  t->nargs = (unsigned short)nargs;
  lua_rawgeti(L, LUA_REGISTRYINDEX, H->task_mt_ref);
  lua_setmetatable(L, -2);
  if (H->debug) mark_spawned(L, H);
  for (i = 0; i <= nargs; i++) {
    lua_pushvalue(L, base + i);
    lua_setiuservalue(L, -2, i + 1);
  }
  lua_rawgeti(L, LUA_REGISTRYINDEX, H->live_ref);
  lua_pushvalue(L, -2);
  t->ref = luaL_ref(L, -2);
  lua_pop(L, 1);  /* remove live table */
  H->ntasks++;
  lua_replace(L, base);
  lua_settop(L, base);
  loom__wake(H, t);
  return t;
}

static int yield_k(lua_State *L, loom_host *H, loom_task *t) {
  (void)L; (void)H; (void)t;
  return 0;
}

/* Queues the running task behind every ready one and suspends it. */
int loom__yield(lua_State *L, loom_host *H, const char *name) {
  loom_task *t = loom__enter(L, H, name);
  loom__wake(H, t);
  t->wait = WAIT_YIELD;
  return loom__suspend(L, yield_k);
}

/*
** Adds the function at 'fidx' to the callbacks of the future 'f' at
** 'idx' (called at once when it is done).  'quiet' callbacks do not
** count as observing its error: the combinators use them and report
** otherwise.
*/
void loom__add_callback(lua_State *L, loom_future *f, int idx, int fidx,
                        int quiet) {
  idx = lua_absindex(L, idx);
  fidx = lua_absindex(L, fidx);
  if (!quiet) loom__observe(L, f, idx);
  if (f->state != FUT_PENDING) {
    lua_pushvalue(L, fidx);
    lua_pushvalue(L, idx);
    lua_call(L, 1, 0);
    return;
  }
  if (!push_aux(L, idx, 1)) {  /* orphaned: nothing to call */
    lua_pop(L, 1);
    return;
  }
  if (lua_getfield(L, -1, "callbacks") != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_setfield(L, -3, "callbacks");
  }
  lua_pushvalue(L, fidx);
  lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
  lua_pop(L, 2);  /* remove callbacks and aux */
}

/* on_done_p(future, fn): loom__add_callback in protected mode */
static int on_done_p(lua_State *L) {
  loom__add_callback(L, lua_touserdata(L, 1), 1, 2, 0);
  return 0;
}

/* loom_results: the outcome of the done future at 'idx', pushed. */
int loom__results(lua_State *L, int idx) {
  loom_future *f = loom__tofuture(L, idx);
  idx = lua_absindex(L, idx);
  if (f == NULL) return LOOM_EINVAL;
  if (f->state == FUT_PENDING) return LOOM_EPENDING;
  loom__observe(L, f, idx);
  if (f->state == FUT_OK) {
    if (!lua_checkstack(L, (int)f->nres + 1)) return LOOM_ENOMEM;
    return loom__push_value(L, f, idx);
  }
  loom__push_value(L, f, idx);
  return LOOM_EFAILED;
}

/* loom_on_done: future at 'idx', callback on top (popped). */
int loom__on_done(lua_State *L, int idx) {
  loom_future *f;
  idx = lua_absindex(L, idx);
  f = loom__tofuture(L, idx);
  if (f == NULL || loom__fhost(f) == NULL) {
    lua_pop(L, 1);
    return LOOM_EINVAL;
  }
  lua_pushcfunction(L, on_done_p);
  lua_pushvalue(L, idx);
  lua_rotate(L, -3, -1);  /* on_done_p, future, callback */
  return lua_pcall(L, 2, 0, 0) == LUA_OK ? LOOM_OK : (lua_pop(L, 1), LOOM_ENOMEM);
}

/* }==================================================================== */
