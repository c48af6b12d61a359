/*
 * op_msg_change.c: a sender edits or deletes their own message.
 *
 *   msg.edit    {conversation_id, seq, text}  -> 200 {"message": {...}}
 *   msg.delete  {conversation_id, seq}        -> 200 {"message": {...}}
 *
 * Who may.  Only the sender, and only while a member: anyone who is not
 * a member gets 404 "no such conversation" (as for every chat op), a
 * member asking for a seq that does not exist gets 404 "no such message",
 * a member changing someone else's message gets 403 forbidden.  Editing a
 * deleted message is 409 message_deleted; deleting it again answers the
 * tombstone (200) and changes nothing.  An edit to the text it already
 * has also changes nothing.  Nothing that changes nothing sends an event.
 *
 * Order.  A change takes the conversation's row lock first (FOR NO KEY
 * UPDATE, as msg.send does; the batch order relies on every chat lock
 * being its conversation's), then, in a snapshot taken after the lock,
 * raises conversations.last_edit_seq by one and gives the message that
 * edit_seq.  The lock is held to the commit, so a conversation's changes
 * commit in edit_seq order: whoever sees edit_seq n has every change
 * below it.  Clients keep, per message, the copy with the highest
 * edit_seq, whatever order the copies arrive in (an event, a history page
 * read just before the change, a sync), and sync answers every change
 * past the client's edit cursor (op_sync.c), so a change missed live is
 * never stale for good.
 *
 * A deleted message keeps its seq, sender and time (no client sees a
 * gap) and loses its text: the row's text becomes '' (the CHECK of
 * sql/009_chat_people.sql allows it only with deleted_at), so nothing of
 * it is kept, searched or shown again.
 *
 * The changed message goes to every member's devices as
 * {"type":"message_update","message":{...}}, the sender's included,
 * except to members who blocked the sender (they never got its text).
 */

#include <stdlib.h>
#include <string.h>

#include "conv.h"
#include "conv_input.h"
#include "ops.h"


/* the conversation's row lock, and whether the caller is a member */
static const char  chat_msg_change_lock_sql[] =
    "SELECT c.id FROM conversations c "
    "JOIN conversation_members me ON me.conversation_id = c.id "
    "                            AND me.user_id = $2 "
    "WHERE c.id = $1 "
    "FOR NO KEY UPDATE OF c";

/* the message as it is now (after the lock: the newest committed copy) */
static const char  chat_msg_change_read_sql[] =
    "SELECT m.sender_id, m.deleted_at IS NOT NULL, m.text = $3::text, "
    CHAT_MSG_COLUMNS("m") " "
    "FROM messages m WHERE m.conversation_id = $1 AND m.seq = $2";

enum {
    CHAT_CHANGE_COL_SENDER = 0,
    CHAT_CHANGE_COL_DELETED,
    CHAT_CHANGE_COL_SAME,
    CHAT_CHANGE_COL_MSG
};

/*
 * The change: $3 is the new text, or NULL for a deletion.  Answers the
 * message as changed and the members to tell (not those who blocked the
 * sender).
 */
static const char  chat_msg_change_sql[] =
    "WITH c AS ("
    "  UPDATE conversations SET last_edit_seq = last_edit_seq + 1 "
    "  WHERE id = $1 RETURNING last_edit_seq), "
    "u AS ("
    "  UPDATE messages m "
    "  SET text = coalesce($3::text, ''), "
    "      edited_at = CASE WHEN $3::text IS NULL THEN m.edited_at "
    "                       ELSE clock_timestamp() END, "
    "      deleted_at = CASE WHEN $3::text IS NULL "
    "                        THEN clock_timestamp() END, "
    "      edit_seq = c.last_edit_seq "
    "  FROM c WHERE m.conversation_id = $1 AND m.seq = $2 "
    "  RETURNING m.*) "
    "SELECT " CHAT_MSG_COLUMNS("u") ", "
    "  (SELECT string_agg(f.user_id::text, ',') "
    "   FROM conversation_members f WHERE f.conversation_id = $1 "
    "     AND NOT EXISTS (SELECT 1 FROM user_blocks b "
    "                     WHERE b.blocker_id = f.user_id "
    "                       AND b.blocked_id = u.sender_id)) "
    "FROM u";


