/*
** signal.c: signals (loom.signal).  (being written)
*/
#include "internal.h"

void loom__signal_register(lua_State *L, loom_host *H) {
  (void)L; (void)H;
}
