/*
** stream.c: the buffered Stream of loom, over any uv_stream_t (TCP,
** Unix sockets, process pipes), and over TLS through a hook.
**
** Ownership: the stream is malloc'd, because libuv owns the handle until
** its close callback; the 'loom.stream' userdata holds a pointer to it
** (cleared when the stream closes) and the stream frees itself in that
** callback.  Closing lets the writes already queued finish first (as
** Node's end() and asyncio's close() do): the handle closes when the
** last one completes.  Only the host closing drops them.
**
** Reading: a read lands in the host's slab, one READ_CHUNK shared by
** every stream (as Node's is), and what came is copied into the
** stream's own buffer, which is only as large as what waits unread: a
** thousand connections trading small messages hold small buffers.  A
** buffer with READ_CHUNK free already (a bulk transfer) takes the read
** itself, and one grown past KEEP_BUF is freed once it is drained.
** (libuv calls alloc_cb and read_cb back to back for one stream, so
** one slab serves all.)  The stream reads on its own until 'READ_LIMIT' bytes wait
** unread, then pauses (backpressure towards the peer) unless a reader
** waits for more (read_exactly of 2 MiB, say).  One task at a time may
** wait to read; it runs as soon as data, end of file or an error comes,
** and takes what it wants itself.
**
** Writing: a write first tries uv_try_write; what the kernel did not
** take is queued with uv_write, pointing into the Lua string itself,
** which a registry reference keeps alive until the write completes (no
** copy).  A writer suspends while more than the high-water mark is
** queued, and is woken once the queue drains below it.
**
** A hook (TLS, see loom_stream_hook in internal.h) sits between the
** buffer and the socket: the socket's bytes go to it, and it puts what
** it makes of them into the buffer, so that every read works the same
** on what it makes; writes go to it, and it sends what it makes with
** loom__stream_try (straight to the kernel) and loom__stream_send
** (queued: malloc'd chunks owned by their write request).  The hook's state goes with the stream's memory.
**
** Timeouts (stream:timeout): a read call that has waited 's' seconds in
** all, or a write or flush that has, returns nil, msg, "ETIMEDOUT" and
** leaves the stream as it is.  They are allocated on first use, so a
** stream without one costs a pointer: one timer for the reader (there
** is one at a time), one for the writers, armed at the first writer's
** end; each writer keeps when its call began on its own stack.
**
** Failures are values: nil, message, code, the message naming the peer.
*/
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

#define READ_CHUNK LOOM_READ_CHUNK  /* room offered to each read */
#define SMALL_BUF 512            /* the least a stream's buffer holds */
#define KEEP_BUF (128 * 1024)    /* a drained buffer larger is freed */
#define READ_LIMIT (1024 * 1024) /* unread bytes that pause reading */
#define HWM_DEFAULT (64 * 1024)
#define LINE_LIMIT_DEFAULT (64 * 1024)
#define TMO_NEVER 4503599627370496.0  /* ms: a timeout this long is none */


/* {====================================================================
** Lifetime
** ===================================================================== */

/* stream:timeout's state (see the top of this file). */
struct stream_tmo {
  loom_timer rtm, wtm;      /* the reader's and the writers' */
  loom_stream *s;
  uint64_t ms;              /* the timeout; 0: none */
  uint64_t rbegin;          /* when the read call under way began */
  double secs;
};

static void stream_closed(uv_handle_t *h) {
  loom_stream *s = h->data;
  if (s->hook != NULL) s->hook->free(s);
  free(s->tmo);
  free(s->buf);
  free(s);
}

static loom_host *host_of(loom_stream *s) {
  return loom__handle_host(&s->base);
}

/* Wakes every task waiting on 's' (they look at its state when they run). */
static void wake_all(loom_stream *s) {
  loom_host *H = host_of(s);
  if (H == NULL) return;
  while (s->readers != NULL) loom__list_wake(H, &s->readers);
  while (s->writers != NULL) loom__list_wake(H, &s->writers);
}

static void unref_writes(loom_stream *s);
static void read_stop(loom_stream *s);

/*
** The handle goes.  The strings of writes still queued are let go now,
** while the host (and so the Lua state) is surely alive: libuv no longer
** writes from them once the handle closes, and their callbacks, which
** come later (cancelled), may come after the state has gone.
*/
/*
** What the peer sent and nobody read is read and dropped before a TCP
** socket closes: closing with unread bytes makes the kernel reset the
** connection, and the peer may lose what it had not yet read of ours
** (a TLS 1.3 session ticket that came after the handshake, say, would
** cost the server the client's last writes).  Bounded: 256 KiB.
*/
static void drop_unread(loom_stream *s) {
  uv_os_fd_t fd;
  char buf[4096];
  int i;
  if (s->kind != LOOM_STREAM_TCP || s->eof || s->rerr
      || uv_fileno(&s->u.h, &fd) != 0)
    return;
  for (i = 0; i < 64; i++)
    if (read(fd, buf, sizeof buf) <= 0) break;  /* non-blocking */
}

static void stream_release(loom_stream *s) {
  unref_writes(s);
  drop_unread(s);
  /* a terminal left in raw mode goes back as it was */
  if (s->kind == LOOM_STREAM_TTY) uv_tty_set_mode(&s->u.tty, UV_TTY_MODE_NORMAL);
  s->released = 1;
  loom__handle_unlink(&s->base);
  uv_close(&s->u.h, stream_closed);
}

/*
** Closes 's' (once): waiting tasks wake and find it closed.  Unless
** 'force', writes still queued go out first: the handle closes when the
** last completes (write_cb), and stays on the host's list until then,
** so that a closing host can force it.
*/
void loom__stream_close(loom_stream *s, int force) {
  if (s->closed) {
    if (force && s->lingering) {
      s->lingering = 0;
      stream_release(s);
    }
    return;
  }
  s->closed = 1;
  loom__handle_detach(&s->base);
  if (s->tmo != NULL && host_of(s) != NULL) {
    loom__timer_remove(host_of(s), &s->tmo->rtm);
    loom__timer_remove(host_of(s), &s->tmo->wtm);
  }
  wake_all(s);
  if (s->reading) read_stop(s);
  /* the hook's last words (TLS's close_notify) go out as queued writes */
  if (s->hook != NULL && !force && !s->shut && s->werr == 0)
    s->hook->finish(s);
  if (s->pending > 0 && !force && s->werr == 0) {
    s->lingering = 1;
    return;
  }
  stream_release(s);
}

static void stream_close_h(loom_handle *h, int why) {
  loom__stream_close((loom_stream *)h, why == LOOM_CLOSE_HOST);
}

