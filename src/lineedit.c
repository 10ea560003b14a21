/*
** lineedit.c: loom.lineedit, the terminal line editor of the loom
** binary (the REPL's prompt).  It is the binary's alone: libloom and
** the Lua module do not carry it.
**
** Editing is libedit's, through its readline-compatible callback
** interface: rl_callback_handler_install shows a prompt and puts the
** terminal in raw mode, rl_callback_read_char takes one key, and the
** line comes back through on_line once Enter (or Ctrl-D on an empty
** line) ends it.  The keys come from the loop: a uv_poll_t watches the
** terminal while a task waits in editor:read, so other tasks, servers
** and timers run while the user types.
**
** libedit reads through key_getc (its rl_getc_function), never by
** itself.  The first read of a key never waits (the poll said there is
** one); the rest of an escape sequence or of a UTF-8 character waits at
** most KEY_WAIT_MS, so a lone Escape cannot hold the loop.  libedit
** runs a whole command in one call, though: a command that reads more
** keys itself (an incremental search, Ctrl-V) holds the loop until its
** next key comes.
**
** libedit's readline layer keeps one editor for the process, and there
** is one terminal: one line editor may be open at a time.
**
** Output above the prompt.  While a prompt shows, the host's tty_guard
** is set: loom's writes to the terminal call it before (the prompt and
** the line typed are erased) and after (libedit draws them again).  To
** erase them it must know the row of the cursor, which libedit's
** readline layer tells only to functions bound to a key: the guard
** feeds libedit WHERE_KEY, bound to where_fn, which notes the line and
** the cursor.  That key is Ctrl-\, which the terminal turns into
** SIGQUIT instead of sending it.
**
** Ctrl-C.  The terminal keeps making signals at the prompt (ISIG), so
** Ctrl-C stays a SIGINT as anywhere else in the binary, and a task
** stuck in a loop can still be interrupted.  The binary's SIGINT
** handler tells the editor (loom__lineedit_signalled) and its Ctrl-C
** default asks loom__lineedit_sigint first, which takes a Ctrl-C that
** came at a prompt: the line is dropped and editor:read returns nil,
** "interrupt".  A script that watches SIGINT itself takes Ctrl-C over,
** here too.
**
** The terminal is restored whenever the prompt goes: a line read, the
** reading task cancelled, the editor closed (close, <close>, __gc, its
** host closing), at exit (atexit), and on SIGTERM, SIGHUP and SIGQUIT,
** which may end the process with the terminal raw: while a prompt
** shows, a handler of ours puts the terminal back first, then passes
** the signal on to what handled it before (or dies of it).
*/
#include <errno.h>
#include <fcntl.h>
#include <langinfo.h>
#include <limits.h>
#include <locale.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>
#include <wchar.h>

#include <editline/readline.h>

#include "internal.h"
#include "lineedit.h"

#define KEY_WAIT_MS 100     /* the rest of a key that began */
#define KEYS_PER_ROUND 256  /* keys taken in one loop iteration */
#define WHERE_KEY 0x1c      /* Ctrl-\: see the top */
#define HISTORY_SIZE 1000   /* lines kept by default */

/*
** What ends a word for completion: the word is the run of name
** characters, '.' and ':' before the cursor ("loom.ne", "s:up").
*/
static char break_chars[] = " \t\n\"\\'`@$><=;|&{}()[]+-*/%^#~,!?";

/* how a read ended */
enum { READ_NONE, READ_LINE, READ_INTERRUPT, READ_EOF };

typedef struct loom_editor {
  loom_handle base;
  uv_poll_t poll;          /* the terminal's keys, while a prompt shows */
  uv_signal_t winch;       /* the terminal's size changed */
  int nuv;                 /* libuv handles not yet through close_cb */
  int fd;                  /* the terminal, opened again (or 0) */
  int own_fd;              /* 'fd' is ours to close */
  int complete_ref;        /* the complete function, or LUA_NOREF */
  char *history;           /* the history file, or NULL */
  int history_size;
  char *last;              /* the line last added to the history */
  loom_task *readers;      /* WAIT_LIST: the task in editor:read */
  char *prompt;            /* the prompt shown (or last shown) */
  char *line;              /* READ_LINE: the line (libedit's malloc) */
  char *complete_error;    /* what the complete function raised */
  int outcome;             /* READ_*: how the read ended */
  unsigned owner;          /* the id of the task the prompt is for */
  int guards;              /* tty_guard calls that wait for their end */
  unsigned prompting : 1;  /* a prompt shows: the terminal is raw */
  unsigned erased : 1;     /* the prompt is erased for output */
  unsigned eof : 1;        /* the terminal has gone */
  unsigned closed : 1;
  unsigned saved : 1;      /* the history went to its file */
  struct termios tio;      /* the terminal's mode before the prompt */
} loom_editor;

static loom_editor *open_ed;   /* the open editor, or NULL */
static loom_editor *shown;     /* the editor whose prompt shows, or NULL */

/* written by signal handlers */
static volatile sig_atomic_t prompting_now;  /* 'shown' is not NULL */
static volatile sig_atomic_t sigint_seen;    /* a SIGINT came at a prompt */

