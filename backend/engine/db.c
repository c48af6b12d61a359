/*
 * db.c: a worker's PostgreSQL connection and the one way statements are
 * run on it.
 *
 * Connection.  One blocking libpq connection per worker.  A statement
 * that fails on a broken connection closes it; the worker then stops
 * reading commands and calls chat_db_reconnect until it is back (100 ms
 * doubling to 5 s, with jitter so a restarted server is not hit by every
 * worker at the same instant).
 *
 * Statements.  Every statement goes through chat_db_query (parameters
 * always travel separately, PQexecParams) or, for fixed text without
 * parameters, chat_db_exec (PQexec, so one round trip may carry several
 * statements, e.g. "RELEASE SAVEPOINT op; SAVEPOINT op").  Every result
 * status is checked, every result is cleared, and a failure is logged
 * once, with its SQLSTATE, which is also kept in db->sqlstate for the
 * caller to judge (a serialisation failure is worth retrying, a syntax
 * error is not).
 *
 * Hot statements (msg.send's, history, conversation objects) go through
 * chat_db_query_prepared: parsed and planned once per connection, then
 * executed by name.  Planning the message insert costs more than running
 * it (0.25 ms against 0.18 ms).  The session sets plan_cache_mode =
 * force_generic_plan, which touches only those prepared statements: left
 * to itself PostgreSQL keeps re-planning them, because a generic plan
 * over the 16 message partitions looks dearer than a pruned custom one,
 * although it prunes them at run time just as well ("Subplans Removed").
 *
 * Pipelines.  chat_db_pipeline sends several statements in one round
 * trip (libpq's pipeline mode; the connection stays blocking): the
 * server still runs them one after the other, each in its own snapshot,
 * and skips the rest after a failure.  That is how a batch of commands
 * costs a constant number of round trips (command.c, op_msg.c): BEGIN
 * with the idempotency lookup, a lock with the statement that needs it,
 * the log INSERT with COMMIT.  Values too many for parameters of their
 * own travel as arrays (chat_db_text_array; chat_sql_int_array in
 * conv.c), so a statement's text, and its prepared plan, do not depend
 * on the batch's size.
 *
 * Poolers.  Behind pgbouncer in transaction mode (--pg-pooler
 * transaction) each transaction may run on another server session, so
 * nothing may live in the session: the SETs below are not sent (the
 * server's or the pooler's settings must carry them; the connection
 * checks synchronous_commit and statement_timeout and refuses an unsafe
 * one), and no statement is prepared by name (pgbouncer 1.18, Debian
 * bookworm's, does not carry named statements from one server session to
 * another; 1.21 can, with max_prepared_statements).  Hot statements then
 * run unnamed, parsed and planned each time (custom plans, so the
 * plan_cache_mode SET is not needed either), at the cost measured above.
 * Pipelines are fine: a pipeline ends in one Sync, and the pooler keeps
 * its server session until the ReadyForQuery that answers it.
 *
 * Transaction control rides along.  A BEGIN (chat_db_exec) and a group's
 * savepoints are not sent on their own: they wait in db->deferred and go
 * in front of the next statement, in its pipeline, and a BEGIN or a
 * savepoint that nothing followed is simply dropped.  A checkout's
 * reservation and settlement each paid a round trip for BEGIN, and a
 * settlement in a group two more for its SAVEPOINT and RELEASE; a round
 * trip costs both processes a send, a receive and a wake-up, and on
 * this machine's virtual CPUs those system calls were a quarter of the
 * orders worker's CPU (perf).  What is deferred never hides a failure:
 * it fails, in front of the statement, with the statement.
 *
 * Group commit.  Steps that run their own transactions (suspend.c's
 * resume steps) can share one: see the section at the end.
 *
 * What it does not do: transactions of commands (command.c), or pool
 * connections.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "log.h"


#define CHAT_DB_BACKOFF_MIN_MS  100
#define CHAT_DB_BACKOFF_MAX_MS  5000

static PGresult *chat_db_query_raw(chat_db_t *db, const char *sql,
    int nparams, const char *const *values, const int *lengths,
    const int *formats);
static PGresult *chat_db_query_prepared_raw(chat_db_t *db, const char *sql,
    int nparams, const char *const *values, const int *lengths,
    const int *formats);
static int chat_db_exec_raw(chat_db_t *db, const char *sql);
static int chat_db_pipeline_raw(chat_db_t *db, chat_db_stmt_t *stmts,
    size_t n);
static int chat_db_group_enter(chat_db_t *db);
static void chat_db_group_leave(chat_db_t *db, int ok);
static int chat_db_group_control(chat_db_t *db, const char *sql);
static void chat_db_defer(chat_db_t *db, const char *sql);
static int chat_db_undefer(chat_db_t *db, const char *sql);

static const char  chat_db_begin_sql[] = "BEGIN";
/* the process's connections to CHAT_PG go through a transaction pooler:
 * what chat_db_init gives each connection (db->pooled) */
