/*
** fs.c: files (loom.fs).  (being written)
*/
#include "internal.h"

void loom__fs_register(lua_State *L, loom_host *H) {
  (void)L; (void)H;
}
