/*
** net.c: connecting, listening, UDP and name resolution, the C side of
** loom.net (lua/loom/net.lua holds the public functions).
**
** Requests (connect, getaddrinfo, a UDP send that must wait) suspend
** their task through a loom_call, completed from the libuv callback; a
** task that leaves meanwhile lets the request finish and its result be
** dropped.  Servers and UDP sockets ('loom_sock') are malloc'd, owned by
** libuv until their close callback, and listed on their host so that
** closing the host closes them.  A server calls its Lua 'on_conn' for
** each connection, in protected mode (the callback comes from libuv).
*/
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "internal.h"

enum { SOCK_TCP_SERVER, SOCK_PIPE_SERVER, SOCK_UDP };

#define UDP_QUEUE_MAX 256
#define UDP_BUF (64 * 1024)

typedef struct dgram {
  struct dgram *next;
  struct sockaddr_storage from;
  size_t len;
  char data[1];
} dgram;

typedef struct loom_sock {
  loom_handle base;
  union {
    uv_handle_t h;
    uv_stream_t s;
    uv_tcp_t tcp;
    uv_pipe_t pipe;
    uv_udp_t udp;
  } u;
  int kind;
  int cb_ref;                 /* server: on_conn */
  int full_ref;               /* server: on_full, or LUA_NOREF */
  int self_ref;               /* server: its userdata, while listening */
  int accept_errors;          /* server: failed accepts (EMFILE...) */
  int max_conns;              /* server: at most this many at once, or 0 */
  int live;                   /* server: connections open (when max_conns) */
  int held;                   /* server: libuv holds one not yet accepted */
  int unref;                  /* server: neither it nor its connections
                                 keep the loop alive */
  dgram *qhead, *qtail;       /* udp: received, not yet taken */
  int qlen;
  int recving, rerr;
  char *rbuf;                 /* udp: the receive buffer, reused */
  loom_task *receivers;       /* udp: WAIT_LIST */
  char name[72];
} loom_sock;


/* {====================================================================
** Addresses
** ===================================================================== */

/* Parses ip and port into 'ss'; returns 0 or UV_EINVAL. */
static int parse_addr(const char *ip, lua_Integer port,
                      struct sockaddr_storage *ss) {
  if (port < 0 || port > 65535) return UV_EINVAL;
  if (uv_ip4_addr(ip, (int)port, (struct sockaddr_in *)ss) == 0) return 0;
  if (uv_ip6_addr(ip, (int)port, (struct sockaddr_in6 *)ss) == 0) return 0;
  return UV_EINVAL;
}

static void addr_name(char *out, size_t size, const char *ip,
                      lua_Integer port) {
  if (strchr(ip, ':') != NULL) snprintf(out, size, "[%s]:%d", ip, (int)port);
  else snprintf(out, size, "%s:%d", ip, (int)port);
}

/* }==================================================================== */


/* {====================================================================
** Connecting
** ===================================================================== */

typedef struct {
  uv_connect_t req;
  loom_call *call;
  loom_stream *s;
  int status;
  int idx;            /* the stream's userdata on the task's stack */
} connect_req;

static int push_connect(lua_State *L, void *ud) {
  connect_req *c = ud;
  loom_stream *s = c->s;
  int status = c->status, idx = c->idx;
  char name[sizeof s->name];
  free(c);
  memcpy(name, s->name, sizeof name);
  if (L == NULL || status < 0) {
    loom__stream_close(s, 1);
    if (L == NULL) return 0;
    return loom__fail(L, "connect to", name, status);
  }
  lua_pushvalue(L, idx);
  return 1;
}

static void connect_cb(uv_connect_t *req, int status) {
  connect_req *c = (connect_req *)req;
  loom_call *call = c->call;
  c->status = status;
  if (loom_call_complete(call, push_connect, c) != LOOM_OK) {
    loom__stream_close(c->s, 1);
    free(c);
  }
  loom_call_release(call);
}