static int  chat_db_pooled;


/* ------------------------------------------------------------------------
 * Connection
 * --------------------------------------------------------------------- */

/* libpq messages span lines; a log record must not.  Copies msg into buf
 * with newlines and tabs turned into spaces and the tail trimmed. */
static const char *
chat_db_one_line(const char *msg, char *buf, size_t size)
{
    size_t  i;

    for (i = 0; msg[i] != '\0' && i + 1 < size; i++) {
        buf[i] = (msg[i] == '\n' || msg[i] == '\t') ? ' ' : msg[i];
    }

    while (i > 0 && buf[i - 1] == ' ') {
        i--;
    }

    buf[i] = '\0';
    return buf;
}


/* Server notices go to our log instead of libpq's bare stderr lines. */
static void
chat_db_notice(void *arg, const char *message)
{
    char  buf[512];

    (void) arg;
    chat_log_info("postgres: %s", chat_db_one_line(message, buf, sizeof(buf)));
}


void
chat_db_use_pooler(int on)
{
    chat_db_pooled = on;
}


void
chat_db_init(chat_db_t *db, const char *conninfo, const char *app_name)
{
    memset(db, 0, sizeof(*db));
    db->conninfo = conninfo;
    db->app_name = app_name;
    db->pooled = chat_db_pooled;
}


/*
 * Refuses a server that can lose or corrupt committed data in a crash:
 * with fsync off a commit is acknowledged before it reaches the disk, and
 * with full_page_writes off a torn page cannot be repaired.  Either breaks
 * "nothing acknowledged is ever lost", and neither can be overridden per
 * session, so we refuse to run rather than promise what we cannot keep.
 * Returns 0 when safe, -1 (logged) when not or when the check failed.
 */
static int
chat_db_durable(chat_db_t *db)
{
    int        rc;
    PGresult  *res;

    res = chat_db_query(db, "SELECT current_setting('fsync'), "
                            "current_setting('full_page_writes'), "
                            "current_setting('synchronous_commit'), "
                            "current_setting('statement_timeout')",
                        0, NULL, NULL, NULL);
    if (res == NULL) {
        return -1;
    }

    rc = 0;

    /* behind a pooler the session cannot SET them (chat_db_connect): the
     * server's settings are what the commits get */
    if (db->pooled && strcmp(PQgetvalue(res, 0, 2), "off") == 0) {
        chat_log_error("postgres: synchronous_commit is off behind the "
                       "pooler: a crash can lose acknowledged messages; "
                       "refusing to run (set it on for the role or in "
                       "the pooler's connect_query)");
        rc = -1;
    }

    if (db->pooled && strcmp(PQgetvalue(res, 0, 3), "0") == 0) {
        chat_log_warn("postgres: statement_timeout is 0 behind the pooler: "
                      "a statement stuck on a lock holds its worker (set "
                      "it for the role or in the pooler's connect_query)");
    }

    if (strcmp(PQgetvalue(res, 0, 0), "on") != 0) {
        chat_log_error("postgres: fsync is off: a crash can lose committed "
                       "messages and orders; refusing to run (set fsync = on "
                       "in postgresql.conf)");
        rc = -1;
    }

    if (strcmp(PQgetvalue(res, 0, 1), "on") != 0) {
        chat_log_error("postgres: full_page_writes is off: a crash can "
                       "corrupt committed data; refusing to run (set "
                       "full_page_writes = on in postgresql.conf)");
        rc = -1;
    }

    PQclear(res);
    return rc;
}


