/*
** stream_reader: loom.Stream's readers (src/stream.c: read_line,
** read_until, read_exactly, read, read_all) on bytes that come in
** chunks cut where the input says, checked against a plain reference
** reader over the whole of the bytes.
**
** The input: byte 0 the read_line limit (1 to 24 bytes, or the default
** 64 KiB), byte 1 the number of reads (1 to 16), two bytes for each
** read (which one, its argument), a byte of chunk count and that many
** chunk sizes (1 to 256), then the bytes the stream gives (what the
** sizes leave is the last chunk), then EOF.  The stream is a real
** loom.Stream whose socket is replaced by a hook (as a file's is,
** src/stdio.c) that hands it one chunk per turn of the loop while it
** reads.  A difference from the reference aborts.
*/
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "harness.h"

/* {====================================================================
** A stream fed from memory
** ===================================================================== */

typedef struct {
  uv_idle_t idle;
  loom_stream *s;        /* NULL once the stream's memory went */
  const char *data;      /* a copy of the bytes (after the struct) */
  size_t *sizes;
  size_t nsizes, next, pos, len;
  int on;
} feeder;

static void feeder_closed(uv_handle_t *h) { free(h->data); }

static void feed_cb(uv_idle_t *h) {
  feeder *f = h->data;
  loom_stream *s = f->s;
  size_t n;
  if (s == NULL || !f->on) {
    uv_idle_stop(h);
    return;
  }
  if (f->pos >= f->len) {
    loom__stream_got(s, UV_EOF);  /* stops the reads: feed_read(s, 0) */
    return;
  }
  n = f->next < f->nsizes ? f->sizes[f->next++] : f->len - f->pos;
  if (n > f->len - f->pos) n = f->len - f->pos;
  if (loom__stream_append(s, f->data + f->pos, n) != 0) fz_fail("ENOMEM");
  f->pos += n;
  loom__stream_got(s, 0);
}

static int feed_read(loom_stream *s, int on) {
  feeder *f = s->hook_ud;
  f->on = on;
  return on ? uv_idle_start(&f->idle, feed_cb) : uv_idle_stop(&f->idle);
}

static int feed_input(loom_stream *s, const char *p, size_t n) {
  (void)s; (void)p; (void)n;
  return UV_EIO;  /* never called: the hook reads by itself */
}

static int feed_output(loom_stream *s, const char *p, size_t n) {
  (void)s; (void)p; (void)n;
  return 0;
}

static int feed_finish(loom_stream *s) {
  (void)s;
  return 0;
}

static const char *feed_reason(loom_stream *s, int err) {
  (void)s; (void)err;
  return NULL;
}

static void feed_free(loom_stream *s) {
  feeder *f = s->hook_ud;
  f->s = NULL;
  uv_close((uv_handle_t *)&f->idle, feeder_closed);
}

static const loom_stream_hook feed_hook = {
  feed_input, feed_output, feed_finish, feed_reason, feed_free, feed_read,
  NULL
};

/* Pushes a loom.Stream that gives 'data' cut in 'sizes', then EOF. */
static void push_stream(loom_host *H, const char *data, size_t len,
                        const size_t *sizes, size_t nsizes) {
  lua_State *L = loom_state(H);
  feeder *f = malloc(sizeof *f + nsizes * sizeof *sizes + len + 1);
  loom_stream *s;
  if (f == NULL) fz_fail("out of memory");
  memset(f, 0, sizeof *f);
  f->sizes = (size_t *)(f + 1);
  memcpy(f->sizes, sizes, nsizes * sizeof *sizes);
  f->data = (char *)(f->sizes + nsizes);
  memcpy((char *)f->data, data, len);
  f->nsizes = nsizes;
  f->len = len;
  uv_idle_init(loom_loop(H), &f->idle);
  f->idle.data = f;
  s = loom__stream_new(L, H, LOOM_STREAM_PIPE, "fuzz");
  s->hook = &feed_hook;
  s->hook_ud = f;
  f->s = s;
}

/* }==================================================================== */


/* {====================================================================
** The reference
** ===================================================================== */

