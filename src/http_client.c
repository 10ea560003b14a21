/*
** http_client.c: the C side of loom.http's client, libcurl's multi
** interface on the host's loop (lua/loom/http_client.lua holds the
** public http.request, http.get and http.post).
**
** One CURLM per host, made on first use, is a handle on the host's
** list ('loom_curlm', H->curlm).  curl tells it which sockets to watch
** (CURLMOPT_SOCKETFUNCTION: one uv_poll_t each) and when to call it
** back (CURLMOPT_TIMERFUNCTION: one uv_timer_t); both hand the event to
** curl_multi_socket_action, and every CURLMSG_DONE then completes its
** transfer.  The transfers of a host share the multi handle's
** connection cache (up to MAX_IDLE idle connections), so a later
** request to the same server reuses an idle keep-alive connection.
**
** A transfer ('http_xfer', a handle with a box userdata) is one easy
** handle.  x:wait() suspends its task through a loom_call until the
** transfer is done or, for a streamed response, until the final
** response's headers are in; x:read() then takes the body as it comes.
** A streamed body is bounded: once STREAM_BOUND bytes wait unread, the
** write callback pauses the transfer (CURL_WRITEFUNC_PAUSE) and a read
** that takes the buffer below half of it resumes it.
**
** Ownership: the multi struct is freed in the close callback of its
** last libuv handle (its timer and polls), after curl_multi_cleanup.
** A transfer is freed when it is closed: by its userdata (close(),
** __close, __gc: the Lua side closes it as soon as its task leaves the
** wait, cancelled or timed out), or by the host.  Closing removes the
** easy handle from the multi at once and frees it.  A transfer holds
** no libuv handle, so nothing of it outlives the close.  curl's
** callbacks never run Lua: they fill C buffers and wake tasks, and the
** task's own continuation makes the Lua values, so that no __gc can
** close a transfer while curl is inside one of its callbacks.
** libcurl is opened on first use (below); curl_global_init runs once
** per process, and neither is ever undone.
**
** Failures are nil, "<METHOD> '<url>': <curl's reason>", code, the
** reason from CURLOPT_ERRORBUFFER.  CURLcode to code: couldn't connect:
** the errno curl saw (ECONNREFUSED...); couldn't resolve (host or
** proxy): EAI_NONAME; timed out: ETIMEDOUT; too many redirects: ELOOP;
** TLS handshake, certificate or verification: EPROTO; a reply that is
** not HTTP or a bad content encoding: EPROTO; nothing or part of the
** reply before the connection closed: ECONNRESET; send/recv errors: the
** errno, else ECONNRESET; a bad URL or scheme: EINVAL; out of memory:
** ENOMEM; anything else: EIO.
*/
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#include "internal.h"

#define LOOM_HTTP_MT "loom.http_transfer"
#define STREAM_BOUND ((size_t)1 << 20)  /* most bytes a stream buffers */
#define MAX_IDLE 64L  /* idle connections a host keeps for reuse */

/*
** libcurl, opened on first use: a process that makes no HTTP request
** does not map it, nor the dozen libraries it needs (about 3.5 MiB of
** pages and a part of the start-up).  The soname is the one Debian's
** libcurl4 has had since 2007 (LOOM_LIBCURL names another, such as
** libcurl-gnutls.so.4); the handle is never closed.
*/
#define LIBCURL "libcurl.so.4"

static struct {
  CURLcode (*global_init)(long);
  CURL *(*easy_init)(void);
  CURLcode (*easy_setopt)(CURL *, CURLoption, ...);
  CURLcode (*easy_getinfo)(CURL *, CURLINFO, ...);
  CURLcode (*easy_pause)(CURL *, int);
  void (*easy_cleanup)(CURL *);
  const char *(*easy_strerror)(CURLcode);
  CURLM *(*multi_init)(void);
  CURLMcode (*multi_setopt)(CURLM *, CURLMoption, ...);
  CURLMcode (*multi_add_handle)(CURLM *, CURL *);
  CURLMcode (*multi_remove_handle)(CURLM *, CURL *);
  CURLMcode (*multi_socket_action)(CURLM *, curl_socket_t, int, int *);
  CURLMcode (*multi_assign)(CURLM *, curl_socket_t, void *);
  CURLMsg *(*multi_info_read)(CURLM *, int *);
  CURLMcode (*multi_cleanup)(CURLM *);
  struct curl_slist *(*slist_append)(struct curl_slist *, const char *);
  void (*slist_free_all)(struct curl_slist *);
} lc;

static const char *const lc_names[] = {
  "curl_global_init", "curl_easy_init", "curl_easy_setopt",
  "curl_easy_getinfo", "curl_easy_pause", "curl_easy_cleanup",
  "curl_easy_strerror", "curl_multi_init", "curl_multi_setopt",
  "curl_multi_add_handle", "curl_multi_remove_handle",
  "curl_multi_socket_action", "curl_multi_assign", "curl_multi_info_read",
  "curl_multi_cleanup", "curl_slist_append", "curl_slist_free_all"
};

