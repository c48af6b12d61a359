/*
 * users.h: the users table, as the operations and the user-add subcommand
 * see it.  See users.c.
 */

#ifndef CHAT_USERS_H
#define CHAT_USERS_H

#include <stdint.h>

#include <cjson/cJSON.h>
#include <libpq-fe.h>

#include "db.h"

/* column positions in every result these functions return */
enum {
    CHAT_USER_COL_ID = 0,
    CHAT_USER_COL_EMAIL,
    CHAT_USER_COL_DISPLAY_NAME,
    CHAT_USER_COL_ROLE,
    CHAT_USER_COL_CREATED_AT,
    CHAT_USER_COL_PASSWORD_HASH
};

/*
 * Inserts a user unless the e-mail (compared case-insensitively) exists.
 * Returns the result (caller PQclear()s): one row when created, none when
 * the e-mail is taken; NULL when the statement failed.
 */
PGresult *chat_user_insert(chat_db_t *db, const char *email,
    const char *display_name, const char *password_hash, const char *role);

/* The row (zero or one) for an already normalised e-mail, or NULL on
 * failure.  Includes the password hash column. */
PGresult *chat_user_by_email(chat_db_t *db, const char *email);

/* The row (zero or one) for a user id, or NULL on failure. */
PGresult *chat_user_by_id(chat_db_t *db, int64_t id);

/*
 * The API's user object {"id","email","display_name","role","created_at"}
 * from row of a result above; NULL if memory ran out.  The password hash
 * never leaves this function.
 */
cJSON *chat_user_json(const PGresult *res, int row);

#endif /* CHAT_USERS_H */
