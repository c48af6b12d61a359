/*
 * test_db_group.c: the worker's group commit (backend/engine/db_group.c)
 * against a real PostgreSQL: steps that manage their own transactions
 * share one, each undoes only itself when it fails, nothing is visible
 * before the group commits, a group whose COMMIT fails stores none
 * of its steps, and after chat_db_group_nowait no step waits on a lock.
 *
 *   CHAT_PG_CONNINFO=... tests/unit/bin/test_db_group
 *
 * Built and run by `make -C backend test-db` (tests/run.sh integration,
 * with the test stack up).  Works in a scratch table of its own.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "log.h"
#include "unit.h"


static chat_db_t    db, other;
static const char  *conninfo;


/* The scratch table's values as "1,3", seen from the other connection. */
static const char *
seen(char *buf, size_t size)
{
    PGresult  *res;

    res = chat_db_query(&other,
                        "SELECT coalesce(string_agg(v::text, ',' ORDER BY v),"
                        " '') FROM db_group_test", 0, NULL, NULL, NULL);
    snprintf(buf, size, "%s", res ? PQgetvalue(res, 0, 0) : "?");
    PQclear(res);

    return buf;
}


/* lock_timeout on db now, in ms (0: none). */
static int
value_of_lock_timeout(void)
{
    int        v;
    PGresult  *res;

    res = chat_db_query(&db, "SELECT setting::int FROM pg_settings"
                        " WHERE name = 'lock_timeout'", 0, NULL, NULL, NULL);
    v = res != NULL ? atoi(PQgetvalue(res, 0, 0)) : -1;
    PQclear(res);

    return v;
}


static int
insert(int v)
{
    char         s[16];
    const char  *values[1];
    PGresult    *res;

    snprintf(s, sizeof(s), "%d", v);
    values[0] = s;
    res = chat_db_query(&db, "INSERT INTO db_group_test (v) VALUES ($1)", 1,
                        values, NULL, NULL);
    PQclear(res);

    return res != NULL ? 0 : -1;
}


static void
reset(void)
{
    CHECK(chat_db_exec(&db, "TRUNCATE db_group_test") == 0);
}


static void
test_steps_share_one_commit(void)
{
    char  buf[64];

    reset();
    chat_db_group_begin(&db);

    /* a step with its own transaction */
    CHECK(chat_db_exec(&db, "BEGIN") == 0);
    CHECK(insert(1) == 0);
    CHECK(chat_db_exec(&db, "COMMIT") == 0);

    /* a statement on its own */
    CHECK(insert(3) == 0);

    /* nothing is visible before the group commits */
    CHECK(strcmp(seen(buf, sizeof(buf)), "") == 0);
    CHECK(PQtransactionStatus(db.conn) == PQTRANS_INTRANS);

    CHECK(chat_db_group_commit(&db) == 0);
    CHECK(strcmp(seen(buf, sizeof(buf)), "1,3") == 0);
    CHECK(PQtransactionStatus(db.conn) == PQTRANS_IDLE);
}


static void
test_a_failed_step_undoes_only_itself(void)
{
    char  buf[64];

    reset();
    chat_db_group_begin(&db);

    CHECK(insert(1) == 0);

    /* fails inside its own transaction, rolls back */
    CHECK(chat_db_exec(&db, "BEGIN") == 0);
    CHECK(insert(2) == 0);
    CHECK(insert(1) != 0);                          /* unique */
    CHECK(strcmp(db.sqlstate, "23505") == 0);
    CHECK(chat_db_exec(&db, "ROLLBACK") == 0);
    CHECK(strcmp(db.sqlstate, "23505") == 0);       /* still the step's */

    /* a statement on its own that fails keeps its SQLSTATE, and a step's
     * ROLLBACK after it changes nothing */
    CHECK(insert(1) != 0);
    CHECK(strcmp(db.sqlstate, "23505") == 0);
    CHECK(chat_db_exec(&db, "ROLLBACK") == 0);

    /* a step that leaves its transaction open is rolled back */
    CHECK(chat_db_exec(&db, "BEGIN") == 0);
    CHECK(insert(5) == 0);
    chat_db_group_next(&db);

    CHECK(insert(4) == 0);

    CHECK(chat_db_group_commit(&db) == 0);
    CHECK(strcmp(seen(buf, sizeof(buf)), "1,4") == 0);
}


static void
test_a_failed_commit_stores_nothing(void)
{
    char  buf[64];

    reset();
    chat_db_group_begin(&db);

    CHECK(insert(7) == 0);

    /* a deferred check that fails only at COMMIT */
    CHECK(chat_db_exec(&db, "INSERT INTO db_group_deferred VALUES (1), (1)")
          == 0);

    CHECK(chat_db_group_commit(&db) != 0);
    CHECK(strcmp(seen(buf, sizeof(buf)), "") == 0);
    CHECK(chat_db_ok(&db));
    CHECK(PQtransactionStatus(db.conn) == PQTRANS_IDLE);

    /* and the connection goes on as usual */
    CHECK(insert(8) == 0);
    CHECK(strcmp(seen(buf, sizeof(buf)), "8") == 0);
}


/* BEGIN and the group's savepoints ride with the statements: a step is
 * one round trip, and a transaction's BEGIN costs none */
