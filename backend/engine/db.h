/*
 * db.h: the worker's PostgreSQL connection and how statements are run on
 * it.  See db.c (connection, statements), db_pipeline.c (pipelines,
 * deferred control) and db_group.c (group commit); the transactions of
 * commands are in command.c.
 */

#ifndef CHAT_DB_H
#define CHAT_DB_H

#include <stdint.h>

#include <libpq-fe.h>

#include "config.h"
#include "envelope.h"

#define CHAT_DB_PREPARED_MAX  32

typedef struct {
    PGconn      *conn;          /* NULL while disconnected */
    const char  *conninfo;      /* borrowed, outlives the struct */
    const char  *app_name;      /* shown in pg_stat_activity */
    char         sqlstate[6];   /* of the last failed statement, or "" */
    const char  *expected;      /* a SQLSTATE the caller handles: its
                                   failure is logged at debug only */
    int64_t      last_ok_ms;    /* monotonic time of the last round trip */
    int          pooled;        /* through a transaction pooler: no
                                   session state (chat_db_use_pooler) */
    int64_t      backoff_ms;    /* current reconnect delay */
    int64_t      next_try_ms;   /* monotonic time of the next attempt */

    /* statements prepared on this connection, by their text's address */
    const char  *prepared[CHAT_DB_PREPARED_MAX];
    int          nprepared;

    /* statements for the front of the next pipeline (chat_db_prefix) */
    struct chat_db_stmt_s  *prefix;
    size_t                  nprefix;

    /* transaction control waiting to ride in front of the next statement
     * (a BEGIN, a group's savepoints): no round trip of its own */
    const char  *deferred[4];
    unsigned     ndeferred;

    uint64_t     round_trips;   /* to the server so far (tests, stats) */

    /* group commit (chat_db_group_begin): */
    unsigned     group:1;       /* asked for: statements share one
                                   transaction */
    unsigned     group_open:1;  /* its BEGIN has been sent */
    unsigned     group_step:1;  /* inside a step's own BEGIN (a
                                   savepoint) */
    unsigned     group_pass:1;  /* running the group's own statements */
} chat_db_t;

/* A reply ready to publish: status and a malloc'd JSON body. */
typedef struct {
    int    status;
    char  *body;
} chat_reply_t;

void chat_db_init(chat_db_t *db, const char *conninfo, const char *app_name);

/*
 * The connections chat_db_init makes from now on go through a pooler in
 * transaction mode (pgbouncer; db->pooled, which a caller may clear for a
 * connection that does not): keep no state in the session, where the next
 * transaction may not find it.  No session SETs (chat_db_connect checks
 * the server's own settings instead, chat_db_session_set does nothing)
 * and no named prepared statements (chat_db_query_prepared and prepared
 * pipeline statements run unnamed, parsed each time).  Set once, before
 * any connection.  See db.c.
 */
void chat_db_use_pooler(int on);

/*
 * A session setting for the statements that follow (SET ..., fixed
 * text), such as a plan mode one statement needs.  Behind a pooler it
 * is skipped: the next statement may run on another server session, and
 * the one that got the SET would keep it for someone else.  0, or -1 as
 * chat_db_exec.
 */
int chat_db_session_set(chat_db_t *db, const char *sql);

/* chat_db_connect's answer for a server that is up but unsafe to run on
 * (fsync or full_page_writes off): not worth retrying, see db.c */
#define CHAT_DB_UNSAFE  (-2)

/* One connection attempt.  Returns 0, -1 with the reason logged, or
 * CHAT_DB_UNSAFE. */
int chat_db_connect(chat_db_t *db);

/*
 * Reconnects when the connection is down and the backoff delay (100 ms
 * doubling to 5 s, with jitter) has passed.  Returns 0 when connected
 * (already or now), CHAT_DB_UNSAFE, or -1 otherwise.  Never sleeps.
 */
int chat_db_reconnect(chat_db_t *db);

/* 1 when the connection is believed usable. */
int chat_db_ok(const chat_db_t *db);

/* Round trip "SELECT 1"; returns 0 or -1 (and the connection is marked
 * down if it is broken). */
int chat_db_ping(chat_db_t *db);

void chat_db_close(chat_db_t *db);

/*
 * Runs sql with parameters passed separately (PQexecParams, text results).
 * formats may be NULL (all text).  Returns the result when its status is
 * PGRES_COMMAND_OK or PGRES_TUPLES_OK (the caller PQclear()s it); else
 * logs the error with its SQLSTATE, remembers the SQLSTATE in
 * db->sqlstate, clears the result and returns NULL.  A broken connection
 * is closed, so chat_db_ok() turns false.
 */
PGresult *chat_db_query(chat_db_t *db, const char *sql, int nparams,
    const char *const *values, const int *lengths, const int *formats);

/*
 * chat_db_query for a hot statement whose text is a string constant:
 * prepared once per connection (by the text's address) and executed with
 * PQexecPrepared after that, so it is not parsed and planned each time.
 * Same result contract.
 */
