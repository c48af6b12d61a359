/*
 * command_log.c: the idempotency log (sql/001_accounts.sql) as a batch of
 * jobs uses it.  command.c says when each step runs and why the whole is
 * at most once; this file only speaks SQL:
 *
 *   - begin: BEGIN and one SELECT for every key of the batch, in one
 *     round trip.  A key found means the command already happened: the
 *     job is answered from the stored status and reply when the request
 *     hash (SHA-256 of op "\n" body, compared as hex) matches, else 409
 *     idempotency_key_reused.
 *   - same key twice in one batch: the later job does not run; it is
 *     answered like a replay of the earlier one.
 *   - log and commit: one INSERT of a row for every job that ran, with
 *     its final status and reply, and COMMIT, in one round trip.  A key
 *     another transaction committed meanwhile fails the INSERT
 *     (unique_violation, after waiting for that transaction, as ON
 *     CONFLICT would): CHAT_JOB_CONFLICT, the COMMIT never runs, and the
 *     caller rolls back.
 *
 * Both statements are prepared once per connection and take their values
 * as arrays (text literals built by chat_db_text_array; the hash as
 * bytea's hex form), whatever the batch's size.
 *
 * What it does not do: prune the log (a periodic DELETE by created_at),
 * or decide anything about the transaction.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "command.h"
#include "log.h"


/* Resolves job as 409 idempotency_key_reused. */
int
chat_job_key_reused(chat_job_t *job)
{
    chat_log_warn("key %s reused for a different request (op %s)",
                  job->cmd->key, job->cmd->op);

    job->stored = chat_error_body("idempotency_key_reused",
                      "this idempotency key was already used for a "
                      "different request");
    job->status = 409;
    job->raw = 1;
    job->resolved = 1;

    return job->stored ? 0 : -1;
}


static void
chat_hex(const unsigned char *in, size_t n, char *out)
{
    size_t  i;

    for (i = 0; i < n; i++) {
        out[2 * i] = "0123456789abcdef"[in[i] >> 4];
        out[2 * i + 1] = "0123456789abcdef"[in[i] & 0xf];
    }

    out[2 * n] = '\0';
}


/* Marks logged jobs whose key an earlier job of the batch has. */
void
chat_jobs_mark_same_key(chat_job_t **jobs, size_t n)
{
    size_t  i, j;

    for (i = 0; i < n; i++) {
        if (!chat_job_logged(jobs[i])) {
            continue;
        }

        for (j = 0; j < i; j++) {
            if (chat_job_logged(jobs[j]) && jobs[j]->same_key == NULL
                && strcmp(jobs[j]->cmd->key, jobs[i]->cmd->key) == 0)
            {
                jobs[i]->same_key = jobs[j];
                break;
            }
        }
    }
}


static const char  chat_log_lookup_sql[] =
    "SELECT key, status, reply, encode(request_hash, 'hex') "
    "FROM command_log WHERE key = ANY ($1::text[])";


/* Resolves the jobs whose key is in the lookup's rows: 0, -1, or
 * CHAT_JOB_RERUN when one of them has already run. */
static int
chat_jobs_resolve_found(PGresult *res, chat_job_t **jobs, size_t n)
{
    int          i, rows;
    char         hex[65];
    size_t       j;
    chat_job_t  *job;

    rows = PQntuples(res);

    for (i = 0; i < rows; i++) {
        if (PQgetisnull(res, i, 1) || PQgetisnull(res, i, 2)) {
            chat_log_error("command_log row for key %s is unfinished",
                           PQgetvalue(res, i, 0));
            return -1;
        }

        for (j = 0; j < n; j++) {
            job = jobs[j];

            if (!chat_job_logged(job)
                || strcmp(job->cmd->key, PQgetvalue(res, i, 0)) != 0)
            {
                continue;
            }

            /* it ran before its lookup was read (chat_jobs_begin_prepare)
             * and must not have: the transaction goes again */
            if (job->ran) {
                return CHAT_JOB_RERUN;
            }

            if (job->resolved) {
                continue;
            }

            chat_hex(job->hash, sizeof(job->hash), hex);

            if (strcmp(hex, PQgetvalue(res, i, 3)) != 0) {
                if (chat_job_key_reused(job) != 0) {
                    return -1;
                }
                continue;
            }

            chat_log_debug("key %s: replaying stored reply", job->cmd->key);

            job->status = atoi(PQgetvalue(res, i, 1));
            job->stored = strdup(PQgetvalue(res, i, 2));
            job->resolved = 1;

            if (job->stored == NULL) {
                return -1;
            }
        }
    }

    return 0;
}


int
chat_jobs_begin_prepare(chat_begin_t *b, chat_job_t **jobs, size_t n)
{
    size_t        j, k;
    const char  **values;

    memset(b, 0, sizeof(*b));

    values = malloc(n * sizeof(char *));
    if (values == NULL) {
        return -1;
    }

    k = 0;
    for (j = 0; j < n; j++) {
        if (chat_job_logged(jobs[j]) && jobs[j]->same_key == NULL) {
            values[k++] = jobs[j]->cmd->key;
        }
    }

    b->keys = k > 0 ? chat_db_text_array(values, k) : NULL;
    free(values);

    if (k > 0 && b->keys == NULL) {
        return -1;
    }

    b->st[0].sql = "BEGIN";
    b->st[1].sql = chat_log_lookup_sql;
    b->st[1].prepared = 1;
    b->st[1].nparams = 1;
    b->st[1].values = (const char *const *) &b->keys;
    b->n = k > 0 ? 2 : 1;

    return 0;
}