/*
** Pushes a new stream of 'kind' named 'name' for a connect, with its
** request (into '*c'); raises when memory runs out.
*/
static loom_stream *connect_new(lua_State *L, loom_host *H,
                                loom_stream_kind kind,
                                const char *name, connect_req **c) {
  loom_stream *s = loom__stream_new(L, H, kind, name);
  *c = malloc(sizeof **c);
  if (*c == NULL) {
    loom__stream_close(s, 1);
    loom__nomem(L);
  }
  return s;
}

/* Starts a connect of the stream just pushed (at the top); suspends. */
static int start_connect(lua_State *L, loom_stream *s, connect_req *c,
                         int err) {
  if (err != 0) {
    char name[sizeof s->name];
    memcpy(name, s->name, sizeof name);
    free(c);
    loom__stream_close(s, 1);
    return loom__fail(L, "connect to", name, err);
  }
  c->s = s;
  c->idx = lua_gettop(L);
  c->call = loom_call_new(L);
  return loom_call_await(L, c->call);
}

/* core.tcp_connect(ip, port) (suspends): a Stream, or nil, msg, code */
static int l_tcp_connect(lua_State *L) {
  loom_host *H = loom__host(L);
  const char *ip = loom__checkcstring(L, 1, "net.connect");
  lua_Integer port = loom__checkinteger(L, 2, "net.connect");
  struct sockaddr_storage ss;
  char name[72];
  loom_stream *s;
  connect_req *c;
  addr_name(name, sizeof name, ip, port);
  if (parse_addr(ip, port, &ss) != 0)
    return loom__fail(L, "connect to", name, UV_EINVAL);
  loom__enter(L, H, "net.connect");
  lua_settop(L, 2);
  s = connect_new(L, H, LOOM_STREAM_TCP, name, &c);
  return start_connect(L, s, c, uv_tcp_connect(&c->req, &s->u.tcp,
                                               (struct sockaddr *)&ss,
                                               connect_cb));
}

/* core.pipe_connect(path) (suspends) */
static int l_pipe_connect(lua_State *L) {
  loom_host *H = loom__host(L);
  const char *path = loom__checkcstring(L, 1, "net.connect_unix");
  loom_stream *s;
  connect_req *c;
  loom__enter(L, H, "net.connect_unix");
  lua_settop(L, 1);
  s = connect_new(L, H, LOOM_STREAM_PIPE, path, &c);
  uv_pipe_connect(&c->req, &s->u.pipe, path, connect_cb);
  return start_connect(L, s, c, 0);
}

/* }==================================================================== */


/* {====================================================================
** Servers and UDP sockets
** ===================================================================== */

static void sock_closed(uv_handle_t *h) {
  loom_sock *k = h->data;
  dgram *d = k->qhead, *next;
  for (; d != NULL; d = next) {
    next = d->next;
    free(d);
  }
  free(k->rbuf);
  free(k);
}

/* The host of an open socket; NULL once it is closed. */
static loom_host *sock_host(loom_sock *k) {
  return k->base.linked ? loom__handle_host(&k->base) : NULL;
}

static void sock_close(loom_sock *k) {
  loom_host *H = sock_host(k);
  if (H == NULL) return;  /* closed already */
  loom__handle_unlink(&k->base);
  loom__handle_detach(&k->base);
  luaL_unref(H->mainL, LUA_REGISTRYINDEX, k->cb_ref);
  luaL_unref(H->mainL, LUA_REGISTRYINDEX, k->self_ref);
  luaL_unref(H->mainL, LUA_REGISTRYINDEX, k->full_ref);
  k->cb_ref = k->self_ref = k->full_ref = LUA_NOREF;
  while (k->receivers != NULL) loom__list_wake(H, &k->receivers);
  uv_close(&k->u.h, sock_closed);
}

static void sock_close_h(loom_handle *h, int why) {
  (void)why;
  sock_close((loom_sock *)h);
}

