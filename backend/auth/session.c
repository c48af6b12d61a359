/*
 * session.c: sign-in sessions, on the backend's side.
 *
 *   auth.refresh  {sid, sxp} (set by the edge)  -> 200 {user, token}
 *
 * A login or sign-up starts a session: a random id ("sid") and an end
 * ("sxp", --session-ttl from now, a day by default).  Every token names
 * both and lives --token-ttl (30 minutes by default), never past the
 * session's end.  auth.refresh signs a fresh token of the same session
 * for a caller whose token the edge has just verified and found not
 * signed out, so a browser stays signed in by refreshing, at most until
 * the session ends, and a logout (the edge revokes the sid) ends every
 * token of the session at once, whichever refresh it came from.
 *
 * The old token is not revoked by a refresh: it expires on its own
 * within one token lifetime, and revoking it would cost a revocation
 * entry per refresh on every edge.  The backend never verifies tokens:
 * the edge does, and sends the verified user and session inward.  A
 * refresh the edge let through just before a logout of its session
 * signs a token nobody accepts: the revocation names the session, not a
 * token, and lasts until the session's end.
 *
 * The op stores nothing and writes nothing; the token is added by the
 * auth area's present hook (op_auth.c), as for login, from the
 * "session" the reply carries.
 */

#include <string.h>
#include <time.h>

#include "chat_token.h"
#include "ops.h"
#include "session.h"
#include "users.h"


int
chat_auth_sign(const chat_config_t *cfg, int64_t uid, const char *role,
    const cJSON *session, char *token, size_t size)
{
    int64_t               now;
    const cJSON          *sid, *sxp;
    chat_token_claims_t   c;

    memset(&c, 0, sizeof(c));
    now = (int64_t) time(NULL);

    if (strlen(role) >= sizeof(c.role)) {
        return -1;
    }
    strcpy(c.role, role);

    if (session == NULL) {
        if (chat_token_new_sid(c.sid, sizeof(c.sid)) != 0) {
            return -1;
        }
        c.sxp = now + cfg->session_ttl;

    } else {
        sid = cJSON_GetObjectItemCaseSensitive(session, "sid");
        sxp = cJSON_GetObjectItemCaseSensitive(session, "sxp");

        if (!cJSON_IsString(sid) || !cJSON_IsNumber(sxp)
            || !chat_token_sid_valid(sid->valuestring,
                                     strlen(sid->valuestring)))
        {
            return -1;
        }

        strcpy(c.sid, sid->valuestring);
        c.sxp = (int64_t) sxp->valuedouble;
    }

    c.uid = uid;
    c.iat = now;
    c.exp = now + cfg->token_ttl < c.sxp ? now + cfg->token_ttl : c.sxp;

    return chat_token_sign(cfg->token_secret, cfg->token_secret_len, &c,
                           token, size) < 0 ? -1 : 0;
}


int
chat_op_auth_refresh(chat_op_ctx_t *ctx)
{
    int           rc;
    cJSON        *user, *session;
    PGresult     *res;
    const cJSON  *sid, *sxp;

    rc = chat_op_require_user(ctx);
    if (rc != 1) {
        return rc;
    }

    sid = cJSON_GetObjectItemCaseSensitive(ctx->body, "sid");
    sxp = cJSON_GetObjectItemCaseSensitive(ctx->body, "sxp");

    if (!cJSON_IsString(sid) || !cJSON_IsNumber(sxp)
        || !chat_token_sid_valid(sid->valuestring, strlen(sid->valuestring)))
    {
        return chat_op_error(ctx, 400, "invalid_field",
                             "sid and sxp (the edge sets them) are required");
    }

    if ((int64_t) sxp->valuedouble <= (int64_t) time(NULL)) {
        return chat_op_error(ctx, 401, "unauthorized",
                             "the session has ended; sign in again");
    }

    /* the role may have changed, the account may be gone */
    res = chat_user_by_id(ctx->db, ctx->cmd->uid);
    if (res == NULL) {
        return -1;
    }

    if (PQntuples(res) == 0) {
        PQclear(res);
        return chat_op_error(ctx, 401, "unauthorized",
                             "the user no longer exists");
    }

    ctx->reply = cJSON_CreateObject();
    user = chat_user_json(res, 0);
    session = cJSON_CreateObject();
    PQclear(res);

    if (ctx->reply == NULL || user == NULL || session == NULL
        || cJSON_AddStringToObject(session, "sid", sid->valuestring) == NULL
        || cJSON_AddNumberToObject(session, "sxp", sxp->valuedouble) == NULL)
    {
        cJSON_Delete(user);
        cJSON_Delete(session);
        return -1;
    }

    cJSON_AddItemToObject(ctx->reply, "user", user);
    cJSON_AddItemToObject(ctx->reply, "session", session);
    ctx->status = 200;

    return 0;
}
