/*
 * worker.h: one worker process of the pool.  See worker.c.
 */

#ifndef CHAT_WORKER_H
#define CHAT_WORKER_H

#include <sys/types.h>

#include "config.h"

#define CHAT_WORKER_EXIT_UNSAFE  78      /* sysexits.h EX_CONFIG */

/*
 * Runs a worker until SIGTERM or SIGINT (or the supervisor's death) and
 * returns the process exit status: 0 after a clean stop, 1 when it could
 * not start, CHAT_WORKER_EXIT_UNSAFE when PostgreSQL is configured so that
 * a crash could lose acknowledged commits (fsync or full_page_writes off):
 * the supervisor then stops the pool instead of restarting it.  Called in a freshly forked child with all signals unblocked;
 * supervisor is the parent's pid, to notice a parent that is already gone.
 */
int chat_worker_run(const chat_config_t *cfg, chat_lane_t lane,
    pid_t supervisor);

#endif /* CHAT_WORKER_H */