static const char *stream_describe(loom_handle *h) {
  return ((loom_stream *)h)->name;
}

static const loom_class stream_class;

/*
** Makes a stream of 'kind' (its handle initialised on the host's loop),
** pushes its userdata and returns it; raises on lack of memory.  'name'
** is what messages call the other end.
*/
loom_stream *loom__stream_new(lua_State *L, loom_host *H,
                              loom_stream_kind kind,
                              const char *name) {
  loom_stream *s = loom__handle_new(L, H, &stream_class, sizeof *s, 0);
  if (kind == LOOM_STREAM_PIPE) uv_pipe_init(H->loop, &s->u.pipe, 0);
  else if (kind == LOOM_STREAM_TCP) uv_tcp_init(H->loop, &s->u.tcp);
  /* LOOM_STREAM_TTY: the caller initialises the handle at once */
  s->u.h.data = s;
  s->kind = kind;
  s->hwm = HWM_DEFAULT;
  s->line_limit = LINE_LIMIT_DEFAULT;
  snprintf(s->name, sizeof s->name, "%s", name ? name : "?");
  return s;
}

void loom__stream_rename(loom_stream *s, const char *name) {
  snprintf(s->name, sizeof s->name, "%s", name);
}

/* Pushes host, port of 'sa'; returns 2 ('buf': INET6_ADDRSTRLEN chars). */
int loom__push_sockaddr(lua_State *L, const struct sockaddr *sa, char *buf) {
  int port = 0;
  buf[0] = '\0';
  if (sa->sa_family == AF_INET) {
    const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
    uv_ip4_name(in, buf, INET6_ADDRSTRLEN);
    port = ntohs(in->sin_port);
  }
  else if (sa->sa_family == AF_INET6) {
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
    uv_ip6_name(in6, buf, INET6_ADDRSTRLEN);
    port = ntohs(in6->sin6_port);
  }
  lua_pushstring(L, buf);
  lua_pushinteger(L, port);
  return 2;
}

static loom_host *shost(lua_State *L, loom_stream *s) {
  loom_host *H = host_of(s);
  if (H == NULL) loom__errorf(L, "loom: the host of this stream is closed");
  return H;
}

/* {====================================================================
** Timeouts
** ===================================================================== */

/* Takes 'tm' out of the host's timers, when it is queued. */
static void tmo_off(loom_stream *s, loom_timer *tm) {
  loom_host *H = host_of(s);
  if (H != NULL) loom__timer_remove(H, tm);
}

/*
** Makes 'tm' fire at loop time 'due', unless it is queued to fire no
** later.  0, or UV_ENOMEM.
*/
static int tmo_arm(loom_host *H, loom_timer *tm, uint64_t due) {
  uint64_t now = loom__now(H);
  if (tm->next != NULL && tm->due <= due) return 0;
  loom__timer_remove(H, tm);
  return loom__timer_add(H, tm, due > now ? due - now : 0);
}

/* The failure "<what> '<peer>': timed out after <s>s". */
static int fail_timeout(lua_State *L, loom_stream *s, const char *what) {
  char msg[64];
  snprintf(msg, sizeof msg, "timed out after %gs", s->tmo->secs);
  return loom__fail_reason(L, what, s->name, msg, "ETIMEDOUT");
}

/*
** A timeout is due: the reader, or every writer, runs, and finds out
** for itself whether its own time is up (a writer that came later waits
** again).
*/
void loom__stream_timer_fire(loom_host *H, loom_timer *tm) {
  loom_stream *s;
  if (tm->kind == TIMER_STREAM_READ) {
    s = container_of(tm, struct stream_tmo, rtm)->s;
    if (s->readers != NULL) loom__list_wake(H, &s->readers);
    return;
  }
  s = container_of(tm, struct stream_tmo, wtm)->s;
  while (s->writers != NULL) loom__list_wake(H, &s->writers);
}

/* Whether 's' has a timeout. */
static int timed(loom_stream *s) {
  return s->tmo != NULL && s->tmo->ms > 0;
}

/* A read call begins: its time counts from now. */
static void read_begin(lua_State *L, loom_stream *s) {
  if (timed(s)) s->tmo->rbegin = loom__now(shost(L, s));
}

/*
** A read call returns 'r' results (a call that waits never gets here:
** lua_yieldk does not return), so its timer goes.
*/
static int read_end(loom_stream *s, int r) {
  if (s->tmo != NULL) tmo_off(s, &s->tmo->rtm);
  return r;
}

/*
** Before a read that would wait: nil, msg, "ETIMEDOUT" (3) when the
** call has waited its time, else 0 with the timer armed for it.
*/
static int read_due(lua_State *L, loom_stream *s) {
  loom_host *H;
  uint64_t due;
  if (!timed(s)) return 0;
  H = shost(L, s);
  due = s->tmo->rbegin + s->tmo->ms;
  if (loom__now(H) >= due) {
    /* a weak stream reads only for a reader (see loom__stream_resumed) */
    if (s->weak && s->reading && s->readers == NULL) read_stop(s);
    return read_end(s, fail_timeout(L, s, "read from"));
  }
  if (tmo_arm(H, &s->tmo->rtm, due) != 0) return loom__nomem(L);
  return 0;
}

/*
** A write or flush call begins: when it started goes on its stack, at
** 2 (nothing when the stream has no timeout).
*/
static void write_begin(lua_State *L, loom_stream *s) {
  lua_settop(L, 1);
  if (timed(s)) lua_pushinteger(L, (lua_Integer)loom__now(shost(L, s)));
}

/* A write or flush returns 'r' results: the last writer takes the timer. */
static int write_end(loom_stream *s, int r) {
  if (s->tmo != NULL && s->writers == NULL) tmo_off(s, &s->tmo->wtm);
  return r;
}

/* As read_due, for the write or flush whose start is at 2. */
static int write_due(lua_State *L, loom_stream *s, const char *what) {
  loom_host *H;
  uint64_t due;
  if (!timed(s) || lua_type(L, 2) != LUA_TNUMBER) return 0;
  H = shost(L, s);
  due = (uint64_t)lua_tointeger(L, 2) + s->tmo->ms;
  if (loom__now(H) >= due) return write_end(s, fail_timeout(L, s, what));
  if (tmo_arm(H, &s->tmo->wtm, due) != 0) return loom__nomem(L);
  return 0;
}

/*
** A continuation of a read ('write' 0) or of a write: the call that
** ends raising (cancelled, timed out by loom.timeout) lets go of its
** timer first.  Then as loom__stream_resumed.
*/
static loom_stream *io_resumed(lua_State *L, int write) {
  loom_stream **box = lua_touserdata(L, 1);
  loom_stream *s = *box;
  if (s != NULL && s->tmo != NULL && loom__resumed(L, NULL)->throwing) {
    if (write) write_end(s, 0);
    else read_end(s, 0);
  }
  return loom__stream_resumed(L);
}

