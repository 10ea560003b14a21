/*
** work.c: loom.work(fn, ...), blocking work off the loop.
**
** 'fn' is dumped to bytecode on the loop thread, its arguments are
** encoded into a byte buffer, and the job goes to libuv's thread pool.
** There a worker takes a Lua state from the host's pool (or makes one,
** with the standard libraries), loads the bytecode, decodes the
** arguments, runs it, encodes the results (or the error) and gives the
** state back.  The calling task waits on a loom_call, the mechanism
** embedders use, and decodes the results when it resumes.  A task
** cancelled meanwhile lets the job finish (a running Lua function
** cannot be stopped); its results are dropped and the state still goes
** back to the pool.
**
** Only nil, booleans, numbers, strings and tables of them cross; a
** function, userdata, thread or a table cycle is refused with the path
** of the value: loom.work's argument number and the path in it
** ("bad argument #3 to 'loom.work' (.config.cb: a function ...)").
*/
#include <stdlib.h>
#include <string.h>

#include <lualib.h>

#include "internal.h"

#define POOL_MAX 16    /* idle worker states kept */
#define MAX_DEPTH 200  /* table nesting */

/* {====================================================================
** The pool of worker states, shared with the threads; it goes with the
** host and the last job (see call.c for the same pattern).
** ===================================================================== */

struct loom_workpool {
  loom_handle base;  /* on the host's list until the host closes */
  uv_mutex_t mu;
  int refs;
  int n;
  lua_State *states[POOL_MAX];
};

static loom_workpool *pool_ref(loom_workpool *p) {
  uv_mutex_lock(&p->mu);
  p->refs++;
  uv_mutex_unlock(&p->mu);
  return p;
}

static void pool_unref(loom_workpool *p) {
  int last, i;
  uv_mutex_lock(&p->mu);
  last = --p->refs == 0;
  uv_mutex_unlock(&p->mu);
  if (!last) return;
  for (i = 0; i < p->n; i++) lua_close(p->states[i]);
  uv_mutex_destroy(&p->mu);
  free(p);
}

static lua_State *pool_take(loom_workpool *p) {
  lua_State *L = NULL;
  uv_mutex_lock(&p->mu);
  if (p->n > 0) L = p->states[--p->n];
  uv_mutex_unlock(&p->mu);
  if (L == NULL && (L = luaL_newstate()) != NULL) luaL_openlibs(L);
  return L;
}

static void pool_give(loom_workpool *p, lua_State *L) {
  uv_mutex_lock(&p->mu);
  if (p->n < POOL_MAX) {
    lua_settop(L, 0);
    p->states[p->n++] = L;
    L = NULL;
  }
  uv_mutex_unlock(&p->mu);
  if (L != NULL) lua_close(L);
}

/* The host closes: it lets go of the pool; jobs in flight keep it. */
static void pool_close_h(loom_handle *h, int why) {
  (void)why;
  loom__handle_host(h)->workpool = NULL;
  loom__handle_unlink(h);
  pool_unref((loom_workpool *)h);
}

static const loom_class pool_class = {
  .name = "loom.workpool",
  .close = pool_close_h
};

/* The host's pool, made on the first job; NULL on lack of memory. */
static loom_workpool *pool_of(loom_host *H) {
  loom_workpool *p = H->workpool;
  if (p != NULL) return p;
  p = loom__handle_alloc(H, &pool_class, sizeof *p);
  if (p == NULL) return NULL;
  if (uv_mutex_init(&p->mu) != 0) {
    loom__handle_unlink(&p->base);
    free(p);
    return NULL;
  }
  p->refs = 1;
  return H->workpool = p;
}

/* }==================================================================== */


/* {====================================================================
** Copying values through a byte buffer
** ===================================================================== */

typedef struct {
  char *p;
  size_t len, cap;
} buffer;

static int buf_add(buffer *b, const void *data, size_t n) {
  if (b->len + n > b->cap) {
    size_t cap = b->cap ? b->cap : 256;
    char *p;
    while (cap < b->len + n) cap *= 2;
    p = realloc(b->p, cap);
    if (p == NULL) return 0;
    b->p = p;
    b->cap = cap;
  }
  memcpy(b->p + b->len, data, n);
  b->len += n;
  return 1;
}

/* The state of one encoding: where errors go and the path so far. */
typedef struct {
  lua_State *L;
  buffer *b;
  int seen;            /* index of the table of tables being encoded */
  char path[256];
  size_t pathlen;
  const char *error;   /* set on failure (a static message) */
  const char *what;    /* the type refused */
} encoder;

