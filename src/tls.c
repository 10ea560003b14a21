/*
** tls.c: TLS on a Stream with OpenSSL 3, the C side of net.connect's
** and net.listen's 'tls' options and of stream:starttls and stream:tls
** (core.tls; lua/loom/net.lua holds the public functions).
**
** A TLS stream is the same Stream: this file fills in its hook (see
** loom_stream_hook in internal.h) with an SSL over two memory BIOs, the
** way Node's TLS sits on its TCP wrap.  The socket's ciphertext goes
** into the read BIO and SSL_read puts the plaintext into the stream's
** own buffer, so every read works unchanged and the buffer's limit
** (backpressure) counts plaintext.  Plaintext written goes through
** SSL_write in slices; the write BIO's ciphertext leaves through
** loom__stream_send after each, so the high-water mark and flush work
** on it.  Whatever OpenSSL has to say while reading (handshake
** messages, TLS 1.3 tickets, key updates, alerts) is sent at once.  A
** handshake is a wait on the stream like a read (one task at a time):
** each arrival of data resumes it, and it looks at the SSL's state.
**
** Ownership: a stream's 'tls_conn' (its SSL, which owns the two BIOs)
** is malloc'd and freed with the stream's memory, in its close
** callback.  A context ('loom.tls_context') is a handle that holds one
** reference to its SSL_CTX; every SSL holds another (SSL_new, SSL_free),
** so an SSL_CTX goes with the last of its context and its streams.  The
** handle closes when its userdata is collected or its host closes.  The
** default client context (the system's CAs, verification on) is made
** once per host and kept in the registry; net.listen makes one per
** server, which its handler's closure keeps.
**
** Failures are values: nil, "<what> '<peer>': <OpenSSL's reason>", and
** "EPROTO" for TLS and verification failures.
*/
#include <string.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "internal.h"

#define LOOM_TLS_CTX_MT "loom.tls_context"
#define SLICE (64 * 1024)   /* plaintext per SSL_write */

typedef struct {
  SSL *ssl;                 /* owns rbio and wbio */
  BIO *rbio, *wbio;         /* ciphertext in and out */
  unsigned verify : 1;      /* a client that checks the peer */
  unsigned fatal : 1;       /* a fatal error: no close_notify */
  char why[200];            /* the reason of its EPROTO */
} tls_conn;

typedef struct {
  loom_handle base;
  SSL_CTX *ctx;             /* one reference */
  int verify;               /* a client context that checks the peer */
} tls_ctx;

static char default_key;  /* registry: the host's default client context */


/* {====================================================================
** OpenSSL's errors
** ===================================================================== */

/*
** Puts OpenSSL's reason for the first error in its queue into 'buf'
** and empties the queue; returns the libuv code for it: a system
** error's own, else 'def'.  A failed verification says why, as the
** SSL recorded it ("certificate verify failed: self-signed
** certificate").
*/
static int ssl_reason(char *buf, size_t size, SSL *ssl, int def) {
  unsigned long e = ERR_peek_error();
  int code = def;
  if (e == 0) snprintf(buf, size, "unexpected eof while reading");
  else if (ERR_SYSTEM_ERROR(e)) {
    code = uv_translate_sys_error(ERR_GET_REASON(e));
    snprintf(buf, size, "%s", uv_strerror(code));
  }
  else {
    const char *r = ERR_reason_error_string(e);
    if (r == NULL) r = "TLS error";
    if (ssl != NULL && ERR_GET_LIB(e) == ERR_LIB_SSL
        && ERR_GET_REASON(e) == SSL_R_CERTIFICATE_VERIFY_FAILED)
      snprintf(buf, size, "%s: %s", r,
               X509_verify_cert_error_string(SSL_get_verify_result(ssl)));
    else snprintf(buf, size, "%s", r);
  }
  ERR_clear_error();
  return code;
}