/* libedit's state, while it runs */
static int in_edit;         /* inside rl_callback_read_char */
static int stop_pending;    /* the prompt goes once libedit returns */
static int key_reads;       /* key_getc calls in this call of libedit */
static int in_sequence;     /* an escape sequence began in this call */
static int inject_where;    /* key_getc gives WHERE_KEY next */
static int sigint_aborted;  /* a key read gave up for a Ctrl-C */
static int utf8;            /* the locale's characters are UTF-8 */

/* what where_fn saw */
static struct {
  int done;
  int before;               /* columns of the prompt and the line up to
                               the cursor */
  char *line;               /* the line, or NULL */
} where;

static void prompt_stop(loom_editor *ed);
static void poll_cb(uv_poll_t *p, int status, int events);
static void winch_cb(uv_signal_t *h, int signum);


/* {====================================================================
** The terminal
** ===================================================================== */

/* Where libedit draws (stdout unless set otherwise). */
static FILE *out_stream(void) {
  return rl_outstream != NULL ? rl_outstream : stdout;
}

/* The terminal's width, as libedit knows it. */
static int screen_cols(void) {
  int cols = 0;
  rl_get_screen_size(NULL, &cols);
  return cols > 0 ? cols : 80;
}

/*
** The column the 'n' bytes of 's' bring the cursor to from column
** 'col', as libedit shows them: a control character as ^X, a tab to
** the next multiple of 8, a byte that is no character as \ooo.
*/
static int text_cols(int col, const char *s, size_t n) {
  mbstate_t st;
  size_t i = 0;
  memset(&st, 0, sizeof st);
  while (i < n) {
    wchar_t wc;
    size_t k = mbrtowc(&wc, s + i, n - i, &st);
    int w;
    if (k == (size_t)-1 || k == (size_t)-2) {
      memset(&st, 0, sizeof st);
      col += 4;
      i++;
      continue;
    }
    if (k == 0) k = 1;
    i += k;
    if (wc == L'\t') col = (col / 8 + 1) * 8;
    else if (wc < 0x20 || wc == 0x7f) col += 2;
    else col += (w = wcwidth(wc)) >= 0 ? w : 4;
  }
  return col;
}

/* The columns of the prompt, without what \1 ... \2 marks invisible. */
static int prompt_cols(const char *p) {
  int col = 0;
  while (*p != '\0') {
    size_t n;
    if (*p == RL_PROMPT_START_IGNORE) {
      p = strchr(p, RL_PROMPT_END_IGNORE);
      if (p == NULL) break;
      p++;
      continue;
    }
    n = strcspn(p, "\1");
    col = text_cols(col, p, n);
    p += n;
  }
  return col;
}

/* Writes the prompt as the terminal takes it: the \1 \2 marks out. */
static void put_prompt(FILE *out, const char *p) {
  for (; *p != '\0'; p++)
    if (*p != RL_PROMPT_START_IGNORE && *p != RL_PROMPT_END_IGNORE)
      fputc(*p, out);
}

/* Writes 's' with control characters shown as ^X, as libedit shows them. */
static void put_visible(FILE *out, const char *s) {
  for (; *s != '\0'; s++) {
    unsigned char c = (unsigned char)*s;
    if (c < 0x20 || c == 0x7f) {
      fputc('^', out);
      fputc(c == 0x7f ? '?' : c + '@', out);
    }
    else fputc(c, out);
  }
}

/* }==================================================================== */


/* {====================================================================
** Signals that would end the process with the terminal raw
** ===================================================================== */

static const int fatal_signals[] = {SIGTERM, SIGHUP, SIGQUIT};
#define NFATAL (sizeof fatal_signals / sizeof fatal_signals[0])
static struct sigaction fatal_old[NFATAL];
static int fatal_set[NFATAL];

/* the terminal and its modes for the handler, set before it is */
static int tty_fd = -1;
static struct termios tty_mode, tty_raw;
static volatile sig_atomic_t tty_lost;  /* the handler put 'tty_mode' back */

/*
** The terminal's mode goes back first; then the signal goes where it
** went before: its default (the process ends of it, as it would have),
** or the handler that was there (libuv's, for a script that watches it
** or for the standard streams' default, which then run on the loop).
*/
static void fatal_handler(int signum, siginfo_t *info, void *context) {
  int saved = errno;
  size_t i;
  tcsetattr(tty_fd, TCSANOW, &tty_mode);
  tty_lost = 1;
  for (i = 0; i < NFATAL && fatal_signals[i] != signum; i++) continue;
  if (i < NFATAL && (fatal_old[i].sa_flags & SA_SIGINFO))
    fatal_old[i].sa_sigaction(signum, info, context);
  else if (i == NFATAL || fatal_old[i].sa_handler == SIG_DFL) {
    signal(signum, SIG_DFL);
    raise(signum);  /* blocked until the handler returns: then it ends us */
  }
  else if (fatal_old[i].sa_handler != SIG_IGN)
    fatal_old[i].sa_handler(signum);
  errno = saved;
}

