/*
** fs.c: files (loom.fs), the C side; lua/loom/fs.lua holds the public
** functions built on these (mkdir with parents, recursive remove, dir,
** watch over subfolders).
**
** Requests run on libuv's thread pool (uv_fs_*, or a job of several
** steps) and suspend their task through a loom_call; a task that leaves
** meanwhile lets the request finish, and the result is dropped.
**
** A File keeps its own position and a read buffer.  A read the page
** cache can serve does not need a thread: it is tried on the loop
** thread with preadv2(RWF_NOWAIT), which never blocks, and only goes to
** the pool when the data must come from the disk (EAGAIN).  Writes try
** pwritev2(RWF_NOWAIT) the same way.
**
** Writes to a regular file the page cache cannot take at once (ext4
** refuses RWF_NOWAIT) are written behind: file:write queues the Lua
** string (a reference, not a copy; small writes are copied together into
** one buffer) and returns, and a worker writes the queue with one
** pwritev per run of pieces while the task goes on.  A task waits only
** when BEHIND bytes are queued.  A failure is the answer of the file's
** next call; reads, seek("end"), stat, sync and close wait for what is
** behind first.
**
** read_file reads the whole file on a worker into one buffer sized from
** fstat (so there is no chain of chunks to join), then copies it into
** the Lua string: Lua 5.4 can only make a string from a copy, so the
** file is held twice only for the moment of that copy.
**
** Failures are nil, message, code, the message naming the path:
** "open 'x.txt': no such file or directory".
*/
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "internal.h"

#define LOOM_FILE_MT    "loom.file"
#define LOOM_WATCHER_MT "loom.watcher"
#define CHUNK (64 * 1024)
#define READ_STEP (1024 * 1024)  /* read_file: most bytes of one read(2) */
#define LINE_LIMIT (64 * 1024)   /* file:read_line, as a Stream's default */
#define BEHIND (4 * 1024 * 1024) /* bytes queued before a write waits */
#define SMALL (16 * 1024)        /* writes up to this size are copied */
#define IOV_BATCH 512            /* pieces in one pwritev */



/* {====================================================================
** Requests
** ===================================================================== */

/* A write behind: a Lua string kept by 'ref', or bytes of 'own'. */
typedef struct wpiece {
  const char *p;
  size_t len;
  int64_t at;              /* its offset; -1: at the end (append) */
  int ref;                 /* LUA_NOREF for 'own' */
  char *own;               /* small writes copied together (malloc'd) */
  size_t cap;              /* of 'own' */
} wpiece;

/*
** The pieces a worker writes, and an fsync after them if 'sync'.  The
** File's finalizer (only while the state closes: a batch keeps its File
** alive) waits on 'done' for the worker before the strings go.
*/
typedef struct wbatch {
  uv_work_t work;
  struct loom_file *f;     /* NULL once the File is gone */
  lua_State *L;            /* main thread, for the pieces' refs */
  int fd;
  unsigned sync : 1;
  int err;                 /* 0 or a libuv error */
  size_t bytes;
  wpiece *v;
  size_t n;
  uv_mutex_t mu;
  uv_cond_t cv;
  int done;                /* under mu: the worker has finished */
} wbatch;

enum { WANT_ROOM, WANT_DRAIN };

typedef struct loom_file {
  int fd;                  /* -1 when closed */
  int64_t pos;             /* where the next read or write of the fd goes */
  char *buf;               /* read buffer: data at buf[start, start+len) */
  size_t start, len, cap;
  unsigned readable : 1, writable : 1, append : 1, regular : 1;
  unsigned eof : 1;
  unsigned skipline : 1;   /* the rest of an over-long line goes */
  unsigned busy : 1;       /* a request is in flight */
  unsigned no_nowait_write : 1;  /* the file system refused RWF_NOWAIT */
  unsigned sync_wanted : 1;  /* the next batch ends with an fsync */
  unsigned close_after : 1;  /* close once nothing is behind */
  char *path;              /* for messages (malloc'd) */
  /* writing behind */
  wpiece *q;               /* queued, not yet given to a worker */
  size_t qn, qcap, qbytes;
  wbatch *batch;           /* on a worker, or NULL */
  size_t behind;           /* bytes queued or on the worker */
  int werr;                /* a write behind failed: the next call says */
  int fref;                /* the File, kept while a batch runs */
  lua_State *L;            /* main thread, for 'fref' */
  loom_call *waiter;       /* the task waiting on what is behind */
  int want;                /* what it waits for: WANT_* */
  int (*then)(lua_State *L, struct loom_file *f);  /* its answer */
  lua_Integer then_n;      /* for 'then' */
  int then_w;
} loom_file;

static const loom_class file_class;

enum {
  OP_TRUE,       /* true */
  OP_STAT,       /* a stat table */
  OP_PATH,       /* the string result (readlink, realpath, mkdtemp) */
  OP_SCANDIR,    /* list of {name=, type=} */
  OP_OPEN,       /* a File */
  OP_READ,       /* the bytes read into the file's buffer */
  OP_WRITE,      /* bytes written */
  OP_JOB         /* a job of several steps (see job_*) */
};

typedef struct fsreq {
  uv_fs_t req;
  uv_work_t work;          /* OP_JOB */
  loom_call *call;
  int op;
  const char *what;        /* for messages: "open", "stat", ... */
  char *path;              /* a copy, for messages */
  int ref;                 /* a Lua value kept alive (data written) */
  int fref;                /* the File, alive while the request runs */
  lua_State *L;            /* main thread, for 'ref' */
  struct loom_file *file;  /* OP_OPEN, OP_READ, OP_WRITE */
  void (*job)(struct fsreq *r);  /* OP_JOB: runs on a worker */
  int (*push)(lua_State *L, struct fsreq *r);  /* OP_JOB: results */
  const char *data;        /* job input */
  size_t len;
  char *out;               /* job output (malloc'd) */
  size_t outlen;
  int mode, flags;
  int result;              /* job: 0 or a libuv error */
  size_t max;              /* read_file: the most bytes taken */
  struct stopflag *stop;   /* read_file: raised when nobody waits */
} fsreq;

/*
** A stop flag is C memory, shared by its userdata and the jobs that
** look at it: a worker may still read it after the Lua state is gone.
** Its count changes on the loop thread only.
*/
typedef struct stopflag {
  atomic_int raised;
  int refs;
} stopflag;

static void stop_unref(stopflag *s) {
  if (s != NULL && --s->refs == 0) free(s);
}

static void req_free(fsreq *r) {
  if (r->op != OP_JOB) uv_fs_req_cleanup(&r->req);
  if (r->L != NULL) {
    luaL_unref(r->L, LUA_REGISTRYINDEX, r->ref);
    luaL_unref(r->L, LUA_REGISTRYINDEX, r->fref);
  }
  stop_unref(r->stop);
  free(r->out);
  free(r->path);
  free(r);
}

static fsreq *req_new(lua_State *L, int op, const char *what,
                      const char *path) {
  fsreq *r = calloc(1, sizeof *r);
  if (r == NULL || (path != NULL && (r->path = strdup(path)) == NULL)) {
    free(r);
    loom__nomem(L);
  }
  r->op = op;
  r->what = what;
  r->ref = r->fref = LUA_NOREF;
  r->req.data = r;
  r->work.data = r;
  return r;
}

static const char *type_name(uv_dirent_type_t t) {
  switch (t) {
    case UV_DIRENT_FILE: return "file";
    case UV_DIRENT_DIR: return "directory";
    case UV_DIRENT_LINK: return "link";
    case UV_DIRENT_FIFO: return "fifo";
    case UV_DIRENT_SOCKET: return "socket";
    case UV_DIRENT_CHAR: return "char";
    case UV_DIRENT_BLOCK: return "block";
    default: return "unknown";
  }
}

static const char *mode_type(uint64_t mode) {
  if (S_ISREG(mode)) return "file";
  if (S_ISDIR(mode)) return "directory";
  if (S_ISLNK(mode)) return "link";
  if (S_ISFIFO(mode)) return "fifo";
  if (S_ISSOCK(mode)) return "socket";
  if (S_ISCHR(mode)) return "char";
  if (S_ISBLK(mode)) return "block";
  return "unknown";
}