/* The process's curl, set up once (curl_global_init is not reentrant);
** 'load_error' says why it could not be. */
static int global_ok;
static char load_error[256];

static void global_init(void) {
  static uv_lib_t lib;
  void **slot = (void **)&lc;
  size_t i;
  const char *name = getenv("LOOM_LIBCURL");  /* another build of it */
  if (name == NULL || *name == '\0') name = LIBCURL;
  if (uv_dlopen(name, &lib) != 0) {
    snprintf(load_error, sizeof load_error, "cannot load %s: %s", name,
             uv_dlerror(&lib));
    return;
  }
  for (i = 0; i < sizeof lc_names / sizeof lc_names[0]; i++)
    if (uv_dlsym(&lib, lc_names[i], &slot[i]) != 0) {
      snprintf(load_error, sizeof load_error, "%s has no %s", name,
               lc_names[i]);
      return;
    }
  global_ok = lc.global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK;
  if (!global_ok)
    snprintf(load_error, sizeof load_error, "curl_global_init failed");
}

typedef struct http_xfer http_xfer;
typedef struct curl_sock curl_sock;

/* The host's multi handle. */
struct loom_curlm {
  loom_handle base;
  CURLM *multi;           /* NULL once cleaned up */
  uv_timer_t timer;
  curl_sock *socks;       /* sockets watched */
  http_xfer *xfers;       /* transfers added to 'multi' */
  int nlive;              /* transfers running, not paused */
  int nopen;              /* libuv handles not yet through close_cb */
  int closing;
};

/* A socket curl asked to watch. */
struct curl_sock {
  uv_poll_t poll;
  curl_socket_t fd;
  struct loom_curlm *m;
  curl_sock *next, *prev;  /* m->socks */
  int closing;
};

struct http_xfer {
  loom_handle base;
  struct loom_curlm *m;    /* while added to its multi */
  CURL *easy;              /* until done or closed */
  struct curl_slist *hdrs_out;
  http_xfer *next, *prev;  /* m->xfers */
  loom_call *call;         /* the C side of x:wait's call, while pending */
  loom_task *readers;      /* x:read, WAIT_LIST */
  char *hbuf;              /* header lines of the latest response */
  size_t hlen, hcap;
  char *buf;               /* body: bytes at buf[start, start+len) */
  size_t start, len, cap;
  size_t peak;             /* most bytes unread at once */
  lua_Integer pauses;      /* times the write callback paused it */
  CURLcode result;
  long connects;           /* connections it made: 0 when it never got one */
  long status, oserr;
  char *final_url;         /* malloc'd, once known */
  char *method, *url;      /* for messages: one malloc, "METHOD\0url" */
  unsigned stream : 1;     /* the body is read with x:read */
  unsigned follow : 1;     /* curl follows redirects */
  unsigned in_head : 1;    /* between a status line and its blank line */
  unsigned location : 1;   /* the latest response has a Location */
  unsigned ready : 1;      /* stream: the final headers are in */
  unsigned done : 1;       /* curl is done with it (result is set) */
  unsigned paused : 1;     /* the write callback paused it */
  unsigned live : 1;       /* counted in m->nlive */
  unsigned nomem : 1;      /* a callback ran out of memory */
  char errbuf[CURL_ERROR_SIZE];
};

static const loom_class curlm_class, xfer_class;


/* {====================================================================
** Buffers
** ===================================================================== */

/* Makes room for 'n' more bytes after 'len' used; 0 when out of memory. */
static int reserve(char **p, size_t *cap, size_t len, size_t n) {
  size_t want = *cap ? *cap : 256;
  char *q;
  if (len + n <= *cap) return 1;
  while (want < len + n) want *= 2;
  q = realloc(*p, want);
  if (q == NULL) return 0;
  *p = q;
  *cap = want;
  return 1;
}

static int body_append(http_xfer *x, const char *p, size_t n) {
  if (x->start > 0 && x->start + x->len + n > x->cap) {
    memmove(x->buf, x->buf + x->start, x->len);
    x->start = 0;
  }
  if (!reserve(&x->buf, &x->cap, x->start + x->len, n)) return 0;
  memcpy(x->buf + x->start + x->len, p, n);
  x->len += n;
  if (x->len > x->peak) x->peak = x->len;
  return 1;
}

static void body_drop(http_xfer *x, size_t n) {
  x->start += n;
  x->len -= n;
  if (x->len == 0) x->start = 0;
}

/* }==================================================================== */


/* {====================================================================
** The multi handle
** ===================================================================== */

static void curlm_free_if_done(struct loom_curlm *m) {
  if (m->closing && m->nopen == 0) free(m);
}

static void handle_closed(uv_handle_t *h) {
  struct loom_curlm *m;
  if (h->type == UV_TIMER) m = h->data;
  else {
    curl_sock *k = h->data;
    m = k->m;
    free(k);
  }
  m->nopen--;
  curlm_free_if_done(m);
}

