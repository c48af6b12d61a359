/*
 * op_sync.c: catching a client up after it was away.
 *
 *   sync  {cursors: {"<conversation_id>": last_seq_seen, ...}, limit?}
 *         -> 200 {conversations: [...], messages: [...],
 *                 cursors: {"<conversation_id>": seq, ...}, has_more}
 *
 * A client keeps, per conversation, the highest seq it has.  It sends
 * them all; it gets back
 *
 *   - conversations: the full object of every conversation of the caller
 *     that is not among the cursors (new to this client: created, or
 *     joined, while it was away), newest activity first;
 *   - messages: what it missed, seq > cursor (> 0 for a new
 *     conversation), ordered by conversation id then seq, at most limit
 *     (default 500, at most 1000) in all;
 *   - cursors: for every conversation of the caller, the highest seq this
 *     answer includes, else the cursor the client sent (0 for a new
 *     conversation).  Sent back as they are, they page on: the client
 *     calls sync again with them while has_more is true.
 *
 * Cursors of conversations the caller is not (or no longer) a member of
 * are ignored, and never answered: nothing says whether they exist.
 *
 * Edits and deletes (op_msg_change.c).  A client that sends
 * "edit_cursors" ({"<conversation_id>": edit_seq}, the highest edit_seq
 * it has caught up to; a conversation left out counts as 0) also gets
 *
 *   - updates: the current copy of every message changed after its edit
 *     cursor (edit_seq > it) whose seq is at most the conversation's new
 *     cursor in this answer, ordered by conversation id then edit_seq,
 *     at most limit in all;
 *   - edit_cursors: per conversation of the set, the highest edit_seq
 *     included, else the one sent.
 *
 * Bounding updates by the *new* cursor, read after the messages, is what
 * keeps an edit racing the sync from being lost: a message this answer
 * carries was read in an earlier snapshot than its change may have been,
 * so the change comes along as an update; a message it does not carry
 * yet comes later, read after this answer and so with every change the
 * edit cursor skips.  Changes commit in edit_seq order per conversation
 * (the row lock), so an edit cursor never passes one not yet visible.
 *
 * Three reads, one consistent story.  The first read fixes the set of
 * the caller's conversations and their cursors; the other two only look
 * at that set (and re-check membership), so a conversation created
 * between them is not half-reported (messages and a cursor but no
 * object, after which the client would never be sent the object): it is
 * simply left for the next sync.  Messages committed meanwhile may be
 * included; the cursors then say so.
 *
 * What it does not do: presence, receipts or typing (not stored), or
 * remove conversations the client has but the caller left (a client that
 * sends a cursor for one gets nothing about it, and can drop it).
 */

#include <stdlib.h>
#include <string.h>

#include "conv.h"
#include "conv_input.h"
#include "log.h"
#include "ops.h"


typedef struct {
    size_t    n;
    int64_t  *cid;          /* the caller's conversations, ascending */
    int64_t  *after;        /* the client's cursor, 0 when new */
    int64_t  *unseen;       /* those without a cursor */
    size_t    n_unseen;
} chat_sync_set_t;


static void
chat_sync_set_free(chat_sync_set_t *set)
{
    free(set->cid);
    free(set->after);
    free(set->unseen);
}


