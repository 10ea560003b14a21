/*
** stdio.c: the standard streams.  loom.stdin, loom.stdout and
** loom.stderr are ordinary Streams (stream.c), made on first use, each
** on the kind of handle its file descriptor asks for, as Node's
** process.stdin picks: a terminal, a pipe or socket, or a file.
**
** Input.  A terminal is a uv_tty_t (libuv opens the terminal anew, so
** the non-blocking mode it sets is not the shell's), and stdin:raw(on)
** switches its raw mode.  A pipe is a uv_pipe_t on a description of
** its own, opened again through /proc/self/fd: libuv makes its
** descriptor non-blocking, and on fd 0 itself that would reach C stdio
** and the process at the other end.  A socket, which cannot be opened
** again, is read with recv's MSG_DONTWAIT when a uv_poll_t says it is
** readable, its description left blocking.  A file (or anything else)
** is read on libuv's thread pool, so a read never blocks the loop.  Standard
** input reads only while a task waits for it: it never takes more of
** the input than the script asks for, and never keeps the loop alive.
**
** Output goes through a *sink*, the one writer of its descriptor that
** the Stream, the log (log.c) and print share, so that none cuts into
** another's bytes.  On a pipe, the sink writes at once what the kernel
** takes, to a description of its own set non-blocking, and queues the
** rest in its own buffer, written by the loop when the pipe is writable
** (a uv_poll_t); on a socket, with send's MSG_DONTWAIT, the description
** left blocking.  Because the queue is its own (not libuv's), it can be
** written out synchronously at any time: when the host closes, at exit,
** before the binary's Ctrl-C exit and on SIGTERM, so nothing queued is
** lost.  To a terminal or a file, and to a pipe when /proc cannot
** give a description of its own, the sink writes synchronously, as
** Node's stdio does there.
**
** print, io.write and file:write on io.stdout and io.stderr keep their
** order against the sinks: C stdio's buffer is flushed before a sink
** writes, and while a sink has bytes queued they are written to the
** sink, behind them.  Terminal output is bracketed by H->tty_guard,
** which a line editor sets to take its prompt away and redraw it.
*/
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

#define READ_CHUNK (64 * 1024)
#define ROUTE_LIMIT (1024 * 1024)  /* queued bytes that make print wait */

struct loom_sink {
  int fd;
  unsigned own : 1;         /* 'fd' is the sink's own: closed with it */
  unsigned async : 1;       /* non-blocking: queued, written by the loop */
  unsigned sock : 1;        /* a socket: send(MSG_DONTWAIT) */
  unsigned tty : 1;         /* a terminal: H->tty_guard around writes */
  unsigned broken : 1;      /* a write failed (EPIPE): nothing more goes */
  unsigned polling : 1;
  unsigned listed : 1;      /* on the list of sinks with bytes queued */
  int err;                  /* why it broke */
  loom_host *H;
  FILE *cfile;              /* C stdio on the same file: flushed first */
  char *q;                  /* queued bytes: q[head, head+len) */
  size_t head, len, cap;
  uv_poll_t *poll;          /* malloc'd: libuv owns it until closed */
  loom_stream *s;           /* its Stream (loom.stdout), or NULL */
  void (*drained)(loom_sink *k, void *ud);  /* the queue emptied */
  void *drained_ud;
  loom_sink *gnext, *gprev;
};

/*
** A host's standard streams: one handle, so that the host closes (and
** drains) them together.  'ref' holds the Streams made so far.
*/
typedef struct sock_reader sock_reader;

typedef struct loom_stdio {
  loom_handle base;
  loom_sink *sink[3];       /* 1: stdout, 2: stderr */
  sock_reader *in;          /* standard input on a socket, or NULL */
  int ref[3];               /* registry: the Streams */
  int term;                 /* SIGTERM's default is set */
} loom_stdio;

/* Every sink with bytes queued, in the process, for the exit handler. */
static pthread_mutex_t sinks_lock = PTHREAD_MUTEX_INITIALIZER;
static loom_sink *queued_sinks;
static pthread_once_t exit_once = PTHREAD_ONCE_INIT;
static int fd0_flags = -1;  /* fd 0's flags before stdin was made */


/* {====================================================================
** Writing, synchronously and not
** ===================================================================== */

/* Writes all of p[0, n) to 'fd', waiting as long as it takes. */
static int write_fully(int fd, const char *p, size_t n) {
  while (n > 0) {
    ssize_t r = write(fd, p, n);
    if (r >= 0) {
      p += r;
      n -= (size_t)r;
    }
    else if (errno == EAGAIN || errno == EWOULDBLOCK) {
      struct pollfd pfd = {fd, POLLOUT, 0};
      poll(&pfd, 1, -1);
    }
    else if (errno != EINTR) return -errno;
  }
  return 0;
}

