/*
 * op_msg.c: sending messages and reading history (read markers and
 * receipts are op_receipt.c's).
 *
 *   msg.send     {conversation_id, client_msg_id, text, attachments?}
 *                                                          -> 201 | 200
 *                {"message": {...}}
 *   msg.history  {conversation_id, before_seq?, after_seq?, limit?}
 *                -> 200 {"messages": [...ascending seq], "has_more"}
 *
 * Sending.  A conversation's messages have one order, given by seq, and
 * seqs have no gaps.  msg.send runs as a batch (chat_op_msg_send_batch,
 * called by command.c with every msg.send of a transaction that comes
 * one after the other; a lone one is a batch of one): after checking
 * every command's fields, two statements in one round trip:
 *
 *   1. SELECT ... FROM conversations WHERE id = ANY (...) ORDER BY id
 *      FOR NO KEY UPDATE locks the batch's conversations in ascending
 *      order: senders to one conversation queue here.
 *   2. In a fresh snapshot (so it sees whatever the previous holder of
 *      each lock committed), for every command: is the sender a member?
 *      did this sender already send this client_msg_id?  The members'
 *      commands that are not resends move their conversation's last_seq
 *      by their count, store their messages with the seqs in between, in
 *      the batch's order, and move each sender's read marker to their
 *      last one; all in one statement (data-modifying CTEs), which
 *      answers one row per command, in order, with the members of the
 *      conversation for the fan-out.
 *
 * A non-member's command writes nothing (404), so a batch needs no
 * savepoints: business errors do not touch their batch-mates.  A resend
 * (same conversation, sender and client_msg_id, under any idempotency
 * key; or twice in one batch, where the second is the resend) is
 * answered 200 with the original message and changes nothing, so it
 * never burns a seq.  The unique (conversation_id, sender_id,
 * client_msg_id) backs this up.  The new message is fanned out after
 * the commit as {"type":"message","message":{...}} to every member, the
 * sender included (their other devices); a resend is not.
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
#include "media.h"
#include "ops.h"


/*
 * msg.send for several commands in one statement.  $1..$5 are arrays with
 * an element per command, in the order they run: conversation, sender,
 * client_msg_id, text, attachment ids (a bigint[] literal, checked to be
 * the sender's own uploads by chat_media_message_attachments).  Every
 * conversation named is already locked (by chat_msg_lock_sql, sent just
 * before in the same round trip), so this
 * statement's snapshot, taken after the lock was granted, sees whatever
 * the lock's previous holder committed:
 *
 *   chk   each command: is the sender a member, and an earlier message
 *         with the same (conversation, sender, client_msg_id), if any
 *         (the one lookup of the partitioned messages table: a generic
 *         plan prepares a scan of every partition for each such lookup,
 *         once per statement)
 *   news  the commands that store a message: members, no earlier
 *         message, and the first of the batch with their key (a later
 *         one is a resend of it); n numbers them within a conversation
 *   c     last_seq of each conversation moves by its count of new ones
 *   ins   the new messages, seq = the old last_seq + n: dense, in order,
 *         each with a copy of its attachments' objects (none: NULL)
 *   lnk   the conversations the attachments were sent in: who may now
 *         download them (media/op_media.c)
 *   pend  the senders who had not accepted their conversation: sending
 *         is answering a request, which accepts it
 *   rd    each sender's read (and delivered) marker to their newest seq,
 *         and accepted
 *
 * and one row per command, in order: its ordinal, member, 'new' or 'dup'
 * (null for a non-member), the message (stored now or before), and for a
 * new one the members to fan the event out to (not those who blocked the
 * sender) and whether it answered a request.
 */
