/*
 * op_msg.c: sending messages and reading history (read markers and
 * receipts are op_receipt.c's).
 *
 *   msg.send     {conversation_id, client_msg_id, text}    -> 201 | 200
 *                {"message": {...}}
 *   msg.history  {conversation_id, before_seq?, after_seq?, limit?}
 *                -> 200 {"messages": [...ascending seq], "has_more"}
 *
 * Sending.  A conversation's messages have one order, given by seq, and
 * seqs have no gaps.  msg.send takes two statements:
 *
 *   1. SELECT ... FROM conversations WHERE id = $1 FOR NO KEY UPDATE
 *      locks the conversation: senders to one conversation queue here.
 *   2. In a fresh snapshot (so it sees whatever the previous holder of
 *      the lock committed): is the sender a member?  did this sender
 *      already send this client_msg_id?  If a member and not a duplicate,
 *      UPDATE conversations SET last_seq = last_seq + 1 ... RETURNING,
 *      INSERT the message with that seq, move the sender's read marker to
 *      it, and read the member list for the fan-out; all in one statement
 *      (data-modifying CTEs).
 *
 * A resend (same conversation, sender and client_msg_id, under any
 * idempotency key) is answered 200 with the original message and changes
 * nothing, so it never burns a seq.  The unique (conversation_id,
 * sender_id, client_msg_id) backs this up.  The new message is fanned out
 * after the commit as {"type":"message","message":{...}} to every member,
 * the sender included (their other devices); a resend is not.
 *
 * History is read from one partition's primary key: after_seq pages
 * forward, before_seq (or neither: the newest) pages back, and the answer
 * is always ascending.  One row more than asked for says has_more.
 *
 * What it does not do: edit or delete messages, move read markers
 * (op_receipt.c), or typing (never on the bus: the edge's
 * ngx_chat_typing.c).
 */

#include <stdlib.h>
#include <string.h>

#include "conv.h"
#include "conv_input.h"
#include "log.h"
#include "ops.h"


/* columns of msg.send's second statement */
enum {
    CHAT_SEND_COL_MEMBER = 0,
    CHAT_SEND_COL_KIND,
    CHAT_SEND_COL_MSG,
    CHAT_SEND_COL_MEMBERS = CHAT_SEND_COL_MSG + CHAT_MSG_NCOLS
};


/* Queues {"type":"message","message":msg} for the members in csv. */
static int
chat_msg_event(chat_op_ctx_t *ctx, const cJSON *msg, const char *csv)
{
    int       rc;
    long      n;
    cJSON    *ev, *copy;
    int64_t  *ids;

    n = chat_csv_ids_alloc(csv, &ids);
    ev = cJSON_CreateObject();
    copy = cJSON_Duplicate(msg, 1);
    rc = -1;

    if (n < 0 || ev == NULL || copy == NULL
        || cJSON_AddStringToObject(ev, "type", "message") == NULL)
    {
        cJSON_Delete(copy);
        goto done;
    }

    cJSON_AddItemToObject(ev, "message", copy);

    rc = chat_op_event(ctx, ev, ids, (size_t) n);

done:

    cJSON_Delete(ev);
    free(ids);
    return rc;
}


