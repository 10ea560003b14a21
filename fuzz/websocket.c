/*
** websocket: loom.http's WebSockets (lua/loom/websocket.lua, and
** wslay's framing through src/websocket.c) on what a peer sends, over
** a real connection on 127.0.0.1: frames to a server's WebSocket or a
** client's, with or without the upgrade handshake before them (see
** fuzz/websocket.lua for the layout).  Messages must be of their
** kinds, text in UTF-8 and within max_message, the close status one
** loom may give; anything else, or a task's error, aborts.
*/
#include "harness.h"

int LLVMFuzzerTestOneInput(const uint8_t *in, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *in, size_t size) {
  loom_host *H = fz_host();
  lua_State *L = loom_state(H);
  if (size < 1) return 0;
  fz_push_script(H, "websocket.lua");
  lua_pushlstring(L, (const char *)in, size);
  fz_run(H, 1);
  lua_settop(L, 0);
  return 0;
}
