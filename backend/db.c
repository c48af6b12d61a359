/*
 * db.c: a worker's PostgreSQL connection, and the transaction that makes
 * a command happen at most once.
 *
 * Connection.  One blocking libpq connection per worker.  A statement
 * that fails on a broken connection closes it; the worker then stops
 * reading commands and calls chat_db_reconnect until it is back (100 ms
 * doubling to 5 s, with jitter so a restarted server is not hit by every
 * worker at the same instant).  Every statement goes through
 * chat_db_query: parameters always travel separately (PQexecParams),
 * every result status is checked, every result is cleared, and a failure
 * is logged once, with its SQLSTATE.
 *
 * Commands.  The bus delivers at least once, so a command may arrive
 * again after a crash, a reclaim or a client retry.  For an op that
 * writes (CHAT_OP_LOGGED), chat_db_run_command does, in one transaction:
 *
 *   BEGIN
 *   INSERT INTO command_log (key, op, user_id, request_hash)
 *       ... ON CONFLICT (key) DO NOTHING RETURNING 1
 *     no row: the key was seen.  Reply with the stored status and reply
 *       if request_hash (SHA-256 of op "\n" body) matches, else 409
 *       idempotency_key_reused.  Nothing else changes.  If the first
 *       attempt is still in flight, ON CONFLICT waits for it to finish,
 *       so duplicates serialise instead of racing.
 *   SAVEPOINT op
 *   <the handler>
 *     4xx: ROLLBACK TO SAVEPOINT op, so a business error changes nothing
 *   UPDATE command_log SET status, reply
 *   COMMIT
 *
 * and only then does the worker XACK and publish.  A failure anywhere
 * (lost connection, serialisation failure, an unexpected SQL error) rolls
 * everything back and returns -1: the entry stays pending and comes back
 * later, to find either nothing (and run) or the committed log row (and
 * replay).  Serialisation failures and deadlocks are retried at once, up
 * to three times, before giving up.
 *
 * Ops that only read run without the log: there is nothing to protect,
 * and their replies (tokens, fresh data) should not be stored.
 *
 * What it does not do: pool connections, batch several commands into one
 * commit (the next throughput step), or prune command_log (a periodic
 * DELETE by created_at, outside the workers).
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "db.h"
#include "log.h"
#include "ops.h"


#define CHAT_DB_BACKOFF_MIN_MS  100
#define CHAT_DB_BACKOFF_MAX_MS  5000
#define CHAT_DB_TX_ATTEMPTS     3


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
chat_db_init(chat_db_t *db, const char *conninfo, const char *app_name)
{
    memset(db, 0, sizeof(*db));
    db->conninfo = conninfo;
    db->app_name = app_name;
}


int
chat_db_connect(chat_db_t *db)
{
    char         buf[512];
    PGresult    *res;
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

    /* a statement that hangs (a lock held elsewhere) is cut off, so the
     * worker always comes back to its loop and its heartbeat */
    res = chat_db_query(db, "SET statement_timeout = '30s'", 0, NULL, NULL,
                        NULL);
    if (res == NULL) {
        chat_db_close(db);
        return -1;
    }

    PQclear(res);

    db->backoff_ms = 0;
    db->last_ok_ms = chat_mono_ms();

    chat_log_info("postgres: connected (server %d)",
                  PQserverVersion(db->conn));

    return 0;
}


