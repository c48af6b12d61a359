/*
 * test_checkout_group.c: the checkouts a worker starts together reserve
 * in one transaction (suspend.c, chat_suspend_group, with the checkout's
 * group lock, op_checkout.c), against the real schema of the test
 * stack's PostgreSQL and the real order.checkout handler:
 *
 *   - N checkouts, one COMMIT (their orders share one now());
 *   - one that is refused (out of stock) undoes only itself and keeps
 *     its answer, and the same key twice in one group makes one order;
 *   - a group whose COMMIT fails stores nothing, answers nothing, makes
 *     no call: all stay pending;
 *   - two groups, on two connections at once, whose carts cross (one
 *     takes book X then Y, the other Y then X) never deadlock.
 *
 *   CHAT_PG_CONNINFO=... tests/unit/bin/test_checkout_group
 *
 * Built and run by `make -C backend test-db` (tests/run.sh integration,
 * with the test stack up).  Its shoppers, books and warehouse are its
 * own (named after its pid); the payment calls it starts go to a port
 * where nobody listens and are given up at the end, never made.
 */

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "command.h"
#include "db.h"
#include "log.h"
#include "suspend.h"
#include "unit.h"

#define SHOPPERS  12
#define ROUNDS    15

static chat_db_t       db, other;
static chat_config_t   cfg;
static const char     *conninfo;
static int64_t         uid[SHOPPERS];
static int64_t         book_x, book_y, book_z;     /* z: none in stock */
static int             serial;

typedef struct {
    chat_cmd_t   cmd;
    chat_job_t   job;
    char         key[96];
    char         body[300];
} checkout_t;


/* One value of a query on the other connection, as an integer; -1. */
static int64_t
value(const char *sql)
{
    int64_t    v;
    PGresult  *res;

    res = chat_db_query(&other, sql, 0, NULL, NULL, NULL);
    v = res != NULL && PQntuples(res) == 1 && !PQgetisnull(res, 0, 0)
        ? strtoll(PQgetvalue(res, 0, 0), NULL, 10) : -1;
    PQclear(res);

    return v;
}


static int
run(const char *sql)
{
    return chat_db_exec(&other, sql);
}


/* A checkout command of shopper u with key name (made unique), shipping
 * to line1. */
static void
checkout(checkout_t *c, int u, const char *name, const char *line1)
{
    memset(c, 0, sizeof(*c));
    snprintf(c->key, sizeof(c->key), "u%lld:cg-%d-%s",
             (long long) uid[u], (int) getpid(), name);
    snprintf(c->body, sizeof(c->body),
             "{\"shipping_address\":{\"line1\":\"%s\",\"country\":\"eu\"},"
             "\"payment\":{\"token\":\"tok_cg\"}}", line1);

    c->cmd.key = c->key;
    c->cmd.key_len = strlen(c->key);
    c->cmd.op = "order.checkout";
    c->cmd.op_len = strlen(c->cmd.op);
    c->cmd.role = "user";
    c->cmd.role_len = 4;
    c->cmd.gw = "gw:test";
    c->cmd.gw_len = 7;
    c->cmd.req = "1";
    c->cmd.req_len = 1;
    c->cmd.body = c->body;
    c->cmd.body_len = strlen(c->body);
    c->cmd.rid = "";
    c->cmd.uid = uid[u];

    CHECK(chat_job_init(&c->job, &cfg, &c->cmd, 0, "1-0", 0) == 0);
}


/* Puts book (quantity 1) in shopper u's cart, alone. */
static void
cart(int u, int64_t book)
{
    char  sql[200];

    snprintf(sql, sizeof(sql), "DELETE FROM cart_items WHERE user_id = %lld;"
             " INSERT INTO cart_items (user_id, book_id, quantity)"
             " VALUES (%lld, %lld, 1)", (long long) uid[u],
             (long long) uid[u], (long long) book);
    CHECK(run(sql) == 0);
}


