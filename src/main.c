/*
** main.c: the loom binary.  Its command line follows lua5.4's; the
** script's main chunk (after LUA_INIT, -l and -e) runs as the main
** task, so suspending calls work at top level.  The process lives
** until every task and handle are done.  Exit status: 0, or 1 when an
** error went uncaught, or 130 when Ctrl-C ended the main task.  With
** -i (or no script, on a terminal) the REPL of lua/loom/repl.lua runs
** last, in the main task; 'loom --attach path' runs the console client
** of lua/loom/console.lua instead of a script; LOOM_CONSOLE=path opens
** a console (loom.console) before the script runs.
*/
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lualib.h>

#include "loom.h"
#include "lineedit.h"

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
          "       %s --attach path\n"
          "Available options are:\n"
          "  -e stat   execute string 'stat'\n"
          "  -i        enter interactive mode after executing 'script'\n"
          "  -l mod    require library 'mod' into global 'mod'\n"
          "  -l g=mod  require library 'mod' into global 'g'\n"
          "  -v        show version information\n"
          "  -E        ignore environment variables\n"
          "  -W        turn warnings on\n"
          "  --        stop handling options\n"
          "  -         stop handling options and execute stdin\n"
          "  --attach path  a REPL into the program whose console "
          "listens at 'path'\n",
          progname, progname);
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
#define HAS_BIG_E 16
#define HAS_W 32

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
      case 'E':
      case 'W':
      case 'i':
      case 'v':
        if (argv[i][2] != '\0') return -1;
        *flags |= argv[i][1] == 'E' ? HAS_BIG_E : argv[i][1] == 'W' ? HAS_W
                  : argv[i][1] == 'i' ? HAS_I : HAS_V;
        break;
      case 'e':
      case 'l':  /* the argument may not be another option, as in lua.c */
        *flags |= argv[i][1] == 'e' ? HAS_E : HAS_L;
        if (argv[i][2] == '\0' && (++i >= argc || argv[i][0] == '-'))
          return -1;
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

