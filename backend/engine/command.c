/*
 * command.c: the transactions commands run in, several commands to one
 * commit, each at most once in effect.
 *
 * A commit costs a WAL flush, which is most of what a small command
 * costs.  So a worker hands over all the cheap commands of one read
 * (up to --commit-batch, at most 64) and they share a transaction:
 *
 *   BEGIN; SELECT key, status, reply, hash FROM command_log
 *          WHERE key = ANY (...)                       one round trip
 *                                   (with the first run of a batch
 *                                   handler, when the batch starts so)
 *     a key found: the command already happened; its stored reply is the
 *     answer (or 409 idempotency_key_reused when the hash of op "\n" body
 *     differs) and it does not run again
 *   SAVEPOINT op
 *   <handler 1>
 *   RELEASE SAVEPOINT op; SAVEPOINT op                 one round trip
 *   <handler 2>                 4xx: ROLLBACK TO SAVEPOINT op first, so a
 *   ...                         business error changes nothing
 *   <msg.send 3, 4, 5: one call of the op's batch handler>
 *   ...
 *   INSERT INTO command_log (key, op, user_id, request_hash, status, reply)
 *       SELECT * FROM unnest(...); COMMIT              one round trip
 *
 * and only then are the replies sent and the entries acked (worker.c).
 * A business error (4xx) rolls back only its own savepoint; its reply is
 * logged all the same, so a replay answers the same.  An infrastructure
 * error (a failed statement, a lost connection) rolls back the whole
 * transaction and nothing of it is answered.
 *
 * Batch handlers.  An op may have one (chat_op_batch_pt, ops.h; its area's
 * table names it): the jobs of that op that come one after the
 * other in the batch's order run in one call, which takes a constant
 * number of round trips however many there are (msg.send: one, op_msg.c),
 * and no savepoints, because a batch handler writes nothing for a
 * command it answers 4xx.  When the batch starts with such a run, BEGIN
 * and the lookup travel in front of its statements (chat_db_prefix), so
 * the run goes ahead of the lookup's answer; if the lookup then finds
 * the key of one of its commands (a replay, which must not run), the
 * transaction is rolled back and run again the plain way.  A batch of
 * msg.send alone therefore costs two round trips and one WAL flush,
 * whatever its size.
 *
 * Why this is still "at most once".  The log row of a command commits
 * with its effects or not at all.  The lookup runs first; a command that
 * finishes elsewhere after the lookup (the same key redelivered to two
 * workers, or retried by a client while the first attempt was still
 * running) is caught by the final INSERT: it waits for the other
 * transaction and, if that committed, fails on the key (unique
 * violation), so the COMMIT sent behind it never runs.  Our run of that
 * command must not count: the whole transaction is rolled back and run
 * again, and the lookup then finds the other's reply.  Two jobs of one
 * batch with the same key run once; the later one is answered like a
 * replay.
 *
 * Order and deadlocks.  The jobs of a batch run sorted by the
 * conversation they name (the body's conversation_id; 0 for the rest),
 * keeping their order within a conversation.  Every lock a chat command
 * takes belongs to its conversation, so two batches always lock
 * conversations in ascending order and cannot deadlock on them; a batch
 * handler's run covers an ascending range of conversations between the
 * jobs before and after it, and locks them in that order.  The jobs of
 * one batch are concurrent (none has been answered), so any order is one
 * a client could have seen.
 *
 * Failures.  A serialisation failure or deadlock, or a key conflict as
 * above, reruns the transaction at once, up to three times.  When a
 * batch still fails with the connection alive, its jobs are run again
 * one per transaction, so one poisonous command does not drag the others
 * of its batch through the retries into the dead-letter stream: only its
 * own entry stays pending.
 *
 * Limits.  At most 64 jobs per transaction: each savepoint that writes
 * takes a subtransaction id, and a transaction with more than 64 of them
 * overflows PostgreSQL's per-backend cache and slows every other
 * session's snapshots.  Expensive ops (CHAT_OP_ALONE: scrypt) are not
 * batched by the worker, so they never hold others' locks while they
 * hash.  Ops that only read run without a transaction block and log
 * nothing (their replies, such as tokens, are not stored): a batch of
 * reads alone is run one read at a time.
 *
 * The idempotency log's statements (begin and lookup, same-key jobs, log
 * and commit) are in command_log.c.
 *
 * What it does not do: choose which entries to batch (worker.c), talk to
 * Redis, or prune command_log.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "command.h"
#include "conv_input.h"
#include "log.h"
#include "stats.h"


#define CHAT_COMMAND_ATTEMPTS  3


/* ------------------------------------------------------------------------
 * Jobs
 * --------------------------------------------------------------------- */