/*
** s:timeout([secs]): the timeout of each read and write call, in
** seconds, or nil when there is none; set first when 'secs' is given
** (nil or 0: none).  Calls under way keep the one they began with, as
** far as they can: a call that begins waiting later uses the new one.
*/
static int s_timeout(lua_State *L) {
  loom_stream *s = loom__checkhandle_as(L, 1, &stream_class,
                                        "stream:timeout");
  if (!lua_isnone(L, 2)) {
    double secs = lua_isnil(L, 2) ? 0
                  : loom__checknumber(L, 2, "stream:timeout");
    double ms = ceil(secs * 1000.0 - 1e-6);
    if (!(secs >= 0))  /* NaN too */
      loom__argerror(L, 2, "stream:timeout", lua_pushfstring(L,
                     "timeout must be a non-negative number, got %s",
                     loom__shownumber(L, 2)));
    if (secs == 0 || ms >= TMO_NEVER) {  /* none */
      if (s->tmo != NULL) {
        s->tmo->ms = 0;
        tmo_off(s, &s->tmo->rtm);
        tmo_off(s, &s->tmo->wtm);
      }
    }
    else {
      if (s->tmo == NULL) {
        s->tmo = calloc(1, sizeof *s->tmo);
        if (s->tmo == NULL) return loom__nomem(L);
        s->tmo->s = s;
        s->tmo->rtm.kind = TIMER_STREAM_READ;
        s->tmo->wtm.kind = TIMER_STREAM_WRITE;
        s->tmo->rbegin = loom__now(shost(L, s));
      }
      s->tmo->ms = ms < 1 ? 1 : (uint64_t)ms;
      s->tmo->secs = secs;
    }
  }
  if (timed(s)) lua_pushnumber(L, s->tmo->secs);
  else lua_pushnil(L);
  return 1;
}

/* }==================================================================== */


/* The failure of a read or write on a closed stream. */
static int fail_closed(lua_State *L) {
  return loom__fail_reason(L, NULL, NULL, "the stream is closed",
                           "ECANCELED");
}

/*
** The failure "<what> '<peer>': <reason>" of error 'err' of 's': the
** hook's text for an error it made, else libuv's.
*/
int loom__stream_fail(lua_State *L, loom_stream *s, const char *what,
                      int err) {
  const char *why = s->hook != NULL ? s->hook->reason(s, err) : NULL;
  if (why == NULL) return loom__fail(L, what, s->name, err);
  return loom__fail_reason(L, what, s->name, why, uv_err_name(err));
}

/* }==================================================================== */


/* {====================================================================
** Reading
** ===================================================================== */

/*
** The unread bytes: NULL while the stream has no buffer (which adding
** to, even 0, is undefined behaviour).
*/
static char *unread(loom_stream *s) {
  return s->buf != NULL ? s->buf + s->start : NULL;
}

/* Room for 'n' more bytes at the end of the buffer: 0, or UV_ENOMEM. */
static int reserve(loom_stream *s, size_t n) {
  size_t cap;
  char *p;
  if (s->cap - s->start - s->len >= n) return 0;
  if (s->start > 0) {  /* reuse the front */
    memmove(s->buf, s->buf + s->start, s->len);
    s->start = 0;
    if (s->cap - s->len >= n) return 0;
  }
  cap = s->cap ? s->cap : SMALL_BUF;
  while (cap - s->len < n) cap *= 2;
  p = realloc(s->buf, cap);
  if (p == NULL) return UV_ENOMEM;
  s->buf = p;
  s->cap = cap;
  return 0;
}

/*
** The free end of the read buffer, at least READ_CHUNK bytes ('*room'
** of them), where new data goes; the caller adds what it put there to
** 's->len'.  NULL when memory runs out.
*/
char *loom__stream_room(loom_stream *s, size_t *room) {
  if (reserve(s, READ_CHUNK) != 0) return NULL;
  *room = s->cap - s->start - s->len;
  return s->buf + s->start + s->len;
}

/* Copies 'n' bytes to the end of the buffer: 0, or UV_ENOMEM. */
int loom__stream_append(loom_stream *s, const char *p, size_t n) {
  if (reserve(s, n) != 0) return UV_ENOMEM;
  memcpy(s->buf + s->start + s->len, p, n);
  s->len += n;
  return 0;
}

/* The host's slab of READ_CHUNK bytes, or NULL (out of memory). */
char *loom__stream_slab(loom_stream *s) {
  loom_host *H = host_of(s);
  if (H == NULL) return NULL;
  if (H->slab == NULL) H->slab = malloc(READ_CHUNK);
  return H->slab;
}

/* A drained buffer that grew large goes (a small one is kept). */
static void shrink(loom_stream *s) {
  if (s->cap > KEEP_BUF) {
    free(s->buf);
    s->buf = NULL;
    s->cap = 0;
  }
}

/*
** Where the socket's data goes: the buffer itself when it has a whole
** READ_CHUNK free, else the slab (and a hook's always goes there).
*/
static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  loom_stream *s = h->data;
  (void)suggested;
  if (s->hook == NULL && s->cap - s->start - s->len >= READ_CHUNK) {
    buf->base = s->buf + s->start + s->len;
    buf->len = s->cap - s->start - s->len;
    return;
  }
  buf->base = loom__stream_slab(s);
  buf->len = buf->base != NULL ? READ_CHUNK : 0;  /* 0: UV_ENOBUFS */
}

/* Stops the reads: the socket's, or those of a hook that reads itself. */
static void read_stop(loom_stream *s) {
  if (s->hook != NULL && s->hook->read != NULL) s->hook->read(s, 0);
  else uv_read_stop(&s->u.s);
  s->reading = 0;
}

/*
** A read came: its bytes are in the buffer already, and 'r' < 0 ends
** the reads (UV_EOF, or an error).  The reader waiting runs now.  Also
** for a hook that reads itself (a file: stdio.c).
*/
void loom__stream_got(loom_stream *s, int r) {
  loom_host *H = host_of(s);
  if (r < 0) {
    if (r == UV_EOF) s->eof = 1;
    else s->rerr = r;
    read_stop(s);
  }
  if (H != NULL && s->readers != NULL) loom__list_resume(H, &s->readers);
  /* the reader (if any) took what it wanted, or waits for more; a weak
  ** stream reads only for a reader */
  if (!s->closed && s->reading && s->readers == NULL
      && (s->len >= READ_LIMIT || s->weak))
    read_stop(s);
}