static void list_queued(loom_sink *k, int on) {
  if ((unsigned)on == k->listed) return;
  pthread_mutex_lock(&sinks_lock);
  if (on) {
    k->gprev = NULL;
    k->gnext = queued_sinks;
    if (queued_sinks != NULL) queued_sinks->gprev = k;
    queued_sinks = k;
  }
  else {
    if (k->gprev != NULL) k->gprev->gnext = k->gnext;
    else queued_sinks = k->gnext;
    if (k->gnext != NULL) k->gnext->gprev = k->gprev;
  }
  k->listed = on != 0;
  pthread_mutex_unlock(&sinks_lock);
}

static void sink_broke(loom_sink *k, int err) {
  k->broken = 1;
  k->err = err;
  k->head = k->len = 0;
  list_queued(k, 0);
  if (k->polling) uv_poll_stop(k->poll);
  k->polling = 0;
  if (k->s != NULL) loom__stream_drained(k->s, err);
}

/* The queue emptied: the log's notice, then the Stream's writers. */
static void sink_emptied(loom_sink *k) {
  list_queued(k, 0);
  if (k->drained != NULL) k->drained(k, k->drained_ud);
  if (k->len == 0 && k->polling) {
    uv_poll_stop(k->poll);
    k->polling = 0;
  }
}

/* One write that never waits. */
static ssize_t try_write(loom_sink *k, const char *p, size_t n) {
  if (k->sock) return send(k->fd, p, n, MSG_DONTWAIT | MSG_NOSIGNAL);
  return write(k->fd, p, n);
}

/* Writes what the kernel takes of the queue; 0, or an error. */
static int sink_pump(loom_sink *k) {
  while (k->len > 0) {
    ssize_t r = try_write(k, k->q + k->head, k->len);
    if (r < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
      return -errno;
    }
    k->head += (size_t)r;
    k->len -= (size_t)r;
  }
  k->head = 0;
  return 0;
}

static void sigterm_default(loom_host *H);

static void poll_cb(uv_poll_t *h, int status, int events) {
  loom_sink *k = h->data;
  int r = status < 0 ? status : sink_pump(k);
  (void)events;
  if (r < 0) {
    sink_broke(k, r);
    return;
  }
  if (k->len == 0) sink_emptied(k);
  if (k->s != NULL) loom__stream_drained(k->s, 0);
}

/* Appends p[0, n) to the queue; starts the loop's writes. */
static int sink_queue(loom_sink *k, const char *p, size_t n) {
  if (k->head + k->len + n > k->cap) {
    if (k->head > 0) {
      memmove(k->q, k->q + k->head, k->len);
      k->head = 0;
    }
    if (k->len + n > k->cap) {
      size_t cap = k->cap ? k->cap : 16 * 1024;
      char *q;
      while (cap < k->len + n) cap *= 2;
      q = realloc(k->q, cap);
      if (q == NULL) return UV_ENOMEM;
      k->q = q;
      k->cap = cap;
    }
  }
  memcpy(k->q + k->head + k->len, p, n);
  k->len += n;
  if (!k->polling && k->poll != NULL
      && uv_poll_start(k->poll, UV_WRITABLE, poll_cb) == 0)
    k->polling = 1;
  list_queued(k, 1);
  sigterm_default(k->H);
  return 0;
}

/*
** Writes p[0, n) through 'k', at once or queued (an asynchronous sink
** never waits).  With 'bound' > 0, refuses (UV_ENOBUFS) to queue past
** 'bound' bytes: the log drops its line instead.  Returns 0 or a libuv
** error.
*/
int loom__sink_write(loom_sink *k, const char *p, size_t n, size_t bound) {
  loom_host *H = k->H;
  int r;
  if (k->broken) return k->err;
  if (n == 0) return 0;
  if (!k->async) {
    int guard = k->tty && H != NULL && H->tty_guard != NULL;
    if (guard) H->tty_guard(H, 0);
    r = write_fully(k->fd, p, n);
    if (guard) H->tty_guard(H, 1);
    if (r < 0) sink_broke(k, r);
    return r;
  }
  if (k->len == 0) {
    ssize_t w;
    do w = try_write(k, p, n); while (w < 0 && errno == EINTR);
    if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
      sink_broke(k, -errno);
      return k->err;
    }
    if (w > 0) {
      p += w;
      n -= (size_t)w;
      bound = 0;  /* a line begun must be ended */
    }
    if (n == 0) return 0;
  }
  if (bound > 0 && k->len + n > bound) return UV_ENOBUFS;
  return sink_queue(k, p, n);
}

/* Bytes queued, not yet with the kernel. */
size_t loom__sink_queued(loom_sink *k) {
  return k->len;
}

/* What a writer that is not print writes: C stdio's bytes go first. */
static int sink_write_flushed(loom_sink *k, const char *p, size_t n) {
  if (k->cfile != NULL && k->len == 0) fflush(k->cfile);
  return loom__sink_write(k, p, n, 0);
}