/* Answers 200 {"message": the message in row 0 of res from col}. */
static int
chat_msg_change_answer(chat_op_ctx_t *ctx, const PGresult *res, int col)
{
    cJSON  *msg;

    msg = chat_msg_json(res, 0, col);
    ctx->reply = cJSON_CreateObject();
    if (msg == NULL || ctx->reply == NULL) {
        cJSON_Delete(msg);
        return -1;
    }

    cJSON_AddItemToObject(ctx->reply, "message", msg);
    ctx->status = 200;
    return 0;
}


/* msg.edit (text set) and msg.delete (text NULL) */
static int
chat_msg_change(chat_op_ctx_t *ctx, const char *text)
{
    int          rc;
    char         c[24], s[24], u[24];
    int64_t      cid, seq, sender;
    PGresult    *res;
    const char  *values[3];

    rc = chat_op_integer(ctx, "conversation_id", 1, 1, &cid);
    if (rc == 1) {
        rc = chat_op_integer(ctx, "seq", 1, 1, &seq);
    }
    if (rc != 1) {
        return rc;
    }

    values[0] = chat_i64(c, cid);
    values[1] = chat_i64(u, ctx->cmd->uid);

    res = chat_db_query_prepared(ctx->db, chat_msg_change_lock_sql, 2,
                                 values, NULL, NULL);
    if (res == NULL) {
        return -1;
    }

    rc = PQntuples(res);
    PQclear(res);

    if (rc == 0) {
        return chat_op_no_conversation(ctx);
    }

    values[1] = chat_i64(s, seq);
    values[2] = text;

    res = chat_db_query_prepared(ctx->db, chat_msg_change_read_sql, 3,
                                 values, NULL, NULL);
    if (res == NULL) {
        return -1;
    }

    if (PQntuples(res) == 0) {
        PQclear(res);
        return chat_op_error(ctx, 404, "not_found", "no such message");
    }

    sender = strtoll(PQgetvalue(res, 0, CHAT_CHANGE_COL_SENDER), NULL, 10);

    if (sender != ctx->cmd->uid) {
        PQclear(res);
        return chat_op_error(ctx, 403, "forbidden",
                             "only the sender may change a message");
    }

    if (PQgetvalue(res, 0, CHAT_CHANGE_COL_DELETED)[0] == 't') {
        if (text != NULL) {
            PQclear(res);
            return chat_op_error(ctx, 409, "message_deleted",
                                 "a deleted message cannot be edited");
        }

        /* deleted already: the tombstone, nothing changes */
        rc = chat_msg_change_answer(ctx, res, CHAT_CHANGE_COL_MSG);
        PQclear(res);
        return rc;
    }

    if (text != NULL && PQgetvalue(res, 0, CHAT_CHANGE_COL_SAME)[0] == 't') {
        rc = chat_msg_change_answer(ctx, res, CHAT_CHANGE_COL_MSG);
        PQclear(res);
        return rc;
    }

    PQclear(res);

    res = chat_db_query_prepared(ctx->db, chat_msg_change_sql, 3, values,
                                 NULL, NULL);
    if (res == NULL) {
        return -1;
    }

    rc = -1;

    if (PQntuples(res) == 1
        && chat_msg_change_answer(ctx, res, 0) == 0
        && chat_msg_event(ctx, "message_update",
                          cJSON_GetObjectItemCaseSensitive(ctx->reply,
                                                           "message"),
                          PQgetvalue(res, 0, CHAT_MSG_NCOLS)) == 0)
    {
        rc = 0;
    }

    PQclear(res);
    return rc;
}


int
chat_op_msg_edit(chat_op_ctx_t *ctx)
{
    int          rc;
    const char  *text, *why;

    rc = chat_op_require_user(ctx);
    if (rc != 1) {
        return rc;
    }

    text = chat_op_string(ctx, "text");
    if (text == NULL) {
        return ctx->reply ? 0 : -1;
    }

    why = chat_text_check(text, strlen(text));
    if (why != NULL) {
        return chat_op_invalid(ctx, why);
    }

    return chat_msg_change(ctx, text);
}


int
chat_op_msg_delete(chat_op_ctx_t *ctx)
{
    int  rc;

    rc = chat_op_require_user(ctx);
    if (rc != 1) {
        return rc;
    }

    return chat_msg_change(ctx, NULL);
}