/*
** The multi's libuv handles keep the loop alive only while a transfer
** runs: idle keep-alive connections, or a stream paused because nobody
** reads it, must not keep a script from ending.
*/
static void hold_loop(struct loom_curlm *m, int on) {
  curl_sock *k;
  if (on) uv_ref((uv_handle_t *)&m->timer);
  else uv_unref((uv_handle_t *)&m->timer);
  for (k = m->socks; k != NULL; k = k->next) {
    if (on) uv_ref((uv_handle_t *)&k->poll);
    else uv_unref((uv_handle_t *)&k->poll);
  }
}

static void set_live(http_xfer *x, int on) {
  struct loom_curlm *m = x->m;
  if (m == NULL || x->live == (unsigned)on) return;
  x->live = on != 0;
  m->nlive += on ? 1 : -1;
  if (m->nlive == (on ? 1 : 0)) hold_loop(m, on);
}

static void sock_close(curl_sock *k) {
  struct loom_curlm *m = k->m;
  if (k->closing) return;
  k->closing = 1;
  if (k->prev != NULL) k->prev->next = k->next;
  else m->socks = k->next;
  if (k->next != NULL) k->next->prev = k->prev;
  uv_close((uv_handle_t *)&k->poll, handle_closed);
}

static void check_done(struct loom_curlm *m);

static void on_poll(uv_poll_t *p, int status, int events) {
  curl_sock *k = p->data;
  struct loom_curlm *m = k->m;
  int flags = 0, running;
  /* an error on the socket (a reset while uploading, say): curl reads
  ** and writes and finds out, so that a response already there (an
  ** early 401 or 413) is not lost to "select/poll returned error" */
  if (status < 0) flags = CURL_CSELECT_IN | CURL_CSELECT_OUT;
  if (events & UV_READABLE) flags |= CURL_CSELECT_IN;
  if (events & UV_WRITABLE) flags |= CURL_CSELECT_OUT;
  lc.multi_socket_action(m->multi, k->fd, flags, &running);
  check_done(m);
}

static curl_sock *sock_new(struct loom_curlm *m, curl_socket_t fd) {
  curl_sock *k = calloc(1, sizeof *k);
  if (k == NULL) return NULL;
  if (uv_poll_init_socket(m->timer.loop, &k->poll, fd) != 0) {
    free(k);
    return NULL;
  }
  k->poll.data = k;
  k->fd = fd;
  k->m = m;
  k->next = m->socks;
  if (m->socks != NULL) m->socks->prev = k;
  m->socks = k;
  m->nopen++;
  if (m->nlive == 0) uv_unref((uv_handle_t *)&k->poll);
  return k;
}

/* CURLMOPT_SOCKETFUNCTION: watch 'fd' for 'what', or stop watching it. */
static int socket_cb(CURL *e, curl_socket_t fd, int what, void *ud,
                     void *sockp) {
  struct loom_curlm *m = ud;
  curl_sock *k = sockp;
  int events = 0;
  (void)e;
  if (what == CURL_POLL_REMOVE) {
    if (k != NULL) {
      sock_close(k);
      if (!m->closing) lc.multi_assign(m->multi, fd, NULL);
    }
    return 0;
  }
  if (m->closing) return 0;
  if (k == NULL) {
    k = sock_new(m, fd);
    if (k == NULL) return -1;
    lc.multi_assign(m->multi, fd, k);
  }
  if (what & CURL_POLL_IN) events |= UV_READABLE;
  if (what & CURL_POLL_OUT) events |= UV_WRITABLE;
  uv_poll_start(&k->poll, events, on_poll);
  return 0;
}

static void on_timer(uv_timer_t *t) {
  struct loom_curlm *m = t->data;
  int running;
  lc.multi_socket_action(m->multi, CURL_SOCKET_TIMEOUT, 0, &running);
  check_done(m);
}

/* CURLMOPT_TIMERFUNCTION: curl wants to be called in 'ms' (-1: never). */
static int timer_cb(CURLM *multi, long ms, void *ud) {
  struct loom_curlm *m = ud;
  (void)multi;
  if (m->closing) return 0;
  if (ms < 0) uv_timer_stop(&m->timer);
  else uv_timer_start(&m->timer, on_timer, (uint64_t)ms, 0);
  return 0;
}

