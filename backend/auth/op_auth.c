/*
 * op_auth.c: the account operations.
 *
 *   auth.register  {email, password, display_name}  -> 201 {user, token}
 *   auth.login     {email, password}                -> 200 {user, token}
 *   user.me        (signed in)                      -> 200 {user}
 *
 * Register is the only one that writes, so it is the only one under the
 * idempotency log: a retried registration gets the original answer, not
 * 409 email_taken.  What the log stores is {"user": ...} only; the token
 * is added by chat_op_auth_present each time a reply is sent, so no token
 * is ever written to the database and every replay carries a fresh one.
 * Login reads, so it runs again on a retry and stores nothing.
 *
 * Neither the password nor the token crosses Redis in clear: the edge
 * seals the password and the engine opens it before the handler runs
 * (command.c), and seals the token of the reply sent (ops.c); the
 * fields are listed in protocol/chat_seal.c.  Handlers see and
 * write plain values.
 *
 * Login does not tell an unknown address from a wrong password: both get
 * 401 invalid_credentials with the same message, and for an unknown
 * address the password is still checked, against a dummy hash made once
 * when the worker starts, with the current parameters, so both paths cost
 * one scrypt.
 *
 * What it does not do: rate limiting (the edge does it), e-mail
 * verification, password reset, or re-hashing old parameters at login.
 */

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "chat_token.h"
#include "log.h"
#include "ops.h"
#include "password.h"
#include "session.h"
#include "users.h"
#include "validate.h"


static char  chat_auth_dummy_hash[CHAT_PASSWORD_HASH_SIZE];


/* Makes the dummy hash (one scrypt) unless it exists. */
int
chat_op_auth_init(void)
{
    if (chat_auth_dummy_hash[0] != '\0') {
        return 0;
    }

    return chat_password_hash("no such user", 12, chat_auth_dummy_hash,
                              sizeof(chat_auth_dummy_hash));
}


/*
 * Fetches body[name] as a string; when it is missing or not a string sets
 * a 400 invalid_field reply and returns NULL.  Check ctx->reply (set means
 * answered) to tell that from running out of memory.
 */
static const char *
chat_auth_string(chat_op_ctx_t *ctx, const char *name)
{
    char          msg[64];
    const cJSON  *item;

    item = cJSON_GetObjectItemCaseSensitive(ctx->body, name);

    if (cJSON_IsString(item) && item->valuestring != NULL) {
        return item->valuestring;
    }

    snprintf(msg, sizeof(msg), "%s is required and must be a string", name);
    chat_op_error(ctx, 400, "invalid_field", msg);

    return NULL;
}


/* Sets {"user": <row 0 of res>} with status; 0, or -1 without memory. */
static int
chat_auth_user_reply(chat_op_ctx_t *ctx, int status, const PGresult *res)
{
    cJSON  *user;

    ctx->reply = cJSON_CreateObject();
    user = chat_user_json(res, 0);

    if (ctx->reply == NULL || user == NULL) {
        cJSON_Delete(user);
        return -1;
    }

    cJSON_AddItemToObject(ctx->reply, "user", user);
    ctx->status = status;

    return 0;
}


int
chat_op_auth_register(chat_op_ctx_t *ctx)
{
    int          rc;
    char         email[CHAT_EMAIL_MAX + 1];
    char         name[CHAT_DISPLAY_NAME_MAX_BYTES + 1];
    char         hash[CHAT_PASSWORD_HASH_SIZE];
    const char  *in_email, *in_password, *in_name, *why;
    PGresult    *res;

    res = NULL;
    rc = -1;

    in_email = chat_auth_string(ctx, "email");
    in_password = in_email ? chat_auth_string(ctx, "password") : NULL;
    in_name = in_password ? chat_auth_string(ctx, "display_name") : NULL;

    if (in_name == NULL) {
        return ctx->reply ? 0 : -1;
    }

    why = chat_email_normalize(in_email, strlen(in_email), email,
                               sizeof(email));
    if (why == NULL) {
        why = chat_password_check(in_password, strlen(in_password));
    }
    if (why == NULL) {
        why = chat_display_name_normalize(in_name, strlen(in_name), name,
                                          sizeof(name));
    }
    if (why != NULL) {
        return chat_op_error(ctx, 400, "invalid_field", why);
    }

    /* a taken address is answered before paying for a hash */
    res = chat_user_by_email(ctx->db, email);
    if (res == NULL) {
        goto err;
    }

    if (PQntuples(res) > 0) {
        rc = chat_op_error(ctx, 409, "email_taken",
                           "an account with this email already exists");
        goto err;
    }

    PQclear(res);
    res = NULL;

    if (chat_password_hash(in_password, strlen(in_password), hash,
                           sizeof(hash)) != 0)
    {
        goto err;
    }

    /* the insert settles a race with a concurrent registration */
    res = chat_user_insert(ctx->db, email, name, hash, "user");
    if (res == NULL) {
        goto err;
    }

    if (PQntuples(res) == 0) {
        rc = chat_op_error(ctx, 409, "email_taken",
                           "an account with this email already exists");
        goto err;
    }

    rc = chat_auth_user_reply(ctx, 201, res);

    chat_log_info("registered user %s (%s)", PQgetvalue(res, 0, 0), email);

err:

    PQclear(res);
    return rc;
}