static const char  chat_msg_send_sql[] =
    "WITH chk AS ("
    "  SELECT t.i, t.cid, t.uid, t.cmid, t.body, t.att, "
    "    EXISTS (SELECT 1 FROM conversation_members m "
    "            WHERE m.conversation_id = t.cid AND m.user_id = t.uid) "
    "      AS member, "
    "    (SELECT d FROM messages d "
    "     WHERE d.conversation_id = t.cid AND d.sender_id = t.uid "
    "       AND d.client_msg_id = t.cmid) AS dup "
    "  FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[], "
    "              $5::text[]) "
    "       WITH ORDINALITY AS t (cid, uid, cmid, body, att, i)), "
    "news AS ("
    "  SELECT f.*, row_number() OVER (PARTITION BY f.cid ORDER BY f.i) AS n "
    "  FROM (SELECT DISTINCT ON (cid, uid, cmid) * FROM chk "
    "        WHERE member AND (dup).seq IS NULL "
    "        ORDER BY cid, uid, cmid, i) AS f), "
    "c AS ("
    "  UPDATE conversations c "
    "  SET last_seq = c.last_seq + x.cnt, "
    "      last_activity_at = clock_timestamp() "
    "  FROM (SELECT cid, count(*) AS cnt FROM news GROUP BY cid) AS x "
    "  WHERE c.id = x.cid "
    "  RETURNING c.id, c.last_seq - x.cnt AS base), "
    "ins AS ("
    "  INSERT INTO messages (conversation_id, seq, sender_id, "
    "                        client_msg_id, text, created_at, attachments) "
    "  SELECT n.cid, c.base + n.n, n.uid, n.cmid, n.body, clock_timestamp(), "
    "    (SELECT jsonb_agg(attachment_json(a) ORDER BY x.o) "
    "     FROM unnest(n.att::bigint[]) WITH ORDINALITY AS x (aid, o) "
    "     JOIN attachments a ON a.id = x.aid) "
    "  FROM news n JOIN c ON c.id = n.cid "
    "  RETURNING *), "
    "lnk AS ("
    "  INSERT INTO attachment_links (attachment_id, conversation_id) "
    "  SELECT DISTINCT x.aid, n.cid FROM news n "
    "  CROSS JOIN unnest(n.att::bigint[]) AS x (aid) "
    "  ON CONFLICT DO NOTHING), "
    "pend AS ("
    "  SELECT m.conversation_id, m.user_id FROM conversation_members m "
    "  JOIN news n ON n.cid = m.conversation_id AND n.uid = m.user_id "
    "  WHERE NOT m.accepted), "
    "rd AS ("
    "  UPDATE conversation_members m "
    "  SET last_read_seq = x.seq, last_delivered_seq = x.seq, "
    "      accepted = true "
    "  FROM (SELECT conversation_id, sender_id, max(seq) AS seq "
    "        FROM ins GROUP BY conversation_id, sender_id) AS x "
    "  WHERE m.conversation_id = x.conversation_id "
    "    AND m.user_id = x.sender_id) "
    "SELECT k.i, k.member, "
    "       CASE WHEN NOT k.member THEN NULL "
    "            WHEN (k.dup).seq IS NULL AND k.rn = 1 THEN 'new' "
    "            ELSE 'dup' END, "
    CHAT_MSG_COLUMNS("r") ", "
    "       CASE WHEN k.member AND (k.dup).seq IS NULL AND k.rn = 1 THEN "
    "         (SELECT string_agg(f.user_id::text, ',') "
    "          FROM conversation_members f WHERE f.conversation_id = k.cid "
    "            AND NOT EXISTS (SELECT 1 FROM user_blocks b "
    "                            WHERE b.blocker_id = f.user_id "
    "                              AND b.blocked_id = k.uid)) END, "
    "       CASE WHEN k.member AND (k.dup).seq IS NULL AND k.rn = 1 THEN "
    "         EXISTS (SELECT 1 FROM pend p WHERE p.conversation_id = k.cid "
    "                 AND p.user_id = k.uid) END "
    "FROM (SELECT chk.*, row_number() OVER (PARTITION BY cid, uid, cmid "
    "                                       ORDER BY i) AS rn "
    "      FROM chk) AS k "
    "LEFT JOIN LATERAL ("
    "  SELECT * FROM ins "
    "  WHERE k.member AND (k.dup).seq IS NULL "
    "    AND ins.conversation_id = k.cid AND ins.sender_id = k.uid "
    "    AND ins.client_msg_id = k.cmid "
    "  UNION ALL "
    "  SELECT (k.dup).* WHERE (k.dup).seq IS NOT NULL) AS r ON true "
    "ORDER BY k.i";

