/*
 * db_group.c: group commit, steps that run their own transactions
 * sharing one.
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
 * How.  db.c's statement calls ask chat_db_group_enter before a
 * statement (the group's BEGIN, the first time, and a savepoint for a
 * statement outside a step's own BEGIN) and chat_db_group_leave after it
 * (released, or undone at once); chat_db_exec hands a step's BEGIN,
 * COMMIT and ROLLBACK to chat_db_group_control, which maps them onto the
 * savepoint.  The BEGIN and the savepoints are deferred
 * (db_pipeline.c): they ride with the statement that follows, so a
 * group costs no round trip of its own beyond its COMMIT.
 *
 * A group that took its locks in one ordered statement first (the
 * checkouts started together, suspend.c) then waits on no lock:
 * chat_db_group_nowait sets lock_timeout for the rest of the transaction,
 * before the next step's savepoint, so no step's undo takes it back.
 *
 * The savepoint is called chat_step; a step must not use that name.
 */

#include <string.h>

#include "db.h"
#include "db_internal.h"
#include "log.h"


/* deferred ones are told apart by address: one copy of each text */
static const char  chat_db_step_begin[] = "SAVEPOINT chat_step";
static const char  chat_db_step_release[] = "RELEASE SAVEPOINT chat_step";
static const char  chat_db_step_undo[] = "ROLLBACK TO SAVEPOINT chat_step; "
                                         "RELEASE SAVEPOINT chat_step";
static const char  chat_db_group_nowait_sql[] =
    "SET LOCAL lock_timeout = '" CHAT_DB_GROUP_LOCK_WAIT "'";


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
int
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
void
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
int
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
chat_db_grouped(const chat_db_t *db)
{
    return db->group;
}


/* Set before the next statement's savepoint, so no step's ROLLBACK TO
 * undoes it; deferred, it costs no round trip. */
void
chat_db_group_nowait(chat_db_t *db)
{
    if (!db->group || db->conn == NULL) {
        return;
    }

    if (!db->group_open) {
        chat_db_defer(db, chat_db_begin_sql);
        db->group_open = 1;
    }

    chat_db_defer(db, chat_db_group_nowait_sql);
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
    res = chat_db_statement_raw(db, "COMMIT", 0, 0, NULL, NULL, NULL);
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