static double ts(uv_timespec_t t) {
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void push_stat(lua_State *L, const uv_stat_t *st) {
  lua_createtable(L, 0, 10);
  lua_pushstring(L, mode_type(st->st_mode));
  lua_setfield(L, -2, "type");
  lua_pushinteger(L, (lua_Integer)st->st_size);
  lua_setfield(L, -2, "size");
  lua_pushinteger(L, (lua_Integer)(st->st_mode & 07777));
  lua_setfield(L, -2, "mode");
  lua_pushnumber(L, ts(st->st_mtim));
  lua_setfield(L, -2, "mtime");
  lua_pushnumber(L, ts(st->st_atim));
  lua_setfield(L, -2, "atime");
  lua_pushnumber(L, ts(st->st_ctim));
  lua_setfield(L, -2, "ctime");
  lua_pushinteger(L, (lua_Integer)st->st_uid);
  lua_setfield(L, -2, "uid");
  lua_pushinteger(L, (lua_Integer)st->st_gid);
  lua_setfield(L, -2, "gid");
  lua_pushinteger(L, (lua_Integer)st->st_ino);
  lua_setfield(L, -2, "ino");
  lua_pushinteger(L, (lua_Integer)st->st_nlink);
  lua_setfield(L, -2, "nlink");
}

static int push_file(lua_State *L, fsreq *r);
static int push_read(lua_State *L, fsreq *r);
static int push_write(lua_State *L, fsreq *r);

/* Runs in the task when the request is done (L NULL: nobody waits). */
static int push_result(lua_State *L, void *ud) {
  fsreq *r = ud;
  int n = 1;
  ssize_t res = r->req.result;
  if (L == NULL) {
    if (r->op == OP_OPEN && res >= 0) {  /* nobody takes the file */
      uv_fs_t c;
      uv_fs_close(NULL, &c, (uv_file)res, NULL);
      uv_fs_req_cleanup(&c);
    }
    if (r->file != NULL) r->file->busy = 0;
    req_free(r);
    return 0;
  }
  if (r->op == OP_JOB) {
    n = r->result < 0 ? loom__fail(L, r->what, r->path, r->result) : r->push(L, r);
    req_free(r);
    return n;
  }
  if (res < 0) {
    if (r->file != NULL) r->file->busy = 0;
    n = loom__fail(L, r->what, r->path, (int)res);
    req_free(r);
    return n;
  }
  switch (r->op) {
    case OP_STAT: push_stat(L, &r->req.statbuf); break;
    case OP_PATH: lua_pushstring(L, r->req.ptr ? (const char *)r->req.ptr
                                               : r->req.path); break;
    case OP_SCANDIR: {
      uv_dirent_t ent;
      int i = 0;
      lua_newtable(L);
      while (uv_fs_scandir_next(&r->req, &ent) != UV_EOF) {
        lua_createtable(L, 0, 2);
        lua_pushstring(L, ent.name);
        lua_setfield(L, -2, "name");
        lua_pushstring(L, type_name(ent.type));
        lua_setfield(L, -2, "type");
        lua_rawseti(L, -2, ++i);
      }
      break;
    }
    case OP_OPEN: n = push_file(L, r); break;
    case OP_READ: n = push_read(L, r); break;
    case OP_WRITE: n = push_write(L, r); break;
    default: lua_pushboolean(L, 1);
  }
  req_free(r);
  return n;
}

/*
** The request is done but its call was refused: the host closed, and
** with it perhaps the Lua state, so its refs are not let go through it.
*/
static void req_orphan(fsreq *r) {
  r->L = NULL;
  req_free(r);
}

static void fs_cb(uv_fs_t *req) {
  fsreq *r = req->data;
  loom_call *c = r->call;
  if (loom_call_complete(c, push_result, r) != LOOM_OK) req_orphan(r);
  loom_call_release(c);
}

/* After uv_fs_X(loop, &r->req, ..., fs_cb) returned 'err': wait. */
static int await_req(lua_State *L, fsreq *r, int err) {
  if (err < 0) {
    int n = loom__fail(L, r->what, r->path, err);
    if (r->file != NULL) r->file->busy = 0;
    req_free(r);
    return n;
  }
  r->call = loom_call_new(L);
  return loom_call_await(L, r->call);
}

static void job_work(uv_work_t *w) {
  fsreq *r = w->data;
  r->job(r);
}

static void job_after(uv_work_t *w, int status) {
  fsreq *r = w->data;
  loom_call *c = r->call;
  if (status < 0 && r->result == 0) r->result = status;
  if (loom_call_complete(c, push_result, r) != LOOM_OK) req_orphan(r);
  loom_call_release(c);
}

static int await_job(lua_State *L, loom_host *H, fsreq *r) {
  int err = uv_queue_work(H->loop, &r->work, job_work, job_after);
  if (err < 0) {
    int n = loom__fail(L, r->what, r->path, err);
    req_free(r);
    return n;
  }
  r->call = loom_call_new(L);
  return loom_call_await(L, r->call);
}

/* Keeps the value at 'idx' alive until the request is freed. */
static void keep(lua_State *L, loom_host *H, fsreq *r, int idx) {
  r->L = H->mainL;
  lua_pushvalue(L, idx);
  lua_xmove(L, r->L, 1);
  r->ref = luaL_ref(r->L, LUA_REGISTRYINDEX);
}

/* Keeps the File at 1 alive: a worker writes into its buffer. */
static void keep_file(lua_State *L, loom_host *H, fsreq *r) {
  r->L = H->mainL;
  lua_pushvalue(L, 1);
  lua_xmove(L, r->L, 1);
  r->fref = luaL_ref(r->L, LUA_REGISTRYINDEX);
}

/* }==================================================================== */


/* {====================================================================
** Writing behind
** ===================================================================== */

/* Writes all of iov[0, k) at 'at' (-1: at the end); 0 or a libuv error. */
static int write_iov(int fd, struct iovec *iov, int k, int64_t at) {
  while (k > 0) {
    ssize_t n;
    do n = at < 0 ? writev(fd, iov, k) : pwritev(fd, iov, k, (off_t)at);
    while (n < 0 && errno == EINTR);
    if (n < 0) return uv_translate_sys_error(errno);
    if (n == 0) return UV_EIO;
    if (at >= 0) at += n;
    while (k > 0 && (size_t)n >= iov->iov_len) {
      n -= (ssize_t)iov->iov_len;
      iov++;
      k--;
    }
    if (k > 0) {
      iov->iov_base = (char *)iov->iov_base + n;
      iov->iov_len -= (size_t)n;
    }
  }
  return 0;
}

/* On a worker: each run of pieces that follow each other in one call. */
static void batch_work(uv_work_t *w) {
  wbatch *b = w->data;
  struct iovec iov[IOV_BATCH];
  size_t i = 0;
  while (i < b->n && b->err == 0) {
    int64_t at = b->v[i].at, next = at;
    int k = 0;
    while (i < b->n && k < IOV_BATCH && b->v[i].at == next) {
      iov[k].iov_base = (void *)b->v[i].p;
      iov[k].iov_len = b->v[i].len;
      if (next >= 0) next += (int64_t)b->v[i].len;
      k++;
      i++;
    }
    b->err = write_iov(b->fd, iov, k, at);
  }
  if (b->err == 0 && b->sync && fsync(b->fd) != 0)
    b->err = uv_translate_sys_error(errno);
  uv_mutex_lock(&b->mu);
  b->done = 1;
  uv_cond_signal(&b->cv);
  uv_mutex_unlock(&b->mu);
}

/* Lets go of pieces: their strings (L NULL: the state is closing). */
static void pieces_free(lua_State *L, wpiece *v, size_t n) {
  size_t i;
  for (i = 0; i < n; i++) {
    if (L != NULL) luaL_unref(L, LUA_REGISTRYINDEX, v[i].ref);
    free(v[i].own);
  }
  free(v);
}

static void queue_drop(loom_file *f) {
  pieces_free(f->L, f->q, f->qn);
  f->behind -= f->qbytes;
  f->q = NULL;
  f->qn = f->qcap = f->qbytes = 0;
}

static void batch_done(uv_work_t *w, int status);

/* Gives the queue (and a wanted fsync) to a worker. */
static void batch_start(loom_file *f, uv_loop_t *loop) {
  wbatch *b = calloc(1, sizeof *b);
  int err = UV_ENOMEM;
  if (b != NULL && uv_mutex_init(&b->mu) == 0) {
    if (uv_cond_init(&b->cv) == 0) {
      b->work.data = b;
      b->f = f;
      b->L = f->L;
      b->fd = f->fd;
      b->sync = f->sync_wanted;
      b->v = f->q;
      b->n = f->qn;
      b->bytes = f->qbytes;
      err = uv_queue_work(loop, &b->work, batch_work, batch_done);
      if (err == 0) {
        f->batch = b;
        f->sync_wanted = 0;
        f->q = NULL;
        f->qn = f->qcap = f->qbytes = 0;
        return;
      }
      uv_cond_destroy(&b->cv);
    }
    uv_mutex_destroy(&b->mu);
  }
  free(b);
  if (f->werr == 0) f->werr = err;
  f->sync_wanted = 0;
  queue_drop(f);
}

static int waiter_push(lua_State *L, void *ud);

/*
** A task cancelled while it waited on what is behind leaves the File
** busy until its wait is given up here (the writes go on).
*/
static void waiter_left(loom_file *f) {
  loom_call *c = f->waiter;
  if (c == NULL || !loom__call_left(c)) return;
  f->waiter = NULL;
  if (loom_call_complete(c, waiter_push, f) != LOOM_OK) f->busy = 0;
  loom_call_release(c);
}

/* Wakes the waiting task when what it waits for has come. */
static void wake(loom_file *f) {
  loom_call *c = f->waiter;
  int ok;
  if (c == NULL) return;
  ok = f->want == WANT_ROOM ? f->qbytes < BEHIND || f->werr != 0
                            : f->batch == NULL && f->behind == 0;
  if (!ok) return;
  f->waiter = NULL;
  if (loom_call_complete(c, waiter_push, f) != LOOM_OK) f->busy = 0;
  loom_call_release(c);
}

static void close_fd(loom_file *f) {
  close(f->fd);
  f->fd = -1;
  free(f->buf);
  f->buf = NULL;
}

static void batch_done(uv_work_t *w, int status) {
  wbatch *b = w->data;
  loom_file *f = b->f;
  uv_cond_destroy(&b->cv);
  uv_mutex_destroy(&b->mu);
  if (f == NULL) {  /* the state is gone: only C memory is left */
    pieces_free(NULL, b->v, b->n);
    free(b);
    return;
  }
  if (status < 0 && b->err == 0) b->err = status;
  pieces_free(f->L, b->v, b->n);
  f->behind -= b->bytes;
  f->batch = NULL;
  if (f->append && f->fd >= 0) {  /* writes went to the end: we are there */
    off_t at = lseek(f->fd, 0, SEEK_CUR);
    if (at >= 0) f->pos = at;
  }
  if (b->err != 0) {  /* what was queued after it is not written */
    if (f->werr == 0) f->werr = b->err;
    queue_drop(f);
    f->sync_wanted = 0;
  }
  if (f->qn > 0 || f->sync_wanted) batch_start(f, w->loop);
  free(b);
  wake(f);
  if (f->batch == NULL && f->close_after) {
    f->close_after = 0;
    close_fd(f);
  }
  if (f->batch == NULL) {  /* the File may go now */
    luaL_unref(f->L, LUA_REGISTRYINDEX, f->fref);
    f->fref = LUA_NOREF;
  }
}

/* Starts a batch from the File at 1, keeping it alive while it runs. */
static void behind_start(lua_State *L, loom_host *H, loom_file *f) {
  if (f->fref == LUA_NOREF) {
    f->L = H->mainL;
    lua_pushvalue(L, 1);
    lua_xmove(L, f->L, 1);
    f->fref = luaL_ref(f->L, LUA_REGISTRYINDEX);
  }
  if (f->batch == NULL) batch_start(f, H->loop);
  if (f->batch == NULL) {
    luaL_unref(f->L, LUA_REGISTRYINDEX, f->fref);
    f->fref = LUA_NOREF;
  }
}

/* Queues the string at 2 ('data', 'len') to be written at 'at'. */
static void queue_piece(lua_State *L, loom_host *H, loom_file *f,
                        const char *data, size_t len, int64_t at) {
  wpiece *last = f->qn > 0 ? &f->q[f->qn - 1] : NULL;
  f->L = H->mainL;
  if (len <= SMALL && last != NULL && last->own != NULL &&
      last->cap - last->len >= len &&
      (at < 0 ? last->at < 0 : last->at >= 0 &&
                               last->at + (int64_t)last->len == at)) {
    memcpy(last->own + last->len, data, len);
    last->len += len;
  }
  else {
    wpiece *pc;
    if (f->qn == f->qcap) {
      size_t cap = f->qcap ? f->qcap * 2 : 16;
      wpiece *v = realloc(f->q, cap * sizeof *v);
      if (v == NULL) loom__nomem(L);
      f->q = v;
      f->qcap = cap;
    }
    pc = &f->q[f->qn];
    pc->at = at;
    pc->len = len;
    pc->ref = LUA_NOREF;
    pc->own = NULL;
    pc->cap = 0;
    if (len <= SMALL) {
      if ((pc->own = malloc(CHUNK)) == NULL) loom__nomem(L);
      pc->cap = CHUNK;
      memcpy(pc->own, data, len);
      pc->p = pc->own;
    }
    else {
      lua_pushvalue(L, 2);
      lua_xmove(L, f->L, 1);
      pc->ref = luaL_ref(f->L, LUA_REGISTRYINDEX);
      pc->p = data;
    }
    f->qn++;
  }
  f->qbytes += len;
  f->behind += len;
}

/* Pushes nil, msg, code for a failed write behind, and forgets it. */
static int behind_failed(lua_State *L, loom_file *f) {
  int err = f->werr;
  f->werr = 0;
  return loom__fail(L, "write", f->path, err);
}

static int waiter_push(lua_State *L, void *ud) {
  loom_file *f = ud;
  f->busy = 0;
  if (L == NULL) return 0;  /* the task left */
  return f->then(L, f);
}

/*
** Suspends the task of the File at 1 until what it 'want's, then
** answers with 'then'.  The File is busy meanwhile: its batch keeps it.
*/
static int behind_wait(lua_State *L, loom_file *f, int want,
                       int (*then)(lua_State *L, loom_file *f)) {
  f->want = want;
  f->then = then;
  f->busy = 1;
  f->waiter = loom_call_new(L);
  return loom_call_await(L, f->waiter);
}

/* Nothing behind and no failure to tell (-1), or what to answer now. */
static int behind_first(lua_State *L, loom_file *f, const char *fname,
                        int (*then)(lua_State *L, loom_file *f)) {
  if (f->werr != 0) return behind_failed(L, f);
  if (f->batch == NULL) return -1;
  loom__enter(L, loom__host(L), fname);
  return behind_wait(L, f, WANT_DRAIN, then);
}

/* }==================================================================== */


/* {====================================================================
** Simple calls
** ===================================================================== */

#define BEGIN(name) \
  loom_host *H = loom__host(L); \
  const char *path = loom__checkcstring(L, 1, name); \
  fsreq *r; \
  loom__enter(L, H, name)

static int l_stat(lua_State *L) {
  BEGIN("fs.stat");
  r = req_new(L, OP_STAT, "stat", path);
  return await_req(L, r, uv_fs_stat(H->loop, &r->req, path, fs_cb));
}

static int l_lstat(lua_State *L) {
  BEGIN("fs.lstat");
  r = req_new(L, OP_STAT, "lstat", path);
  return await_req(L, r, uv_fs_lstat(H->loop, &r->req, path, fs_cb));
}

static int l_scandir(lua_State *L) {
  BEGIN("fs.list");
  r = req_new(L, OP_SCANDIR, "list", path);
  return await_req(L, r, uv_fs_scandir(H->loop, &r->req, path, 0, fs_cb));
}

static int l_mkdir(lua_State *L) {
  int mode = (int)loom__optinteger(L, 2, "fs.mkdir", 0777);
  BEGIN("fs.mkdir");
  r = req_new(L, OP_TRUE, "mkdir", path);
  return await_req(L, r, uv_fs_mkdir(H->loop, &r->req, path, mode, fs_cb));
}

static int l_rmdir(lua_State *L) {
  BEGIN("fs.remove");
  r = req_new(L, OP_TRUE, "remove", path);
  return await_req(L, r, uv_fs_rmdir(H->loop, &r->req, path, fs_cb));
}

static int l_unlink(lua_State *L) {
  BEGIN("fs.remove");
  r = req_new(L, OP_TRUE, "remove", path);
  return await_req(L, r, uv_fs_unlink(H->loop, &r->req, path, fs_cb));
}

static int l_rename(lua_State *L) {
  const char *to = loom__checkcstring(L, 2, "fs.rename");
  BEGIN("fs.rename");
  r = req_new(L, OP_TRUE, "rename", path);
  return await_req(L, r, uv_fs_rename(H->loop, &r->req, path, to, fs_cb));
}

static int l_copy(lua_State *L) {
  const char *to = loom__checkcstring(L, 2, "fs.copy");
  BEGIN("fs.copy");
  r = req_new(L, OP_TRUE, "copy", path);
  return await_req(L, r, uv_fs_copyfile(H->loop, &r->req, path, to, 0,
                                        fs_cb));
}

/* fs.symlink(target, path): 'path' is the link made */
static int l_symlink(lua_State *L) {
  loom_host *H = loom__host(L);
  const char *target = loom__checkcstring(L, 1, "fs.symlink");
  const char *path = loom__checkcstring(L, 2, "fs.symlink");
  fsreq *r;
  loom__enter(L, H, "fs.symlink");
  r = req_new(L, OP_TRUE, "symlink", path);
  return await_req(L, r, uv_fs_symlink(H->loop, &r->req, target, path, 0,
                                       fs_cb));
}

static int l_readlink(lua_State *L) {
  BEGIN("fs.readlink");
  r = req_new(L, OP_PATH, "readlink", path);
  return await_req(L, r, uv_fs_readlink(H->loop, &r->req, path, fs_cb));
}

static int l_realpath(lua_State *L) {
  BEGIN("fs.realpath");
  r = req_new(L, OP_PATH, "realpath", path);
  return await_req(L, r, uv_fs_realpath(H->loop, &r->req, path, fs_cb));
}

static int l_chmod(lua_State *L) {
  lua_Integer mode = loom__checkinteger(L, 2, "fs.chmod");
  BEGIN("fs.chmod");
  if (mode < 0 || mode > 07777)
    loom__argerror(L, 2, "fs.chmod", "mode out of range");
  r = req_new(L, OP_TRUE, "chmod", path);
  return await_req(L, r, uv_fs_chmod(H->loop, &r->req, path, (int)mode,
                                     fs_cb));
}

/* fs.mkdtemp(prefix): a new folder "<prefix>XXXXXX" */
static int l_mkdtemp(lua_State *L) {
  loom_host *H = loom__host(L);
  const char *prefix = loom__checkcstring(L, 1, "fs.mkdtemp");
  const char *tpl;
  fsreq *r;
  loom__enter(L, H, "fs.mkdtemp");
  tpl = lua_pushfstring(L, "%sXXXXXX", prefix);
  r = req_new(L, OP_PATH, "mkdtemp", prefix);
  return await_req(L, r, uv_fs_mkdtemp(H->loop, &r->req, tpl, fs_cb));
}

/* }==================================================================== */


/* {====================================================================
** Whole-file jobs
** ===================================================================== */

/*
** read_file, on a worker: one buffer sized from fstat, read to the end
** (a file that grows or shrinks meanwhile, or one whose size fstat does
** not know, such as those of /proc and /sys, is read as it is).  More
** than 'max' bytes is EFBIG.  The reads go a step at a time, and before
** each one the job looks at 'stop': a task that left (cancelled, timed
** out) sets it, so an endless file (/dev/zero) is not read for ever.
** On any failure what was read is freed here.
*/
/*
** A FIFO (or socket) is opened and read without blocking, so that the
** job sees its stop flag while nobody writes: it waits here a little at
** a time, and reads only once there is data or the writer has gone.  A
** FIFO no writer has opened yet does not poll readable (nor hung up),
** so the read waits for one, as a blocking open would.  Returns whether
** to read now.
*/
static int ready_to_read(int fd) {
  struct pollfd p;
  p.fd = fd;
  p.events = POLLIN;
  return poll(&p, 1, 100) > 0;
}

static void job_read_file(fsreq *r) {
  struct stat st;
  size_t cap = CHUNK, len = 0, want;
  char *buf;
  ssize_t k;
  int err = 0, pipe_like = 0;
  int fd = open(r->path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    r->result = uv_translate_sys_error(errno);
    return;
  }
  if (fstat(fd, &st) == 0) {
    pipe_like = S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode);
    if (!pipe_like) fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    if (S_ISDIR(st.st_mode)) err = UV_EISDIR;
    else if (S_ISREG(st.st_mode) && (uint64_t)st.st_size > r->max)
      err = UV_EFBIG;
    else if (S_ISREG(st.st_mode) && st.st_size > 0)
      cap = (size_t)st.st_size + 1;
  }
  if (r->max < cap - 1) cap = r->max + 1;  /* one more tells "too big" */
  buf = err == 0 ? malloc(cap) : NULL;
  if (buf == NULL && err == 0) err = UV_ENOMEM;
  while (err == 0) {
    if (r->stop != NULL && atomic_load(&r->stop->raised)) {
      err = UV_ECANCELED;
      break;
    }
    want = cap - len < READ_STEP ? cap - len : READ_STEP;
    if (pipe_like && !ready_to_read(fd)) continue;
    if ((k = read(fd, buf + len, want)) == 0) break;
    if (k < 0) {
      if (errno != EINTR && errno != EAGAIN)
        err = uv_translate_sys_error(errno);
      continue;
    }
    len += (size_t)k;
    if (len > r->max) err = UV_EFBIG;
    else if (len == cap) {
      size_t ncap = r->max < cap * 2 - 1 ? r->max + 1 : cap * 2;
      char *b = realloc(buf, ncap);
      if (b == NULL) err = UV_ENOMEM;
      else {
        buf = b;
        cap = ncap;
      }
    }
  }
  close(fd);
  if (err != 0) {
    free(buf);
    r->result = err;
    return;
  }
  r->out = buf;
  r->outlen = len;
}