/*
** What the SSL call that returned 'ret' means for the stream: 0 (it
** waits for more input), UV_EOF (the peer's close_notify) or UV_EPROTO
** (fatal; the reason kept for messages).
*/
static int conn_error(tls_conn *c, int ret) {
  switch (SSL_get_error(c->ssl, ret)) {
    case SSL_ERROR_WANT_READ:
      return 0;
    case SSL_ERROR_ZERO_RETURN:
      return UV_EOF;
    default:
      c->fatal = 1;
      ssl_reason(c->why, sizeof c->why, c->ssl, UV_EPROTO);
      return UV_EPROTO;
  }
}

/* }==================================================================== */


/* {====================================================================
** The stream's hook
** ===================================================================== */

/*
** Sends what OpenSSL wrote.  Straight from the write BIO when the
** kernel takes it all, as it mostly does; what it leaves goes in a
** malloc'd chunk to loom__stream_send.
*/
static int flush_out(loom_stream *s, tls_conn *c) {
  char *data, *chunk;
  long n = BIO_get_mem_data(c->wbio, &data);
  int done;
  if (n <= 0) return 0;
  done = loom__stream_try(s, data, (size_t)n);
  if (done < 0) return done;
  if (done == n) {
    (void)BIO_reset(c->wbio);
    return 0;
  }
  chunk = malloc((size_t)(n - done));
  if (chunk == NULL) return UV_ENOMEM;
  memcpy(chunk, data + done, (size_t)(n - done));
  (void)BIO_reset(c->wbio);
  return loom__stream_send(s, chunk, (size_t)(n - done));
}

/* Clears OpenSSL's error queue before a call, as SSL_get_error needs;
** it is mostly empty already (every failure path clears it). */
static void clear_errors(void) {
  if (ERR_peek_error() != 0) ERR_clear_error();
}

/*
** Runs what the ciphertext in the read BIO allows: the handshake, then
** reads of plaintext into the buffer until the BIO is empty, then sends
** what OpenSSL wrote meanwhile (a failure to send is a write error).
** Returns 0, UV_EOF or an error.
*/
static int pump(loom_stream *s, tls_conn *c) {
  int r = 0, w;
  if (!SSL_is_init_finished(c->ssl)) {
    int ret;
    ERR_clear_error();
    ret = SSL_do_handshake(c->ssl);
    if (ret <= 0) r = conn_error(c, ret);
  }
  while (r == 0 && SSL_is_init_finished(c->ssl)) {
    size_t got;
    char *p = loom__stream_slab(s);  /* the ciphertext is in the BIO */
    if (p == NULL) {
      r = UV_ENOBUFS;
      break;
    }
    clear_errors();
    if (!SSL_read_ex(c->ssl, p, LOOM_READ_CHUNK, &got)) {
      r = conn_error(c, 0);
      break;
    }
    if (loom__stream_append(s, p, got) != 0) {
      r = UV_ENOBUFS;
      break;
    }
    /* all read: another SSL_read would only say so */
    if (SSL_pending(c->ssl) == 0 && BIO_ctrl_pending(c->rbio) == 0) break;
  }
  w = flush_out(s, c);
  if (w != 0 && s->werr == 0) s->werr = w;
  return r;
}

/*
** Ciphertext from the socket; 'n' 0 is its end, which OpenSSL then
** sees: without the peer's close_notify, "unexpected eof while reading"
** (a truncation is an error, never a quiet end of file).
*/
static int tls_input(loom_stream *s, const char *p, size_t n) {
  tls_conn *c = s->hook_ud;
  if (n == 0) BIO_set_mem_eof_return(c->rbio, 0);
  else if (BIO_write(c->rbio, p, (int)n) != (int)n) return UV_ENOMEM;
  return pump(s, c);
}