int
chat_op_msg_send(chat_op_ctx_t *ctx)
{
    int          rc;
    char         c[24], u[24];
    cJSON       *msg;
    int64_t      cid;
    PGresult    *res;
    const char  *cmid, *text, *why, *values[4];

    rc = chat_op_require_user(ctx);
    if (rc == 1) {
        rc = chat_op_integer(ctx, "conversation_id", 1, 1, &cid);
    }
    if (rc != 1) {
        return rc;
    }

    cmid = chat_op_string(ctx, "client_msg_id");
    text = cmid ? chat_op_string(ctx, "text") : NULL;
    if (text == NULL) {
        return ctx->reply ? 0 : -1;
    }

    why = chat_client_msg_id_check(cmid, strlen(cmid));
    if (why == NULL) {
        why = chat_text_check(text, strlen(text));
    }
    if (why != NULL) {
        return chat_op_invalid(ctx, why);
    }

    values[0] = chat_i64(c, cid);
    values[1] = chat_i64(u, ctx->cmd->uid);
    values[2] = cmid;
    values[3] = text;

    res = chat_db_query_prepared(ctx->db,
        "SELECT 1 FROM conversations WHERE id = $1 FOR NO KEY UPDATE",
        1, values, NULL, NULL);
    if (res == NULL) {
        return -1;
    }

    rc = PQntuples(res);
    PQclear(res);

    if (rc == 0) {
        return chat_op_no_conversation(ctx);
    }

    res = chat_db_query_prepared(ctx->db,
        "WITH me AS ("
        "  SELECT 1 FROM conversation_members "
        "  WHERE conversation_id = $1 AND user_id = $2), "
        "dup AS ("
        "  SELECT * FROM messages "
        "  WHERE conversation_id = $1 AND sender_id = $2 "
        "    AND client_msg_id = $3), "
        "c AS ("
        "  UPDATE conversations "
        "  SET last_seq = last_seq + 1, last_activity_at = clock_timestamp() "
        "  WHERE id = $1 AND EXISTS (SELECT 1 FROM me) "
        "    AND NOT EXISTS (SELECT 1 FROM dup) "
        "  RETURNING last_seq), "
        "ins AS ("
        "  INSERT INTO messages (conversation_id, seq, sender_id, "
        "                        client_msg_id, text, created_at) "
        "  SELECT $1, last_seq, $2, $3, $4::text, clock_timestamp() FROM c "
        "  RETURNING *), "
        "rd AS ("
        "  UPDATE conversation_members m SET last_read_seq = ins.seq, "
        "                                    last_delivered_seq = ins.seq "
        "  FROM ins WHERE m.conversation_id = $1 AND m.user_id = $2) "
        "SELECT EXISTS (SELECT 1 FROM me), r.kind, "
        CHAT_MSG_COLUMNS("r") ", "
        "       (SELECT string_agg(user_id::text, ',') "
        "        FROM conversation_members WHERE conversation_id = $1) "
        "FROM (SELECT 1) AS one "
        "LEFT JOIN (SELECT 'new' AS kind, * FROM ins "
        "           UNION ALL SELECT 'dup', * FROM dup) AS r ON true",
        4, values, NULL, NULL);
    if (res == NULL) {
        return -1;
    }

    rc = -1;

    if (PQntuples(res) != 1) {
        chat_log_error("msg.send: %d rows from the insert", PQntuples(res));
        goto done;
    }

    if (strcmp(PQgetvalue(res, 0, CHAT_SEND_COL_MEMBER), "t") != 0) {
        rc = chat_op_no_conversation(ctx);
        goto done;
    }

    msg = chat_msg_json(res, 0, CHAT_SEND_COL_MSG);
    ctx->reply = cJSON_CreateObject();
    if (msg == NULL || ctx->reply == NULL) {
        cJSON_Delete(msg);
        goto done;
    }

    cJSON_AddItemToObject(ctx->reply, "message", msg);

    if (strcmp(PQgetvalue(res, 0, CHAT_SEND_COL_KIND), "dup") == 0) {
        ctx->status = 200;
        rc = 0;
        goto done;
    }

    ctx->status = 201;
    rc = chat_msg_event(ctx, msg,
                        PQgetvalue(res, 0, CHAT_SEND_COL_MEMBERS));

done:

    PQclear(res);
    return rc;
}


/* The messages of rows [0, n) of res, ascending (reversed when the rows
 * came newest first), into reply's "messages". */
