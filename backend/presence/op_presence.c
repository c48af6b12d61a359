/*
 * op_presence.c: asking about someone's presence, and muting.
 *
 *   presence.get  {user_id}
 *                 -> 200 {"user_id", "status": "online"|"offline",
 *                         "last_seen": RFC 3339 | null}
 *   conv.mute     {conversation_id, muted: true|false}
 *                 -> 200 {"conversation_id", "muted"}
 *
 * Presence is private to the people who share a conversation with the
 * user in which the user accepted them (a request the user has not
 * answered does not count), and to nobody while either has blocked the
 * other: anyone else (and an id that does not exist) gets 404 not_found,
 * the same answer, so the endpoint does not even confirm an id exists.
 * Everybody may ask about themselves.  The answer is what the presence
 * process (presence.c) last recorded in users.presence / last_seen from
 * Redis' online registry; it lags a transition by one stream read.
 *
 * A mute is per member and conversation and only stops offline
 * notifications (notifier.c reads it when it sends); messages, receipts
 * and unread are unchanged.
 */

#include <stdlib.h>
#include <string.h>

#include "conv.h"
#include "log.h"
#include "ops.h"


int
chat_op_presence_get(chat_op_ctx_t *ctx)
{
    int          rc;
    char         me[24], who[24];
    int64_t      uid;
    PGresult    *res;
    const char  *values[2];

    rc = chat_op_require_user(ctx);
    if (rc == 1) {
        rc = chat_op_integer(ctx, "user_id", 1, 1, &uid);
    }
    if (rc != 1) {
        return rc;
    }

    values[0] = chat_i64(me, ctx->cmd->uid);
    values[1] = chat_i64(who, uid);

    res = chat_db_query_prepared(ctx->db,
        "SELECT u.presence, " CHAT_SQL_TIME("u.last_seen") " "
        "FROM users u "
        "WHERE u.id = $2 "
        "  AND ($1 = $2 OR (EXISTS ("
        "       SELECT 1 FROM conversation_members a "
        "       JOIN conversation_members b "
        "         ON b.conversation_id = a.conversation_id "
        "       WHERE a.user_id = $1 AND b.user_id = $2 AND b.accepted) "
        "   AND NOT " CHAT_SQL_BLOCKED("$1::bigint", "$2::bigint") "))",
        2, values, NULL, NULL);
    if (res == NULL) {
        return -1;
    }

    if (PQntuples(res) == 0) {
        PQclear(res);
        return chat_op_error(ctx, 404, "not_found", "no such user");
    }

    rc = -1;
    ctx->reply = cJSON_CreateObject();

    if (ctx->reply != NULL
        && cJSON_AddNumberToObject(ctx->reply, "user_id", (double) uid)
           != NULL
        && cJSON_AddStringToObject(ctx->reply, "status",
                                   PQgetvalue(res, 0, 0)) != NULL
        && (PQgetisnull(res, 0, 1)
            ? cJSON_AddNullToObject(ctx->reply, "last_seen")
            : cJSON_AddStringToObject(ctx->reply, "last_seen",
                                      PQgetvalue(res, 0, 1))) != NULL)
    {
        ctx->status = 200;
        rc = 0;
    }

    PQclear(res);
    return rc;
}


int
chat_op_conv_mute(chat_op_ctx_t *ctx)
{
    int           rc;
    char          c[24], u[24];
    int64_t       cid;
    PGresult     *res;
    const cJSON  *muted;
    const char   *values[3];

    rc = chat_op_require_user(ctx);
    if (rc == 1) {
        rc = chat_op_integer(ctx, "conversation_id", 1, 1, &cid);
    }
    if (rc != 1) {
        return rc;
    }

    muted = cJSON_GetObjectItemCaseSensitive(ctx->body, "muted");
    if (!cJSON_IsBool(muted)) {
        return chat_op_invalid(ctx, "muted must be true or false");
    }

    values[0] = chat_i64(c, cid);
    values[1] = chat_i64(u, ctx->cmd->uid);
    values[2] = cJSON_IsTrue(muted) ? "true" : "false";

    res = chat_db_query(ctx->db,
        "UPDATE conversation_members SET muted = $3 "
        "WHERE conversation_id = $1 AND user_id = $2",
        3, values, NULL, NULL);
    if (res == NULL) {
        return -1;
    }

    rc = atoi(PQcmdTuples(res));
    PQclear(res);

    if (rc == 0) {
        return chat_op_no_conversation(ctx);
    }

    ctx->reply = cJSON_CreateObject();

    if (ctx->reply == NULL
        || cJSON_AddNumberToObject(ctx->reply, "conversation_id", (double) cid)
           == NULL
        || cJSON_AddBoolToObject(ctx->reply, "muted", cJSON_IsTrue(muted))
           == NULL)
    {
        return -1;
    }

    ctx->status = 200;

    return 0;
}