static const char *sock_describe(loom_handle *h) {
  return ((loom_sock *)h)->name;
}

static const loom_class server_class, udp_class;

/* Pushes a new socket userdata of class 'cls', linked to H. */
static loom_sock *sock_new(lua_State *L, loom_host *H, int kind,
                           const loom_class *cls) {
  loom_sock *k = loom__handle_new(L, H, cls, sizeof *k, 0);
  k->kind = kind;
  k->cb_ref = k->self_ref = k->full_ref = LUA_NOREF;
  return k;
}

/* Accepts one connection and hands its Stream to on_conn (protected). */
static int accept_conn(lua_State *L) {
  loom_sock *k = lua_touserdata(L, 1);
  loom_host *H = sock_host(k);
  loom_stream *s;
  struct sockaddr_storage ss;
  int len = sizeof ss, r;
  char ip[INET6_ADDRSTRLEN], name[72];
  s = loom__stream_new(L, H, k->kind == SOCK_PIPE_SERVER ? LOOM_STREAM_PIPE
                                                         : LOOM_STREAM_TCP,
                       k->name);
  r = uv_accept(&k->u.s, &s->u.s);
  if (r != 0) {
    loom__stream_close(s, 1);
    k->accept_errors++;
    return 0;
  }
  if (k->unref) uv_unref(&s->u.h);
  if (k->kind == SOCK_TCP_SERVER
      && uv_tcp_getpeername(&s->u.tcp, (struct sockaddr *)&ss, &len) == 0) {
    loom__push_sockaddr(L, (struct sockaddr *)&ss, ip);
    addr_name(name, sizeof name, ip, lua_tointeger(L, -1));
    lua_pop(L, 2);
    loom__stream_rename(s, name);
  }
  if (k->max_conns > 0) k->live++;  /* core.net.release takes it back */
  lua_rawgeti(L, LUA_REGISTRYINDEX, k->cb_ref);
  lua_pushvalue(L, -2);  /* the stream */
  lua_call(L, 1, 0);
  return 0;
}

/* Accepts the connection waiting on 'k', its failures reported. */
static void accept_one(lua_State *L, loom_host *H, loom_sock *k) {
  int top = lua_gettop(L);
  lua_pushcfunction(L, accept_conn);
  lua_pushlightuserdata(L, k);
  if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
    lua_pushfstring(L, "error accepting on %s: %s", k->name,
                    loom__tostring(L, -1));
    loom__report(L, H, lua_tostring(L, -1), "");
  }
  lua_settop(L, top);
}

/*
** The server is full and a client waits: its on_full runs (http.serve
** closes an idle keep-alive connection there, as nginx does with its
** reusable connections), its failure reported.
*/
static void call_full(loom_host *H, loom_sock *k) {
  lua_State *L = H->L;
  int top = lua_gettop(L);
  lua_rawgeti(L, LUA_REGISTRYINDEX, k->full_ref);
  if (lua_pcall(L, 0, 0, 0) != LUA_OK) {
    lua_pushfstring(L, "error in on_full of %s: %s", k->name,
                    loom__tostring(L, -1));
    loom__report(L, H, lua_tostring(L, -1), "");
  }
  lua_settop(L, top);
}

/*
** A connection is waiting.  On EMFILE and the like (no descriptor left)
** libuv has already accepted and dropped the connection, so that the
** server does not spin; it goes on accepting when descriptors are back.
** A server at its max_connections leaves the connection unaccepted:
** libuv then stops reading the listening socket (the kernel's backlog
** holds the next ones) until core.net.release accepts it, as nginx
** does at worker_connections.
*/
static void connection_cb(uv_stream_t *server, int status) {
  loom_sock *k = server->data;
  loom_host *H = sock_host(k);
  if (H == NULL) return;
  if (status < 0) {
    k->accept_errors++;
    return;
  }
  if (k->max_conns > 0 && k->live >= k->max_conns) {
    k->held = 1;
    if (k->full_ref != LUA_NOREF) call_full(H, k);
    return;
  }
  accept_one(H->L, H, k);
}

