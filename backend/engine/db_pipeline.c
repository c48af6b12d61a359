/*
 * db_pipeline.c: several statements in one round trip, and the
 * transaction control that rides in front of the next statement.
 *
 * Pipelines.  chat_db_pipeline sends several statements in one round
 * trip (libpq's pipeline mode; the connection stays blocking): the
 * server still runs them one after the other, each in its own snapshot,
 * and skips the rest after a failure.  That is how a batch of commands
 * costs a constant number of round trips (command.c, op_msg.c): BEGIN
 * with the idempotency lookup, a lock with the statement that needs it,
 * the log INSERT with COMMIT.  Values too many for parameters of their
 * own travel as arrays (chat_db_text_array, chat_db_int_array), so a
 * statement's text, and its prepared plan, do not depend on the batch's
 * size.  A caller handing the connection to code that
 * sends its own pipeline can put statements in front of it
 * (chat_db_prefix).
 *
 * Transaction control rides along.  A BEGIN (chat_db_exec) and a group's
 * savepoints (db_group.c) are not sent on their own: they wait in
 * db->deferred and go in front of the next statement, in its pipeline,
 * and a BEGIN or a savepoint that nothing followed is simply dropped.  A
 * checkout's reservation and settlement each paid a round trip for
 * BEGIN, and a settlement in a group two more for its SAVEPOINT and
 * RELEASE; a round trip costs both processes a send, a receive and a
 * wake-up, and on this machine's virtual CPUs those system calls were a
 * quarter of the orders worker's CPU (perf).  What is deferred never
 * hides a failure: it fails, in front of the statement, with the
 * statement.
 *
 * Results are checked, and failures logged and kept, by db.c's
 * chat_db_check, as for a statement on its own.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "db_internal.h"
#include "log.h"


/* deferred statements are told apart by address: one copy of each text */
const char  chat_db_begin_sql[] = "BEGIN";


/* ------------------------------------------------------------------------
 * Pipelines
 * --------------------------------------------------------------------- */

/* Gives up on a connection whose pipeline is out of step. */
static int
chat_db_pipeline_lost(chat_db_t *db, chat_db_stmt_t *stmts, size_t n,
    const char *why)
{
    size_t  i;

    for (i = 0; i < n; i++) {
        PQclear(stmts[i].res);
        stmts[i].res = NULL;
    }

    if (db->conn != NULL) {
        chat_log_error("postgres: pipeline: %s; closing the connection", why);
        chat_db_close(db);
    }

    if (db->sqlstate[0] == '\0') {
        strcpy(db->sqlstate, "08006");
    }

    return -1;
}


void
chat_db_prefix(chat_db_t *db, chat_db_stmt_t *stmts, size_t n)
{
    size_t  i;

    for (i = 0; i < n; i++) {
        stmts[i].res = NULL;
    }

    db->prefix = stmts;
    db->nprefix = n;
}


/* chat_db_pipeline of the deferred control statements, the prefix's
 * statements and then stmts[0..n), in that order. */
static int
chat_db_pipeline_prefixed(chat_db_t *db, chat_db_stmt_t *stmts, size_t n)
{
    int              rc;
    size_t           i, nd, np;
    chat_db_stmt_t  *all, *pre;

    pre = db->prefix;
    np = db->nprefix;
    nd = db->ndeferred;
    db->prefix = NULL;
    db->nprefix = 0;
    db->ndeferred = 0;

    all = calloc(nd + np + n, sizeof(chat_db_stmt_t));
    if (all == NULL) {
        return -1;
    }

    for (i = 0; i < nd; i++) {
        all[i].sql = db->deferred[i];
    }
    if (np > 0) {
        memcpy(all + nd, pre, np * sizeof(chat_db_stmt_t));
    }
    if (n > 0) {
        memcpy(all + nd + np, stmts, n * sizeof(chat_db_stmt_t));
    }

    rc = chat_db_pipeline_raw(db, all, nd + np + n);

    for (i = 0; i < nd; i++) {
        PQclear(all[i].res);
    }
    if (np > 0) {
        memcpy(pre, all + nd, np * sizeof(chat_db_stmt_t));
    }
    if (n > 0) {
        memcpy(stmts, all + nd + np, n * sizeof(chat_db_stmt_t));
    }
    free(all);

    return rc;
}


int
chat_db_pipeline(chat_db_t *db, chat_db_stmt_t *stmts, size_t n)
{
    int  rc;

    if (chat_db_group_enter(db) != 0) {
        return -1;
    }

    rc = chat_db_pipeline_raw(db, stmts, n);
    chat_db_group_leave(db, rc == 0);

    return rc;
}