/*
** Writes the queue out, waiting as long as it takes (the reader is
** slow, not gone: a reader that left breaks the pipe).  The log's
** notice of dropped lines, which it adds once the queue is empty, goes
** too.
*/
static void sink_drain(loom_sink *k) {
  while (k->len > 0 && !k->broken) {
    int r = write_fully(k->fd, k->q + k->head, k->len);
    if (r < 0) {
      sink_broke(k, r);
      break;
    }
    k->head = k->len = 0;
    sink_emptied(k);
  }
  if (k->polling) uv_poll_stop(k->poll);
  k->polling = 0;
}

void loom__sink_on_drained(loom_sink *k, void (*fn)(loom_sink *, void *),
                           void *ud) {
  k->drained = fn;
  k->drained_ud = ud;
}


static void poll_closed(uv_handle_t *h) {
  free(h);
}

/* Writes out what is queued and lets go of 'k'. */
void loom__sink_close(loom_sink *k) {
  sink_drain(k);
  list_queued(k, 0);
  if (k->s != NULL) k->s->hook_ud = NULL;
  if (k->poll != NULL) uv_close((uv_handle_t *)k->poll, poll_closed);
  if (k->own) close(k->fd);
  free(k->q);
  free(k);
}

/*
** A description of its own of the pipe on 'fd' (for 'flags', O_RDONLY
** or O_WRONLY), opened again through /proc and non-blocking; -1 when
** there is none (not a FIFO, no /proc, or a pipe nobody reads).
*/
static int reopen_pipe(int fd, int flags) {
  char path[32];
  struct stat a, b;
  int nfd;
  snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
  if (fstat(fd, &a) != 0 || !S_ISFIFO(a.st_mode)) return -1;
  nfd = open(path, flags | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
  if (nfd < 0) return -1;
  if (fstat(nfd, &b) != 0 || a.st_dev != b.st_dev || a.st_ino != b.st_ino) {
    close(nfd);
    return -1;
  }
  return nfd;
}

/* A duplicate of 'fd' when it is a socket, else -1. */
static int dup_socket(int fd) {
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISSOCK(st.st_mode)) return -1;
  return fcntl(fd, F_DUPFD_CLOEXEC, 3);
}

/*
** A poll handle (malloc'd, in '*pp') on 'fd', whose description keeps
** its flags: uv_poll_init makes it non-blocking, which a socket's
** description, shared with fd 0, 1 or 2, must not become.
*/
static int poll_new(loom_host *H, uv_poll_t **pp, int fd) {
  uv_poll_t *p = malloc(sizeof *p);
  int flags = fcntl(fd, F_GETFL), r;
  if (p == NULL) return UV_ENOMEM;
  r = uv_poll_init(H->loop, p, fd);
  if (flags >= 0) fcntl(fd, F_SETFL, flags);
  if (r != 0) {
    free(p);
    return r;
  }
  *pp = p;
  return 0;
}

/*
** A sink on 'fd' ('own': the sink closes it): asynchronous on a pipe of
** its own or on a socket, else synchronous.  NULL when memory runs out.
*/
loom_sink *loom__sink_new(loom_host *H, int fd, int own) {
  uv_handle_type type = uv_guess_handle(fd);
  loom_sink *k = calloc(1, sizeof *k);
  int afd = -1, sock = 0;
  if (k == NULL) return NULL;
  k->H = H;
  k->fd = fd;
  k->own = own != 0;
  k->tty = type == UV_TTY;
  if (type == UV_NAMED_PIPE || type == UV_TCP) {
    afd = reopen_pipe(fd, O_WRONLY);
    if (afd < 0) sock = (afd = dup_socket(fd)) >= 0;
  }
  if (afd >= 0 && poll_new(H, &k->poll, afd) == 0) {
    if (own) close(fd);
    k->fd = afd;
    k->own = k->async = 1;
    k->sock = sock != 0;
    k->poll->data = k;
  }
  else if (afd >= 0) close(afd);
  return k;
}

/* fd 0 as it was: not left non-blocking for C stdio or the parent. */
static void restore_fd0(void) {
  if (fd0_flags >= 0) fcntl(0, F_SETFL, fd0_flags);
}

/*
** The exit handler: what is queued goes out (os.exit, or the end of a
** program that did not close its host); a terminal left raw is
** restored (uv_tty_reset_mode does nothing if none ever was).
*/
static void at_exit(void) {
  for (;;) {
    loom_sink *k;
    pthread_mutex_lock(&sinks_lock);
    k = queued_sinks;
    pthread_mutex_unlock(&sinks_lock);
    if (k == NULL) break;
    sink_drain(k);  /* takes it off the list */
  }
  uv_tty_reset_mode();
  restore_fd0();
}

static void exit_register(void) {
  atexit(at_exit);
}

