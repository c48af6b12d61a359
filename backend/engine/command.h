/*
 * command.h: running commands in PostgreSQL, several to a transaction,
 * each at most once in effect.  See command.c.
 */

#ifndef CHAT_COMMAND_H
#define CHAT_COMMAND_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "config.h"
#include "db.h"
#include "envelope.h"
#include "event.h"
#include "ops.h"

/* One command from its parsed envelope to its reply. */
typedef struct chat_job_s  chat_job_t;

struct chat_job_s {
    /* set by chat_job_init */
    const chat_cmd_t   *cmd;            /* borrowed */
    const chat_op_t    *op;
    int                 shard;          /* where the entry came from */
    const char         *id;             /* its stream id, borrowed */
    size_t              order;          /* position in its read */
    int64_t             lock_key;       /* the body's conversation_id, or 0 */
    cJSON              *body;           /* parsed body, NULL if refused */
    const char         *body_invalid;   /* why it was refused */
    unsigned char       hash[32];       /* SHA-256 of op "\n" body (an
                                           HMAC of the opened body when it
                                           had sealed fields) */

    /* results: valid when done */
    unsigned            done:1;         /* reply is final: send it, ack */
    chat_reply_t        reply;          /* as sent (present hook applied) */
    chat_events_t       events;         /* to fan out (first runs only) */

    /* one transaction attempt's state, see command.c */
    unsigned            resolved:1;     /* status and stored are final */
    unsigned            ran:1;          /* the handler ran: log it */
    unsigned            raw:1;          /* stored is sent as it is */
    int                 status;
    char               *stored;         /* the reply as command_log keeps it */
    chat_job_t         *same_key;       /* an earlier job with this key */
};

/*
 * Prepares a job for cmd (which must outlive it): finds the op, parses
 * the body, opens its sealed fields with cfg's key (chat_seal.c; a body
 * whose do not open is refused, 400), hashes the request.  0, or -1 if
 * memory ran out.
 */
int chat_job_init(chat_job_t *job, const chat_config_t *cfg,
    const chat_cmd_t *cmd, int shard, const char *id, size_t order);

/* Frees what the job holds (its reply body and events too). */
void chat_job_free(chat_job_t *job);

/* 1 when the job must run in a transaction of its own (CHAT_OP_ALONE). */
int chat_job_alone(const chat_job_t *job);

/*
 * Runs jobs[0..n) (n <= CHAT_COMMIT_BATCH_MAX), reordering the pointer
 * array into the order they ran.  Several jobs share one transaction:
 * each in a savepoint, one COMMIT for all.  Afterwards every job with
 * done set has its reply (and events) and may be answered and acked;
 * every other job failed on an infrastructure error, is logged, and must
 * stay pending (chat_db_ok() tells whether the connection is gone).
 */
void chat_jobs_run(chat_db_t *db, const chat_config_t *cfg,
    chat_job_t **jobs, size_t n);

/* the most commands one transaction takes (see command.c) */
#define CHAT_COMMIT_BATCH_MAX  64


/* For command*.c only: the idempotency log's steps (command_log.c). */

#define CHAT_JOB_CONFLICT  (-2)         /* a key was committed elsewhere */

/* 1 when the job's op is CHAT_OP_LOGGED. */
int chat_job_logged(const chat_job_t *job);

/* Resolves job as 409 idempotency_key_reused.  0, or -1. */
int chat_job_key_reused(chat_job_t *job);

/* Points same_key of every logged job at an earlier job with its key. */
void chat_jobs_mark_same_key(chat_job_t **jobs, size_t n);

#define CHAT_JOB_RERUN     (-3)         /* a job ran that must not have */

/* BEGIN, and the jobs whose key command_log has resolved (replay or
 * 409), in one round trip.  0 with the transaction open, or -1. */
int chat_jobs_begin(chat_db_t *db, chat_job_t **jobs, size_t n);

/* chat_jobs_begin in parts, so its statements can share a round trip
 * with others (chat_db_prefix): the statements (b->st[0..b->n)), then,
 * after they ran, the lookup's answers; 0, -1, or CHAT_JOB_RERUN when it
 * found the key of a job that has already run. */
typedef struct {
    chat_db_stmt_t   st[2];
    size_t           n;
    char            *keys;
} chat_begin_t;

int chat_jobs_begin_prepare(chat_begin_t *b, chat_job_t **jobs, size_t n);
int chat_jobs_begin_finish(chat_begin_t *b, chat_job_t **jobs, size_t n);
void chat_jobs_begin_free(chat_begin_t *b);

/* Resolves each same_key job from its earlier job.  0, or -1. */
int chat_jobs_resolve_same_key(chat_job_t **jobs, size_t n);

/* Logs every job that ran, in one INSERT, and commits, in one round
 * trip: 0, or CHAT_JOB_CONFLICT or -1 with the transaction to roll
 * back. */
int chat_jobs_log_commit(chat_db_t *db, chat_job_t **jobs, size_t n);

#endif /* CHAT_COMMAND_H */
