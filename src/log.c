/*
** log.c: the writer of loom.log (the Lua side is lua/loom/log.lua) and
** of loom's own reports: uncaught errors, failing handlers and debug
** warnings (error.c hands them over through H->log), so that all share
** one format and no record ever cuts into another.
**
** A record is one line: the time (local, to the millisecond; UTC with
** LOOM_LOG_UTC=1), the level, the name of the task that logs, as it is
** when the line is written, and the message; the further lines of a
** message with newlines follow, indented.  loom.log.format("json")
** makes each record one JSON object instead (ts, level, task, msg).
**
** Records go to standard error's sink (stdio.c), which writes at once
** what the kernel takes and queues the rest for the loop: logging never
** waits.  The queue has a bound: a record that does not fit is dropped,
** and so are those after it until the queue has emptied, when a single
** record says how many were.  loom.log.to(path) sends the records to a
** file (appended, written synchronously, as files are), to(stream) to
** any loom stream.
*/
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

#define LOG_BOUND (1024 * 1024)  /* bytes queued past which lines drop */

struct loom_logger {
  loom_handle base;
  int level;                /* LOOM_LOG_*: the threshold */
  unsigned json : 1, utc : 1;
  unsigned dropping : 1;    /* dropping until the queue has emptied */
  size_t dropped;           /* lines dropped meanwhile */
  loom_sink *file;          /* to(path): its sink, or NULL */
  loom_stream **target;     /* to(stream): the stream's box, or NULL */
  int target_ref;           /* registry: that stream */
};

static const char *const level_names[] = {"debug", "info", "warn", "error",
                                          NULL};
static const char *const level_tags[] = {"DEBUG", "INFO ", "WARN ",
                                         "ERROR"};
static const char *const format_names[] = {"text", "json", NULL};


/* {====================================================================
** Records
** ===================================================================== */

/* A growing string, with no Lua state (the notice is made without). */
typedef struct {
  char *p;
  size_t n, cap;
  int oom;
} sbuf;

static void sb_add(sbuf *b, const char *s, size_t n) {
  if (b->oom) return;
  if (b->n + n > b->cap) {
    size_t cap = b->cap ? b->cap : 256;
    char *p;
    while (cap < b->n + n) cap *= 2;
    p = realloc(b->p, cap);
    if (p == NULL) {
      b->oom = 1;
      return;
    }
    b->p = p;
    b->cap = cap;
  }
  memcpy(b->p + b->n, s, n);
  b->n += n;
}

static void sb_str(sbuf *b, const char *s) {
  sb_add(b, s, strlen(s));
}

/* The time now, as text ('iso': the JSON form, with 'T' and offset). */
static void add_time(sbuf *b, int utc, int iso) {
  struct timespec ts;
  struct tm tm;
  char buf[64];
  size_t n;
  clock_gettime(CLOCK_REALTIME, &ts);
  if (utc) gmtime_r(&ts.tv_sec, &tm);
  else localtime_r(&ts.tv_sec, &tm);
  n = strftime(buf, sizeof buf, iso ? "%Y-%m-%dT%H:%M:%S"
                                    : "%Y-%m-%d %H:%M:%S", &tm);
  n += (size_t)snprintf(buf + n, sizeof buf - n, ".%03d",
                        (int)(ts.tv_nsec / 1000000));
  if (utc) buf[n++] = 'Z';
  else if (iso && strftime(buf + n, sizeof buf - n, "%z", &tm) == 5) {
    memmove(buf + n + 4, buf + n + 3, 2);  /* +0100 -> +01:00 */
    buf[n + 3] = ':';
    n += 6;
  }
  sb_add(b, buf, n);
}

/* 's' as a JSON string (UTF-8 passes as it is). */
static void add_json_string(sbuf *b, const char *s, size_t n) {
  size_t i;
  sb_add(b, "\"", 1);
  for (i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    char esc[8];
    if (c == '"' || c == '\\') {
      esc[0] = '\\';
      esc[1] = (char)c;
      sb_add(b, esc, 2);
    }
    else if (c == '\n') sb_add(b, "\\n", 2);
    else if (c == '\t') sb_add(b, "\\t", 2);
    else if (c == '\r') sb_add(b, "\\r", 2);
    else if (c < 0x20) {
      snprintf(esc, sizeof esc, "\\u%04x", c);
      sb_add(b, esc, 6);
    }
    else sb_add(b, s + i, 1);
  }
  sb_add(b, "\"", 1);
}