static void fatal_catch(loom_editor *ed) {
  size_t i;
  tty_fd = ed->fd;
  tty_mode = ed->tio;
  tty_lost = 0;
  for (i = 0; i < NFATAL; i++) {
    struct sigaction sa;
    if (sigaction(fatal_signals[i], NULL, &fatal_old[i]) != 0) continue;
    if (!(fatal_old[i].sa_flags & SA_SIGINFO)
        && fatal_old[i].sa_handler == SIG_IGN)
      continue;  /* it ends nothing */
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = fatal_handler;
    sa.sa_flags = SA_SIGINFO | (fatal_old[i].sa_flags & SA_RESTART);
    sigemptyset(&sa.sa_mask);
    fatal_set[i] = sigaction(fatal_signals[i], &sa, NULL) == 0;
  }
}

/* Puts back what was there, unless someone replaced our handler since. */
static void fatal_release(void) {
  size_t i;
  for (i = 0; i < NFATAL; i++) {
    struct sigaction cur;
    if (!fatal_set[i]) continue;
    fatal_set[i] = 0;
    if (sigaction(fatal_signals[i], NULL, &cur) == 0
        && (cur.sa_flags & SA_SIGINFO) && cur.sa_sigaction == fatal_handler)
      sigaction(fatal_signals[i], &fatal_old[i], NULL);
  }
}

/* The prompt goes on after such a signal (a script took it): raw again. */
static void tty_regain(void) {
  if (!tty_lost) return;
  tty_lost = 0;
  tcsetattr(tty_fd, TCSADRAIN, &tty_raw);
}

/* }==================================================================== */


/* {====================================================================
** Keys: what libedit reads
** ===================================================================== */

/* Whether a byte waits on the terminal. */
static int input_ready(loom_editor *ed) {
  struct pollfd p;
  p.fd = ed->fd;
  p.events = POLLIN;
  p.revents = 0;
  return poll(&p, 1, 0) > 0;
}

/*
** One byte of the terminal, waiting 'ms' for it (-1: until it comes,
** or until a Ctrl-C at the prompt makes the read give up), or EOF.
*/
static int read_byte(loom_editor *ed, int ms) {
  unsigned char b;
  ssize_t n;
  struct pollfd p;
  if (ed->eof) return EOF;
  p.fd = ed->fd;
  p.events = POLLIN;
  for (;;) {
    int r;
    p.revents = 0;
    r = poll(&p, 1, ms);
    if (r > 0) break;
    if (r == 0 || errno != EINTR) return EOF;
    if (sigint_seen && ms < 0) {
      sigint_aborted = 1;
      return EOF;
    }
  }
  do n = read(ed->fd, &b, 1); while (n < 0 && errno == EINTR);
  if (n == 1) return b;
  if (n == 0 || errno == EIO) ed->eof = 1;  /* the terminal has gone */
  return EOF;
}

/* The character a UTF-8 lead byte 'c' begins (U+FFFD if broken). */
static int utf8_rest(loom_editor *ed, int c) {
  int n = c >= 0xf0 ? 3 : c >= 0xe0 ? 2 : c >= 0xc0 ? 1 : 0;
  int cp, i;
  if (n == 0 || c >= 0xf8) return 0xfffd;
  cp = c & (0x3f >> n);
  for (i = 0; i < n; i++) {
    int b = read_byte(ed, KEY_WAIT_MS);
    if (b == EOF || (b & 0xc0) != 0x80) return 0xfffd;
    cp = (cp << 6) | (b & 0x3f);
  }
  return cp;
}

/*
** libedit's rl_getc_function: one character (libedit's readline layer
** takes it as a wide character, so UTF-8 is decoded here), or EOF.
*/
static int key_getc(FILE *f) {
  loom_editor *ed = shown;
  int c, ms;
  (void)f;
  if (inject_where) {
    inject_where = 0;
    return WHERE_KEY;
  }
  if (ed == NULL) return EOF;
  ms = key_reads++ == 0 ? 0 : in_sequence ? KEY_WAIT_MS : -1;
  c = read_byte(ed, ms);
  if (c == 0x1b) in_sequence = 1;
  if (c >= 0x80 && utf8) c = utf8_rest(ed, c);
  return c;
}

/* Lets libedit take one key (or run what WHERE_KEY asks). */
static void edit_key(void) {
  key_reads = 0;
  in_sequence = 0;
  in_edit = 1;
  rl_callback_read_char();
  in_edit = 0;
  inject_where = 0;
  if (stop_pending && shown != NULL) {
    stop_pending = 0;
    prompt_stop(shown);
  }
}

/* WHERE_KEY's function: where the cursor is (see the top). */
static int where_fn(int count, int key) {
  const char *line = rl_line_buffer != NULL ? rl_line_buffer : "";
  size_t end = strlen(line), point = rl_point > 0 ? (size_t)rl_point : 0;
  int pcols = shown != NULL ? prompt_cols(shown->prompt) : 0;
  (void)count; (void)key;
  if (rl_end >= 0 && (size_t)rl_end < end) end = (size_t)rl_end;
  if (point > end) point = end;
  where.before = text_cols(pcols, line, point);
  free(where.line);
  where.line = malloc(end + 1);
  if (where.line != NULL) {
    memcpy(where.line, line, end);
    where.line[end] = '\0';
  }
  where.done = 1;
  return 0;
}

