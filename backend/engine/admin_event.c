/*
 * admin_event.c: one admin's change told to every admin's open back
 * office, on the same path as every other event (event.c, then fanout.c
 * after the commit; the edge sends it on the admin's WebSocket or
 * long-poll, like a shopper's order events).
 *
 * The event names what changed, not how: {kind, id, by}.  The back office
 * fetches what it shows again, through the API and its checks, so the
 * event never carries more than an id to a page, and two admins never
 * disagree about a record because an event was dropped or reordered: the
 * last fetch wins.
 *
 * Who hears it: the accounts of role admin (the first 1000), read at the
 * change from a partial index of the admins (sql/012_admin_index.sql), so
 * a store with millions of users pays a few index entries per admin
 * change.  Offline admins cost nothing more: fanout.c skips users with no
 * live connection.
 */

#include <stdlib.h>

#include <cjson/cJSON.h>

#include "admin_event.h"


int
chat_admin_event(chat_db_t *db, chat_events_t *events, const char *kind,
    int64_t id, int64_t actor)
{
    int        i, n, rc;
    cJSON     *ev, *change;
    int64_t   *uids;
    PGresult  *res;

    if (events == NULL) {
        return 0;
    }

    res = chat_db_query(db,
              "SELECT id FROM users WHERE role = 'admin' ORDER BY id"
              " LIMIT 1000", 0, NULL, NULL, NULL);
    if (res == NULL) {
        return -1;
    }

    n = PQntuples(res);
    if (n == 0) {
        PQclear(res);
        return 0;
    }

    uids = malloc(n * sizeof(int64_t));
    if (uids == NULL) {
        PQclear(res);
        return -1;
    }

    for (i = 0; i < n; i++) {
        uids[i] = strtoll(PQgetvalue(res, i, 0), NULL, 10);
    }

    PQclear(res);

    rc = -1;
    ev = cJSON_CreateObject();
    change = NULL;

    if (ev != NULL
        && cJSON_AddStringToObject(ev, "type", "admin_change") != NULL
        && (change = cJSON_AddObjectToObject(ev, "change")) != NULL
        && cJSON_AddStringToObject(change, "kind", kind) != NULL
        && cJSON_AddNumberToObject(change, "id", (double) id) != NULL
        && cJSON_AddNumberToObject(change, "by", (double) actor) != NULL)
    {
        rc = chat_events_add(events, ev, uids, (size_t) n);
    }

    cJSON_Delete(ev);
    free(uids);

    return rc;
}
