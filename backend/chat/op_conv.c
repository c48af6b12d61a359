/*
 * op_conv.c: creating, listing and changing the membership of
 * conversations.
 *
 *   conv.create         {type:"direct", user_id}             -> 201 | 200
 *                       {type:"group", title, member_ids}     -> 201
 *   conv.list           {}                                   -> 200
 *   conv.member.add     {conversation_id, user_id}           -> 200
 *   conv.member.remove  {conversation_id, user_id}           -> 200
 *
 * all answering {"conversation": ...} (conv.list: {"conversations":
 * [...]}, newest activity first).  The caller is always the envelope's
 * uid.  A conversation the caller is not a member of does not exist as
 * far as the caller can tell: 404 not_found, exactly as for an id that
 * was never used.
 *
 * Direct conversations are one per pair: the pair is stored ordered
 * (direct_low < direct_high) under a unique index, and the insert is ON
 * CONFLICT DO NOTHING, so of two concurrent creations one inserts and the
 * other waits for it and then finds its row (200).  Their members never
 * change.
 *
 * Groups: the creator is the first admin.  Every change of a group's
 * members first locks the conversation row (FOR NO KEY UPDATE, the lock
 * msg.send's UPDATE takes too) and only then reads who is a member, in a
 * new statement and so a new snapshot, so concurrent changes serialise
 * and the 1000-member cap holds.  Admins may add and remove anyone; any
 * member may remove themselves.  When the last admin leaves, the
 * longest-standing remaining member becomes admin, so a group is never
 * left without one.  A new member's read marker starts at the current
 * last_seq: joining does not make the whole history unread (it is all
 * readable).
 *
 * Events (fanned out after the commit, fanout.c): a created group or
 * direct conversation, an added member and the remaining members after a
 * removal get {"type":"conversation","conversation":{...}}; the removed
 * user gets {"type":"conversation_removed","conversation_id":N}.  The
 * conversation in an event has no "unread": it differs per recipient,
 * and a count that is right for one and wrong for the others is worse
 * than none (clients keep their own, or read conv.list).  Nothing that
 * changes nothing (an existing direct conversation, adding a member
 * twice) sends an event.
 */

#include <stdlib.h>
#include <string.h>

#include "conv.h"
#include "conv_input.h"
#include "log.h"
#include "ops.h"


/*
 * Answers status {"conversation": <cid as the caller sees it>}, and when
 * notify is set queues {"type":"conversation",...} (without "unread") for
 * its members.  0, or -1.
 */
static int
chat_conv_reply(chat_op_ctx_t *ctx, int status, int64_t cid, int notify)
{
    int        rc;
    long       n;
    cJSON     *conv, *ev, *copy;
    int64_t   *ids;
    PGresult  *res;

    rc = -1;
    ids = NULL;
    ev = NULL;

    res = chat_conv_get(ctx->db, ctx->cmd->uid, cid);
    if (res == NULL) {
        return -1;
    }

    if (PQntuples(res) != 1) {
        chat_log_error("conversation %lld vanished under its own lock",
                       (long long) cid);
        goto done;
    }

    conv = chat_conv_json(res, 0);
    ctx->reply = cJSON_CreateObject();
    if (conv == NULL || ctx->reply == NULL) {
        cJSON_Delete(conv);
        goto done;
    }

    cJSON_AddItemToObject(ctx->reply, "conversation", conv);
    ctx->status = status;

    if (notify) {
        n = chat_conv_members(res, 0, &ids);
        ev = cJSON_CreateObject();
        copy = cJSON_Duplicate(conv, 1);

        if (n < 0 || ev == NULL || copy == NULL
            || cJSON_AddStringToObject(ev, "type", "conversation") == NULL)
        {
            cJSON_Delete(copy);
            goto done;
        }

        cJSON_DeleteItemFromObjectCaseSensitive(copy, "unread");
        cJSON_AddItemToObject(ev, "conversation", copy);

        if (chat_op_event(ctx, ev, ids, (size_t) n) != 0) {
            goto done;
        }
    }

    rc = 0;

done:

    cJSON_Delete(ev);
    free(ids);
    PQclear(res);
    return rc;
}