/* Plaintext to send, a slice at a time (the write BIO stays small). */
static int tls_output(loom_stream *s, const char *p, size_t n) {
  tls_conn *c = s->hook_ud;
  if (c->fatal) return UV_EPROTO;
  if (!SSL_is_init_finished(c->ssl)) return UV_EBUSY;
  while (n > 0) {
    size_t k = n < SLICE ? n : SLICE, done;
    int r;
    clear_errors();
    if (!SSL_write_ex(c->ssl, p, k, &done)) {
      r = conn_error(c, 0);
      flush_out(s, c);  /* an alert, perhaps */
      return r != 0 ? r : UV_EPROTO;
    }
    p += done;
    n -= done;
    r = flush_out(s, c);
    if (r != 0) return r;
  }
  return 0;
}

/* The end of the writes: close_notify, once, after a handshake. */
static int tls_finish(loom_stream *s) {
  tls_conn *c = s->hook_ud;
  if (c->fatal || !SSL_is_init_finished(c->ssl)
      || (SSL_get_shutdown(c->ssl) & SSL_SENT_SHUTDOWN))
    return 0;
  ERR_clear_error();
  SSL_shutdown(c->ssl);  /* 0: sent; the peer's may never come */
  ERR_clear_error();
  return flush_out(s, c);
}

static const char *tls_reason(loom_stream *s, int err) {
  tls_conn *c = s->hook_ud;
  return err == UV_EPROTO && c->why[0] != '\0' ? c->why : NULL;
}

static void tls_free(loom_stream *s) {
  tls_conn *c = s->hook_ud;
  SSL_free(c->ssl);
  free(c);
  s->hook_ud = NULL;
}

static const loom_stream_hook tls_hook = {
  tls_input, tls_output, tls_finish, tls_reason, tls_free, NULL, NULL
};

/* }==================================================================== */


/* {====================================================================
** Contexts
** ===================================================================== */

static int alpn_index = -1;  /* SSL_CTX ex_data: a server's ALPN list */
static uv_once_t alpn_once = UV_ONCE_INIT;

/* A server's list of protocols, owned by its SSL_CTX. */
typedef struct {
  unsigned len;
  unsigned char wire[1];    /* as on the wire: length-prefixed names */
} alpn_list;

static void alpn_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx,
                      long argl, void *argp) {
  (void)parent; (void)ad; (void)idx; (void)argl; (void)argp;
  free(ptr);
}

static void alpn_init(void) {
  alpn_index = CRYPTO_get_ex_new_index(CRYPTO_EX_INDEX_SSL_CTX, 0, NULL,
                                       NULL, NULL, alpn_free);
}

/*
** The server picks the first of its protocols that the client offers;
** none in common: the handshake goes on without ALPN.
*/
static int alpn_select(SSL *ssl, const unsigned char **out,
                       unsigned char *outlen, const unsigned char *in,
                       unsigned int inlen, void *arg) {
  alpn_list *a = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), alpn_index);
  unsigned char *sel;
  (void)arg;
  if (a == NULL
      || SSL_select_next_proto(&sel, outlen, a->wire, a->len, in, inlen)
         != OPENSSL_NPN_NEGOTIATED)
    return SSL_TLSEXT_ERR_NOACK;
  *out = sel;
  return SSL_TLSEXT_ERR_OK;
}

static void ctx_close_h(loom_handle *h, int why) {
  tls_ctx *x = (tls_ctx *)h;
  (void)why;
  loom__handle_unlink(h);
  SSL_CTX_free(x->ctx);  /* its streams' SSLs keep theirs */
  free(x);
}

static const loom_class ctx_class = {
  .name = LOOM_TLS_CTX_MT,
  .noun = "TLS context",
  .close = ctx_close_h
};

/* Pushes a new context of the kind given; raises when memory runs out. */
static tls_ctx *ctx_new(lua_State *L, int server) {
  tls_ctx *x = loom__handle_new(L, loom__host(L), &ctx_class, sizeof *x, 0);
  x->ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
  if (x->ctx == NULL) {
    ERR_clear_error();
    loom__nomem(L);
  }
  SSL_CTX_set_min_proto_version(x->ctx, TLS1_2_VERSION);
  SSL_CTX_set_options(x->ctx, SSL_OP_NO_RENEGOTIATION);
  SSL_CTX_set_mode(x->ctx, SSL_MODE_RELEASE_BUFFERS);
  /* no TLS 1.3 session tickets: loom's clients do not resume sessions,
  ** and a server sends its tickets only once it reads the client's
  ** Finished: to a client that wrote and closed by then, they arrive
  ** after its close, its kernel answers with a reset, and the server
  ** loses the data it had not read yet */
  if (server) SSL_CTX_set_num_tickets(x->ctx, 0);
  return x;
}

