/*
 * conv.c: conversations and messages as the API shows them
 * (sql/002_chat.sql).
 *
 * Every conversation query selects the same columns, in the order of the
 * CHAT_CONV_COL_* constants below, so one function turns any row into the
 * API's conversation object, the way users.c does for users.  A row
 * carries, besides the conversation's own columns:
 *
 *   - the reader's last_read_seq (NULL when the reader is not a member),
 *     from which unread = max(last_seq - last_read_seq, 0);
 *   - members and admins as "1,5,9" (string_agg over one lateral scan of
 *     conversation_members, ordered by user id), so a conversation is one
 *     row however many members it has;
 *   - the last message (seq = last_seq), or NULLs when there is none.
 *     messages is partitioned by conversation, and the lookup is by its
 *     primary key, so this is one index probe in one partition.
 *
 * Times are formatted by PostgreSQL (CHAT_SQL_TIME) as RFC 3339 UTC with
 * milliseconds.  Ids are JSON numbers.
 *
 * What it does not do: decide who may see what (the operations check
 * membership first), or write anything.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conv.h"
#include "conv_input.h"
#include "ops.h"


enum {
    CHAT_CONV_COL_ID = 0,
    CHAT_CONV_COL_TYPE,
    CHAT_CONV_COL_TITLE,
    CHAT_CONV_COL_LAST_SEQ,
    CHAT_CONV_COL_LAST_READ,
    CHAT_CONV_COL_CREATED_AT,
    CHAT_CONV_COL_MEMBERS,
    CHAT_CONV_COL_ADMINS,
    CHAT_CONV_COL_ACCEPTED,
    CHAT_CONV_COL_LAST_EDIT,
    CHAT_CONV_COL_MSG           /* CHAT_MSG_NCOLS columns from here */
};

/*
 * A direct conversation's members are its pair (direct_low, direct_high),
 * whether or not both have a member row: opening one with an id that is
 * no user makes a conversation whose other member never answers, which
 * looks exactly like one with a real person who does not (op_conv.c).
 * $1 is always the reader.
 */
#define CHAT_CONV_COLUMNS                                                   \
    "c.id, c.type, c.title, c.last_seq, me.last_read_seq, "                 \
    CHAT_SQL_TIME("c.created_at") ", "                                      \
    "CASE WHEN c.type = 'direct' "                                          \
    "     THEN c.direct_low::text || ',' || c.direct_high::text "           \
    "     ELSE mm.members END, "                                            \
    "mm.admins, mm.accepted, c.last_edit_seq, "                             \
    CHAT_MSG_COLUMNS_SEEN("l", "$1") " "

#define CHAT_CONV_JOINS                                                     \
    "CROSS JOIN LATERAL ("                                                  \
    "  SELECT coalesce(string_agg(m.user_id::text, ',' "                    \
    "                             ORDER BY m.user_id), '') AS members, "    \
    "         coalesce(string_agg(m.user_id::text, ',' ORDER BY m.user_id)" \
    "                  FILTER (WHERE m.role = 'admin'), '') AS admins, "    \
    "         coalesce(string_agg(m.user_id::text, ',' ORDER BY m.user_id)" \
    "                  FILTER (WHERE m.accepted), '') AS accepted "         \
    "  FROM conversation_members m WHERE m.conversation_id = c.id) mm "     \
    "LEFT JOIN messages l ON l.conversation_id = c.id "                     \
    "                    AND l.seq = c.last_seq "

/* a request from someone the reader ($1) blocked is not shown at all */
#define CHAT_CONV_NOT_BLOCKED_REQUEST                                       \
    "AND (me.accepted OR c.type <> 'direct' OR NOT EXISTS ("                \
    "     SELECT 1 FROM user_blocks rb WHERE rb.blocker_id = $1 "           \
    "       AND rb.blocked_id IN (c.direct_low, c.direct_high))) "


static double
chat_col_number(const PGresult *res, int row, int col)
{
    return strtod(PQgetvalue(res, row, col), NULL);
}