int
chat_db_connect(chat_db_t *db)
{
    char         buf[512];
    const char  *keys[4], *values[4];

    chat_db_close(db);

    /* ours first: with expand_dbname, settings in the user's conninfo
     * (processed after) win */
    keys[0] = "application_name";   values[0] = db->app_name;
    keys[1] = "connect_timeout";    values[1] = "5";
    keys[2] = "dbname";             values[2] = db->conninfo;
    keys[3] = NULL;                 values[3] = NULL;

    db->conn = PQconnectdbParams(keys, values, 1);

    if (db->conn == NULL || PQstatus(db->conn) != CONNECTION_OK) {
        chat_log_error("postgres: connect failed: %s",
                       db->conn ? chat_db_one_line(PQerrorMessage(db->conn),
                                                   buf, sizeof(buf))
                                : "out of memory");
        chat_db_close(db);
        return -1;
    }

    PQsetNoticeProcessor(db->conn, chat_db_notice, NULL);

    if (chat_db_durable(db) != 0) {
        chat_db_close(db);
        return CHAT_DB_UNSAFE;
    }

    /* a statement that hangs (a lock held elsewhere) is cut off, so the
     * worker always comes back to its loop and its heartbeat; prepared
     * statements (only hot ones are) plan once, see above; and a commit
     * is only reported once it is on disk, whatever the server's default
     * (an acknowledged message must survive a PostgreSQL crash) */
    if (chat_db_session_set(db, "SET statement_timeout = '30s'; "
                                "SET plan_cache_mode = force_generic_plan; "
                                "SET synchronous_commit = on") != 0)
    {
        chat_db_close(db);
        return -1;
    }

    db->backoff_ms = 0;
    db->last_ok_ms = chat_mono_ms();

    chat_log_info("postgres: connected (server %d%s)",
                  PQserverVersion(db->conn),
                  db->pooled ? ", through a transaction pooler" : "");

    return 0;
}


int
chat_db_reconnect(chat_db_t *db)
{
    int      rc;
    int64_t  now, jitter;

    if (chat_db_ok(db)) {
        return 0;
    }

    now = chat_mono_ms();

    if (now < db->next_try_ms) {
        return -1;
    }

    rc = chat_db_connect(db);
    if (rc != -1) {
        return rc;                      /* connected, or CHAT_DB_UNSAFE */
    }

    db->backoff_ms = db->backoff_ms ? db->backoff_ms * 2
                                    : CHAT_DB_BACKOFF_MIN_MS;
    if (db->backoff_ms > CHAT_DB_BACKOFF_MAX_MS) {
        db->backoff_ms = CHAT_DB_BACKOFF_MAX_MS;
    }

    jitter = random() % (db->backoff_ms / 4 + 1);
    db->next_try_ms = now + db->backoff_ms - db->backoff_ms / 8 + jitter;

    chat_log_warn("postgres: retrying in %lld ms",
                  (long long) (db->next_try_ms - now));

    return -1;
}


int
chat_db_ok(const chat_db_t *db)
{
    return db->conn != NULL && PQstatus(db->conn) == CONNECTION_OK;
}


int
chat_db_ping(chat_db_t *db)
{
    return chat_db_exec(db, "SELECT 1");
}


void
chat_db_close(chat_db_t *db)
{
    if (db->conn != NULL) {
        PQfinish(db->conn);
        db->conn = NULL;
    }

    db->nprepared = 0;          /* they died with the session */
    db->prefix = NULL;
    db->nprefix = 0;
    db->ndeferred = 0;          /* and the transaction they were for */
}


/* ------------------------------------------------------------------------
 * Statements
 * --------------------------------------------------------------------- */

/*
 * Checks the result of sql: returns it when the status is PGRES_COMMAND_OK
 * or PGRES_TUPLES_OK; else logs, remembers the SQLSTATE, clears it,
 * closes a broken connection and returns NULL.
 */
static PGresult *
chat_db_check(chat_db_t *db, PGresult *res, const char *sql)
{
    char             buf[512];
    const char      *state, *msg;
    ExecStatusType   st;

    st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;

    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
        db->last_ok_ms = chat_mono_ms();
        return res;
    }

    state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    msg = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    if (msg == NULL) {
        msg = res ? PQresultErrorMessage(res) : PQerrorMessage(db->conn);
    }

    if (state != NULL && strlen(state) == 5) {
        memcpy(db->sqlstate, state, 6);
    } else {
        strcpy(db->sqlstate, "08006");  /* connection_failure */
    }

    chat_log(db->expected && strcmp(db->expected, db->sqlstate) == 0
             ? CHAT_LOG_DEBUG : CHAT_LOG_ERROR,
             "postgres: %s [%s] in: %.120s",
             msg[0] ? chat_db_one_line(msg, buf, sizeof(buf))
                    : PQresStatus(st),
             db->sqlstate, sql);

    PQclear(res);

    if (PQstatus(db->conn) != CONNECTION_OK) {
        chat_log_error("postgres: connection lost");
        chat_db_close(db);
    }

    return NULL;
}