static void read_cb(uv_stream_t *h, ssize_t nread, const uv_buf_t *buf) {
  loom_stream *s = h->data;
  int r = 0;
  if (nread == 0) return;  /* EAGAIN */
  if (s->hook != NULL && (nread > 0 || nread == UV_EOF))
    r = s->hook->input(s, buf->base, nread > 0 ? (size_t)nread : 0);
  else if (nread > 0
           && (s->buf == NULL || buf->base != s->buf + s->start + s->len))
    r = loom__stream_append(s, buf->base, (size_t)nread);  /* the slab */
  else if (nread > 0) s->len += (size_t)nread;
  else r = (int)nread;
  loom__stream_got(s, r);
}

/*
** Makes sure the stream reads, unless there was EOF or an error, or it
** holds its limit and 'wanted' is false (no reader waits for more).
*/
static int start_reading(loom_stream *s, int wanted) {
  int r;
  if (s->reading || s->eof || s->rerr
      || (!wanted && (s->len >= READ_LIMIT || s->weak)))
    return 0;
  if (s->hook != NULL && s->hook->read != NULL) r = s->hook->read(s, 1);
  else r = uv_read_start(&s->u.s, alloc_cb, read_cb);
  if (r == 0) s->reading = 1;
  else s->rerr = r;
  return r;
}

/* For a task that waits on the stream another way (a TLS handshake). */
int loom__stream_read(loom_stream *s) {
  return start_reading(s, 1);
}

/* Pushes 'n' buffered bytes and takes them out of the buffer. */
static void take(lua_State *L, loom_stream *s, size_t n) {
  lua_pushlstring(L, unread(s), n);
  s->start += n;
  s->len -= n;
  if (s->len == 0) {
    s->start = 0;
    shrink(s);
  }
  if (!s->reading && s->len < READ_LIMIT) start_reading(s, 0);
}

static void drop(loom_stream *s, size_t n) {
  s->start += n;
  s->len -= n;
  if (s->len == 0) {
    s->start = 0;
    shrink(s);
  }
  if (!s->reading && s->len < READ_LIMIT) start_reading(s, 0);
}

/*
** What a read does when the buffer cannot satisfy it: returns the
** failure (EOF, error, closed) when there is one, else suspends the task
** until something changes, with 'k' as its continuation.
*/
static int wait_data(lua_State *L, loom_stream *s, const char *name,
                     lua_KFunction k) {
  loom_host *H;
  loom_task *t;
  if (s->closed) return fail_closed(L);
  if (s->rerr) return loom__stream_fail(L, s, "read from", s->rerr);
  if (s->eof) return loom__fail(L, "read from", s->name, UV_EOF);
  if (s->readers != NULL)
    return loom__errorf(L, "%s: another task is reading this stream", name);
  H = shost(L, s);
  t = loom__enter(L, H, name);
  start_reading(s, 1);  /* a reader waits: past the limit if need be */
  if (s->rerr) return loom__stream_fail(L, s, "read from", s->rerr);
  if (read_due(L, s) != 0) return 3;  /* timed out */
  loom__list_wait(&s->readers, t);
  return loom__wait(L, k, (lua_KContext)0);
}

/*
** The stream at 'idx' (NULL when closed), raising an argument error
** naming 'fname' when it is not a stream.
*/
loom_stream *loom__tostream(lua_State *L, int idx, const char *fname) {
  loom_stream **box = loom__checkobject_as(L, idx, &stream_class, fname);
  return *box;
}

/*
** The stream at 1 for reads, writes and flush, which report a closed
** stream as a failure value (nil, msg, "ECANCELED") rather than raising.
** They suspend, so they raise outside a task, even when they would not
** have waited.
*/
static loom_stream *io_stream(lua_State *L, const char *fname) {
  loom_stream *s = loom__tostream(L, 1, fname);
  loom__current(L, loom__host(L), fname);
  return s;
}

/*
** Continuations (here and tls.c's) check the task may go on; the
** stream is at 1.  NULL when it was closed meanwhile.
*/
loom_stream *loom__stream_resumed(lua_State *L) {
  loom_stream **box = lua_touserdata(L, 1);  /* checked before suspending */
  loom_stream *s = *box;
  /* a weak stream whose reader left (cancelled, timed out) stops reading:
  ** its read would keep the loop alive for nobody */
  if (s != NULL && s->weak && s->reading && s->readers == NULL && !s->closed
      && loom__resumed(L, NULL)->throwing)
    read_stop(s);
  loom__list_resumed(L, s != NULL ? host_of(s) : NULL);
  return *box;
}

static int read_k(lua_State *L, int status, lua_KContext ctx);

static int read_body(lua_State *L, loom_stream *s) {
  lua_Integer n = lua_isnil(L, 2) ? -1 : lua_tointeger(L, 2);
  if (n == 0) {  /* as read_exactly(0): nothing to wait for */
    lua_pushliteral(L, "");
    return 1;
  }
  if (s->len > 0) {
    take(L, s, n > 0 && (size_t)n < s->len ? (size_t)n : s->len);
    return 1;
  }
  return wait_data(L, s, "stream:read", read_k);
}

static int read_k(lua_State *L, int status, lua_KContext ctx) {
  loom_stream *s = io_resumed(L, 0);
  (void)status; (void)ctx;
  return s ? read_end(s, read_body(L, s)) : fail_closed(L);
}

/* s:read([n]) (suspends): up to n bytes, or whatever there is */
static int s_read(lua_State *L) {
  loom_stream *s = io_stream(L, "stream:read");
  lua_Integer n = loom__optinteger(L, 2, "stream:read", 0);
  if (n < 0) loom__argerror(L, 2, "stream:read", "size must be non-negative");
  lua_settop(L, 2);
  if (s == NULL) return fail_closed(L);
  read_begin(L, s);
  return read_end(s, read_body(L, s));
}

static int exactly_k(lua_State *L, int status, lua_KContext ctx);

static int exactly_body(lua_State *L, loom_stream *s) {
  size_t n = (size_t)lua_tointeger(L, 2);
  int r;
  if (s->len >= n) {
    take(L, s, n);
    return 1;
  }
  r = wait_data(L, s, "stream:read_exactly", exactly_k);
  if (r == 3 && s->len > 0 && (s->eof || s->rerr)) {
    take(L, s, s->len);  /* the partial data, as 4th value */
    return 4;
  }
  return r;
}

static int exactly_k(lua_State *L, int status, lua_KContext ctx) {
  loom_stream *s = io_resumed(L, 0);
  (void)status; (void)ctx;
  if (s == NULL) return fail_closed(L);
  return read_end(s, exactly_body(L, s));
}

