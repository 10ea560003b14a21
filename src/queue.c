/*
** queue.c: loom.queue{maxsize = 0, order = "fifo" | "lifo" | "priority"},
** queues between tasks.
**
** The items live in the table at user value 1: a ring of 'cap' slots
** for fifo, a stack for lifo, a binary heap for priority (whose keys,
** the priority and an insertion number for FIFO among equals, are kept
** in a C array beside it).  Tasks waiting to get, to put or for join
** are on intrusive lists (WAIT_LIST): no object is made per wait.
**
** As in asyncio.Queue, a woken getter or putter takes or adds its item
** itself once it runs, so an item is never handed to a task that is
** being cancelled; one cancelled after being woken passes the wake-up
** on when what woke it still holds.
*/
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define LOOM_QUEUE_MT "loom.queue"

enum { Q_FIFO, Q_LIFO, Q_PRIORITY };
static const char *const orders[] = {"fifo", "lifo", "priority", NULL};

typedef struct {
  double prio;
  uint64_t seq;
} qkey;

typedef struct {
  loom_hostbox *hb;
  uint32_t gen;
  int order;
  int closed;
  lua_Integer maxsize;     /* 0: unbounded */
  lua_Integer n;           /* items held */
  lua_Integer cap;         /* fifo: slots of the ring */
  lua_Integer head;        /* fifo: slot of the first item (0-based) */
  lua_Integer unfinished;  /* items put and not task_done'd */
  uint64_t seq;            /* priority: items put so far */
  qkey *keys;              /* priority: keys, in heap order */
  loom_task *getters, *putters, *joiners;
} loom_queue;

static loom_host *qhost(lua_State *L, loom_queue *q) {
  loom_host *H = loom__gen_host(q->hb, q->gen);
  if (H == NULL) loom__errorf(L, "loom: the host of this queue is closed");
  return H;
}

static const loom_class queue_class;

/* The queue at 1 (the metatable is found by address, not by name). */
static loom_queue *checkqueue(lua_State *L, const char *method) {
  return loom__checkobject_as(L, 1, &queue_class, method);
}

static int is_full(loom_queue *q) {
  return q->maxsize > 0 && q->n >= q->maxsize;
}


/* {====================================================================
** Storage
** ===================================================================== */

/* fifo: grows the ring (items at 'items', an absolute index) */
static void ring_grow(lua_State *L, loom_queue *q, int items) {
  lua_Integer i, cap = q->cap ? q->cap * 2 : 16;
  if (q->maxsize > 0 && cap > q->maxsize) cap = q->maxsize;
  lua_createtable(L, (int)cap, 0);
  for (i = 0; i < q->n; i++) {
    lua_rawgeti(L, items, (q->head + i) % q->cap + 1);
    lua_rawseti(L, -2, i + 1);
  }
  lua_replace(L, items);
  lua_pushvalue(L, items);
  lua_setiuservalue(L, 1, 1);
  q->cap = cap;
  q->head = 0;
}

static int key_less(const qkey *a, const qkey *b) {
  return a->prio < b->prio || (a->prio == b->prio && a->seq < b->seq);
}

/* priority: moves the item of slot 'from' (1-based) to slot 'to' */
static void heap_move(lua_State *L, loom_queue *q, int items,
                      lua_Integer from, lua_Integer to) {
  lua_rawgeti(L, items, from);
  lua_rawseti(L, items, to);
  q->keys[to - 1] = q->keys[from - 1];
}

/* Adds the value on top (popped) with priority 'prio'. */
static void store_add(lua_State *L, loom_queue *q, int items, double prio) {
  switch (q->order) {
    case Q_FIFO: {
      lua_Integer slot;
      if (q->n == q->cap) {
        lua_insert(L, -2);  /* keep the value on top */
        ring_grow(L, q, items + 1);
        lua_insert(L, -2);
        items = lua_gettop(L) - 1;
      }
      slot = q->head + q->n;  /* no '%': a division costs more than all */
      if (slot >= q->cap) slot -= q->cap;
      lua_rawseti(L, items, slot + 1);
      break;
    }
    case Q_LIFO:
      lua_rawseti(L, items, q->n + 1);
      break;
    default: {  /* Q_PRIORITY: sift the hole up */
      lua_Integer i = q->n + 1;
      qkey k;
      if (q->n % 64 == 0) {
        qkey *keys = realloc(q->keys, (size_t)(q->n + 64) * sizeof *keys);
        if (keys == NULL) loom__nomem(L);
        q->keys = keys;
      }
      k.prio = prio;
      k.seq = q->seq++;
      while (i > 1 && key_less(&k, &q->keys[i / 2 - 1])) {
        heap_move(L, q, items, i / 2, i);
        i /= 2;
      }
      lua_rawseti(L, items, i);
      q->keys[i - 1] = k;
    }
  }
  q->n++;
}

