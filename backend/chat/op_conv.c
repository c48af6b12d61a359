/*
 * op_conv.c: creating, listing and changing the membership of
 * conversations.
 *
 *   conv.create         {type:"direct", user_id}             -> 201 | 200
 *                       {type:"group", title, member_ids}     -> 201
 *   conv.list           {}                                   -> 200
 *   conv.member.add     {conversation_id, user_id}           -> 200
 *   conv.member.remove  {conversation_id, user_id}           -> 200
 *   conv.accept         {conversation_id}                    -> 200
 *
 * all answering {"conversation": ...} (conv.list: {"conversations":
 * [...]}, newest activity first); and user.block / user.unblock {user_id}
 * -> 200 {user_id, blocked}.  The caller is always the envelope's
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
 * Consent: the other member of a new direct conversation has not accepted
 * it (conversation_members.accepted) unless they already accepted a
 * conversation the opener is in; until they answer (msg.send) or accept
 * (conv.accept) it is a request for them, and the opener gets none of
 * their presence, typing or receipts (those queries read "accepted").
 * Whether the other id is a user is never asked: a missing one gets the
 * pair without a member row, and is answered like a stranger who does not
 * answer, so the endpoint does not tell which ids exist.  Blocks
 * (user_blocks) are the caller's own; a block of an id that is no user
 * stores nothing and is answered the same.
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
 * notify is set queues {"type":"conversation",...} (without "unread" and
 * "status", which differ per member) for its members.  Status 0 answers
 * nothing: only the event is queued.  0, or -1.
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
    conv = NULL;

    res = chat_conv_get(ctx->db, ctx->cmd->uid, cid);
    if (res == NULL) {
        return -1;
    }

    if (PQntuples(res) != 1) {
        chat_log_error("conversation %lld vanished under its own lock",
                       (long long) cid);
        goto done;
    }

    conv = chat_conv_json(res, 0, ctx->cmd->uid);
    if (status == 0) {
        /* the event alone (a member accepted while sending) */
        if (conv == NULL) {
            goto done;
        }

    } else {
        ctx->reply = cJSON_CreateObject();
        if (conv == NULL || ctx->reply == NULL) {
            cJSON_Delete(conv);
            goto done;
        }

        cJSON_AddItemToObject(ctx->reply, "conversation", conv);
        ctx->status = status;
    }

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
        cJSON_DeleteItemFromObjectCaseSensitive(copy, "status");
        cJSON_AddItemToObject(ev, "conversation", copy);

        if (chat_op_event(ctx, ev, ids, (size_t) n) != 0) {
            goto done;
        }
    }

    rc = 0;

done:

    if (status == 0) {
        cJSON_Delete(conv);
    }

    cJSON_Delete(ev);
    free(ids);
    PQclear(res);
    return rc;
}


int
chat_conv_event(chat_op_ctx_t *ctx, int64_t cid)
{
    return chat_conv_reply(ctx, 0, cid, 1);
}


static int
chat_conv_create_direct(chat_op_ctx_t *ctx)
{
    int          rc, status, joined;
    char         u[24], lo[24], hi[24], c[24];
    int64_t      other, uid, cid;
    PGresult    *res;
    const char  *values[4];

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

    /*
     * Whether the other user exists is not asked: the pair is stored
     * either way, so an id that is no user answers exactly as a real
     * stranger who never answers (status "pending" for ever).
     */
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

    } else {
        /* there is one: ON CONFLICT waited for its creator to commit */
        status = 200;
        PQclear(res);

        res = chat_db_query(ctx->db,
            "SELECT id FROM conversations "
            "WHERE type = 'direct' AND direct_low = $1 AND direct_high = $2 "
            "FOR NO KEY UPDATE",
            2, values + 1, NULL, NULL);
        if (res == NULL) {
            return -1;
        }

        cid = (PQntuples(res) == 1)
              ? strtoll(PQgetvalue(res, 0, 0), NULL, 10) : 0;
    }

    PQclear(res);

    if (cid == 0) {
        chat_log_error("direct conversation %s-%s: conflict without a row",
                       lo, hi);
        return -1;
    }

    /*
     * The member rows of the pair's users that exist and have none yet
     * (both on a new conversation; on an old one, someone who registered
     * after it was opened with their id).  The caller opens it, so they
     * have accepted it; the other has if they already accepted a
     * conversation the caller is in, and never while they block the
     * caller: otherwise it is a request for them.
     */
    values[3] = chat_i64(c, cid);

    res = chat_db_query(ctx->db,
        "INSERT INTO conversation_members (conversation_id, user_id, "
        "                                  accepted) "
        "SELECT $4::bigint, u.id, "
        "       u.id = $1::bigint OR "
        CHAT_SQL_CONSENTED("u.id", "$1::bigint", "$4::bigint") " "
        "FROM users u WHERE u.id IN ($2::bigint, $3::bigint) "
        "ON CONFLICT (conversation_id, user_id) DO NOTHING",
        4, values, NULL, NULL);
    if (res == NULL) {
        return -1;
    }

    joined = atoi(PQcmdTuples(res));
    PQclear(res);

    return chat_conv_reply(ctx, status, cid, joined > 0);
}


/*
 * conv.accept {conversation_id}: the caller accepts a request (answering
 * in it, msg.send, does the same).  200 {conversation}; 404 when the
 * caller is not a member.  Accepting what was accepted changes nothing
 * and tells nobody.
 */