/* s:read_exactly(n) (suspends) */
static int s_read_exactly(lua_State *L) {
  loom_stream *s = io_stream(L, "stream:read_exactly");
  lua_Integer n = loom__checkinteger(L, 2, "stream:read_exactly");
  if (n < 0)
    loom__argerror(L, 2, "stream:read_exactly", "size must be non-negative");
  lua_settop(L, 2);
  if (s == NULL) return fail_closed(L);
  read_begin(L, s);
  return read_end(s, exactly_body(L, s));
}

static const char *find(const char *h, size_t hl, const char *n, size_t nl) {
  if (nl == 0) return h;
  while (hl >= nl) {
    const char *p = memchr(h, n[0], hl - nl + 1);
    if (p == NULL) return NULL;
    if (memcmp(p, n, nl) == 0) return p;
    hl -= (size_t)(p - h) + 1;
    h = p + 1;
  }
  return NULL;
}

static int until_k(lua_State *L, int status, lua_KContext ctx);
static int until_body(lua_State *L, loom_stream *s, int line);

/*
** read_until and read_line: arg 2 the separator; 'line' strips it (and
** a "\r" before "\n") and returns a last unterminated line at EOF.
*/
static int until_body(lua_State *L, loom_stream *s, int line) {
  size_t sl;
  const char *sep = lua_tolstring(L, 2, &sl);
  const char *p;
  int r;
  while (line && s->skipline) {  /* the rest of an over-long line goes */
    p = s->len > 0 ? memchr(s->buf + s->start, '\n', s->len) : NULL;
    if (p != NULL) {
      drop(s, (size_t)(p - (s->buf + s->start)) + 1);
      s->skipline = 0;
      break;
    }
    drop(s, s->len);
    r = wait_data(L, s, "stream:read_line", until_k);
    if (r == 3 && (s->eof || s->rerr)) s->skipline = 0;
    return r;
  }
  p = find(unread(s), s->len, sep, sl);
  if (p != NULL) {
    size_t n = (size_t)(p - unread(s));
    if (line) {
      size_t keep = n > 0 && p[-1] == '\r' ? n - 1 : n;
      if (keep > s->line_limit) goto too_long;
      lua_pushlstring(L, s->buf + s->start, keep);
      drop(s, n + sl);
    }
    else take(L, s, n + sl);
    return 1;
  }
  /* (a "\r" last may begin the line's end, which the limit leaves out) */
  if (line && s->len > s->line_limit
      && (s->len - 1 > s->line_limit || unread(s)[s->len - 1] != '\r'))
    goto too_long;
  r = wait_data(L, s, line ? "stream:read_line" : "stream:read_until",
                until_k);
  if (r == 3 && s->len > 0 && (s->eof || s->rerr)) {
    if (line) {  /* the last line, without its end */
      lua_settop(L, 2);
      if (s->len > s->line_limit) goto too_long;
      take(L, s, s->len);
      return 1;
    }
    take(L, s, s->len);
    return 4;
  }
  return r;
too_long:
  /* the line is dropped (up to its end when it is here, else the rest of
  ** it as it comes) */
  if (p != NULL) drop(s, (size_t)(p - (s->buf + s->start)) + sl);
  else {
    drop(s, s->len);
    s->skipline = 1;
  }
  lua_pushfstring(L, "line longer than %d bytes", (int)s->line_limit);
  return loom__fail_reason(L, "read_line from", s->name,
                           lua_tostring(L, -1), "ELINE");
}

static int until_k(lua_State *L, int status, lua_KContext ctx) {
  loom_stream *s = io_resumed(L, 0);
  (void)status; (void)ctx;
  if (s == NULL) return fail_closed(L);
  return read_end(s, until_body(L, s, lua_toboolean(L, 3)));
}

/* s:read_until(sep) (suspends) */
static int s_read_until(lua_State *L) {
  loom_stream *s = io_stream(L, "stream:read_until");
  size_t sl;
  loom__checklstring(L, 2, "stream:read_until", &sl);
  if (sl == 0)
    loom__argerror(L, 2, "stream:read_until", "separator must not be empty");
  lua_settop(L, 2);
  if (s == NULL) return fail_closed(L);
  lua_pushboolean(L, 0);
  read_begin(L, s);
  return read_end(s, until_body(L, s, 0));
}

/* s:read_line() (suspends) */
static int s_read_line(lua_State *L) {
  loom_stream *s = io_stream(L, "stream:read_line");
  lua_settop(L, 1);
  if (s == NULL) return fail_closed(L);
  lua_pushliteral(L, "\n");
  lua_pushboolean(L, 1);
  read_begin(L, s);
  return read_end(s, until_body(L, s, 1));
}

static int all_k(lua_State *L, int status, lua_KContext ctx);

static int all_body(lua_State *L, loom_stream *s) {
  int r;
  if (s->eof) {
    take(L, s, s->len);
    return 1;
  }
  r = wait_data(L, s, "stream:read_all", all_k);
  if (r == 3 && s->len > 0 && s->rerr) {  /* an error: partial data 4th */
    take(L, s, s->len);
    return 4;
  }
  return r;
}

static int all_k(lua_State *L, int status, lua_KContext ctx) {
  loom_stream *s = io_resumed(L, 0);
  (void)status; (void)ctx;
  if (s == NULL) return fail_closed(L);
  return read_end(s, all_body(L, s));
}

/* s:read_all() (suspends): everything to EOF */
static int s_read_all(lua_State *L) {
  loom_stream *s = io_stream(L, "stream:read_all");
  lua_settop(L, 1);
  if (s == NULL) return fail_closed(L);
  read_begin(L, s);
  return read_end(s, all_body(L, s));
}

/* }==================================================================== */


/* {====================================================================
** Writing
** ===================================================================== */

#define MAX_BUFS 16

struct write_req {
  uv_write_t req;
  loom_stream *s;
  write_req *next, *prev;  /* the stream's writes in flight */
  char *chunk;        /* or the malloc'd bytes written (the hook's) */
  int nrefs;
  int refs[MAX_BUFS]; /* the strings written, kept alive */
};

/* Lets go of the strings of 'w' (the stream's host is open). */
static void unref_write(loom_stream *s, write_req *w) {
  lua_State *L = host_of(s)->mainL;
  int i;
  for (i = 0; i < w->nrefs; i++)
    luaL_unref(L, LUA_REGISTRYINDEX, w->refs[i]);
  w->nrefs = 0;
}

static void unref_writes(loom_stream *s) {
  write_req *w;
  for (w = s->writes; w != NULL; w = w->next) unref_write(s, w);
}