/* Pushes the next item, taking it out. */
static void store_take(lua_State *L, loom_queue *q, int items) {
  switch (q->order) {
    case Q_FIFO:
      lua_rawgeti(L, items, q->head + 1);
      lua_pushnil(L);
      lua_rawseti(L, items, q->head + 1);
      if (++q->head == q->cap) q->head = 0;
      break;
    case Q_LIFO:
      lua_rawgeti(L, items, q->n);
      lua_pushnil(L);
      lua_rawseti(L, items, q->n);
      break;
    default: {  /* Q_PRIORITY: the root goes; the last sifts down */
      lua_Integer i = 1, n = q->n - 1;
      qkey last = q->keys[n];
      lua_rawgeti(L, items, 1);
      for (;;) {
        lua_Integer c = 2 * i;
        if (c > n) break;
        if (c < n && key_less(&q->keys[c], &q->keys[c - 1])) c++;
        if (!key_less(&q->keys[c - 1], &last)) break;
        heap_move(L, q, items, c, i);
        i = c;
      }
      if (n > 0) heap_move(L, q, items, n + 1, i);
      lua_pushnil(L);
      lua_rawseti(L, items, n + 1);
    }
  }
  q->n--;
}

/* }==================================================================== */


/* {====================================================================
** Waiting
** ===================================================================== */

static int put_k(lua_State *L, int status, lua_KContext ctx);
static int get_k(lua_State *L, int status, lua_KContext ctx);
static int join_k(lua_State *L, int status, lua_KContext ctx);

/* Suspends the running task on 'list'; 'k' runs when it is resumed. */
static int wait_on(lua_State *L, loom_queue *q, loom_task **list,
                   const char *name, lua_KFunction k) {
  loom_host *H = qhost(L, q);
  loom_task *t = loom__enter(L, H, name);
  loom__list_wait(list, t);
  return loom__wait(L, k, (lua_KContext)q);
}

/*
** On resumption: raises a cancellation that came meanwhile, first
** passing the wake-up on when the task had been woken and the reason
** still holds (an item to get, room to put).
*/
static void resumed(lua_State *L, loom_queue *q, loom_task **list,
                    int still_holds) {
  loom_host *H = loom__gen_host(q->hb, q->gen);
  loom_task *t;
  if (H == NULL) loom__errorf(L, "loom: the host is closed");
  t = loom__resumed(L, H);
  if (t->throwing) {
    if (t->woken && still_holds) loom__list_wake(H, list);
    t->woken = 0;
    loom__rethrow(L, H, t);
  }
  t->woken = 0;
}

/* }==================================================================== */


/* {====================================================================
** Methods
** ===================================================================== */

/* Checks value 2 and priority 3 of 'fname' (as q:fname(v, priority)). */
static void check_value(lua_State *L, loom_queue *q, const char *fname) {
  if (lua_isnoneornil(L, 2)) loom__errorf(L, "loom.queue: cannot put nil");
  if (q->order != Q_PRIORITY || lua_isnoneornil(L, 3)) return;
  if (lua_type(L, 3) != LUA_TNUMBER)
    loom__typeerror(L, 3, fname, "number");
  if (lua_tonumber(L, 3) != lua_tonumber(L, 3))  /* NaN: has no order */
    loom__argerror(L, 3, fname, "priority must not be nan");
}

/* Adds value 2 (priority 3): the queue has room and is open. */
static int add(lua_State *L, loom_queue *q) {
  double prio = q->order == Q_PRIORITY ? luaL_optnumber(L, 3, 0) : 0;
  lua_getiuservalue(L, 1, 1);
  lua_pushvalue(L, 2);
  store_add(L, q, lua_gettop(L) - 1, prio);
  q->unfinished++;
  if (q->getters != NULL) loom__list_wake(qhost(L, q), &q->getters);
  lua_pushboolean(L, 1);
  return 1;
}