PGresult *
chat_db_query(chat_db_t *db, const char *sql, int nparams,
    const char *const *values, const int *lengths, const int *formats)
{
    PGresult  *res;

    if (chat_db_group_enter(db) != 0) {
        return NULL;
    }

    res = chat_db_query_raw(db, sql, nparams, values, lengths, formats);
    chat_db_group_leave(db, res != NULL);

    return res;
}


/* One statement in a pipeline behind the deferred control statements:
 * its result, or NULL as chat_db_query. */
static PGresult *
chat_db_query_along(chat_db_t *db, const char *sql, int prepared,
    int nparams, const char *const *values, const int *lengths,
    const int *formats)
{
    chat_db_stmt_t  st;

    memset(&st, 0, sizeof(st));
    st.sql = sql;
    st.prepared = prepared;
    st.nparams = nparams;
    st.values = values;
    st.lengths = lengths;
    st.formats = formats;

    return chat_db_pipeline_raw(db, &st, 1) == 0 ? st.res : NULL;
}


static PGresult *
chat_db_query_raw(chat_db_t *db, const char *sql, int nparams,
    const char *const *values, const int *lengths, const int *formats)
{
    /* deferred control travels with the statement */
    if (db->ndeferred > 0 && db->nprefix == 0) {
        return chat_db_query_along(db, sql, 0, nparams, values, lengths,
                                   formats);
    }

    /* what was to go first goes first */
    if (db->nprefix > 0 && chat_db_pipeline_raw(db, NULL, 0) != 0) {
        return NULL;
    }

    db->sqlstate[0] = '\0';

    if (db->conn == NULL) {
        strcpy(db->sqlstate, "08003");  /* connection_does_not_exist */
        return NULL;
    }

    db->round_trips++;

    return chat_db_check(db, PQexecParams(db->conn, sql, nparams, NULL,
                                          values, lengths, formats, 0),
                         sql);
}


/*
 * The slot of a hot statement (by the address of its text), prepared on
 * this connection now if it is new: its index, CHAT_DB_PREPARED_MAX when
 * the table is full (the statement then runs unprepared), or -1 when the
 * PREPARE failed (handled as in chat_db_check).
 */
static int
chat_db_prepare(chat_db_t *db, const char *sql, int nparams)
{
    int        i;
    char       name[24];
    PGresult  *res;

    if (db->pooled) {
        return CHAT_DB_PREPARED_MAX;    /* unnamed: see the top */
    }

    for (i = 0; i < db->nprepared && db->prepared[i] != sql; i++) {
        /* find it */
    }

    if (i == CHAT_DB_PREPARED_MAX || i < db->nprepared) {
        return i;
    }

    snprintf(name, sizeof(name), "chat_%d", i);

    db->round_trips++;
    res = chat_db_check(db, PQprepare(db->conn, name, sql, nparams, NULL),
                        sql);
    if (res == NULL) {
        return -1;
    }

    PQclear(res);
    db->prepared[db->nprepared++] = sql;

    return i;
}


PGresult *
chat_db_query_prepared(chat_db_t *db, const char *sql, int nparams,
    const char *const *values, const int *lengths, const int *formats)
{
    PGresult  *res;

    if (chat_db_group_enter(db) != 0) {
        return NULL;
    }

    res = chat_db_query_prepared_raw(db, sql, nparams, values, lengths,
                                     formats);
    chat_db_group_leave(db, res != NULL);

    return res;
}


static PGresult *
chat_db_query_prepared_raw(chat_db_t *db, const char *sql, int nparams,
    const char *const *values, const int *lengths, const int *formats)
{
    int   i;
    char  name[24];

    /* deferred control travels with the statement */
    if (db->ndeferred > 0 && db->nprefix == 0) {
        return chat_db_query_along(db, sql, 1, nparams, values, lengths,
                                   formats);
    }

    if (db->nprefix > 0 && chat_db_pipeline_raw(db, NULL, 0) != 0) {
        return NULL;
    }

    db->sqlstate[0] = '\0';

    if (db->conn == NULL) {
        strcpy(db->sqlstate, "08003");
        return NULL;
    }

    i = chat_db_prepare(db, sql, nparams);
    if (i < 0) {
        return NULL;
    }

    if (i == CHAT_DB_PREPARED_MAX) {
        return chat_db_query_raw(db, sql, nparams, values, lengths, formats);
    }

    snprintf(name, sizeof(name), "chat_%d", i);
    db->round_trips++;

    return chat_db_check(db, PQexecPrepared(db->conn, name, nparams, values,
                                            lengths, formats, 0),
                         sql);
}