/* }==================================================================== */


/* {====================================================================
** The Streams' hooks
** ===================================================================== */

/* Output: the sink (its ud), which may be gone with the host. */
static int out_input(loom_stream *s, const char *p, size_t n) {
  (void)s; (void)p; (void)n;
  return 0;
}

static int out_output(loom_stream *s, const char *p, size_t n) {
  loom_sink *k = s->hook_ud;
  return k != NULL ? sink_write_flushed(k, p, n) : UV_ECANCELED;
}

static int out_finish(loom_stream *s) {
  (void)s;
  return 0;
}

static const char *out_reason(loom_stream *s, int err) {
  (void)s; (void)err;
  return NULL;
}

static void out_free(loom_stream *s) {
  loom_sink *k = s->hook_ud;
  if (k != NULL) k->s = NULL;
}

static int out_read(loom_stream *s, int on) {
  (void)s;
  return on ? UV_EBADF : 0;  /* standard output is not for reading */
}

static size_t out_queued(loom_stream *s) {
  loom_sink *k = s->hook_ud;
  return k != NULL ? k->len : 0;
}

static const loom_stream_hook out_hook = {
  out_input, out_output, out_finish, out_reason, out_free, out_read,
  out_queued
};

loom_sink *loom__stream_sink(loom_stream *s) {
  return s->hook == &out_hook ? s->hook_ud : NULL;
}

/*
** Input from a file, read on the thread pool into a buffer of its own
** (the stream's may move, or go, while a read runs), one chunk for each
** time a reader waits.
*/
typedef struct {
  uv_fs_t req;
  loom_stream *s;           /* NULL once the stream's memory went */
  int fd;
  unsigned busy : 1, on : 1;
  char buf[READ_CHUNK];
} file_reader;

static int file_submit(file_reader *fr);

static void file_read_cb(uv_fs_t *req) {
  file_reader *fr = req->data;
  loom_stream *s = fr->s;
  ssize_t n = req->result;
  size_t room;
  char *p;
  uv_fs_req_cleanup(req);
  fr->busy = 0;
  if (s == NULL) {
    free(fr);
    return;
  }
  if (n > 0) {
    p = loom__stream_room(s, &room);
    if (p == NULL) n = UV_ENOMEM;
    else {
      memcpy(p, fr->buf, (size_t)n);
      s->len += (size_t)n;
    }
  }
  loom__stream_got(s, n > 0 ? 0 : n == 0 ? UV_EOF : (int)n);
  /* (a reader that ran above may have submitted the next read itself) */
  if (fr->s != NULL && fr->on && !fr->busy && s->reading && !s->closed)
    if (file_submit(fr) != 0) loom__stream_got(s, UV_EIO);
}

static int file_submit(file_reader *fr) {
  loom_host *H = loom__handle_host(&fr->s->base);
  uv_buf_t b = uv_buf_init(fr->buf, sizeof fr->buf);
  int r;
  if (H == NULL) return UV_ECANCELED;
  fr->req.data = fr;
  r = uv_fs_read(H->loop, &fr->req, fr->fd, &b, 1, -1, file_read_cb);
  if (r == 0) fr->busy = 1;
  return r;
}

static int file_read(loom_stream *s, int on) {
  file_reader *fr = s->hook_ud;
  fr->on = on != 0;
  if (!on || fr->busy) return 0;
  return file_submit(fr);
}

static int file_output(loom_stream *s, const char *p, size_t n) {
  file_reader *fr = s->hook_ud;
  return write_fully(fr->fd, p, n);
}

static void file_free(loom_stream *s) {
  file_reader *fr = s->hook_ud;
  if (fr->busy) fr->s = NULL;  /* its callback frees it */
  else free(fr);
}

static const loom_stream_hook file_hook = {
  out_input, file_output, out_finish, out_reason, file_free, file_read,
  NULL
};

/*
** Input from a socket: a poll handle on a duplicate, read with recv's
** MSG_DONTWAIT.  The host's stdio handle owns it (and closes it), since
** libuv must close the poll handle before the loop does; the stream
** only lets go of it.
*/
struct sock_reader {
  int fd;
  uv_poll_t *poll;
  loom_stream *s;           /* NULL once the stream's memory went */
};

static void sock_read_cb(uv_poll_t *h, int status, int events) {
  sock_reader *sr = h->data;
  loom_stream *s = sr->s;
  size_t room;
  char *p;
  ssize_t n;
  (void)events;
  if (s == NULL) return;
  if (status < 0) {
    loom__stream_got(s, status);
    return;
  }
  p = loom__stream_room(s, &room);
  if (p == NULL) {
    loom__stream_got(s, UV_ENOMEM);
    return;
  }
  do n = recv(sr->fd, p, room, MSG_DONTWAIT); while (n < 0 && errno == EINTR);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
  if (n > 0) s->len += (size_t)n;
  loom__stream_got(s, n > 0 ? 0 : n == 0 ? UV_EOF : -errno);
}

