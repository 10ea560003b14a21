/*
** call.c: awaitable C functions.  A 'loom_call' is a task's wait for
** something C will complete: from the loop thread (loom_call_complete)
** or from any thread (loom_call_complete_async).
**
** Ownership: a call has two references, the task side (held by loom,
** dropped once the outcome reached the task or was discarded) and the C
** side (dropped by loom_call_release).  The memory goes with the last.
**
** Threads: the state of a call and the queue of calls completed from
** other threads are guarded by the host's mailbox mutex.  The mailbox
** is a separate, reference-counted object, so that a thread completing
** a call after its host closed still finds a live mutex and a 'closed'
** flag instead of freed memory; it goes with the host and the last
** call.
*/
#include <stdlib.h>

#include "internal.h"

static const loom_class call_class;
static int mailbox_open(loom_host *H);

enum { CALL_PENDING, CALL_QUEUED, CALL_DONE };

/*
** The mailbox is a handle of its host, made with the host's first call:
** its async handle wakes the loop for completions from other threads.
*/
struct loom_mailbox {
  loom_handle base;
  uv_async_t async;      /* the host's wake-up; valid while !closed */
  uv_mutex_t mu;
  int refs;              /* the host + each call not yet freed */
  int closed;            /* the host is gone: completions are refused */
  int ncalls;            /* open calls: the async keeps the loop alive */
  loom_call *head, *tail;  /* completed from threads, not yet delivered */
};

/* A call is a handle too: its host closing gives up its task side. */
struct loom_call {
  loom_handle base;      /* linked while the task side holds it */
  loom_mailbox *mb;
  loom_task *t;          /* the waiting task; NULL once it left */
  loom_push_fn push;
  void *ud;
  loom_call *next;       /* in the mailbox queue */
  int state;             /* CALL_*, under mb->mu */
  int refs;              /* under mb->mu */
  int closed;            /* its host closed: refused, under mb->mu */
};


/*
** {====================================================================
** References
** =====================================================================
*/

static void mailbox_unref(loom_mailbox *mb) {
  int last;
  uv_mutex_lock(&mb->mu);
  last = --mb->refs == 0;
  uv_mutex_unlock(&mb->mu);
  if (last) {
    uv_mutex_destroy(&mb->mu);
    free(mb);
  }
}

static void call_unref(loom_call *c) {
  loom_mailbox *mb = c->mb;
  int last;
  uv_mutex_lock(&mb->mu);
  last = --c->refs == 0;
  uv_mutex_unlock(&mb->mu);
  if (last) {
    free(c);
    mailbox_unref(mb);
  }
}

/* The task side is done with 'c' (loop thread). */
static void call_finish(loom_call *c) {
  loom__handle_unlink(&c->base);
  if (--c->mb->ncalls == 0) uv_unref((uv_handle_t *)&c->mb->async);
  call_unref(c);
}

/* The outcome of a call its C side gave up without completing it. */
static int push_released(lua_State *L, void *ud) {
  (void)ud;
  if (L == NULL) return 0;
  return luaL_error(L, "loom: the C function released its call without "
                       "completing it");
}

/*
** Gives up the C side.  A call never completed can no longer be: it is
** completed here with an error (through the mailbox, as from a thread),
** so that its task does not wait forever and the loop can end.
*/
LOOM_API void loom_call_release(loom_call *c) {
  loom_mailbox *mb;
  if (c == NULL) return;
  mb = c->mb;
  uv_mutex_lock(&mb->mu);
  if (c->state == CALL_PENDING && !mb->closed && !c->closed) {
    c->state = CALL_QUEUED;
    c->push = push_released;
    c->ud = NULL;
    c->next = NULL;
    if (mb->tail) mb->tail->next = c;
    else mb->head = c;
    mb->tail = c;
    uv_async_send(&mb->async);
  }
  uv_mutex_unlock(&mb->mu);
  call_unref(c);
}

/* }==================================================================== */


/*
** {====================================================================
** Completion
** =====================================================================
*/

/*
** The outcome of 'c' is in (loop thread): wake its task, whose
** continuation pushes the results, or, when the task left, let the push
** function free its data.
*/
static void deliver(loom_call *c) {
  if (c->t != NULL) {
    loom__wake(loom__handle_host(&c->base), c->t);
    return;
  }
  if (c->push != NULL) c->push(NULL, c->ud);
  call_finish(c);
}

/* Claims 'c' for completion; returns LOOM_OK or why not (under lock). */
static int claim(loom_call *c, loom_push_fn push, void *ud, int state) {
  if (c->state != CALL_PENDING) return LOOM_EDONE;
  if (c->mb->closed || c->closed) {
    c->state = CALL_DONE;
    return LOOM_ECLOSED;
  }
  c->state = state;
  c->push = push;
  c->ud = ud;
  return LOOM_OK;
}

LOOM_API int loom_call_complete(loom_call *c, loom_push_fn push, void *ud) {
  int r;
  uv_mutex_lock(&c->mb->mu);
  r = claim(c, push, ud, CALL_DONE);
  uv_mutex_unlock(&c->mb->mu);
  if (r == LOOM_OK) deliver(c);
  return r;
}

LOOM_API int loom_call_complete_async(loom_call *c, loom_push_fn push,
                                      void *ud) {
  loom_mailbox *mb = c->mb;
  int r;
  uv_mutex_lock(&mb->mu);
  r = claim(c, push, ud, CALL_QUEUED);
  if (r == LOOM_OK) {
    c->next = NULL;
    if (mb->tail) mb->tail->next = c;
    else mb->head = c;
    mb->tail = c;
    uv_async_send(&mb->async);  /* under the lock: the host cannot close */
  }
  uv_mutex_unlock(&mb->mu);
  return r;
}