cJSON *
chat_msg_json(const PGresult *res, int row, int col)
{
    int      deleted;
    cJSON   *m, *att;
    double   edit_seq;

    m = cJSON_CreateObject();
    deleted = PQgetvalue(res, row, col + 7)[0] == 't';
    edit_seq = chat_col_number(res, row, col + CHAT_MSG_COL_EDIT_SEQ);

    if (m == NULL
        || cJSON_AddNumberToObject(m, "conversation_id",
               chat_col_number(res, row, col)) == NULL
        || cJSON_AddNumberToObject(m, "seq",
               chat_col_number(res, row, col + 1)) == NULL
        || cJSON_AddNumberToObject(m, "sender_id",
               chat_col_number(res, row, col + 2)) == NULL
        || cJSON_AddStringToObject(m, "client_msg_id",
               PQgetvalue(res, row, col + 3)) == NULL
        || cJSON_AddStringToObject(m, "text",
               deleted ? "" : PQgetvalue(res, row, col + 4)) == NULL
        || cJSON_AddStringToObject(m, "created_at",
               PQgetvalue(res, row, col + 5)) == NULL
        || (!PQgetisnull(res, row, col + 6)
            && cJSON_AddStringToObject(m, "edited_at",
                   PQgetvalue(res, row, col + 6)) == NULL)
        || (deleted && cJSON_AddTrueToObject(m, "deleted") == NULL)
        || (edit_seq > 0
            && cJSON_AddNumberToObject(m, "edit_seq", edit_seq) == NULL)
        || (!deleted && PQgetvalue(res, row, col + 4)[0] == '\0'
            && cJSON_AddTrueToObject(m, "hidden") == NULL))
    {
        cJSON_Delete(m);
        return NULL;
    }

    /* its attachments, as stored with it (media/op_media.c); a deleted
     * message keeps none of its content */
    if (!deleted && !PQgetisnull(res, row, col + 9)) {
        att = cJSON_Parse(PQgetvalue(res, row, col + 9));
        if (att == NULL) {
            cJSON_Delete(m);
            return NULL;
        }
        cJSON_AddItemToObject(m, "attachments", att);
    }

    return m;
}


PGresult *
chat_conv_get(chat_db_t *db, int64_t uid, int64_t cid)
{
    char         u[24], c[24];
    const char  *values[2];

    values[0] = chat_i64(u, uid);
    values[1] = chat_i64(c, cid);

    return chat_db_query_prepared(db,
        "SELECT " CHAT_CONV_COLUMNS
        "FROM conversations c "
        "LEFT JOIN conversation_members me ON me.conversation_id = c.id "
        "                                 AND me.user_id = $1 "
        CHAT_CONV_JOINS
        "WHERE c.id = $2",
        2, values, NULL, NULL);
}


PGresult *
chat_conv_of_user(chat_db_t *db, int64_t uid, const int64_t *only, size_t n)
{
    char         u[24];
    char        *ids;
    PGresult    *res;
    const char  *values[2];

    values[0] = chat_i64(u, uid);

    if (only == NULL) {
        return chat_db_query_prepared(db,
            "SELECT " CHAT_CONV_COLUMNS
            "FROM conversation_members me "
            "JOIN conversations c ON c.id = me.conversation_id "
            CHAT_CONV_JOINS
            "WHERE me.user_id = $1 "
            CHAT_CONV_NOT_BLOCKED_REQUEST
            "ORDER BY c.last_activity_at DESC, c.id DESC",
            1, values, NULL, NULL);
    }

    ids = chat_db_int_array(only, n);
    if (ids == NULL) {
        return NULL;
    }

    values[1] = ids;

    res = chat_db_query_prepared(db,
        "SELECT " CHAT_CONV_COLUMNS
        "FROM conversation_members me "
        "JOIN conversations c ON c.id = me.conversation_id "
        CHAT_CONV_JOINS
        "WHERE me.user_id = $1 AND c.id = ANY ($2::bigint[]) "
        CHAT_CONV_NOT_BLOCKED_REQUEST
        "ORDER BY c.last_activity_at DESC, c.id DESC",
        2, values, NULL, NULL);

    free(ids);
    return res;
}


/* A JSON array of the ids in csv; NULL if memory ran out or csv is not a
 * list of ids (which would be a bug: PostgreSQL made it). */
static cJSON *
chat_ids_json(const char *csv)
{
    long      i, n;
    cJSON    *arr, *num;
    int64_t  *ids;

    n = chat_csv_ids_alloc(csv, &ids);
    arr = cJSON_CreateArray();

    if (arr == NULL || n < 0) {
        goto err;
    }

    for (i = 0; i < n; i++) {
        num = cJSON_CreateNumber((double) ids[i]);
        if (num == NULL) {
            goto err;
        }
        cJSON_AddItemToArray(arr, num);
    }

    free(ids);
    return arr;

err:

    free(ids);
    cJSON_Delete(arr);
    return NULL;
}


/*
 * The members of a row who have not accepted (members less accepted,
 * both ascending id lists) as a JSON array; *mine and *others say whether
 * uid is among them and whether anyone else is.  NULL if memory ran out.
 */
static cJSON *
chat_conv_requests(const PGresult *res, int row, int64_t uid, int *mine,
    int *others)
{
    long      i, j, nm, na;
    cJSON    *arr, *num;
    int64_t  *members, *accepted;

    *mine = 0;
    *others = 0;
    arr = NULL;

    nm = chat_csv_ids_alloc(PQgetvalue(res, row, CHAT_CONV_COL_MEMBERS),
                            &members);
    na = chat_csv_ids_alloc(PQgetvalue(res, row, CHAT_CONV_COL_ACCEPTED),
                            &accepted);

    if (nm < 0 || na < 0) {
        goto done;
    }

    arr = cJSON_CreateArray();
    if (arr == NULL) {
        goto done;
    }

    for (i = 0, j = 0; i < nm; i++) {
        while (j < na && accepted[j] < members[i]) {
            j++;
        }

        if (j < na && accepted[j] == members[i]) {
            continue;
        }

        num = cJSON_CreateNumber((double) members[i]);
        if (num == NULL) {
            cJSON_Delete(arr);
            arr = NULL;
            goto done;
        }
        cJSON_AddItemToArray(arr, num);

        if (members[i] == uid) {
            *mine = 1;
        } else {
            *others = 1;
        }
    }

done:

    free(members);
    free(accepted);
    return arr;
}