static void
test_control_rides_along(void)
{
    int       i;
    char      buf[64];
    uint64_t  rt;

    reset();

    rt = db.round_trips;
    chat_db_group_begin(&db);
    for (i = 1; i <= 3; i++) {
        CHECK(chat_db_exec(&db, "BEGIN") == 0);
        CHECK(insert(i) == 0);
        CHECK(chat_db_exec(&db, "COMMIT") == 0);
    }
    /* a step that runs nothing costs nothing */
    CHECK(chat_db_exec(&db, "BEGIN") == 0);
    CHECK(chat_db_exec(&db, "ROLLBACK") == 0);
    CHECK(insert(9) == 0);
    CHECK(chat_db_group_commit(&db) == 0);
    CHECK(db.round_trips - rt == 5);            /* 4 statements, COMMIT */
    CHECK(strcmp(seen(buf, sizeof(buf)), "1,2,3,9") == 0);

    /* outside a group */
    rt = db.round_trips;
    CHECK(chat_db_exec(&db, "BEGIN") == 0);
    CHECK(insert(10) == 0);
    CHECK(chat_db_exec(&db, "COMMIT") == 0);
    CHECK(db.round_trips - rt == 2);
    CHECK(chat_db_exec(&db, "BEGIN") == 0);
    CHECK(chat_db_exec(&db, "ROLLBACK") == 0);
    CHECK(db.round_trips - rt == 2);            /* an empty one: none */

    /* a statement that fails takes its BEGIN's transaction with it */
    CHECK(chat_db_exec(&db, "BEGIN") == 0);
    CHECK(insert(1) != 0);
    CHECK(strcmp(db.sqlstate, "23505") == 0);
    CHECK(PQtransactionStatus(db.conn) == PQTRANS_INERROR);
    CHECK(chat_db_exec(&db, "ROLLBACK") == 0);
    CHECK(PQtransactionStatus(db.conn) == PQTRANS_IDLE);
    CHECK(strcmp(seen(buf, sizeof(buf)), "1,2,3,9,10") == 0);
}


/* after chat_db_group_nowait nothing in the group waits on a lock, and
 * a step's undo does not take the setting back */
static void
test_nowait_outlives_a_failed_step(void)
{
    int   i;
    char  buf[64];

    reset();
    CHECK(insert(1) == 0);

    /* someone else holds row 1 */
    CHECK(chat_db_exec(&other, "BEGIN") == 0);
    CHECK(chat_db_exec(&other, "SELECT v FROM db_group_test WHERE v = 1"
                               " FOR UPDATE") == 0);

    /* were the setting lost, the UPDATE would wait: fail instead */
    CHECK(chat_db_exec(&db, "SET statement_timeout = '5s'") == 0);

    chat_db_group_begin(&db);
    CHECK(insert(2) == 0);
    chat_db_group_nowait(&db);

    /* twice: the second finds the setting the first's ROLLBACK TO left */
    for (i = 0; i < 2; i++) {
        CHECK(chat_db_exec(&db, "BEGIN") == 0);
        CHECK(chat_db_exec(&db, "UPDATE db_group_test SET v = 5"
                                " WHERE v = 1") != 0);
        CHECK(strcmp(db.sqlstate, CHAT_DB_LOCK_BUSY) == 0);
        CHECK(chat_db_exec(&db, "ROLLBACK") == 0);
    }

    CHECK(insert(3) == 0);
    CHECK(chat_db_group_commit(&db) == 0);
    CHECK(chat_db_exec(&other, "ROLLBACK") == 0);
    CHECK(strcmp(seen(buf, sizeof(buf)), "1,2,3") == 0);

    /* the next transaction waits as usual again */
    CHECK(value_of_lock_timeout() == 0);
    CHECK(chat_db_exec(&db, "RESET statement_timeout") == 0);
}


static void
test_an_empty_group_costs_nothing(void)
{
    chat_db_group_begin(&db);
    CHECK(chat_db_group_commit(&db) == 0);
    CHECK(PQtransactionStatus(db.conn) == PQTRANS_IDLE);
}


int
main(void)
{
    conninfo = getenv("CHAT_PG_CONNINFO");
    if (conninfo == NULL || conninfo[0] == '\0') {
        fprintf(stderr, "test_db_group: CHAT_PG_CONNINFO is not set\n");
        return 2;
    }

    chat_log_set_level(CHAT_LOG_WARN);

    chat_db_init(&db, conninfo, "test_db_group");
    chat_db_init(&other, conninfo, "test_db_group_other");

    if (chat_db_connect(&db) != 0 || chat_db_connect(&other) != 0) {
        fprintf(stderr, "test_db_group: cannot connect\n");
        return 2;
    }

    db.expected = "23505";      /* the unique violations are on purpose */

    if (chat_db_exec(&db, "DROP TABLE IF EXISTS db_group_test, "
                          "db_group_deferred; "
                          "CREATE TABLE db_group_test (v int PRIMARY KEY); "
                          "CREATE TABLE db_group_deferred (v int UNIQUE "
                          "DEFERRABLE INITIALLY DEFERRED)") != 0)
    {
        return 2;
    }

    UNIT_RUN(test_steps_share_one_commit);
    UNIT_RUN(test_a_failed_step_undoes_only_itself);
    UNIT_RUN(test_a_failed_commit_stores_nothing);
    UNIT_RUN(test_an_empty_group_costs_nothing);
    UNIT_RUN(test_control_rides_along);
    UNIT_RUN(test_nowait_outlives_a_failed_step);

    (void) chat_db_exec(&db, "DROP TABLE db_group_test, db_group_deferred");
    chat_db_close(&db);
    chat_db_close(&other);

    return UNIT_SUMMARY();
}