/*
 * SHA-256 of op "\n" body: what "the same command" means for a key.  A
 * command that came with sealed fields (a password) is hashed as opened
 * (its sealed text differs on every send, a retry's too), and with
 * HMAC-SHA256 under cfg->hash_key instead: a bare hash of a body with a
 * password in it, kept in command_log, could be brute-forced.
 */
static int
chat_job_hash(chat_job_t *job, const chat_config_t *cfg, int opened)
{
    int             ok;
    char           *text;
    size_t          n;
    unsigned        len;
    EVP_MD_CTX     *ctx;
    unsigned char  *data;

    if (opened) {
        text = cJSON_PrintUnformatted(job->body);
        if (text == NULL) {
            return -1;
        }

        n = job->cmd->op_len + 1 + strlen(text);
        data = malloc(n);

        if (data != NULL) {
            memcpy(data, job->cmd->op, job->cmd->op_len);
            data[job->cmd->op_len] = '\n';
            memcpy(data + job->cmd->op_len + 1, text,
                   n - job->cmd->op_len - 1);
        }

        OPENSSL_cleanse(text, strlen(text));
        cJSON_free(text);

        if (data == NULL) {
            return -1;
        }

        len = 0;
        ok = HMAC(EVP_sha256(), cfg->hash_key, sizeof(cfg->hash_key), data,
                  n, job->hash, &len) != NULL
             && len == sizeof(job->hash);

        OPENSSL_cleanse(data, n);
        free(data);

        return ok ? 0 : -1;
    }

    ctx = EVP_MD_CTX_new();

    ok = ctx != NULL
         && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1
         && EVP_DigestUpdate(ctx, job->cmd->op, job->cmd->op_len) == 1
         && EVP_DigestUpdate(ctx, "\n", 1) == 1
         && EVP_DigestUpdate(ctx, job->cmd->body, job->cmd->body_len) == 1
         && EVP_DigestFinal_ex(ctx, job->hash, &len) == 1;

    EVP_MD_CTX_free(ctx);

    return ok ? 0 : -1;
}


/*
 * Opens the body's sealed fields (chat_seal.c) in place.  1 when the op
 * has some, 0 when it has none; a body whose sealed fields do not open
 * (in clear, altered, another key) is refused like a malformed body.
 */
static int
chat_job_open(chat_job_t *job, const chat_config_t *cfg)
{
    chat_seal_ad_t      ad;
    const char *const  *fields;

    fields = chat_seal_command_fields(job->cmd->op, job->cmd->op_len);
    if (fields == NULL || job->body == NULL) {
        return 0;
    }

    ad.dir = "cmd";
    ad.op = job->cmd->op;
    ad.op_len = job->cmd->op_len;
    ad.gw = "";
    ad.gw_len = 0;
    ad.req = "";
    ad.req_len = 0;

    if (chat_seal_open_json(cfg->seal_key, &ad, fields, job->body) != 0) {
        chat_log_error("key %s (op %s): a sealed field does not open; do "
                       "the edge and the workers share the token secret?",
                       job->cmd->key, job->cmd->op);
        cJSON_Delete(job->body);
        job->body = NULL;
        job->body_invalid = "a sealed field of the command could not be "
                            "opened";
        return 0;
    }

    return 1;
}