enum { OP_LINE, OP_UNTIL, OP_EXACTLY, OP_READ, OP_ALL, NOPS };
static const char *const op_names[] = {"line", "until", "exactly", "read",
                                       "all"};
static const char *const seps[] = {"\n", "\r\n", "\0", "--", "abc",
                                   "\r\n\r\n", "x", "aa"};
static const size_t sep_lens[] = {1, 2, 1, 2, 3, 4, 1, 2};

typedef struct {
  int op;
  int arg;              /* until: the separator; exactly, read: n */
} op;

/* What a read gives: a string, or nil, msg, code [, partial]. */
typedef struct {
  int ok;
  size_t at, len;       /* ok: data[at, at+len); else the partial */
  const char *code;     /* not ok */
  int partial;          /* not ok: a 4th value */
  int any;              /* read(): up to 'len' bytes, not exactly */
} result;

static const char *memfind(const char *h, size_t hl, const char *n,
                           size_t nl) {
  size_t i;
  for (i = 0; i + nl <= hl; i++)
    if (memcmp(h + i, n, nl) == 0) return h + i;
  return NULL;
}

/* The reference reader: what 'o' gives at '*pos' of data[0, n). */
static result reference(const op *o, const char *d, size_t n, size_t *pos,
                        size_t limit) {
  result r = {0, *pos, 0, "EOF", 0, 0};
  size_t rem = n - *pos;
  const char *p;
  switch (o->op) {
    case OP_LINE:
      p = memfind(d + *pos, rem, "\n", 1);
      if (p != NULL) {
        size_t len = (size_t)(p - (d + *pos)), keep = len;
        if (keep > 0 && p[-1] == '\r') keep--;
        *pos += len + 1;
        if (keep > limit) {
          r.code = "ELINE";
          return r;
        }
        r.ok = 1;
        r.len = keep;
        return r;
      }
      if (rem == 0) return r;
      *pos = n;
      if (rem > limit) {
        r.code = "ELINE";
        return r;
      }
      r.ok = 1;
      r.len = rem;
      return r;
    case OP_UNTIL:
      p = memfind(d + *pos, rem, seps[o->arg], sep_lens[o->arg]);
      if (p != NULL) {
        r.ok = 1;
        r.len = (size_t)(p - (d + *pos)) + sep_lens[o->arg];
        *pos += r.len;
        return r;
      }
      r.partial = rem > 0;
      r.len = rem;
      *pos = n;
      return r;
    case OP_EXACTLY:
      if (rem >= (size_t)o->arg) {
        r.ok = 1;
        r.len = (size_t)o->arg;
        *pos += r.len;
        return r;
      }
      r.partial = rem > 0;
      r.len = rem;
      *pos = n;
      return r;
    case OP_READ:
      if (o->arg == 0 && rem > 0) {  /* read(): whatever there is */
        r.ok = r.any = 1;
        r.len = rem;
        return r;
      }
      if (rem == 0) return r;
      r.ok = r.any = 1;
      r.len = rem < (size_t)o->arg ? rem : (size_t)o->arg;
      return r;
    default:  /* OP_ALL */
      r.ok = 1;
      r.len = rem;
      *pos = n;
      return r;
  }
}

/* }==================================================================== */


