/*
 * db_internal.h: what the PostgreSQL client's own files share (db.c,
 * db_pipeline.c, db_group.c), and no caller uses: callers include db.h.
 *
 * A "_raw" call runs its statement as it is, outside the group commit's
 * bookkeeping (chat_db_group_enter/leave): the group's own statements
 * and the public calls, which wrap the raw ones, use them.
 */

#ifndef CHAT_DB_INTERNAL_H
#define CHAT_DB_INTERNAL_H

#include "db.h"

/* db.c: statements */

/* The result when its status is PGRES_COMMAND_OK or PGRES_TUPLES_OK;
 * else logged (at debug only when its SQLSTATE is db->expected), the
 * SQLSTATE kept in db->sqlstate, res cleared, a broken connection closed,
 * and NULL. */
PGresult *chat_db_check(chat_db_t *db, PGresult *res, const char *sql);

/* A hot statement's slot (by its text's address), prepared on this
 * connection now if it is new: its index, CHAT_DB_PREPARED_MAX when it
 * runs unprepared (the table is full, or behind a pooler), or -1 when the
 * PREPARE failed (as chat_db_check). */
int chat_db_prepare(chat_db_t *db, const char *sql, int nparams);

/* One statement (prepared: a hot one, as chat_db_query_prepared), the
 * result as chat_db_query's. */
PGresult *chat_db_statement_raw(chat_db_t *db, const char *sql, int prepared,
    int nparams, const char *const *values, const int *lengths,
    const int *formats);
int chat_db_exec_raw(chat_db_t *db, const char *sql);

/* db_pipeline.c: pipelines and the control statements deferred to them */

int chat_db_pipeline_raw(chat_db_t *db, chat_db_stmt_t *stmts, size_t n);

/* The BEGIN that waits in db->deferred; deferred statements are told
 * apart by address, so this is the one copy of its text. */
extern const char  chat_db_begin_sql[];

/* Queues sql, a fixed control statement with static storage, for the
 * front of the next statement's round trip. */
void chat_db_defer(chat_db_t *db, const char *sql);

/* When the last statement queued is sql (nothing has run since), takes it
 * back and returns 1; else 0. */
int chat_db_undefer(chat_db_t *db, const char *sql);

/* db_group.c: a group commit's bookkeeping around every statement */

/* Before a statement: 0, or -1 when it must not run. */
int chat_db_group_enter(chat_db_t *db);

/* After it, with whether it succeeded. */
void chat_db_group_leave(chat_db_t *db, int ok);

/* A step's BEGIN, COMMIT or ROLLBACK inside a group: 0 or -1 when it was
 * mapped onto the step's savepoint, 1 when sql is something else (to run
 * as a statement). */
int chat_db_group_control(chat_db_t *db, const char *sql);

#endif /* CHAT_DB_INTERNAL_H */