/* The host's multi handle, made on first use; NULL when out of memory. */
static struct loom_curlm *curlm_of(loom_host *H) {
  static uv_once_t once = UV_ONCE_INIT;
  struct loom_curlm *m = H->curlm;
  if (m != NULL) return m;
  uv_once(&once, global_init);
  if (!global_ok) return NULL;
  m = loom__handle_alloc(H, &curlm_class, sizeof *m);
  if (m == NULL) return NULL;
  m->multi = lc.multi_init();
  if (m->multi == NULL) {
    loom__handle_unlink(&m->base);
    free(m);
    return NULL;
  }
  uv_timer_init(H->loop, &m->timer);
  m->timer.data = m;
  uv_unref((uv_handle_t *)&m->timer);
  m->nopen = 1;
  lc.multi_setopt(m->multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
  lc.multi_setopt(m->multi, CURLMOPT_SOCKETDATA, m);
  lc.multi_setopt(m->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
  lc.multi_setopt(m->multi, CURLMOPT_TIMERDATA, m);
  /* curl's default keeps about four per transfer running, and so drops
  ** keep-alive connections as a burst of requests ends */
  lc.multi_setopt(m->multi, CURLMOPT_MAXCONNECTS, MAX_IDLE);
  H->curlm = m;
  return m;
}

/* Takes 'x' off its multi (loop thread, never inside a curl callback). */
static void xfer_detach(http_xfer *x) {
  struct loom_curlm *m = x->m;
  if (m == NULL) return;
  set_live(x, 0);
  lc.multi_remove_handle(m->multi, x->easy);
  if (x->prev != NULL) x->prev->next = x->next;
  else m->xfers = x->next;
  if (x->next != NULL) x->next->prev = x->prev;
  x->next = x->prev = NULL;
  x->m = NULL;
}

/*
** The host closes: every transfer leaves the multi (each is freed by
** its own close), curl closes its connections, and the libuv handles
** go; the struct goes with the last close callback.
*/
static void curlm_close_h(loom_handle *h, int why) {
  struct loom_curlm *m = (struct loom_curlm *)h;
  (void)why;
  loom__handle_host(h)->curlm = NULL;
  loom__handle_unlink(h);
  while (m->xfers != NULL) xfer_detach(m->xfers);
  m->closing = 1;
  lc.multi_cleanup(m->multi);
  m->multi = NULL;
  while (m->socks != NULL) sock_close(m->socks);
  uv_close((uv_handle_t *)&m->timer, handle_closed);
}

static const loom_class curlm_class = {
  .name = "loom.curl_multi",
  .close = curlm_close_h
};

/* }==================================================================== */


/* {====================================================================
** Completion
** ===================================================================== */

static int push_wait(lua_State *L, void *ud);

/* Completes the task waiting in x:wait, if one does. */
static void finish_wait(http_xfer *x) {
  loom_call *c = x->call;
  if (c == NULL) return;
  x->call = NULL;
  loom_call_complete(c, push_wait, NULL);
  loom_call_release(c);
}

static void wake_reader(http_xfer *x) {
  loom_host *H = loom__handle_host(&x->base);
  if (H != NULL && x->readers != NULL) loom__list_wake(H, &x->readers);
}

/* Copies what a response says of itself while curl still knows it. */
static void snap_info(http_xfer *x) {
  char *u = NULL;
  lc.easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &x->status);
  if (lc.easy_getinfo(x->easy, CURLINFO_EFFECTIVE_URL, &u) == CURLE_OK
      && u != NULL) {
    free(x->final_url);
    x->final_url = strdup(u);
  }
}

/* A stream's final headers are in: x:wait returns the response. */
static void stream_ready(http_xfer *x) {
  if (x->ready) return;
  x->ready = 1;
  snap_info(x);
  finish_wait(x);
}

static void xfer_done(http_xfer *x, CURLcode rc) {
  x->result = rc;
  lc.easy_getinfo(x->easy, CURLINFO_OS_ERRNO, &x->oserr);
  lc.easy_getinfo(x->easy, CURLINFO_NUM_CONNECTS, &x->connects);
  if (!x->ready) snap_info(x);
  if (x->stream && rc == CURLE_OK && !x->nomem) x->ready = 1;
  x->done = 1;
  xfer_detach(x);
  lc.easy_cleanup(x->easy);  /* its connection is back in the cache */
  x->easy = NULL;
  finish_wait(x);
  wake_reader(x);
}

/* After each curl_multi_socket_action: the transfers that ended. */
static void check_done(struct loom_curlm *m) {
  CURLMsg *msg;
  int left;
  if (m->multi == NULL) return;
  while ((msg = lc.multi_info_read(m->multi, &left)) != NULL) {
    http_xfer *x = NULL;
    CURL *e = msg->easy_handle;
    CURLcode rc = msg->data.result;
    if (msg->msg != CURLMSG_DONE) continue;
    lc.easy_getinfo(e, CURLINFO_PRIVATE, (char **)&x);
    if (x != NULL) xfer_done(x, rc);
  }
}

/* }==================================================================== */


/* {====================================================================
** curl's callbacks for a transfer
** ===================================================================== */

/*
** The blank line that ends a response's header block.  For a stream,
** the headers are final unless curl is about to follow the response
** (1xx, a redirect with a Location) or it is an interim one; when this
** guess says "not final" wrongly, the first body bytes or the end of
** the transfer make them final anyway.
*/
static void head_end(http_xfer *x) {
  long code = 0;
  x->in_head = 0;
  if (!x->stream || x->ready) return;
  lc.easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &code);
  if (code < 200) return;
  if (x->follow && code >= 300 && code < 400 && x->location) return;
  stream_ready(x);
}