int
chat_op_auth_login(chat_op_ctx_t *ctx)
{
    int          rc, ok;
    char         email[CHAT_EMAIL_MAX + 1];
    size_t       pw_len;
    const char  *in_email, *in_password, *stored;
    PGresult    *res;

    res = NULL;
    rc = -1;

    in_email = chat_auth_string(ctx, "email");
    in_password = in_email ? chat_auth_string(ctx, "password") : NULL;

    if (in_password == NULL) {
        return ctx->reply ? 0 : -1;
    }

    pw_len = strlen(in_password);

    if (chat_email_normalize(in_email, strlen(in_email), email, sizeof(email))
        != NULL || pw_len > CHAT_PASSWORD_MAX)
    {
        /* cannot match any account; says nothing about which exist */
        return chat_op_error(ctx, 401, "invalid_credentials",
                             "wrong email or password");
    }

    res = chat_user_by_email(ctx->db, email);
    if (res == NULL) {
        goto err;
    }

    if (PQntuples(res) == 0) {
        if (chat_op_auth_init() != 0) {
            goto err;
        }

        (void) chat_password_verify(in_password, pw_len,
                                    chat_auth_dummy_hash);
        ok = 0;

    } else {
        stored = PQgetvalue(res, 0, CHAT_USER_COL_PASSWORD_HASH);
        ok = chat_password_verify(in_password, pw_len, stored);

        if (ok < 0) {
            chat_log_error("user %s: stored password hash is unusable",
                           PQgetvalue(res, 0, CHAT_USER_COL_ID));
            rc = chat_op_error(ctx, 500, "internal_error",
                               "this account cannot sign in; "
                               "contact the operator");
            goto err;
        }
    }

    if (!ok) {
        rc = chat_op_error(ctx, 401, "invalid_credentials",
                           "wrong email or password");
        goto err;
    }

    rc = chat_auth_user_reply(ctx, 200, res);

err:

    PQclear(res);
    return rc;
}


int
chat_op_user_me(chat_op_ctx_t *ctx)
{
    int        rc;
    PGresult  *res;

    rc = chat_op_require_user(ctx);
    if (rc != 1) {
        return rc;
    }

    res = chat_user_by_id(ctx->db, ctx->cmd->uid);
    if (res == NULL) {
        return -1;
    }

    if (PQntuples(res) == 0) {
        rc = chat_op_error(ctx, 404, "not_found", "the user no longer exists");

    } else {
        rc = chat_auth_user_reply(ctx, 200, res);
    }

    PQclear(res);
    return rc;
}


/*
 * A successful register, login or refresh reply gets "token", signed for
 * the user and role it carries (and the session a refresh names);
 * anything else is sent as stored.
 */
int
chat_op_auth_present(const chat_config_t *cfg, int status,
    const char *stored, chat_reply_t *out)
{
    int           rc;
    char          token[CHAT_TOKEN_MAX_LEN];
    cJSON        *root;
    const cJSON  *user, *id, *role;

    rc = -1;
    root = NULL;
    out->status = status;
    out->body = NULL;

    if (status != 200 && status != 201) {
        out->body = strdup(stored);
        return out->body ? 0 : -1;
    }

    root = cJSON_Parse(stored);
    user = cJSON_GetObjectItemCaseSensitive(root, "user");
    id = cJSON_GetObjectItemCaseSensitive(user, "id");
    role = cJSON_GetObjectItemCaseSensitive(user, "role");

    if (!cJSON_IsNumber(id) || !cJSON_IsString(role)) {
        chat_log_error("auth reply without user id and role: %.200s",
                       stored);
        goto err;
    }

    /* auth.refresh continues the session it names (session.c); a login
     * or sign-up starts one */
    if (chat_auth_sign(cfg, (int64_t) id->valuedouble, role->valuestring,
                       cJSON_GetObjectItemCaseSensitive(root, "session"),
                       token, sizeof(token)) != 0)
    {
        chat_log_error("signing a token failed for user %.0f",
                       id->valuedouble);
        goto err;
    }

    cJSON_DeleteItemFromObjectCaseSensitive(root, "session");

    if (cJSON_AddStringToObject(root, "token", token) == NULL) {
        goto err;
    }

    out->body = cJSON_PrintUnformatted(root);
    if (out->body != NULL) {
        rc = 0;
    }

err:

    cJSON_Delete(root);
    return rc;
}