/* A message's lines after the first, indented ('msg' ends with no \n). */
static void add_text_message(sbuf *b, const char *msg, size_t n) {
  const char *nl;
  while ((nl = memchr(msg, '\n', n)) != NULL) {
    sb_add(b, msg, (size_t)(nl - msg));
    sb_add(b, "\n  ", 3);
    n -= (size_t)(nl - msg) + 1;
    msg = nl + 1;
  }
  sb_add(b, msg, n);
}

/*
** Makes the record of 'msg' at 'level' by task 'task' (NULL: none) in
** 'b', in the log's format.
*/
static void make_record(loom_logger *lg, sbuf *b, int level, const char *task,
                        const char *msg, size_t n) {
  while (n > 0 && msg[n - 1] == '\n') n--;
  if (lg->json) {
    sb_str(b, "{\"ts\":\"");
    add_time(b, lg->utc, 1);
    sb_str(b, "\",\"level\":\"");
    sb_str(b, level_names[level]);
    sb_str(b, "\",\"task\":");
    if (task != NULL) add_json_string(b, task, strlen(task));
    else sb_str(b, "null");
    sb_str(b, ",\"msg\":");
    add_json_string(b, msg, n);
    sb_str(b, "}\n");
    return;
  }
  add_time(b, lg->utc, 0);
  sb_add(b, " ", 1);
  sb_str(b, level_tags[level]);
  sb_str(b, " [");
  sb_str(b, task != NULL ? task : "-");
  sb_str(b, "] ");
  add_text_message(b, msg, n);
  sb_add(b, "\n", 1);
}

/* }==================================================================== */


/* {====================================================================
** Writing
** ===================================================================== */

static void sink_drained(loom_sink *k, void *ud);

/* The sink of the log's target, or NULL for a stream (or nothing). */
static loom_sink *target_sink(loom_host *H, loom_logger *lg) {
  loom_sink *k;
  if (lg->file != NULL) return lg->file;
  if (lg->target != NULL && *lg->target != NULL)
    return loom__stream_sink(*lg->target);  /* loom.stderr: its sink */
  k = loom__stdio_sink(H, 2);
  if (k != NULL) loom__sink_on_drained(k, sink_drained, H);
  return k;
}

static void write_notice(loom_host *H, loom_logger *lg);

/*
** Writes the record in 'b' to the target, or drops it when the target's
** queue is full: 0, or UV_ENOBUFS when dropped, or a write error.
*/
static int put_record(loom_host *H, loom_logger *lg, sbuf *b) {
  loom_sink *k = target_sink(H, lg);
  loom_stream *s = k == NULL && lg->target != NULL ? *lg->target : NULL;
  size_t queued;
  int r;
  if (k == NULL && s == NULL) return UV_EBADF;
  queued = k != NULL ? loom__sink_queued(k) : loom__stream_queued(s);
  if (lg->dropping && queued > 0) return UV_ENOBUFS;
  if (lg->dropping) write_notice(H, lg);  /* a stream's queue emptied */
  if (k != NULL) return loom__sink_write(k, b->p, b->n, LOG_BOUND);
  if (queued + b->n > LOG_BOUND) return UV_ENOBUFS;
  r = loom__stream_put(s, b->p, b->n);
  return r;
}

/*
** Writes a record.  What cannot be written where the log goes (a
** stream closed or failed) goes to standard error; what cannot be made
** (no memory) goes to C's stderr as it is.
*/
static void log_record(loom_host *H, loom_logger *lg, int level,
                       const char *task, const char *msg, size_t n) {
  sbuf b = {NULL, 0, 0, 0};
  int r;
  make_record(lg, &b, level, task, msg, n);
  if (b.oom) {
    fprintf(stderr, "loom: %.*s\n", (int)n, msg);
    free(b.p);
    return;
  }
  r = put_record(H, lg, &b);
  if (r == UV_ENOBUFS) {
    lg->dropping = 1;
    lg->dropped++;
  }
  else if (r < 0 && lg->target != NULL) {
    luaL_unref(H->mainL, LUA_REGISTRYINDEX, lg->target_ref);
    lg->target = NULL;
    lg->target_ref = LUA_NOREF;
    r = put_record(H, lg, &b);  /* to standard error */
  }
  if (r == UV_EBADF) {  /* no sink: the host closes */
    fwrite(b.p, 1, b.n, stderr);
    fflush(stderr);
  }
  free(b.p);
}