/*
** CURLOPT_HEADERFUNCTION: keeps the lines of the latest response (a
** status line starts a new one: redirects and 100 Continue are
** dropped); lines after the block (trailers) are not kept.
*/
static size_t on_header(char *p, size_t size, size_t n, void *ud) {
  http_xfer *x = ud;
  size_t len = size * n;
  if (len >= 5 && memcmp(p, "HTTP/", 5) == 0) {
    x->hlen = 0;
    x->in_head = 1;
    x->location = 0;
  }
  else if (!x->in_head) return len;
  else if (len == 0 || p[0] == '\r' || p[0] == '\n') {
    head_end(x);
    return len;
  }
  else if (len >= 9 && strncasecmp(p, "location:", 9) == 0) x->location = 1;
  if (!reserve(&x->hbuf, &x->hcap, x->hlen, len)) {
    x->nomem = 1;
    return 0;
  }
  memcpy(x->hbuf + x->hlen, p, len);
  x->hlen += len;
  return len;
}

/* CURLOPT_WRITEFUNCTION: the body, decoded; a full stream pauses. */
static size_t on_write(char *p, size_t size, size_t n, void *ud) {
  http_xfer *x = ud;
  size_t len = size * n;
  if (x->stream) {
    if (x->len >= STREAM_BOUND) {
      x->paused = 1;
      x->pauses++;
      set_live(x, 0);
      return CURL_WRITEFUNC_PAUSE;
    }
    stream_ready(x);
  }
  if (!body_append(x, p, len)) {
    x->nomem = 1;
    return 0;
  }
  if (x->stream) wake_reader(x);
  return len;
}

/* }==================================================================== */


/* {====================================================================
** Results
** ===================================================================== */

static const char *errno_name(long oserr, const char *dflt) {
  return oserr != 0 ? uv_err_name(uv_translate_sys_error((int)oserr))
                    : dflt;
}

/* The code of a failed transfer (see the top of this file). */
static const char *code_of(const http_xfer *x) {
  if (x->nomem) return "ENOMEM";
  switch (x->result) {
    case CURLE_COULDNT_RESOLVE_HOST: case CURLE_COULDNT_RESOLVE_PROXY:
      return "EAI_NONAME";
    case CURLE_COULDNT_CONNECT: return errno_name(x->oserr, "ECONNREFUSED");
    case CURLE_OPERATION_TIMEDOUT: return "ETIMEDOUT";
    case CURLE_TOO_MANY_REDIRECTS: return "ELOOP";
    case CURLE_SSL_CONNECT_ERROR: case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM: case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE: case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH: case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_CRL_BADFILE: case CURLE_USE_SSL_FAILED:
    case CURLE_WEIRD_SERVER_REPLY: case CURLE_BAD_CONTENT_ENCODING:
    case CURLE_HTTP2: case CURLE_HTTP2_STREAM:
      return "EPROTO";
    case CURLE_GOT_NOTHING: case CURLE_PARTIAL_FILE: return "ECONNRESET";
    case CURLE_SEND_ERROR: case CURLE_RECV_ERROR:
      return errno_name(x->oserr, "ECONNRESET");
    case CURLE_UNSUPPORTED_PROTOCOL: {
      /* a scheme curl does not speak, or, once connected, a reply that
      ** is not HTTP/1.x ("Received HTTP/0.9 when not allowed") */
      return x->connects > 0 ? "EPROTO" : "EINVAL";
    }
    case CURLE_URL_MALFORMAT:
      return "EINVAL";
    case CURLE_OUT_OF_MEMORY: return "ENOMEM";
    case CURLE_ABORTED_BY_CALLBACK: return "ECANCELED";
    default: return "EIO";
  }
}

/* nil, "<METHOD> '<url>': <reason>", code */
static int push_failure(lua_State *L, const http_xfer *x) {
  const char *reason = x->nomem ? "not enough memory"
                     : x->errbuf[0] ? x->errbuf
                     : lc.easy_strerror(x->result);
  size_t n = strlen(reason);
  while (n > 0 && (reason[n - 1] == '\n' || reason[n - 1] == '\r')) n--;
  lua_pushlstring(L, reason, n);
  loom__fail_reason(L, x->method, x->url, lua_tostring(L, -1), code_of(x));
  lua_remove(L, -4);
  return 3;
}

static int fail_closed(lua_State *L) {
  return loom__fail_reason(L, NULL, NULL, "the response is closed",
                           "ECANCELED");
}

static void trim(const char **p, const char **e) {
  while (*p < *e && (**p == ' ' || **p == '\t')) (*p)++;
  while (*e > *p && ((*e)[-1] == ' ' || (*e)[-1] == '\t'
                     || (*e)[-1] == '\r' || (*e)[-1] == '\n')) (*e)--;
}