static int
chat_msg_list(cJSON *reply, const PGresult *res, int n, int reversed)
{
    int     i;
    cJSON  *list, *msg;

    list = cJSON_AddArrayToObject(reply, "messages");
    if (list == NULL) {
        return -1;
    }

    for (i = 0; i < n; i++) {
        msg = chat_msg_json(res, reversed ? n - 1 - i : i, 0);
        if (msg == NULL) {
            return -1;
        }
        cJSON_AddItemToArray(list, msg);
    }

    return 0;
}


int
chat_op_msg_history(chat_op_ctx_t *ctx)
{
    int          rc, has_before, has_after, n, reversed;
    char         c[24], u[24], lo[24], hi[24], lim[24];
    int64_t      cid, before, after, limit;
    PGresult    *res;
    const char  *values[4];

    rc = chat_op_require_user(ctx);
    if (rc == 1) {
        rc = chat_op_integer(ctx, "conversation_id", 1, 1, &cid);
    }
    if (rc != 1) {
        return rc;
    }

    has_before = chat_op_integer(ctx, "before_seq", 0, 0, &before);
    if (has_before < 0 || ctx->reply != NULL) {
        return has_before < 0 ? -1 : 0;
    }

    has_after = chat_op_integer(ctx, "after_seq", 0, 0, &after);
    if (has_after < 0 || ctx->reply != NULL) {
        return has_after < 0 ? -1 : 0;
    }

    if (chat_limit_parse(cJSON_GetObjectItemCaseSensitive(ctx->body,
                                                           "limit"),
                         CHAT_HISTORY_LIMIT_DEFAULT, CHAT_HISTORY_LIMIT_MAX,
                         &limit) != 0)
    {
        return chat_op_invalid(ctx, "limit must be an integer >= 1 "
                                    "(at most 200 are returned)");
    }

    values[0] = chat_i64(c, cid);
    values[1] = chat_i64(u, ctx->cmd->uid);

    res = chat_db_query_prepared(ctx->db,
        "SELECT c.last_seq FROM conversations c "
        "JOIN conversation_members me ON me.conversation_id = c.id "
        "                            AND me.user_id = $2 "
        "WHERE c.id = $1",
        2, values, NULL, NULL);
    if (res == NULL) {
        return -1;
    }

    if (PQntuples(res) == 0) {
        PQclear(res);
        return chat_op_no_conversation(ctx);
    }

    if (!has_before && !has_after) {
        before = strtoll(PQgetvalue(res, 0, 0), NULL, 10) + 1;
        has_before = 1;
    }

    PQclear(res);

    values[3] = chat_i64(lim, limit + 1);
    reversed = !has_after;

    if (has_after) {
        values[1] = chat_i64(lo, after);
        values[2] = has_before ? chat_i64(hi, before) : NULL;

        res = chat_db_query_prepared(ctx->db,
            "SELECT " CHAT_MSG_COLUMNS("m") " FROM messages m "
            "WHERE m.conversation_id = $1 AND m.seq > $2 "
            "  AND ($3::bigint IS NULL OR m.seq < $3) "
            "ORDER BY m.seq LIMIT $4",
            4, values, NULL, NULL);

    } else {
        values[1] = chat_i64(hi, before);
        values[2] = values[3];

        res = chat_db_query_prepared(ctx->db,
            "SELECT " CHAT_MSG_COLUMNS("m") " FROM messages m "
            "WHERE m.conversation_id = $1 AND m.seq < $2 "
            "ORDER BY m.seq DESC LIMIT $3",
            3, values, NULL, NULL);
    }

    if (res == NULL) {
        return -1;
    }

    n = PQntuples(res);
    rc = -1;

    ctx->reply = cJSON_CreateObject();
    if (ctx->reply == NULL
        || chat_msg_list(ctx->reply, res, n > limit ? (int) limit : n,
                         reversed) != 0
        || cJSON_AddBoolToObject(ctx->reply, "has_more", n > limit) == NULL)
    {
        goto done;
    }

    ctx->status = 200;
    rc = 0;

done:

    PQclear(res);
    return rc;
}