/* Sets SO_REUSEPORT on the socket of 'h' (libuv 1.44 has no flag). */
static int set_reuseport(uv_handle_t *h) {
#ifdef SO_REUSEPORT
  uv_os_fd_t fd;
  int on = 1;
  if (uv_fileno(h, &fd) != 0) return UV_EINVAL;
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof on) != 0)
    return uv_translate_sys_error(errno);
  return 0;
#else
  (void)h;
  return UV_ENOTSUP;
#endif
}

/*
** The server 'k' (its userdata on top) listens: it keeps the handler at
** 'fidx' and itself alive until it is closed, and serves at most the
** integer at 'midx' connections at once (none or 0: no limit; a
** connection counts until core.net.release), calling the function at
** 'midx' + 1 (if any) when a client waits for a place.  Returns 1 (the
** server).
*/
static int listening(lua_State *L, loom_sock *k, int fidx, int midx) {
  lua_Integer max = lua_tointeger(L, midx);
  k->max_conns = max > 0 && max <= INT_MAX ? (int)max : 0;
  if (lua_isfunction(L, midx + 1)) {
    lua_pushvalue(L, midx + 1);
    k->full_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  }
  lua_pushvalue(L, fidx);
  k->cb_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_pushvalue(L, -1);
  k->self_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  return 1;
}

/*
** core.tcp_listen(ip, port, backlog, reuseport, on_conn, max, on_full): a
** Server, or nil, msg, code
*/
static int l_tcp_listen(lua_State *L) {
  loom_host *H = loom__host(L);
  const char *ip = loom__checkcstring(L, 1, "net.listen");
  lua_Integer port = loom__checkinteger(L, 2, "net.listen");
  int backlog = (int)loom__optinteger(L, 3, "net.listen", 511);
  int reuseport = lua_toboolean(L, 4);
  struct sockaddr_storage ss;
  char name[72];
  loom_sock *k;
  int r;
  loom__checktype(L, 5, "net.listen", LUA_TFUNCTION);
  addr_name(name, sizeof name, ip, port);
  if (parse_addr(ip, port, &ss) != 0)
    return loom__fail(L, "listen on", name, UV_EINVAL);
  k = sock_new(L, H, SOCK_TCP_SERVER, &server_class);
  uv_tcp_init_ex(H->loop, &k->u.tcp, ss.ss_family);
  k->u.h.data = k;
  r = reuseport ? set_reuseport(&k->u.h) : 0;
  if (r == 0) r = uv_tcp_bind(&k->u.tcp, (struct sockaddr *)&ss, 0);
  if (r == 0) r = uv_listen(&k->u.s, backlog, connection_cb);
  if (r != 0) {
    sock_close(k);
    return loom__fail(L, "listen on", name, r);
  }
  {  /* the real port, when 0 picked one */
    int len = sizeof ss;
    char host[INET6_ADDRSTRLEN];
    if (uv_tcp_getsockname(&k->u.tcp, (struct sockaddr *)&ss, &len) == 0) {
      loom__push_sockaddr(L, (struct sockaddr *)&ss, host);
      addr_name(name, sizeof name, host, lua_tointeger(L, -1));
      lua_pop(L, 2);
    }
  }
  snprintf(k->name, sizeof k->name, "%s", name);
  return listening(L, k, 5, 6);
}

/*
** A socket file at 'path' that nobody listens on any more (its program
** ended without closing it) is removed, so that a new server may take
** its place; one that a live program listens on is left to make the
** bind fail.  A connect to a Unix socket does not wait: refused means
** nobody listens.
*/
static void remove_stale(const char *path) {
  struct sockaddr_un sa;
  struct stat st;
  int fd;
  if (lstat(path, &st) != 0 || !S_ISSOCK(st.st_mode)) return;
  if (strlen(path) >= sizeof sa.sun_path) return;
  memset(&sa, 0, sizeof sa);
  sa.sun_family = AF_UNIX;
  memcpy(sa.sun_path, path, strlen(path));
  fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return;
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0
      && errno == ECONNREFUSED)
    unlink(path);
  close(fd);
}