/* Reads the caller's conversations and joins the client's cursors in. */
static int
chat_sync_read_set(chat_op_ctx_t *ctx, const chat_cursor_t *cur, size_t n,
    chat_sync_set_t *set)
{
    int          i, rows;
    char         u[24];
    size_t       k;
    int64_t     *ids, *seqs;
    PGresult    *res;
    const char  *values[3];

    memset(set, 0, sizeof(*set));

    ids = malloc((n + 1) * sizeof(int64_t));
    seqs = malloc((n + 1) * sizeof(int64_t));
    if (ids == NULL || seqs == NULL) {
        free(ids);
        free(seqs);
        return -1;
    }

    for (k = 0; k < n; k++) {
        ids[k] = cur[k].conversation_id;
        seqs[k] = cur[k].seq;
    }

    values[0] = chat_i64(u, ctx->cmd->uid);
    values[1] = chat_db_int_array(ids, n);
    values[2] = chat_db_int_array(seqs, n);
    free(ids);
    free(seqs);

    res = NULL;
    if (values[1] != NULL && values[2] != NULL) {
        res = chat_db_query(ctx->db,
            "SELECT me.conversation_id, cur.seq "
            "FROM conversation_members me "
            "LEFT JOIN unnest($2::bigint[], $3::bigint[]) AS cur(cid, seq) "
            "       ON cur.cid = me.conversation_id "
            "WHERE me.user_id = $1 "
            "ORDER BY me.conversation_id",
            3, values, NULL, NULL);
    }

    free((char *) values[1]);
    free((char *) values[2]);

    if (res == NULL) {
        return -1;
    }

    rows = PQntuples(res);

    set->cid = malloc((rows + 1) * sizeof(int64_t));
    set->after = malloc((rows + 1) * sizeof(int64_t));
    set->unseen = malloc((rows + 1) * sizeof(int64_t));

    if (set->cid == NULL || set->after == NULL || set->unseen == NULL) {
        PQclear(res);
        chat_sync_set_free(set);
        return -1;
    }

    for (i = 0; i < rows; i++) {
        set->cid[i] = strtoll(PQgetvalue(res, i, 0), NULL, 10);

        if (PQgetisnull(res, i, 1)) {
            set->after[i] = 0;
            set->unseen[set->n_unseen++] = set->cid[i];
        } else {
            set->after[i] = strtoll(PQgetvalue(res, i, 1), NULL, 10);
        }
    }

    set->n = (size_t) rows;
    PQclear(res);

    return 0;
}


/* The messages after each cursor of set, at most limit + 1 rows. */
static PGresult *
chat_sync_messages(chat_op_ctx_t *ctx, const chat_sync_set_t *set,
    int64_t limit)
{
    char         u[24], lim[24];
    PGresult    *res;
    const char  *values[4];

    values[0] = chat_i64(u, ctx->cmd->uid);
    values[1] = chat_db_int_array(set->cid, set->n);
    values[2] = chat_db_int_array(set->after, set->n);
    values[3] = chat_i64(lim, limit + 1);

    res = NULL;
    if (values[1] != NULL && values[2] != NULL) {
        res = chat_db_query(ctx->db,
            "SELECT " CHAT_MSG_COLUMNS_SEEN("m", "$1") " "
            "FROM unnest($2::bigint[], $3::bigint[]) AS s(cid, after) "
            "JOIN conversation_members me ON me.conversation_id = s.cid "
            "                            AND me.user_id = $1 "
            "JOIN conversations c ON c.id = s.cid AND c.last_seq > s.after "
            "CROSS JOIN LATERAL ("
            "  SELECT * FROM messages x "
            "  WHERE x.conversation_id = s.cid AND x.seq > s.after "
            "  ORDER BY x.seq LIMIT $4) AS m "
            "ORDER BY m.conversation_id, m.seq "
            "LIMIT $4",
            4, values, NULL, NULL);
    }

    free((char *) values[1]);
    free((char *) values[2]);

    return res;
}


/* The cursor of every conversation of set after this answer: the highest
 * seq among the first n rows of msgs, else the one sent, into upto. */
static void
chat_sync_new_cursors(const chat_sync_set_t *set, const PGresult *msgs,
    int n, int64_t *upto)
{
    int       i;
    size_t    k;
    int64_t   cid;

    /* set and messages are both in conversation order: one merge walk */
    i = 0;

    for (k = 0; k < set->n; k++) {
        upto[k] = set->after[k];

        for ( ;; ) {
            if (i >= n) {
                break;
            }
            cid = strtoll(PQgetvalue(msgs, i, 0), NULL, 10);
            if (cid > set->cid[k]) {
                break;
            }
            if (cid == set->cid[k]) {
                upto[k] = strtoll(PQgetvalue(msgs, i, 1), NULL, 10);
            }
            i++;
        }
    }
}


/* {"<cid>": v[k]} for every conversation of set, as name in reply. */
static int
chat_sync_cursor_object(cJSON *reply, const char *name,
    const chat_sync_set_t *set, const int64_t *v)
{
    char     key[24];
    size_t   k;
    cJSON   *obj;

    obj = cJSON_AddObjectToObject(reply, name);
    if (obj == NULL) {
        return -1;
    }

    for (k = 0; k < set->n; k++) {
        if (cJSON_AddNumberToObject(obj, chat_i64(key, set->cid[k]),
                                    (double) v[k]) == NULL)
        {
            return -1;
        }
    }

    return 0;
}


