/*
** work_copy: loom.work's copier (src/work.c), which carries a job's
** arguments and results between Lua states as bytes.  fuzz/work_copy.lua
** builds values from the input (nested tables, strings with NULs,
** integers, floats and NaN, tables shared or in a cycle, chains of
** tables up to 511 deep, a function) and passes them through a job
** that returns them: they come back equal, or loom.work refuses them
** with the error that fits.  Anything else aborts.
*/
#include "harness.h"

int LLVMFuzzerTestOneInput(const uint8_t *in, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *in, size_t size) {
  loom_host *H = fz_host();
  lua_State *L = loom_state(H);
  fz_push_script(H, "work_copy.lua");
  lua_pushlstring(L, (const char *)in, size);
  fz_run(H, 1);
  lua_settop(L, 0);
  return 0;
}