int
chat_job_init(chat_job_t *job, const chat_config_t *cfg,
    const chat_cmd_t *cmd, int shard, const char *id, size_t order)
{
    int      opened;
    int64_t  cid;

    memset(job, 0, sizeof(*job));
    job->cmd = cmd;
    /* what is logged about it from here on names the edge's request */
    chat_log_set_request(cmd->rid, cmd->rid_len);
    job->shard = shard;
    job->id = id;
    job->order = order;
    job->op = chat_op_find(cmd->op, cmd->op_len);

    job->body = chat_op_parse_body(cmd, &job->body_invalid);
    if (job->body == NULL && job->body_invalid == NULL) {
        return -1;
    }

    opened = chat_job_open(job, cfg);

    if (chat_json_integer(cJSON_GetObjectItemCaseSensitive(job->body,
                                                           "conversation_id"),
                          1, CHAT_INT_MAX, &cid) == 0)
    {
        job->lock_key = cid;
    }

    if ((job->op->flags & CHAT_OP_LOGGED)
        && chat_job_hash(job, cfg, opened) != 0)
    {
        chat_log_error("request hash failed");
        cJSON_Delete(job->body);
        job->body = NULL;
        return -1;
    }

    return 0;
}


/* Forgets one attempt's results. */
static void
chat_job_reset(chat_job_t *job)
{
    free(job->stored);
    free(job->reply.body);
    chat_events_clear(&job->events);

    job->stored = NULL;
    job->reply.body = NULL;
    job->reply.status = 0;
    job->status = 0;
    job->done = 0;
    job->resolved = 0;
    job->ran = 0;
    job->raw = 0;
    job->same_key = NULL;
}


void
chat_job_free(chat_job_t *job)
{
    chat_job_reset(job);
    cJSON_Delete(job->body);
    job->body = NULL;
}


int
chat_job_alone(const chat_job_t *job)
{
    return (job->op->flags & CHAT_OP_ALONE) != 0;
}


int
chat_job_logged(const chat_job_t *job)
{
    return (job->op->flags & CHAT_OP_LOGGED) != 0;
}


static void
chat_job_ctx(chat_op_ctx_t *ctx, chat_db_t *db, const chat_config_t *cfg,
    chat_job_t *job)
{
    memset(ctx, 0, sizeof(*ctx));
    ctx->cfg = cfg;
    ctx->db = db;
    ctx->cmd = job->cmd;
    ctx->body = job->body;
    ctx->body_invalid = job->body_invalid;
    ctx->events = &job->events;
}


/* Takes the answer of a handler that returned 0: the job is resolved
 * with status and stored.  0, or -1 if memory ran out. */
static int
chat_job_store(chat_job_t *job, chat_op_ctx_t *ctx)
{
    if (ctx->status >= 400) {
        chat_events_clear(&job->events);
    }

    job->stored = cJSON_PrintUnformatted(ctx->reply);
    cJSON_Delete(ctx->reply);
    ctx->reply = NULL;

    if (job->stored == NULL) {
        return -1;
    }

    job->status = ctx->status;
    job->resolved = 1;
    job->ran = 1;

    return 0;
}


/* Runs the handler; on 0 the job is resolved with status and stored. */
static int
chat_job_handle(chat_db_t *db, const chat_config_t *cfg, chat_job_t *job)
{
    chat_op_ctx_t  ctx;

    chat_job_ctx(&ctx, db, cfg, job);
    chat_log_set_request(job->cmd->rid, job->cmd->rid_len);

    if (chat_op_run(job->op, &ctx) != 0) {
        chat_log_set_request(NULL, 0);
        chat_events_clear(&job->events);
        return -1;
    }

    chat_log_set_request(NULL, 0);
    return chat_job_store(job, &ctx);
}


/* ------------------------------------------------------------------------
 * Batch handlers
 * --------------------------------------------------------------------- */

/* The batch handler of the job's op (its area's table names it), or
 * NULL.  A refused body is answered by chat_op_run without running
 * anything, one at a time. */
static chat_op_batch_pt
chat_job_batch(const chat_job_t *job)
{
    return job->body != NULL ? job->op->batch : NULL;
}


