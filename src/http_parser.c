/*
** http_parser.c: HTTP/1.x requests parsed by llhttp (Node's parser,
** compiled from Debian's node-llhttp sources), for loom.http's server
** (lua/loom/http_server.lua).
**
** A parser is a plain object: 'p:feed(data, pos)' runs llhttp over
** 'data' from byte 'pos' and stops at the first event, returning
**   "request", req, next   a whole request with no body
**   "head", req, next      a request whose body follows
**   "body", chunk, next, e the body bytes in 'data' (e: and the body
**                          ends with them)
**   "end", nil, next       the end of the body
**   nil, nil, next         all of 'data' was used: more is needed
**   "error", status, why   a malformed request (400) or one over a
**                          limit (414, 431, 413): the connection ends
** 'req' is a table: method, target (as sent), path (percent-decoded,
** without the query), rawquery (or nil), version ("1.1"), headers
** (lower-case names; a repeated header's values joined with ", ", or
** "; " for cookie, as RFC 9110 and 9113 say), keep_alive, upgrade,
** content_length (or nil), chunked, expect_continue.  The trailer
** fields after a chunked body are dropped (counted in the head's limit).
**
** Ownership: the request being built is user value 1 of the parser
** (so a head split over several reads survives between them), the
** pieces of a header name, value or target wait in 'scratch', which
** the parser owns (malloc'd, freed by __gc).  llhttp keeps no pointer
** into 'data' past a call.
*/
#include <stdlib.h>
#include <string.h>

#include <llhttp.h>

#include "internal.h"

#define PARSER_MT "loom.http_parser"

enum { EV_NONE, EV_REQUEST, EV_HEAD, EV_END, EV_ERROR };

typedef struct {
  llhttp_t p;
  lua_State *L;           /* during feed: req at REQ, headers at HDRS */
  char *scratch;          /* the current target, name or value */
  size_t slen, scap;
  size_t namelen;         /* length of the header name in 'scratch' */
  size_t head_bytes;      /* bytes of the current head so far */
  size_t max_head;        /* limit on them: 431 past it */
  uint64_t body_bytes;    /* of the current body so far */
  uint64_t max_body;      /* limit on them: 413 past it */
  int npieces;            /* pieces of body on the stack (on_body) */
  int event;              /* EV_*: what stopped the parser */
  int status;             /* EV_ERROR: the response status */
  const char *why;        /* EV_ERROR: what was wrong */
  int has_body;           /* EV_HEAD was given for this message */
  int live;               /* a request is being built */
} parser;

/* stack slots during feed */
#define SELF 1
#define KEYS 4   /* the strings it uses, made once (see K_*) */
#define REQ 5
#define HDRS 6

/*
** The strings feed uses, made once and kept in a table (user value 2 of
** every parser), so that making a request sets its fields with raw
** sets of ready strings: no C string is hashed or compared.
*/
enum { K_HEADERS = 1, K_PATH, K_TARGET, K_RAWQUERY, K_METHOD, K_VERSION,
       K_KEEP_ALIVE, K_UPGRADE, K_CHUNKED, K_CONTENT_LENGTH, K_EXPECT,
       K_EXPECT_CONTINUE, K_V11, K_V10, K_HEAD, K_REQUEST, K_BODY, K_END,
       K_ERROR, K_SLASH, K_COMMA, K_SEMI, K_STATUS, K_REASON, K_METHODS };
#define NMETHODS (HTTP_FLUSH + 1)  /* llhttp_method_t: 0 to HTTP_FLUSH */

static const char *const key_names[] = { NULL, "headers", "path", "target",
  "rawquery", "method", "version", "keep_alive", "upgrade", "chunked",
  "content_length", "expect", "expect_continue", "1.1", "1.0", "head",
  "request", "body", "end", "error", "/", ", ", "; ", "status", "reason" };

static void key(lua_State *L, int k) { lua_rawgeti(L, KEYS, k); }

/* req[k] = the value on top (popped) */
static void set(lua_State *L, int k) {
  key(L, k);
  lua_insert(L, -2);
  lua_rawset(L, REQ);
}


/* {====================================================================
** Callbacks
** ===================================================================== */

static parser *of(llhttp_t *p) { return (parser *)p; }

static int fail(parser *ps, int status, const char *why) {
  ps->status = status;
  ps->why = why;
  ps->event = EV_ERROR;
  llhttp_set_error_reason(&ps->p, why);
  return HPE_USER;
}