static void
cart_add(int u, int64_t book)
{
    char  sql[200];

    snprintf(sql, sizeof(sql), "INSERT INTO cart_items (user_id, book_id,"
             " quantity) VALUES (%lld, %lld, 1)", (long long) uid[u],
             (long long) book);
    CHECK(run(sql) == 0);
}


/* Starts cs[0..n) as one group on d; finished[] as chat_suspend_group,
 * status[] the answer of a finished one that is done, else 0. */
static void
group(chat_db_t *d, checkout_t *cs, size_t n, int *finished, int *status,
    size_t *parked)
{
    size_t          i;
    chat_job_t     *jobs[8];
    chat_suspend_t  s;

    chat_suspend_init(&s, &cfg, d);

    for (i = 0; i < n; i++) {
        jobs[i] = &cs[i].job;
    }

    chat_suspend_group(&s, jobs, n, finished);
    *parked = chat_suspend_jobs(&s);

    for (i = 0; i < n; i++) {
        status[i] = finished[i] && cs[i].job.done ? cs[i].job.reply.status
                                                  : 0;
    }

    /* the calls are given up, never made (no answer is awaited) */
    chat_suspend_free(&s);

    for (i = 0; i < n; i++) {
        chat_job_free(&cs[i].job);
    }
}


/* "a,b,c" of the checkout keys of cs[0..n) as a SQL array. */
static const char *
keys(char *buf, size_t size, const checkout_t *cs, size_t n)
{
    size_t  i, len;

    len = (size_t) snprintf(buf, size, "ARRAY[");
    for (i = 0; i < n; i++) {
        len += (size_t) snprintf(buf + len, size - len, "%s'%s'",
                                 i ? "," : "", cs[i].key);
    }
    snprintf(buf + len, size - len, "]");

    return buf;
}


static int64_t
reserved(int64_t book)
{
    char  sql[160];

    snprintf(sql, sizeof(sql), "SELECT sum(reserved) FROM stock"
             " WHERE book_id = %lld", (long long) book);
    return value(sql);
}


static void
test_n_checkouts_one_commit(void)
{
    int         finished[3], status[3];
    char        k[600], sql[900];
    size_t      parked;
    int64_t     rx, ry;
    checkout_t  cs[3];

    cart(0, book_x);
    cart(1, book_y);
    cart(2, book_x);
    cart_add(2, book_y);

    rx = reserved(book_x);
    ry = reserved(book_y);

    checkout(&cs[0], 0, "one-a", "1 Main St");
    checkout(&cs[1], 1, "one-b", "2 Main St");
    checkout(&cs[2], 2, "one-c", "3 Main St");

    group(&db, cs, 3, finished, status, &parked);

    /* all three reserved and now wait on the processor */
    CHECK(parked == 3);
    CHECK(finished[0] == 0 && finished[1] == 0 && finished[2] == 0);

    /* three orders, one transaction: now() is the transaction's start */
    snprintf(sql, sizeof(sql), "SELECT count(*) * 10 + count(DISTINCT"
             " created_at) FROM orders WHERE checkout_key = ANY(%s)"
             " AND status = 'pending_payment'", keys(k, sizeof(k), cs, 3));
    CHECK(value(sql) == 31);

    CHECK(reserved(book_x) == rx + 2);
    CHECK(reserved(book_y) == ry + 2);
}


static void
test_a_refused_one_undoes_only_itself(void)
{
    int         finished[4], status[4];
    char        k[600], sql[900];
    size_t      parked;
    checkout_t  cs[4];

    cart(3, book_x);
    cart(4, book_z);                    /* none in stock */
    cart(5, book_y);

    checkout(&cs[0], 3, "ref-a", "4 Main St");
    checkout(&cs[1], 4, "ref-b", "5 Main St");
    checkout(&cs[2], 5, "ref-c", "6 Main St");
    /* the same key again in the same group: one order, one claim */
    checkout(&cs[3], 3, "ref-a", "4 Main St");

    group(&db, cs, 4, finished, status, &parked);

    /* the refusal is answered at once and kept under its key */
    CHECK(finished[1] == 1);
    CHECK(status[1] == 409);
    snprintf(sql, sizeof(sql), "SELECT status FROM command_log"
             " WHERE key = '%s'", cs[1].key);
    CHECK(value(sql) == 409);
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM orders"
             " WHERE checkout_key = '%s'", cs[1].key);
    CHECK(value(sql) == 0);

    /* the others went on: a, c and a's second attempt wait on the call
     * (the second resumes the first's order, with the same key) */
    CHECK(finished[0] == 0 && finished[2] == 0 && finished[3] == 0);
    CHECK(parked == 3);
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM orders"
             " WHERE checkout_key = ANY(%s)", keys(k, sizeof(k), cs, 4));
    CHECK(value(sql) == 2);
}