/* The open context at 'idx' (an argument of core.tls's functions). */
static tls_ctx *check_ctx(lua_State *L, int idx) {
  tls_ctx *x = (tls_ctx *)loom__tohandle(L, idx, &ctx_class);
  if (x == NULL) luaL_error(L, "loom: the TLS context is closed");
  return x;
}

/* Whether 'pem' is PEM text rather than a path. */
static int is_pem(const char *pem) {
  return strncmp(pem, "-----BEGIN", 10) == 0;
}

/*
** The failure of loading 'what' from 'src' (a path, or PEM text),
** with OpenSSL's reason: the system's error code for a file that could
** not be read, else EINVAL.
*/
static int fail_load(lua_State *L, const char *what, const char *src) {
  char why[200];
  int code = ssl_reason(why, sizeof why, NULL, UV_EINVAL);
  return loom__fail_reason(L, what, is_pem(src) ? "(PEM text)" : src, why,
                           uv_err_name(code));
}

/* Adds the certificates of the PEM text 'pem' to the store of 'ctx'. */
static int add_ca_pem(SSL_CTX *ctx, const char *pem, size_t len) {
  BIO *b = BIO_new_mem_buf(pem, (int)len);
  STACK_OF(X509_INFO) *infos;
  X509_STORE *store = SSL_CTX_get_cert_store(ctx);
  int i, n = 0;
  if (b == NULL) return 0;
  infos = PEM_X509_INFO_read_bio(b, NULL, NULL, NULL);
  BIO_free(b);
  if (infos == NULL) return 0;
  for (i = 0; i < sk_X509_INFO_num(infos); i++) {
    X509_INFO *info = sk_X509_INFO_value(infos, i);
    if (info->x509 != NULL && X509_STORE_add_cert(store, info->x509)) n++;
  }
  sk_X509_INFO_pop_free(infos, X509_INFO_free);
  if (n == 0 && ERR_peek_error() == 0)
    ERR_raise(ERR_LIB_PEM, PEM_R_NO_START_LINE);
  return n > 0;
}

/* The CAs of 'ca', a file, a folder of hashed names, or PEM text. */
static int load_ca(SSL_CTX *ctx, const char *ca, size_t len) {
  struct stat st;
  if (is_pem(ca)) return add_ca_pem(ctx, ca, len);
  if (stat(ca, &st) == 0 && S_ISDIR(st.st_mode))
    return SSL_CTX_load_verify_dir(ctx, ca);
  return SSL_CTX_load_verify_file(ctx, ca);
}

/*
** core.tls.client(verify, ca, alpn): a client context, or nil, msg,
** code when 'ca' cannot be loaded.  'alpn' is the list in wire format.
** Without options, the host's default context, made once.
*/
static int l_client(lua_State *L) {
  int verify = lua_toboolean(L, 1);
  size_t calen, alen;
  const char *ca = lua_tolstring(L, 2, &calen);
  const char *alpn = lua_tolstring(L, 3, &alen);
  int dflt = verify && ca == NULL && alpn == NULL;
  tls_ctx *x;
  if (dflt && lua_rawgetp(L, LUA_REGISTRYINDEX, &default_key) != LUA_TNIL
      && loom__tohandle(L, -1, &ctx_class) != NULL)
    return 1;  /* (an old host's is closed) */
  x = ctx_new(L, 0);
  x->verify = verify;
  SSL_CTX_set_verify(x->ctx, verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE,
                     NULL);
  if (verify && ca == NULL) SSL_CTX_set_default_verify_paths(x->ctx);
  ERR_clear_error();  /* a system without a default store is no error */
  if (ca != NULL && !load_ca(x->ctx, ca, calen))
    return fail_load(L, "load CA certificates", ca);
  if (alpn != NULL
      && SSL_CTX_set_alpn_protos(x->ctx, (const unsigned char *)alpn,
                                 (unsigned)alen) != 0) {
    ERR_clear_error();
    return luaL_error(L, "loom: bad ALPN list");
  }
  if (dflt) {  /* kept for the host's life: not reported at exit */
    x->base.lasting = 1;
    lua_pushvalue(L, -1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &default_key);
  }
  return 1;
}