int
chat_jobs_begin_finish(chat_begin_t *b, chat_job_t **jobs, size_t n)
{
    if (b->st[0].res == NULL) {
        return -1;                      /* the pipeline failed */
    }

    return b->n == 2 ? chat_jobs_resolve_found(b->st[1].res, jobs, n) : 0;
}


void
chat_jobs_begin_free(chat_begin_t *b)
{
    PQclear(b->st[0].res);
    PQclear(b->st[1].res);
    b->st[0].res = NULL;
    b->st[1].res = NULL;
    free(b->keys);
    b->keys = NULL;
}


int
chat_jobs_begin(chat_db_t *db, chat_job_t **jobs, size_t n)
{
    int           rc;
    chat_begin_t  b;

    if (chat_jobs_begin_prepare(&b, jobs, n) != 0) {
        return -1;
    }

    rc = chat_db_pipeline(db, b.st, b.n);
    if (rc == 0) {
        rc = chat_jobs_begin_finish(&b, jobs, n);
    }

    chat_jobs_begin_free(&b);

    return rc;
}


/* A job with the key of an earlier one is answered like its replay. */
int
chat_jobs_resolve_same_key(chat_job_t **jobs, size_t n)
{
    size_t       i;
    chat_job_t  *job, *first;

    for (i = 0; i < n; i++) {
        job = jobs[i];
        first = job->same_key;

        if (first == NULL || job->resolved) {
            continue;
        }

        if (memcmp(job->hash, first->hash, sizeof(job->hash)) != 0) {
            if (chat_job_key_reused(job) != 0) {
                return -1;
            }
            continue;
        }

        job->stored = strdup(first->stored);
        job->status = first->status;
        job->raw = first->raw;
        job->resolved = 1;

        if (job->stored == NULL) {
            return -1;
        }
    }

    return 0;
}


static const char  chat_log_insert_sql[] =
    "INSERT INTO command_log (key, op, user_id, request_hash, status, "
    "                         reply) "
    "SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], "
    "                     $4::bytea[], $5::int[], $6::text[])";

/* the columns of chat_log_insert_sql, one array parameter each */
enum {
    CHAT_LOG_KEY = 0,
    CHAT_LOG_OP,
    CHAT_LOG_USER,
    CHAT_LOG_HASH,
    CHAT_LOG_STATUS,
    CHAT_LOG_REPLY,
    CHAT_LOG_NCOLS
};


/*
 * Logs every job that ran now, in one INSERT, and commits, in one round
 * trip.  The INSERT has no ON CONFLICT: a key another transaction
 * committed meanwhile makes it fail with unique_violation (it waits for
 * that transaction first, as ON CONFLICT would), so the COMMIT after it
 * never runs.  0 when committed; CHAT_JOB_CONFLICT or -1 with the
 * transaction left aborted, for the caller to roll back.
 */
int
chat_jobs_log_commit(chat_db_t *db, chat_job_t **jobs, size_t n)
{
    int              rc, c;
    char            *arrays[CHAT_LOG_NCOLS], (*nums)[2][24], (*hex)[68];
    size_t           i, k;
    const char     **cols[CHAT_LOG_NCOLS];
    const char      *saved;
    chat_job_t      *job;
    chat_db_stmt_t   st[2];

    rc = -1;
    memset(arrays, 0, sizeof(arrays));
    memset(cols, 0, sizeof(cols));

    nums = malloc(n * sizeof(*nums));
    hex = malloc(n * sizeof(*hex));
    for (c = 0; c < CHAT_LOG_NCOLS; c++) {
        cols[c] = malloc(n * sizeof(char *));
        if (cols[c] == NULL) {
            goto done;
        }
    }

    if (nums == NULL || hex == NULL) {
        goto done;
    }

    k = 0;

    for (i = 0; i < n; i++) {
        job = jobs[i];

        if (!chat_job_logged(job) || !job->ran) {
            continue;
        }

        hex[k][0] = '\\';
        hex[k][1] = 'x';
        chat_hex(job->hash, sizeof(job->hash), hex[k] + 2);

        cols[CHAT_LOG_KEY][k] = job->cmd->key;
        cols[CHAT_LOG_OP][k] = job->cmd->op;
        cols[CHAT_LOG_USER][k] = job->cmd->uid > 0
                                 ? chat_i64(nums[k][0], job->cmd->uid)
                                 : NULL;
        cols[CHAT_LOG_HASH][k] = hex[k];
        cols[CHAT_LOG_STATUS][k] = chat_i64(nums[k][1], job->status);
        cols[CHAT_LOG_REPLY][k] = job->stored;
        k++;
    }

    memset(st, 0, sizeof(st));

    if (k > 0) {
        for (c = 0; c < CHAT_LOG_NCOLS; c++) {
            arrays[c] = chat_db_text_array(cols[c], k);
            if (arrays[c] == NULL) {
                goto done;
            }
        }

        st[0].sql = chat_log_insert_sql;
        st[0].prepared = 1;
        st[0].nparams = CHAT_LOG_NCOLS;
        st[0].values = (const char *const *) arrays;
    }

    st[k > 0].sql = "COMMIT";

    /* a conflict is expected now and then: not an error to log */
    saved = db->expected;
    db->expected = "23505";
    rc = chat_db_pipeline(db, st, k > 0 ? 2 : 1);
    db->expected = saved;

    if (rc == 0) {
        PQclear(st[0].res);
        PQclear(st[1].res);

    } else if (strcmp(db->sqlstate, "23505") == 0) {
        chat_log_warn("a key of %zu was committed by another worker "
                      "meanwhile; running the batch again", k);
        rc = CHAT_JOB_CONFLICT;
    }

done:

    for (c = 0; c < CHAT_LOG_NCOLS; c++) {
        free(arrays[c]);
        free(cols[c]);
    }
    free(nums);
    free(hex);

    return rc;
}