/* Asks libedit where the cursor is; 0 when it could not say. */
static int locate(void) {
  where.done = 0;
  inject_where = 1;
  edit_key();
  return where.done;
}

/* libedit's line callback: a line, or NULL for Ctrl-D on an empty one. */
static void on_line(char *line) {
  loom_editor *ed = shown;
  if (ed == NULL || ed->outcome != READ_NONE) {
    free(line);
    return;
  }
  if (line == NULL && sigint_aborted) ed->outcome = READ_INTERRUPT;
  else ed->outcome = line != NULL ? READ_LINE : READ_EOF;
  ed->line = line;
}

/* }==================================================================== */


/* {====================================================================
** The prompt and the output above it
** ===================================================================== */

/* Takes the prompt and the line away; the cursor ends where it began. */
static void erase(loom_editor *ed) {
  FILE *out = out_stream();
  int row = locate() ? where.before / screen_cols() : 0;
  fputc('\r', out);
  if (row > 0) fprintf(out, "\033[%dA", row);
  fputs("\033[J", out);
  fflush(out);
  ed->erased = 1;
}

static void redraw(loom_editor *ed) {
  ed->erased = 0;
  rl_forced_update_display();
  fflush(out_stream());
}

/*
** Ends the prompt's line as it stands, with 'mark' after it, so that
** what comes next starts below it (the prompt stays up until stopped).
*/
static void leave_line(loom_editor *ed, const char *mark) {
  FILE *out = out_stream();
  if (!ed->erased) erase(ed);
  put_prompt(out, ed->prompt);
  if (where.done && where.line != NULL) put_visible(out, where.line);
  fputs(mark, out);
  fputs("\r\n", out);
  fflush(out);
}

/*
** The host's tty_guard while a prompt shows: loom calls it before
** (after 0) and after (after 1) each write to the terminal.
*/
static void tty_guard(loom_host *H, int after) {
  loom_editor *ed = shown;
  (void)H;
  if (ed == NULL || in_edit) return;  /* libedit draws: leave it be */
  tty_regain();
  if (!after) {
    if (ed->guards++ == 0) {
      fflush(stdout);
      erase(ed);
    }
  }
  else if (ed->guards > 0 && --ed->guards == 0 && ed->erased)
    redraw(ed);
}

/*
** Shows 'prompt' and lets libedit have the terminal; returns 0 or a
** libuv error.
*/
static int prompt_start(loom_editor *ed, loom_host *H, loom_task *t,
                        const char *prompt) {
  char *copy;
  int err;
  if (ed->prompting) {  /* a cancelled reader's, not yet taken away */
    leave_line(ed, "");
    prompt_stop(ed);
  }
  copy = strdup(prompt);
  if (copy == NULL) return UV_ENOMEM;
  if (tcgetattr(ed->fd, &ed->tio) != 0) {
    free(copy);
    return -errno;
  }
  err = uv_poll_start(&ed->poll, UV_READABLE, poll_cb);
  if (err < 0) {
    free(copy);
    return err;
  }
  uv_signal_start(&ed->winch, winch_cb, SIGWINCH);
  free(ed->prompt);
  ed->prompt = copy;
  ed->outcome = READ_NONE;
  ed->owner = t->id;
  ed->guards = 0;
  ed->erased = 0;
  fatal_catch(ed);
  shown = ed;
  sigint_seen = 0;
  sigint_aborted = 0;
  prompting_now = 1;
  ed->prompting = 1;
  fflush(stdout);
  rl_callback_handler_install(prompt, on_line);
  tcgetattr(ed->fd, &tty_raw);
  H->tty_guard = tty_guard;
  return 0;
}

/*
** Takes the prompt away and gives the terminal its mode back (once
** libedit has returned, when it runs).
*/
static void prompt_stop(loom_editor *ed) {
  loom_host *H = loom__handle_host(&ed->base);
  if (!ed->prompting) return;
  if (in_edit) {
    stop_pending = 1;
    return;
  }
  rl_callback_handler_remove();
  fflush(out_stream());
  if (!ed->closed) {  /* a closing editor's handles stop as they close */
    uv_poll_stop(&ed->poll);
    uv_signal_stop(&ed->winch);
  }
  if (H != NULL && H->tty_guard == tty_guard) H->tty_guard = NULL;
  fatal_release();
  ed->prompting = 0;
  ed->erased = 0;
  ed->guards = 0;
  prompting_now = 0;
  shown = NULL;
}

/* Reports what the complete function raised, above the prompt. */
static void report_complete_error(loom_editor *ed, loom_host *H) {
  char *msg = ed->complete_error;
  ed->complete_error = NULL;
  if (msg == NULL || H == NULL) {
    free(msg);
    return;
  }
  tty_guard(H, 0);
  loom__warn(H, msg, NULL);
  tty_guard(H, 1);
  free(msg);
}