static int push_bytes(lua_State *L, fsreq *r) {
  lua_pushlstring(L, r->out ? r->out : "", r->outlen);
  return 1;
}

static const loom_class stop_class;

/*
** core.fs.read_file(path [, max [, stop]]): the bytes, or nil, msg,
** code.  'max' (default: no limit) is the most bytes taken, else
** EFBIG; 'stop' a flag from core.fs.stop_flag, which fs.lua raises when
** the task leaves the call, to end the job at its next step.
*/
static int l_read_file(lua_State *L) {
  lua_Integer max = loom__optinteger(L, 2, "fs.read_file", -1);
  stopflag **stop = NULL;
  BEGIN("fs.read_file");
  if (!lua_isnoneornil(L, 3)) {
    stop = loom__toobject(L, 3, &stop_class);
    if (stop == NULL)
      loom__argerror(L, 3, "fs.read_file", "stop flag expected");
  }
  r = req_new(L, OP_JOB, "read_file", path);
  r->job = job_read_file;
  r->push = push_bytes;
  r->max = max < 0 ? SIZE_MAX : (uint64_t)max > SIZE_MAX - 1 ? SIZE_MAX - 1
                                                             : (size_t)max;
  if (stop != NULL) {
    r->stop = *stop;
    r->stop->refs++;
  }
  return await_job(L, H, r);
}

