/*
** process.c: child processes (loom.process).  (being written)
*/
#include "internal.h"

void loom__process_register(lua_State *L, loom_host *H) {
  (void)L; (void)H;
}