static void write_cb(uv_write_t *req, int status) {
  write_req *w = (write_req *)req;
  loom_stream *s = w->s;
  loom_host *H = s->released ? NULL : host_of(s);
  if (w->prev) w->prev->next = w->next;
  else s->writes = w->next;
  if (w->next) w->next->prev = w->prev;
  if (H != NULL) unref_write(s, w);
  free(w->chunk);
  free(w);
  s->pending--;
  if (status < 0 && status != UV_ECANCELED && s->werr == 0) s->werr = status;
  if (s->lingering && (s->pending == 0 || s->werr)) {
    s->lingering = 0;  /* closed meanwhile: now the handle goes */
    stream_release(s);
    return;
  }
  loom__stream_drained(s, 0);
}

/*
** Bytes written to 's' and not yet handed to the kernel: libuv's queue
** and its hook's own (a standard stream's: stdio.c).
*/
size_t loom__stream_queued(loom_stream *s) {
  size_t n = uv_stream_get_write_queue_size(&s->u.s);
  if (s->hook != NULL && s->hook->queued != NULL) n += s->hook->queued(s);
  return n;
}

/*
** Some of what was queued went out ('err' 0), or the writes failed:
** the writers waiting wake once the queue is below the high-water mark
** (those in flush once it is empty: they look again when they run).
*/
void loom__stream_drained(loom_stream *s, int err) {
  loom_host *H = s->released ? NULL : host_of(s);
  size_t queued;
  if (err < 0 && s->werr == 0) s->werr = err;
  if (H == NULL || s->writers == NULL) return;
  queued = loom__stream_queued(s);
  if (queued <= s->hwm || s->werr || (s->pending == 0 && queued == 0))
    while (s->writers != NULL) loom__list_wake(H, &s->writers);
}

/* Links the write 'w' of 's' in flight. */
static void link_write(loom_stream *s, write_req *w) {
  w->prev = NULL;
  w->next = s->writes;
  if (s->writes) s->writes->prev = w;
  s->writes = w;
  s->pending++;
}

/* Whether nothing is queued: a write may go to the kernel at once. */
static int idle(loom_stream *s) {
  return s->pending == 0 && uv_stream_get_write_queue_size(&s->u.s) == 0;
}

/*
** Queues what uv_try_write did not take of the strings at 'first'..
** 'last' ('skip' bytes of the first already went).  Returns 0 or a
** libuv error.
*/
static int queue_write(lua_State *L, loom_stream *s, int first, int last,
                       size_t skip) {
  uv_buf_t bufs[MAX_BUFS];
  write_req *w = malloc(sizeof *w);
  loom_host *H = shost(L, s);
  int i, n = 0, r;
  if (w == NULL) return UV_ENOMEM;
  w->s = s;
  w->chunk = NULL;
  w->nrefs = 0;
  for (i = first; i <= last; i++) {
    size_t len;
    const char *p = lua_tolstring(L, i, &len);
    if (i == first) {
      p += skip;
      len -= skip;
    }
    if (len == 0) continue;
    bufs[n] = uv_buf_init((char *)p, (unsigned)len);
    lua_pushvalue(L, i);
    lua_xmove(L, H->mainL, 1);
    w->refs[w->nrefs++] = luaL_ref(H->mainL, LUA_REGISTRYINDEX);
    n++;
  }
  if (n == 0) {
    free(w);
    return 0;
  }
  r = uv_write(&w->req, &s->u.s, bufs, (unsigned)n, write_cb);
  if (r != 0) {
    for (i = 0; i < w->nrefs; i++)
      luaL_unref(H->mainL, LUA_REGISTRYINDEX, w->refs[i]);
    free(w);
    return r;
  }
  link_write(s, w);
  return 0;
}

/*
** Sends the 'n' bytes of 'chunk' (malloc'd; taken, freed here or once
** written): first to the kernel when nothing is queued, the rest queued
** from the chunk itself.  Needs no Lua state, so a closing stream's
** hook may send too.  Returns 0 or a libuv error.
*/
/*
** Hands what it can of p[0, n) to the kernel at once, when nothing is
** queued before it: the bytes taken (0 when it must queue), or an error.
** The hook's way to send without a copy when the socket keeps up.
*/
int loom__stream_try(loom_stream *s, const char *p, size_t n) {
  uv_buf_t b;
  int r;
  if (!idle(s) || n == 0) return 0;
  b = uv_buf_init((char *)p, (unsigned)n);
  r = uv_try_write(&s->u.s, &b, 1);
  if (r == UV_EAGAIN || r == UV_ENOSYS) return 0;
  return r;
}

/*
** Queues the malloc'd 'chunk' of 'n' bytes after what is queued, taking
** it (freed once written, or now on a failure).  The hook tries
** loom__stream_try first: what is left here is what the kernel did not
** take, so it is not offered again.
*/
int loom__stream_send(loom_stream *s, char *chunk, size_t n) {
  write_req *w;
  uv_buf_t b;
  int r;
  if (n == 0) {
    free(chunk);
    return 0;
  }
  w = malloc(sizeof *w);
  if (w == NULL) {
    free(chunk);
    return UV_ENOMEM;
  }
  w->s = s;
  w->chunk = chunk;
  w->nrefs = 0;
  b = uv_buf_init(chunk, (unsigned)n);
  r = uv_write(&w->req, &s->u.s, &b, 1, write_cb);
  if (r != 0) {
    free(chunk);
    free(w);
    return r;
  }
  link_write(s, w);
  return 0;
}

/*
** Writes p[0, n) to 's' at once, without a Lua state and without
** waiting: through its hook, else to the kernel, what it does not take
** queued (a copy).  For writers that cannot suspend (the log).  Returns
** 0 or a libuv error.
*/
int loom__stream_put(loom_stream *s, const char *p, size_t n) {
  char *rest;
  int r;
  if (s->closed) return UV_ECANCELED;
  if (s->werr) return s->werr;
  if (s->hook != NULL) return s->hook->output(s, p, n);
  r = loom__stream_try(s, p, n);
  if (r < 0 || (size_t)r == n) return r < 0 ? r : 0;
  rest = malloc(n - (size_t)r);
  if (rest == NULL) return UV_ENOMEM;
  memcpy(rest, p + r, n - (size_t)r);
  return loom__stream_send(s, rest, n - (size_t)r);
}

/* Writes the strings at 2..top through the hook. */
static int write_hook(lua_State *L, loom_stream *s) {
  int top = lua_gettop(L), i, r = 0;
  for (i = 2; i <= top && r == 0; i++) {
    size_t len;
    const char *p = lua_tolstring(L, i, &len);
    if (len > 0) r = s->hook->output(s, p, len);
  }
  return r;
}

