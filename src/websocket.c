/*
** websocket.c: RFC 6455 framing for loom.websocket, on Debian's wslay.
**
** An engine (core.websocket.engine) is wslay's event context with its
** I/O turned into buffers: the bytes a stream read are fed in, the
** messages wslay makes of them come out as a list, and what wslay
** writes (messages, pongs, the close reply) is taken out as a string
** for the stream to send.  The Lua side (lua/loom/websocket.lua) owns
** the stream and the suspending; this file never touches a socket, so
** a WebSocket sits on TLS as on TCP.  wslay leaves two checks to its
** user: text must be UTF-8 (else close 1007), done here as messages
** come; the size limit (1009) is wslay's own.
*/
#include "internal.h"

#include <stdlib.h>
#include <string.h>
#include <wslay/wslay.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#define ENGINE_MT "loom.websocket.engine"
#define MAX_FRAMES 16384   /* frames of one message, else close 1009 */

typedef struct engine {
  wslay_event_context_ptr ctx;
  const char *in;          /* bytes fed and not yet taken by wslay */
  size_t nin;
  char *out;               /* what wslay wrote, not yet taken */
  size_t nout, cap;
  lua_State *L;            /* during feed: the list at 'list' gets events */
  int list, n;
  int oom;
  int proto;               /* the peer broke the protocol: close 1002 */
  int frames;              /* of the data message coming */
} engine;

static const loom_class engine_class;

static ssize_t recv_cb(wslay_event_context_ptr ctx, uint8_t *buf,
                       size_t len, int flags, void *ud) {
  engine *e = ud;
  (void)flags;
  if (e->nin == 0) {
    wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
    return -1;
  }
  if (len > e->nin) len = e->nin;
  memcpy(buf, e->in, len);
  e->in += len;
  e->nin -= len;
  return (ssize_t)len;
}

/*
** When the peer broke the protocol, wslay closes without a status (an
** empty close frame, the mask key its only payload on a client); the
** close sent says 1002 instead, the status RFC 6455 7.4.1 names.
*/
static const uint8_t *protocol_close(engine *e, const uint8_t *data,
                                     size_t *len, uint8_t *frame) {
  static const uint8_t status[2] = {0x03, 0xea};  /* 1002 */
  if (!e->proto || data[0] != 0x88) return data;
  if (*len == 2 && data[1] == 0x00) {
    frame[0] = 0x88;
    frame[1] = 0x02;
    memcpy(frame + 2, status, 2);
    *len = 4;
    return frame;
  }
  if (*len == 6 && data[1] == 0x80) {  /* masked: the key, then none */
    frame[0] = 0x88;
    frame[1] = 0x82;
    memcpy(frame + 2, data + 2, 4);
    frame[6] = status[0] ^ data[2];
    frame[7] = status[1] ^ data[3];
    *len = 8;
    return frame;
  }
  return data;
}

static ssize_t send_cb(wslay_event_context_ptr ctx, const uint8_t *data,
                       size_t len, int flags, void *ud) {
  engine *e = ud;
  size_t taken = len;
  uint8_t frame[8];
  (void)flags;
  if (len > 0) data = protocol_close(e, data, &len, frame);
  if (e->nout + len > e->cap) {
    size_t cap = e->cap ? e->cap : 4096;
    char *p;
    while (cap < e->nout + len) cap *= 2;
    p = realloc(e->out, cap);
    if (!p) {
      e->oom = 1;
      wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
      return -1;
    }
    e->out = p;
    e->cap = cap;
  }
  memcpy(e->out + e->nout, data, len);
  e->nout += len;
  return (ssize_t)taken;
}

static int genmask_cb(wslay_event_context_ptr ctx, uint8_t *buf,
                      size_t len, void *ud) {
  (void)ctx;
  (void)ud;
  /* RFC 6455 10.3: a mask the page's script cannot predict */
  return RAND_bytes(buf, (int)len) == 1 ? 0 : -1;
}

