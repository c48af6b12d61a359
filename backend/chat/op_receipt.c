/*
 * op_receipt.c: read and delivery markers, and the receipts they cause.
 *
 *   conv.read       {conversation_id, seq} -> 200 {conversation_id,
 *                                                   last_read_seq}
 *   conv.delivered  {conversation_id, seq} -> 200 {conversation_id,
 *                                                   last_delivered_seq}
 *   conv.receipts   {conversation_id}      -> 200 {conversation_id,
 *                   receipts: [{user_id, delivered_seq, read_seq}, ...]}
 *
 * Markers.  Each member has last_delivered_seq and last_read_seq in
 * conversation_members: one per user, shared by all their devices (so
 * two devices see the same unread).  Both only move forward and never
 * past last_seq: GREATEST(old, LEAST(seq, last_seq)).  Reading implies
 * delivery, so conv.read moves both.
 *
 * Receipts.  When a marker moved:
 *   - in a direct conversation the other member gets at once
 *     {"type":"receipt","conversation_id","user_id":<reader>,
 *      "kind":"delivered"|"read","seq":<new marker>}
 *     (a read that also moved delivery sends only "read", which implies
 *     it);
 *   - in a group nothing is sent now.  The conversation is put in
 *     receipt_pending, due one receipt window later (INSERT ... ON
 *     CONFLICT DO NOTHING: a thousand members reading within the window
 *     cost one row).  When it is due, the presence process
 *     (presence.c) sends the coalesced receipt: per kind, the highest
 *     seq every member has reached, to the senders of the messages it
 *     newly covers:
 *     {"type":"receipt","conversation_id","user_id":null,"kind","seq",
 *      "aggregate":true}
 *     so a sender hears at most two receipts (delivered, read) per
 *     window per group, however large the group.  Who has reached what
 *     in detail is conv.receipts (GET .../receipts), for any member.
 *
 * What it does not do: check that a reader saw what it marks (clients
 * say so), or tell the reader's own other devices (their unread comes
 * from conv.list and sync, which read the shared marker).
 */

#include <stdlib.h>
#include <string.h>

#include "conv.h"
#include "conv_input.h"
#include "log.h"
#include "ops.h"
#include "roles.h"


typedef enum {
    CHAT_MARK_DELIVERED = 0,
    CHAT_MARK_READ
} chat_mark_e;


/* columns of the marker update */
enum {
    CHAT_MARK_COL_READ = 0,
    CHAT_MARK_COL_OLD_READ,
    CHAT_MARK_COL_DELIVERED,
    CHAT_MARK_COL_OLD_DELIVERED,
    CHAT_MARK_COL_TYPE,
    CHAT_MARK_COL_OTHERS
};


/* {"type":"receipt","conversation_id","user_id","kind","seq"} for the
 * members in csv. */
static int
chat_receipt_event(chat_op_ctx_t *ctx, int64_t cid, const char *kind,
    const char *seq, const char *csv)
{
    int       rc;
    long      n;
    cJSON    *ev;
    int64_t  *ids;

    n = chat_csv_ids_alloc(csv, &ids);
    ev = cJSON_CreateObject();
    rc = -1;

    if (n >= 0 && ev != NULL
        && cJSON_AddStringToObject(ev, "type", "receipt") != NULL
        && cJSON_AddNumberToObject(ev, "conversation_id", (double) cid)
           != NULL
        && cJSON_AddNumberToObject(ev, "user_id", (double) ctx->cmd->uid)
           != NULL
        && cJSON_AddStringToObject(ev, "kind", kind) != NULL
        && cJSON_AddNumberToObject(ev, "seq", strtod(seq, NULL)) != NULL)
    {
        rc = n > 0 ? chat_op_event(ctx, ev, ids, (size_t) n) : 0;
    }

    cJSON_Delete(ev);
    free(ids);
    return rc;
}