PGresult *chat_db_query_prepared(chat_db_t *db, const char *sql,
    int nparams, const char *const *values, const int *lengths,
    const int *formats);

/*
 * Runs sql, fixed text without parameters or rows (PQexec: it may be
 * several statements separated by ";", one round trip).  0, or -1 with
 * the failure handled as in chat_db_query.
 */
int chat_db_exec(chat_db_t *db, const char *sql);

/* 1 when the last failure (db->sqlstate) is a serialisation failure or a
 * deadlock: the transaction is worth running again at once. */
int chat_db_retryable(const chat_db_t *db);

/*
 * Group commit: from chat_db_group_begin to chat_db_group_commit, the
 * steps that run on db share one transaction and so one WAL flush, each
 * step in a savepoint of its own: a step's "BEGIN" / "COMMIT" /
 * "ROLLBACK" (chat_db_exec) become SAVEPOINT / RELEASE / ROLLBACK TO, and
 * a statement outside them gets a savepoint of its own, so a step that
 * fails undoes only itself.  The BEGIN is sent with the first statement
 * (a group with none costs nothing).  chat_db_group_next ends a step that
 * left its transaction open (rolled back, logged).  chat_db_group_commit:
 * 0 when everything the steps did is committed, -1 when none of it is
 * (nothing a step did may be answered then).
 */
void chat_db_group_begin(chat_db_t *db);
void chat_db_group_next(chat_db_t *db);
int chat_db_group_commit(chat_db_t *db);

/* 1 between chat_db_group_begin and chat_db_group_commit: a step's
 * "COMMIT" only ends its savepoint, so a step must never send a COMMIT
 * of its own any other way (in a pipeline, say). */
int chat_db_grouped(const chat_db_t *db);

/*
 * From the next statement to the group's COMMIT, no statement of the
 * group waits on a lock for more than CHAT_DB_GROUP_LOCK_WAIT: it fails
 * with SQLSTATE CHAT_DB_LOCK_BUSY instead (its step undone, as for any
 * failure).  For a group that took every lock it needs in one ordered
 * statement first: what it meets afterwards it does not wait for, so it
 * can never be one link of a circle of waits (a deadlock).
 */
void chat_db_group_nowait(chat_db_t *db);

#define CHAT_DB_GROUP_LOCK_WAIT  "10ms"
#define CHAT_DB_LOCK_BUSY        "55P03"    /* lock_not_available */

/* One statement of chat_db_pipeline. */
typedef struct chat_db_stmt_s {
    const char         *sql;
    int                 prepared;   /* sql is a string constant: prepared
                                       once per connection, as with
                                       chat_db_query_prepared */
    int                 nparams;
    const char *const  *values;
    const int          *lengths;    /* may be NULL */
    const int          *formats;    /* may be NULL: all text */
    PGresult           *res;        /* out: its result, for the caller to
                                       PQclear */
} chat_db_stmt_t;

/*
 * Runs stmts[0..n) in one round trip (libpq's pipeline mode): the server
 * runs each after the one before has finished, each with its own
 * snapshot, exactly as if they had been sent one by one, and stops at the
 * first failure (the rest do not run).  Returns 0 with every res set, or
 * -1 with none set and the first failure handled as in chat_db_query
 * (logged unless its SQLSTATE is db->expected; kept in db->sqlstate; a
 * broken connection closed).  Statements inside a transaction block stay
 * in it; a failure leaves the block aborted, for the caller to ROLLBACK.
 * Meant for a few statements with small results: the sending and the
 * reading are not interleaved.  n may be 0 (then only a pending prefix
 * is sent, see chat_db_prefix).
 */
int chat_db_pipeline(chat_db_t *db, chat_db_stmt_t *stmts, size_t n);

/*
 * Puts stmts[0..n) in front of the next chat_db_pipeline's statements,
 * in the same round trip, with their results left in stmts[i].res (all
 * NULL if that pipeline failed); the caller keeps the array and clears
 * the results.  For a caller that hands the connection to code that
 * sends its own pipeline (a batch handler) and wants its statements to
 * go first without a round trip of their own.  Any other statement on
 * the connection sends them first too, and chat_db_pipeline(db, NULL, 0)
 * sends them alone.
 */
void chat_db_prefix(chat_db_t *db, chat_db_stmt_t *stmts, size_t n);

/*
 * The PostgreSQL array literal of v[0..n), such as {"a",NULL,"b\"c"},
 * for a text[] parameter: each element quoted, a NULL pointer a NULL
 * element.  malloc'd, or NULL when memory ran out.
 */
char *chat_db_text_array(const char *const *v, size_t n);

/*
 * "{1,2,3}", the PostgreSQL array literal of v[0..n) for a bigint[]
 * parameter.  malloc'd, or NULL when memory ran out.
 */
char *chat_db_int_array(const int64_t *v, size_t n);

#endif /* CHAT_DB_H */