/* Writes the strings at 2..top; returns 0 or a libuv error. */
static int write_all(lua_State *L, loom_stream *s) {
  int top = lua_gettop(L), i, first = 2;
  for (i = 2; i <= top; i++) {
    if (lua_type(L, i) != LUA_TSTRING && lua_type(L, i) != LUA_TNUMBER)
      loom__typeerror(L, i, "stream:write", "string");
    lua_tostring(L, i);  /* numbers become strings in place */
  }
  if (s->hook != NULL) return write_hook(L, s);
  while (first <= top) {
    int last = first + MAX_BUFS - 1 > top ? top : first + MAX_BUFS - 1;
    size_t skip = 0;
    if (idle(s)) {
      /* nothing queued: try to hand the data to the kernel at once */
      uv_buf_t bufs[MAX_BUFS];
      size_t total = 0, len;
      int j, n = 0, r;
      for (j = first; j <= last; j++) {
        const char *p = lua_tolstring(L, j, &len);
        bufs[n++] = uv_buf_init((char *)p, (unsigned)len);
        total += len;
      }
      r = uv_try_write(&s->u.s, bufs, (unsigned)n);
      if (r < 0 && r != UV_EAGAIN && r != UV_ENOSYS) return r;
      if (r > 0) {
        size_t done = (size_t)r;
        if (done == total) {
          first = last + 1;
          continue;
        }
        for (j = first; j <= last; j++) {  /* where the rest begins */
          lua_tolstring(L, j, &len);
          if (done < len) break;
          done -= len;
          first++;
        }
        skip = done;
      }
    }
    {
      int r = queue_write(L, s, first, last, skip);
      if (r != 0) return r;
    }
    first = last + 1;
  }
  return 0;
}

static int write_k(lua_State *L, int status, lua_KContext ctx);

/* Waits while more than the high-water mark is queued. */
static int write_wait(lua_State *L, loom_stream *s) {
  if (s->closed) return write_end(s, fail_closed(L));
  if (s->werr)
    return write_end(s, loom__stream_fail(L, s, "write to", s->werr));
  if (loom__stream_queued(s) > s->hwm) {
    loom_task *t = loom__enter(L, shost(L, s), "stream:write");
    if (write_due(L, s, "write to") != 0) return 3;  /* timed out */
    loom__list_wait(&s->writers, t);
    return loom__wait(L, write_k, (lua_KContext)0);
  }
  lua_pushboolean(L, 1);
  return write_end(s, 1);
}

static int write_k(lua_State *L, int status, lua_KContext ctx) {
  loom_stream *s = io_resumed(L, 1);
  (void)status; (void)ctx;
  if (s == NULL) return fail_closed(L);
  lua_settop(L, 2);
  return write_wait(L, s);
}

#define LOST_WRITES_WARN 5  /* writes to a lost peer that debug mode reports */

/*
** Debug mode: 's' is written although its peer went away (EPIPE,
** ECONNRESET) and a write already said so.  One or two are a race
** between writers; more mean that nobody looks at what stream:write
** returns (a handler that keeps feeding a lost client), reported once
** per stream, at the LOST_WRITES_WARN-th, as asyncio does at its 5th.
*/
static void lost_write(lua_State *L, loom_stream *s) {
  if ((s->werr != UV_EPIPE && s->werr != UV_ECONNRESET)
      || s->lost_writes > LOST_WRITES_WARN
      || ++s->lost_writes < LOST_WRITES_WARN)
    return;
  s->lost_writes = LOST_WRITES_WARN + 1;  /* reported */
  luaL_traceback(L, L, NULL, 1);
  lua_pushfstring(L, "stream to %s written %d times after its peer went "
                     "away (%s): nobody looks at what stream:write returns",
                  s->name, LOST_WRITES_WARN, uv_err_name(s->werr));
  loom__warn(host_of(s), lua_tostring(L, -1), lua_tostring(L, -2));
  lua_pop(L, 2);
}

/* s:write(data, ...) (suspends while over the high-water mark) */
static int s_write(lua_State *L) {
  loom_stream *s = io_stream(L, "stream:write");
  int r;
  if (s == NULL || s->closed) return fail_closed(L);
  if (s->werr) {
    if (host_of(s)->debug) lost_write(L, s);
    return loom__stream_fail(L, s, "write to", s->werr);
  }
  if (s->shut) return loom__fail(L, "write to", s->name, UV_EPIPE);
  r = write_all(L, s);
  if (r != 0) {
    /* EBUSY: the hook takes no data yet (its handshake is under way),
    ** which does not end the stream's writes */
    if (s->werr == 0 && r != UV_EBUSY) s->werr = r;
    return loom__stream_fail(L, s, "write to", r);
  }
  write_begin(L, s);
  return write_wait(L, s);
}

static int flush_k(lua_State *L, int status, lua_KContext ctx);

static int flush_body(lua_State *L, loom_stream *s) {
  if (s->closed) return write_end(s, fail_closed(L));
  if (s->werr)
    return write_end(s, loom__stream_fail(L, s, "write to", s->werr));
  if (s->pending > 0 || loom__stream_queued(s) > 0) {
    loom_task *t = loom__enter(L, shost(L, s), "stream:flush");
    if (write_due(L, s, "flush to") != 0) return 3;  /* timed out */
    loom__list_wait(&s->writers, t);
    return loom__wait(L, flush_k, (lua_KContext)0);
  }
  lua_pushboolean(L, 1);
  return write_end(s, 1);
}

static int flush_k(lua_State *L, int status, lua_KContext ctx) {
  loom_stream *s = io_resumed(L, 1);
  (void)status; (void)ctx;
  if (s == NULL) return fail_closed(L);
  lua_settop(L, 2);
  return flush_body(L, s);
}

/* s:flush() (suspends until everything written went to the kernel) */
static int s_flush(lua_State *L) {
  loom_stream *s = io_stream(L, "stream:flush");
  lua_settop(L, 1);
  if (s == NULL) return fail_closed(L);
  write_begin(L, s);
  return flush_body(L, s);
}

/* }==================================================================== */


/* {====================================================================
** The rest
** ===================================================================== */

typedef struct {
  uv_shutdown_t req;
  loom_call *call;
} shutdown_req;

static int push_shutdown(lua_State *L, void *ud) {
  intptr_t status = (intptr_t)ud;
  if (L == NULL) return 0;
  if (status < 0) return loom__fail(L, "shutdown", NULL, (int)status);
  lua_pushboolean(L, 1);
  return 1;
}