/* the conversations of a batch, locked in ascending order: senders to one
 * conversation queue here, and two batches never wait for each other in
 * a circle */
static const char  chat_msg_lock_sql[] =
    "SELECT id FROM conversations WHERE id = ANY ($1::bigint[]) "
    "ORDER BY id FOR NO KEY UPDATE";

/* columns of chat_msg_send_sql */
enum {
    CHAT_SEND_COL_ORD = 0,
    CHAT_SEND_COL_MEMBER,
    CHAT_SEND_COL_KIND,
    CHAT_SEND_COL_MSG,
    CHAT_SEND_COL_MEMBERS = CHAT_SEND_COL_MSG + CHAT_MSG_NCOLS,
    CHAT_SEND_COL_ANSWERED
};


int
chat_msg_event(chat_op_ctx_t *ctx, const char *type, const cJSON *msg,
    const char *csv)
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
        || cJSON_AddStringToObject(ev, "type", type) == NULL)
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


/*
 * The input of one msg.send: 1 with *cid, *cmid, *text and *att (the
 * attachment ids, malloc'd) set; 0 after answering it 4xx (no user, a
 * field missing or invalid, an attachment not the sender's); -1 on
 * failure.
 */
static int
chat_msg_send_input(chat_op_ctx_t *ctx, int64_t *cid, const char **cmid,
    const char **text, char **att)
{
    int          rc;
    const char  *why;

    rc = chat_op_require_user(ctx);
    if (rc == 1) {
        rc = chat_op_integer(ctx, "conversation_id", 1, 1, cid);
    }
    if (rc != 1) {
        return rc;
    }

    *cmid = chat_op_string(ctx, "client_msg_id");
    *text = *cmid ? chat_op_string(ctx, "text") : NULL;
    if (*text == NULL) {
        return ctx->reply ? 0 : -1;
    }

    why = chat_client_msg_id_check(*cmid, strlen(*cmid));
    if (why == NULL) {
        why = chat_text_check(*text, strlen(*text));
    }
    if (why != NULL) {
        return chat_op_invalid(ctx, why) == 0 ? 0 : -1;
    }

    return chat_media_message_attachments(ctx, att);
}


/* Answers ctx from row r of chat_msg_send_sql's result. */
static int
chat_msg_send_answer(chat_op_ctx_t *ctx, const PGresult *res, int r)
{
    cJSON  *msg;

    if (strcmp(PQgetvalue(res, r, CHAT_SEND_COL_MEMBER), "t") != 0) {
        return chat_op_no_conversation(ctx);
    }

    msg = chat_msg_json(res, r, CHAT_SEND_COL_MSG);
    ctx->reply = cJSON_CreateObject();
    if (msg == NULL || ctx->reply == NULL) {
        cJSON_Delete(msg);
        return -1;
    }

    cJSON_AddItemToObject(ctx->reply, "message", msg);

    if (strcmp(PQgetvalue(res, r, CHAT_SEND_COL_KIND), "new") != 0) {
        ctx->status = 200;
        return 0;
    }

    ctx->status = 201;

    if (chat_msg_event(ctx, "message", msg,
                       PQgetvalue(res, r, CHAT_SEND_COL_MEMBERS))
        != 0)
    {
        return -1;
    }

    if (strcmp(PQgetvalue(res, r, CHAT_SEND_COL_ANSWERED), "t") != 0) {
        return 0;
    }

    /* the sender answered a request: it is no longer one, for everybody */
    return chat_conv_event(ctx,
                           strtoll(PQgetvalue(res, r, CHAT_SEND_COL_MSG),
                                   NULL, 10));
}