/* Whether p[0..n) is UTF-8 (no overlongs, surrogates or past U+10FFFF). */
static int utf8_valid(const unsigned char *p, size_t n) {
  size_t i = 0;
  while (i < n) {
    unsigned c = p[i];
    size_t k;
    unsigned cp, min;
    if (c < 0x80) { i++; continue; }
    if ((c & 0xe0) == 0xc0) { k = 1; cp = c & 0x1f; min = 0x80; }
    else if ((c & 0xf0) == 0xe0) { k = 2; cp = c & 0x0f; min = 0x800; }
    else if ((c & 0xf8) == 0xf0) { k = 3; cp = c & 0x07; min = 0x10000; }
    else return 0;
    if (k >= n - i) return 0;
    for (size_t j = 1; j <= k; j++) {
      if ((p[i + j] & 0xc0) != 0x80) return 0;
      cp = (cp << 6) | (p[i + j] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
      return 0;
    i += k + 1;
  }
  return 1;
}

/* Each message: {kind, data} appended to the list ("text", "binary",
** "ping", "pong", "close" with data the reason and [3] the status). */
static void msg_cb(wslay_event_context_ptr ctx,
                   const struct wslay_event_on_msg_recv_arg *arg,
                   void *ud) {
  engine *e = ud;
  lua_State *L = e->L;
  const char *kind;
  const uint8_t *msg = arg->msg;
  size_t len = arg->msg_length;
  if ((arg->opcode == WSLAY_TEXT_FRAME || arg->opcode == WSLAY_BINARY_FRAME)
      && e->frames > MAX_FRAMES)
    return;  /* refused: closed with 1009 */
  switch (arg->opcode) {
    case WSLAY_TEXT_FRAME:
      if (!utf8_valid(msg, len)) {
        wslay_event_queue_close(ctx, WSLAY_CODE_INVALID_FRAME_PAYLOAD_DATA,
                                (const uint8_t *)"invalid UTF-8", 13);
        return;
      }
      kind = "text";
      break;
    case WSLAY_BINARY_FRAME: kind = "binary"; break;
    case WSLAY_PING: kind = "ping"; break;
    case WSLAY_PONG: kind = "pong"; break;
    case WSLAY_CONNECTION_CLOSE:
      if (len == 1) {  /* half a status: a protocol error (5.5.1) */
        e->proto = 1;
        return;
      }
      kind = "close";
      if (len >= 2) { msg += 2; len -= 2; }
      break;
    default: return;
  }
  if (!L) return;
  lua_createtable(L, 3, 0);
  lua_pushstring(L, kind);
  lua_rawseti(L, -2, 1);
  lua_pushlstring(L, (const char *)msg, len);
  lua_rawseti(L, -2, 2);
  if (arg->opcode == WSLAY_CONNECTION_CLOSE) {
    lua_pushinteger(L, arg->status_code);
    lua_rawseti(L, -2, 3);
  }
  lua_rawseti(L, e->list, ++e->n);
}

/*
** A message in endless frames (empty ones cost a peer two bytes each)
** would hold the connection with a message that never ends: its frames
** are counted, as wslay counts its bytes.
*/
static void frame_cb(wslay_event_context_ptr ctx,
                     const struct wslay_event_on_frame_recv_start_arg *arg,
                     void *ud) {
  engine *e = ud;
  if (arg->opcode == WSLAY_TEXT_FRAME || arg->opcode == WSLAY_BINARY_FRAME)
    e->frames = 1;
  else if (arg->opcode == WSLAY_CONTINUATION_FRAME &&
           ++e->frames == MAX_FRAMES + 1)
    wslay_event_queue_close(ctx, WSLAY_CODE_MESSAGE_TOO_BIG,
                            (const uint8_t *)"too many frames", 15);
}

static const struct wslay_event_callbacks callbacks = {
  recv_cb, send_cb, genmask_cb, frame_cb, NULL, NULL, msg_cb
};

static engine *check_engine(lua_State *L) {
  engine *e = loom__checkobject(L, 1, &engine_class);
  if (!e->ctx) luaL_error(L, "websocket engine is closed");
  return e;
}

/* Pushes what wslay wants sent, as one string ("" when nothing). */
static int flush(lua_State *L, engine *e) {
  int r = wslay_event_send(e->ctx);
  if (r != 0 && r != WSLAY_ERR_WOULDBLOCK) {
    if (e->oom) return luaL_error(L, "not enough memory");
  }
  lua_pushlstring(L, e->out ? e->out : "", e->nout);
  e->nout = 0;
  return 1;
}

/* core.websocket.engine(server, max_message): an engine */
static int l_engine(lua_State *L) {
  int server = lua_toboolean(L, 1);
  lua_Integer max = luaL_checkinteger(L, 2);
  engine *e = loom__object_new(L, &engine_class, sizeof *e, 0);
  memset(e, 0, sizeof *e);
  if ((server ? wslay_event_context_server_init(&e->ctx, &callbacks, e)
              : wslay_event_context_client_init(&e->ctx, &callbacks, e))
      != 0)
    return luaL_error(L, "not enough memory");
  wslay_event_config_set_max_recv_msg_length(e->ctx, (uint64_t)max);
  return 1;
}

/*
** engine:feed(data): the list of what came ({kind, data [, status]}),
** the bytes to send now (pongs, a close reply: flushed as by output),
** and, when wslay refused what came and sent a close itself, its status
*/
static int e_feed(lua_State *L) {
  engine *e = check_engine(L);
  size_t n;
  const char *p = luaL_checklstring(L, 2, &n);
  lua_settop(L, 2);
  lua_newtable(L);
  e->in = p;
  e->nin = n;
  e->L = L;
  e->list = 3;
  e->n = 0;
  while (e->nin > 0 && wslay_event_want_read(e->ctx)) {
    if (wslay_event_recv(e->ctx) != 0) {
      if (!e->oom) e->proto = 1;  /* a frame wslay could not parse */
      break;
    }
  }
  e->L = NULL;
  e->in = NULL;
  e->nin = 0;
  flush(L, e);
  if (e->proto) {
    lua_pushinteger(L, WSLAY_CODE_PROTOCOL_ERROR);
    return 3;
  }
  if (wslay_event_get_close_sent(e->ctx)
      && !wslay_event_get_close_received(e->ctx)) {
    lua_pushinteger(L, wslay_event_get_status_code_sent(e->ctx));
    return 3;
  }
  return 2;
}

static const uint8_t OPCODES[] = {WSLAY_TEXT_FRAME, WSLAY_BINARY_FRAME,
                                  WSLAY_PING};

/* engine:queue(kind, data): false when the engine no longer writes
** (a close went), else true and the bytes to send now (as output);
** kind 0 text, 1 binary, 2 ping */
static int e_queue(lua_State *L) {
  engine *e = check_engine(L);
  lua_Integer k = luaL_checkinteger(L, 2);
  size_t n;
  const char *p = luaL_checklstring(L, 3, &n);
  struct wslay_event_msg m;
  if (k < 0 || k > 2) return luaL_argerror(L, 2, "bad kind");
  m.opcode = OPCODES[k];
  m.msg = (const uint8_t *)p;
  m.msg_length = n;
  if (wslay_event_queue_msg(e->ctx, &m) != 0) {
    lua_pushboolean(L, 0);
    return 1;
  }
  lua_pushboolean(L, 1);
  return 1 + flush(L, e);
}

/* engine:close(status, reason): false when a close already went */
static int e_close(lua_State *L) {
  engine *e = check_engine(L);
  lua_Integer status = luaL_checkinteger(L, 2);
  size_t n;
  const char *reason = luaL_optlstring(L, 3, "", &n);
  lua_pushboolean(L, wslay_event_queue_close(e->ctx, (uint16_t)status,
                                             (const uint8_t *)reason,
                                             n) == 0);
  return 1;
}

/* engine:output(): the bytes to send now */
static int e_output(lua_State *L) {
  return flush(L, check_engine(L));
}

/* engine:state(): close_received, close_sent, the status it sent */
static int e_state(lua_State *L) {
  engine *e = check_engine(L);
  lua_pushboolean(L, wslay_event_get_close_received(e->ctx));
  lua_pushboolean(L, wslay_event_get_close_sent(e->ctx));
  lua_pushinteger(L, e->proto ? WSLAY_CODE_PROTOCOL_ERROR
                              : wslay_event_get_status_code_sent(e->ctx));
  return 3;
}

static int e_gc(lua_State *L) {
  engine *e = lua_touserdata(L, 1);
  if (e->ctx) wslay_event_context_free(e->ctx);
  e->ctx = NULL;
  free(e->out);
  e->out = NULL;
  e->nout = e->cap = 0;
  return 0;
}

/* core.websocket.accept(key): Sec-WebSocket-Accept for 'key' */
static int l_accept(lua_State *L) {
  static const char GUID[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
  size_t n;
  const char *key = luaL_checklstring(L, 1, &n);
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int mdlen = 0;
  unsigned char b64[64];
  EVP_MD_CTX *c = EVP_MD_CTX_new();
  if (!c) return luaL_error(L, "not enough memory");
  if (!EVP_DigestInit_ex(c, EVP_sha1(), NULL)
      || !EVP_DigestUpdate(c, key, n)
      || !EVP_DigestUpdate(c, GUID, sizeof GUID - 1)
      || !EVP_DigestFinal_ex(c, md, &mdlen)) {
    EVP_MD_CTX_free(c);
    return luaL_error(L, "SHA-1 failed");
  }
  EVP_MD_CTX_free(c);
  lua_pushlstring(L, (const char *)b64,
                  (size_t)EVP_EncodeBlock(b64, md, (int)mdlen));
  return 1;
}

/* core.websocket.key(): a fresh Sec-WebSocket-Key (16 random bytes) */
static int l_key(lua_State *L) {
  unsigned char raw[16], b64[32];
  if (RAND_bytes(raw, sizeof raw) != 1)
    return luaL_error(L, "no random bytes for a WebSocket key");
  lua_pushlstring(L, (const char *)b64,
                  (size_t)EVP_EncodeBlock(b64, raw, sizeof raw));
  return 1;
}

/* core.websocket.utf8(s): whether s is UTF-8 (as a text message must) */
static int l_utf8(lua_State *L) {
  size_t n;
  const char *s = luaL_checklstring(L, 1, &n);
  lua_pushboolean(L, utf8_valid((const unsigned char *)s, n));
  return 1;
}

static const luaL_Reg engine_methods[] = {
  {"feed", e_feed},
  {"queue", e_queue},
  {"close", e_close},
  {"output", e_output},
  {"state", e_state},
  {NULL, NULL}
};

static const luaL_Reg engine_meta[] = {
  {"__gc", e_gc},
  {NULL, NULL}
};

static const loom_class engine_class = {
  .name = ENGINE_MT,
  .noun = "WebSocket engine",
  .methods = engine_methods,
  .meta = engine_meta
};

static const luaL_Reg funcs[] = {
  {"engine", l_engine},
  {"accept", l_accept},
  {"key", l_key},
  {"utf8", l_utf8},
  {NULL, NULL}
};

void loom__websocket_register(lua_State *L, loom_host *H) {
  (void)H;
  loom__class_register(L, &engine_class);
  luaL_getsubtable(L, -1, "websocket");
  loom__push_box(L);
  luaL_setfuncs(L, funcs, 1);
  lua_pop(L, 1);
}