/*
** core.pipe_listen(path, backlog, on_conn [, console [, max [, on_full]]]):
** a Server, or
** nil, msg, code.  The console's (loom.console) takes over a stale
** socket file, is only the owner's (mode 0600, set between the bind and
** the listen: until it listens, a connect is refused, so there is no
** moment when another user could connect), and neither it nor its
** connections keep the loop alive, as Node's server.unref().
*/
static int l_pipe_listen(lua_State *L) {
  loom_host *H = loom__host(L);
  const char *path = loom__checkcstring(L, 1, "net.listen_unix");
  int backlog = (int)loom__optinteger(L, 2, "net.listen_unix", 511);
  int console = lua_toboolean(L, 4);
  loom_sock *k;
  int r;
  loom__checktype(L, 3, "net.listen_unix", LUA_TFUNCTION);
  if (console) remove_stale(path);
  k = sock_new(L, H, SOCK_PIPE_SERVER, &server_class);
  uv_pipe_init(H->loop, &k->u.pipe, 0);
  k->u.h.data = k;
  snprintf(k->name, sizeof k->name, "%s", path);
  r = uv_pipe_bind(&k->u.pipe, path);
  if (r == 0 && console && chmod(path, S_IRUSR | S_IWUSR) != 0)
    r = uv_translate_sys_error(errno);
  if (r == 0) r = uv_listen(&k->u.s, backlog, connection_cb);
  if (r != 0) {
    sock_close(k);
    return loom__fail(L, "listen on", path, r);
  }
  if (console) {
    k->unref = 1;
    uv_unref(&k->u.h);
  }
  return listening(L, k, 3, 5);
}

/*
** core.net.release(server): one of its connections has ended; the one
** held at max_connections (see connection_cb) is accepted now.  Nothing
** on a closed server.
*/
static int l_release(lua_State *L) {
  loom_sock *k = (loom_sock *)loom__tohandle(L, 1, &server_class);
  loom_host *H = loom__host(L);
  if (k == NULL || sock_host(k) == NULL) return 0;
  if (k->live > 0) k->live--;
  if (k->held && k->live < k->max_conns) {
    k->held = 0;
    accept_one(L, H, k);
  }
  return 0;
}

/* server:address(): host, port (or the path of a Unix socket) */
static int srv_address(lua_State *L) {
  loom_sock *k = loom__checkhandle_as(L, 1, &server_class, "server:address");
  struct sockaddr_storage ss;
  int len = sizeof ss, r;
  char host[INET6_ADDRSTRLEN];
  if (k->kind == SOCK_PIPE_SERVER) {
    lua_pushstring(L, k->name);
    return 1;
  }
  r = uv_tcp_getsockname(&k->u.tcp, (struct sockaddr *)&ss, &len);
  if (r != 0) return loom__fail(L, "address of", k->name, r);
  return loom__push_sockaddr(L, (struct sockaddr *)&ss, host);
}


/* }==================================================================== */


/* {====================================================================
** UDP
** ===================================================================== */

static void udp_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  loom_sock *k = h->data;
  (void)suggested;
  if (k->rbuf == NULL) k->rbuf = malloc(UDP_BUF);
  buf->base = k->rbuf;
  buf->len = k->rbuf ? UDP_BUF : 0;
}

