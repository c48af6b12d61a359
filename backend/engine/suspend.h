/*
 * suspend.h: the commands a worker has waiting on outbound calls, and
 * the calls its periodic tasks wait on.  See suspend.c.
 */

#ifndef CHAT_SUSPEND_H
#define CHAT_SUSPEND_H

#include <stddef.h>
#include <stdint.h>

#include "bus.h"
#include "command.h"
#include "config.h"
#include "db.h"
#include "event.h"
#include "http_client.h"
#include "http_multi.h"

/* What a task's call does once it has finished: read call's outcome and
 * act (outside any transaction; events it adds are fanned out). */
typedef void (*chat_task_call_done_pt)(chat_db_t *db,
    const chat_config_t *cfg, chat_http_call_t *call, chat_events_t *events);

typedef struct chat_parked_s  chat_parked_t;

typedef struct {
    const chat_config_t  *cfg;
    chat_db_t            *db;
    chat_http_multi_t     http;
    chat_parked_t        *head;         /* every job and call waiting */
    size_t                jobs;         /* commands waiting */
    size_t                calls;        /* tasks' calls waiting */
    size_t                ready;        /* finished without the multi
                                           handle (could not start) */
    int64_t               next_refresh;
} chat_suspend_t;

void chat_suspend_init(chat_suspend_t *s, const chat_config_t *cfg,
    chat_db_t *db);

/* Gives up everything still waiting: calls are cancelled, the commands'
 * entries stay pending (another worker reclaims and resumes them). */
void chat_suspend_free(chat_suspend_t *s);

/*
 * Runs the handler of a CHAT_OP_SUSPENDS job, outside any transaction.
 * Returns 1 when it suspended: the job has moved here (with a copy of its
 * command, so the read it came from may be freed) and *job is left empty;
 * 0 when it finished at once: done with its reply, or failed (not done:
 * the entry stays pending), to be answered by the caller as usual.
 */
int chat_suspend_job(chat_suspend_t *s, chat_job_t *job);

/*
 * chat_suspend_job for n jobs of one CHAT_OP_SUSPENDS op with a group
 * lock (its batch hook, ops.h) that the worker starts together: their
 * handlers' first transactions are one group commit (db.h), the op's
 * lock taken first, and nothing of them waits on a lock after it
 * (chat_db_group_nowait).  Only after the COMMIT are the calls started
 * and the others answered; if it fails, none is stored, none is
 * answered, no call is made, and all stay pending.  A handler that met a
 * lock runs again on its own after the COMMIT.  finished[i] as
 * chat_suspend_job's answer, the other way round: 1 when jobs[i] is for
 * the caller to answer (done, or not done: left pending), 0 when it
 * moved here.
 */
void chat_suspend_group(chat_suspend_t *s, chat_job_t **jobs, size_t n,
    int *finished);

/* Commands waiting. */
size_t chat_suspend_jobs(const chat_suspend_t *s);

/* Tasks' calls waiting. */
size_t chat_suspend_calls(const chat_suspend_t *s);

/*
 * For a periodic task: starts call and runs done when it has finished,
 * from the worker's loop like a command's resume step.  0, or -1 (the
 * call could not start and was freed).
 */
int chat_suspend_task_call(chat_suspend_t *s, chat_http_call_t *call,
    chat_task_call_done_pt done);

/* Moves the calls on, waiting up to timeout_ms for one of them to have
 * something to do when none has yet. */
void chat_suspend_wait(chat_suspend_t *s, int timeout_ms);

/*
 * Runs the next step of what has finished waiting: a command's resume
 * step (those that finished, done or failed, go to out, at most max; one
 * that suspended again keeps waiting) and a task call's done (its events
 * go to events).  Returns how many jobs are in out; call again while it
 * returns max.  Each step ends with chat_db_group_next: the caller may
 * run them in one group commit (db.h), and must not answer them before
 * it has committed.
 */
size_t chat_suspend_resume(chat_suspend_t *s, chat_job_t **out, size_t max,
    chat_events_t *events);

/* Frees jobs that chat_suspend_resume returned, once answered. */
void chat_suspend_release(chat_suspend_t *s, chat_job_t **jobs, size_t n);

/* 1 when the entry (shard, id) is a command waiting here. */
int chat_suspend_holds(const chat_suspend_t *s, int shard, const char *id);

/*
 * Every claim-idle/3: XCLAIM JUSTID of every waiting command's entry, so
 * no worker takes it for abandoned while it legitimately waits.
 */
void chat_suspend_refresh(chat_suspend_t *s, chat_bus_t *bus);

#endif /* CHAT_SUSPEND_H */