static int sock_read(loom_stream *s, int on) {
  sock_reader *sr = s->hook_ud;
  if (sr == NULL) return on ? UV_ECANCELED : 0;
  if (!on) return uv_poll_stop(sr->poll);
  return uv_poll_start(sr->poll, UV_READABLE | UV_DISCONNECT, sock_read_cb);
}

static int sock_output(loom_stream *s, const char *p, size_t n) {
  sock_reader *sr = s->hook_ud;
  return sr != NULL ? write_fully(sr->fd, p, n) : UV_ECANCELED;
}

static void sock_free(loom_stream *s) {
  sock_reader *sr = s->hook_ud;
  if (sr != NULL) sr->s = NULL;
}

static const loom_stream_hook sock_hook = {
  out_input, sock_output, out_finish, out_reason, sock_free, sock_read,
  NULL
};

static void sock_reader_close(sock_reader *sr) {
  if (sr->s != NULL) sr->s->hook_ud = NULL;
  uv_close((uv_handle_t *)sr->poll, poll_closed);
  close(sr->fd);
  free(sr);
}

/* }==================================================================== */


/* {====================================================================
** The standard streams
** ===================================================================== */

static const loom_class stdio_class;

/* The host's standard streams, made on first use; NULL: no memory. */
static loom_stdio *stdio_of(loom_host *H) {
  loom_stdio *io = H->stdio;
  if (io != NULL || H->closed) return io;
  io = loom__handle_alloc(H, &stdio_class, sizeof *io);
  if (io == NULL) return NULL;
  io->ref[0] = io->ref[1] = io->ref[2] = LUA_NOREF;
  H->stdio = io;
  pthread_once(&exit_once, exit_register);
  return io;
}

/*
** The sink of standard output (fd 1) or error (fd 2), made on first
** use; NULL when memory runs out or the host is closed.
*/
loom_sink *loom__stdio_sink(loom_host *H, int fd) {
  loom_stdio *io = stdio_of(H);
  loom_sink *k;
  if (io == NULL) return NULL;
  if (io->sink[fd] != NULL) return io->sink[fd];
  k = loom__sink_new(H, fd, 0);
  if (k == NULL) return NULL;
  k->cfile = fd == 1 ? stdout : stderr;
  io->sink[fd] = k;
  return k;
}

static const char *const std_names[] = {"stdin", "stdout", "stderr"};

/* Standard input on a terminal: a uv_tty_t; 0 or a libuv error. */
static int open_tty(loom_host *H, loom_stream *s) {
  int r = uv_tty_init(H->loop, &s->u.tty, 0, 1);
  if (r != 0) {
    uv_pipe_init(H->loop, &s->u.pipe, 0);
    s->kind = LOOM_STREAM_PIPE;
  }
  s->u.h.data = s;
  return r;
}

/* Standard input on a socket: see sock_reader. */
static int open_socket(loom_host *H, loom_stream *s, int fd) {
  loom_stdio *io = H->stdio;
  sock_reader *sr = calloc(1, sizeof *sr);
  int r = sr != NULL ? poll_new(H, &sr->poll, fd) : UV_ENOMEM;
  if (r != 0) {
    free(sr);
    close(fd);
    return r;
  }
  sr->fd = fd;
  sr->s = s;
  sr->poll->data = sr;
  if (io->in != NULL) sock_reader_close(io->in);  /* a stdin closed */
  io->in = sr;
  s->hook = &sock_hook;
  s->hook_ud = sr;
  return 0;
}

/*
** Standard input on a pipe: a uv_pipe_t on a description of its own;
** on a socket, see above; where /proc is missing, a uv_pipe_t on a
** duplicate, whose description libuv then makes non-blocking (as
** Node's does), restored at exit.
*/
static int open_pipe(loom_host *H, loom_stream *s) {
  int fd = reopen_pipe(0, O_RDONLY);
  int r;
  if (fd < 0 && (fd = dup_socket(0)) >= 0) return open_socket(H, s, fd);
  if (fd < 0) fd = fcntl(0, F_DUPFD_CLOEXEC, 3);
  if (fd < 0) return -errno;
  r = uv_pipe_open(&s->u.pipe, fd);
  if (r != 0) close(fd);
  return r;
}

/* Standard input from a file (or anything else): read on the pool. */
static int open_file(loom_stream *s) {
  file_reader *fr = calloc(1, sizeof *fr);
  if (fr == NULL) return UV_ENOMEM;
  fr->s = s;
  fr->fd = 0;
  s->hook = &file_hook;
  s->hook_ud = fr;
  return 0;
}

