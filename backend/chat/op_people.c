/*
 * op_people.c: finding people, without turning the user table into a
 * public directory.
 *
 *   user.find  {email}  -> 200 {"users": [{id, display_name}]}   (0 or 1)
 *              {q}      -> 200 {"users": [...]}  by name prefix, at most 20
 *              {ids}    -> 200 {"users": [...]}  "3,5,8": names for ids
 *
 * Exactly one of the three.  What each may find:
 *
 *   - email: the account with exactly that address (trimmed, ASCII
 *     lower-cased, as registration stores it), so someone who knows your
 *     address can start a chat with you, which is a request until you
 *     answer (Contacts and consent).  Nothing else of the account (no
 *     e-mail back, no role, no presence).
 *   - q: people who share a conversation with the caller (any: a group,
 *     a direct one, a request either way), whose display name, or a word
 *     of it, starts with q, case-insensitively; by name.  Strangers are
 *     never listed by name.
 *   - ids (the web app naming the members and senders it shows): those
 *     of the ids that are the caller or share a conversation with the
 *     caller; at most 100; the others are left out, as if they did not
 *     exist.
 *
 * Nobody who blocked the caller is found by any of them.  The answer for
 * an address or id that is no user and one that is hidden is the same,
 * an empty list.
 */

#include <stdlib.h>
#include <string.h>

#include "conv.h"
#include "conv_input.h"
#include "ops.h"
#include "validate.h"


#define CHAT_PEOPLE_IDS_MAX  100

/* what a person found is: id and name, nothing else */
#define CHAT_PEOPLE_COLUMNS  "u.id, u.display_name"

/* u has not blocked the caller ($1) */
#define CHAT_PEOPLE_NOT_BLOCKING                                            \
    "NOT EXISTS (SELECT 1 FROM user_blocks x "                              \
    "            WHERE x.blocker_id = u.id AND x.blocked_id = $1) "

/* u shares a conversation with the caller ($1) */
#define CHAT_PEOPLE_SHARES                                                  \
    "EXISTS (SELECT 1 FROM conversation_members a "                         \
    "        JOIN conversation_members b "                                  \
    "          ON b.conversation_id = a.conversation_id "                   \
    "        WHERE a.user_id = $1 AND b.user_id = u.id) "


/* Answers 200 {"users": [...]} from res (id, display_name rows). */
static int
chat_people_answer(chat_op_ctx_t *ctx, PGresult *res)
{
    int     i;
    cJSON  *list, *u;

    if (res == NULL) {
        return -1;
    }

    ctx->reply = cJSON_CreateObject();
    list = cJSON_AddArrayToObject(ctx->reply, "users");
    if (list == NULL) {
        goto err;
    }

    for (i = 0; i < PQntuples(res); i++) {
        u = cJSON_CreateObject();
        if (u == NULL) {
            goto err;
        }
        cJSON_AddItemToArray(list, u);

        if (cJSON_AddNumberToObject(u, "id",
                strtod(PQgetvalue(res, i, 0), NULL)) == NULL
            || cJSON_AddStringToObject(u, "display_name",
                   PQgetvalue(res, i, 1)) == NULL)
        {
            goto err;
        }
    }

    PQclear(res);
    ctx->status = 200;
    return 0;

err:

    PQclear(res);
    cJSON_Delete(ctx->reply);
    ctx->reply = NULL;
    return -1;
}


static int
chat_people_by_email(chat_op_ctx_t *ctx, const char *email)
{
    char         u[24], addr[CHAT_EMAIL_MAX + 1];
    const char  *why, *values[2];

    why = chat_email_normalize(email, strlen(email), addr, sizeof(addr));
    if (why != NULL) {
        return chat_op_invalid(ctx, why);
    }

    values[0] = chat_i64(u, ctx->cmd->uid);
    values[1] = addr;

    return chat_people_answer(ctx, chat_db_query_prepared(ctx->db,
        "SELECT " CHAT_PEOPLE_COLUMNS " FROM users u "
        "WHERE lower(u.email) = $2 AND " CHAT_PEOPLE_NOT_BLOCKING,
        2, values, NULL, NULL));
}