/* Appends a piece of the target, a name or a value; counts the head. */
static int gather(parser *ps, const char *at, size_t len, int status,
                  const char *why) {
  ps->head_bytes += len;
  if (ps->head_bytes > ps->max_head) return fail(ps, status, why);
  if (len == 0) return 0;  /* (an empty name: 'scratch' may be NULL yet) */
  if (ps->slen + len > ps->scap) {
    size_t cap = ps->scap ? ps->scap : 256;
    char *s;
    while (cap < ps->slen + len) cap *= 2;
    s = realloc(ps->scratch, cap);
    if (s == NULL) return fail(ps, 503, "out of memory");
    ps->scratch = s;
    ps->scap = cap;
  }
  memcpy(ps->scratch + ps->slen, at, len);
  ps->slen += len;
  return 0;
}

static int on_message_begin(llhttp_t *p) {
  parser *ps = of(p);
  lua_State *L = ps->L;
  lua_settop(L, KEYS);
  lua_createtable(L, 0, 8);   /* REQ */
  lua_createtable(L, 0, 4);   /* HDRS */
  lua_pushvalue(L, HDRS);
  set(L, K_HEADERS);
  ps->live = 1;
  ps->slen = ps->namelen = 0;
  ps->head_bytes = 0;
  ps->body_bytes = 0;
  ps->has_body = 0;
  return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t len) {
  return gather(of(p), at, len, 414, "request target too long");
}