int
chat_db_pipeline_raw(chat_db_t *db, chat_db_stmt_t *stmts, size_t n)
{
    int              slot, failed;
    char             name[24];
    size_t           i;
    PGresult        *res;
    ExecStatusType   st;

    if (db->nprefix > 0 || db->ndeferred > 0) {
        return chat_db_pipeline_prefixed(db, stmts, n);
    }

    if (n == 0) {
        return 0;
    }

    db->sqlstate[0] = '\0';

    for (i = 0; i < n; i++) {
        stmts[i].res = NULL;
    }

    if (db->conn == NULL) {
        strcpy(db->sqlstate, "08003");
        return -1;
    }

    /* a hot statement new to this connection is prepared first, on its
     * own round trip: once per connection */
    for (i = 0; i < n; i++) {
        if (stmts[i].prepared
            && chat_db_prepare(db, stmts[i].sql, stmts[i].nparams) < 0)
        {
            return -1;
        }
    }

    if (PQenterPipelineMode(db->conn) != 1) {
        return chat_db_pipeline_lost(db, stmts, n, "cannot enter");
    }

    for (i = 0; i < n; i++) {
        slot = stmts[i].prepared ? chat_db_prepare(db, stmts[i].sql,
                                                   stmts[i].nparams)
                                 : CHAT_DB_PREPARED_MAX;

        if (slot < CHAT_DB_PREPARED_MAX) {
            snprintf(name, sizeof(name), "chat_%d", slot);

            if (PQsendQueryPrepared(db->conn, name, stmts[i].nparams,
                                    stmts[i].values, stmts[i].lengths,
                                    stmts[i].formats, 0) != 1)
            {
                return chat_db_pipeline_lost(db, stmts, n,
                                             PQerrorMessage(db->conn));
            }

        } else if (PQsendQueryParams(db->conn, stmts[i].sql,
                                     stmts[i].nparams, NULL, stmts[i].values,
                                     stmts[i].lengths, stmts[i].formats, 0)
                   != 1)
        {
            return chat_db_pipeline_lost(db, stmts, n,
                                         PQerrorMessage(db->conn));
        }
    }

    if (PQpipelineSync(db->conn) != 1) {
        return chat_db_pipeline_lost(db, stmts, n, PQerrorMessage(db->conn));
    }

    db->round_trips++;

    /* each statement's result, then the NULL that ends it; after a
     * failure the server skips the rest (PGRES_PIPELINE_ABORTED) */
    failed = 0;

    for (i = 0; i < n; i++) {
        res = PQgetResult(db->conn);
        st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;

        if (st == PGRES_PIPELINE_ABORTED) {
            PQclear(res);

        } else {
            res = chat_db_check(db, res, stmts[i].sql);
            if (res == NULL) {
                if (db->conn == NULL) {         /* closed by the check */
                    return chat_db_pipeline_lost(db, stmts, n, "lost");
                }
                failed = 1;
            }
            stmts[i].res = res;
        }

        while ((res = PQgetResult(db->conn)) != NULL) {
            if (PQstatus(db->conn) != CONNECTION_OK) {
                PQclear(res);
                return chat_db_pipeline_lost(db, stmts, n, "lost");
            }
            PQclear(res);           /* more than one result: not ours */
        }
    }

    res = PQgetResult(db->conn);
    st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
    PQclear(res);

    if (st != PGRES_PIPELINE_SYNC || PQexitPipelineMode(db->conn) != 1) {
        return chat_db_pipeline_lost(db, stmts, n, "out of step at the end");
    }

    if (failed) {
        for (i = 0; i < n; i++) {
            PQclear(stmts[i].res);
            stmts[i].res = NULL;
        }
        return -1;
    }

    return 0;
}


char *
chat_db_text_array(const char *const *v, size_t n)
{
    char        *s, *p;
    size_t       i, len;
    const char  *c;

    len = 3;
    for (i = 0; i < n; i++) {
        len += v[i] ? 2 * strlen(v[i]) + 3 : 5;
    }

    s = malloc(len);
    if (s == NULL) {
        return NULL;
    }

    p = s;
    *p++ = '{';

    for (i = 0; i < n; i++) {
        if (i > 0) {
            *p++ = ',';
        }

        if (v[i] == NULL) {
            memcpy(p, "NULL", 4);
            p += 4;
            continue;
        }

        *p++ = '"';
        for (c = v[i]; *c != '\0'; c++) {
            if (*c == '"' || *c == '\\') {
                *p++ = '\\';
            }
            *p++ = *c;
        }
        *p++ = '"';
    }

    *p++ = '}';
    *p = '\0';

    return s;
}


/* ------------------------------------------------------------------------
 * Transaction control that waits for the next statement
 * --------------------------------------------------------------------- */

/* Queues sql, a fixed control statement, for the front of the next
 * statement's round trip. */
void
chat_db_defer(chat_db_t *db, const char *sql)
{
    if (db->ndeferred == sizeof(db->deferred) / sizeof(db->deferred[0])) {
        (void) chat_db_pipeline_raw(db, NULL, 0);   /* not expected */
    }

    db->deferred[db->ndeferred++] = sql;
}


/* When the last statement queued is sql (nothing has run since), takes it
 * back and returns 1; else 0. */
int
chat_db_undefer(chat_db_t *db, const char *sql)
{
    if (db->ndeferred > 0 && db->deferred[db->ndeferred - 1] == sql) {
        db->ndeferred--;
        return 1;
    }

    return 0;
}


char *
chat_db_int_array(const int64_t *v, size_t n)
{
    char    *s;
    size_t   i, len;

    s = malloc(n * 21 + 3);
    if (s == NULL) {
        return NULL;
    }

    len = 0;
    s[len++] = '{';

    for (i = 0; i < n; i++) {
        len += (size_t) sprintf(s + len, "%s%lld", i ? "," : "",
                                (long long) v[i]);
    }

    s[len++] = '}';
    s[len] = '\0';

    return s;
}