static void path_push(encoder *e, lua_State *L, int keyidx, size_t *saved) {
  size_t room = sizeof e->path - e->pathlen;
  int n;
  *saved = e->pathlen;
  if (lua_type(L, keyidx) == LUA_TSTRING)
    n = snprintf(e->path + e->pathlen, room, ".%s", lua_tostring(L, keyidx));
  else if (lua_type(L, keyidx) == LUA_TNUMBER)
    n = snprintf(e->path + e->pathlen, room, "[%s]",
                 lua_tostring(L, keyidx) ? lua_tostring(L, keyidx) : "?");
  else
    n = snprintf(e->path + e->pathlen, room, "[%s]",
                 luaL_typename(L, keyidx));
  if (n > 0) e->pathlen += (size_t)n < room ? (size_t)n : room - 1;
}

static int encode(encoder *e, int idx, int depth);

static int encode_table(encoder *e, int idx, int depth) {
  lua_State *L = e->L;
  char tag = '{';
  if (depth > MAX_DEPTH || !lua_checkstack(L, 8)) {
    e->error = "tables nested too deep";
    return 0;
  }
  lua_pushvalue(L, idx);
  if (lua_rawget(L, e->seen) != LUA_TNIL) {
    lua_pop(L, 1);
    e->error = "a table that contains itself (a cycle)";
    return 0;
  }
  lua_pop(L, 1);
  lua_pushvalue(L, idx);
  lua_pushboolean(L, 1);
  lua_rawset(L, e->seen);
  if (!buf_add(e->b, &tag, 1)) return 0;
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    size_t saved;
    int top = lua_gettop(L);
    lua_pushvalue(L, top - 1);  /* a copy of the key: tostring may change it */
    path_push(e, L, top + 1, &saved);
    if (!encode(e, top - 1, depth + 1) || !encode(e, top, depth + 1)) {
      lua_settop(L, top);
      return 0;
    }
    e->pathlen = saved;
    e->path[saved] = '\0';
    lua_settop(L, top - 1);  /* keep the key */
  }
  lua_pushvalue(L, idx);
  lua_pushnil(L);
  lua_rawset(L, e->seen);  /* a table met again elsewhere is no cycle */
  tag = '}';
  return buf_add(e->b, &tag, 1);
}

/* Appends the value at 'idx'; returns 0 with e->error set on failure. */
static int encode(encoder *e, int idx, int depth) {
  lua_State *L = e->L;
  char tag;
  idx = lua_absindex(L, idx);
  switch (lua_type(L, idx)) {
    case LUA_TNIL:
      tag = 'n';
      return buf_add(e->b, &tag, 1);
    case LUA_TBOOLEAN:
      tag = lua_toboolean(L, idx) ? 't' : 'f';
      return buf_add(e->b, &tag, 1);
    case LUA_TNUMBER:
      if (lua_isinteger(L, idx)) {
        lua_Integer i = lua_tointeger(L, idx);
        tag = 'i';
        return buf_add(e->b, &tag, 1) && buf_add(e->b, &i, sizeof i);
      }
      else {
        lua_Number d = lua_tonumber(L, idx);
        tag = 'd';
        return buf_add(e->b, &tag, 1) && buf_add(e->b, &d, sizeof d);
      }
    case LUA_TSTRING: {
      size_t len;
      const char *s = lua_tolstring(L, idx, &len);
      tag = 's';
      return buf_add(e->b, &tag, 1) && buf_add(e->b, &len, sizeof len)
             && buf_add(e->b, s, len);
    }
    case LUA_TTABLE:
      return encode_table(e, idx, depth);
    default:
      e->error = "cannot be copied to another Lua state";
      e->what = luaL_typename(L, idx);
      return 0;
  }
}

/*
** Encodes the 'n' values from 'first' into 'b', naming them "<label> i"
** in errors ('label' NULL: by their path in the value alone).  Returns
** 0, or with the error message pushed the position (1..n) of the value
** that could not be copied, -1 when memory ran out.
*/
static int encode_values(lua_State *L, buffer *b, int first, int n,
                         const char *label) {
  encoder e;
  int i, ok = 1;
  lua_Integer count = n;
  if (!buf_add(b, &count, sizeof count)) {
    lua_pushliteral(L, "not enough memory");
    return -1;
  }
  memset(&e, 0, sizeof e);
  e.L = L;
  e.b = b;
  lua_newtable(L);
  e.seen = lua_gettop(L);
  for (i = 0; i < n && ok; i++) {
    e.pathlen = label == NULL ? 0 : (size_t)snprintf(e.path, sizeof e.path,
                                                     "%s %d ", label, i + 1);
    e.path[e.pathlen] = '\0';
    ok = encode(&e, first + i, 0);
  }
  lua_remove(L, e.seen);
  if (ok) return 0;
  if (e.pathlen > 0 && e.path[e.pathlen - 1] == ' ')
    e.path[--e.pathlen] = '\0';  /* "result 2", not "result 2 " */
  if (e.error == NULL) {
    lua_pushliteral(L, "not enough memory");
    return -1;
  }
  lua_pushfstring(L, "%s%s", e.path, e.pathlen > 0 ? ": " : "");
  if (e.what != NULL) lua_pushfstring(L, "a %s %s", e.what, e.error);
  else lua_pushstring(L, e.error);
  lua_concat(L, 2);
  return i;
}

