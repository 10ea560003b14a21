/*
** lineedit.h: what the loom binary (main.c) knows of its line editor,
** lineedit.c.  The editor is not part of libloom: only the binary
** offers 'require "loom.lineedit"' (registered in package.preload).
*/
#ifndef LOOM_LINEEDIT_H
#define LOOM_LINEEDIT_H

#include "loom.h"

/* The loader of 'require "loom.lineedit"'. */
int luaopen_loom_lineedit(lua_State *L);

/*
** Ctrl-C on the loop (the binary's SIGINT default): when a task of 'H'
** waits in editor:read with its prompt shown, drops the line typed,
** makes that read return nil, "interrupt" and returns 1: the Ctrl-C was
** the prompt's.  Returns 0 otherwise.
*/
int loom__lineedit_sigint(loom_host *H);

/*
** From the SIGINT handler (async-signal-safe): whether a prompt shows;
** if so the editor notes that a Ctrl-C came at it.
*/
int loom__lineedit_signalled(void);

#endif
