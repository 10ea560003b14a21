/*
** minimal.c: the smallest program that runs a script with loom.
**
**   cc minimal.c $(pkg-config --cflags --libs loom) -o minimal
**   ./minimal script.lua
*/
#include <stdio.h>

#include <loom.h>

int main(int argc, char **argv) {
  loom_host *H = loom_new();  /* a loop and a Lua state of its own */
  int failures;
  if (H == NULL) return 1;
  if (loom_spawn_file(H, argc > 1 ? argv[1] : "-", 0) != LOOM_OK) {
    fprintf(stderr, "minimal: %s\n", lua_tostring(loom_state(H), -1));
    loom_free(H);
    return 1;
  }
  failures = loom_run(H);  /* until every task is done */
  loom_free(H);
  return failures == 0 ? 0 : 1;
}