static void
test_a_failed_commit_leaves_all_pending(void)
{
    int         finished[2], status[2];
    char        k[600], sql[900];
    size_t      parked;
    int64_t     rx, ry;
    checkout_t  cs[2];

    /* an order shipped to "fail at commit" fails a check made at COMMIT */
    CHECK(run("CREATE OR REPLACE FUNCTION test_cg_fail() RETURNS trigger"
              " LANGUAGE plpgsql AS $$BEGIN"
              " IF NEW.shipping_address->>'line1' = 'fail at commit' THEN"
              " RAISE EXCEPTION 'refused at commit'; END IF;"
              " RETURN NULL; END$$") == 0);
    CHECK(run("DROP TRIGGER IF EXISTS test_cg_fail_at_commit ON orders;"
              " CREATE CONSTRAINT TRIGGER test_cg_fail_at_commit"
              " AFTER INSERT ON orders DEFERRABLE INITIALLY DEFERRED"
              " FOR EACH ROW EXECUTE FUNCTION test_cg_fail()") == 0);

    cart(6, book_x);
    cart(7, book_y);
    rx = reserved(book_x);
    ry = reserved(book_y);

    checkout(&cs[0], 6, "fail-a", "7 Main St");
    checkout(&cs[1], 7, "fail-b", "fail at commit");

    group(&db, cs, 2, finished, status, &parked);

    CHECK(run("DROP TRIGGER test_cg_fail_at_commit ON orders;"
              " DROP FUNCTION test_cg_fail()") == 0);

    /* nothing answered (both not done: left pending), no call made */
    CHECK(parked == 0);
    CHECK(finished[0] == 1 && finished[1] == 1);
    CHECK(status[0] == 0 && status[1] == 0);

    /* and nothing stored: a reclaim finds the keys new */
    snprintf(sql, sizeof(sql), "SELECT (SELECT count(*) FROM command_log"
             " WHERE key = ANY(%s)) + (SELECT count(*) FROM orders"
             " WHERE checkout_key = ANY(%s))", keys(k, sizeof(k), cs, 2),
             k);
    CHECK(value(sql) == 0);
    CHECK(reserved(book_x) == rx);
    CHECK(reserved(book_y) == ry);
    CHECK(chat_db_ok(&db));
}


/* what the lock holder saw stored before it let go */
static int64_t  stored_while_held = -1;
static char     stored_key[96];


/* Lets go of the lock held on arg once the order of stored_key is
 * committed, noting whether it was (thread).  It waits for it rather
 * than a fixed moment, so a slow machine cannot fail the test; a group
 * that waited on the lock instead would never commit while it is held,
 * and after 20 s the lock is let go with the order not stored. */
static void *
release_later(void *arg)
{
    int          i;
    char         sql[200];
    PGresult    *res;
    chat_db_t   *d = arg;

    snprintf(sql, sizeof(sql), "SELECT count(*) FROM orders"
             " WHERE checkout_key = '%s'", stored_key);

    for (i = 0; i < 1000; i++) {
        usleep(20 * 1000);
        res = chat_db_query(d, sql, 0, NULL, NULL, NULL);
        stored_while_held = res ? strtoll(PQgetvalue(res, 0, 0), NULL, 10)
                                : -1;
        PQclear(res);
        if (stored_while_held != 0) {
            break;
        }
    }

    (void) chat_db_exec(d, "ROLLBACK");
    return NULL;
}