typedef struct {
  const char *p, *end;
} reader;

static int rd(reader *r, void *out, size_t n) {
  if ((size_t)(r->end - r->p) < n) return 0;
  memcpy(out, r->p, n);
  r->p += n;
  return 1;
}

/* Pushes the next value; returns 0 on a malformed buffer. */
static int decode(lua_State *L, reader *r) {
  char tag;
  if (!rd(r, &tag, 1) || !lua_checkstack(L, 4)) return 0;
  switch (tag) {
    case 'n': lua_pushnil(L); return 1;
    case 't': lua_pushboolean(L, 1); return 1;
    case 'f': lua_pushboolean(L, 0); return 1;
    case 'i': {
      lua_Integer i;
      if (!rd(r, &i, sizeof i)) return 0;
      lua_pushinteger(L, i);
      return 1;
    }
    case 'd': {
      lua_Number d;
      if (!rd(r, &d, sizeof d)) return 0;
      lua_pushnumber(L, d);
      return 1;
    }
    case 's': {
      size_t len;
      if (!rd(r, &len, sizeof len) || (size_t)(r->end - r->p) < len) return 0;
      lua_pushlstring(L, r->p, len);
      r->p += len;
      return 1;
    }
    case '{':
      lua_newtable(L);
      while (r->p < r->end && *r->p != '}') {
        if (!decode(L, r) || !decode(L, r)) return 0;
        lua_rawset(L, -3);
      }
      r->p++;
      return 1;
    default:
      return 0;
  }
}

/* Pushes the values of buffer 'b'; returns how many (or -1). */
static int decode_values(lua_State *L, const buffer *b) {
  reader r;
  lua_Integer n, i;
  r.p = b->p;
  r.end = b->p + b->len;
  if (!rd(&r, &n, sizeof n)) return -1;
  if (!lua_checkstack(L, (int)n + 1)) return -1;
  for (i = 0; i < n; i++)
    if (!decode(L, &r)) return -1;
  return (int)n;
}

/* }==================================================================== */


/* {====================================================================
** Jobs
** ===================================================================== */

typedef struct {
  uv_work_t req;
  loom_call *call;
  loom_workpool *pool;
  buffer code;      /* the function's bytecode */
  buffer args;      /* its arguments */
  buffer out;       /* results, or the error value */
  int failed;       /* 'out' holds the error */
  char *message;    /* a failure of the job itself (malloc'd) */
} job;

static void job_free(job *j) {
  free(j->code.p);
  free(j->args.p);
  free(j->out.p);
  free(j->message);
  free(j);
}

static int writer(lua_State *L, const void *p, size_t sz, void *ud) {
  (void)L;
  return buf_add(ud, p, sz) ? 0 : 1;
}

static int msghandler(lua_State *L) {
  if (lua_type(L, 1) == LUA_TSTRING || lua_type(L, 1) == LUA_TTABLE
      || lua_isnoneornil(L, 1))
    return 1;  /* strings and tables cross as they are */
  lua_pushstring(L, luaL_tolstring(L, 1, NULL));
  return 1;
}

/* Runs in the worker's state 'W': returns 0 or sets j->message. */
static void run_job(job *j, lua_State *W) {
  int n, base = lua_gettop(W);
  lua_pushcfunction(W, msghandler);
  if (luaL_loadbufferx(W, j->code.p, j->code.len, "=loom.work", "b")
      != LUA_OK || (n = decode_values(W, &j->args)) < 0) {
    j->message = strdup("loom.work: the function could not be loaded");
    return;
  }
  if (lua_pcall(W, n, LUA_MULTRET, base + 1) != LUA_OK) {
    j->failed = 1;
    if (encode_values(W, &j->out, lua_gettop(W), 1, "error")) {
      const char *m = lua_tostring(W, -1);
      size_t len = strlen(m) + sizeof "loom.work: ";
      j->message = malloc(len);
      if (j->message) snprintf(j->message, len, "loom.work: %s", m);
    }
    return;
  }
  n = lua_gettop(W) - base - 1;
  if (encode_values(W, &j->out, base + 2, n, "result")) {
    const char *m = lua_tostring(W, -1);
    size_t len = strlen(m) + sizeof "loom.work: ";
    j->message = malloc(len);
    if (j->message) snprintf(j->message, len, "loom.work: %s", m);
  }
}

