/*
 * users.c: reads and writes of the users table (sql/001_accounts.sql).
 *
 * Every query selects the same column list, in the order of the
 * CHAT_USER_COL_* constants, so one function turns any row into the API's
 * user object.  created_at is formatted by PostgreSQL as RFC 3339 in UTC
 * with milliseconds ("2026-11-23T10:00:00.123Z"), whatever the session's
 * time zone.
 *
 * E-mails arrive already normalised (trimmed, ASCII-lowercased: see
 * validate.c); the unique index is on lower(email) all the same, so rows
 * written by hand cannot create a case-variant duplicate.  The insert uses
 * ON CONFLICT DO NOTHING on that index: a taken address is an empty
 * result, not an error that would abort the surrounding transaction, and
 * two concurrent registrations of one address serialise on the index.
 *
 * What it does not do: validate input or hash passwords (the callers do),
 * or decide what a missing row means.
 */

#include <stdio.h>
#include <stdlib.h>

#include "users.h"


#define CHAT_USER_COLUMNS                                                   \
    "id, email, display_name, role, "                                       \
    "to_char(created_at AT TIME ZONE 'UTC', "                               \
    "'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"


PGresult *
chat_user_insert(chat_db_t *db, const char *email, const char *display_name,
    const char *password_hash, const char *role)
{
    const char  *values[4];

    values[0] = email;
    values[1] = display_name;
    values[2] = password_hash;
    values[3] = role;

    return chat_db_query(db,
        "INSERT INTO users (email, display_name, password_hash, role) "
        "VALUES ($1, $2, $3, $4) "
        "ON CONFLICT ((lower(email))) DO NOTHING "
        "RETURNING " CHAT_USER_COLUMNS,
        4, values, NULL, NULL);
}


PGresult *
chat_user_by_email(chat_db_t *db, const char *email)
{
    const char  *values[1];

    values[0] = email;

    return chat_db_query(db,
        "SELECT " CHAT_USER_COLUMNS ", password_hash "
        "FROM users WHERE lower(email) = lower($1)",
        1, values, NULL, NULL);
}


PGresult *
chat_user_by_id(chat_db_t *db, int64_t id)
{
    char         buf[24];
    const char  *values[1];

    snprintf(buf, sizeof(buf), "%lld", (long long) id);
    values[0] = buf;

    return chat_db_query(db,
        "SELECT " CHAT_USER_COLUMNS " FROM users WHERE id = $1",
        1, values, NULL, NULL);
}


cJSON *
chat_user_json(const PGresult *res, int row)
{
    cJSON  *user;

    user = cJSON_CreateObject();

    if (user == NULL
        || cJSON_AddNumberToObject(user, "id",
               strtod(PQgetvalue(res, row, CHAT_USER_COL_ID), NULL)) == NULL
        || cJSON_AddStringToObject(user, "email",
               PQgetvalue(res, row, CHAT_USER_COL_EMAIL)) == NULL
        || cJSON_AddStringToObject(user, "display_name",
               PQgetvalue(res, row, CHAT_USER_COL_DISPLAY_NAME)) == NULL
        || cJSON_AddStringToObject(user, "role",
               PQgetvalue(res, row, CHAT_USER_COL_ROLE)) == NULL
        || cJSON_AddStringToObject(user, "created_at",
               PQgetvalue(res, row, CHAT_USER_COL_CREATED_AT)) == NULL)
    {
        cJSON_Delete(user);
        return NULL;
    }

    return user;
}