/*
** -E, once the libraries are open: what lua.c's LUA_NOENV does before
** (package.path and cpath as if LUA_PATH and LUA_CPATH were unset).
*/
static void ignore_environment(lua_State *L) {
  lua_pushboolean(L, 1);
  lua_setfield(L, LUA_REGISTRYINDEX, "LUA_NOENV");
  if (lua_getglobal(L, "package") == LUA_TTABLE) {
    lua_pushliteral(L, LUA_PATH_DEFAULT);
    lua_setfield(L, -2, "path");
    lua_pushliteral(L, LUA_CPATH_DEFAULT);
    lua_setfield(L, -2, "cpath");
  }
  lua_pop(L, 1);
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

/*
** A chunk that does not compile is reported as lua.c reports it: the
** message alone.  The runner raises it (so the run ends as after any
** error) and keeps a copy here for the error hook to know it.
*/
static char *load_error;

/*
** Any other error is a record of the log, as from the default hook:
** written in the log's queue, so that it follows the records before it.
*/
static void error_fn(loom_host *H, const char *msg, const char *traceback,
                     void *ud) {
  size_t n = strlen(msg), tn = traceback ? strlen(traceback) : 0;
  char *text;
  (void)ud;
  if (load_error != NULL && strcmp(msg, load_error) == 0) {
    loom_flush(H);  /* after what the log queued */
    fprintf(stderr, "%s: %s\n", progname, msg);
    fflush(stderr);
    free(load_error);
    load_error = NULL;
    return;
  }
  text = malloc(n + tn + 2);
  if (text == NULL) {
    loom_log(H, LOOM_LOG_ERROR, msg);
    return;
  }
  memcpy(text, msg, n);
  text[n] = '\n';
  memcpy(text + n + 1, traceback ? traceback : "", tn + 1);
  loom_log(H, LOOM_LOG_ERROR, tn > 0 ? text : msg);
  free(text);
}

static int raise_load_error(lua_State *L) {
  free(load_error);
  load_error = strdup(lua_tostring(L, -1));
  return lua_error(L);
}

/*
** The runner: the main task when the command line asks for more than a
** script.  It runs the steps (argument 1, a list) in order, each
** compiled when its turn comes and called from C, as lua.c's 'docall'
** does: a traceback shows "(command line):1: in main chunk" and no
** frame of loom's.  Each step is {k = kind, s = string, ...}: 'e' a
** chunk (name 'name'), 'f' a file (s nil: stdin) with arguments 1..n,
** 'l' a module for global 'g', 'W' warnings on, 'i' the REPL, 'a' the
** console client for path 's'.  A step may suspend: lua_callk continues
** with the next one.
*/
static int run_steps(lua_State *L, lua_Integer i);

/*
** Whether the REPL (or the console client) runs: Ctrl-C is then its
** own (see repl_sigint).  Set by its step, read by the signal handler.
*/
static volatile sig_atomic_t interactive;

/* The console client could not connect. */
static int attach_failed;

/* Step 'i' (at 2) returned its results (above it). */
static void step_returned(lua_State *L) {
  if (lua_getfield(L, 2, "g") == LUA_TSTRING) {  /* -l: the global */
    lua_pushvalue(L, 3);
    lua_setglobal(L, lua_tostring(L, -2));
  }
  lua_getfield(L, 2, "k");
  if (*lua_tostring(L, -1) == 'a' && !lua_toboolean(L, 3)) {
    fprintf(stderr, "%s: %s\n", progname, luaL_optstring(L, 4, "?"));
    fflush(stderr);
    attach_failed = 1;
  }
}

/*
** Pushes require(module)[fn] and its options {tty = stdin is a
** terminal}; 'interactive' from now on.
*/
static void push_interactive(lua_State *L, const char *module,
                             const char *fn) {
  lua_getglobal(L, "require");
  lua_pushstring(L, module);
  lua_call(L, 1, 1);
  lua_getfield(L, -1, fn);
  lua_remove(L, -2);  /* the module */
  lua_createtable(L, 0, 1);
  lua_pushboolean(L, isatty(0));
  lua_setfield(L, -2, "tty");
  interactive = 1;
}

/* The continuation of a step that suspended. */
static int step_k(lua_State *L, int status, lua_KContext i) {
  (void)status;
  step_returned(L);
  return run_steps(L, (lua_Integer)i + 1);
}

static int run_steps(lua_State *L, lua_Integer i) {
  for (;; i++) {
    int nargs = 0, nres = 0, kind, j;
    const char *s;
    lua_settop(L, 1);
    if (lua_rawgeti(L, 1, i) != LUA_TTABLE) return 0;  /* all done */
    lua_getfield(L, 2, "k");
    kind = *lua_tostring(L, -1);
    lua_getfield(L, 2, "s");
    s = lua_tostring(L, -1);  /* the step holds it */
    lua_settop(L, 2);
    if (kind == 'W') {
      lua_warning(L, "@on", 0);
      continue;
    }
    if (kind == 'l') {
      lua_getglobal(L, "require");
      lua_pushstring(L, s);
      nargs = nres = 1;
    }
    else if (kind == 'i') {
      push_interactive(L, "loom.repl", "run");
      nargs = 1;
    }
    else if (kind == 'a') {
      push_interactive(L, "loom.console", "attach");
      lua_pushstring(L, s);
      lua_insert(L, -2);  /* the path before the options */
      nargs = nres = 2;
    }
    else {
      int status;
      if (kind == 'e') {
        lua_getfield(L, 2, "name");
        status = luaL_loadbuffer(L, s, strlen(s), lua_tostring(L, -1));
        lua_remove(L, 3);  /* the name */
      }
      else status = luaL_loadfile(L, s);
      if (status != LUA_OK) return raise_load_error(L);
      lua_getfield(L, 2, "n");
      nargs = (int)lua_tointeger(L, -1);
      lua_pop(L, 1);
      luaL_checkstack(L, nargs, "too many arguments to script");
      for (j = 1; j <= nargs; j++) lua_rawgeti(L, 2, j);
    }
    lua_callk(L, nargs, nres, (lua_KContext)i, step_k);
    step_returned(L);
  }
}

static int runner(lua_State *L) {
  return run_steps(L, 1);
}

/* Appends a step of kind 'k' on string 's' to the list at 'steps'. */
static void add_step(lua_State *L, int steps, int k, const char *s) {
  char kind[2] = {(char)k, '\0'};
  lua_createtable(L, 0, 3);
  lua_pushstring(L, kind);
  lua_setfield(L, -2, "k");
  if (s != NULL) {
    lua_pushstring(L, s);
    lua_setfield(L, -2, "s");
  }
  lua_rawseti(L, steps, (lua_Integer)lua_rawlen(L, steps) + 1);
}

/* Sets field 'f' of the last step of the list at 'steps' to 's'. */
static void set_last(lua_State *L, int steps, const char *f, const char *s) {
  lua_rawgeti(L, steps, (lua_Integer)lua_rawlen(L, steps));
  lua_pushstring(L, s);
  lua_setfield(L, -2, f);
  lua_pop(L, 1);
}

/* '-l mod' sets global 'mod'; '-l g=mod' sets global 'g' (lua 5.4.6). */
static void add_module(lua_State *L, int steps, const char *name) {
  const char *eq = strchr(name, '=');
  add_step(L, steps, 'l', eq ? eq + 1 : name);
  lua_rawgeti(L, steps, (lua_Integer)lua_rawlen(L, steps));
  if (eq) lua_pushlstring(L, name, (size_t)(eq - name));
  else lua_pushstring(L, name);
  lua_setfield(L, -2, "g");
  lua_pop(L, 1);
}

/*
** LUA_INIT_5_4, else LUA_INIT, as lua.c reads it: "@file" runs the
** file, anything else is a chunk.  Returns 1 when there is one.
*/
static int add_init(lua_State *L, int steps) {
  const char *name = "=LUA_INIT_" LUA_VERSION_MAJOR "_" LUA_VERSION_MINOR;
  const char *init = getenv(name + 1);
  if (init == NULL) {
    name = "=LUA_INIT";
    init = getenv(name + 1);
  }
  if (init == NULL) return 0;
  if (init[0] == '@') add_step(L, steps, 'f', init + 1);
  else {
    add_step(L, steps, 'e', init);
    set_last(L, steps, "name", name);
  }
  return 1;
}

/* The script's file name: NULL for stdin ("-" unless after "--"). */
static const char *script_name(char **argv, int script, int from_stdin) {
  if (from_stdin) return NULL;
  if (strcmp(argv[script], "-") == 0 && strcmp(argv[script - 1], "--") != 0)
    return NULL;
  return argv[script];
}

/*
** Pushes the list of steps: LUA_INIT (unless -E), then '-e', '-l' and
** '-W' in the order given, then the script, then the REPL (-i), as
** lua.c runs them.
*/
static void build_steps(lua_State *L, char **argv, int argc, int script,
                        int from_stdin, int flags) {
  int i, steps;
  lua_newtable(L);
  steps = lua_gettop(L);
  if (!(flags & HAS_BIG_E)) add_init(L, steps);
  for (i = 1; i < script; i++) {
    const char *opt = argv[i];
    const char *val;
    if (opt[1] == 'W') add_step(L, steps, 'W', NULL);
    if (opt[1] != 'e' && opt[1] != 'l') continue;
    val = opt[2] != '\0' ? opt + 2 : argv[++i];
    if (opt[1] == 'l') add_module(L, steps, val);
    else {
      add_step(L, steps, 'e', val);
      set_last(L, steps, "name", "=(command line)");
    }
  }
  if (script < argc || from_stdin) {
    int nargs = from_stdin ? 0 : argc - script - 1;
    add_step(L, steps, 'f', script_name(argv, script, from_stdin));
    lua_rawgeti(L, steps, (lua_Integer)lua_rawlen(L, steps));
    for (i = 0; i < nargs; i++) {
      lua_pushstring(L, argv[script + 1 + i]);
      lua_rawseti(L, -2, i + 1);
    }
    lua_pushinteger(L, nargs);
    lua_setfield(L, -2, "n");
    lua_pop(L, 1);
  }
  if (flags & HAS_I) add_step(L, steps, 'i', NULL);
}

/* Whether LUA_INIT is to run. */
static int has_init(int flags) {
  return !(flags & HAS_BIG_E)
         && (getenv("LUA_INIT_" LUA_VERSION_MAJOR "_" LUA_VERSION_MINOR)
             != NULL || getenv("LUA_INIT") != NULL);
}

/*
** Spawns the main task: the script's chunk itself when there is nothing
** else to run (so tracebacks end in "main chunk"), else the runner over
** the steps.  Returns 0 after printing a load error.
*/
static int spawn_main(lua_State *L, loom_host *H, char **argv, int argc,
                      int script, int from_stdin, int flags) {
  int i, nargs;
  if (!(flags & (HAS_E | HAS_L | HAS_I)) && !has_init(flags)
      && (script < argc || from_stdin)) {
    if (flags & HAS_W) lua_warning(L, "@on", 0);
    if (luaL_loadfile(L, script_name(argv, script, from_stdin)) != LUA_OK)
      return report_load_error(L);
    nargs = from_stdin ? 0 : argc - script - 1;
    for (i = 0; i < nargs; i++) lua_pushstring(L, argv[script + 1 + i]);
  }
  else {
    lua_pushcfunction(L, runner);
    build_steps(L, argv, argc, script, from_stdin, flags);
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
** The loop sees a signal only once the running task suspends, so the
** binary's own handler also interrupts a task that does not, as lua.c
** interrupts a loop (see on_sigint).
**
** A Ctrl-C at a prompt of loom.lineedit (lineedit.c) is the prompt's:
** the handler tells the editor it came (loom__lineedit_signalled), and
** the default gives it to the editor first (loom__lineedit_sigint),
** which drops the line typed instead of ending the program.
*/
static int sigint_count;

/* Interrupts raised that the REPL's Ctrl-C has seen (see repl_sigint). */
static volatile sig_atomic_t repl_raised;

/*
** In the REPL: whether an interrupt was raised since the last Ctrl-C
** (an input that did not suspend failed with it), which took this
** Ctrl-C already.
*/
static int interrupt_took_it(loom_host *H) {
  int raised = loom_interrupt(H, 0);  /* drops an interrupt that waits */
  if (raised <= repl_raised) return 0;
  repl_raised = raised;
  return 1;
}

/*
** Ctrl-C in the REPL and in the console client, but at a prompt, is
** theirs: it cancels the input that runs (repl.interrupt) and nothing
** else, so the REPL goes on.
*/
static void repl_sigint(loom_host *H) {
  lua_State *L = loom_state(H);
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  if (lua_getfield(L, -1, "loom.repl") == LUA_TTABLE) {
    lua_getfield(L, -1, "interrupt");
    if (lua_pcall(L, 0, 0, 0) != LUA_OK) lua_pop(L, 1);  /* the error */
  }
  lua_pop(L, 2);  /* the module and package.loaded */
}

/*
** Outside the REPL, the first Ctrl-C cancels the main task, so its
** <close> variables and pcall cleanup run; the second (or one after the
** main task is done) exits at once with the status a shell gives to
** SIGINT.  A main task that the interrupt made fail (see on_sigint) is
** done already: the run ends as after any error, the error reported,
** with status 130.
*/
static void sigint_cb(loom_host *H, int signum, void *ud) {
  lua_State *L = loom_state(H);
  int cancelled = 0;
  (void)signum; (void)ud;
  if (interactive && interrupt_took_it(H)) return;
  if (loom__lineedit_sigint(H)) {  /* a prompt's: it drops its line */
    loom_interrupt(H, 0);
    return;
  }
  if (interactive) {
    repl_sigint(H);
    return;
  }
  if (sigint_count++ == 0 && loom_push_main(H) == LOOM_OK) {
    int state = loom_task_state(H, -1);
    cancelled = loom_cancel(H, -1, "interrupted") == 1;
    if (state == LOOM_TASK_FAILED && loom_interrupt(H, 0) > 0) cancelled = 1;
    lua_pop(L, 1);
  }
  loom_interrupt(H, 0);  /* no task runs: drops an interrupt that waits */
  if (cancelled) return;
  loom_flush(H);  /* what was queued goes out; the terminal is restored */
  fflush(stdout);
  _exit(130);
}

/*
** The process's SIGINT handler.  libuv's own (which wakes the loop, for
** sigint_cb) was installed when loom_set_signal_fn started watching
** SIGINT; this one replaces it and calls it, so the loop sees every
** signal.  libuv installs its handler only for the first watcher of a
** signal in the process, and the default keeps watching SIGINT for the
** whole run, so the chain stays in place.
**
** The loop sees a signal only between tasks.  So the handler also
** interrupts the running task (loom_interrupt), which raises
** "interrupted!" if it keeps the loop from running for GRACE_MS of CPU
** time: a task that suspends soon is left alone and Ctrl-C acts as
** ever (the main task is cancelled, or a script's watcher gets it);
** one that loops forever is stopped with a traceback.  A second Ctrl-C
** while the first waits for its task interrupts at once.  Once an
** interrupt was raised, the next Ctrl-C exits at once: a loop whose
** pcall caught the interrupt cannot hold the process (lua.c's second
** Ctrl-C kills it likewise); but not at a prompt, which takes it, nor
** in the REPL once the loop has run since: an input that failed with
** the interrupt was the end of it, and the REPL goes on.
*/
#define GRACE_MS 500

static loom_host *sigint_host;
static struct sigaction libuv_sigint;

static void on_sigint(int signum, siginfo_t *info, void *context) {
  int saved = errno;
  int at_prompt = loom__lineedit_signalled();
  if (loom_interrupt(sigint_host, GRACE_MS)
      > (interactive ? repl_raised : 0) && !at_prompt) {
    uv_tty_reset_mode();  /* async-signal-safe, as _exit */
    _exit(130);
  }
  errno = saved;
  if (libuv_sigint.sa_flags & SA_SIGINFO)
    libuv_sigint.sa_sigaction(signum, info, context);
  else if (libuv_sigint.sa_handler != SIG_DFL
           && libuv_sigint.sa_handler != SIG_IGN)
    libuv_sigint.sa_handler(signum);
}

/* Sets up Ctrl-C (after the loop's watcher), or undoes it ('on' 0). */
static void handle_sigint(loom_host *H, int on) {
  struct sigaction sa;
  if (!on) {
    if (sigint_host != NULL) sigaction(SIGINT, &libuv_sigint, NULL);
    sigint_host = NULL;
    return;
  }
  if (loom_set_signal_fn(H, SIGINT, sigint_cb, NULL) != LOOM_OK) return;
  if (sigaction(SIGINT, NULL, &libuv_sigint) != 0) return;
  sa = libuv_sigint;
  sa.sa_sigaction = on_sigint;
  /* sa_flags is an int and SA_RESETHAND its sign bit (an unsigned
     constant): the cast keeps the bit, it only names the type */
  sa.sa_flags = (libuv_sigint.sa_flags & ~(int)SA_RESETHAND) | SA_SIGINFO;
  sigint_host = H;
  if (sigaction(SIGINT, &sa, NULL) != 0) sigint_host = NULL;
}

/* }==================================================================== */


/* The modules only the binary has: loom.lineedit. */
static void preload_binary_modules(lua_State *L) {
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  lua_pushcfunction(L, luaopen_loom_lineedit);
  lua_setfield(L, -2, "loom.lineedit");
  lua_pop(L, 1);  /* remove package.preload */
}


/*
** The exit status once the run is over ('status': 0, or 1 when an
** error was reported).  After Ctrl-C it is 130 however the main task
** ended (a script that catches the cancellation or the interrupt and
** returns was still interrupted, as asyncio re-raises
** KeyboardInterrupt), unless the REPL ran (its Ctrl-C ends inputs, not
** the run).  A main task that nothing could ever wake was cancelled:
** say where it waited.
*/
static int exit_status(loom_host *H, int status) {
  lua_State *L = loom_state(H);
  int state;
  if (!interactive && (sigint_count > 0 || loom_interrupt(H, 0) > 0))
    return 130;
  if (loom_push_main(H) != LOOM_OK) return status;
  state = loom_task_state(H, -1);
  if (state == LOOM_TASK_STALLED && loom_results(H, -1) == LOOM_EFAILED) {
    lua_getfield(L, -1, "message");
    loom_log(H, LOOM_LOG_ERROR,
             lua_isstring(L, -1) ? lua_tostring(L, -1) : "?");
    lua_pop(L, 2);  /* remove message and error */
    status = 1;
  }
  lua_pop(L, 1);  /* remove the main task */
  return status;
}

/*
** 'loom --attach path': its steps, pushed (nothing else may follow).
** Returns 0 after printing the usage.
*/
static int attach_steps(lua_State *L, char **argv, int argc) {
  if (argc != 3) {
    fprintf(stderr, "%s: usage: %s --attach path\n", progname, progname);
    return 0;
  }
  lua_newtable(L);
  add_step(L, lua_gettop(L), 'a', argv[2]);
  return 1;
}

/*
** LOOM_CONSOLE=path: loom.console(path) before anything runs.  A
** console that cannot listen is said, and the program runs without it.
*/
static void open_console(lua_State *L) {
  const char *path = getenv("LOOM_CONSOLE");
  if (path == NULL || *path == '\0') return;
  lua_getglobal(L, "loom");
  lua_getfield(L, -1, "console");
  lua_remove(L, -2);  /* loom */
  lua_pushstring(L, path);
  if (lua_pcall(L, 1, 2, 0) != LUA_OK)
    fprintf(stderr, "%s: LOOM_CONSOLE: %s\n", progname, lua_tostring(L, -1));
  else if (lua_isnil(L, -2))
    fprintf(stderr, "%s: LOOM_CONSOLE: %s\n", progname,
            luaL_optstring(L, -1, "?"));
  fflush(stderr);
  lua_settop(L, 0);
}

int main(int argc, char **argv) {
  int flags = 0, bad = 0, from_stdin = 0, script, status, attach;
  loom_host *H;
  lua_State *L;
  attach = argc > 1 && strcmp(argv[1], "--attach") == 0;
  script = attach ? argc : collect_args(argv, argc, &flags, &bad);
  if (script < 0) {
    usage(argv[bad]);
    return 1;
  }
  if (flags & HAS_V) print_version();
  if (script == argc && !attach && !(flags & (HAS_E | HAS_V | HAS_I))) {
    if (isatty(0)) flags |= HAS_I;  /* a REPL, as lua's */
    else from_stdin = 1;  /* run standard input, as lua does */
  }
  /* lua's -i shows the version: here only on a terminal, so that piped
  ** output holds the values and nothing else */
  if ((flags & (HAS_I | HAS_V)) == HAS_I && isatty(0)) print_version();
  H = loom_new();
  if (H == NULL) {
    fprintf(stderr, "%s: cannot create the host\n", progname);
    return 1;
  }
  L = loom_state(H);
  /* incremental, a pause of 150 (Lua's is 200): a server's memory stays
  ** flat (the generational mode let it creep up under a soak) */
  lua_gc(L, LUA_GCINC, 150, 0, 0);
  preload_binary_modules(L);
  if (flags & HAS_BIG_E) ignore_environment(L);
  create_arg_table(L, argv, argc, script);
  if (attach) {
    if (!attach_steps(L, argv, argc)) {
      loom_free(H);
      return 1;
    }
    lua_pushcfunction(L, runner);
    lua_insert(L, -2);  /* the runner below its steps */
    loom_spawn(H, 1);
    loom_set_main(H, -1);
    lua_pop(L, 1);
  }
  else {
    open_console(L);
    if (!spawn_main(L, H, argv, argc, script, from_stdin, flags)) {
      loom_free(H);
      return 1;
    }
  }
  loom_set_error_fn(H, error_fn, NULL);
  handle_sigint(H, 1);
  status = loom_run(H) > 0 || attach_failed ? 1 : 0;
  status = exit_status(H, status);
  /*
  ** Like Node, and like lua's own os.exit, the binary leaves without
  ** tearing the state down: freeing every object one by one only delays
  ** the exit (tens of milliseconds for 100,000 tasks).  Everything was
  ** done; the C library flushes open files; the system takes the rest.
  ** LOOM_CLOSE_AT_EXIT=1 closes it anyway (leak checking).
  */
  loom_flush(H);
  fflush(NULL);
  handle_sigint(H, 0);
  if (getenv("LOOM_CLOSE_AT_EXIT") != NULL) loom_free(H);
  else exiting_host = H;
  return status;
}