/*
** Adds one field to the headers table on top: a repeated name joins
** its values with ", " (RFC 9110, 5.3), except set-cookie, whose
** repeated values make a list (they may hold commas themselves).
*/
static void add_field(lua_State *L, const char *name, size_t nlen,
                      const char *v, size_t vlen) {
  int t = lua_gettop(L);
  int cookie = nlen == 10 && memcmp(name, "set-cookie", 10) == 0;
  lua_pushlstring(L, name, nlen);
  lua_pushvalue(L, -1);
  switch (lua_rawget(L, t)) {
    case LUA_TNIL:
      lua_pop(L, 1);
      lua_pushlstring(L, v, vlen);
      break;
    case LUA_TTABLE:
      lua_pushlstring(L, v, vlen);
      lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
      break;
    default:
      if (cookie) {
        lua_createtable(L, 2, 0);
        lua_insert(L, -2);
        lua_rawseti(L, -2, 1);
        lua_pushlstring(L, v, vlen);
        lua_rawseti(L, -2, 2);
      }
      else {
        lua_pushliteral(L, ", ");
        lua_pushlstring(L, v, vlen);
        lua_concat(L, 3);
      }
  }
  lua_rawset(L, t);
}

/* Pushes the table of the latest response's header fields. */
static void push_headers(lua_State *L, const http_xfer *x) {
  const char *p = x->hbuf, *end = x->hbuf + x->hlen;
  char name[256];
  lua_newtable(L);
  while (p < end) {
    const char *eol = memchr(p, '\n', (size_t)(end - p));
    const char *line = p, *colon, *v, *ve;
    size_t nlen, i;
    eol = eol ? eol + 1 : end;
    p = eol;
    if (line == x->hbuf) continue;  /* the status line */
    colon = memchr(line, ':', (size_t)(eol - line));
    if (colon == NULL) continue;  /* not a field (folding is obsolete) */
    v = colon + 1;
    ve = eol;
    trim(&line, &colon);
    trim(&v, &ve);
    nlen = (size_t)(colon - line);
    if (nlen == 0 || nlen >= sizeof name) continue;
    for (i = 0; i < nlen; i++)
      name[i] = (char)((line[i] >= 'A' && line[i] <= 'Z') ? line[i] + 32
                                                           : line[i]);
    add_field(L, name, nlen, v, (size_t)(ve - v));
  }
}

/*
** What x:wait returns: status, headers, final URL and the body (nil
** for a stream, whose body x:read gives), or the failure.
*/
static int wait_result(lua_State *L) {
  http_xfer *x = (http_xfer *)loom__tohandle(L, 1, &xfer_class);
  if (x == NULL) return fail_closed(L);
  if (x->done && (x->result != CURLE_OK || x->nomem) && !x->ready)
    return push_failure(L, x);
  lua_pushinteger(L, x->status);
  push_headers(L, x);
  lua_pushstring(L, x->final_url ? x->final_url : x->url);
  if (x->stream) {
    lua_pushnil(L);
    return 4;
  }
  lua_pushlstring(L, x->buf + x->start, x->len);
  free(x->buf);
  x->buf = NULL;
  x->start = x->len = x->cap = 0;
  return 4;
}

static int push_wait(lua_State *L, void *ud) {
  (void)ud;
  return L != NULL ? wait_result(L) : 0;
}

static int push_closed(lua_State *L, void *ud) {
  (void)ud;
  return L != NULL ? fail_closed(L) : 0;
}

/* }==================================================================== */


/* {====================================================================
** Transfers
** ===================================================================== */

static void xfer_close_h(loom_handle *h, int why) {
  http_xfer *x = (http_xfer *)h;
  loom_call *c = x->call;
  loom__handle_unlink(h);
  xfer_detach(x);
  if (x->easy != NULL) lc.easy_cleanup(x->easy);
  x->easy = NULL;
  x->call = NULL;
  if (c != NULL) {
    if (why == LOOM_CLOSE_USER) loom_call_complete(c, push_closed, NULL);
    loom_call_release(c);
  }
  wake_reader(x);
  lc.slist_free_all(x->hdrs_out);
  free(x->hbuf);
  free(x->buf);
  free(x->final_url);
  free(x->method);
  free(x);
}

static const char *xfer_describe(loom_handle *h) {
  return ((http_xfer *)h)->url;
}

/* Field 'k' of the table at 1 as a string, or NULL. */
static const char *opt_string(lua_State *L, const char *k, size_t *len) {
  const char *s;
  lua_getfield(L, 1, k);
  s = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, len) : NULL;
  lua_pop(L, 1);  /* the table keeps it */
  return s;
}

static lua_Integer opt_integer(lua_State *L, const char *k,
                               lua_Integer dflt) {
  lua_Integer v;
  int isnum;
  lua_getfield(L, 1, k);
  v = lua_tointegerx(L, -1, &isnum);
  lua_pop(L, 1);
  return isnum ? v : dflt;
}

static int opt_bool(lua_State *L, const char *k, int dflt) {
  int v;
  lua_getfield(L, 1, k);
  v = lua_isnil(L, -1) ? dflt : lua_toboolean(L, -1);
  lua_pop(L, 1);
  return v;
}

/* The request headers: the list of "Name: value" lines at 'headers'. */
static int set_headers(lua_State *L, http_xfer *x) {
  lua_Integer i, n;
  lua_getfield(L, 1, "headers");
  n = lua_istable(L, -1) ? (lua_Integer)lua_rawlen(L, -1) : 0;
  for (i = 1; i <= n; i++) {
    struct curl_slist *l;
    lua_rawgeti(L, -1, i);
    l = lua_isstring(L, -1) ? lc.slist_append(x->hdrs_out,
                                                lua_tostring(L, -1))
                            : x->hdrs_out;
    lua_pop(L, 1);
    if (l == NULL) {
      lua_pop(L, 1);
      return 0;
    }
    x->hdrs_out = l;
  }
  lua_pop(L, 1);
  return 1;
}