cJSON *
chat_conv_json(const PGresult *res, int row, int64_t uid)
{
    int      mine, others;
    cJSON   *c, *item;
    double   last_seq, unread;

    c = cJSON_CreateObject();
    if (c == NULL) {
        return NULL;
    }

    last_seq = chat_col_number(res, row, CHAT_CONV_COL_LAST_SEQ);

    if (cJSON_AddNumberToObject(c, "id",
            chat_col_number(res, row, CHAT_CONV_COL_ID)) == NULL
        || cJSON_AddStringToObject(c, "type",
            PQgetvalue(res, row, CHAT_CONV_COL_TYPE)) == NULL)
    {
        goto err;
    }

    if (PQgetisnull(res, row, CHAT_CONV_COL_TITLE)) {
        item = cJSON_AddNullToObject(c, "title");
    } else {
        item = cJSON_AddStringToObject(c, "title",
                   PQgetvalue(res, row, CHAT_CONV_COL_TITLE));
    }
    if (item == NULL) {
        goto err;
    }

    item = chat_ids_json(PQgetvalue(res, row, CHAT_CONV_COL_MEMBERS));
    if (item == NULL) {
        goto err;
    }
    cJSON_AddItemToObject(c, "members", item);

    item = chat_ids_json(PQgetvalue(res, row, CHAT_CONV_COL_ADMINS));
    if (item == NULL) {
        goto err;
    }
    cJSON_AddItemToObject(c, "admins", item);

    item = chat_conv_requests(res, row, uid, &mine, &others);
    if (item == NULL) {
        goto err;
    }
    cJSON_AddItemToObject(c, "requests", item);

    /* a group is "pending" for nobody: its invitations are the invitees'
     * business, and it works for everyone who accepted (requests lists
     * who has not) */
    if (strcmp(PQgetvalue(res, row, CHAT_CONV_COL_TYPE), "direct") != 0) {
        others = 0;
    }

    if (cJSON_AddStringToObject(c, "status",
            mine ? "request" : (others ? "pending" : "active")) == NULL)
    {
        goto err;
    }

    if (cJSON_AddNumberToObject(c, "last_seq", last_seq) == NULL) {
        goto err;
    }

    if (!PQgetisnull(res, row, CHAT_CONV_COL_LAST_READ)) {
        unread = last_seq
                 - chat_col_number(res, row, CHAT_CONV_COL_LAST_READ);
        if (cJSON_AddNumberToObject(c, "unread", unread > 0 ? unread : 0)
            == NULL)
        {
            goto err;
        }
    }

    /* the conversation's newest change to a message (edit or delete):
     * where a client that has its messages starts its edit cursor */
    if (cJSON_AddNumberToObject(c, "last_edit_seq",
            chat_col_number(res, row, CHAT_CONV_COL_LAST_EDIT)) == NULL)
    {
        goto err;
    }

    if (PQgetisnull(res, row, CHAT_CONV_COL_MSG)) {
        item = cJSON_AddNullToObject(c, "last_message");
    } else {
        item = chat_msg_json(res, row, CHAT_CONV_COL_MSG);
        if (item != NULL) {
            cJSON_AddItemToObject(c, "last_message", item);
        }
    }
    if (item == NULL) {
        goto err;
    }

    if (cJSON_AddStringToObject(c, "created_at",
            PQgetvalue(res, row, CHAT_CONV_COL_CREATED_AT)) == NULL)
    {
        goto err;
    }

    return c;

err:

    cJSON_Delete(c);
    return NULL;
}


cJSON *
chat_conv_list_json(const PGresult *res, int64_t uid)
{
    int     i;
    cJSON  *root, *list, *conv;

    root = cJSON_CreateObject();
    list = cJSON_AddArrayToObject(root, "conversations");
    if (list == NULL) {
        cJSON_Delete(root);
        return NULL;
    }

    for (i = 0; i < PQntuples(res); i++) {
        conv = chat_conv_json(res, i, uid);
        if (conv == NULL) {
            cJSON_Delete(root);
            return NULL;
        }
        cJSON_AddItemToArray(list, conv);
    }

    return root;
}


long
chat_conv_members(const PGresult *res, int row, int64_t **ids)
{
    return chat_csv_ids_alloc(PQgetvalue(res, row, CHAT_CONV_COL_MEMBERS),
                              ids);
}
