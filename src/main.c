/*
** main.c: the loom binary.  Its command line follows lua5.4's; the
** script's main chunk (after any -l and -e) runs as the main task, so
** suspending calls work at top level.  The process lives until every
** task and handle are done.  Exit status: 0, or 1 when an error went
** uncaught, or 130 when Ctrl-C ended the main task.
*/
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lualib.h>

#include "loom.h"

static const char *progname = "loom";

/*
** The host stays reachable from here when the binary exits without
** closing it (see main): leak checkers then see memory still in use,
** not lost.
*/
static loom_host *exiting_host;

static void usage(const char *badoption) {
  if (badoption[1] == 'e' || badoption[1] == 'l')
    fprintf(stderr, "%s: '%s' needs argument\n", progname, badoption);
  else
    fprintf(stderr, "%s: unrecognized option '%s'\n", progname, badoption);
  fprintf(stderr,
          "usage: %s [options] [script [args]]\n"
          "Available options are:\n"
          "  -e stat   execute string 'stat'\n"
          "  -l mod    require library 'mod' into global 'mod'\n"
          "  -l g=mod  require library 'mod' into global 'g'\n"
          "  -v        show version information\n"
          "  --        stop handling options\n"
          "  -         stop handling options and execute stdin\n",
          progname);
}

static void print_version(void) {
  printf("loom %s (%s, libuv %s)\n", LOOM_VERSION, LUA_RELEASE,
         uv_version_string());
}

/* {====================================================================
** Options, as lua.c collects them
** ===================================================================== */

#define HAS_E 1
#define HAS_V 2
#define HAS_I 4
#define HAS_L 8

/*
** Returns the index of the script in argv (argc when there is none),
** or -1 on a bad option, whose index goes to '*bad'; sets the HAS_*
** flags in '*flags'.
*/
static int collect_args(char **argv, int argc, int *flags, int *bad) {
  int i;
  for (i = 1; i < argc; i++) {
    *bad = i;
    if (argv[i][0] != '-') return i;
    switch (argv[i][1]) {
      case '-':
        if (argv[i][2] != '\0') return -1;
        return i + 1;
      case '\0':
        return i;
      case 'i':
      case 'v':
        if (argv[i][2] != '\0') return -1;
        *flags |= argv[i][1] == 'i' ? HAS_I : HAS_V;
        break;
      case 'e':
      case 'l':
        *flags |= argv[i][1] == 'e' ? HAS_E : HAS_L;
        if (argv[i][2] == '\0' && ++i >= argc) return -1;
        break;
      default:
        return -1;
    }
  }
  return argc;
}

/* The global 'arg': script at 0, options below, arguments above. */
static void create_arg_table(lua_State *L, char **argv, int argc,
                             int script) {
  int i;
  if (script == argc) script = 0;
  lua_createtable(L, argc - script - 1, script + 1);
  for (i = 0; i < argc; i++) {
    lua_pushstring(L, argv[i]);
    lua_rawseti(L, -2, i - script);
  }
  lua_setglobal(L, "arg");
}

/* }==================================================================== */


/* {====================================================================
** The main task
** ===================================================================== */

static int report_load_error(lua_State *L) {
  fprintf(stderr, "%s: %s\n", progname, lua_tostring(L, -1));
  fflush(stderr);
  return 0;
}

/* Adds step {fn = <chunk>, n = #args, args...} to the table at 'steps'. */
static int add_chunk(lua_State *L, int steps, int status, char **args,
                     int nargs) {
  int i;
  if (status != LUA_OK) return report_load_error(L);
  lua_createtable(L, nargs, 2);
  lua_insert(L, -2);
  lua_setfield(L, -2, "fn");
  for (i = 0; i < nargs; i++) {
    lua_pushstring(L, args[i]);
    lua_rawseti(L, -2, i + 1);
  }
  lua_pushinteger(L, nargs);
  lua_setfield(L, -2, "n");
  lua_rawseti(L, steps, (lua_Integer)lua_rawlen(L, steps) + 1);
  return 1;
}

/* '-l mod' sets global 'mod'; '-l g=mod' sets global 'g' (lua 5.4.6). */
static void add_module(lua_State *L, int steps, const char *name) {
  const char *eq = strchr(name, '=');
  lua_createtable(L, 0, 2);
  lua_pushstring(L, eq ? eq + 1 : name);
  lua_setfield(L, -2, "module");
  if (eq) lua_pushlstring(L, name, (size_t)(eq - name));
  else lua_pushstring(L, name);
  lua_setfield(L, -2, "global");
  lua_rawseti(L, steps, (lua_Integer)lua_rawlen(L, steps) + 1);
}

/*
** Pushes the list of steps the main task runs: '-e' and '-l' in the
** order given, then the script.  Returns 0 after printing a load error.
*/
static int build_steps(lua_State *L, char **argv, int argc, int script,
                       int from_stdin) {
  int i, steps;
  lua_newtable(L);
  steps = lua_gettop(L);
  for (i = 1; i < script; i++) {
    const char *opt = argv[i];
    const char *val;
    if (opt[1] != 'e' && opt[1] != 'l') continue;
    val = opt[2] != '\0' ? opt + 2 : argv[++i];
    if (opt[1] == 'l') add_module(L, steps, val);
    else if (!add_chunk(L, steps, luaL_loadbuffer(L, val, strlen(val),
                                                  "=(command line)"),
                        NULL, 0))
      return 0;
  }
  if (script < argc || from_stdin) {
    const char *fname = from_stdin ? NULL : argv[script];
    if (!from_stdin && strcmp(fname, "-") == 0
        && strcmp(argv[script - 1], "--") != 0)
      fname = NULL;  /* stdin */
    if (!add_chunk(L, steps, luaL_loadfile(L, fname), argv + script + 1,
                   from_stdin ? 0 : argc - script - 1))
      return 0;
  }
  return 1;
}