static int put_body(lua_State *L, loom_queue *q) {
  if (q->closed) return loom__errorf(L, "loom.queue: put on a closed queue");
  if (is_full(q))
    return wait_on(L, q, &q->putters, "queue:put", put_k);
  return add(L, q);
}

static int put_k(lua_State *L, int status, lua_KContext ctx) {
  loom_queue *q = (loom_queue *)ctx;
  (void)status;
  resumed(L, q, &q->putters, !is_full(q) && !q->closed);
  return put_body(L, q);
}

/* q:put(v [, priority]) (suspends while full) */
static int q_put(lua_State *L) {
  loom_queue *q = checkqueue(L, "queue:put");
  check_value(L, q, "queue:put");
  loom__current(L, qhost(L, q), "queue:put");
  if (q->order == Q_PRIORITY) lua_settop(L, 3);
  return put_body(L, q);
}

/* q:put_nowait(v [, priority]) */
static int q_put_nowait(lua_State *L) {
  loom_queue *q = checkqueue(L, "queue:put_nowait");
  check_value(L, q, "queue:put_nowait");
  lua_settop(L, 3);
  if (q->closed) return loom__errorf(L, "loom.queue: put on a closed queue");
  if (is_full(q)) {
    lua_pushnil(L);
    lua_pushliteral(L, "full");
    return 2;
  }
  return add(L, q);
}

/* Pushes the next item: the queue holds one. */
static int take(lua_State *L, loom_queue *q) {
  lua_getiuservalue(L, 1, 1);
  store_take(L, q, lua_gettop(L));
  if (q->putters != NULL) loom__list_wake(qhost(L, q), &q->putters);
  return 1;
}

static int get_body(lua_State *L, loom_queue *q) {
  if (q->n > 0) return take(L, q);
  if (q->closed) {
    lua_pushnil(L);
    lua_pushliteral(L, "closed");
    return 2;
  }
  return wait_on(L, q, &q->getters, "queue:get", get_k);
}

static int get_k(lua_State *L, int status, lua_KContext ctx) {
  loom_queue *q = (loom_queue *)ctx;
  (void)status;
  resumed(L, q, &q->getters, q->n > 0);
  return get_body(L, q);
}

/* q:get() (suspends while empty) */
static int q_get(lua_State *L) {
  loom_queue *q = checkqueue(L, "queue:get");
  loom__current(L, qhost(L, q), "queue:get");
  return get_body(L, q);  /* extra arguments stay below */
}

/* q:get_nowait() */
static int q_get_nowait(lua_State *L) {
  loom_queue *q = checkqueue(L, "queue:get_nowait");
  lua_settop(L, 1);
  if (q->n > 0) return take(L, q);
  lua_pushnil(L);
  if (q->closed) lua_pushliteral(L, "closed");
  else lua_pushliteral(L, "empty");
  return 2;
}

/* q:task_done() */
static int q_task_done(lua_State *L) {
  loom_queue *q = checkqueue(L, "queue:task_done");
  if (q->unfinished <= 0)
    return loom__errorf(L, "loom.queue: task_done called more times "
                           "than items were put");
  if (--q->unfinished == 0)
    while (q->joiners != NULL) loom__list_wake(qhost(L, q), &q->joiners);
  return 0;
}

static int join_body(lua_State *L, loom_queue *q) {
  if (q->unfinished == 0) return 0;
  return wait_on(L, q, &q->joiners, "queue:join", join_k);
}

static int join_k(lua_State *L, int status, lua_KContext ctx) {
  loom_queue *q = (loom_queue *)ctx;
  (void)status;
  resumed(L, q, &q->joiners, 0);
  return join_body(L, q);
}

/* q:join() (suspends until every item is done) */
static int q_join(lua_State *L) {
  loom_queue *q = checkqueue(L, "queue:join");
  loom__current(L, qhost(L, q), "queue:join");
  lua_settop(L, 1);
  return join_body(L, q);
}