static int hexval(int c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/*
** Pushes s[0, n) percent-decoded (a bad escape stays as it is); with
** 'plus', a '+' is a space, as in a query.
*/
static void push_decoded(lua_State *L, const char *s, size_t n, int plus) {
  luaL_Buffer b;
  size_t i = 0, from = 0;
  if (memchr(s, '%', n) == NULL && (!plus || memchr(s, '+', n) == NULL)) {
    lua_pushlstring(L, s, n);
    return;
  }
  luaL_buffinit(L, &b);
  while (i < n) {
    if (s[i] == '%' && i + 2 < n
        && hexval((unsigned char)s[i + 1]) >= 0
        && hexval((unsigned char)s[i + 2]) >= 0) {
      luaL_addlstring(&b, s + from, i - from);
      luaL_addchar(&b, (char)(hexval((unsigned char)s[i + 1]) * 16
                              + hexval((unsigned char)s[i + 2])));
      i += 3;
      from = i;
    }
    else if (plus && s[i] == '+') {
      luaL_addlstring(&b, s + from, i - from);
      luaL_addchar(&b, ' ');
      from = ++i;
    }
    else i++;
  }
  luaL_addlstring(&b, s + from, n - from);
  luaL_pushresult(&b);
}

static int on_url_complete(llhttp_t *p) {
  parser *ps = of(p);
  lua_State *L = ps->L;
  const char *u = ps->scratch != NULL ? ps->scratch : "", *q;
  size_t n = ps->slen, plen;
  lua_pushlstring(L, u, n);
  q = memchr(u, '?', n);
  plen = q ? (size_t)(q - u) : n;
  if (q == NULL && n > 0 && u[0] == '/' && memchr(u, '%', n) == NULL) {
    lua_pushvalue(L, -1);  /* the path is the target: the common case */
    set(L, K_PATH);
    set(L, K_TARGET);
    ps->slen = 0;
    return 0;
  }
  set(L, K_TARGET);
  if (plen > 0 && u[0] != '/') {  /* absolute form: the path in it */
    const char *s = memmem(u, plen, "://", 3);
    if (s != NULL) {
      const char *path = memchr(s + 3, '/', plen - (size_t)(s + 3 - u));
      if (path == NULL) path = u + plen;
      push_decoded(L, path, plen - (size_t)(path - u), 0);
      if (lua_rawlen(L, -1) == 0) {
        lua_pop(L, 1);
        key(L, K_SLASH);
      }
    }
    else push_decoded(L, u, plen, 0);  /* "*", or authority form */
  }
  else push_decoded(L, u, plen, 0);
  set(L, K_PATH);
  if (q != NULL) {
    lua_pushlstring(L, q + 1, n - plen - 1);
    set(L, K_RAWQUERY);
  }
  ps->slen = 0;
  return 0;
}

static int on_status(llhttp_t *p, const char *at, size_t len) {
  return gather(of(p), at, len, 431, "response head too large");
}

static int on_status_complete(llhttp_t *p) {
  parser *ps = of(p);
  lua_pushlstring(ps->L, ps->scratch, ps->slen);
  set(ps->L, K_REASON);
  ps->slen = 0;
  return 0;
}

static int on_method_complete(llhttp_t *p) {
  parser *ps = of(p);
  if (p->method < NMETHODS) key(ps->L, K_METHODS + p->method);
  else lua_pushstring(ps->L, llhttp_method_name((llhttp_method_t)p->method));
  set(ps->L, K_METHOD);
  return 0;
}

static int on_header_field(llhttp_t *p, const char *at, size_t len) {
  return gather(of(p), at, len, 431, "request header fields too large");
}

static int on_header_field_complete(llhttp_t *p) {
  parser *ps = of(p);
  size_t i;
  for (i = 0; i < ps->slen; i++) {  /* names are ASCII tokens */
    char c = ps->scratch[i];
    if (c >= 'A' && c <= 'Z') ps->scratch[i] = (char)(c + 32);
  }
  ps->namelen = ps->slen;
  ps->head_bytes += 4;  /* ": " and CRLF */
  return 0;
}

static int on_header_value(llhttp_t *p, const char *at, size_t len) {
  return gather(of(p), at, len, 431, "request header fields too large");
}

static int on_header_value_complete(llhttp_t *p) {
  parser *ps = of(p);
  lua_State *L = ps->L;
  /* (no scratch yet: an empty name and value, ": \r\n") */
  const char *v = ps->scratch != NULL ? ps->scratch + ps->namelen : "";
  size_t vlen = ps->slen - ps->namelen;
  if (!lua_istable(L, HDRS)) {  /* a trailer: the head went already */
    ps->slen = ps->namelen = 0;
    return 0;
  }
  while (vlen > 0 && (v[vlen - 1] == ' ' || v[vlen - 1] == '\t')) vlen--;
  lua_pushlstring(L, ps->scratch != NULL ? ps->scratch : "", ps->namelen);
  lua_pushvalue(L, -1);
  if (lua_rawget(L, HDRS) == LUA_TSTRING) {  /* repeated: joined */
    int cookie = ps->namelen == 6 && memcmp(ps->scratch, "cookie", 6) == 0;
    key(L, cookie ? K_SEMI : K_COMMA);
    lua_pushlstring(L, v, vlen);
    lua_concat(L, 3);
  }
  else {
    lua_pop(L, 1);
    lua_pushlstring(L, v, vlen);
  }
  lua_rawset(L, HDRS);
  ps->slen = ps->namelen = 0;
  return 0;
}

static void set_bool(lua_State *L, int k, int v) {
  lua_pushboolean(L, v);
  set(L, k);
}

static int on_headers_complete(llhttp_t *p) {
  parser *ps = of(p);
  lua_State *L = ps->L;
  int chunked = (p->flags & F_CHUNKED) != 0;
  int has_len = (p->flags & F_CONTENT_LENGTH) != 0;
  if (p->http_major == 1 && p->http_minor == 1) key(L, K_V11);
  else if (p->http_major == 1 && p->http_minor == 0) key(L, K_V10);
  else lua_pushfstring(L, "%d.%d", p->http_major, p->http_minor);
  set(L, K_VERSION);
  if (p->type == HTTP_RESPONSE) {
    lua_pushinteger(L, p->status_code);
    set(L, K_STATUS);
  }
  set_bool(L, K_KEEP_ALIVE, llhttp_should_keep_alive(p));
  if (p->upgrade) set_bool(L, K_UPGRADE, 1);
  if (chunked) set_bool(L, K_CHUNKED, 1);
  if (has_len) {
    lua_pushinteger(L, (lua_Integer)p->content_length);
    set(L, K_CONTENT_LENGTH);
    if (p->content_length > ps->max_body)
      return fail(ps, 413, "request body too large");
  }
  key(L, K_EXPECT);
  if (lua_rawget(L, HDRS) == LUA_TSTRING
      && strcasecmp(lua_tostring(L, -1), "100-continue") == 0
      && (chunked || (has_len && p->content_length > 0)))
    set_bool(L, K_EXPECT_CONTINUE, 1);
  lua_pop(L, 1);
  if (chunked || (has_len && p->content_length > 0)) {
    ps->has_body = 1;
    ps->event = EV_HEAD;
    return HPE_PAUSED;
  }
  return 0;
}

/*
** Body pieces wait on the stack above HDRS until feed returns them as
** one string: llhttp only finishes a message when it runs on after the
** last piece, so it never stops in the middle of a body.
*/
static int on_body(llhttp_t *p, const char *at, size_t len) {
  parser *ps = of(p);
  lua_State *L = ps->L;
  if (len == 0) return 0;
  ps->body_bytes += len;
  if (ps->body_bytes > ps->max_body)
    return fail(ps, 413, "request body too large");
  if (ps->npieces >= 8) {  /* keeps the stack small */
    lua_concat(L, ps->npieces);
    ps->npieces = 1;
  }
  lua_pushlstring(L, at, len);
  ps->npieces++;
  return 0;
}

static int on_message_complete(llhttp_t *p) {
  parser *ps = of(p);
  ps->event = ps->has_body ? EV_END : EV_REQUEST;
  ps->live = 0;
  return HPE_PAUSED;
}

static llhttp_settings_t settings;

static void settings_init(void) {
  if (settings.on_message_begin != NULL) return;
  llhttp_settings_init(&settings);
  settings.on_url = on_url;
  settings.on_url_complete = on_url_complete;
  settings.on_method_complete = on_method_complete;
  settings.on_status = on_status;
  settings.on_status_complete = on_status_complete;
  settings.on_header_field = on_header_field;
  settings.on_header_field_complete = on_header_field_complete;
  settings.on_header_value = on_header_value;
  settings.on_header_value_complete = on_header_value_complete;
  settings.on_headers_complete = on_headers_complete;
  settings.on_body = on_body;
  settings.on_message_complete = on_message_complete;
  settings.on_message_begin = on_message_begin;  /* last: the "done" mark */
}

/* }==================================================================== */


/* {====================================================================
** The parser object
** ===================================================================== */

static const loom_class parser_class;

/* Lets a parser paused at an event (or after an upgrade) go on. */
static void resume(parser *ps) {
  llhttp_errno_t e = llhttp_get_errno(&ps->p);
  if (e == HPE_PAUSED) llhttp_resume(&ps->p);
  else if (e == HPE_PAUSED_UPGRADE) llhttp_resume_after_upgrade(&ps->p);
}

/* p:feed(data [, pos]): see the top of the file */
static int p_feed(lua_State *L) {
  parser *ps = loom__checkobject_as(L, 1, &parser_class, "parser:feed");
  size_t len;
  const char *data = loom__checklstring(L, 2, "parser:feed", &len);
  lua_Integer pos = loom__optinteger(L, 3, "parser:feed", 1);
  llhttp_errno_t err;
  size_t used;
  if (pos < 1 || (size_t)pos > len + 1)
    return loom__argerror(L, 3, "parser:feed", "position out of range");
  resume(ps);
  lua_settop(L, 3);
  lua_getiuservalue(L, SELF, 2);  /* KEYS */
  lua_getiuservalue(L, SELF, 1);  /* REQ: the request being built */
  if (lua_istable(L, REQ)) {
    key(L, K_HEADERS);
    lua_rawget(L, REQ);
  }
  else lua_pushnil(L);
  ps->L = L;
  ps->event = EV_NONE;
  ps->npieces = 0;
  err = llhttp_execute(&ps->p, data + pos - 1, len - (size_t)(pos - 1));
  while (err == HPE_PAUSED_UPGRADE && ps->event == EV_NONE) {
    /* a request that asked for another protocol, answered as HTTP/1.1:
    ** what follows it is the next request */
    const char *at = llhttp_get_error_pos(&ps->p);
    llhttp_resume_after_upgrade(&ps->p);
    err = llhttp_execute(&ps->p, at, len - (size_t)(at - data));
  }
  if (err == HPE_PAUSED_UPGRADE) err = HPE_PAUSED;
  ps->L = NULL;
  if (err != HPE_OK && err != HPE_PAUSED) {
    int status = ps->event == EV_ERROR ? ps->status : 400;
    const char *why = ps->event == EV_ERROR ? ps->why
                                            : llhttp_get_error_reason(&ps->p);
    key(L, K_ERROR);
    lua_pushinteger(L, status);
    lua_pushstring(L, why ? why : llhttp_errno_name(err));
    return 3;
  }
  used = err == HPE_OK ? len
                       : (size_t)(llhttp_get_error_pos(&ps->p) - data);
  if (ps->npieces > 0) {
    lua_concat(L, ps->npieces);
    key(L, K_BODY);
    lua_insert(L, -2);
    lua_pushinteger(L, (lua_Integer)used + 1);
    lua_pushboolean(L, ps->event == EV_END);
    return 4;
  }
  switch (ps->event) {
    case EV_HEAD: case EV_REQUEST:
      lua_pushvalue(L, REQ);
      lua_pushnil(L);
      lua_setiuservalue(L, SELF, 1);
      key(L, ps->event == EV_HEAD ? K_HEAD : K_REQUEST);
      lua_insert(L, -2);
      break;
    case EV_END:
      key(L, K_END);
      lua_pushnil(L);
      break;
    default:  /* all of 'data' used; a head may still be coming */
      lua_settop(L, REQ);
      lua_setiuservalue(L, SELF, 1);
      lua_pushnil(L);
      lua_pushnil(L);
      break;
  }
  lua_pushinteger(L, (lua_Integer)used + 1);
  return 3;
}

/* p:busy(): a request has begun and is not complete */
static int p_busy(lua_State *L) {
  parser *ps = loom__checkobject_as(L, 1, &parser_class, "parser:busy");
  lua_pushboolean(L, ps->live);
  return 1;
}

static int p_gc(lua_State *L) {
  parser *ps = lua_touserdata(L, 1);
  free(ps->scratch);
  ps->scratch = NULL;
  ps->scap = ps->slen = 0;
  return 0;
}

/* Field 'k' of the limits table at 1, a positive integer, or 'def'. */
static lua_Integer limit(lua_State *L, const char *k, lua_Integer def) {
  lua_Integer n;
  int isint;
  if (lua_getfield(L, 1, k) == LUA_TNIL) n = def;
  else {
    n = lua_tointegerx(L, -1, &isint);
    if (!isint || n <= 0)
      return loom__argerror(L, 1, "http.serve", lua_pushfstring(L,
                            "%s must be a positive integer", k));
  }
  lua_pop(L, 1);
  return n;
}

/* core.http.parser{max_header_size =, max_body_size =} [, "response"]:
** a new parser of requests, or of responses (whose "request" events
** carry status and reason instead of method and target) */
static int l_parser(lua_State *L) {
  parser *ps;
  lua_Integer mh, mb;
  int response = lua_toboolean(L, 2);
  luaL_checktype(L, 1, LUA_TTABLE);
  mh = limit(L, "max_header_size", 16 * 1024);
  mb = limit(L, "max_body_size", 1024 * 1024);
  ps = loom__object_new(L, &parser_class, sizeof *ps, 2);
  lua_rawgetp(L, LUA_REGISTRYINDEX, key_names);
  lua_setiuservalue(L, -2, 2);
  memset(ps, 0, sizeof *ps);
  settings_init();
  llhttp_init(&ps->p, response ? HTTP_RESPONSE : HTTP_REQUEST, &settings);
  ps->max_head = (size_t)mh;
  ps->max_body = (uint64_t)mb;
  return 1;
}

static const luaL_Reg parser_methods[] = {
  {"feed", p_feed},
  {"busy", p_busy},
  {NULL, NULL}
};

static const luaL_Reg parser_meta[] = {
  {"__gc", p_gc},
  {NULL, NULL}
};

static const loom_class parser_class = {
  .name = PARSER_MT,
  .noun = "HTTP parser",
  .methods = parser_methods,
  .meta = parser_meta
};

/* core.http.unescape(s): a query's part decoded ('+' a space) */
static int l_unescape(lua_State *L) {
  size_t n;
  const char *s = luaL_checklstring(L, 1, &n);
  push_decoded(L, s, n, 1);
  return 1;
}

static const luaL_Reg funcs[] = {
  {"parser", l_parser},
  {"unescape", l_unescape},
  {NULL, NULL}
};

void loom__http_parser_register(lua_State *L, loom_host *H) {
  (void)H;
  int i;
  loom__class_register(L, &parser_class);
  lua_createtable(L, K_METHODS + NMETHODS, 0);
  for (i = 1; i < K_METHODS; i++) {
    lua_pushstring(L, key_names[i]);
    lua_rawseti(L, -2, i);
  }
  for (i = 0; i < NMETHODS; i++) {
    lua_pushstring(L, llhttp_method_name((llhttp_method_t)i));
    lua_rawseti(L, -2, K_METHODS + i);
  }
  lua_rawsetp(L, LUA_REGISTRYINDEX, key_names);
  luaL_getsubtable(L, -1, "http");  /* core.http, the client's too */
  loom__push_box(L);
  luaL_setfuncs(L, funcs, 1);
  lua_pop(L, 1);
}

/* }==================================================================== */