/* core.fs.stop_flag(): a new flag for read_file, not raised */
static int l_stop_flag(lua_State *L) {
  stopflag **box = loom__object_new(L, &stop_class, sizeof *box, 0);
  *box = malloc(sizeof **box);
  if (*box == NULL) return loom__nomem(L);
  atomic_init(&(*box)->raised, 0);
  (*box)->refs = 1;
  return 1;
}

static int stop_gc(lua_State *L) {
  stopflag **box = lua_touserdata(L, 1);
  stop_unref(*box);
  *box = NULL;
  return 0;
}

/* core.fs.stop(flag): raises it; the job sees it at its next step */
static int l_stop(lua_State *L) {
  stopflag **box = loom__toobject(L, 1, &stop_class);
  if (box == NULL || *box == NULL)
    loom__argerror(L, 1, "fs.stop", "stop flag expected");
  atomic_store(&(*box)->raised, 1);
  return 0;
}

static const luaL_Reg stop_meta[] = {
  {"__gc", stop_gc},
  {NULL, NULL}
};

static const loom_class stop_class = {
  .name = "loom.stop_flag",
  .meta = stop_meta
};

static int write_fully(int fd, const char *p, size_t n) {
  while (n > 0) {
    ssize_t k = write(fd, p, n);
    if (k < 0) {
      if (errno == EINTR) continue;
      return uv_translate_sys_error(errno);
    }
    p += k;
    n -= (size_t)k;
  }
  return 0;
}