static int
chat_conv_create_direct(chat_op_ctx_t *ctx)
{
    int          rc, status;
    char         u[24], lo[24], hi[24];
    int64_t      other, uid, cid;
    PGresult    *res;
    const char  *values[3];

    rc = chat_op_integer(ctx, "user_id", 1, 1, &other);
    if (rc != 1) {
        return rc;
    }

    uid = ctx->cmd->uid;

    if (other == uid) {
        return chat_op_invalid(ctx, "user_id: a direct conversation needs "
                                    "another user");
    }

    values[0] = chat_i64(u, uid);
    values[1] = chat_i64(lo, uid < other ? uid : other);
    values[2] = chat_i64(hi, uid < other ? other : uid);

    res = chat_db_query(ctx->db,
        "SELECT count(*) FROM users WHERE id IN ($1, $2)",
        2, values + 1, NULL, NULL);
    if (res == NULL) {
        return -1;
    }

    rc = strcmp(PQgetvalue(res, 0, 0), "2");
    PQclear(res);

    if (rc != 0) {
        return chat_op_error(ctx, 404, "user_not_found", "no such user");
    }

    res = chat_db_query(ctx->db,
        "INSERT INTO conversations (type, created_by, direct_low, "
        "                           direct_high) "
        "VALUES ('direct', $1, $2, $3) "
        "ON CONFLICT (direct_low, direct_high) WHERE type = 'direct' "
        "DO NOTHING RETURNING id",
        3, values, NULL, NULL);
    if (res == NULL) {
        return -1;
    }

    if (PQntuples(res) == 1) {
        status = 201;
        cid = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
        PQclear(res);

        values[0] = chat_i64(u, cid);
        res = chat_db_query(ctx->db,
            "INSERT INTO conversation_members (conversation_id, user_id) "
            "VALUES ($1, $2), ($1, $3)",
            3, values, NULL, NULL);

    } else {
        /* there is one: ON CONFLICT waited for its creator to commit */
        status = 200;
        PQclear(res);

        res = chat_db_query(ctx->db,
            "SELECT id FROM conversations "
            "WHERE type = 'direct' AND direct_low = $1 AND direct_high = $2",
            2, values + 1, NULL, NULL);
        cid = (res && PQntuples(res) == 1)
              ? strtoll(PQgetvalue(res, 0, 0), NULL, 10) : 0;
    }

    if (res == NULL) {
        return -1;
    }

    PQclear(res);

    if (cid == 0) {
        chat_log_error("direct conversation %s-%s: conflict without a row",
                       lo, hi);
        return -1;
    }

    return chat_conv_reply(ctx, status, cid, status == 201);
}


static int
chat_conv_create_group(chat_op_ctx_t *ctx)
{
    int            rc;
    char           title[CHAT_TITLE_MAX_BYTES + 1], u[24];
    char          *arr;
    size_t         i, n, room;
    int64_t        uid, cid, *ids;
    PGresult      *res;
    const char    *in_title, *why, *values[3];
    const cJSON   *list;

    in_title = chat_op_string(ctx, "title");
    if (in_title == NULL) {
        return ctx->reply ? 0 : -1;
    }

    why = chat_title_normalize(in_title, strlen(in_title), title,
                               sizeof(title));
    if (why != NULL) {
        return chat_op_invalid(ctx, why);
    }

    list = cJSON_GetObjectItemCaseSensitive(ctx->body, "member_ids");
    room = cJSON_IsArray(list) ? (size_t) cJSON_GetArraySize(list) : 0;

    ids = malloc((room + 1) * sizeof(int64_t));
    if (ids == NULL) {
        return -1;
    }

    n = 0;
    if (list != NULL && !cJSON_IsNull(list)) {
        why = chat_id_list_parse(list, ids, room, &n);
        if (why != NULL) {
            free(ids);
            return chat_op_invalid(ctx, why);
        }
    }

    uid = ctx->cmd->uid;

    for (i = 0; i < n && ids[i] != uid; i++) {
        /* the creator is a member whether listed or not */
    }
    if (i == n) {
        ids[n++] = uid;
    }

    if (n > CHAT_GROUP_MAX_MEMBERS) {
        free(ids);
        return chat_op_invalid(ctx, "member_ids: a group has at most 1000 "
                                    "members, the creator included");
    }

    arr = chat_sql_int_array(ids, n);
    free(ids);
    if (arr == NULL) {
        return -1;
    }

    values[0] = title;
    values[1] = chat_i64(u, uid);
    values[2] = arr;

    res = chat_db_query(ctx->db,
        "WITH c AS ("
        "  INSERT INTO conversations (type, title, created_by) "
        "  VALUES ('group', $1, $2) RETURNING id), "
        "m AS ("
        "  INSERT INTO conversation_members (conversation_id, user_id, role) "
        "  SELECT c.id, u.id, "
        "         CASE WHEN u.id = $2 THEN 'admin' ELSE 'member' END "
        "  FROM c, users u WHERE u.id = ANY ($3::bigint[]) RETURNING 1) "
        "SELECT (SELECT id FROM c), (SELECT count(*) FROM m)",
        3, values, NULL, NULL);
    free(arr);

    if (res == NULL) {
        return -1;
    }

    cid = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    rc = strtoll(PQgetvalue(res, 0, 1), NULL, 10) == (long long) n;
    PQclear(res);

    if (!rc) {
        /* the savepoint takes the half-made group back */
        return chat_op_error(ctx, 404, "user_not_found",
                             "member_ids names a user that does not exist");
    }

    return chat_conv_reply(ctx, 201, cid, 1);
}