/* The certificate (with its chain) of PEM text 'pem'. */
static int use_cert_pem(SSL_CTX *ctx, const char *pem, size_t len) {
  BIO *b = BIO_new_mem_buf(pem, (int)len);
  X509 *x;
  int ok;
  if (b == NULL) return 0;
  x = PEM_read_bio_X509_AUX(b, NULL, NULL, NULL);
  ok = x != NULL && SSL_CTX_use_certificate(ctx, x);
  X509_free(x);
  while (ok && (x = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL)
    if (!SSL_CTX_add0_chain_cert(ctx, x)) {
      X509_free(x);
      ok = 0;
    }
  if (ok) ERR_clear_error();  /* the end of the text */
  BIO_free(b);
  return ok;
}

static int use_key_pem(SSL_CTX *ctx, const char *pem, size_t len) {
  BIO *b = BIO_new_mem_buf(pem, (int)len);
  EVP_PKEY *k;
  int ok;
  if (b == NULL) return 0;
  k = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
  ok = k != NULL && SSL_CTX_use_PrivateKey(ctx, k);
  EVP_PKEY_free(k);
  BIO_free(b);
  return ok;
}

/* Keeps the ALPN list 'wire' in 'ctx', which selects from it. */
static int set_server_alpn(SSL_CTX *ctx, const char *wire, size_t len) {
  alpn_list *a;
  uv_once(&alpn_once, alpn_init);
  a = malloc(sizeof *a + len);
  if (a == NULL || alpn_index < 0) {
    free(a);
    return 0;
  }
  a->len = (unsigned)len;
  memcpy(a->wire, wire, len);
  if (!SSL_CTX_set_ex_data(ctx, alpn_index, a)) {
    free(a);
    return 0;
  }
  SSL_CTX_set_alpn_select_cb(ctx, alpn_select, NULL);
  return 1;
}

/*
** core.tls.server(cert, key, alpn): a server context, or nil, msg,
** code naming the certificate or key that could not be used.
*/
static int l_server(lua_State *L) {
  size_t clen, klen, alen;
  const char *cert = luaL_checklstring(L, 1, &clen);
  const char *key = luaL_checklstring(L, 2, &klen);
  const char *alpn = lua_tolstring(L, 3, &alen);
  tls_ctx *x = ctx_new(L, 1);
  int ok;
  ok = is_pem(cert) ? use_cert_pem(x->ctx, cert, clen)
                    : SSL_CTX_use_certificate_chain_file(x->ctx, cert);
  if (!ok) return fail_load(L, "load certificate", cert);
  ok = is_pem(key) ? use_key_pem(x->ctx, key, klen)
                   : SSL_CTX_use_PrivateKey_file(x->ctx, key,
                                                 SSL_FILETYPE_PEM);
  if (!ok) return fail_load(L, "load private key", key);
  if (!SSL_CTX_check_private_key(x->ctx))
    return fail_load(L, "use private key", key);
  if (alpn != NULL && !set_server_alpn(x->ctx, alpn, alen)) {
    ERR_clear_error();
    return loom__nomem(L);
  }
  return 1;
}

/* }==================================================================== */


/* {====================================================================
** Handshakes
** ===================================================================== */

static int is_ip(const char *name) {
  unsigned char a[16];
  return uv_inet_pton(AF_INET, name, a) == 0
         || uv_inet_pton(AF_INET6, name, a) == 0;
}

/*
** A client's SSL: SNI with 'name' (not for an IP address), and, when
** the context verifies, the check that the certificate is for 'name'.
*/
static int client_setup(tls_conn *c, tls_ctx *x, const char *name) {
  int ip = is_ip(name);
  SSL_set_connect_state(c->ssl);
  c->verify = x->verify != 0;
  if (!ip && !SSL_set_tlsext_host_name(c->ssl, name)) return 0;
  if (!c->verify) return 1;
  if (ip) return X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl), name);
  SSL_set_hostflags(c->ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
  return SSL_set1_host(c->ssl, name);
}