static void udp_recv_cb(uv_udp_t *h, ssize_t nread, const uv_buf_t *buf,
                        const struct sockaddr *addr, unsigned flags) {
  loom_sock *k = h->data;
  (void)flags;
  if (nread < 0) k->rerr = (int)nread;
  else if (addr == NULL) return;  /* nothing more to read now */
  else if (k->qlen < UDP_QUEUE_MAX) {  /* beyond: dropped, as UDP may */
    dgram *d = malloc(sizeof *d + (size_t)nread);
    if (d == NULL) return;
    d->next = NULL;
    d->len = (size_t)nread;
    memcpy(d->data, buf->base, (size_t)nread);
    memcpy(&d->from, addr, addr->sa_family == AF_INET6
                           ? sizeof(struct sockaddr_in6)
                           : sizeof(struct sockaddr_in));
    if (k->qtail) k->qtail->next = d;
    else k->qhead = d;
    k->qtail = d;
    k->qlen++;
  }
  if (sock_host(k) != NULL && k->receivers != NULL)
    loom__list_wake(sock_host(k), &k->receivers);
}

/* core.udp([ip, port]): a UDP socket, bound when ip is given */
static int l_udp(lua_State *L) {
  loom_host *H = loom__host(L);
  loom_sock *k;
  int r = 0;
  char name[72] = "udp";
  struct sockaddr_storage ss;
  if (!lua_isnoneornil(L, 1)) {
    const char *ip = loom__checkcstring(L, 1, "net.udp");
    lua_Integer port = loom__optinteger(L, 2, "net.udp", 0);
    addr_name(name, sizeof name, ip, port);
    if (parse_addr(ip, port, &ss) != 0)
      return loom__fail(L, "bind", name, UV_EINVAL);
  }
  k = sock_new(L, H, SOCK_UDP, &udp_class);
  uv_udp_init(H->loop, &k->u.udp);
  k->u.h.data = k;
  snprintf(k->name, sizeof k->name, "%s", name);
  if (!lua_isnoneornil(L, 1))
    r = uv_udp_bind(&k->u.udp, (struct sockaddr *)&ss, 0);
  if (r != 0) {
    sock_close(k);
    return loom__fail(L, "bind", name, r);
  }
  return 1;
}

typedef struct {
  uv_udp_send_t req;
  loom_call *call;
  int status;
  int ref;            /* the datagram, kept alive */
  lua_State *L;
} send_req;

static int push_sent(lua_State *L, void *ud) {
  send_req *r = ud;
  int status = r->status;
  free(r);
  if (L == NULL) return 0;
  if (status < 0) return loom__fail(L, "send", "datagram", status);
  lua_pushboolean(L, 1);
  return 1;
}

/* The datagram's string is let go through the state only while the
** host is open: a refused call means it closed, and the state may have
** gone with it. */
static void udp_send_cb(uv_udp_send_t *req, int status) {
  send_req *r = (send_req *)req;
  loom_call *call = r->call;
  lua_State *L = r->L;
  int ref = r->ref;
  r->status = status;
  if (loom_call_complete(call, push_sent, r) == LOOM_OK)
    luaL_unref(L, LUA_REGISTRYINDEX, ref);
  else free(r);
  loom_call_release(call);
}

/*
** udp:send(data, ip, port) (suspends, though only when the socket is
** busy: it is a task's call all the same)
*/
static int udp_send(lua_State *L) {
  loom_sock *k = loom__checkhandle_as(L, 1, &udp_class, "udp:send");
  size_t len;
  const char *data = loom__checklstring(L, 2, "udp:send", &len);
  const char *ip = loom__checkcstring(L, 3, "udp:send");
  lua_Integer port = loom__checkinteger(L, 4, "udp:send");
  struct sockaddr_storage ss;
  uv_buf_t buf = uv_buf_init((char *)data, (unsigned)len);
  char name[72];
  send_req *r;
  int err;
  if (port < 0 || port > 65535)
    loom__argerror(L, 4, "udp:send", "port out of range");
  loom__current(L, loom__host(L), "udp:send");
  addr_name(name, sizeof name, ip, port);
  if (parse_addr(ip, port, &ss) != 0)
    return loom__fail(L, "send to", name, UV_EINVAL);
  err = uv_udp_try_send(&k->u.udp, &buf, 1, (struct sockaddr *)&ss);
  if (err >= 0) {
    lua_pushboolean(L, 1);
    return 1;
  }
  if (err != UV_EAGAIN) return loom__fail(L, "send to", name, err);
  loom__enter(L, sock_host(k), "udp:send");
  r = malloc(sizeof *r);
  if (r == NULL) return loom__nomem(L);
  r->L = sock_host(k)->mainL;
  lua_pushvalue(L, 2);
  lua_xmove(L, r->L, 1);
  r->ref = luaL_ref(r->L, LUA_REGISTRYINDEX);
  err = uv_udp_send(&r->req, &k->u.udp, &buf, 1, (struct sockaddr *)&ss,
                    udp_send_cb);
  if (err != 0) {
    luaL_unref(r->L, LUA_REGISTRYINDEX, r->ref);
    free(r);
    return loom__fail(L, "send to", name, err);
  }
  r->call = loom_call_new(L);
  return loom_call_await(L, r->call);
}