/* Takes the calls completed from other threads off the mailbox. */
static loom_call *take_queue(loom_mailbox *mb) {
  loom_call *c;
  uv_mutex_lock(&mb->mu);
  c = mb->head;
  mb->head = mb->tail = NULL;
  uv_mutex_unlock(&mb->mu);
  return c;
}

static void async_cb(uv_async_t *h) {
  loom_mailbox *mb = h->data;
  loom_call *c = take_queue(mb), *next;
  for (; c != NULL; c = next) {
    next = c->next;
    uv_mutex_lock(&mb->mu);
    c->state = CALL_DONE;
    uv_mutex_unlock(&mb->mu);
    deliver(c);
  }
}

/* }==================================================================== */


/*
** {====================================================================
** The task side
** =====================================================================
*/

/*
** The task was woken with its outcome but is raising a cancellation
** instead of taking it: discard the outcome.  (A task that leaves the
** call before its outcome came is let go by the scheduler, through
** 't->u.back', which points at the call's 't'.)
*/
static void call_drop(loom_task *t) {
  loom_call *c = container_of(t->u.back, loom_call, t);
  t->in_call = 0;
  c->t = NULL;
  if (c->push != NULL) c->push(NULL, c->ud);
  call_finish(c);
}

LOOM_API loom_call *loom_call_new(lua_State *L) {
  loom_host *H = loom__host_of_state(L);
  loom_task *t;
  loom_call *c;
  if (H == NULL) luaL_error(L, "loom_call_new: loom is not open in this "
                               "state");
  t = loom__enter(L, H, "loom_call_new");
  if (H->mb == NULL && mailbox_open(H) != 0) loom__nomem(L);
  c = loom__handle_alloc(H, &call_class, sizeof *c);
  if (c == NULL) loom__nomem(L);
  c->mb = H->mb;
  c->t = t;
  c->refs = 2;
  c->state = CALL_PENDING;
  uv_mutex_lock(&c->mb->mu);
  c->mb->refs++;
  uv_mutex_unlock(&c->mb->mu);
  if (c->mb->ncalls++ == 0) uv_ref((uv_handle_t *)&c->mb->async);
  t->u.back = &c->t;
  t->wait = WAIT_CALL;
  t->in_call = 1;
  return c;
}

/*
** The task resumes.  'c' is only touched while the task still owns it
** (in_call and its call is 'c'): a task that left the call (cancelled,
** timed out) may be resumed after the call was delivered and freed.
*/
static int call_k(lua_State *L, int status, lua_KContext ctx) {
  loom_call *c = (loom_call *)ctx;
  loom_host *H = loom__host_of_state(L);
  loom_task *t = loom__resumed(L, H);
  int owned = t->in_call && t->u.back == &c->t;
  loom_push_fn push;
  void *ud;
  (void)status;
  if (t->throwing) {
    if (owned) call_drop(t);
    return loom__rethrow(L, H, t);
  }
  if (!owned)  /* not the task that waits in 'c' */
    return luaL_error(L, "loom: a coroutine suspended in a loom call was "
                         "resumed outside its task");
  push = c->push;
  ud = c->ud;
  t->in_call = 0;
  call_finish(c);  /* 'c' may be gone now */
  return push != NULL ? push(L, ud) : 0;
}

/* The task that waited in pending call 'c' left it (loop thread). */
int loom__call_left(loom_call *c) {
  return c->t == NULL;
}

LOOM_API int loom_call_await(lua_State *L, loom_call *c) {
  return loom__wait(L, call_k, (lua_KContext)c);
}

/* }==================================================================== */


/*
** {====================================================================
** The host's side
** =====================================================================
*/

static void mailbox_closed(uv_handle_t *h) {
  mailbox_unref(h->data);
}

/*
** The host closes: later completions are refused, and completed
** outcomes that never reached their task are dropped (each call's own
** close discards them).
*/
static void mailbox_close_h(loom_handle *h, int why) {
  loom_mailbox *mb = (loom_mailbox *)h;
  (void)why;
  loom__handle_host(h)->mb = NULL;
  loom__handle_unlink(h);
  uv_mutex_lock(&mb->mu);
  mb->closed = 1;
  mb->head = mb->tail = NULL;
  uv_mutex_unlock(&mb->mu);
  uv_close((uv_handle_t *)&mb->async, mailbox_closed);
}

/* The host closes: the task side of 'c' is given up. */
static void call_close_h(loom_handle *h, int why) {
  loom_call *c = (loom_call *)h;
  int state;
  (void)why;
  loom__handle_unlink(h);
  uv_mutex_lock(&c->mb->mu);
  state = c->state;
  c->closed = 1;
  uv_mutex_unlock(&c->mb->mu);
  if (state != CALL_PENDING && c->push != NULL) c->push(NULL, c->ud);
  call_unref(c);
}

static const loom_class mailbox_class = {
  .name = "loom.mailbox",
  .close = mailbox_close_h
};

static const loom_class call_class = {
  .name = "loom.call",
  .close = call_close_h
};

static int mailbox_open(loom_host *H) {
  loom_mailbox *mb = loom__handle_alloc(H, &mailbox_class, sizeof *mb);
  if (mb == NULL) return UV_ENOMEM;
  if (uv_mutex_init(&mb->mu) != 0) {
    loom__handle_unlink(&mb->base);
    free(mb);
    return UV_ENOMEM;
  }
  mb->refs = 1;
  uv_async_init(H->loop, &mb->async, async_cb);
  mb->async.data = mb;
  uv_unref((uv_handle_t *)&mb->async);  /* ref'd while calls are open */
  H->mb = mb;
  return 0;
}

/* }==================================================================== */