int
chat_op_conv_create(chat_op_ctx_t *ctx)
{
    int          rc;
    const char  *type;

    rc = chat_op_require_user(ctx);
    if (rc != 1) {
        return rc;
    }

    type = chat_op_string(ctx, "type");
    if (type == NULL) {
        return ctx->reply ? 0 : -1;
    }

    if (strcmp(type, "direct") == 0) {
        return chat_conv_create_direct(ctx);
    }

    if (strcmp(type, "group") == 0) {
        return chat_conv_create_group(ctx);
    }

    return chat_op_invalid(ctx, "type must be \"direct\" or \"group\"");
}


int
chat_op_conv_list(chat_op_ctx_t *ctx)
{
    int        rc;
    PGresult  *res;

    rc = chat_op_require_user(ctx);
    if (rc != 1) {
        return rc;
    }

    res = chat_conv_of_user(ctx->db, ctx->cmd->uid, NULL, 0);
    if (res == NULL) {
        return -1;
    }

    ctx->reply = chat_conv_list_json(res);
    ctx->status = 200;
    PQclear(res);

    return ctx->reply ? 0 : -1;
}


/* ------------------------------------------------------------------------
 * Members
 * --------------------------------------------------------------------- */

/* what chat_conv_member_role() finds */
enum {
    CHAT_CONV_NOT_MEMBER = 0,
    CHAT_CONV_MEMBER,
    CHAT_CONV_ADMIN
};


/* uid's role in conversation cid, one of the above, or -1 on failure. */
static int
chat_conv_member_role(chat_op_ctx_t *ctx, int64_t cid, int64_t uid)
{
    int          role;
    char         c[24], u[24];
    PGresult    *res;
    const char  *values[2];

    values[0] = chat_i64(c, cid);
    values[1] = chat_i64(u, uid);

    res = chat_db_query(ctx->db,
        "SELECT role FROM conversation_members "
        "WHERE conversation_id = $1 AND user_id = $2",
        2, values, NULL, NULL);
    if (res == NULL) {
        return -1;
    }

    if (PQntuples(res) == 0) {
        role = CHAT_CONV_NOT_MEMBER;

    } else {
        role = strcmp(PQgetvalue(res, 0, 0), "admin") == 0 ? CHAT_CONV_ADMIN
                                                          : CHAT_CONV_MEMBER;
    }

    PQclear(res);
    return role;
}


/*
 * Reads the body's conversation_id and user_id, locks the conversation
 * and, after the lock, reads the caller's role in it.  Returns 1 when the
 * caller may manage members of this group (*admin says whether as an
 * admin), 0 after answering (400 bad field, 404 not a member or no such
 * conversation, 400 a direct conversation), -1 on failure.
 */
static int
chat_conv_lock_group(chat_op_ctx_t *ctx, int64_t *cid, int64_t *target,
    int *admin)
{
    int          rc, direct, role;
    char         c[24];
    PGresult    *res;
    const char  *values[2];

    rc = chat_op_require_user(ctx);
    if (rc == 1) {
        rc = chat_op_integer(ctx, "conversation_id", 1, 1, cid);
    }
    if (rc == 1) {
        rc = chat_op_integer(ctx, "user_id", 1, 1, target);
    }
    if (rc != 1) {
        return rc;
    }

    values[0] = chat_i64(c, *cid);

    res = chat_db_query(ctx->db,
        "SELECT type FROM conversations WHERE id = $1 FOR NO KEY UPDATE",
        1, values, NULL, NULL);
    if (res == NULL) {
        return -1;
    }

    if (PQntuples(res) == 0) {
        PQclear(res);
        return chat_op_no_conversation(ctx);
    }

    direct = strcmp(PQgetvalue(res, 0, 0), "direct") == 0;
    PQclear(res);

    role = chat_conv_member_role(ctx, *cid, ctx->cmd->uid);
    if (role < 0) {
        return -1;
    }

    if (role == CHAT_CONV_NOT_MEMBER) {
        return chat_op_no_conversation(ctx);
    }

    *admin = (role == CHAT_CONV_ADMIN);

    if (direct) {
        return chat_op_invalid(ctx, "conversation_id: the members of a "
                                    "direct conversation cannot change");
    }

    return 1;
}


