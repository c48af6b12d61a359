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
    CHAT_CONV_COL_MSG           /* CHAT_MSG_NCOLS columns from here */
};

#define CHAT_CONV_COLUMNS                                                   \
    "c.id, c.type, c.title, c.last_seq, me.last_read_seq, "                 \
    CHAT_SQL_TIME("c.created_at") ", mm.members, mm.admins, "               \
    CHAT_MSG_COLUMNS("l") " "

#define CHAT_CONV_JOINS                                                     \
    "CROSS JOIN LATERAL ("                                                  \
    "  SELECT coalesce(string_agg(m.user_id::text, ',' "                    \
    "                             ORDER BY m.user_id), '') AS members, "    \
    "         coalesce(string_agg(m.user_id::text, ',' ORDER BY m.user_id)" \
    "                  FILTER (WHERE m.role = 'admin'), '') AS admins "     \
    "  FROM conversation_members m WHERE m.conversation_id = c.id) mm "     \
    "LEFT JOIN messages l ON l.conversation_id = c.id "                     \
    "                    AND l.seq = c.last_seq "


static double
chat_col_number(const PGresult *res, int row, int col)
{
    return strtod(PQgetvalue(res, row, col), NULL);
}


cJSON *
chat_msg_json(const PGresult *res, int row, int col)
{
    cJSON  *m;

    m = cJSON_CreateObject();

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
               PQgetvalue(res, row, col + 4)) == NULL
        || cJSON_AddStringToObject(m, "created_at",
               PQgetvalue(res, row, col + 5)) == NULL)
    {
        cJSON_Delete(m);
        return NULL;
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
            "ORDER BY c.last_activity_at DESC, c.id DESC",
            1, values, NULL, NULL);
    }

    ids = chat_sql_int_array(only, n);
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


cJSON *
chat_conv_json(const PGresult *res, int row)
{
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
chat_conv_list_json(const PGresult *res)
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
        conv = chat_conv_json(res, i);
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


char *
chat_sql_int_array(const int64_t *v, size_t n)
{
    char    *s;
    size_t   i, len;

    s = malloc(n * 21 + 3);
    if (s == NULL) {
        return NULL;
    }

    len = 0;
    s[len++] = '{';

    for (i = 0; i < n; i++) {
        len += (size_t) sprintf(s + len, "%s%lld", i ? "," : "",
                                (long long) v[i]);
    }

    s[len++] = '}';
    s[len] = '\0';

    return s;
}