int
chat_db_reconnect(chat_db_t *db)
{
    int64_t  now, jitter;

    if (chat_db_ok(db)) {
        return 0;
    }

    now = chat_mono_ms();

    if (now < db->next_try_ms) {
        return -1;
    }

    if (chat_db_connect(db) == 0) {
        return 0;
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
}


PGresult *
chat_db_query(chat_db_t *db, const char *sql, int nparams,
    const char *const *values, const int *lengths, const int *formats)
{
    char             buf[512];
    const char      *state, *msg;
    PGresult        *res;
    ExecStatusType   st;

    db->sqlstate[0] = '\0';

    if (db->conn == NULL) {
        strcpy(db->sqlstate, "08003");  /* connection_does_not_exist */
        return NULL;
    }

    res = PQexecParams(db->conn, sql, nparams, NULL, values, lengths,
                       formats, 0);
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

    chat_log_error("postgres: %s [%s] in: %.120s",
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


int
chat_db_exec(chat_db_t *db, const char *sql)
{
    PGresult  *res;

    res = chat_db_query(db, sql, 0, NULL, NULL, NULL);
    if (res == NULL) {
        return -1;
    }

    PQclear(res);
    return 0;
}


/* ------------------------------------------------------------------------
 * Commands
 * --------------------------------------------------------------------- */

/* SHA-256 of op "\n" body: what "the same command" means for a key */
static int
chat_db_request_hash(const chat_cmd_t *cmd, unsigned char *md)
{
    int          ok;
    unsigned     len;
    EVP_MD_CTX  *ctx;

    ctx = EVP_MD_CTX_new();

    ok = ctx != NULL
         && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1
         && EVP_DigestUpdate(ctx, cmd->op, cmd->op_len) == 1
         && EVP_DigestUpdate(ctx, "\n", 1) == 1
         && EVP_DigestUpdate(ctx, cmd->body, cmd->body_len) == 1
         && EVP_DigestFinal_ex(ctx, md, &len) == 1;

    EVP_MD_CTX_free(ctx);

    return ok ? 0 : -1;
}


static int
chat_db_retryable(const chat_db_t *db)
{
    return strcmp(db->sqlstate, "40001") == 0      /* serialization */
           || strcmp(db->sqlstate, "40P01") == 0;  /* deadlock */
}


/* Runs an op that only reads: no transaction block, nothing stored. */
static int
chat_db_run_unlogged(chat_db_t *db, const chat_config_t *cfg,
    const chat_cmd_t *cmd, const chat_op_t *op, chat_reply_t *reply)
{
    int             rc;
    char           *stored;
    chat_op_ctx_t   ctx;

    memset(&ctx, 0, sizeof(ctx));
    ctx.cfg = cfg;
    ctx.db = db;
    ctx.cmd = cmd;

    if (chat_op_run(op, &ctx) != 0) {
        return -1;
    }

    stored = cJSON_PrintUnformatted(ctx.reply);
    cJSON_Delete(ctx.reply);

    if (stored == NULL) {
        return -1;
    }

    rc = chat_op_present(op, cfg, ctx.status, stored, reply);
    free(stored);

    return rc;
}


/*
 * The key exists: answer from the log.  Returns 0 with reply set, or -1.
 * Runs inside the caller's transaction, which the caller ends.
 */
static int
chat_db_replay(chat_db_t *db, const chat_config_t *cfg,
    const chat_cmd_t *cmd, const chat_op_t *op, const unsigned char *hash,
    chat_reply_t *reply)
{
    int          rc;
    const char  *values[2];
    int          lengths[2], formats[2];
    PGresult    *res;

    values[0] = cmd->key;   lengths[0] = 0;     formats[0] = 0;
    values[1] = (const char *) hash;
    lengths[1] = 32;
    formats[1] = 1;

    res = chat_db_query(db,
        "SELECT status, reply, request_hash = $2 FROM command_log "
        "WHERE key = $1",
        2, values, lengths, formats);
    if (res == NULL) {
        return -1;
    }

    rc = -1;

    if (PQntuples(res) != 1 || PQgetisnull(res, 0, 0)
        || PQgetisnull(res, 0, 1))
    {
        chat_log_error("command_log row for key %s is missing or unfinished",
                       cmd->key);
        goto done;
    }

    if (strcmp(PQgetvalue(res, 0, 2), "t") != 0) {
        chat_log_warn("key %s reused for a different request (op %s)",
                      cmd->key, cmd->op);
        reply->status = 409;
        reply->body = chat_error_body("idempotency_key_reused",
                          "this idempotency key was already used for a "
                          "different request");
        rc = reply->body ? 0 : -1;
        goto done;
    }

    chat_log_debug("key %s: replaying stored reply", cmd->key);

    rc = chat_op_present(op, cfg, atoi(PQgetvalue(res, 0, 0)),
                         PQgetvalue(res, 0, 1), reply);

done:

    PQclear(res);
    return rc;
}


/*
 * One attempt at a logged op, in one transaction.  Returns 0 with reply
 * set, or -1 after rolling back.
 */
static int
chat_db_run_logged(chat_db_t *db, const chat_config_t *cfg,
    const chat_cmd_t *cmd, const chat_op_t *op, const unsigned char *hash,
    chat_reply_t *reply)
{
    int             rc;
    char            uid[24], status[8], sqlstate[6];
    char           *stored;
    const char     *values[4];
    int             lengths[4], formats[4];
    PGresult       *res;
    chat_op_ctx_t   ctx;

    stored = NULL;
    memset(&ctx, 0, sizeof(ctx));

    if (chat_db_exec(db, "BEGIN") != 0) {
        return -1;
    }

    snprintf(uid, sizeof(uid), "%lld", (long long) cmd->uid);

    values[0] = cmd->key;                       formats[0] = 0;
    values[1] = cmd->op;                        formats[1] = 0;
    values[2] = cmd->uid > 0 ? uid : NULL;      formats[2] = 0;
    values[3] = (const char *) hash;            formats[3] = 1;
    lengths[0] = lengths[1] = lengths[2] = 0;
    lengths[3] = 32;

    res = chat_db_query(db,
        "INSERT INTO command_log (key, op, user_id, request_hash) "
        "VALUES ($1, $2, $3, $4) ON CONFLICT (key) DO NOTHING RETURNING 1",
        4, values, lengths, formats);
    if (res == NULL) {
        goto err;
    }

    rc = PQntuples(res);
    PQclear(res);

    if (rc == 0) {
        if (chat_db_replay(db, cfg, cmd, op, hash, reply) != 0) {
            goto err;
        }

        /* nothing was written; ending the transaction either way is fine */
        if (chat_db_exec(db, "COMMIT") != 0) {
            free(reply->body);
            reply->body = NULL;
            goto err;
        }

        return 0;
    }

    if (chat_db_exec(db, "SAVEPOINT op") != 0) {
        goto err;
    }

    ctx.cfg = cfg;
    ctx.db = db;
    ctx.cmd = cmd;

    if (chat_op_run(op, &ctx) != 0) {
        goto err;
    }

    if (ctx.status >= 400
        && chat_db_exec(db, "ROLLBACK TO SAVEPOINT op") != 0)
    {
        goto err;
    }

    stored = cJSON_PrintUnformatted(ctx.reply);
    if (stored == NULL) {
        goto err;
    }

    snprintf(status, sizeof(status), "%d", ctx.status);

    values[0] = cmd->key;
    values[1] = status;
    values[2] = stored;

    res = chat_db_query(db,
        "UPDATE command_log SET status = $2, reply = $3 WHERE key = $1",
        3, values, NULL, NULL);
    if (res == NULL) {
        goto err;
    }

    PQclear(res);

    if (chat_db_exec(db, "COMMIT") != 0) {
        goto err;
    }

    rc = chat_op_present(op, cfg, ctx.status, stored, reply);

    cJSON_Delete(ctx.reply);
    free(stored);

    return rc;

err:

    cJSON_Delete(ctx.reply);
    free(stored);

    if (chat_db_ok(db)) {
        /* keep the SQLSTATE of the failure, not of the ROLLBACK */
        memcpy(sqlstate, db->sqlstate, sizeof(sqlstate));
        (void) chat_db_exec(db, "ROLLBACK");
        memcpy(db->sqlstate, sqlstate, sizeof(sqlstate));
    }

    return -1;
}


int
chat_db_run_command(chat_db_t *db, const chat_config_t *cfg,
    const chat_cmd_t *cmd, chat_reply_t *reply)
{
    int               attempt, rc;
    int64_t           start;
    unsigned char     hash[32];
    const chat_op_t  *op;

    reply->status = 0;
    reply->body = NULL;

    start = chat_mono_ms();
    op = chat_op_find(cmd->op, cmd->op_len);
    rc = -1;

    if (!(op->flags & CHAT_OP_LOGGED)) {
        rc = chat_db_run_unlogged(db, cfg, cmd, op, reply);
        goto done;
    }

    if (chat_db_request_hash(cmd, hash) != 0) {
        chat_log_error("sha256 failed");
        return -1;
    }

    for (attempt = 1; attempt <= CHAT_DB_TX_ATTEMPTS; attempt++) {
        rc = chat_db_run_logged(db, cfg, cmd, op, hash, reply);

        if (rc == 0 || !chat_db_ok(db) || !chat_db_retryable(db)) {
            break;
        }

        chat_log_warn("key %s: transaction conflict [%s], attempt %d",
                      cmd->key, db->sqlstate, attempt);
    }

done:

    if (rc == 0) {
        chat_log_debug("op %s key %s uid %lld: %d in %lld ms", cmd->op,
                       cmd->key, (long long) cmd->uid, reply->status,
                       (long long) (chat_mono_ms() - start));
    }

    return rc;
}
