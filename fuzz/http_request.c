/*
** http_request: the request path of loom.http's server (llhttp through
** src/http_parser.c, and lua/loom/http_server.lua), over a real
** connection on 127.0.0.1.  fuzz/http_request.lua sends the input in
** pieces (byte 0 their count, then their sizes) to a new server, whose
** handler reads the body as the path says (req:body, req:read(5),
** req:chunks, or not at all) and answers 200; what comes back must be
** whole responses: a 200 for each request, in order, 100 Continue
** before a body that expects it, or an error status (400, 413, 414,
** 431...) that ends the connection.  Anything else aborts.
*/
#include "harness.h"

int LLVMFuzzerTestOneInput(const uint8_t *in, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *in, size_t size) {
  loom_host *H = fz_host();
  lua_State *L = loom_state(H);
  if (size < 1) return 0;
  fz_push_script(H, "http_request.lua");
  lua_pushlstring(L, (const char *)in, size);
  fz_run(H, 1);
  lua_settop(L, 0);
  return 0;
}