int
chat_op_msg_send_batch(chat_op_ctx_t *ctxs, size_t n)
{
    int              rc, r, rows;
    char            *arrays[5], **atts;
    size_t           i, m, k, *idx;
    int64_t         *cids, *uids;
    const char     **cmids, **texts;
    chat_db_stmt_t   st[2];

    rc = -1;
    memset(arrays, 0, sizeof(arrays));
    memset(st, 0, sizeof(st));

    idx = malloc(n * sizeof(size_t));
    cids = malloc(n * sizeof(int64_t));
    uids = malloc(n * sizeof(int64_t));
    cmids = malloc(n * sizeof(char *));
    texts = malloc(n * sizeof(char *));
    atts = calloc(n, sizeof(char *));

    if (idx == NULL || cids == NULL || uids == NULL || cmids == NULL
        || texts == NULL || atts == NULL)
    {
        goto done;
    }

    /* the invalid ones are answered here and go no further */
    m = 0;

    for (i = 0; i < n; i++) {
        r = chat_msg_send_input(&ctxs[i], &cids[m], &cmids[m], &texts[m],
                                &atts[m]);
        if (r < 0) {
            goto done;
        }
        if (r == 1) {
            uids[m] = ctxs[i].cmd->uid;
            idx[m++] = i;
        }
    }

    if (m == 0) {
        rc = 0;
        goto done;
    }

    arrays[0] = chat_db_int_array(cids, m);
    arrays[1] = chat_db_int_array(uids, m);
    arrays[2] = chat_db_text_array(cmids, m);
    arrays[3] = chat_db_text_array(texts, m);
    arrays[4] = chat_db_text_array((const char **) atts, m);

    if (arrays[0] == NULL || arrays[1] == NULL || arrays[2] == NULL
        || arrays[3] == NULL || arrays[4] == NULL)
    {
        goto done;
    }

    /* the lock, then the statement in a snapshot taken after it: one
     * round trip for the whole batch */
    st[0].sql = chat_msg_lock_sql;
    st[0].prepared = 1;
    st[0].nparams = 1;
    st[0].values = (const char *const *) arrays;

    st[1].sql = chat_msg_send_sql;
    st[1].prepared = 1;
    st[1].nparams = 5;
    st[1].values = (const char *const *) arrays;

    if (chat_db_pipeline(ctxs[0].db, st, 2) != 0) {
        goto done;
    }

    rows = PQntuples(st[1].res);

    if ((size_t) rows != m) {
        chat_log_error("msg.send: %d rows for %zu messages", rows, m);
        goto done;
    }

    for (r = 0; r < rows; r++) {
        k = strtoul(PQgetvalue(st[1].res, r, CHAT_SEND_COL_ORD), NULL, 10);

        if (k != (size_t) r + 1
            || chat_msg_send_answer(&ctxs[idx[r]], st[1].res, r) != 0)
        {
            chat_log_error("msg.send: row %d of %zu could not be answered",
                           r, m);
            goto done;
        }
    }

    rc = 0;

done:

    PQclear(st[0].res);
    PQclear(st[1].res);

    for (i = 0; i < 5; i++) {
        free(arrays[i]);
    }

    for (i = 0; atts != NULL && i < n; i++) {
        free(atts[i]);
    }
    free(atts);

    free(idx);
    free(cids);
    free(uids);
    free(cmids);
    free(texts);

    return rc;
}


int
chat_op_msg_send(chat_op_ctx_t *ctx)
{
    return chat_op_msg_send_batch(ctx, 1);
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
    const char  *values[5];

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

        values[4] = u;

        res = chat_db_query_prepared(ctx->db,
            "SELECT " CHAT_MSG_COLUMNS_SEEN("m", "$5") " FROM messages m "
            "WHERE m.conversation_id = $1 AND m.seq > $2 "
            "  AND ($3::bigint IS NULL OR m.seq < $3) "
            "ORDER BY m.seq LIMIT $4",
            5, values, NULL, NULL);

    } else {
        values[1] = chat_i64(hi, before);
        values[2] = values[3];
        values[3] = u;

        res = chat_db_query_prepared(ctx->db,
            "SELECT " CHAT_MSG_COLUMNS_SEEN("m", "$4") " FROM messages m "
            "WHERE m.conversation_id = $1 AND m.seq < $2 "
            "ORDER BY m.seq DESC LIMIT $3",
            4, values, NULL, NULL);
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

