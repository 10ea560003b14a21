/*
** tls_record: TLS input on loom's streams (src/tls.c): the input as
** records from a peer, to a TLS server with the throwaway certificate
** fuzz/tls_cert.pem, from the first byte (the handshake) or after a
** good handshake (injected by a proxy between loom's TLS client and
** the server), or to the client (see fuzz/tls_record.lua).  Every read
** ends in data or a failure value, every task ends; anything else, or
** a task's error, aborts.
*/
#include "harness.h"

int LLVMFuzzerTestOneInput(const uint8_t *in, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *in, size_t size) {
  loom_host *H = fz_host();
  lua_State *L = loom_state(H);
  if (size < 1) return 0;
  fz_push_script(H, "tls_record.lua");
  lua_pushlstring(L, (const char *)in, size);
  lua_pushstring(L, FUZZ_DIR);
  fz_run(H, 2);
  lua_settop(L, 0);
  return 0;
}