/* Pushes a new Stream for standard input. */
static void new_stdin(lua_State *L, loom_host *H) {
  loom_stream *s;
  int r;
  if (fd0_flags < 0) fd0_flags = fcntl(0, F_GETFL);
  switch (uv_guess_handle(0)) {
    case UV_TTY:
      s = loom__stream_new(L, H, LOOM_STREAM_TTY, "stdin");
      r = open_tty(H, s);
      break;
    case UV_NAMED_PIPE: case UV_TCP:
      s = loom__stream_new(L, H, LOOM_STREAM_PIPE, "stdin");
      r = open_pipe(H, s);
      break;
    default:
      s = loom__stream_new(L, H, LOOM_STREAM_PIPE, "stdin");
      r = open_file(s);
  }
  if (r != 0) s->rerr = r;  /* reads fail with it */
  s->weak = 1;
  s->base.lasting = 1;  /* not one a script forgot to close */
}

/* Pushes a new Stream for standard output or error, on its sink. */
static void new_stdout(lua_State *L, loom_host *H, int fd) {
  loom_sink *k = loom__stdio_sink(H, fd);
  loom_stream *s = loom__stream_new(L, H, LOOM_STREAM_PIPE, std_names[fd]);
  if (k == NULL) loom__nomem(L);
  s->hook = &out_hook;
  s->hook_ud = k;
  s->weak = 1;
  s->base.lasting = 1;
  k->s = s;
}

/* core.stdio(fd): the Stream of fd 0, 1 or 2, the same one each time */
static int l_stdio(lua_State *L) {
  loom_host *H = loom__host(L);
  int fd = (int)luaL_checkinteger(L, 1);
  loom_stdio *io;
  luaL_argcheck(L, fd >= 0 && fd <= 2, 1, "0, 1 or 2 expected");
  io = stdio_of(H);
  if (io == NULL) return loom__nomem(L);
  if (io->ref[fd] != LUA_NOREF) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, io->ref[fd]);
    return 1;
  }
  if (fd == 0) new_stdin(L, H);
  else new_stdout(L, H, fd);
  lua_pushvalue(L, -1);
  io->ref[fd] = luaL_ref(L, LUA_REGISTRYINDEX);
  return 1;
}

/*
** The host closes: what the sinks queued goes out first.  The Streams
** are handles of their own, closed with the host.
*/
static void stdio_close_h(loom_handle *h, int why) {
  loom_stdio *io = (loom_stdio *)h;
  loom_host *H = loom__handle_host(h);
  int i;
  (void)why;
  loom__handle_unlink(h);
  for (i = 1; i <= 2; i++)
    if (io->sink[i] != NULL) loom__sink_close(io->sink[i]);
  if (io->in != NULL) sock_reader_close(io->in);
  if (io->ref[0] != LUA_NOREF) restore_fd0();
  if (H != NULL) {
    H->stdio = NULL;
    if (!H->state_closing)
      for (i = 0; i <= 2; i++)
        luaL_unref(H->mainL, LUA_REGISTRYINDEX, io->ref[i]);
  }
  free(io);
}

static const loom_class stdio_class = {
  .name = "loom.stdio",
  .close = stdio_close_h
};

/* }==================================================================== */


/* {====================================================================
** Terminals and signals
** ===================================================================== */

/*
** SIGTERM, while something is queued or a terminal is raw: the queue
** goes out and the terminal is restored, then the process ends as
** SIGTERM ends it.  It is the host's default (loom_set_signal_fn): a
** script watching SIGTERM itself takes it over, and an embedder's own
** default stays (it may call loom_flush).
*/
static void sigterm_cb(loom_host *H, int signum, void *ud) {
  (void)ud;
  loom_flush(H);
  signal(signum, SIG_DFL);
  raise(signum);
}

static void sigterm_default(loom_host *H) {
  loom_stdio *io = H != NULL ? H->stdio : NULL;
  if (io == NULL || io->term) return;
  io->term = 1;
  if (!loom__signal_has_fn(H, SIGTERM))
    loom_set_signal_fn(H, SIGTERM, sigterm_cb, NULL);
}

/*
** stream:raw(on): a terminal's raw mode (each key as it is typed, no
** echo, no signals from the keyboard) on or off; true, or nil, msg,
** "ENOTTY" for a stream that is not a terminal.  The mode goes back
** when the stream closes, when the host closes, at exit and on SIGTERM.
*/
static int s_raw(lua_State *L) {
  loom_stream *s = loom__tostream(L, 1, "stream:raw");
  int on = lua_toboolean(L, 2), r;
  if (s == NULL) return loom__errorf(L, "attempt to use a closed stream");
  if (s->kind != LOOM_STREAM_TTY)
    return loom__fail(L, "raw mode of", s->name, UV_ENOTTY);
  if ((s->u.tty.mode == UV_TTY_MODE_RAW) == on) {
    lua_pushboolean(L, 1);
    return 1;
  }
  r = uv_tty_set_mode(&s->u.tty, on ? UV_TTY_MODE_RAW : UV_TTY_MODE_NORMAL);
  if (r != 0) return loom__fail(L, "raw mode of", s->name, r);
  if (on) sigterm_default(loom__host(L));
  lua_pushboolean(L, 1);
  return 1;
}

