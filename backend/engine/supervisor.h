/*
 * supervisor.h: the parent process of the worker pool.  See supervisor.c.
 */

#ifndef CHAT_SUPERVISOR_H
#define CHAT_SUPERVISOR_H

#include <signal.h>
#include <sys/types.h>

#include "config.h"

/* Runs the pool in the foreground until SIGTERM, SIGINT or SIGHUP; returns
 * the exit status (0 after a clean shutdown). */
int chat_supervisor_run(const chat_config_t *cfg);

/*
 * In a process the supervisor started (a worker, a role), first thing:
 * SIGTERM and SIGINT set *stop (the process finishes what it holds and
 * exits), SIGPIPE is ignored, and the supervisor's death sends SIGTERM
 * (or sets *stop at once when it is already gone).
 */
void chat_supervised_signals(volatile sig_atomic_t *stop, pid_t supervisor);

#endif /* CHAT_SUPERVISOR_H */