/* The read is over ('outcome' says how): the task waiting goes on. */
static void finish(loom_editor *ed) {
  loom_host *H = loom__handle_host(&ed->base);
  int eof = ed->outcome == READ_EOF;
  prompt_stop(ed);
  if (eof) {  /* libedit wrote ^D: the next output starts a line */
    fputc('\n', out_stream());
    fflush(out_stream());
  }
  if (H != NULL) loom__list_resume(H, &ed->readers);
}

/* Keys came: libedit takes them, a few rounds at most. */
static void poll_cb(uv_poll_t *p, int status, int events) {
  loom_editor *ed = p->data;
  loom_host *H = loom__handle_host(&ed->base);
  int i;
  (void)events;
  if (ed->readers == NULL) {  /* its reader was cancelled: the keys wait */
    prompt_stop(ed);
    return;
  }
  if (status < 0) ed->eof = 1;
  tty_regain();
  if (ed->erased) {  /* a writer that raised never said it was done */
    ed->guards = 0;
    redraw(ed);
  }
  for (i = 0; i < KEYS_PER_ROUND; i++) {
    if (ed->outcome != READ_NONE || ed->eof || !ed->prompting) break;
    edit_key();
    /* a key that came from libedit itself (a macro) may have more */
    if (key_reads > 0 && !input_ready(ed)) break;
  }
  if (ed->closed) return;  /* the complete function closed it */
  report_complete_error(ed, H);
  if (ed->outcome == READ_NONE && ed->eof) ed->outcome = READ_EOF;
  if (ed->outcome != READ_NONE) finish(ed);
}

/* The terminal's size changed: libedit learns it and draws again. */
static void winch_cb(uv_signal_t *h, int signum) {
  loom_editor *ed = h->data;
  (void)signum;
  if (!ed->prompting || ed->erased || in_edit) return;
  rl_resize_terminal();
  fputs("\r\033[J", out_stream());
  redraw(ed);
}

/* See lineedit.h.  From the SIGINT handler: async-signal-safe. */
int loom__lineedit_signalled(void) {
  if (!prompting_now) return 0;
  sigint_seen = 1;
  return 1;
}

/*
** See lineedit.h.  The line typed stays on the screen, with ^C after
** it, as a shell leaves it.  A Ctrl-C that came at a prompt which has
** gone since (the line was read just before, or the read gave up for
** it) is taken too: it was meant for the prompt, not for the program.
*/
int loom__lineedit_sigint(loom_host *H) {
  loom_editor *ed = shown;
  int seen = sigint_seen;
  sigint_seen = 0;
  if (ed == NULL || ed->readers == NULL || ed->outcome != READ_NONE
      || loom__handle_host(&ed->base) != H)
    return seen;
  leave_line(ed, "^C");
  ed->outcome = READ_INTERRUPT;
  finish(ed);
  return 1;
}

/* }==================================================================== */


/* {====================================================================
** Completion and history
** ===================================================================== */