int
chat_db_exec(chat_db_t *db, const char *sql)
{
    int  rc;

    if (db->group && !db->group_pass) {
        rc = chat_db_group_control(db, sql);
        if (rc != 1) {
            return rc;
        }

    } else if (strcmp(sql, "BEGIN") == 0) {
        /* sent with the next statement */
        if (db->conn == NULL) {
            strcpy(db->sqlstate, "08003");
            return -1;
        }
        chat_db_defer(db, chat_db_begin_sql);
        return 0;

    } else if ((strcmp(sql, "COMMIT") == 0 || strcmp(sql, "ROLLBACK") == 0)
               && chat_db_undefer(db, chat_db_begin_sql))
    {
        return 0;       /* nothing ran since its BEGIN: nothing to end */
    }

    if (chat_db_group_enter(db) != 0) {
        return -1;
    }

    rc = chat_db_exec_raw(db, sql);
    chat_db_group_leave(db, rc == 0);

    return rc;
}


static int
chat_db_exec_raw(chat_db_t *db, const char *sql)
{
    PGresult  *res;

    /* fixed text may hold several statements, which a pipeline does not
     * take: what is deferred goes first, on its own */
    if ((db->nprefix > 0 || db->ndeferred > 0)
        && chat_db_pipeline_raw(db, NULL, 0) != 0)
    {
        return -1;
    }

    db->sqlstate[0] = '\0';

    if (db->conn == NULL) {
        strcpy(db->sqlstate, "08003");
        return -1;
    }

    db->round_trips++;
    res = chat_db_check(db, PQexec(db->conn, sql), sql);
    if (res == NULL) {
        return -1;
    }

    PQclear(res);
    return 0;
}


int
chat_db_session_set(chat_db_t *db, const char *sql)
{
    return db->pooled ? 0 : chat_db_exec(db, sql);
}


int
chat_db_retryable(const chat_db_t *db)
{
    return strcmp(db->sqlstate, "40001") == 0      /* serialization */
           || strcmp(db->sqlstate, "40P01") == 0;  /* deadlock */
}


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