/* The record that says how many were dropped; the drops end. */
static void write_notice(loom_host *H, loom_logger *lg) {
  char msg[64];
  size_t n = lg->dropped;
  lg->dropping = 0;
  lg->dropped = 0;
  if (n == 0) return;
  snprintf(msg, sizeof msg, "%zu log line%s dropped", n, n == 1 ? "" : "s");
  log_record(H, lg, LOOM_LOG_WARN, NULL, msg, strlen(msg));
}

/* A sink's queue emptied: the notice, if lines were dropped. */
static void sink_drained(loom_sink *k, void *ud) {
  loom_host *H = ud;
  (void)k;
  if (H->log != NULL && H->log->dropping) write_notice(H, H->log);
}

/*
** Logs 'msg' (and 'trace' below it, when not empty) at 'level' under
** the name of the running task, if the level passes.  With no log (a
** host closing), it goes to C's stderr.
*/
static void host_log(loom_host *H, int level, const char *msg,
                     const char *trace) {
  loom_logger *lg = H->log;
  lua_State *L = H->L;
  const char *task = NULL;
  int top = -1;
  if (lg == NULL) {
    fprintf(stderr, "loom: %s\n", msg);
    if (trace != NULL && *trace != '\0') fprintf(stderr, "%s\n", trace);
    fflush(stderr);
    return;
  }
  if (level < lg->level) return;
  if (H->current != NULL && L != NULL) {
    top = lua_gettop(L);
    loom__push_task(L, H, H->current);
    loom__push_name(L, -1);
    task = lua_tostring(L, -1);
  }
  if (trace != NULL && *trace != '\0') {
    sbuf b = {NULL, 0, 0, 0};
    sb_str(&b, msg);
    sb_add(&b, "\n", 1);
    sb_str(&b, trace);
    if (!b.oom) log_record(H, lg, level, task, b.p, b.n);
    else log_record(H, lg, level, task, msg, strlen(msg));
    free(b.p);
  }
  else log_record(H, lg, level, task, msg, strlen(msg));
  if (top >= 0) lua_settop(L, top);
}

/* See loom.h. */
LOOM_API void loom_log(loom_host *H, int level, const char *msg) {
  if (H == NULL || H->closed || msg == NULL) return;
  if (level < LOOM_LOG_DEBUG) level = LOOM_LOG_DEBUG;
  if (level > LOOM_LOG_ERROR) level = LOOM_LOG_ERROR;
  host_log(H, level, msg, NULL);
}

/* }==================================================================== */


/* {====================================================================
** The Lua side: core.log_*
** ===================================================================== */

static loom_logger *log_of(lua_State *L) {
  loom_host *H = loom__host(L);
  if (H->log == NULL) luaL_error(L, "loom: the log is closed");
  return H->log;
}

/* core.log_write(level, msg): a record, if the level passes */
static int l_log_write(lua_State *L) {
  loom_host *H = loom__host(L);
  int level = (int)luaL_checkinteger(L, 1);
  size_t n;
  const char *msg = luaL_checklstring(L, 2, &n);
  loom_logger *lg = log_of(L);
  const char *task = NULL;
  luaL_argcheck(L, level >= 0 && level <= LOOM_LOG_ERROR, 1, "bad level");
  if (level < lg->level) return 0;
  if (H->current != NULL) {
    loom__push_task(L, H, H->current);
    loom__push_name(L, -1);
    task = lua_tostring(L, -1);
  }
  log_record(H, lg, level, task, msg, n);
  return 0;
}

/*
** core.log_level([name]): the threshold's name; sets it when given.
** core.log_format([name]) likewise.
*/
static int l_log_level(lua_State *L) {
  loom_logger *lg = log_of(L);
  lua_pushstring(L, level_names[lg->level]);
  if (!lua_isnoneornil(L, 1))
    lg->level = loom__checkoption(L, 1, "loom.log.level", NULL,
                                  level_names);
  return 1;
}