/* Runs jobs[0..n) through their op's batch handler; on 0 every one is
 * resolved as by chat_job_handle. */
static int
chat_jobs_handle_batch(chat_db_t *db, const chat_config_t *cfg,
    chat_op_batch_pt batch, chat_job_t **jobs, size_t n)
{
    int             rc;
    size_t          i;
    chat_op_ctx_t  *ctxs;

    ctxs = malloc(n * sizeof(chat_op_ctx_t));
    if (ctxs == NULL) {
        return -1;
    }

    for (i = 0; i < n; i++) {
        chat_job_ctx(&ctxs[i], db, cfg, jobs[i]);
    }

    rc = batch(ctxs, n);

    for (i = 0; i < n; i++) {
        if (rc == 0
            && (ctxs[i].reply == NULL || ctxs[i].status < 200
                || ctxs[i].status > 599))
        {
            chat_log_error("op %s: batch handler left key %s without a "
                           "reply (status %d)", jobs[i]->op->name,
                           jobs[i]->cmd->key, ctxs[i].status);
            rc = -1;
        }

        if (rc != 0 || chat_job_store(jobs[i], &ctxs[i]) != 0) {
            rc = -1;
            cJSON_Delete(ctxs[i].reply);
            chat_events_clear(&jobs[i]->events);
        }
    }

    free(ctxs);

    return rc;
}


/* Turns a resolved job's stored reply into the one sent; sets done. */
static int
chat_job_present(const chat_config_t *cfg, chat_job_t *job)
{
    if (job->raw) {
        job->reply.status = job->status;
        job->reply.body = strdup(job->stored);
        if (job->reply.body == NULL) {
            return -1;
        }

    } else if (chat_op_present(job->op, cfg, job->cmd, job->status,
                               job->stored, &job->reply) != 0)
    {
        return -1;
    }

    job->done = 1;
    return 0;
}


/* ------------------------------------------------------------------------
 * Transactions
 * --------------------------------------------------------------------- */

/* where the savepoint of the job before stands */
enum {
    CHAT_SP_NONE = 0,       /* none open */
    CHAT_SP_CLEAN,          /* open, its job succeeded: keep its work */
    CHAT_SP_DIRTY           /* open, its job answered 4xx: undo its work */
};


/*
 * One attempt at jobs[0..n) in one transaction.  0 when committed (every
 * job resolved), CHAT_JOB_CONFLICT or -1 after rolling back.
 */
/* The jobs from i on that go to batch, up to the first of another op
 * (answered ones skipped), into group; returns where that run ends. */
static size_t
chat_jobs_run_of(chat_job_t **jobs, size_t i, size_t n,
    chat_op_batch_pt batch, chat_job_t **group, size_t *m)
{
    *m = 0;

    for ( ; i < n; i++) {
        if (jobs[i]->resolved || jobs[i]->same_key != NULL) {
            continue;
        }
        if (chat_job_batch(jobs[i]) != batch) {
            break;
        }
        group[(*m)++] = jobs[i];
    }

    return i;
}


/*
 * BEGIN and the lookup, sent in front of the first run's batch handler
 * when the batch starts with one (speculate), else alone.  A speculative
 * run is taken back (CHAT_JOB_RERUN) if the lookup finds one of its keys:
 * a replay must not run.  Replays are rare, so the round trip this saves
 * on every batch is worth the rare transaction run twice.  Returns 0 with
 * *next where the jobs still to run start, or -1 / CHAT_JOB_RERUN.
 */