static void work_cb(uv_work_t *req) {
  job *j = (job *)req;
  lua_State *W = pool_take(j->pool);
  if (W == NULL) {
    j->message = strdup("loom.work: not enough memory for a Lua state");
    return;
  }
  run_job(j, W);
  pool_give(j->pool, W);
}

/* Runs in the caller's task: push the results or raise the error. */
static int push_results(lua_State *L, void *ud) {
  job *j = ud;
  int n;
  if (L == NULL) {  /* the caller is gone */
    job_free(j);
    return 0;
  }
  if (j->message != NULL) {
    lua_pushstring(L, j->message);
    job_free(j);
    return lua_error(L);
  }
  n = decode_values(L, &j->out);
  if (n < 0) {
    job_free(j);
    return loom__errorf(L, "loom.work: the results could not be read");
  }
  if (j->failed) {
    job_free(j);
    return lua_error(L);
  }
  job_free(j);
  return n;
}

static void after_cb(uv_work_t *req, int status) {
  job *j = (job *)req;
  loom_call *c = j->call;
  loom_workpool *p = j->pool;
  if (status == UV_ECANCELED && j->message == NULL)
    j->message = strdup("loom.work: the job was cancelled");
  if (loom_call_complete(c, push_results, j) != LOOM_OK) job_free(j);
  loom_call_release(c);
  pool_unref(p);
}

/* Raises unless 'fn' (at 1) is a Lua function whose only upvalue is _ENV. */
static void check_function(lua_State *L) {
  lua_Debug ar;
  const char *name;
  int i;
  loom__checktype(L, 1, "loom.work", LUA_TFUNCTION);
  lua_pushvalue(L, 1);
  lua_getinfo(L, ">S", &ar);
  if (*ar.what == 'C')
    loom__argerror(L, 1, "loom.work",
                   "a Lua function expected, not a C function");
  for (i = 1; (name = lua_getupvalue(L, 1, i)) != NULL; i++) {
    lua_pop(L, 1);
    if (strcmp(name, "_ENV") != 0)
      loom__errorf(L, "loom.work: the function has upvalue '%s' (only _ENV "
                      "is carried to the worker; pass values as arguments)",
                   *name ? name : "?");
  }
}

/* loom.work(fn, ...) (suspends) */
static int l_work(lua_State *L) {
  loom_host *H = loom__host(L);
  int n = lua_gettop(L) - 1, r;
  job *j;
  int bad;
  check_function(L);
  loom__enter(L, H, "loom.work");  /* raises here, before allocating */
  j = calloc(1, sizeof *j);
  if (j == NULL) return loom__nomem(L);
  lua_pushvalue(L, 1);  /* lua_dump takes the function on top */
  r = lua_dump(L, writer, &j->code, 0);
  lua_pop(L, 1);
  if (r != 0) {
    job_free(j);
    return loom__nomem(L);
  }
  bad = encode_values(L, &j->args, 2, n, NULL);
  if (bad != 0) {  /* the job's argument 'bad' is loom.work's 'bad + 1' */
    job_free(j);
    if (bad < 0) return loom__nomem(L);
    return loom__argerror(L, bad + 1, "loom.work", lua_tostring(L, -1));
  }
  if (pool_of(H) == NULL) {
    job_free(j);
    return loom__nomem(L);
  }
  j->pool = pool_ref(H->workpool);
  r = uv_queue_work(H->loop, &j->req, work_cb, after_cb);
  if (r != 0) {
    pool_unref(j->pool);
    job_free(j);
    return loom__errorf(L, "loom.work: %s", uv_strerror(r));
  }
  /* after_cb runs on this thread, so not before this function returns */
  j->call = loom_call_new(L);
  return loom_call_await(L, j->call);
}

static const luaL_Reg funcs[] = {
  {"work", l_work},
  {NULL, NULL}
};

void loom__work_register(lua_State *L, loom_host *H) {
  (void)H;
  loom__push_box(L);
  luaL_setfuncs(L, funcs, 1);
}

/* }==================================================================== */