static int
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
 * Group commit
 *
 * Why.  A checkout commits its settlement on its own, and the payment
 * processor answers many checkouts within the same few milliseconds: on
 * this kind of disk a WAL flush is 1-5 ms and the settlements queued
 * behind one another's flushes (pg_stat_activity: WALSync, WALWrite).
 * The worker's chat batch already shares one transaction among its
 * commands (command.c); this gives the same to steps that manage their
 * own transactions (suspend.c's resume steps and tasks), without changing
 * them: their transaction control maps onto one savepoint.
 *
 * The savepoint is called chat_step; a step must not use that name.
 * --------------------------------------------------------------------- */

/* deferred ones are told apart by address: one copy of each text */
static const char  chat_db_step_begin[] = "SAVEPOINT chat_step";
static const char  chat_db_step_release[] = "RELEASE SAVEPOINT chat_step";
static const char  chat_db_step_undo[] = "ROLLBACK TO SAVEPOINT chat_step; "
                                         "RELEASE SAVEPOINT chat_step";


/* Queues sql, a fixed control statement, for the front of the next
 * statement's round trip. */
static void
chat_db_defer(chat_db_t *db, const char *sql)
{
    if (db->ndeferred == sizeof(db->deferred) / sizeof(db->deferred[0])) {
        (void) chat_db_pipeline_raw(db, NULL, 0);   /* not expected */
    }

    db->deferred[db->ndeferred++] = sql;
}


/* When the last statement queued is sql (nothing has run since), takes it
 * back and returns 1; else 0. */
static int
chat_db_undefer(chat_db_t *db, const char *sql)
{
    if (db->ndeferred > 0 && db->deferred[db->ndeferred - 1] == sql) {
        db->ndeferred--;
        return 1;
    }

    return 0;
}

void
chat_db_group_begin(chat_db_t *db)
{
    db->group = 1;
    db->group_open = 0;
    db->group_step = 0;
    db->group_pass = 0;
}


/* Runs the group's own statement sql (BEGIN, SAVEPOINT...).  0 or -1. */
static int
chat_db_group_run(chat_db_t *db, const char *sql)
{
    int  rc;

    db->group_pass = 1;
    rc = chat_db_exec_raw(db, sql);
    db->group_pass = 0;

    return rc;
}


/* chat_db_group_run, keeping db->sqlstate as the step left it (a step
 * that rolls back after a failure may still look at it). */
static int
chat_db_group_run_keep(chat_db_t *db, const char *sql)
{
    int   rc;
    char  state[sizeof(db->sqlstate)];

    memcpy(state, db->sqlstate, sizeof(state));
    rc = chat_db_group_run(db, sql);
    if (rc == 0) {
        memcpy(db->sqlstate, state, sizeof(state));
    }

    return rc;
}


/* Before a statement: the group's BEGIN if it is the first, and a
 * savepoint when the statement is not inside a step's own BEGIN.  0, or
 * -1 (the statement must not run). */
static int
chat_db_group_enter(chat_db_t *db)
{
    if (!db->group || db->group_pass) {
        return 0;
    }

    if (db->conn == NULL) {
        strcpy(db->sqlstate, "08003");
        return -1;
    }

    /* both go with the statement (deferred) */
    if (!db->group_open) {
        chat_db_defer(db, chat_db_begin_sql);
        db->group_open = 1;
    }

    if (!db->group_step) {
        chat_db_defer(db, chat_db_step_begin);
    }

    return 0;
}


/* After it: a statement on its own is released (with the next statement,
 * or by the COMMIT), or undone (now). */
static void
chat_db_group_leave(chat_db_t *db, int ok)
{
    if (!db->group || db->group_pass || db->group_step || db->conn == NULL) {
        return;
    }

    if (ok) {
        chat_db_defer(db, chat_db_step_release);
        return;
    }

    /* the caller judges the statement's failure, not this one's */
    (void) chat_db_group_run_keep(db, chat_db_step_undo);
}


/* A step's transaction control in a group: 0 or -1 when it was mapped,
 * 1 when sql is something else (to run as a statement). */
static int
chat_db_group_control(chat_db_t *db, const char *sql)
{
    if (strcmp(sql, "BEGIN") == 0) {
        if (db->group_step) {
            chat_log_error("postgres: BEGIN inside a step's transaction");
            return -1;
        }
        /* the group's BEGIN if need be, and the step's savepoint */
        if (chat_db_group_enter(db) != 0) {
            return -1;
        }
        db->group_step = 1;
        return 0;
    }

    if (strcmp(sql, "COMMIT") == 0 || strcmp(sql, "ROLLBACK") == 0) {
        if (!db->group_step) {
            return 0;   /* a statement of its own: done with it already */
        }
        db->group_step = 0;
        if (chat_db_undefer(db, chat_db_step_begin)) {
            return 0;   /* nothing ran in the step: nothing to end */
        }
        if (sql[0] == 'C') {
            chat_db_defer(db, chat_db_step_release);
            return 0;
        }
        return chat_db_group_run_keep(db, chat_db_step_undo);
    }

    return 1;
}


void
chat_db_group_next(chat_db_t *db)
{
    if (!db->group || !db->group_step) {
        return;
    }

    chat_log_error("postgres: a step left its transaction open; rolled back");
    db->group_step = 0;

    if (db->conn != NULL && !chat_db_undefer(db, chat_db_step_begin)) {
        (void) chat_db_group_run(db, chat_db_step_undo);
    }
}


int
chat_db_group_commit(chat_db_t *db)
{
    int        ok;
    PGresult  *res;

    chat_db_group_next(db);

    db->group = 0;

    if (!db->group_open) {
        return 0;                       /* nothing ran */
    }

    db->group_open = 0;

    if (db->conn == NULL) {
        return -1;
    }

    /* the COMMIT releases the last savepoint; a BEGIN still waiting means
     * nothing ran */
    (void) chat_db_undefer(db, chat_db_step_release);
    if (chat_db_undefer(db, chat_db_begin_sql)) {
        return 0;
    }

    /* COMMIT of an aborted transaction answers "ROLLBACK", not an error */
    res = chat_db_query_raw(db, "COMMIT", 0, NULL, NULL, NULL);
    ok = res != NULL && strcmp(PQcmdStatus(res), "COMMIT") == 0;
    PQclear(res);

    if (!ok) {
        chat_log_error("postgres: a group's COMMIT failed; none of its "
                       "steps is stored");
        if (db->conn != NULL && PQtransactionStatus(db->conn) != PQTRANS_IDLE)
        {
            (void) chat_db_exec_raw(db, "ROLLBACK");
        }
    }

    return ok ? 0 : -1;
}