static int
chat_jobs_begin_run(chat_db_t *db, const chat_config_t *cfg,
    chat_job_t **jobs, size_t n, int speculate, chat_job_t **group,
    size_t *next)
{
    int                rc, rb;
    size_t             i, m;
    chat_begin_t       b;
    chat_op_batch_pt   batch;

    *next = 0;

    for (i = 0; i < n && jobs[i]->same_key != NULL; i++) {
        /* the first one that may run */
    }

    batch = speculate && i < n ? chat_job_batch(jobs[i]) : NULL;

    if (batch == NULL) {
        return chat_jobs_begin(db, jobs, n);
    }

    if (chat_jobs_begin_prepare(&b, jobs, n) != 0) {
        return -1;
    }

    *next = chat_jobs_run_of(jobs, i, n, batch, group, &m);

    chat_db_prefix(db, b.st, b.n);
    rc = chat_jobs_handle_batch(db, cfg, batch, group, m);

    /* a handler that needed no statement did not send the prefix */
    if (chat_db_pipeline(db, NULL, 0) != 0) {
        rc = -1;
    }

    rb = chat_jobs_begin_finish(&b, jobs, n);
    chat_jobs_begin_free(&b);

    if (rb == CHAT_JOB_RERUN) {
        chat_log_debug("a replay in a batch run ahead of its lookup; "
                       "running the batch again");
        return CHAT_JOB_RERUN;
    }

    return rc != 0 || rb != 0 ? -1 : 0;
}


static int
chat_jobs_tx(chat_db_t *db, const chat_config_t *cfg, chat_job_t **jobs,
    size_t n, int speculate)
{
    int                rc, sp;
    char               sqlstate[6];
    size_t             i, m, next;
    const char        *sql;
    chat_job_t       **group;
    chat_op_batch_pt   batch;

    chat_jobs_mark_same_key(jobs, n);

    group = malloc(n * sizeof(chat_job_t *));
    if (group == NULL) {
        return -1;
    }

    sp = CHAT_SP_NONE;

    rc = chat_jobs_begin_run(db, cfg, jobs, n, speculate, group, &next);
    if (rc != 0) {
        goto err;
    }

    rc = -1;

    for (i = next; i < n; i = next) {
        next = i + 1;

        if (jobs[i]->resolved || jobs[i]->same_key != NULL) {
            continue;
        }

        batch = chat_job_batch(jobs[i]);

        if (batch != NULL) {
            /* this op's jobs from here on, up to the first of another op,
             * run together; they need no savepoint (see ops.h), but the
             * work of a job before that answered 4xx is undone first */
            next = chat_jobs_run_of(jobs, i, n, batch, group, &m);

            if (sp == CHAT_SP_DIRTY) {
                if (chat_db_exec(db, "ROLLBACK TO SAVEPOINT op; "
                                     "RELEASE SAVEPOINT op") != 0)
                {
                    goto err;
                }
                sp = CHAT_SP_NONE;
            }

            if (chat_jobs_handle_batch(db, cfg, batch, group, m) != 0) {
                goto err;
            }

            continue;
        }

        if (sp == CHAT_SP_NONE) {
            sql = "SAVEPOINT op";
        } else if (sp == CHAT_SP_DIRTY) {
            sql = "ROLLBACK TO SAVEPOINT op; RELEASE SAVEPOINT op; "
                  "SAVEPOINT op";
        } else {
            sql = "RELEASE SAVEPOINT op; SAVEPOINT op";
        }

        if (chat_db_exec(db, sql) != 0
            || chat_job_handle(db, cfg, jobs[i]) != 0)
        {
            goto err;
        }

        sp = jobs[i]->status >= 400 ? CHAT_SP_DIRTY : CHAT_SP_CLEAN;
    }

    if (sp == CHAT_SP_DIRTY && chat_db_exec(db, "ROLLBACK TO SAVEPOINT op")
                               != 0)
    {
        goto err;
    }

    if (chat_jobs_resolve_same_key(jobs, n) != 0) {
        goto err;
    }

    rc = chat_jobs_log_commit(db, jobs, n);
    if (rc != 0) {
        goto err;
    }

    free(group);
    return 0;

err:

    if (chat_db_ok(db)) {
        /* keep the SQLSTATE of the failure, not of the ROLLBACK */
        memcpy(sqlstate, db->sqlstate, sizeof(sqlstate));
        (void) chat_db_exec(db, "ROLLBACK");
        memcpy(db->sqlstate, sqlstate, sizeof(sqlstate));
    }

    free(group);
    return rc;
}