static int udp_recv_k(lua_State *L, int status, lua_KContext ctx);

static int udp_recv_body(lua_State *L) {
  loom_sock *k = (loom_sock *)loom__tohandle(L, 1, &udp_class);
  char host[INET6_ADDRSTRLEN];
  if (k == NULL) {
    return loom__fail_reason(L, NULL, NULL, "the UDP socket is closed",
                             "ECANCELED");
  }
  if (k->qhead != NULL) {
    dgram *d = k->qhead;
    k->qhead = d->next;
    if (k->qhead == NULL) k->qtail = NULL;
    k->qlen--;
    lua_pushlstring(L, d->data, d->len);
    loom__push_sockaddr(L, (struct sockaddr *)&d->from, host);
    free(d);
    return 3;
  }
  if (k->rerr) return loom__fail(L, "receive on", k->name, k->rerr);
  if (!k->recving) {
    int r = uv_udp_recv_start(&k->u.udp, udp_alloc, udp_recv_cb);
    if (r != 0) return loom__fail(L, "receive on", k->name, r);
    k->recving = 1;
  }
  loom__list_wait(&k->receivers, loom__enter(L, sock_host(k), "udp:recv"));
  return loom__wait(L, udp_recv_k, 0);
}

static int udp_recv_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status; (void)ctx;
  loom__list_resumed(L, NULL);
  return udp_recv_body(L);
}

/* udp:recv() (suspends): data, host, port */
static int udp_recv(lua_State *L) {
  loom__checkhandle_as(L, 1, &udp_class, "udp:recv");
  loom__current(L, loom__host(L), "udp:recv");
  lua_settop(L, 1);
  return udp_recv_body(L);
}

/* udp:address(): host, port */
static int udp_address(lua_State *L) {
  loom_sock *k = loom__checkhandle_as(L, 1, &udp_class, "udp:address");
  struct sockaddr_storage ss;
  int len = sizeof ss, r;
  char host[INET6_ADDRSTRLEN];
  r = uv_udp_getsockname(&k->u.udp, (struct sockaddr *)&ss, &len);
  if (r != 0) return loom__fail(L, "address of", k->name, r);
  return loom__push_sockaddr(L, (struct sockaddr *)&ss, host);
}


/* }==================================================================== */


/* {====================================================================
** Name resolution
** ===================================================================== */

typedef struct {
  uv_getaddrinfo_t req;
  loom_call *call;
  int status;
  struct addrinfo *res;
  char host[256];
} gai_req;