/*
** Gives 's' its TLS hook: a connection of context 'x', as a client for
** 'name' or as a server (name NULL).  Bytes already buffered are the
** peer's first ciphertext.  Raises when memory runs out or 'name'
** cannot be used.
*/
static tls_conn *attach(lua_State *L, loom_stream *s, tls_ctx *x,
                        const char *name) {
  tls_conn *c = calloc(1, sizeof *c);
  int ok, bad_name = 0;
  if (c == NULL) loom__nomem(L);
  c->ssl = SSL_new(x->ctx);
  c->rbio = BIO_new(BIO_s_mem());
  c->wbio = BIO_new(BIO_s_mem());
  ok = c->ssl != NULL && c->rbio != NULL && c->wbio != NULL;
  if (ok) {
    SSL_set_bio(c->ssl, c->rbio, c->wbio);  /* the SSL owns them now */
    if (name == NULL) SSL_set_accept_state(c->ssl);
    else bad_name = !(ok = client_setup(c, x, name));
  }
  else {
    BIO_free(c->rbio);
    BIO_free(c->wbio);
  }
  ok = ok && (s->len == 0 || BIO_write(c->rbio, s->buf + s->start,
                                       (int)s->len) == (int)s->len);
  if (!ok) {
    SSL_free(c->ssl);
    free(c);
    ERR_clear_error();
    if (bad_name)
      luaL_error(L, "loom: cannot use '%s' as a TLS server name", name);
    loom__nomem(L);
  }
  s->start = s->len = 0;
  s->hook = &tls_hook;
  s->hook_ud = c;
  return c;
}

static int handshake_k(lua_State *L, int status, lua_KContext ctx);

/* The handshake of the stream at 1 (the caller's name at 4) goes on. */
static int handshake_body(lua_State *L, loom_stream *s) {
  tls_conn *c = s->hook_ud;
  const char *fname = lua_tostring(L, 4);
  loom_task *t;
  if (s->closed)
    return loom__fail_reason(L, NULL, NULL, "the stream is closed",
                             "ECANCELED");
  if (SSL_is_init_finished(c->ssl)) {
    lua_pushvalue(L, 1);
    return 1;
  }
  if (s->rerr) return loom__stream_fail(L, s, "TLS handshake with", s->rerr);
  if (s->werr) return loom__stream_fail(L, s, "TLS handshake with", s->werr);
  if (s->eof) return loom__fail(L, "TLS handshake with", s->name, UV_EOF);
  if (s->readers != NULL)
    return loom__errorf(L, "%s: another task is reading this stream", fname);
  t = loom__enter(L, loom__host(L), fname);
  loom__stream_read(s);
  if (s->rerr) return loom__stream_fail(L, s, "TLS handshake with", s->rerr);
  loom__list_wait(&s->readers, t);
  return loom__wait(L, handshake_k, (lua_KContext)0);
}

static int handshake_k(lua_State *L, int status, lua_KContext ctx) {
  loom_stream *s = loom__stream_resumed(L);
  (void)status; (void)ctx;
  if (s == NULL)
    return loom__fail_reason(L, NULL, NULL, "the stream is closed",
                             "ECANCELED");
  return handshake_body(L, s);
}