/* The rows [0, n) of res as messages, into a new array name of reply. */
static int
chat_sync_message_list(cJSON *reply, const char *name, const PGresult *res,
    int n)
{
    int     i;
    cJSON  *list, *item;

    list = cJSON_AddArrayToObject(reply, name);
    if (list == NULL) {
        return -1;
    }

    for (i = 0; i < n; i++) {
        item = chat_msg_json(res, i, 0);
        if (item == NULL) {
            return -1;
        }
        cJSON_AddItemToArray(list, item);
    }

    return 0;
}


/* Builds the reply from the unseen conversations, the messages (of
 * which the first n are sent) and the new cursors. */
static int
chat_sync_reply(chat_op_ctx_t *ctx, const chat_sync_set_t *set,
    const PGresult *convs, const PGresult *msgs, int n, const int64_t *upto)
{
    cJSON  *reply;

    reply = chat_conv_list_json(convs, ctx->cmd->uid);
    if (reply == NULL) {
        return -1;
    }

    if (chat_sync_message_list(reply, "messages", msgs, n) != 0
        || chat_sync_cursor_object(reply, "cursors", set, upto) != 0)
    {
        cJSON_Delete(reply);
        return -1;
    }

    ctx->reply = reply;
    ctx->status = 200;

    return 0;
}


/*
 * The changes past the client's edit cursors (ecur, ne of them, sorted)
 * of the messages up to each new cursor (upto): "updates" and
 * "edit_cursors" added to ctx->reply.  *more says whether limit cut
 * them short.  0, or -1.
 */
static int
chat_sync_updates(chat_op_ctx_t *ctx, const chat_sync_set_t *set,
    const int64_t *upto, const chat_cursor_t *ecur, size_t ne,
    int64_t limit, int *more)
{
    int          i, n, rc;
    char         u[24], lim[24];
    size_t       k, j;
    int64_t     *edit, cid;
    PGresult    *res;
    const char  *values[5];

    rc = -1;
    res = NULL;
    values[1] = values[2] = values[3] = NULL;

    edit = malloc((set->n + 1) * sizeof(int64_t));
    if (edit == NULL) {
        return -1;
    }

    /* both sorted by conversation id */
    for (k = 0, j = 0; k < set->n; k++) {
        while (j < ne && ecur[j].conversation_id < set->cid[k]) {
            j++;
        }
        edit[k] = (j < ne && ecur[j].conversation_id == set->cid[k])
                  ? ecur[j].seq : 0;
    }

    values[0] = chat_i64(u, ctx->cmd->uid);
    values[1] = chat_db_int_array(set->cid, set->n);
    values[2] = chat_db_int_array(upto, set->n);
    values[3] = chat_db_int_array(edit, set->n);
    values[4] = chat_i64(lim, limit + 1);

    if (values[1] == NULL || values[2] == NULL || values[3] == NULL) {
        goto done;
    }

    res = chat_db_query(ctx->db,
        "SELECT " CHAT_MSG_COLUMNS_SEEN("m", "$1") " "
        "FROM unnest($2::bigint[], $3::bigint[], $4::bigint[]) "
        "     AS s(cid, upto, edit) "
        "JOIN conversation_members me ON me.conversation_id = s.cid "
        "                            AND me.user_id = $1 "
        "JOIN conversations c ON c.id = s.cid "
        "                    AND c.last_edit_seq > s.edit "
        "CROSS JOIN LATERAL ("
        "  SELECT * FROM messages x "
        "  WHERE x.conversation_id = s.cid AND x.edit_seq > s.edit "
        "    AND x.seq <= s.upto "
        "  ORDER BY x.edit_seq LIMIT $5) AS m "
        "ORDER BY m.conversation_id, m.edit_seq "
        "LIMIT $5",
        5, values, NULL, NULL);
    if (res == NULL) {
        goto done;
    }

    n = PQntuples(res);
    *more = n > limit;
    if (n > limit) {
        n = (int) limit;
    }

    /* the edit cursor moves to the last change included */
    for (i = 0, k = 0; i < n; i++) {
        cid = strtoll(PQgetvalue(res, i, 0), NULL, 10);
        while (k < set->n && set->cid[k] < cid) {
            k++;
        }
        if (k < set->n && set->cid[k] == cid) {
            edit[k] = strtoll(PQgetvalue(res, i, CHAT_MSG_COL_EDIT_SEQ),
                              NULL, 10);
        }
    }

    if (chat_sync_message_list(ctx->reply, "updates", res, n) != 0
        || chat_sync_cursor_object(ctx->reply, "edit_cursors", set, edit)
           != 0)
    {
        goto done;
    }

    rc = 0;

done:

    PQclear(res);
    free((char *) values[1]);
    free((char *) values[2]);
    free((char *) values[3]);
    free(edit);

    return rc;
}