static void
test_a_lock_met_runs_again_alone(void)
{
    int         finished[2], status[2];
    char        sql[300];
    size_t      parked;
    chat_db_t   d3;
    pthread_t   t;
    checkout_t  cs[2];

    /* a checkout reserved earlier, its payment not settled */
    cart(0, book_x);
    checkout(&cs[0], 0, "again-a", "10 Main St");
    group(&db, cs, 1, finished, status, &parked);
    CHECK(parked == 1);

    /* someone holds its order's row (a settlement, say) */
    chat_db_init(&d3, conninfo, "test_checkout_group_3");
    CHECK(chat_db_connect(&d3) == 0);
    CHECK(chat_db_exec(&d3, "BEGIN") == 0);
    snprintf(sql, sizeof(sql), "SELECT id FROM orders WHERE checkout_key ="
             " '%s' FOR UPDATE", cs[0].key);
    CHECK(chat_db_exec(&d3, sql) == 0);

    /* its retry in a group does not wait there, holding the group's
     * locks: it runs again on its own after the COMMIT (and waits then,
     * holding nothing) while the other checkout of the group is stored */
    cart(1, book_y);
    checkout(&cs[0], 0, "again-a", "10 Main St");
    checkout(&cs[1], 1, "again-b", "11 Main St");

    snprintf(stored_key, sizeof(stored_key), "%s", cs[1].key);
    pthread_create(&t, NULL, release_later, &d3);
    group(&db, cs, 2, finished, status, &parked);
    pthread_join(t, NULL);

    CHECK(finished[0] == 0 && finished[1] == 0);
    CHECK(parked == 2);

    /* the group had committed while the lock was still held */
    CHECK(stored_while_held == 1);

    chat_db_close(&d3);
}


/* Two groups at once whose carts cross. */
typedef struct {
    chat_db_t          *d;
    int                 first;          /* its shoppers: first, first + 1 */
    int64_t             books[2];
    pthread_barrier_t  *start;
    int                 parked;
} crossing_t;


static void *
crossing(void *arg)
{
    int          r, finished[2], status[2];
    char         name[32];
    size_t       parked;
    crossing_t  *x = arg;
    checkout_t   cs[2];

    x->parked = 0;

    for (r = 0; r < ROUNDS; r++) {
        snprintf(name, sizeof(name), "x%d-%d-a", x->first, r);
        checkout(&cs[0], x->first, name, "8 Main St");
        snprintf(name, sizeof(name), "x%d-%d-b", x->first, r);
        checkout(&cs[1], x->first + 1, name, "9 Main St");

        pthread_barrier_wait(x->start);
        group(x->d, cs, 2, finished, status, &parked);
        x->parked += (int) parked;
    }

    return NULL;
}


static void
test_crossing_groups_do_not_deadlock(void)
{
    char               sql[300];
    chat_db_t          d2;
    pthread_t          t1, t2;
    crossing_t         a, b;
    pthread_barrier_t  start;

    chat_db_init(&d2, conninfo, "test_checkout_group_2");
    CHECK(chat_db_connect(&d2) == 0);

    /* a: X then Y; b: Y then X */
    cart(8, book_x);
    cart(9, book_y);
    cart(10, book_y);
    cart(11, book_x);

    pthread_barrier_init(&start, NULL, 2);
    a.d = &db;
    a.first = 8;
    a.start = &start;
    b.d = &d2;
    b.first = 10;
    b.start = &start;

    pthread_create(&t1, NULL, crossing, &a);
    pthread_create(&t2, NULL, crossing, &b);
    pthread_join(t1, NULL);
    pthread_join(t2, NULL);
    pthread_barrier_destroy(&start);

    /* every checkout of every round reserved: none failed on a deadlock
     * (40P01) */
    CHECK(a.parked == 2 * ROUNDS);
    CHECK(b.parked == 2 * ROUNDS);

    /* and in its group's one transaction, every round: none met the
     * other group's locks and ran again on its own (one order per
     * checkout, one now() per group: a group is its keys without the
     * shopper and the -a/-b; the two threads' groups of one round may
     * start in the same microsecond, so now() is counted per group) */
    snprintf(sql, sizeof(sql), "SELECT count(*) * 1000 + count(DISTINCT"
             " (substring(checkout_key FROM ':(.*)-[ab]$'), created_at))"
             " FROM orders WHERE checkout_key LIKE"
             " '%%:cg-%d-x8-%%' OR checkout_key LIKE '%%:cg-%d-x10-%%'",
             (int) getpid(), (int) getpid());
    CHECK(value(sql) == 4 * ROUNDS * 1000 + 2 * ROUNDS);

    chat_db_close(&d2);
}