static int
chat_people_by_name(chat_op_ctx_t *ctx, const char *q)
{
    char         u[24], lim[24];
    char         prefix[CHAT_DISPLAY_NAME_MAX_BYTES + 1];
    const char  *why, *values[3];

    why = chat_search_text_normalize("q", q, strlen(q),
                                     CHAT_DISPLAY_NAME_MAX, prefix,
                                     sizeof(prefix));
    if (why != NULL) {
        return chat_op_invalid(ctx, why);
    }

    values[0] = chat_i64(u, ctx->cmd->uid);
    values[1] = prefix;
    values[2] = chat_i64(lim, CHAT_PEOPLE_LIMIT);

    /* the prefix's LIKE wildcards are taken literally */
    return chat_people_answer(ctx, chat_db_query_prepared(ctx->db,
        "WITH p AS (SELECT replace(replace(replace(lower($2::text), "
        "                  '\\', '\\\\'), '%', '\\%'), '_', '\\_') AS v) "
        "SELECT " CHAT_PEOPLE_COLUMNS " FROM users u, p "
        "WHERE u.id <> $1 "
        "  AND (lower(u.display_name) LIKE p.v || '%' "
        "       OR lower(u.display_name) LIKE '% ' || p.v || '%') "
        "  AND " CHAT_PEOPLE_SHARES
        "  AND " CHAT_PEOPLE_NOT_BLOCKING
        "ORDER BY lower(u.display_name), u.id LIMIT $3",
        3, values, NULL, NULL));
}


static int
chat_people_by_ids(chat_op_ctx_t *ctx, const char *csv)
{
    int          rc;
    long         n;
    char         u[24];
    char        *array;
    int64_t      ids[CHAT_PEOPLE_IDS_MAX];
    const char  *values[2];

    n = chat_csv_ids_parse(csv, ids, CHAT_PEOPLE_IDS_MAX);
    if (n <= 0) {
        return chat_op_invalid(ctx, "ids must be 1 to 100 user ids "
                                    "separated by commas");
    }

    array = chat_db_int_array(ids, (size_t) n);
    if (array == NULL) {
        return -1;
    }

    values[0] = chat_i64(u, ctx->cmd->uid);
    values[1] = array;

    rc = chat_people_answer(ctx, chat_db_query_prepared(ctx->db,
        "SELECT " CHAT_PEOPLE_COLUMNS " FROM users u "
        "WHERE u.id = ANY ($2::bigint[]) "
        "  AND (u.id = $1 OR " CHAT_PEOPLE_SHARES ") "
        "  AND " CHAT_PEOPLE_NOT_BLOCKING
        "ORDER BY u.id",
        2, values, NULL, NULL));

    free(array);
    return rc;
}


int
chat_op_user_find(chat_op_ctx_t *ctx)
{
    int           rc, given;
    const cJSON  *email, *q, *ids;

    rc = chat_op_require_user(ctx);
    if (rc != 1) {
        return rc;
    }

    email = cJSON_GetObjectItemCaseSensitive(ctx->body, "email");
    q = cJSON_GetObjectItemCaseSensitive(ctx->body, "q");
    ids = cJSON_GetObjectItemCaseSensitive(ctx->body, "ids");

    given = (email != NULL) + (q != NULL) + (ids != NULL);
    if (given != 1) {
        return chat_op_invalid(ctx, "give exactly one of email, q and ids");
    }

    if (email != NULL) {
        return cJSON_IsString(email)
               ? chat_people_by_email(ctx, email->valuestring)
               : chat_op_invalid(ctx, "email must be a string");
    }

    if (q != NULL) {
        return cJSON_IsString(q)
               ? chat_people_by_name(ctx, q->valuestring)
               : chat_op_invalid(ctx, "q must be a string");
    }

    return cJSON_IsString(ids)
           ? chat_people_by_ids(ctx, ids->valuestring)
           : chat_op_invalid(ctx, "ids must be a string such as \"3,5,8\"");
}