/*
** core.tls.connect(stream, ctx, name, fname) and core.tls.accept(
** stream, ctx, nil, fname) (suspend): the stream once its handshake is
** done, or nil, msg, code.  'fname' names the caller in errors.
*/
static int start(lua_State *L, int server) {
  const char *fname = luaL_checkstring(L, 4);
  loom_stream *s = loom__tostream(L, 1, fname);
  tls_ctx *x = check_ctx(L, 2);
  const char *name = server ? NULL : luaL_checkstring(L, 3);
  tls_conn *c;
  int r;
  loom__current(L, loom__host(L), fname);
  lua_settop(L, 4);
  if (s == NULL)
    return loom__fail_reason(L, NULL, NULL, "the stream is closed",
                             "ECANCELED");
  if (s->hook != NULL)
    return loom__errorf(L, "%s: the stream is already TLS", fname);
  if (s->readers != NULL)
    return loom__errorf(L, "%s: another task is reading this stream", fname);
  if (s->rerr) return loom__stream_fail(L, s, "TLS handshake with", s->rerr);
  if (s->eof) return loom__fail(L, "TLS handshake with", s->name, UV_EOF);
  c = attach(L, s, x, name);
  r = pump(s, c);  /* a client's hello; what was buffered */
  if (r == UV_EOF) s->eof = 1;
  else if (r < 0) s->rerr = r;
  return handshake_body(L, s);
}

static int l_connect(lua_State *L) {
  return start(L, 0);
}

static int l_accept(lua_State *L) {
  return start(L, 1);
}

/*
** core.tls.check(x, fname): raises unless 'x' is a stream that may
** start TLS (a closed one may: starting fails with ECANCELED).  Called
** straight from Lua, so that the error names the user's line.
*/
static int l_check(lua_State *L) {
  const char *fname = luaL_checkstring(L, 2);
  loom_stream *s = loom__tostream(L, 1, fname);
  if (s != NULL && s->hook != NULL)
    return loom__errorf(L, "%s: the stream is already TLS", fname);
  if (s != NULL && s->readers != NULL)
    return loom__errorf(L, "%s: another task is reading this stream", fname);
  return 0;
}

/* core.tls.info(stream): nil for a plain stream, else what it uses */
static int l_info(lua_State *L) {
  loom_stream *s = loom__tostream(L, 1, "stream:tls");
  tls_conn *c;
  const unsigned char *alpn;
  unsigned alen;
  if (s == NULL) return loom__errorf(L, "attempt to use a closed stream");
  if (s->hook != &tls_hook) {
    lua_pushnil(L);
    return 1;
  }
  c = s->hook_ud;
  lua_createtable(L, 0, 4);
  lua_pushstring(L, SSL_get_version(c->ssl));
  lua_setfield(L, -2, "version");
  lua_pushstring(L, SSL_get_cipher_name(c->ssl));
  lua_setfield(L, -2, "cipher");
  SSL_get0_alpn_selected(c->ssl, &alpn, &alen);
  if (alen > 0) {
    lua_pushlstring(L, (const char *)alpn, alen);
    lua_setfield(L, -2, "alpn");
  }
  lua_pushboolean(L, c->verify && SSL_is_init_finished(c->ssl)
                     && SSL_get0_peer_certificate(c->ssl) != NULL
                     && SSL_get_verify_result(c->ssl) == X509_V_OK);
  lua_setfield(L, -2, "verified");
  return 1;
}

/* }==================================================================== */


static const luaL_Reg funcs[] = {
  {"client", l_client},
  {"server", l_server},
  {"connect", l_connect},
  {"accept", l_accept},
  {"info", l_info},
  {"check", l_check},
  {NULL, NULL}
};

void loom__tls_register(lua_State *L, loom_host *H) {
  (void)H;
  loom__class_register(L, &ctx_class);
  lua_createtable(L, 0, 6);
  loom__push_box(L);
  luaL_setfuncs(L, funcs, 1);
  lua_setfield(L, -2, "tls");
}