static int
chat_receipt_mark(chat_op_ctx_t *ctx, chat_mark_e mark)
{
    int          rc, read_moved, delivered_moved;
    char         c[24], u[24], s[24], w[24];
    cJSON       *reply;
    int64_t      cid, seq;
    PGresult    *res;
    const char  *values[4], *sql, *others;

    rc = chat_op_require_user(ctx);
    if (rc == 1) {
        rc = chat_op_integer(ctx, "conversation_id", 1, 1, &cid);
    }
    if (rc == 1) {
        rc = chat_op_integer(ctx, "seq", 0, 1, &seq);
    }
    if (rc != 1) {
        return rc;
    }

    values[0] = chat_i64(c, cid);
    values[1] = chat_i64(u, ctx->cmd->uid);
    values[2] = chat_i64(s, seq);

    /* o is the row before the update (the statement's snapshot) */
    if (mark == CHAT_MARK_READ) {
        sql =
        "UPDATE conversation_members m "
        "SET last_read_seq = GREATEST(m.last_read_seq, LEAST($3, c.last_seq)),"
        "    last_delivered_seq = GREATEST(m.last_delivered_seq, "
        "                                  LEAST($3, c.last_seq)) "
        "FROM conversations c, conversation_members o "
        "WHERE c.id = m.conversation_id "
        "  AND m.conversation_id = $1 AND m.user_id = $2 "
        "  AND o.conversation_id = $1 AND o.user_id = $2 "
        "RETURNING m.last_read_seq, o.last_read_seq, "
        "  m.last_delivered_seq, o.last_delivered_seq, c.type, "
        "  (SELECT string_agg(x.user_id::text, ',') "
        "   FROM conversation_members x "
        "   WHERE x.conversation_id = $1 AND x.user_id <> $2 "
        "     AND o.accepted "
        "     AND NOT " CHAT_SQL_BLOCKED("x.user_id", "$2") ")";

    } else {
        sql =
        "UPDATE conversation_members m "
        "SET last_delivered_seq = GREATEST(m.last_delivered_seq, "
        "                                  LEAST($3, c.last_seq)) "
        "FROM conversations c, conversation_members o "
        "WHERE c.id = m.conversation_id "
        "  AND m.conversation_id = $1 AND m.user_id = $2 "
        "  AND o.conversation_id = $1 AND o.user_id = $2 "
        "RETURNING m.last_read_seq, o.last_read_seq, "
        "  m.last_delivered_seq, o.last_delivered_seq, c.type, "
        "  (SELECT string_agg(x.user_id::text, ',') "
        "   FROM conversation_members x "
        "   WHERE x.conversation_id = $1 AND x.user_id <> $2 "
        "     AND o.accepted "
        "     AND NOT " CHAT_SQL_BLOCKED("x.user_id", "$2") ")";
    }

    res = chat_db_query_prepared(ctx->db, sql, 3, values, NULL, NULL);
    if (res == NULL) {
        return -1;
    }

    if (PQntuples(res) == 0) {
        PQclear(res);
        return chat_op_no_conversation(ctx);
    }

    read_moved = strcmp(PQgetvalue(res, 0, CHAT_MARK_COL_READ),
                        PQgetvalue(res, 0, CHAT_MARK_COL_OLD_READ)) != 0;
    delivered_moved = strcmp(PQgetvalue(res, 0, CHAT_MARK_COL_DELIVERED),
                             PQgetvalue(res, 0, CHAT_MARK_COL_OLD_DELIVERED))
                      != 0;
    others = PQgetvalue(res, 0, CHAT_MARK_COL_OTHERS);
    rc = 0;

    if (!read_moved && !delivered_moved) {
        /* nothing new: nobody hears anything */

    } else if (strcmp(PQgetvalue(res, 0, CHAT_MARK_COL_TYPE), "direct") == 0)
    {
        rc = read_moved
             ? chat_receipt_event(ctx, cid, "read",
                                  PQgetvalue(res, 0, CHAT_MARK_COL_READ),
                                  others)
             : chat_receipt_event(ctx, cid, "delivered",
                                  PQgetvalue(res, 0, CHAT_MARK_COL_DELIVERED),
                                  others);

    } else {
        PGresult  *due;

        values[1] = chat_i64(w, chat_roles.receipt_window_ms);

        due = chat_db_query_prepared(ctx->db,
            "INSERT INTO receipt_pending (conversation_id, due_at) "
            "VALUES ($1, clock_timestamp() "
            "            + $2::bigint * interval '1 millisecond') "
            "ON CONFLICT (conversation_id) DO NOTHING",
            2, values, NULL, NULL);

        rc = due ? 0 : -1;
        PQclear(due);
    }

    if (rc != 0) {
        PQclear(res);
        return -1;
    }

    reply = cJSON_CreateObject();

    if (reply == NULL
        || cJSON_AddNumberToObject(reply, "conversation_id", (double) cid)
           == NULL
        || cJSON_AddNumberToObject(reply,
               mark == CHAT_MARK_READ ? "last_read_seq" : "last_delivered_seq",
               strtod(PQgetvalue(res, 0, mark == CHAT_MARK_READ
                                          ? CHAT_MARK_COL_READ
                                          : CHAT_MARK_COL_DELIVERED),
                      NULL)) == NULL)
    {
        cJSON_Delete(reply);
        PQclear(res);
        return -1;
    }

    PQclear(res);

    ctx->reply = reply;
    ctx->status = 200;

    return 0;
}