static int by_string(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/*
** complete_p(fn, line, word): fn(line), checked; returns the list of
** its strings that begin with 'word', each once.
*/
static int complete_p(lua_State *L) {
  size_t wlen, n, i, k = 0;
  const char *word = lua_tolstring(L, 3, &wlen);
  lua_pushvalue(L, 1);
  lua_pushvalue(L, 2);
  lua_call(L, 1, 1);
  if (!lua_istable(L, -1))
    return luaL_error(L, "complete returned %s, not a list of strings",
                      luaL_typename(L, -1));
  n = lua_rawlen(L, -1);
  lua_newtable(L);  /* the words */
  lua_newtable(L);  /* seen */
  for (i = 1; i <= n; i++) {
    size_t len;
    const char *s;
    if (lua_rawgeti(L, -3, (lua_Integer)i) != LUA_TSTRING
        || (s = lua_tolstring(L, -1, &len), len < wlen)
        || memcmp(s, word, wlen) != 0 || strlen(s) != len) {
      lua_pop(L, 1);
      continue;
    }
    lua_pushvalue(L, -1);
    if (lua_rawget(L, -3) != LUA_TNIL) {
      lua_pop(L, 2);
      continue;
    }
    lua_pop(L, 1);
    lua_pushvalue(L, -1);
    lua_pushboolean(L, 1);
    lua_rawset(L, -4);  /* seen[s] = true */
    lua_rawseti(L, -3, (lua_Integer)++k);
  }
  lua_pop(L, 1);  /* remove seen */
  return 1;
}

/*
** The matches of the list at 'idx' as readline wants them: the text
** that replaces the word (the one match, or what all of them begin
** with), then the matches, then NULL; or NULL for none.
*/
static char **matches_of(lua_State *L, int idx) {
  size_t n = lua_rawlen(L, idx), i, common;
  char **m;
  if (n == 0) return NULL;
  m = calloc(n + 2, sizeof *m);
  if (m == NULL) return NULL;
  for (i = 0; i < n; i++) {
    lua_rawgeti(L, idx, (lua_Integer)i + 1);
    m[i + 1] = strdup(lua_tostring(L, -1));
    lua_pop(L, 1);
    if (m[i + 1] == NULL) goto fail;
  }
  if (n == 1) {
    m[0] = m[1];
    m[1] = NULL;
    return m;
  }
  qsort(m + 1, n, sizeof *m, by_string);
  common = strlen(m[1]);
  for (i = 2; i <= n; i++) {
    size_t j = 0;
    while (j < common && m[i][j] == m[1][j]) j++;
    common = j;
  }
  m[0] = strndup(m[1], common);
  if (m[0] != NULL) return m;
fail:
  for (i = 0; i <= n; i++) free(m[i]);
  free(m);
  return NULL;
}

/*
** libedit's rl_attempted_completion_function: the complete function's
** words for the word 'text' before the cursor.  It runs in protected
** mode and outside any task: it may not suspend, and what it raises is
** reported once the key is done (a warning), never let through libedit.
*/
static char **complete_cb(const char *text, int start, int end) {
  loom_editor *ed = shown;
  loom_host *H;
  lua_State *L;
  const char *line = rl_line_buffer != NULL ? rl_line_buffer : "";
  size_t point = rl_point > 0 ? (size_t)rl_point : 0;
  char **m = NULL;
  int top;
  (void)start; (void)end;
  rl_attempted_completion_over = 1;  /* no file names instead */
  if (ed == NULL || ed->complete_ref == LUA_NOREF
      || (H = loom__handle_host(&ed->base)) == NULL)
    return NULL;
  if (point > strlen(line)) point = strlen(line);
  L = H->L;
  top = lua_gettop(L);
  if (!lua_checkstack(L, 8)) return NULL;
  lua_pushcfunction(L, complete_p);
  lua_rawgeti(L, LUA_REGISTRYINDEX, ed->complete_ref);
  lua_pushlstring(L, line, point);
  lua_pushstring(L, text);
  if (lua_pcall(L, 3, 1, 0) == LUA_OK) m = matches_of(L, -1);
  else if (ed->complete_error == NULL) {
    const char *msg = lua_pushfstring(L, "line editor: complete: %s",
                                      loom__tostring(L, -1));
    ed->complete_error = strdup(msg);
  }
  lua_settop(L, top);
  return m;
}

/*
** Fills libedit's history from the file (a missing one is empty);
** returns 0 or a libuv error.
*/
static int history_load(loom_editor *ed) {
  struct stat st;
  int err;
  clear_history();
  stifle_history(ed->history_size);
  if (ed->history == NULL) return 0;
  /* an empty file (made, then not written) is an empty history, though
  ** libedit's own always begins with its mark */
  if (stat(ed->history, &st) == 0 && S_ISREG(st.st_mode) && st.st_size == 0)
    return 0;
  err = read_history(ed->history);
  if (err == 0 || err == ENOENT) return 0;
  return err > 0 ? -err : UV_EINVAL;
}

/* Writes the history to its file (once); returns 0 or a libuv error. */
static int history_save(loom_editor *ed) {
  int fd, err;
  if (ed->history == NULL || ed->saved) return 0;
  ed->saved = 1;
  /* made private before anything goes in: it may hold secrets */
  fd = open(ed->history, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return -errno;
  close(fd);
  err = write_history(ed->history);
  return err == 0 ? 0 : err > 0 ? -err : UV_EIO;
}

/* }==================================================================== */


/* {====================================================================
** The editor
** ===================================================================== */

static void editor_closed(uv_handle_t *h) {
  loom_editor *ed = h->data;
  if (--ed->nuv > 0) return;
  if (ed->own_fd) close(ed->fd);
  free(ed->history);
  free(ed->last);
  free(ed->prompt);
  free(ed->line);
  free(ed->complete_error);
  free(ed);
}

/*
** close(), <close>, __gc, or its host closes: the terminal gets its
** mode back, the history goes to its file, a reader wakes to nil, "eof".
*/
static void editor_close(loom_handle *h, int why) {
  loom_editor *ed = (loom_editor *)h;
  loom_host *H = loom__handle_host(h);
  (void)why;
  if (ed->closed) return;
  prompt_stop(ed);  /* before 'closed': its handles stop */
  ed->closed = 1;
  history_save(ed);
  if (H != NULL) {
    while (ed->readers != NULL) loom__list_wake(H, &ed->readers);
    if (!H->state_closing)
      luaL_unref(H->mainL, LUA_REGISTRYINDEX, ed->complete_ref);
  }
  ed->complete_ref = LUA_NOREF;
  if (open_ed == ed) open_ed = NULL;
  loom__handle_unlink(h);
  if (ed->poll.data != NULL) uv_close((uv_handle_t *)&ed->poll, editor_closed);
  uv_close((uv_handle_t *)&ed->winch, editor_closed);
}

static const char *editor_describe(loom_handle *h) {
  return ((loom_editor *)h)->prompting ? "reading" : "idle";
}

/* At exit, with the host left as it was: the terminal and the history. */
static void at_exit(void) {
  if (shown != NULL && shown->prompting) {
    tcsetattr(shown->fd, TCSADRAIN, &shown->tio);
    fputc('\n', out_stream());
    fflush(out_stream());
  }
  if (open_ed != NULL) history_save(open_ed);
}

/*
** libedit's readline layer, set up once: every editor after the first
** goes on with it (rl_initialize again would free the old one, which
** libedit does not do whole).
*/
static void libedit_setup(void) {
  static int once;
  const char *locale;
  if (once) return;
  once = 1;
  locale = setlocale(LC_CTYPE, NULL);
  /* the user's characters, where lua.c leaves "C" (as Python does) */
  if (locale != NULL && strcmp(locale, "C") == 0) setlocale(LC_CTYPE, "");
  utf8 = strcmp(nl_langinfo(CODESET), "UTF-8") == 0;
  atexit(at_exit);
  rl_readline_name = "loom";
  rl_catch_signals = 0;  /* its handlers would signal the process group */
  rl_getc_function = key_getc;
  rl_attempted_completion_function = complete_cb;
  rl_initialize();
  rl_completion_append_character = '\0';
  rl_completion_query_items = INT_MAX;  /* its question would hold the loop */
  rl_basic_word_break_characters = break_chars;
  rl_completer_word_break_characters = break_chars;
  rl_add_defun("loom-where", where_fn, WHERE_KEY);
}

/*
** The terminal on a file description of our own: the poll makes it
** non-blocking, which on fd 0 itself would make the shared stdout
** non-blocking too.  Falls back on fd 0, set back to its flags.
*/
static int terminal_fd(int *own) {
  const char *name = ttyname(0);
  int fd = name != NULL ? open(name, O_RDWR | O_NOCTTY | O_CLOEXEC) : -1;
  *own = fd >= 0;
  return fd >= 0 ? fd : 0;
}

static const loom_class editor_class;

/* The options of lineedit.open, checked: history, history_size. */
static char *open_options(lua_State *L, int *size) {
  const char *fname = "lineedit.open";
  const char *path = NULL, *home = getenv("HOME");
  lua_Integer n = HISTORY_SIZE;
  if (lua_getfield(L, 1, "history") != LUA_TNIL) {
    size_t len;
    if (lua_type(L, -1) != LUA_TSTRING
        || strlen(path = lua_tolstring(L, -1, &len)) != len)
      loom__argerror(L, 1, fname, "history must be a string (a path)");
  }
  if (lua_getfield(L, 1, "history_size") != LUA_TNIL) {
    if (!lua_isinteger(L, -1) || (n = lua_tointeger(L, -1)) < 0
        || n > INT_MAX)
      loom__argerror(L, 1, fname,
                     "history_size must be a non-negative integer");
  }
  if (lua_getfield(L, 1, "complete") != LUA_TNIL && !lua_isfunction(L, -1)
      && luaL_getmetafield(L, -1, "__call") == LUA_TNIL)
    loom__argerror(L, 1, fname, "complete must be a function");
  *size = (int)n;
  if (path == NULL) return NULL;
  if (path[0] == '~' && path[1] == '/' && home != NULL)  /* as a shell */
    path = lua_pushfstring(L, "%s%s", home, path + 1);
  return strdup(path);
}

/* The poll on the terminal; 0 or a libuv error. */
static int open_poll(loom_editor *ed, loom_host *H) {
  int err, flags = ed->own_fd ? -1 : fcntl(ed->fd, F_GETFL);
  err = uv_poll_init(H->loop, &ed->poll, ed->fd);
  if (flags != -1) fcntl(ed->fd, F_SETFL, flags);  /* fd 0: as it was */
  if (err != 0) return err;
  ed->poll.data = ed;
  ed->nuv++;
  return 0;
}

/*
** lineedit.open([opts]): an editor on the terminal, its history read;
** or nil, msg, code when standard input and output are not a terminal
** or the history file cannot be read.
*/
static int l_open(lua_State *L) {
  loom_host *H = loom__host(L);
  loom_editor *ed;
  char *history;
  int size, err, own;
  if (lua_isnoneornil(L, 1)) {
    lua_settop(L, 0);
    lua_newtable(L);
  }
  else loom__checktype(L, 1, "lineedit.open", LUA_TTABLE);
  lua_settop(L, 1);
  history = open_options(L, &size);
  lua_settop(L, 1);
  if (open_ed != NULL) {
    free(history);
    return loom__errorf(L, "lineedit.open: a line editor is open already");
  }
  if (!isatty(0) || !isatty(1)) {
    free(history);
    return loom__fail_reason(L, "lineedit.open", NULL, "standard input and "
                             "output are not a terminal", "ENOTTY");
  }
  ed = loom__handle_new(L, H, &editor_class, sizeof *ed, 0);
  ed->complete_ref = LUA_NOREF;
  ed->history = history;
  ed->history_size = size;
  ed->fd = terminal_fd(&own);
  ed->own_fd = own;
  uv_signal_init(H->loop, &ed->winch);
  ed->winch.data = ed;
  ed->nuv = 1;
  err = open_poll(ed, H);
  if (err == 0) {
    libedit_setup();
    err = history_load(ed);
  }
  if (err != 0) {
    ed->saved = 1;  /* a file that could not be read is not overwritten */
    loom__handle_detach(&ed->base);
    editor_close(&ed->base, LOOM_CLOSE_USER);
    lua_pop(L, 1);  /* remove the box */
    if (history != NULL) return loom__fail(L, "read history", history, err);
    return loom__fail(L, "lineedit.open", NULL, err);
  }
  if (lua_getfield(L, 1, "complete") != LUA_TNIL)
    ed->complete_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  else lua_pop(L, 1);
  open_ed = ed;
  return 1;
}

static int read_k(lua_State *L, int status, lua_KContext ctx);

/*
** editor:read([prompt]) (suspends): the line typed; nil, "interrupt"
** after Ctrl-C (the line dropped); nil, "eof" after Ctrl-D on an empty
** line, or once the terminal or the editor is gone.
*/
static int ed_read(lua_State *L) {
  loom_editor *ed = loom__checkhandle_as(L, 1, &editor_class, "editor:read");
  const char *prompt = lua_isnoneornil(L, 2) ? ""
                       : loom__checkcstring(L, 2, "editor:read");
  loom_host *H = loom__host(L);
  loom_task *t = loom__enter(L, H, "editor:read");
  int err;
  lua_settop(L, 2);
  if (ed->readers != NULL)
    return loom__errorf(L, "editor:read: another task is reading");
  if (ed->eof) {
    lua_pushnil(L);
    lua_pushliteral(L, "eof");
    return 2;
  }
  err = prompt_start(ed, H, t, prompt);
  if (err < 0) return loom__fail(L, "read from", "the terminal", err);
  loom__list_wait(&ed->readers, t);
  return loom__wait(L, read_k, 0);
}

/*
** The reader goes on: with what ended the read, or with the error that
** cancelled it (or timed it out), once its prompt is gone.
*/
static int read_k(lua_State *L, int status, lua_KContext ctx) {
  loom_editor *ed = *(loom_editor **)lua_touserdata(L, 1);
  loom_task *t = loom__host(L)->current;
  int outcome = READ_EOF;  /* the editor was closed */
  (void)status; (void)ctx;
  /* a prompt shown since for another reader is not this one's */
  if (ed != NULL && t != NULL && ed->owner == t->id) {
    outcome = ed->outcome;
    ed->outcome = READ_NONE;
    ed->owner = 0;
    if (outcome == READ_NONE && ed->prompting) {  /* not woken by a key */
      leave_line(ed, "");
      prompt_stop(ed);
    }
    else if (outcome == READ_LINE) {
      lua_pushstring(L, ed->line);
      free(ed->line);
      ed->line = NULL;
    }
  }
  loom__list_resumed(L, NULL);
  if (outcome == READ_LINE) return 1;
  lua_pushnil(L);
  if (outcome == READ_INTERRUPT) lua_pushliteral(L, "interrupt");
  else lua_pushliteral(L, "eof");
  return 2;
}

/*
** editor:add_history(line): Up and Down find it, and the history file
** keeps it.  Empty lines, and the line added last again, are left out.
*/
static int ed_add_history(lua_State *L) {
  loom_editor *ed = loom__checkhandle_as(L, 1, &editor_class,
                                         "editor:add_history");
  const char *line = loom__checkcstring(L, 2, "editor:add_history");
  char *copy;
  if (line[strspn(line, " \t\r\n")] == '\0') return 0;
  if (ed->last != NULL && strcmp(ed->last, line) == 0) return 0;
  if ((copy = strdup(line)) == NULL) return loom__nomem(L);
  free(ed->last);
  ed->last = copy;
  add_history(line);
  return 0;
}

/*
** editor:close(): true; nil, msg, code when the history could not be
** written (the editor is closed all the same).  Closing twice is true.
*/
static int ed_close(lua_State *L) {
  loom_editor **box = loom__checkobject_as(L, 1, &editor_class,
                                           "editor:close");
  loom_editor *ed = *box;
  int err = 0;
  if (ed != NULL) {
    prompt_stop(ed);
    err = history_save(ed);
    if (err != 0) lua_pushstring(L, ed->history);
  }
  loom__handle_close(L);
  if (err != 0) return loom__fail(L, "write history", lua_tostring(L, -2),
                                  err);
  return 1;
}

/* lineedit.isatty(): whether standard input and output are a terminal */
static int l_isatty(lua_State *L) {
  lua_pushboolean(L, isatty(0) && isatty(1));
  return 1;
}

static const luaL_Reg editor_methods[] = {
  {"read", ed_read},
  {"add_history", ed_add_history},
  {"close", ed_close},
  {NULL, NULL}
};

static const loom_class editor_class = {
  .name = "loom.lineedit",
  .noun = "line editor",
  .methods = editor_methods,
  .close = editor_close,
  .describe = editor_describe,
};

static const luaL_Reg funcs[] = {
  {"isatty", l_isatty},
  {"open", l_open},
  {NULL, NULL}
};

int luaopen_loom_lineedit(lua_State *L) {
  if (loom__host_of_state(L) == NULL)
    return luaL_error(L, "loom.lineedit: no loom host in this state");
  loom__class_register(L, &editor_class);
  luaL_newlibtable(L, funcs);
  loom__push_box(L);
  luaL_setfuncs(L, funcs, 1);
  return 1;
}

/* }==================================================================== */