static int
chat_job_cmp(const void *a, const void *b)
{
    const chat_job_t  *x = *(chat_job_t *const *) a;
    const chat_job_t  *y = *(chat_job_t *const *) b;

    if (x->lock_key != y->lock_key) {
        return x->lock_key < y->lock_key ? -1 : 1;
    }

    return (x->order > y->order) - (x->order < y->order);
}


static void
chat_jobs_log_done(chat_job_t **jobs, size_t n, int64_t start)
{
    size_t  i;

    if (!chat_log_enabled(CHAT_LOG_DEBUG)) {
        return;
    }

    for (i = 0; i < n; i++) {
        if (jobs[i]->done) {
            chat_log_debug("op %s key %s uid %lld: %d (%zu in %lld ms)",
                           jobs[i]->cmd->op, jobs[i]->cmd->key,
                           (long long) jobs[i]->cmd->uid,
                           jobs[i]->reply.status, n,
                           (long long) (chat_mono_ms() - start));
        }
    }
}


void
chat_jobs_run(chat_db_t *db, const chat_config_t *cfg, chat_job_t **jobs,
    size_t n)
{
    int      rc, attempt, speculate;
    size_t   i;
    int64_t  start;

    if (n == 0) {
        return;
    }

    /* reads only: each one alone, as below.  A transaction block would
     * add BEGIN, the key lookup, a savepoint per read and COMMIT, and
     * guard nothing: a read stores no reply and has no effect to undo */
    if (n > 1) {
        for (i = 0; i < n && !chat_job_logged(jobs[i]); i++) {
            /* find the first that writes */
        }

        if (i == n) {
            for (i = 0; i < n; i++) {
                chat_jobs_run(db, cfg, &jobs[i], 1);
            }
            return;
        }
    }

    start = chat_mono_ms();

    if (n == 1 && !chat_job_logged(jobs[0])) {
        /* a read alone: no transaction block, nothing stored */
        if (chat_job_handle(db, cfg, jobs[0]) != 0
            || chat_job_present(cfg, jobs[0]) != 0)
        {
            chat_job_reset(jobs[0]);

        } else {
            chat_stats_answered(1);
        }

        chat_jobs_log_done(jobs, n, start);
        return;
    }

    qsort(jobs, n, sizeof(chat_job_t *), chat_job_cmp);

    rc = -1;

    speculate = 1;

    for (attempt = 1; attempt <= CHAT_COMMAND_ATTEMPTS; attempt++) {
        rc = chat_jobs_tx(db, cfg, jobs, n, speculate);
        if (rc == 0) {
            break;
        }

        for (i = 0; i < n; i++) {
            chat_job_reset(jobs[i]);
        }

        if (rc == CHAT_JOB_RERUN && chat_db_ok(db)) {
            speculate = 0;
            attempt--;                  /* not a failure */
            continue;
        }

        if (!chat_db_ok(db)
            || (rc != CHAT_JOB_CONFLICT && !chat_db_retryable(db)))
        {
            break;
        }

        chat_log_warn("%zu command(s) from key %s: transaction conflict "
                      "[%s], attempt %d", n, jobs[0]->cmd->key,
                      rc == CHAT_JOB_CONFLICT ? "key" : db->sqlstate,
                      attempt);
    }

    if (rc == 0) {
        chat_stats_committed(n, chat_mono_ms() - start);
        chat_stats_answered(n);

        for (i = 0; i < n; i++) {
            if (chat_job_present(cfg, jobs[i]) != 0) {
                chat_log_error("key %s: committed, but its reply could not "
                               "be made; it will be replayed",
                               jobs[i]->cmd->key);
                chat_job_reset(jobs[i]);
            }
        }

        chat_jobs_log_done(jobs, n, start);
        return;
    }

    chat_stats_failed();

    if (n == 1 || !chat_db_ok(db)) {
        return;
    }

    chat_log_warn("a batch of %zu commands failed; running them one at a "
                  "time", n);

    for (i = 0; i < n && chat_db_ok(db); i++) {
        chat_jobs_run(db, cfg, &jobs[i], 1);
    }
}