int
chat_op_conv_read(chat_op_ctx_t *ctx)
{
    return chat_receipt_mark(ctx, CHAT_MARK_READ);
}


int
chat_op_conv_delivered(chat_op_ctx_t *ctx)
{
    return chat_receipt_mark(ctx, CHAT_MARK_DELIVERED);
}


int
chat_op_conv_receipts(chat_op_ctx_t *ctx)
{
    int          rc, i, n;
    char         c[24], u[24];
    cJSON       *list, *item;
    int64_t      cid;
    PGresult    *res;
    const char  *values[2];

    rc = chat_op_require_user(ctx);
    if (rc == 1) {
        rc = chat_op_integer(ctx, "conversation_id", 1, 1, &cid);
    }
    if (rc != 1) {
        return rc;
    }

    values[0] = chat_i64(c, cid);
    values[1] = chat_i64(u, ctx->cmd->uid);

    res = chat_db_query_prepared(ctx->db,
        "SELECT m.user_id, m.last_delivered_seq, m.last_read_seq "
        "FROM conversation_members m "
        "WHERE m.conversation_id = $1 "
        "  AND EXISTS (SELECT 1 FROM conversation_members me "
        "              WHERE me.conversation_id = $1 AND me.user_id = $2) "
        "  AND (m.user_id = $2 OR (m.accepted "
        "       AND NOT " CHAT_SQL_BLOCKED("m.user_id", "$2::bigint") ")) "
        "ORDER BY m.user_id",
        2, values, NULL, NULL);
    if (res == NULL) {
        return -1;
    }

    n = PQntuples(res);
    if (n == 0) {
        PQclear(res);
        return chat_op_no_conversation(ctx);
    }

    rc = -1;
    ctx->reply = cJSON_CreateObject();
    if (ctx->reply == NULL
        || cJSON_AddNumberToObject(ctx->reply, "conversation_id", (double) cid)
           == NULL
        || (list = cJSON_AddArrayToObject(ctx->reply, "receipts")) == NULL)
    {
        goto done;
    }

    for (i = 0; i < n; i++) {
        item = cJSON_CreateObject();
        if (item == NULL) {
            goto done;
        }
        cJSON_AddItemToArray(list, item);

        if (cJSON_AddNumberToObject(item, "user_id",
                strtod(PQgetvalue(res, i, 0), NULL)) == NULL
            || cJSON_AddNumberToObject(item, "delivered_seq",
                   strtod(PQgetvalue(res, i, 1), NULL)) == NULL
            || cJSON_AddNumberToObject(item, "read_seq",
                   strtod(PQgetvalue(res, i, 2), NULL)) == NULL)
        {
            goto done;
        }
    }

    ctx->status = 200;
    rc = 0;

done:

    PQclear(res);
    return rc;
}