/* Its own shoppers, books and warehouse. */
static int
seed(void)
{
    int       i;
    char      sql[600];
    PGresult *res;

    serial = (int) getpid();

    for (i = 0; i < SHOPPERS; i++) {
        snprintf(sql, sizeof(sql), "INSERT INTO users (email, display_name,"
                 " password_hash) VALUES ('cg%d-%d@test.invalid', 'CG', '!')"
                 " RETURNING id", serial, i);
        res = chat_db_query(&other, sql, 0, NULL, NULL, NULL);
        if (res == NULL) {
            return -1;
        }
        uid[i] = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
        PQclear(res);
    }

    snprintf(sql, sizeof(sql), "INSERT INTO warehouses (code, name, region)"
             " VALUES ('cg-%d', 'CG', 'eu')", serial);
    if (run(sql) != 0) {
        return -1;
    }

    for (i = 0; i < 3; i++) {
        snprintf(sql, sizeof(sql), "WITH b AS (INSERT INTO books (isbn13,"
                 " title, price_cents) VALUES ('979%010d', 'CG %d', 1000)"
                 " RETURNING id) INSERT INTO stock (book_id, warehouse_id,"
                 " on_hand) SELECT b.id, w.id, %d FROM b, warehouses w"
                 " WHERE w.code = 'cg-%d' RETURNING book_id",
                 (serial * 3 + i) % 1000000000, i, i == 2 ? 0 : 1000,
                 serial);
        res = chat_db_query(&other, sql, 0, NULL, NULL, NULL);
        if (res == NULL) {
            return -1;
        }
        *(i == 0 ? &book_x : i == 1 ? &book_y : &book_z)
            = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
        PQclear(res);
    }

    return 0;
}


int
main(void)
{
    static unsigned char  secret[] = "test_checkout_group secret";

    conninfo = getenv("CHAT_PG_CONNINFO");
    if (conninfo == NULL || conninfo[0] == '\0') {
        fprintf(stderr, "test_checkout_group: CHAT_PG_CONNINFO is not set\n");
        return 2;
    }

    chat_log_set_level(CHAT_LOG_ERROR);

    cfg.pg = conninfo;
    cfg.token_secret = secret;
    cfg.token_secret_len = sizeof(secret) - 1;
    cfg.payment_url = "http://127.0.0.1:9";     /* nobody: never called */
    cfg.payment_timeout_ms = 1000;
    cfg.reservation_ttl_ms = 600000;
    cfg.claim_idle_ms = 30000;
    cfg.shards = 1;
    cfg.commit_batch = 8;

    chat_db_init(&db, conninfo, "test_checkout_group");
    chat_db_init(&other, conninfo, "test_checkout_group_other");

    if (chat_db_connect(&db) != 0 || chat_db_connect(&other) != 0) {
        fprintf(stderr, "test_checkout_group: cannot connect\n");
        return 2;
    }

    if (seed() != 0) {
        fprintf(stderr, "test_checkout_group: cannot seed\n");
        return 2;
    }

    UNIT_RUN(test_n_checkouts_one_commit);
    UNIT_RUN(test_a_refused_one_undoes_only_itself);
    UNIT_RUN(test_a_failed_commit_leaves_all_pending);
    UNIT_RUN(test_a_lock_met_runs_again_alone);
    UNIT_RUN(test_crossing_groups_do_not_deadlock);

    chat_db_close(&db);
    chat_db_close(&other);

    return UNIT_SUMMARY();
}
