/*
 * command_log.c: the idempotency log (sql/001_accounts.sql) as a batch of
 * jobs uses it.  command.c says when each step runs and why the whole is
 * at most once; this file only speaks SQL:
 *
 *   - lookup: one SELECT for every key of the batch.  A key found means
 *     the command already happened: the job is answered from the stored
 *     status and reply when the request hash (SHA-256 of op "\n" body,
 *     compared as hex) matches, else 409 idempotency_key_reused.
 *   - same key twice in one batch: the later job does not run; it is
 *     answered like a replay of the earlier one.
 *   - log: one multi-row INSERT ... ON CONFLICT (key) DO NOTHING
 *     RETURNING key for every job that ran, with its final status and
 *     reply.  A row missing from RETURNING is a key another transaction
 *     committed meanwhile: CHAT_JOB_CONFLICT, and the caller rolls back.
 *
 * The statements are built for the batch's size (one placeholder per
 * value; values always travel as parameters, the hash in binary).
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


/*
 * Looks the batch's keys up in command_log; jobs whose key is there are
 * resolved from it (the stored reply, or 409 when the request differs).
 */
int
chat_jobs_lookup(chat_db_t *db, chat_job_t **jobs, size_t n)
{
    int           i, rows;
    char         *sql, *p, hex[65];
    size_t        j, k;
    PGresult     *res;
    const char  **values;
    chat_job_t   *job;

    values = malloc(n * sizeof(char *));
    sql = malloc(128 + n * 12);
    if (values == NULL || sql == NULL) {
        free(values);
        free(sql);
        return -1;
    }

    p = sql + sprintf(sql, "SELECT key, status, reply, "
                           "encode(request_hash, 'hex') "
                           "FROM command_log WHERE key IN (");
    k = 0;

    for (j = 0; j < n; j++) {
        if (chat_job_logged(jobs[j]) && jobs[j]->same_key == NULL) {
            values[k] = jobs[j]->cmd->key;
            k++;
            p += sprintf(p, "%s$%zu", k > 1 ? ", " : "", k);
        }
    }

    strcpy(p, ")");

    res = NULL;
    rows = 0;

    if (k > 0) {
        res = chat_db_query(db, sql, (int) k, values, NULL, NULL);
        if (res == NULL) {
            free(values);
            free(sql);
            return -1;
        }
        rows = PQntuples(res);
    }

    free(values);
    free(sql);

    for (i = 0; i < rows; i++) {
        if (PQgetisnull(res, i, 1) || PQgetisnull(res, i, 2)) {
            chat_log_error("command_log row for key %s is unfinished",
                           PQgetvalue(res, i, 0));
            PQclear(res);
            return -1;
        }

        for (j = 0; j < n; j++) {
            job = jobs[j];

            if (!chat_job_logged(job) || job->resolved
                || strcmp(job->cmd->key, PQgetvalue(res, i, 0)) != 0)
            {
                continue;
            }

            chat_hex(job->hash, sizeof(job->hash), hex);

            if (strcmp(hex, PQgetvalue(res, i, 3)) != 0) {
                if (chat_job_key_reused(job) != 0) {
                    PQclear(res);
                    return -1;
                }
                continue;
            }

            chat_log_debug("key %s: replaying stored reply", job->cmd->key);

            job->status = atoi(PQgetvalue(res, i, 1));
            job->stored = strdup(PQgetvalue(res, i, 2));
            job->resolved = 1;

            if (job->stored == NULL) {
                PQclear(res);
                return -1;
            }
        }
    }

    PQclear(res);
    return 0;
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


/*
 * Logs every job that ran now, in one INSERT.  0, CHAT_JOB_CONFLICT when
 * some key was committed by another transaction meanwhile, -1.
 */
int
chat_jobs_log(chat_db_t *db, chat_job_t **jobs, size_t n)
{
    int           rc, *lengths, *formats;
    char         *sql, *p, (*nums)[2][24];
    size_t        i, k, m;
    PGresult     *res;
    const char  **values;
    chat_job_t   *job;

    rc = -1;

    values = malloc(6 * n * sizeof(char *));
    lengths = calloc(6 * n, sizeof(int));
    formats = calloc(6 * n, sizeof(int));
    nums = malloc(n * sizeof(*nums));
    sql = malloc(256 + n * 96);

    if (values == NULL || lengths == NULL || formats == NULL || nums == NULL
        || sql == NULL)
    {
        goto done;
    }

    p = sql + sprintf(sql, "INSERT INTO command_log "
                           "(key, op, user_id, request_hash, status, reply) "
                           "VALUES ");
    k = 0;
    m = 0;

    for (i = 0; i < n; i++) {
        job = jobs[i];

        if (!chat_job_logged(job) || !job->ran) {
            continue;
        }

        values[m] = job->cmd->key;
        values[m + 1] = job->cmd->op;
        values[m + 2] = job->cmd->uid > 0 ? chat_i64(nums[k][0],
                                                     job->cmd->uid)
                                          : NULL;
        values[m + 3] = (const char *) job->hash;
        lengths[m + 3] = sizeof(job->hash);
        formats[m + 3] = 1;
        values[m + 4] = chat_i64(nums[k][1], job->status);
        values[m + 5] = job->stored;

        p += sprintf(p, "%s($%zu, $%zu, $%zu::bigint, $%zu::bytea, "
                        "$%zu::int, $%zu)",
                     k ? ", " : "", m + 1, m + 2, m + 3, m + 4, m + 5,
                     m + 6);
        k++;
        m += 6;
    }

    if (k == 0) {
        rc = 0;
        goto done;
    }

    strcpy(p, " ON CONFLICT (key) DO NOTHING RETURNING key");

    res = chat_db_query(db, sql, (int) m, values, lengths, formats);
    if (res == NULL) {
        goto done;
    }

    rc = 0;

    if ((size_t) PQntuples(res) != k) {
        chat_log_warn("%zu of %zu keys were committed by another worker "
                      "meanwhile; running the batch again",
                      k - (size_t) PQntuples(res), k);
        rc = CHAT_JOB_CONFLICT;
    }

    PQclear(res);

done:

    free(values);
    free(lengths);
    free(formats);
    free(nums);
    free(sql);

    return rc;
}