int
chat_op_sync(chat_op_ctx_t *ctx)
{
    int              rc, n, more, more_edits;
    size_t           ncur, room, nedit;
    int64_t          limit, *upto;
    PGresult        *convs, *msgs;
    const char      *why;
    const cJSON     *item, *edits;
    chat_cursor_t   *cur, *ecur;
    chat_sync_set_t  set;

    rc = chat_op_require_user(ctx);
    if (rc != 1) {
        return rc;
    }

    item = cJSON_GetObjectItemCaseSensitive(ctx->body, "cursors");
    if (cJSON_IsNull(item)) {
        item = NULL;
    }

    room = cJSON_IsObject(item) ? (size_t) cJSON_GetArraySize(item) : 0;
    if (room > CHAT_SYNC_MAX_CURSORS) {
        return chat_op_invalid(ctx, "cursors has too many conversations "
                                    "(at most 10000)");
    }

    if (chat_limit_parse(cJSON_GetObjectItemCaseSensitive(ctx->body,
                                                           "limit"),
                         CHAT_SYNC_LIMIT_DEFAULT, CHAT_SYNC_LIMIT_MAX,
                         &limit) != 0)
    {
        return chat_op_invalid(ctx, "limit must be an integer >= 1 "
                                    "(at most 1000 are returned)");
    }

    cur = malloc((room + 1) * sizeof(chat_cursor_t));
    if (cur == NULL) {
        return -1;
    }

    why = chat_cursors_parse(item, cur, room, &ncur);
    if (why != NULL) {
        free(cur);
        return chat_op_invalid(ctx, why);
    }

    /* edit_cursors: the same shape as cursors, and only when sent */
    edits = cJSON_GetObjectItemCaseSensitive(ctx->body, "edit_cursors");
    if (cJSON_IsNull(edits)) {
        edits = NULL;
    }

    ecur = NULL;
    nedit = 0;

    if (edits != NULL) {
        room = cJSON_IsObject(edits) ? (size_t) cJSON_GetArraySize(edits)
                                     : 0;
        if (room > CHAT_SYNC_MAX_CURSORS) {
            free(cur);
            return chat_op_invalid(ctx, "edit_cursors has too many "
                                        "conversations (at most 10000)");
        }

        ecur = malloc((room + 1) * sizeof(chat_cursor_t));
        if (ecur == NULL) {
            free(cur);
            return -1;
        }

        why = chat_cursors_parse(edits, ecur, room, &nedit);
        if (why != NULL) {
            free(cur);
            free(ecur);
            return chat_op_invalid(ctx, "edit_cursors must map "
                                        "conversation ids to integers "
                                        ">= 0");
        }
    }

    rc = chat_sync_read_set(ctx, cur, ncur, &set);
    free(cur);

    if (rc != 0) {
        free(ecur);
        return -1;
    }

    convs = NULL;
    msgs = NULL;
    upto = NULL;
    rc = -1;

    convs = chat_conv_of_user(ctx->db, ctx->cmd->uid, set.unseen,
                              set.n_unseen);
    if (convs == NULL) {
        goto done;
    }

    msgs = chat_sync_messages(ctx, &set, limit);
    if (msgs == NULL) {
        goto done;
    }

    n = PQntuples(msgs);
    more = n > limit;
    if (more) {
        n = (int) limit;
    }

    upto = malloc((set.n + 1) * sizeof(int64_t));
    if (upto == NULL) {
        goto done;
    }

    chat_sync_new_cursors(&set, msgs, n, upto);

    if (chat_sync_reply(ctx, &set, convs, msgs, n, upto) != 0) {
        goto done;
    }

    more_edits = 0;

    if (edits != NULL
        && chat_sync_updates(ctx, &set, upto, ecur, nedit, limit,
                             &more_edits) != 0)
    {
        goto done;
    }

    if (cJSON_AddBoolToObject(ctx->reply, "has_more", more || more_edits)
        == NULL)
    {
        goto done;
    }

    rc = 0;

done:

    if (rc != 0) {
        cJSON_Delete(ctx->reply);
        ctx->reply = NULL;
    }

    PQclear(convs);
    PQclear(msgs);
    free(upto);
    free(ecur);
    chat_sync_set_free(&set);

    return rc;
}