/*
** The file a write to 'path' changes: 'path' itself or, when it is a
** symbolic link, where its chain of links ends (a relative target is
** relative to the link's folder), as open(2) would find it.  Returns a
** malloc'd path, or NULL with '*err' set (UV_ELOOP, UV_ENOMEM, ...).
*/
static char *final_target(const char *path, int *err) {
  char *cur = strdup(path), *next, link[4096];
  struct stat st;
  ssize_t n;
  int hops;
  for (hops = 0; cur != NULL && hops < 40; hops++) {
    const char *slash;
    if (lstat(cur, &st) != 0 || !S_ISLNK(st.st_mode)) return cur;
    n = readlink(cur, link, sizeof link - 1);
    if (n < 0) {
      *err = uv_translate_sys_error(errno);
      free(cur);
      return NULL;
    }
    link[n] = '\0';
    slash = strrchr(cur, '/');
    if (link[0] == '/' || slash == NULL) next = strdup(link);
    else {  /* "<the link's folder>/<target>" */
      size_t dir = (size_t)(slash - cur) + 1;
      next = malloc(dir + (size_t)n + 1);
      if (next != NULL) {
        memcpy(next, cur, dir);
        memcpy(next + dir, link, (size_t)n + 1);
      }
    }
    free(cur);
    cur = next;
  }
  *err = cur == NULL ? UV_ENOMEM : UV_ELOOP;
  free(cur);
  return NULL;
}

/*
** A device, a FIFO or a socket is written where it is: there is no
** file to replace.  A FIFO that nobody reads is a failure (ENXIO), not
** a worker blocked for ever in open(2).
*/
static int write_in_place(const char *target, fsreq *r) {
  int fd = open(target, O_WRONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
  int err, fl;
  if (fd < 0) return uv_translate_sys_error(errno);
  fl = fcntl(fd, F_GETFL);
  if (fl >= 0) fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
  err = write_fully(fd, r->data, r->len);
  if (close(fd) != 0 && err == 0) err = uv_translate_sys_error(errno);
  return err;
}

/*
** Creates "<target>.tmp.<random>" for writing, with 'mode' (less the
** umask, as any new file).  Returns the fd and the name in 'tmp', or a
** libuv error.
*/
static int open_temp(const char *target, char *tmp, size_t size, int mode) {
  static const char abc[] = "abcdefghijklmnopqrstuvwxyz"
                            "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  unsigned char rnd[8];
  int tries, fd, i;
  for (tries = 0; tries < 100; tries++) {
    if (uv_random(NULL, NULL, rnd, sizeof rnd, 0, NULL) != 0) {
      uint64_t x = uv_hrtime() * 2654435761u + (uint64_t)tries;
      memcpy(rnd, &x, sizeof rnd);
    }
    snprintf(tmp, size, "%s.tmp.", target);
    for (i = 0; i < 8; i++) {
      char c[2] = {abc[rnd[i] % (sizeof abc - 1)], '\0'};
      strcat(tmp, c);
    }
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd >= 0) return fd;
    if (errno != EEXIST) return uv_translate_sys_error(errno);
  }
  return UV_EEXIST;
}

/*
** A regular file (or none yet) is replaced: a temporary file beside it
** is written, synced and renamed over it, so that a crash leaves the
** old file or the new one, never half of one.  The new file gets the
** old one's owner (when we may give it: root may, others may fail and
** go on) and then its mode, as chown(2) clears the set-id bits; a file
** that did not exist gets 0666 less the umask.
*/
static int write_replacing(const char *target, const struct stat *st,
                           fsreq *r) {
  size_t n = strlen(target) + 16;
  char *tmp = malloc(n);
  int fd, err;
  if (tmp == NULL) return UV_ENOMEM;
  fd = open_temp(target, tmp, n, st != NULL ? 0600 : 0666);
  if (fd < 0) {
    free(tmp);
    return fd;
  }
  if (st != NULL) {
    if (fchown(fd, st->st_uid, st->st_gid) != 0)
      (void)!fchown(fd, (uid_t)-1, st->st_gid);  /* the group, at least */
    (void)fchmod(fd, st->st_mode & 07777);
  }
  err = write_fully(fd, r->data, r->len);
  if (err == 0 && fsync(fd) != 0) err = uv_translate_sys_error(errno);
  if (close(fd) != 0 && err == 0) err = uv_translate_sys_error(errno);
  if (err == 0 && rename(tmp, target) != 0)
    err = uv_translate_sys_error(errno);
  if (err != 0) unlink(tmp);
  free(tmp);
  return err;
}

/*
** write_file, on a worker.  A symbolic link stays a link: what it points
** to is written (replaced in the target's own folder, so the rename
** stays on one file system); a device or FIFO is written in place.
*/
static void job_write_file(fsreq *r) {
  struct stat st;
  int err = 0, have;
  char *target = final_target(r->path, &err);
  if (target == NULL) {
    r->result = err;
    return;
  }
  have = stat(target, &st) == 0;
  if (have && S_ISDIR(st.st_mode)) err = UV_EISDIR;
  else if (have && !S_ISREG(st.st_mode)) err = write_in_place(target, r);
  else err = write_replacing(target, have ? &st : NULL, r);
  free(target);
  r->result = err;
}

static void job_append_file(fsreq *r) {
  int fd = open(r->path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0666);
  int err;
  if (fd < 0) {
    r->result = uv_translate_sys_error(errno);
    return;
  }
  err = write_fully(fd, r->data, r->len);
  if (close(fd) != 0 && err == 0) err = uv_translate_sys_error(errno);
  r->result = err;
}

static int push_true(lua_State *L, fsreq *r) {
  (void)r;
  lua_pushboolean(L, 1);
  return 1;
}

static int data_job(lua_State *L, const char *name, const char *what,
                    void (*job)(fsreq *r)) {
  size_t len;
  const char *data;
  BEGIN(name);
  data = loom__checklstring(L, 2, name, &len);
  r = req_new(L, OP_JOB, what, path);
  r->job = job;
  r->push = push_true;
  r->data = data;
  r->len = len;
  keep(L, H, r, 2);  /* the worker reads the string: it must stay */
  return await_job(L, H, r);
}

static int l_write_file(lua_State *L) {
  return data_job(L, "fs.write_file", "write_file", job_write_file);
}

static int l_append_file(lua_State *L) {
  return data_job(L, "fs.append_file", "append_file", job_append_file);
}

/* }==================================================================== */


/* {====================================================================
** Files
** ===================================================================== */


/*
** The open File at 1, for method 'fname' (which suspends, so raises
** outside a task).  Its errors name the user's line: see loom__where.
*/
static loom_file *checkfile(lua_State *L, const char *fname) {
  loom_file *f = loom__checkobject_as(L, 1, &file_class, fname);
  loom__current(L, loom__host(L), fname);
  waiter_left(f);
  if (f->fd < 0 || f->close_after)
    loom__errorf(L, "attempt to use a closed file");
  if (f->busy)
    loom__errorf(L, "file '%s': another task is using it", f->path);
  return f;
}


static int push_file(lua_State *L, fsreq *r) {
  loom_file *f = loom__object_new(L, &file_class, sizeof *f, 0);
  struct stat st;
  f->fd = (int)r->req.result;
  f->readable = (r->flags & O_ACCMODE) != O_WRONLY;
  f->writable = (r->flags & O_ACCMODE) != O_RDONLY;
  f->append = (r->flags & O_APPEND) != 0;
  f->regular = fstat(f->fd, &st) == 0 && S_ISREG(st.st_mode);
  f->fref = LUA_NOREF;
  f->path = r->path;  /* the request's copy goes to the file */
  r->path = NULL;
  loom__track(L, loom__host_of_state(L), -1);  /* core.handles lists it */
  return 1;
}

static const struct {
  const char *mode;
  int flags;
} modes[] = {
  {"r", O_RDONLY},
  {"w", O_WRONLY | O_CREAT | O_TRUNC},
  {"a", O_WRONLY | O_CREAT | O_APPEND},
  {"r+", O_RDWR},
  {"w+", O_RDWR | O_CREAT | O_TRUNC},
  {"a+", O_RDWR | O_CREAT | O_APPEND},
  {NULL, 0}
};