/* q:close(): puts raise from now on; getters drain, then get nil */
static int q_close(lua_State *L) {
  loom_queue *q = checkqueue(L, "queue:close");
  loom_host *H;
  if (q->closed) return 0;
  q->closed = 1;
  H = qhost(L, q);
  while (q->getters != NULL) loom__list_wake(H, &q->getters);
  while (q->putters != NULL) loom__list_wake(H, &q->putters);
  return 0;
}

static int q_size(lua_State *L) {
  lua_pushinteger(L, checkqueue(L, "queue:size")->n);
  return 1;
}

static int q_empty(lua_State *L) {
  lua_pushboolean(L, checkqueue(L, "queue:empty")->n == 0);
  return 1;
}

static int q_full(lua_State *L) {
  lua_pushboolean(L, is_full(checkqueue(L, "queue:full")));
  return 1;
}

static int iter_next(lua_State *L) {
  loom_queue *q;
  lua_settop(L, 0);
  lua_pushvalue(L, lua_upvalueindex(2));
  q = lua_touserdata(L, 1);
  loom__current(L, qhost(L, q), "queue:iter");
  return get_body(L, q);
}

/* q:iter(): for v in q:iter() do ... end, until closed and drained */
static int q_iter(lua_State *L) {
  checkqueue(L, "queue:iter");
  lua_settop(L, 1);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_pushcclosure(L, iter_next, 2);
  return 1;
}

static int q_tostring(lua_State *L) {
  loom_queue *q = checkqueue(L, "__tostring");
  lua_pushfstring(L, "loom.queue (%s, %d item(s)%s)", orders[q->order],
                  (int)q->n, q->closed ? ", closed" : "");
  return 1;
}

static int q_gc(lua_State *L) {
  loom_queue *q = lua_touserdata(L, 1);
  free(q->keys);
  q->keys = NULL;
  return 0;
}

/* loom.queue{maxsize = 0, order = "fifo"} */
static int l_queue(lua_State *L) {
  loom_host *H = loom__host(L);
  lua_Integer maxsize = 0;
  int order = Q_FIFO, isnum;
  loom_queue *q;
  if (!lua_isnoneornil(L, 1)) {
    if (!lua_istable(L, 1))
      return loom__typeerror(L, 1, "loom.queue", "table");
    if (lua_getfield(L, 1, "maxsize") != LUA_TNIL) {
      maxsize = lua_tointegerx(L, -1, &isnum);
      if (!isnum || maxsize < 0 || lua_type(L, -1) != LUA_TNUMBER)
        return loom__argerror(L, 1, "loom.queue",
                              "maxsize must be a non-negative integer");
    }
    if (lua_getfield(L, 1, "order") != LUA_TNIL) {
      const char *o = lua_tostring(L, -1);
      for (order = 0; o != NULL && orders[order] != NULL; order++)
        if (strcmp(o, orders[order]) == 0) break;
      if (o == NULL || orders[order] == NULL)
        return loom__argerror(L, 1, "loom.queue", lua_pushfstring(L,
                              "invalid order '%s' ('fifo', 'lifo' or "
                              "'priority')", o ? o : luaL_typename(L, -1)));
    }
  }
  q = loom__object_new(L, &queue_class, sizeof *q, 1);
  q->hb = H->box;
  q->gen = H->box->gen;
  q->order = order;
  q->maxsize = maxsize;
  lua_newtable(L);
  lua_setiuservalue(L, -2, 1);
  return 1;
}

static const luaL_Reg methods[] = {
  {"put", q_put},
  {"put_nowait", q_put_nowait},
  {"get", q_get},
  {"get_nowait", q_get_nowait},
  {"task_done", q_task_done},
  {"join", q_join},
  {"close", q_close},
  {"size", q_size},
  {"empty", q_empty},
  {"full", q_full},
  {"iter", q_iter},
  {NULL, NULL}
};

static const luaL_Reg meta[] = {
  {"__tostring", q_tostring},
  {"__gc", q_gc},
  {NULL, NULL}
};

static const loom_class queue_class = {
  .name = LOOM_QUEUE_MT,
  .methods = methods,
  .meta = meta
};

void loom__queue_register(lua_State *L, loom_host *H) {
  (void)H;
  loom__class_register(L, &queue_class);
  loom__push_box(L);
  lua_pushcclosure(L, l_queue, 1);
  lua_setfield(L, -2, "queue");
}

/* }==================================================================== */