/*
** Spawns the main task: the script's chunk itself when there is nothing
** else to run (so tracebacks end in "main chunk"), else the runner of
** loom.cli over the steps.  Returns 0 after printing a load error.
*/
static int spawn_main(lua_State *L, loom_host *H, char **argv, int argc,
                      int script, int from_stdin, int flags) {
  int i, nargs;
  if (!(flags & (HAS_E | HAS_L)) && (script < argc || from_stdin)) {
    const char *fname = from_stdin ? NULL : argv[script];
    if (!from_stdin && strcmp(fname, "-") == 0
        && strcmp(argv[script - 1], "--") != 0)
      fname = NULL;
    if (luaL_loadfile(L, fname) != LUA_OK) return report_load_error(L);
    nargs = from_stdin ? 0 : argc - script - 1;
    for (i = 0; i < nargs; i++) lua_pushstring(L, argv[script + 1 + i]);
  }
  else {
    lua_getglobal(L, "require");
    lua_pushliteral(L, "loom.cli");
    if (lua_pcall(L, 1, 1, 0) != LUA_OK) return report_load_error(L);
    if (!build_steps(L, argv, argc, script, from_stdin)) return 0;
    nargs = 1;
  }
  if (loom_spawn(H, nargs) != LOOM_OK) return report_load_error(L);
  loom_set_main(H, -1);
  lua_pop(L, 1);
  return 1;
}

/* }==================================================================== */


/* {====================================================================
** Ctrl-C
** ===================================================================== */

/*
** Ctrl-C is a default watcher of signal.c: it acts only while the
** script does not watch SIGINT itself (signal.on, signal.wait), so a
** script can take Ctrl-C over, as a 'SIGINT' listener does in Node.
*/
static int sigint_count;

/*
** The first Ctrl-C cancels the main task, so its <close> variables and
** pcall cleanup run; the second (or one after the main task is done)
** exits at once with the status a shell gives to SIGINT.
*/
static void sigint_cb(loom_host *H, int signum, void *ud) {
  lua_State *L = loom_state(H);
  int cancelled = 0;
  (void)signum; (void)ud;
  if (sigint_count++ == 0 && loom_push_main(H) == LOOM_OK) {
    cancelled = loom_cancel(H, -1, "interrupted") == 1;
    lua_pop(L, 1);
  }
  if (cancelled) return;
  fflush(stdout);
  _exit(130);
}

/* }==================================================================== */


/*
** The exit status once the run is over ('status': 0, or 1 when an
** error was reported).  After Ctrl-C it is 130 however the main task
** ended (a script that catches the cancellation and returns was still
** interrupted, as asyncio re-raises KeyboardInterrupt).  A main task
** that nothing could ever wake was cancelled: say where it waited.
*/
static int exit_status(loom_host *H, int status) {
  lua_State *L = loom_state(H);
  int state;
  if (sigint_count > 0) return 130;
  if (loom_push_main(H) != LOOM_OK) return status;
  state = loom_task_state(H, -1);
  if (state == LOOM_TASK_STALLED && loom_results(H, -1) == LOOM_EFAILED) {
    lua_getfield(L, -1, "message");
    fprintf(stderr, "%s: %s\n", progname,
            lua_isstring(L, -1) ? lua_tostring(L, -1) : "?");
    lua_pop(L, 2);  /* remove message and error */
    status = 1;
  }
  lua_pop(L, 1);  /* remove the main task */
  return status;
}

int main(int argc, char **argv) {
  int flags = 0, bad = 0, from_stdin = 0, script, status;
  loom_host *H;
  lua_State *L;
  script = collect_args(argv, argc, &flags, &bad);
  if (script < 0) {
    usage(argv[bad]);
    return 1;
  }
  if (flags & HAS_V) print_version();
  if (flags & HAS_I) {
    fprintf(stderr, "%s: interactive mode is not available in this "
                    "version\n", progname);
    return 1;
  }
  if (script == argc && !(flags & (HAS_E | HAS_V))) {
    if (isatty(0)) {
      print_version();
      fprintf(stderr, "%s: no script given (usage: %s script.lua [args])\n",
              progname, progname);
      return 1;
    }
    from_stdin = 1;  /* run standard input, as lua does */
  }
  H = loom_new();
  if (H == NULL) {
    fprintf(stderr, "%s: cannot create the host\n", progname);
    return 1;
  }
  L = loom_state(H);
  lua_gc(L, LUA_GCGEN, 0, 0);  /* as lua.c: most garbage dies young */
  create_arg_table(L, argv, argc, script);
  if (!spawn_main(L, H, argv, argc, script, from_stdin, flags)) {
    loom_free(H);
    return 1;
  }
  loom_set_signal_fn(H, SIGINT, sigint_cb, NULL);
  status = loom_run(H) > 0 ? 1 : 0;
  status = exit_status(H, status);
  /*
  ** Like Node, and like lua's own os.exit, the binary leaves without
  ** tearing the state down: freeing every object one by one only delays
  ** the exit (tens of milliseconds for 100,000 tasks).  Everything was
  ** done; the C library flushes open files; the system takes the rest.
  ** LOOM_CLOSE_AT_EXIT=1 closes it anyway (leak checking).
  */
  fflush(NULL);
  if (getenv("LOOM_CLOSE_AT_EXIT") != NULL) loom_free(H);
  else exiting_host = H;
  return status;
}