/* fs.open(path [, mode]) (suspends): modes as io.open */
static int l_open(lua_State *L) {
  const char *mode = loom__optlstring(L, 2, "fs.open", "r", NULL);
  char m[3] = {0, 0, 0};
  size_t i, j = 0;
  int flags = -1;
  BEGIN("fs.open");
  for (i = 0; mode[i] != '\0' && j < 3; i++)
    if (mode[i] != 'b') m[j++] = mode[i];
  for (i = 0; modes[i].mode != NULL && j < 3; i++)
    if (strcmp(m, modes[i].mode) == 0) flags = modes[i].flags;
  if (flags < 0)
    loom__argerror(L, 2, "fs.open", lua_pushfstring(L, "invalid mode '%s'",
                                                    mode));
  r = req_new(L, OP_OPEN, "open", path);
  r->flags = flags;
  return await_req(L, r, uv_fs_open(H->loop, &r->req, path,
                                    flags | O_CLOEXEC, 0666, fs_cb));
}

/* Room for 'n' more bytes at the end of the read buffer. */
static int buf_room(loom_file *f, size_t n) {
  if (f->start > 0 && f->cap - f->start - f->len < n) {
    memmove(f->buf, f->buf + f->start, f->len);
    f->start = 0;
  }
  if (f->cap - f->len < n) {
    size_t cap = f->cap ? f->cap : CHUNK;
    char *p;
    while (cap - f->len < n) cap *= 2;
    p = realloc(f->buf, cap);
    if (p == NULL) return 0;
    f->buf = p;
    f->cap = cap;
  }
  return 1;
}

static void buf_got(loom_file *f, ssize_t n) {
  if (n == 0) f->eof = 1;
  else {
    f->len += (size_t)n;
    f->pos += n;
  }
}

static int push_read(lua_State *L, fsreq *r) {
  loom_file *f = r->file;
  f->busy = 0;
  buf_got(f, r->req.result);
  lua_pushboolean(L, 1);
  return 1;
}

/*
** Reads up to 'want' more bytes into the buffer.  Returns 1 when done
** without suspending (data or EOF came from the page cache), else the
** result of suspending (the continuation then comes back here).
*/
static int fill(lua_State *L, loom_host *H, loom_file *f, size_t want,
                int *done) {
  uv_buf_t b;
  fsreq *r;
  int err;
  if (want < CHUNK) want = CHUNK;
  if (!buf_room(f, want)) loom__nomem(L);
  *done = 0;
  if (f->regular) {  /* the page cache may have it: no thread needed */
    struct iovec iov;
    ssize_t n;
    iov.iov_base = f->buf + f->start + f->len;
    iov.iov_len = want;
    do n = preadv2(f->fd, &iov, 1, f->pos, RWF_NOWAIT);
    while (n < 0 && errno == EINTR);
    if (n >= 0) {
      buf_got(f, n);
      *done = 1;
      return 0;
    }
    if (errno != EAGAIN && errno != EOPNOTSUPP && errno != ENOSYS)
      return loom__fail(L, "read", f->path, uv_translate_sys_error(errno));
  }
  r = req_new(L, OP_READ, "read", f->path);
  r->file = f;
  keep_file(L, H, r);
  f->busy = 1;
  b = uv_buf_init(f->buf + f->start + f->len, (unsigned)want);
  /* positioned reads only where the file has positions (not a pipe) */
  err = uv_fs_read(H->loop, &r->req, f->fd, &b, 1,
                   f->regular ? f->pos : -1, fs_cb);
  if (err < 0) {
    f->busy = 0;
    req_free(r);
    return loom__fail(L, "read", f->path, err);
  }
  r->call = loom_call_new(L);
  return loom_call_await(L, r->call);
}

static void take(lua_State *L, loom_file *f, size_t n) {
  lua_pushlstring(L, f->buf + f->start, n);
  f->start += n;
  f->len -= n;
  if (f->len == 0) f->start = 0;
}

/* The file at 1, and why it cannot be read (pushes nil, msg, code). */
static int not_readable(lua_State *L, loom_file *f) {
  if (f->readable) return 0;
  return loom__fail(L, "read", f->path, UV_EBADF);
}

/*
** The read methods share one shape: 'ready' looks at the buffer and
** pushes the answer (returning how many values) or returns -1 for "need
** more"; the loop below fills the buffer until it can answer.  When a
** fill has to go to the thread pool, the call returns 'true' once the
** data is in ("call me again"): fs.lua loops on that.
*/
typedef int (*ready_fn)(lua_State *L, loom_file *f, lua_Integer arg);

/* After the writes behind: "call again", or their failure. */
static int then_again(lua_State *L, loom_file *f) {
  if (f->werr != 0) return behind_failed(L, f);
  lua_pushboolean(L, 1);
  return 1;
}

static int read_some(lua_State *L, ready_fn ready, const char *fname) {
  loom_host *H = loom__host(L);
  loom_file *f = checkfile(L, fname);
  lua_Integer arg = loom__optinteger(L, 2, fname, -1);
  int n, done, r;
  loom__enter(L, H, fname);
  if ((n = not_readable(L, f)) != 0) return n;
  if ((n = behind_first(L, f, fname, then_again)) >= 0) return n;
  for (;;) {
    n = ready(L, f, arg);
    if (n >= 0) return n;
    r = fill(L, H, f, arg > 0 ? (size_t)arg : CHUNK, &done);
    if (!done) return r;  /* a failure, or suspended (resumes with true) */
  }
}

/* read(n): up to n bytes (default: what is buffered, or a chunk) */
/*
** At the end of the file a read reports EOF once and forgets it, so the
** next read tries again: a file that grows can be followed (tail -f).
*/
static int at_eof(lua_State *L, loom_file *f, const char *what) {
  f->eof = 0;
  return loom__fail(L, what, f->path, UV_EOF);
}

static int ready_read(lua_State *L, loom_file *f, lua_Integer n) {
  if (n == 0) {
    lua_pushliteral(L, "");
    return 1;
  }
  if (f->len > 0) {
    take(L, f, n > 0 && (size_t)n < f->len ? (size_t)n : f->len);
    return 1;
  }
  if (f->eof) return at_eof(L, f, "read");
  return -1;
}

/* Drops the first 'n' bytes of the buffer. */
static void drop(loom_file *f, size_t n) {
  f->start += n;
  f->len -= n;
  if (f->len == 0) f->start = 0;
}

/*
** A line longer than LINE_LIMIT (as a Stream's read_line) fails ELINE
** and is dropped: up to its end when that is here, else as it comes.
*/
static int line_too_long(lua_State *L, loom_file *f, const char *p) {
  if (p != NULL) drop(f, (size_t)(p - (f->buf + f->start)) + 1);
  else {
    drop(f, f->len);
    f->skipline = 1;
  }
  lua_pushfstring(L, "line longer than %d bytes", LINE_LIMIT);
  return loom__fail_reason(L, "read_line", f->path, lua_tostring(L, -1),
                           "ELINE");
}

static int ready_line(lua_State *L, loom_file *f, lua_Integer unused) {
  const char *p;
  (void)unused;
  if (f->skipline) {  /* what is left of an over-long line */
    p = f->len > 0 ? memchr(f->buf + f->start, '\n', f->len) : NULL;
    if (p == NULL) {
      drop(f, f->len);
      if (!f->eof) return -1;
      f->skipline = 0;
      return at_eof(L, f, "read_line");
    }
    drop(f, (size_t)(p - (f->buf + f->start)) + 1);
    f->skipline = 0;
  }
  p = f->len > 0 ? memchr(f->buf + f->start, '\n', f->len)
                 : NULL;  /* buf may not exist yet */
  if (p != NULL) {
    size_t n = (size_t)(p - (f->buf + f->start));
    size_t keep = n > 0 && p[-1] == '\r' ? n - 1 : n;
    if (keep > LINE_LIMIT) return line_too_long(L, f, p);
    lua_pushlstring(L, f->buf + f->start, keep);
    drop(f, n + 1);
    return 1;
  }
  /* (one byte more may be the "\r" of a "\r\n" still to come) */
  if (f->len > LINE_LIMIT + 1 || (f->eof && f->len > LINE_LIMIT))
    return line_too_long(L, f, NULL);
  if (f->eof) {
    if (f->len > 0) {
      take(L, f, f->len);
      return 1;
    }
    return at_eof(L, f, "read_line");
  }
  return -1;
}

static int ready_all(lua_State *L, loom_file *f, lua_Integer unused) {
  (void)unused;
  if (f->eof) {
    f->eof = 0;
    take(L, f, f->len);
    return 1;
  }
  return -1;
}

/* core.file_read(f [, n]), file_read_line(f), file_read_all(f): one try */
static int f_read(lua_State *L) {
  return read_some(L, ready_read, "file:read");
}