static int push_addrs(lua_State *L, void *ud) {
  gai_req *g = ud;
  struct addrinfo *a;
  int n = 0;
  if (L == NULL || g->status < 0) {
    int status = g->status;
    char host[sizeof g->host];
    memcpy(host, g->host, sizeof host);
    if (g->res) uv_freeaddrinfo(g->res);
    free(g);
    if (L == NULL) return 0;
    return loom__fail(L, "resolve", host, status);
  }
  lua_newtable(L);
  for (a = g->res; a != NULL; a = a->ai_next) {
    char ip[INET6_ADDRSTRLEN];
    int i, dup = 0;
    if (a->ai_family != AF_INET && a->ai_family != AF_INET6) continue;
    loom__push_sockaddr(L, a->ai_addr, ip);
    lua_pop(L, 2);
    for (i = 1; i <= n && !dup; i++) {  /* once each */
      lua_rawgeti(L, -1, i);
      dup = strcmp(lua_tostring(L, -1), ip) == 0;
      lua_pop(L, 1);
    }
    if (!dup) {
      lua_pushstring(L, ip);
      lua_rawseti(L, -2, ++n);
    }
  }
  uv_freeaddrinfo(g->res);
  free(g);
  return 1;
}

static void gai_cb(uv_getaddrinfo_t *req, int status, struct addrinfo *res) {
  gai_req *g = (gai_req *)req;
  loom_call *call = g->call;
  g->status = status;
  g->res = res;
  if (loom_call_complete(call, push_addrs, g) != LOOM_OK) {
    if (res) uv_freeaddrinfo(res);
    free(g);
  }
  loom_call_release(call);
}

/* core.resolve(host) (suspends): list of address strings */
static int l_resolve(lua_State *L) {
  loom_host *H = loom__host(L);
  size_t len;
  const char *host = loom__checkcstring(L, 1, "net.resolve");
  struct addrinfo hints;
  gai_req *g;
  int r;
  len = strlen(host);
  if (len == 0 || len >= sizeof g->host)
    loom__argerror(L, 1, "net.resolve", "bad host name");
  loom__enter(L, H, "net.resolve");
  g = calloc(1, sizeof *g);
  if (g == NULL) return loom__nomem(L);
  memcpy(g->host, host, len + 1);
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  r = uv_getaddrinfo(H->loop, &g->req, gai_cb, host, NULL, &hints);
  if (r != 0) {
    int n = loom__fail(L, "resolve", g->host, r);
    free(g);
    return n;
  }
  g->call = loom_call_new(L);
  return loom_call_await(L, g->call);
}

/* }==================================================================== */


static const luaL_Reg server_methods[] = {
  {"address", srv_address},
  {NULL, NULL}
};

static const luaL_Reg udp_methods[] = {
  {"send", udp_send},
  {"recv", udp_recv},
  {"address", udp_address},
  {NULL, NULL}
};

static const luaL_Reg funcs[] = {
  {"tcp_connect", l_tcp_connect},
  {"pipe_connect", l_pipe_connect},
  {"tcp_listen", l_tcp_listen},
  {"pipe_listen", l_pipe_listen},
  {"release", l_release},
  {"udp", l_udp},
  {"resolve", l_resolve},
  {NULL, NULL}
};

static const loom_class server_class = {
  .name = LOOM_SERVER_MT,
  .noun = "server",
  .methods = server_methods,
  .close = sock_close_h,
  .describe = sock_describe
};

static const loom_class udp_class = {
  .name = LOOM_UDP_MT,
  .noun = "UDP socket",
  .methods = udp_methods,
  .close = sock_close_h,
  .describe = sock_describe
};

void loom__net_register(lua_State *L, loom_host *H) {
  struct sigaction sa;
  (void)H;
  /* a write to a peer that went away must be EPIPE, not the end of the
  ** process: ignore SIGPIPE unless the program handles it itself */
  if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL)
    signal(SIGPIPE, SIG_IGN);
  loom__stream_open(L);
  loom__class_register(L, &server_class);
  loom__class_register(L, &udp_class);
  lua_createtable(L, 0, 6);
  loom__push_box(L);
  luaL_setfuncs(L, funcs, 1);
  luaL_getmetatable(L, LOOM_STREAM_MT);
  lua_getfield(L, -1, "__index");
  lua_setfield(L, -3, "stream_methods");
  lua_pop(L, 1);
  lua_setfield(L, -2, "net");
}