static int l_log_format(lua_State *L) {
  loom_logger *lg = log_of(L);
  lua_pushstring(L, format_names[lg->json]);
  if (!lua_isnoneornil(L, 1))
    lg->json = loom__checkoption(L, 1, "loom.log.format", NULL,
                                 format_names) == 1;
  return 1;
}

/* Stops sending to a file or a stream: back to standard error. */
static void untarget(lua_State *L, loom_logger *lg) {
  if (lg->file != NULL) loom__sink_close(lg->file);
  lg->file = NULL;
  luaL_unref(L, LUA_REGISTRYINDEX, lg->target_ref);
  lg->target_ref = LUA_NOREF;
  lg->target = NULL;
}

/*
** core.log_to(path | stream | nil): records go to the file 'path'
** (created if need be, appended to), to a loom stream, or (nil) back to
** standard error.  true, or nil, msg, code when the file cannot be
** opened.
*/
static int l_log_to(lua_State *L) {
  loom_host *H = loom__host(L);
  loom_logger *lg = log_of(L);
  if (lua_type(L, 1) == LUA_TSTRING) {
    const char *path = loom__checkcstring(L, 1, "loom.log.to");
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    loom_sink *k;
    if (fd < 0) return loom__fail(L, "open", path, -errno);
    k = loom__sink_new(H, fd, 1);
    if (k == NULL) {
      close(fd);
      return loom__nomem(L);
    }
    untarget(L, lg);
    lg->file = k;
    loom__sink_on_drained(k, sink_drained, H);
  }
  else if (!lua_isnoneornil(L, 1)) {
    loom_stream *s;
    if (lua_type(L, 1) != LUA_TUSERDATA)
      loom__typeerror(L, 1, "loom.log.to", "path or stream");
    s = loom__tostream(L, 1, "loom.log.to");
    if (s == NULL)
      return loom__errorf(L, "attempt to use a closed stream");
    untarget(L, lg);
    lua_pushvalue(L, 1);
    lg->target_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lg->target = lua_touserdata(L, 1);
  }
  else untarget(L, lg);
  lua_pushboolean(L, 1);
  return 1;
}

/* }==================================================================== */


/* The host closes: a file the log writes to is closed. */
static void log_close_h(loom_handle *h, int why) {
  loom_logger *lg = (loom_logger *)h;
  loom_host *H = loom__handle_host(h);
  (void)why;
  loom__handle_unlink(h);
  if (lg->file != NULL) loom__sink_close(lg->file);
  if (H != NULL) {
    H->log = NULL;
    if (!H->state_closing)
      luaL_unref(H->mainL, LUA_REGISTRYINDEX, lg->target_ref);
  }
  free(lg);
}

static const loom_class log_class = {
  .name = "loom.log",
  .close = log_close_h
};

/* The level named by the environment variable 'var', or 'def'. */
static int env_level(const char *var, int def) {
  const char *v = getenv(var);
  int i;
  if (v == NULL) return def;
  for (i = 0; level_names[i] != NULL; i++)
    if (strcmp(level_names[i], v) == 0) return i;
  return def;
}

static const luaL_Reg funcs[] = {
  {"log_write", l_log_write},
  {"log_level", l_log_level},
  {"log_format", l_log_format},
  {"log_to", l_log_to},
  {NULL, NULL}
};

/*
** The host's log (once), set from LOOM_LOG and LOOM_LOG_UTC; core.log_*.
** Standard error's sink tells the log when its queue empties.
*/
void loom__log_register(lua_State *L, loom_host *H) {
  loom__push_box(L);
  luaL_setfuncs(L, funcs, 1);
  if (H->log == NULL) {
    loom_logger *lg = loom__handle_alloc(H, &log_class, sizeof *lg);
    const char *utc = getenv("LOOM_LOG_UTC");
    if (lg == NULL) loom__nomem(L);
    lg->level = env_level("LOOM_LOG", LOOM_LOG_INFO);
    lg->utc = utc != NULL && *utc != '\0' && strcmp(utc, "0") != 0;
    lg->target_ref = LUA_NOREF;
    H->log = lg;
    H->log_fn = host_log;
  }
}