static int f_read_line(lua_State *L) {
  return read_some(L, ready_line, "file:read_line");
}

static int f_read_all(lua_State *L) {
  return read_some(L, ready_all, "file:read_all");
}

static int push_write(lua_State *L, fsreq *r) {
  loom_file *f = r->file;
  f->busy = 0;
  if (f->append) {  /* the write went to the end: that is where we are */
    off_t at = f->fd >= 0 ? lseek(f->fd, 0, SEEK_CUR) : -1;
    if (at >= 0) f->pos = at;
  }
  else f->pos += r->req.result;
  lua_pushinteger(L, (lua_Integer)r->req.result);
  return 1;
}

static int then_written(lua_State *L, loom_file *f) {
  if (f->werr != 0) return behind_failed(L, f);
  lua_pushinteger(L, f->then_n);
  return 1;
}

/*
** core.file_write(f, data): writes what it can of 'data'; returns the
** number of bytes written (the Lua side loops), or nil, msg, code.  To a
** regular file the page cache cannot take at once it writes behind.
*/
static int f_write(lua_State *L) {
  loom_host *H = loom__host(L);
  loom_file *f = checkfile(L, "file:write");
  size_t len;
  const char *data = loom__checklstring(L, 2, "file:write", &len);
  int64_t at;
  fsreq *r;
  uv_buf_t b;
  int err;
  loom__enter(L, H, "file:write");
  if (!f->writable) return loom__fail(L, "write", f->path, UV_EBADF);
  if (f->werr != 0) return behind_failed(L, f);
  if (f->len > 0) {  /* unread buffered data: write where the reader is */
    f->pos -= (int64_t)f->len;
    f->len = f->start = 0;
    f->eof = 0;
  }
  at = f->append || !f->regular ? -1 : f->pos;
  if (f->regular && !f->append && !f->no_nowait_write && f->batch == NULL) {
    struct iovec iov;  /* the page cache may take it now */
    ssize_t n;
    iov.iov_base = (void *)data;
    iov.iov_len = len;
    do n = pwritev2(f->fd, &iov, 1, at, RWF_NOWAIT);
    while (n < 0 && errno == EINTR);
    if (n >= 0) {
      f->pos += n;
      lua_pushinteger(L, (lua_Integer)n);
      return 1;
    }
    if (errno == EOPNOTSUPP || errno == ENOSYS)
      f->no_nowait_write = 1;  /* ext4 refuses it for buffered writes */
    else if (errno != EAGAIN)
      return loom__fail(L, "write", f->path, uv_translate_sys_error(errno));
  }
  if (f->regular) {
    queue_piece(L, H, f, data, len, at);
    if (at >= 0) f->pos += (int64_t)len;
    behind_start(L, H, f);
    if (f->werr != 0) return behind_failed(L, f);
    f->then_n = (lua_Integer)len;
    if (f->qbytes >= BEHIND)
      return behind_wait(L, f, WANT_ROOM, then_written);
    return then_written(L, f);
  }
  r = req_new(L, OP_WRITE, "write", f->path);
  r->file = f;
  keep(L, H, r, 2);
  keep_file(L, H, r);
  f->busy = 1;
  b = uv_buf_init((char *)data, (unsigned)(len > 0x40000000 ? 0x40000000
                                                            : len));
  err = uv_fs_write(H->loop, &r->req, f->fd, &b, 1, at, fs_cb);
  return await_req(L, r, err);
}

/* The seek of 'f' to whence 'then_w', offset 'then_n'. */
static int then_seek(lua_State *L, loom_file *f) {
  int64_t to, off = f->then_n;
  if (f->werr != 0) return behind_failed(L, f);
  if (f->fd < 0) return loom__fail(L, "seek", f->path, UV_EBADF);
  if (f->then_w == 0) to = off;
  else if (f->then_w == 1) to = f->pos - (int64_t)f->len + off;
  else {
    struct stat st;
    if (fstat(f->fd, &st) != 0)
      return loom__fail(L, "seek", f->path, uv_translate_sys_error(errno));
    to = (int64_t)st.st_size + off;
  }
  if (to < 0) return loom__fail(L, "seek", f->path, UV_EINVAL);
  f->pos = to;
  f->len = f->start = 0;
  f->eof = 0;
  lua_pushinteger(L, (lua_Integer)to);
  return 1;
}

/*
** core.file_seek(f, whence, offset): the new position, once what is
** behind is written (an append moves the position to the end).
*/
static int f_seek(lua_State *L) {
  static const char *const whences[] = {"set", "cur", "end", NULL};
  loom_file *f = checkfile(L, "file:seek");
  int whence = loom__checkoption(L, 2, "file:seek", "cur", whences);
  lua_Integer off = loom__optinteger(L, 3, "file:seek", 0);
  int n;
  f->then_w = whence;
  f->then_n = off;
  if ((n = behind_first(L, f, "file:seek", then_seek)) >= 0) return n;
  return then_seek(L, f);
}