static void shutdown_cb(uv_shutdown_t *req, int status) {
  shutdown_req *r = (shutdown_req *)req;
  loom_call_complete(r->call, push_shutdown, (void *)(intptr_t)status);
  loom_call_release(r->call);
  free(r);
}

/* s:shutdown() (suspends): end of writes, after the pending ones */
static int s_shutdown(lua_State *L) {
  loom_stream *s = loom__checkhandle_as(L, 1, &stream_class,
                                        "stream:shutdown");
  shutdown_req *r;
  int err;
  loom__current(L, shost(L, s), "stream:shutdown");
  if (s->shut) {
    lua_pushboolean(L, 1);
    return 1;
  }
  loom__enter(L, shost(L, s), "stream:shutdown");
  r = malloc(sizeof *r);
  if (r == NULL) return loom__nomem(L);
  /* the hook's end (TLS's close_notify) goes before the socket's */
  err = s->hook != NULL && s->werr == 0 ? s->hook->finish(s) : 0;
  if (err != 0) {
    free(r);
    return loom__stream_fail(L, s, "shutdown of", err);
  }
  err = uv_shutdown(&r->req, &s->u.s, shutdown_cb);
  if (err != 0) {
    free(r);
    return loom__fail(L, "shutdown of", s->name, err);
  }
  s->shut = 1;
  r->call = loom_call_new(L);
  return loom_call_await(L, r->call);
}

/* s:close(), also __close and __gc; harmless the second time */
/* Pushes host, port (or the path of a Unix socket). */
static int push_addr(lua_State *L, loom_stream *s, int peer) {
  struct sockaddr_storage ss;
  int len = sizeof ss, r;
  char host[INET6_ADDRSTRLEN];
  if (s->kind == LOOM_STREAM_PIPE) {
    char path[1024];
    size_t plen = sizeof path;
    r = peer ? uv_pipe_getpeername(&s->u.pipe, path, &plen)
             : uv_pipe_getsockname(&s->u.pipe, path, &plen);
    if (r != 0) return loom__fail(L, peer ? "peer of" : "address of",
                                  s->name, r);
    lua_pushlstring(L, path, plen);
    return 1;
  }
  r = peer ? uv_tcp_getpeername(&s->u.tcp, (struct sockaddr *)&ss, &len)
           : uv_tcp_getsockname(&s->u.tcp, (struct sockaddr *)&ss, &len);
  if (r != 0) return loom__fail(L, peer ? "peer of" : "address of",
                                s->name, r);
  return loom__push_sockaddr(L, (struct sockaddr *)&ss, host);
}

static int s_peer(lua_State *L) {
  return push_addr(L, loom__checkhandle_as(L, 1, &stream_class,
                                           "stream:peer"), 1);
}

static int s_address(lua_State *L) {
  return push_addr(L, loom__checkhandle_as(L, 1, &stream_class,
                                           "stream:address"), 0);
}

static int s_nodelay(lua_State *L) {
  loom_stream *s = loom__checkhandle_as(L, 1, &stream_class,
                                        "stream:nodelay");
  int r;
  if (s->kind != LOOM_STREAM_TCP)
    return loom__errorf(L, "stream:nodelay: not a TCP stream");
  r = uv_tcp_nodelay(&s->u.tcp, lua_toboolean(L, 2));
  if (r != 0) return loom__fail(L, "nodelay on", s->name, r);
  lua_pushboolean(L, 1);
  return 1;
}

static int s_keepalive(lua_State *L) {
  loom_stream *s = loom__checkhandle_as(L, 1, &stream_class,
                                        "stream:keepalive");
  int on = lua_toboolean(L, 2), r;
  lua_Integer delay = loom__optinteger(L, 3, "stream:keepalive", 60);
  if (s->kind != LOOM_STREAM_TCP)
    return loom__errorf(L, "stream:keepalive: not a TCP stream");
  if (delay <= 0)
    loom__argerror(L, 3, "stream:keepalive", "delay must be positive");
  r = uv_tcp_keepalive(&s->u.tcp, on, (unsigned)delay);
  if (r != 0) return loom__fail(L, "keepalive on", s->name, r);
  lua_pushboolean(L, 1);
  return 1;
}

/*
** Field 'k' of the options at 2: a limit in bytes, a positive integer
** (there is no "no limit"); 'def' when the field is absent.
*/
static size_t limit_field(lua_State *L, const char *k, size_t def) {
  lua_Integer n;
  int isint;
  if (lua_getfield(L, 2, k) == LUA_TNIL) {
    lua_pop(L, 1);
    return def;
  }
  n = lua_tointegerx(L, -1, &isint);
  if (!isint || n <= 0 || lua_type(L, -1) != LUA_TNUMBER) {
    const char *got = lua_type(L, -1) == LUA_TNUMBER
                      ? loom__shownumber(L, -1) : luaL_typename(L, -1);
    loom__argerror(L, 2, "stream:limits", lua_pushfstring(L,
                   "%s must be a positive integer, got %s", k, got));
  }
  lua_pop(L, 1);
  return (size_t)n;
}

/* s:limits{high_water = , line = } : the stream's limits (bytes) */
static int s_limits(lua_State *L) {
  loom_stream *s = loom__checkhandle_as(L, 1, &stream_class,
                                        "stream:limits");
  if (!lua_isnoneornil(L, 2)) {
    size_t hwm, line;
    loom__checktype(L, 2, "stream:limits", LUA_TTABLE);
    hwm = limit_field(L, "high_water", s->hwm);
    line = limit_field(L, "line", s->line_limit);
    s->hwm = hwm;  /* both checked before either changes */
    s->line_limit = line;
  }
  lua_pushinteger(L, (lua_Integer)s->hwm);
  lua_pushinteger(L, (lua_Integer)s->line_limit);
  return 2;
}

static const luaL_Reg methods[] = {
  {"read", s_read},
  {"read_exactly", s_read_exactly},
  {"read_line", s_read_line},
  {"read_until", s_read_until},
  {"read_all", s_read_all},
  {"write", s_write},
  {"flush", s_flush},
  {"shutdown", s_shutdown},
  {"peer", s_peer},
  {"address", s_address},
  {"nodelay", s_nodelay},
  {"keepalive", s_keepalive},
  {"limits", s_limits},
  {"timeout", s_timeout},
  {NULL, NULL}
};

static const loom_class stream_class = {
  .name = LOOM_STREAM_MT,
  .methods = methods,
  .close = stream_close_h,
  .describe = stream_describe
};

void loom__stream_open(lua_State *L) {
  loom__class_register(L, &stream_class);
}

/* }==================================================================== */