/* See loom.h. */
LOOM_API void loom_flush(loom_host *H) {
  loom_stdio *io = H != NULL && !H->closed ? H->stdio : NULL;
  int i;
  uv_tty_reset_mode();
  if (io == NULL) return;
  for (i = 1; i <= 2; i++)
    if (io->sink[i] != NULL) sink_drain(io->sink[i]);
}

/* }==================================================================== */


/* {====================================================================
** print, io.write and file:write
** ===================================================================== */

/*
** The sink C stdio's 'f' writes to when its bytes must go through it:
** it has bytes queued, which they must follow.  NULL otherwise.
*/
static loom_sink *busy_sink(loom_host *H, FILE *f) {
  loom_sink *k;
  if (H == NULL || H->stdio == NULL) return NULL;
  k = H->stdio->sink[f == stdout ? 1 : f == stderr ? 2 : 0];
  return k != NULL && k->len > 0 ? k : NULL;
}

/* Whether C stdio's 'f' writes to a terminal that a line editor guards. */
static int guarded(loom_host *H, FILE *f) {
  return H != NULL && H->tty_guard != NULL && isatty(fileno(f));
}

/* Queues the text on top behind 'k's bytes; pops it. */
static void route(lua_State *L, loom_sink *k) {
  size_t n;
  const char *p = lua_tolstring(L, -1, &n);
  loom__sink_write(k, p, n, 0);
  if (k->len > ROUTE_LIMIT) sink_drain(k);  /* as a blocking write waits */
  lua_pop(L, 1);
}

/* Calls the original (upvalue 2) with every argument; returns its results. */
static int call_original(lua_State *L, loom_host *H, FILE *f) {
  int n = lua_gettop(L), guard = guarded(H, f);
  lua_pushvalue(L, lua_upvalueindex(2));
  lua_insert(L, 1);
  if (guard) H->tty_guard(H, 0);
  lua_call(L, n, LUA_MULTRET);
  if (guard) {
    fflush(f);
    H->tty_guard(H, 1);
  }
  return lua_gettop(L);
}

static loom_host *box_host(lua_State *L) {
  loom_hostbox *hb = lua_touserdata(L, lua_upvalueindex(1));
  return hb->H;
}

/* print(...): as Lua's, behind what standard output has queued */
static int l_print(lua_State *L) {
  loom_host *H = box_host(L);
  loom_sink *k = busy_sink(H, stdout);
  luaL_Buffer b;
  int i, n = lua_gettop(L);
  if (k == NULL) return call_original(L, H, stdout);
  luaL_buffinit(L, &b);
  for (i = 1; i <= n; i++) {
    if (i > 1) luaL_addchar(&b, '\t');
    luaL_tolstring(L, i, NULL);
    luaL_addvalue(&b);
  }
  luaL_addchar(&b, '\n');
  luaL_pushresult(&b);
  route(L, k);
  return 0;
}

/*
** Pushes the text that file:write would write of the arguments from
** 'first', or returns 0 when one is neither a string nor a number (the
** original then raises its own error).
*/
static int write_text(lua_State *L, int first) {
  luaL_Buffer b;
  int i, n = lua_gettop(L);
  for (i = first; i <= n; i++)
    if (lua_type(L, i) != LUA_TSTRING && lua_type(L, i) != LUA_TNUMBER)
      return 0;
  luaL_buffinit(L, &b);
  for (i = first; i <= n; i++) {
    if (lua_type(L, i) == LUA_TNUMBER) {
      char num[64];
      if (lua_isinteger(L, i))
        snprintf(num, sizeof num, LUA_INTEGER_FMT, lua_tointeger(L, i));
      else snprintf(num, sizeof num, LUA_NUMBER_FMT, lua_tonumber(L, i));
      luaL_addstring(&b, num);
    }
    else {
      size_t len;
      const char *s = lua_tolstring(L, i, &len);
      luaL_addlstring(&b, s, len);
    }
  }
  luaL_pushresult(&b);
  return 1;
}

/* The C FILE of the Lua file at 'idx', or NULL. */
static FILE *file_of(lua_State *L, int idx) {
  luaL_Stream *p = luaL_testudata(L, idx, LUA_FILEHANDLE);
  return p != NULL && p->closef != NULL ? p->f : NULL;
}

/* file:write(...) (upvalue 2 the original) */
static int l_file_write(lua_State *L) {
  loom_host *H = box_host(L);
  FILE *f = file_of(L, 1);
  loom_sink *k = f != NULL ? busy_sink(H, f) : NULL;
  if (f == NULL || (k == NULL && !guarded(H, f)))
    return call_original(L, NULL, NULL);
  if (k == NULL || !write_text(L, 2)) return call_original(L, H, f);
  route(L, k);
  lua_settop(L, 1);
  return 1;
}

