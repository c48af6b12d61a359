/*
 * supervisor.h: the parent process of the worker pool.  See supervisor.c.
 */

#ifndef CHAT_SUPERVISOR_H
#define CHAT_SUPERVISOR_H

#include "config.h"

/* Runs the pool in the foreground until SIGTERM, SIGINT or SIGHUP; returns
 * the exit status (0 after a clean shutdown). */
int chat_supervisor_run(const chat_config_t *cfg);

#endif /* CHAT_SUPERVISOR_H */