/* The method and its body (COPYPOSTFIELDS copies the body). */
static void set_method(lua_State *L, http_xfer *x) {
  CURL *e = x->easy;
  size_t blen = 0;
  const char *body = opt_string(L, "body", &blen);
  const char *m = x->method;
  if (strcmp(m, "HEAD") == 0 && body == NULL)
    lc.easy_setopt(e, CURLOPT_NOBODY, 1L);
  else if (strcmp(m, "GET") == 0 && body == NULL)
    lc.easy_setopt(e, CURLOPT_HTTPGET, 1L);
  else {
    /* POST stays a method curl knows, so that it turns into GET on a
    ** 301/302/303 as browsers do; a custom one is kept on redirects */
    if (strcmp(m, "POST") == 0) lc.easy_setopt(e, CURLOPT_POST, 1L);
    else lc.easy_setopt(e, CURLOPT_CUSTOMREQUEST, m);
    if (body != NULL || strcmp(m, "POST") == 0) {
      lc.easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)blen);
      lc.easy_setopt(e, CURLOPT_COPYPOSTFIELDS, body ? body : "");
    }
  }
}

/* TLS: verification on unless 'verify' is false; 'ca' a path or PEM. */
static void set_tls(lua_State *L, http_xfer *x) {
  size_t len = 0;
  const char *ca = opt_string(L, "ca", &len);
  if (!opt_bool(L, "verify", 1)) {
    lc.easy_setopt(x->easy, CURLOPT_SSL_VERIFYPEER, 0L);
    lc.easy_setopt(x->easy, CURLOPT_SSL_VERIFYHOST, 0L);
  }
  if (ca != NULL && strstr(ca, "-----BEGIN") != NULL) {
    struct curl_blob blob;
    blob.data = (void *)ca;
    blob.len = len;
    blob.flags = CURL_BLOB_COPY;
    lc.easy_setopt(x->easy, CURLOPT_CAINFO_BLOB, &blob);
  }
  else if (ca != NULL) lc.easy_setopt(x->easy, CURLOPT_CAINFO, ca);
}

/* Every option of the easy handle from the table at 1. */
static int configure(lua_State *L, http_xfer *x) {
  CURL *e = x->easy;
  lua_Integer redirects = opt_integer(L, "redirects", 5);
  lua_Integer timeout_ms = opt_integer(L, "timeout_ms", 0);
  lc.easy_setopt(e, CURLOPT_PRIVATE, (char *)x);
  lc.easy_setopt(e, CURLOPT_URL, x->url);
  lc.easy_setopt(e, CURLOPT_ERRORBUFFER, x->errbuf);
  lc.easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  lc.easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
  lc.easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  lc.easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
  lc.easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
  lc.easy_setopt(e, CURLOPT_USERAGENT, "loom/" LOOM_VERSION);
  lc.easy_setopt(e, CURLOPT_SUPPRESS_CONNECT_HEADERS, 1L);
  lc.easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
  lc.easy_setopt(e, CURLOPT_HEADERDATA, x);
  lc.easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write);
  lc.easy_setopt(e, CURLOPT_WRITEDATA, x);
  if (redirects > 0) {
    x->follow = 1;
    lc.easy_setopt(e, CURLOPT_FOLLOWLOCATION, 1L);
    lc.easy_setopt(e, CURLOPT_MAXREDIRS, (long)redirects);
  }
  if (timeout_ms > 0) lc.easy_setopt(e, CURLOPT_TIMEOUT_MS,
                                       (long)timeout_ms);
  set_method(L, x);
  set_tls(L, x);
  if (!set_headers(L, x)) return 0;
  lc.easy_setopt(e, CURLOPT_HTTPHEADER, x->hdrs_out);
  return 1;
}

/*
** core.http.start{method=, url=, headers={"Name: value", ...}, body=,
** timeout_ms=, redirects=, verify=, ca=, stream=}: a running transfer,
** or nil, msg, code.  The Lua side has checked every field.
*/
static int l_start(lua_State *L) {
  loom_host *H = loom__host(L);
  struct loom_curlm *m;
  http_xfer *x;
  size_t mlen, ulen;
  const char *method, *url;
  luaL_checktype(L, 1, LUA_TTABLE);
  method = opt_string(L, "method", &mlen);
  url = opt_string(L, "url", &ulen);
  luaL_argcheck(L, method != NULL && url != NULL, 1, "method and url");
  m = curlm_of(H);
  if (m == NULL && !global_ok)
    return luaL_error(L, "loom.http: the HTTP client needs libcurl: %s",
                      load_error);
  if (m == NULL) return loom__nomem(L);
  x = loom__handle_new(L, H, &xfer_class, sizeof *x, 0);
  x->method = malloc(mlen + ulen + 2);
  if (x->method == NULL) return loom__nomem(L);
  memcpy(x->method, method, mlen + 1);
  x->url = x->method + mlen + 1;
  memcpy(x->url, url, ulen + 1);
  x->stream = opt_bool(L, "stream", 0) != 0;
  x->easy = lc.easy_init();
  if (x->easy == NULL || !configure(L, x)) return loom__nomem(L);
  if (lc.multi_add_handle(m->multi, x->easy) != CURLM_OK)
    return loom__nomem(L);
  x->m = m;
  x->next = m->xfers;
  if (m->xfers != NULL) m->xfers->prev = x;
  m->xfers = x;
  set_live(x, 1);
  return 1;
}

