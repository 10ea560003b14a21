/* tls floor: a TLS echo server in C, OpenSSL on non-blocking sockets
 * polled by one libuv loop.
 *
 *   usage: tls-floor CERT KEY [PORT]    (PEM files; default port 0: a free one)
 *   prints: port=P                      (once listening, on 127.0.0.1)
 *
 * The listening socket and every connection are plain non-blocking
 * sockets watched with uv_poll_t; OpenSSL reads and writes them itself
 * (SSL_set_fd), with read-ahead on, so that one read(2) takes a whole
 * record and more. Each connection does SSL_accept, then echoes what
 * SSL_read gives with SSL_write from the same buffer. When OpenSSL holds
 * no more bytes (SSL_has_pending) it waits for the socket to be readable
 * again instead of asking for the EAGAIN; it only asks to hear about
 * writability while a write is stuck. No copies, no options on the
 * sockets, no bookkeeping: the least a TLS server on a libuv loop does
 * per message, so the other servers of the benchmark are measured
 * against it. It runs until it is killed.
 *
 * The protocol and cipher are OpenSSL's defaults on both ends (TLS 1.3,
 * TLS_AES_256_GCM_SHA384 here); the client prints what it negotiated.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#define BUF_SIZE (64 * 1024)

typedef struct {
  uv_poll_t poll;
  int fd;
  int events;      /* what the poll watches now */
  int handshaken;
  SSL *ssl;
  size_t off, len; /* bytes of buf read and not yet written back */
  char buf[BUF_SIZE];
} conn;

static SSL_CTX *ctx;
static uv_loop_t *loop;

static void on_poll(uv_poll_t *p, int status, int events);

static void on_close(uv_handle_t *h) {
  conn *c = h->data;
  SSL_free(c->ssl);
  close(c->fd);
  free(c);
}

static void drop(conn *c) {
  if (!uv_is_closing((uv_handle_t *)&c->poll))
    uv_close((uv_handle_t *)&c->poll, on_close);
}

/* Watches for 'events', touching the poll only when they change. */
static void want(conn *c, int events) {
  if (c->events == events) return;
  c->events = events;
  if (uv_poll_start(&c->poll, events, on_poll) != 0) drop(c);
}

/* What to wait for after an OpenSSL call failed with 'r'; 0: the
 * connection is over (end of file, an error). */
static int wait_for(conn *c, int r) {
  switch (SSL_get_error(c->ssl, r)) {
    case SSL_ERROR_WANT_READ: return UV_READABLE;
    case SSL_ERROR_WANT_WRITE: return UV_WRITABLE;
    default: ERR_clear_error(); return 0;
  }
}

/* Runs the connection as far as it goes without waiting. */
static void drive(conn *c) {
  int r, ev;
  if (!c->handshaken) {
    r = SSL_accept(c->ssl);
    if (r != 1) {
      if ((ev = wait_for(c, r)) == 0) drop(c);
      else want(c, ev);
      return;
    }
    c->handshaken = 1;
  }
  for (;;) {
    if (c->len > 0) {
      r = SSL_write(c->ssl, c->buf + c->off, (int)c->len);
      if (r <= 0) {
        if ((ev = wait_for(c, r)) == 0) drop(c);
        else want(c, ev);
        return;
      }
      c->off += (size_t)r;
      c->len -= (size_t)r;
      continue;
    }
    r = SSL_read(c->ssl, c->buf, BUF_SIZE);
    if (r <= 0) {
      if ((ev = wait_for(c, r)) == 0) drop(c);
      else want(c, ev);
      return;
    }
    c->off = 0;
    c->len = (size_t)r;
    /* Written back now; then, with nothing more held by OpenSSL, back to
     * the poll (level-triggered: bytes still in the socket wake it). */
    r = SSL_write(c->ssl, c->buf, (int)c->len);
    if (r <= 0) {
      if ((ev = wait_for(c, r)) == 0) drop(c);
      else want(c, ev);
      return;
    }
    c->off += (size_t)r;
    c->len -= (size_t)r;
    if (c->len == 0 && !SSL_has_pending(c->ssl)) {
      want(c, UV_READABLE);
      return;
    }
  }
}

static void on_poll(uv_poll_t *p, int status, int events) {
  conn *c = p->data;
  (void)events;
  if (status < 0) {
    drop(c);
    return;
  }
  drive(c);
}

static void on_accept(uv_poll_t *p, int status, int events) {
  int lfd = *(int *)p->data;
  (void)events;
  if (status < 0) return;
  for (;;) {
    int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) return;  /* EAGAIN, or an aborted connection */
    conn *c = malloc(sizeof *c);
    SSL *ssl = c ? SSL_new(ctx) : NULL;
    if (ssl == NULL || SSL_set_fd(ssl, fd) != 1 ||
        uv_poll_init_socket(loop, &c->poll, fd) != 0) {
      SSL_free(ssl);
      free(c);
      close(fd);
      continue;
    }
    c->fd = fd;
    c->ssl = ssl;
    c->events = 0;
    c->handshaken = 0;
    c->off = c->len = 0;
    c->poll.data = c;
    drive(c);
  }
}

static int fail(const char *what) {
  fprintf(stderr, "tls-floor: %s: ", what);
  if (ERR_peek_error() != 0) ERR_print_errors_fp(stderr);
  else fprintf(stderr, "%s\n", strerror(errno));
  return 1;
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: tls-floor CERT KEY [PORT]\n");
    return 2;
  }
  int port = argc > 3 ? atoi(argv[3]) : 0;
  /* OpenSSL writes to the sockets itself: a peer that has gone must be a
   * failed write (EPIPE), not the end of the process. */
  signal(SIGPIPE, SIG_IGN);
  ctx = SSL_CTX_new(TLS_server_method());
  if (ctx == NULL) return fail("SSL_CTX_new");
  if (SSL_CTX_use_certificate_chain_file(ctx, argv[1]) != 1) return fail(argv[1]);
  if (SSL_CTX_use_PrivateKey_file(ctx, argv[2], SSL_FILETYPE_PEM) != 1) return fail(argv[2]);
  SSL_CTX_set_read_ahead(ctx, 1);
  SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE);

  int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  struct sockaddr_in a;
  socklen_t len = sizeof a;
  int on = 1;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_port = htons((uint16_t)port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (lfd < 0) return fail("socket");
  setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);  /* as libuv's bind */
  if (bind(lfd, (struct sockaddr *)&a, sizeof a) != 0) return fail("bind");
  if (listen(lfd, 511) != 0) return fail("listen");
  if (getsockname(lfd, (struct sockaddr *)&a, &len) != 0) return fail("getsockname");

  loop = uv_default_loop();
  uv_poll_t lp;
  if (uv_poll_init_socket(loop, &lp, lfd) != 0) return fail("uv_poll_init_socket");
  lp.data = &lfd;
  uv_poll_start(&lp, UV_READABLE, on_accept);
  printf("port=%d\n", ntohs(a.sin_port));
  fflush(stdout);
  return uv_run(loop, UV_RUN_DEFAULT);
}
