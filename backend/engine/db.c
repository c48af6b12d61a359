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
 * The rest lives beside this file, one concern each (db_internal.h is
 * what they share): several statements in one round trip, and the BEGIN
 * or savepoint that waits to ride in front of the next statement
 * (db_pipeline.c); steps that manage their own transactions sharing one
 * commit (db_group.c).  Every statement here passes through the group's
 * chat_db_group_enter/leave first, so a step runs unchanged in a group.
 *
 * What it does not do: transactions of commands (command.c), or pool
 * connections.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "db_internal.h"
#include "log.h"


#define CHAT_DB_BACKOFF_MIN_MS  100
#define CHAT_DB_BACKOFF_MAX_MS  5000

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
PGresult *
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


/*
 * The slot of a hot statement (by the address of its text), prepared on
 * this connection now if it is new: its index, CHAT_DB_PREPARED_MAX when
 * the table is full (the statement then runs unprepared), or -1 when the
 * PREPARE failed (handled as in chat_db_check).
 */
int
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


/*
 * One statement, on its own or (prepared) as a hot statement, outside the
 * group commit's bookkeeping: the deferred control statements, or the
 * prefix, go first; then a plain or a prepared execution.  The result as
 * chat_db_query's.
 */
PGresult *
chat_db_statement_raw(chat_db_t *db, const char *sql, int prepared,
    int nparams, const char *const *values, const int *lengths,
    const int *formats)
{
    int   slot;
    char  name[24];

    /* deferred control travels with the statement */
    if (db->ndeferred > 0 && db->nprefix == 0) {
        return chat_db_query_along(db, sql, prepared, nparams, values,
                                   lengths, formats);
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

    slot = prepared ? chat_db_prepare(db, sql, nparams) : CHAT_DB_PREPARED_MAX;
    if (slot < 0) {
        return NULL;
    }

    db->round_trips++;

    if (slot == CHAT_DB_PREPARED_MAX) {
        return chat_db_check(db, PQexecParams(db->conn, sql, nparams, NULL,
                                              values, lengths, formats, 0),
                             sql);
    }

    snprintf(name, sizeof(name), "chat_%d", slot);

    return chat_db_check(db, PQexecPrepared(db->conn, name, nparams, values,
                                            lengths, formats, 0),
                         sql);
}


/* chat_db_statement_raw inside the group commit's bookkeeping */
static PGresult *
chat_db_statement(chat_db_t *db, const char *sql, int prepared, int nparams,
    const char *const *values, const int *lengths, const int *formats)
{
    PGresult  *res;

    if (chat_db_group_enter(db) != 0) {
        return NULL;
    }

    res = chat_db_statement_raw(db, sql, prepared, nparams, values, lengths,
                                formats);
    chat_db_group_leave(db, res != NULL);

    return res;
}


PGresult *
chat_db_query(chat_db_t *db, const char *sql, int nparams,
    const char *const *values, const int *lengths, const int *formats)
{
    return chat_db_statement(db, sql, 0, nparams, values, lengths, formats);
}


PGresult *
chat_db_query_prepared(chat_db_t *db, const char *sql, int nparams,
    const char *const *values, const int *lengths, const int *formats)
{
    return chat_db_statement(db, sql, 1, nparams, values, lengths, formats);
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


int
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