int
chat_op_conv_member_add(chat_op_ctx_t *ctx)
{
    int          rc, admin, exists, member;
    char         c[24], u[24];
    long long    count;
    int64_t      cid, target;
    PGresult    *res;
    const char  *values[2];

    rc = chat_conv_lock_group(ctx, &cid, &target, &admin);
    if (rc != 1) {
        return rc;
    }

    if (!admin) {
        return chat_op_error(ctx, 403, "forbidden",
                             "only the group's admins can add members");
    }

    values[0] = chat_i64(c, cid);
    values[1] = chat_i64(u, target);

    res = chat_db_query(ctx->db,
        "SELECT EXISTS (SELECT 1 FROM users WHERE id = $2), "
        "       EXISTS (SELECT 1 FROM conversation_members "
        "               WHERE conversation_id = $1 AND user_id = $2), "
        "       (SELECT count(*) FROM conversation_members "
        "        WHERE conversation_id = $1)",
        2, values, NULL, NULL);
    if (res == NULL) {
        return -1;
    }

    exists = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    member = strcmp(PQgetvalue(res, 0, 1), "t") == 0;
    count = strtoll(PQgetvalue(res, 0, 2), NULL, 10);
    PQclear(res);

    if (!exists) {
        return chat_op_error(ctx, 404, "user_not_found", "no such user");
    }

    if (member) {
        return chat_conv_reply(ctx, 200, cid, 0);
    }

    if (count >= CHAT_GROUP_MAX_MEMBERS) {
        return chat_op_invalid(ctx, "user_id: the group already has 1000 "
                                    "members");
    }

    res = chat_db_query(ctx->db,
        "INSERT INTO conversation_members "
        "    (conversation_id, user_id, role, last_read_seq) "
        "SELECT id, $2, 'member', last_seq FROM conversations WHERE id = $1",
        2, values, NULL, NULL);
    if (res == NULL) {
        return -1;
    }

    PQclear(res);

    return chat_conv_reply(ctx, 200, cid, 1);
}


int
chat_op_conv_member_remove(chat_op_ctx_t *ctx)
{
    int          rc, admin, was_admin, role;
    char         c[24], u[24];
    cJSON       *ev;
    int64_t      cid, target;
    PGresult    *res;
    const char  *values[2];

    rc = chat_conv_lock_group(ctx, &cid, &target, &admin);
    if (rc != 1) {
        return rc;
    }

    role = chat_conv_member_role(ctx, cid, target);
    if (role < 0) {
        return -1;
    }

    if (role == CHAT_CONV_NOT_MEMBER) {
        return chat_op_error(ctx, 404, "not_found",
                             "the user is not a member of this "
                             "conversation");
    }

    was_admin = (role == CHAT_CONV_ADMIN);

    values[0] = chat_i64(c, cid);
    values[1] = chat_i64(u, target);

    if (target != ctx->cmd->uid && !admin) {
        return chat_op_error(ctx, 403, "forbidden",
                             "only the group's admins can remove other "
                             "members");
    }

    res = chat_db_query(ctx->db,
        "DELETE FROM conversation_members "
        "WHERE conversation_id = $1 AND user_id = $2",
        2, values, NULL, NULL);
    if (res == NULL) {
        return -1;
    }

    PQclear(res);

    if (was_admin) {
        /* a new statement: it sees the delete above */
        res = chat_db_query(ctx->db,
            "UPDATE conversation_members SET role = 'admin' "
            "WHERE conversation_id = $1 "
            "  AND NOT EXISTS (SELECT 1 FROM conversation_members "
            "                  WHERE conversation_id = $1 "
            "                    AND role = 'admin') "
            "  AND user_id = (SELECT user_id FROM conversation_members "
            "                 WHERE conversation_id = $1 "
            "                 ORDER BY joined_at, user_id LIMIT 1)",
            1, values, NULL, NULL);
        if (res == NULL) {
            return -1;
        }

        PQclear(res);
    }

    ev = cJSON_CreateObject();
    if (ev == NULL
        || cJSON_AddStringToObject(ev, "type", "conversation_removed")
           == NULL
        || cJSON_AddNumberToObject(ev, "conversation_id", (double) cid)
           == NULL
        || chat_op_event(ctx, ev, &target, 1) != 0)
    {
        cJSON_Delete(ev);
        return -1;
    }

    cJSON_Delete(ev);

    return chat_conv_reply(ctx, 200, cid, 1);
}