/* x:wait() (suspends): status, headers, url, body; or nil, msg, code */
static int x_wait(lua_State *L) {
  http_xfer *x = loom__checkhandle_as(L, 1, &xfer_class, "transfer:wait");
  lua_settop(L, 1);
  if (x->call != NULL)
    return loom__errorf(L, "transfer:wait: a task waits for it already");
  if (x->done || x->ready) {
    loom__current(L, loom__host(L), "transfer:wait");
    return wait_result(L);
  }
  x->call = loom_call_new(L);
  return loom_call_await(L, x->call);
}

/* A reader took data: a paused transfer runs again below half the bound. */
static void maybe_resume(http_xfer *x) {
  if (!x->paused || x->easy == NULL || x->len > STREAM_BOUND / 2) return;
  x->paused = 0;
  set_live(x, 1);
  /* may call on_write at once with what curl held back */
  lc.easy_pause(x->easy, CURLPAUSE_CONT);
}

static int x_read_k(lua_State *L, int status, lua_KContext ctx);

static int read_body(lua_State *L) {
  http_xfer *x = (http_xfer *)loom__tohandle(L, 1, &xfer_class);
  lua_Integer n = luaL_optinteger(L, 2, 0);  /* 0: what is there */
  loom_host *H;
  if (x == NULL) return fail_closed(L);
  if (x->len > 0) {
    size_t take = n > 0 && (size_t)n < x->len ? (size_t)n : x->len;
    lua_pushlstring(L, x->buf + x->start, take);
    body_drop(x, take);
    maybe_resume(x);
    return 1;
  }
  if (x->done && (x->result != CURLE_OK || x->nomem))
    return push_failure(L, x);
  if (x->done || !x->stream) return loom__fail(L, "read from", x->url,
                                               UV_EOF);
  if (x->readers != NULL)
    return loom__errorf(L, "response:read: another task is reading this "
                           "response");
  H = loom__host(L);
  loom__list_wait(&x->readers, loom__enter(L, H, "response:read"));
  return loom__wait(L, x_read_k, 0);
}

static int x_read_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status; (void)ctx;
  loom__list_resumed(L, NULL);
  return read_body(L);
}

/*
** x:read([n]) (suspends): up to n bytes of the body (all that is
** buffered when n is absent), waiting for some when none is; nil,
** "read from '<url>': end of file", "EOF" at the end.
*/
static int x_read(lua_State *L) {
  loom__checkobject_as(L, 1, &xfer_class, "response:read");
  loom__current(L, loom__host(L), "response:read");
  lua_settop(L, 2);
  return read_body(L);
}

/*
** x:buffered(): bytes unread now, the most there ever were, whether the
** transfer is paused and how many times it was (for tests of the bound)
*/
static int x_buffered(lua_State *L) {
  http_xfer *x = (http_xfer *)loom__tohandle(L, 1, &xfer_class);
  if (x == NULL) {
    lua_pushinteger(L, 0);
    lua_pushinteger(L, 0);
    lua_pushboolean(L, 0);
    lua_pushinteger(L, 0);
    return 4;
  }
  lua_pushinteger(L, (lua_Integer)x->len);
  lua_pushinteger(L, (lua_Integer)x->peak);
  lua_pushboolean(L, x->paused);
  lua_pushinteger(L, x->pauses);
  return 4;
}

static const luaL_Reg xfer_methods[] = {
  {"wait", x_wait},
  {"read", x_read},
  {"buffered", x_buffered},
  {NULL, NULL}
};

static const loom_class xfer_class = {
  .name = LOOM_HTTP_MT,
  .noun = "HTTP transfer",
  .methods = xfer_methods,
  .close = xfer_close_h,
  .describe = xfer_describe
};

static const luaL_Reg funcs[] = {
  {"start", l_start},
  {NULL, NULL}
};

void loom__http_register(lua_State *L, loom_host *H) {
  (void)H;
  loom__class_register(L, &xfer_class);
  lua_createtable(L, 0, 2);
  loom__push_box(L);
  luaL_setfuncs(L, funcs, 1);
  lua_pushinteger(L, (lua_Integer)STREAM_BOUND);
  lua_setfield(L, -2, "stream_bound");
  lua_setfield(L, -2, "http");
}

/* }==================================================================== */