static int then_synced(lua_State *L, loom_file *f) {
  if (f->werr != 0) {
    int err = f->werr;
    f->werr = 0;
    return loom__fail(L, "sync", f->path, err);
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* file:sync(): what is behind, then fsync, on one worker */
static int f_sync(lua_State *L) {
  loom_host *H = loom__host(L);
  loom_file *f = checkfile(L, "file:sync");
  loom__enter(L, H, "file:sync");
  if (f->werr != 0) return behind_failed(L, f);
  f->sync_wanted = 1;
  behind_start(L, H, f);
  if (f->werr != 0) return then_synced(L, f);
  return behind_wait(L, f, WANT_DRAIN, then_synced);
}

static int push_fstat(lua_State *L, loom_file *f) {
  uv_fs_t req;
  int err;
  if (f->werr != 0) return behind_failed(L, f);
  if (f->fd < 0) return loom__fail(L, "stat", f->path, UV_EBADF);
  err = uv_fs_fstat(NULL, &req, f->fd, NULL);  /* no disk access */
  if (err < 0) {
    uv_fs_req_cleanup(&req);
    return loom__fail(L, "stat", f->path, err);
  }
  push_stat(L, &req.statbuf);
  uv_fs_req_cleanup(&req);
  return 1;
}

static int f_stat(lua_State *L) {
  loom_file *f = checkfile(L, "file:stat");
  int n = behind_first(L, f, "file:stat", push_fstat);
  return n >= 0 ? n : push_fstat(L, f);
}

static int then_closed(lua_State *L, loom_file *f) {
  int err = f->werr;
  if (f->fd >= 0) {
    close_fd(f);
    loom__untrack(L, 1);
  }
  f->werr = 0;
  if (err != 0) return loom__fail(L, "write", f->path, err);
  lua_pushboolean(L, 1);
  return 1;
}

/*
** file:close(), also __close: true, the second time too; what is
** written behind is waited for, and a failure of it is the answer (the
** file is closed all the same).  Outside a task, or where the task
** cannot wait, the file closes once the writes end.  While another
** task's read or write is in flight the worker still uses the buffer:
** nil, msg, "EBUSY", and the file closes when collected.
*/
static int f_close(lua_State *L) {
  loom_file *f = loom__checkobject_as(L, 1, &file_class, "file:close");
  loom_host *H;
  waiter_left(f);
  if (f->close_after) {  /* closing once the writes end */
    lua_pushboolean(L, 1);
    return 1;
  }
  if (f->fd >= 0 && f->busy) {
    return loom__fail_reason(L, "close", f->path,
                             "another task is using it", "EBUSY");
  }
  if (f->fd >= 0 && f->batch != NULL) {
    H = loom__host_of_state(L);
    if (H != NULL && H->current != NULL && !H->current->throwing &&
        lua_isyieldable(L)) {
      loom__enter(L, H, "file:close");
      return behind_wait(L, f, WANT_DRAIN, then_closed);
    }
    f->close_after = 1;
    loom__untrack(L, 1);
    lua_pushboolean(L, 1);
    return 1;
  }
  return then_closed(L, f);
}

static void file_free(loom_file *f) {
  if (f->fd >= 0) close(f->fd);
  f->fd = -1;
  free(f->buf);
  free(f->path);
  f->buf = f->path = NULL;
}

/*
** No request can be in flight: a request or a batch keeps its File
** alive, but for the finalizers of a state that closes.  A worker still
** writing the strings of a batch is waited for then, before they go.
*/
static int f_gc(lua_State *L) {
  loom_file *f = lua_touserdata(L, 1);
  wbatch *b = f->batch;
  loom__untrack(L, 1);
  if (b != NULL) {
    uv_mutex_lock(&b->mu);
    while (!b->done) uv_cond_wait(&b->cv, &b->mu);
    uv_mutex_unlock(&b->mu);
    b->f = NULL;  /* batch_done frees it */
    f->batch = NULL;
  }
  pieces_free(NULL, f->q, f->qn);
  f->q = NULL;
  f->qn = 0;
  loom_call_release(f->waiter);
  f->waiter = NULL;
  file_free(f);
  return 0;
}

static int f_tostring(lua_State *L) {
  loom_file *f = loom__checkobject(L, 1, &file_class);
  lua_pushfstring(L, "loom.file '%s'%s", f->path ? f->path : "?",
                  f->fd < 0 ? " (closed)" : "");
  return 1;
}

/* }==================================================================== */


/* {====================================================================
** Watching
** ===================================================================== */

typedef struct wevent {
  struct wevent *next;
  int change;              /* UV_RENAME or UV_CHANGE */
  char path[1];
} wevent;

typedef struct loom_watch {
  uv_fs_event_t h;
  struct loom_watcher *w;
  struct loom_watch *next;
  int is_file;             /* a file: its events name the file itself */
  char dir[1];             /* the path watched */
} loom_watch;

typedef struct loom_watcher {
  loom_handle base;        /* linked while open */
  loom_watch *watches;
  wevent *head, *tail;
  int n;
  int err;
  loom_task *waiters;
} loom_watcher;

static const loom_class watcher_class;

static void watch_closed(uv_handle_t *h) {
  free(h->data);
}

static void event_cb(uv_fs_event_t *h, const char *filename, int events,
                     int status) {
  loom_watch *wa = h->data;
  loom_watcher *w = wa->w;
  wevent *e;
  size_t n;
  if (w == NULL) return;
  if (status < 0) w->err = status;
  else if (w->n < 1024) {  /* beyond: dropped, the reader is too slow */
    n = strlen(wa->dir) + (filename ? strlen(filename) : 0) + 2;
    e = malloc(sizeof *e + n);
    if (e == NULL) return;
    e->next = NULL;
    e->change = (events & UV_RENAME) ? UV_RENAME : UV_CHANGE;
    if (filename != NULL && *filename != '\0' && !wa->is_file)
      snprintf(e->path, n + 1, "%s/%s", wa->dir, filename);
    else snprintf(e->path, n + 1, "%s", wa->dir);
    if (w->tail) w->tail->next = e;
    else w->head = e;
    w->tail = e;
    w->n++;
  }
  if (w->waiters != NULL)
    loom__list_wake(loom__handle_host(&w->base), &w->waiters);
}

/* core.watch_add(w, path): watches one more path; true or nil, msg, code */
static int w_add(lua_State *L) {
  loom_watcher *w = loom__checkhandle_as(L, 1, &watcher_class, "fs.watch");
  const char *path = loom__checkcstring(L, 2, "fs.watch");
  size_t len = strlen(path);
  loom_watch *wa = malloc(sizeof *wa + len);
  int err;
  if (wa == NULL) return loom__nomem(L);
  memcpy(wa->dir, path, len + 1);
  while (len > 1 && wa->dir[len - 1] == '/') wa->dir[--len] = '\0';
  {
    struct stat st;
    wa->is_file = stat(path, &st) == 0 && !S_ISDIR(st.st_mode);
  }
  uv_fs_event_init(loom__handle_host(&w->base)->loop, &wa->h);
  wa->h.data = wa;
  wa->w = w;
  err = uv_fs_event_start(&wa->h, event_cb, path, 0);
  if (err < 0) {
    uv_close((uv_handle_t *)&wa->h, watch_closed);
    return loom__fail(L, "watch", path, err);
  }
  wa->next = w->watches;
  w->watches = wa;
  lua_pushboolean(L, 1);
  return 1;
}

/* core.watcher(): an empty watcher */
static int l_watcher(lua_State *L) {
  loom__handle_new(L, loom__host(L), &watcher_class, sizeof(loom_watcher),
                   0);
  return 1;
}

static int w_next_k(lua_State *L, int status, lua_KContext ctx);

/*
** core.watch_next(w) (suspends): path, change, or nil when closed; the
** step of watcher:events(), a task's call even with an event waiting.
*/
static int w_next(lua_State *L) {
  loom_watcher **box = loom__checkobject_as(L, 1, &watcher_class,
                                            "watcher:events");
  loom_watcher *w = *box;
  wevent *e;
  loom__current(L, loom__host(L), "watcher:events");
  if (w == NULL) return 0;  /* closed */
  e = w->head;
  if (e != NULL) {
    w->head = e->next;
    if (w->head == NULL) w->tail = NULL;
    w->n--;
    lua_pushstring(L, e->path);
    lua_pushstring(L, e->change == UV_RENAME ? "rename" : "change");
    free(e);
    return 2;
  }
  if (w->err) return loom__fail(L, "watch", w->watches ? w->watches->dir : "?",
                          w->err);
  loom__list_wait(&w->waiters, loom__enter(L, loom__handle_host(&w->base),
                                           "watcher:events"));
  return loom__wait(L, w_next_k, 0);
}

static int w_next_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status; (void)ctx;
  loom__list_resumed(L, NULL);
  lua_settop(L, 1);
  return w_next(L);
}

/* Closes every watch of 'w' and wakes its readers, who find it closed. */
static void watcher_close_h(loom_handle *h, int why) {
  loom_watcher *w = (loom_watcher *)h;
  loom_host *H = loom__handle_host(h);
  loom_watch *wa;
  wevent *e, *next;
  (void)why;
  loom__handle_unlink(h);
  while ((wa = w->watches) != NULL) {
    w->watches = wa->next;
    wa->w = NULL;
    uv_close((uv_handle_t *)&wa->h, watch_closed);
  }
  for (e = w->head; e != NULL; e = next) {
    next = e->next;
    free(e);
  }
  w->head = w->tail = NULL;
  while (w->waiters != NULL) loom__list_wake(H, &w->waiters);
  free(w);
}

/* }==================================================================== */


static const luaL_Reg file_methods[] = {
  {"_read", f_read},
  {"_read_line", f_read_line},
  {"_read_all", f_read_all},
  {"_write", f_write},
  {"seek", f_seek},
  {"sync", f_sync},
  {"stat", f_stat},
  {"close", f_close},
  {NULL, NULL}
};

static const luaL_Reg watcher_methods[] = {
  {"_add", w_add},
  {"_next", w_next},
  {NULL, NULL}
};

static const luaL_Reg funcs[] = {
  {"open", l_open},
  {"read_file", l_read_file},
  {"stop_flag", l_stop_flag},
  {"stop", l_stop},
  {"write_file", l_write_file},
  {"append_file", l_append_file},
  {"stat", l_stat},
  {"lstat", l_lstat},
  {"list", l_scandir},
  {"mkdir", l_mkdir},
  {"rmdir", l_rmdir},
  {"unlink", l_unlink},
  {"rename", l_rename},
  {"copy", l_copy},
  {"symlink", l_symlink},
  {"readlink", l_readlink},
  {"realpath", l_realpath},
  {"chmod", l_chmod},
  {"mkdtemp", l_mkdtemp},
  {"watcher", l_watcher},
  {NULL, NULL}
};

static const luaL_Reg file_meta[] = {
  {"__close", f_close},
  {"__gc", f_gc},
  {"__tostring", f_tostring},
  {NULL, NULL}
};

static const loom_class file_class = {
  .name = LOOM_FILE_MT,
  .methods = file_methods,
  .meta = file_meta
};

static const loom_class watcher_class = {
  .name = LOOM_WATCHER_MT,
  .noun = "watcher",
  .methods = watcher_methods,
  .close = watcher_close_h
};

void loom__fs_register(lua_State *L, loom_host *H) {
  (void)H;
  loom__class_register(L, &file_class);
  loom__class_register(L, &stop_class);
  loom__class_register(L, &watcher_class);
  lua_createtable(L, 0, 20);
  loom__push_box(L);
  luaL_setfuncs(L, funcs, 1);
  loom__class_methods(L, &file_class);
  lua_setfield(L, -2, "file_methods");
  loom__class_methods(L, &watcher_class);
  lua_setfield(L, -2, "watcher_methods");
  lua_setfield(L, -2, "fs");
}