/* io.write(...) (upvalue 2 the original, 3 io.output) */
static int l_io_write(lua_State *L) {
  loom_host *H = box_host(L);
  loom_sink *k;
  FILE *f;
  lua_pushvalue(L, lua_upvalueindex(3));
  lua_call(L, 0, 1);  /* io.output(): the file it writes to */
  f = file_of(L, -1);
  lua_pop(L, 1);
  k = f != NULL ? busy_sink(H, f) : NULL;
  if (f == NULL || (k == NULL && !guarded(H, f)))
    return call_original(L, NULL, NULL);
  if (k == NULL || !write_text(L, 1)) return call_original(L, H, f);
  route(L, k);
  lua_pushvalue(L, lua_upvalueindex(3));
  lua_call(L, 0, 1);
  return 1;
}

static char origkey;  /* registry: the originals, for loom__stdio_restore */

/*
** Replaces 'name' in the table at 'idx' by 'fn' over its original
** (with 'extra' more upvalues on top), remembering the original.
*/
static void wrap(lua_State *L, int idx, const char *name, lua_CFunction fn,
                 int extra, int saved) {
  if (lua_getfield(L, idx, name) != LUA_TFUNCTION) {
    lua_pop(L, 1 + extra);
    return;
  }
  lua_pushvalue(L, -1);
  lua_rawsetp(L, saved, (void *)fn);  /* original, by wrapper kind */
  loom__push_box(L);
  lua_insert(L, -2);
  if (extra > 0) lua_rotate(L, -(extra + 2), -extra);  /* extras last */
  lua_pushcclosure(L, fn, 2 + extra);
  lua_setfield(L, idx, name);
}

/*
** Puts the wrappers of print, io.write and file:write in place (once
** per state), each over the function it replaces.
*/
void loom__stdio_install(lua_State *L) {
  int saved, top = lua_gettop(L);
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &origkey) == LUA_TTABLE) {
    lua_pop(L, 1);
    return;
  }
  lua_newtable(L);
  saved = lua_gettop(L);
  lua_pushglobaltable(L);
  wrap(L, saved + 1, "print", l_print, 0, saved);
  if (lua_getglobal(L, "io") == LUA_TTABLE) {
    lua_getfield(L, -1, "output");
    wrap(L, saved + 2, "write", l_io_write, 1, saved);
  }
  if (luaL_getmetatable(L, LUA_FILEHANDLE) == LUA_TTABLE
      && lua_getfield(L, -1, "__index") == LUA_TTABLE)
    wrap(L, lua_gettop(L), "write", l_file_write, 0, saved);
  lua_settop(L, saved);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &origkey);
  lua_settop(L, top);
}

/* Puts back 'name' of the table at 'idx' if it is still the wrapper. */
static void unwrap(lua_State *L, int idx, const char *name, lua_CFunction fn,
                   int saved) {
  lua_getfield(L, idx, name);
  if (lua_tocfunction(L, -1) == fn
      && lua_rawgetp(L, saved, (void *)fn) == LUA_TFUNCTION)
    lua_setfield(L, idx, name);
  else lua_pop(L, 1);
  lua_pop(L, 1);
}

/* The host closes on a state that lives on: the originals come back. */
void loom__stdio_restore(lua_State *L) {
  int saved, top = lua_gettop(L);
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &origkey) != LUA_TTABLE) {
    lua_pop(L, 1);
    return;
  }
  saved = lua_gettop(L);
  lua_pushglobaltable(L);
  unwrap(L, saved + 1, "print", l_print, saved);
  if (lua_getglobal(L, "io") == LUA_TTABLE)
    unwrap(L, saved + 2, "write", l_io_write, saved);
  lua_settop(L, saved);
  if (luaL_getmetatable(L, LUA_FILEHANDLE) == LUA_TTABLE
      && lua_getfield(L, -1, "__index") == LUA_TTABLE)
    unwrap(L, lua_gettop(L), "write", l_file_write, saved);
  lua_settop(L, top);
  lua_pushnil(L);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &origkey);
}

/* }==================================================================== */


static const luaL_Reg funcs[] = {
  {"stdio", l_stdio},
  {NULL, NULL}
};

/* core.stdio, and stream:raw among the Stream methods */
void loom__stdio_register(lua_State *L, loom_host *H) {
  (void)H;
  loom__push_box(L);
  luaL_setfuncs(L, funcs, 1);
  luaL_getmetatable(L, LOOM_STREAM_MT);
  lua_getfield(L, -1, "__index");
  loom__push_box(L);
  lua_pushcclosure(L, s_raw, 1);
  lua_setfield(L, -2, "raw");
  lua_pop(L, 2);
}
