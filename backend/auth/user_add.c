/*
 * user_add.c: "chat-backend user-add --email E --name N [--admin]",
 * with the password on stdin or in --password-file (never in argv, where
 * ps shows it), for operators and for the local stack's demo users.
 *
 * It applies the same rules as auth.register (validate.c) and the same
 * password hashing (password.c), connects to --pg once, and inserts the
 * user.  If the e-mail already exists it says so and exits 0 without
 * changing anything, so scripts can run it on every start.  Any failure
 * exits 1 with a message on stderr.
 *
 * What it does not do: change an existing user's password or role, or go
 * through the command bus (it writes PostgreSQL directly, like a
 * migration would).
 */

#include <stdio.h>
#include <string.h>

#include "db.h"
#include "log.h"
#include "password.h"
#include "user_add.h"
#include "users.h"
#include "validate.h"


int
chat_user_add(const chat_config_t *cfg, const char *email_in,
    const char *password, const char *display_name, int admin)
{
    int          rc;
    char         email[CHAT_EMAIL_MAX + 1];
    char         name[CHAT_DISPLAY_NAME_MAX_BYTES + 1];
    char         hash[CHAT_PASSWORD_HASH_SIZE];
    const char  *why, *role;
    PGresult    *res;
    chat_db_t    db;

    rc = 1;
    res = NULL;
    role = admin ? "admin" : "user";

    why = chat_email_normalize(email_in, strlen(email_in), email,
                               sizeof(email));
    if (why == NULL) {
        why = chat_password_check(password, strlen(password));
    }
    if (why == NULL) {
        why = chat_display_name_normalize(display_name, strlen(display_name),
                                          name, sizeof(name));
    }
    if (why != NULL) {
        fprintf(stderr, "chat-backend user-add: %s\n", why);
        return 1;
    }

    chat_db_init(&db, cfg->pg, "chat-backend user-add");

    if (chat_db_connect(&db) != 0) {
        fprintf(stderr, "chat-backend user-add: cannot connect to "
                "PostgreSQL (--pg \"%s\")\n", cfg->pg);
        return 1;
    }

    res = chat_user_by_email(&db, email);
    if (res == NULL) {
        goto err;
    }

    if (PQntuples(res) == 0) {
        PQclear(res);
        res = NULL;

        if (chat_password_hash(password, strlen(password), hash,
                               sizeof(hash)) != 0)
        {
            goto err;
        }

        res = chat_user_insert(&db, email, name, hash, role);
        if (res == NULL) {
            goto err;
        }

        if (PQntuples(res) == 1) {
            printf("created user %s <%s> (%s)\n",
                   PQgetvalue(res, 0, CHAT_USER_COL_ID), email, role);
            rc = 0;
            goto done;
        }

        /* created by someone else since the SELECT: report it as existing */
        PQclear(res);
        res = chat_user_by_email(&db, email);
        if (res == NULL || PQntuples(res) == 0) {
            goto err;
        }
    }

    printf("user <%s> already exists (id %s, role %s); nothing changed\n",
           email, PQgetvalue(res, 0, CHAT_USER_COL_ID),
           PQgetvalue(res, 0, CHAT_USER_COL_ROLE));
    rc = 0;
    goto done;

err:

    fprintf(stderr, "chat-backend user-add: failed; see the error above\n");

done:

    PQclear(res);
    chat_db_close(&db);
    chat_password_cleanup();

    return rc;
}
