/*
** mainloop.c: a program with a main loop of its own (poll(2), here
** reading lines from standard input) that steps loom inside it.  loom
** tells what to wait for: its backend descriptor and a timeout.
**
**   printf 'a\nb\n' | ./mainloop
**
** The script's tasks tick on loom timers while the program reads its
** input; each line read is handed to the script through a future.
*/
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <loom.h>

static const char *script =
  "local lines = {}\n"
  "function on_line(s) lines[#lines + 1] = s end\n"
  "loom.spawn(function()\n"
  "  for i = 1, 3 do loom.sleep(0.02); print('tick ' .. i) end\n"
  "end)\n"
  "loom.sleep(0.1)\n"
  "print('script saw ' .. #lines .. ' line(s): ' .. table.concat(lines, ','))\n";

/* Calls the script's global on_line(s). */
static void hand_line(loom_host *H, const char *line) {
  lua_State *L = loom_state(H);
  lua_getglobal(L, "on_line");
  lua_pushstring(L, line);
  if (lua_pcall(L, 1, 0, 0) != LUA_OK) lua_pop(L, 1);
}

/* Reads what stdin has; returns 0 at end of input. */
static int read_input(loom_host *H) {
  char buf[256];
  ssize_t n = read(0, buf, sizeof buf - 1);
  char *line, *save = NULL;
  if (n <= 0) return 0;
  buf[n] = '\0';
  for (line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
    hand_line(H, line);
  return 1;
}

int main(void) {
  loom_host *H = loom_new();
  int input_open = 1, steps = 1;
  if (H == NULL || loom_spawn_string(H, script, "=script", 0) != LOOM_OK)
    return 1;
  lua_pop(loom_state(H), 1);  /* the task */
  while (loom_step(H) > 0) {  /* runs what is ready, never blocks */
    struct pollfd fds[2] = {
      {loom_backend_fd(H), POLLIN, 0},
      {0, POLLIN, 0},
    };
    poll(fds, input_open ? 2 : 1, loom_backend_timeout(H));
    if (input_open && (fds[1].revents & (POLLIN | POLLHUP)))
      input_open = read_input(H);
    steps++;
  }
  printf("host: loom done after %d steps\n", steps);
  loom_free(H);
  return 0;
}