/* Checks what the read 'i' gave (the table on top) against 'want'. */
static void check(lua_State *L, int i, const op *o, result want,
                  const char *d, size_t *pos) {
  size_t len;
  const char *v;
  int nv;
  lua_getfield(L, -1, "n");
  nv = (int)lua_tointeger(L, -1);
  lua_pop(L, 1);
  lua_rawgeti(L, -1, 1);
  v = lua_tolstring(L, -1, &len);
  lua_pop(L, 1);
  if (want.ok) {
    if (v == NULL || nv != 1)
      fz_fail("read %d (%s %d): a failure, not the data", i,
              op_names[o->op], o->arg);
    if (want.any ? len == 0 || len > want.len : len != want.len)
      fz_fail("read %d (%s %d): %zu bytes, not %zu", i, op_names[o->op],
              o->arg, len, want.len);
    if (memcmp(v, d + want.at, len) != 0)
      fz_fail("read %d (%s %d): other bytes", i, op_names[o->op], o->arg);
    if (want.any) *pos = want.at + len;
    return;
  }
  if (v != NULL) fz_fail("read %d (%s %d): data, not %s", i,
                         op_names[o->op], o->arg, want.code);
  lua_rawgeti(L, -1, 2);
  if (lua_type(L, -1) != LUA_TSTRING)
    fz_fail("read %d: no message", i);
  lua_rawgeti(L, -2, 3);
  v = lua_tostring(L, -1);
  if (v == NULL || strcmp(v, want.code) != 0)
    fz_fail("read %d (%s %d): code %s, not %s (%s)", i, op_names[o->op],
            o->arg, v ? v : "nil", want.code, lua_tostring(L, -2));
  lua_pop(L, 2);
  if (nv != (want.partial ? 4 : 3))
    fz_fail("read %d (%s %d): %d values, not %d", i, op_names[o->op],
            o->arg, nv, want.partial ? 4 : 3);
  if (want.partial) {
    lua_rawgeti(L, -1, 4);
    v = lua_tolstring(L, -1, &len);
    if (v == NULL || len != want.len || memcmp(v, d + want.at, len) != 0)
      fz_fail("read %d (%s %d): a wrong partial", i, op_names[o->op],
              o->arg);
    lua_pop(L, 1);
  }
}

#define MAX_OPS 16
#define MAX_CHUNKS 64

int LLVMFuzzerTestOneInput(const uint8_t *in, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *in, size_t size) {
  loom_host *H = fz_host();
  lua_State *L = loom_state(H);
  op ops[MAX_OPS];
  size_t sizes[MAX_CHUNKS], limit, nops, nsizes, i, at, pos, dlen;
  const char *d;
  int lined = 0;
  if (size < 3) return 0;
  limit = in[0] < 128 ? 1 + in[0] % 24u : 65536;
  nops = 1 + in[1] % MAX_OPS;
  at = 2;
  for (i = 0; i < nops; i++, at += 2) {
    unsigned k = at < size ? in[at] : 0, a = at + 1 < size ? in[at + 1] : 0;
    ops[i].op = (int)(k % NOPS);
    ops[i].arg = ops[i].op == OP_UNTIL ? (int)(a % 8u)
               : ops[i].op == OP_EXACTLY ? (int)(a % 40u)
               : ops[i].op == OP_READ ? (int)(a % 17u) : 0;
  }
  nsizes = at < size ? in[at] % (MAX_CHUNKS + 1u) : 0;
  at++;
  for (i = 0; i < nsizes; i++, at++)
    sizes[i] = 1 + (at < size ? in[at] : 0u);
  d = at < size ? (const char *)in + at : "";
  dlen = at < size ? size - at : 0;
  fz_push_script(H, "stream_reader.lua");
  push_stream(H, d, dlen, sizes, nsizes);
  lua_createtable(L, (int)nops, 0);
  for (i = 0; i < nops; i++) {
    lua_createtable(L, 2, 0);
    lua_pushstring(L, op_names[ops[i].op]);
    lua_rawseti(L, -2, 1);
    if (ops[i].op == OP_UNTIL)
      lua_pushlstring(L, seps[ops[i].arg], sep_lens[ops[i].arg]);
    else lua_pushinteger(L, ops[i].arg);
    lua_rawseti(L, -2, 2);
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  lua_pushinteger(L, (lua_Integer)limit);
  fz_run(H, 3);
  /* read() takes what there is: the reference goes on from there */
  for (i = 0, pos = 0; i < nops; i++) {
    result w;
    /* after a line over the limit, only lines (stream_reader.lua): what
    ** another read got of the rest of that line would depend on how
    ** much of it had come */
    if (lined) ops[i].op = OP_LINE;
    lua_rawgeti(L, -1, (lua_Integer)i + 1);
    w = reference(&ops[i], d, dlen, &pos, limit);
    check(L, (int)i + 1, &ops[i], w, d, &pos);
    if (!w.ok && strcmp(w.code, "ELINE") == 0) lined = 1;
    lua_pop(L, 1);
  }
  lua_settop(L, 0);
  return 0;
}
