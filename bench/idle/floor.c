/* idle floor: a TCP server in C on one libuv loop that holds connections
 * and nothing else.
 *
 *   usage: idle-floor [PORT]      (default 0: a free port)
 *   prints: port=P                (once listening, on 127.0.0.1)
 *
 * Each accepted connection is one malloc'd uv_tcp_t with uv_read_start
 * on it; every read lands in one static buffer shared by all (libuv calls
 * alloc_cb and read_cb back to back) and is dropped. End of file or an
 * error closes the connection, and its close callback frees it. So an
 * idle connection costs this server its uv_tcp_t and its slot in libuv's
 * table of watchers, the least a libuv server can hold per connection.
 * (bench/echo/floor.c keeps a 64 KiB buffer inside each connection's
 * struct: its first page is touched when the struct is, so it costs an
 * idle connection a page, which would not be a floor here.)
 * It runs until it is killed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <uv.h>

static char slab[64 * 1024];

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  (void)h;
  (void)suggested;
  *buf = uv_buf_init(slab, sizeof slab);
}

static void on_close(uv_handle_t *h) { free(h); }

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  (void)buf;
  if (nread < 0) uv_close((uv_handle_t *)s, on_close);
}

static void on_connection(uv_stream_t *server, int status) {
  if (status < 0) return;
  uv_tcp_t *c = malloc(sizeof *c);
  if (c == NULL) return;
  uv_tcp_init(server->loop, c);
  if (uv_accept(server, (uv_stream_t *)c) != 0 ||
      uv_read_start((uv_stream_t *)c, on_alloc, on_read) != 0)
    uv_close((uv_handle_t *)c, on_close);
}

int main(int argc, char **argv) {
  int port = argc > 1 ? atoi(argv[1]) : 0;
  uv_loop_t *loop = uv_default_loop();
  uv_tcp_t server;
  struct sockaddr_in addr;
  struct sockaddr_storage bound;
  int len = sizeof bound, r;

  uv_tcp_init(loop, &server);
  uv_ip4_addr("127.0.0.1", port, &addr);
  r = uv_tcp_bind(&server, (const struct sockaddr *)&addr, 0);
  if (r == 0) r = uv_listen((uv_stream_t *)&server, 511, on_connection);
  if (r == 0) r = uv_tcp_getsockname(&server, (struct sockaddr *)&bound, &len);
  if (r != 0) {
    fprintf(stderr, "idle-floor: %s\n", uv_strerror(r));
    return 1;
  }
  printf("port=%d\n", ntohs(((struct sockaddr_in *)&bound)->sin_port));
  fflush(stdout);
  return uv_run(loop, UV_RUN_DEFAULT);
}