int
chat_op_conv_accept(chat_op_ctx_t *ctx)
{
    int          rc, member, changed;
    char         c[24], u[24];
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

    /* the conversation's lock first, as every chat write takes it */
    res = chat_db_query(ctx->db,
        "WITH l AS (SELECT id FROM conversations WHERE id = $1 "
        "           FOR NO KEY UPDATE), "
        "m AS (SELECT accepted FROM conversation_members "
        "      WHERE conversation_id = (SELECT id FROM l) AND user_id = $2), "
        "a AS (UPDATE conversation_members SET accepted = true "
        "      WHERE conversation_id = (SELECT id FROM l) AND user_id = $2 "
        "        AND NOT accepted RETURNING 1) "
        "SELECT (SELECT count(*) FROM m), (SELECT count(*) FROM a)",
        2, values, NULL, NULL);
    if (res == NULL) {
        return -1;
    }

    member = strcmp(PQgetvalue(res, 0, 0), "0") != 0;
    changed = strcmp(PQgetvalue(res, 0, 1), "0") != 0;
    PQclear(res);

    if (!member) {
        return chat_op_no_conversation(ctx);
    }

    return chat_conv_reply(ctx, 200, cid, changed);
}


/*
 * user.block / user.unblock {user_id}: the caller blocks or unblocks a
 * user.  200 {user_id, blocked} whoever the id is: a block of an id that
 * is no user stores nothing but answers the same, so the endpoint does
 * not tell which ids exist.  A change is told to the caller's own devices
 * as {"type":"block","user_id","blocked"} (which the presence area's
 * after-commit hook also turns into the chat:blocked:{uid} set the
 * typing script reads).
 */
static int
chat_user_block_set(chat_op_ctx_t *ctx, int block)
{
    int           rc, changed;
    char          me[24], who[24];
    cJSON        *ev;
    int64_t       target, uid;
    PGresult     *res;
    const char   *values[2];

    rc = chat_op_require_user(ctx);
    if (rc == 1) {
        rc = chat_op_integer(ctx, "user_id", 1, 1, &target);
    }
    if (rc != 1) {
        return rc;
    }

    uid = ctx->cmd->uid;

    if (target == uid) {
        return chat_op_invalid(ctx, "user_id: you cannot block yourself");
    }

    values[0] = chat_i64(me, uid);
    values[1] = chat_i64(who, target);

    if (block) {
        res = chat_db_query(ctx->db,
            "INSERT INTO user_blocks (blocker_id, blocked_id) "
            "SELECT $1, id FROM users WHERE id = $2 "
            "ON CONFLICT DO NOTHING",
            2, values, NULL, NULL);
    } else {
        res = chat_db_query(ctx->db,
            "DELETE FROM user_blocks WHERE blocker_id = $1 AND blocked_id = $2",
            2, values, NULL, NULL);
    }

    if (res == NULL) {
        return -1;
    }

    changed = atoi(PQcmdTuples(res));
    PQclear(res);

    ctx->reply = cJSON_CreateObject();
    if (ctx->reply == NULL
        || cJSON_AddNumberToObject(ctx->reply, "user_id", (double) target)
           == NULL
        || cJSON_AddBoolToObject(ctx->reply, "blocked", block) == NULL)
    {
        return -1;
    }

    ctx->status = 200;

    if (!changed) {
        return 0;
    }

    /* "type" first: the membership cache finds these by their start */
    ev = cJSON_CreateObject();
    if (ev == NULL
        || cJSON_AddStringToObject(ev, "type", "block") == NULL
        || cJSON_AddNumberToObject(ev, "user_id", (double) target) == NULL
        || cJSON_AddBoolToObject(ev, "blocked", block) == NULL
        || chat_op_event(ctx, ev, &uid, 1) != 0)
    {
        cJSON_Delete(ev);
        return -1;
    }

    cJSON_Delete(ev);

    return 0;
}


int
chat_op_user_block(chat_op_ctx_t *ctx)
{
    return chat_user_block_set(ctx, 1);
}


int
chat_op_user_unblock(chat_op_ctx_t *ctx)
{
    return chat_user_block_set(ctx, 0);
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

    arr = chat_db_int_array(ids, n);
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
        "  INSERT INTO conversation_members (conversation_id, user_id, role, "
        "                                    accepted) "
        "  SELECT c.id, u.id, "
        "         CASE WHEN u.id = $2 THEN 'admin' ELSE 'member' END, "
        "         u.id = $2::bigint OR "
        CHAT_SQL_CONSENTED("u.id", "$2::bigint", "c.id") " "
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

    ctx->reply = chat_conv_list_json(res, ctx->cmd->uid);
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
    char         c[24], u[24], by[24];
    long long    count;
    int64_t      cid, target;
    PGresult    *res;
    const char  *values[3];

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
    values[2] = chat_i64(by, ctx->cmd->uid);

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
        "    (conversation_id, user_id, role, last_read_seq, accepted) "
        "SELECT id, $2, 'member', last_seq, "
        CHAT_SQL_CONSENTED("$2::bigint", "$3::bigint", "$1::bigint") " "
        "FROM conversations WHERE id = $1",
        3, values, NULL, NULL);
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
