/*
 * catalog_cache.c: invalidating the edge's catalog cache after a write.
 *
 * The edge (ngx_chat_module/ngx_chat_cache.c) caches book details under
 * the book's generation counter and list pages under their list shard's
 * counter (all sixteen bumped together), and a reader's entry is stored under the generation the
 * reader saw BEFORE its worker read PostgreSQL.  Here a write bumps those
 * counters AFTER its commit and BEFORE its reply is published, so:
 *
 *   - a read that started before the bump stores its entry under the old
 *     generation, which nobody looks up any more, whether it saw the old
 *     row or the new one;
 *   - a read that starts after the bump started after the commit too,
 *     and sees the new row.
 *
 * Hence once the writer's reply is out, no reader can be served the old
 * row from the cache, with no lock and no race window; deleting entries
 * instead could be undone by a slow reader writing its old copy back.
 *
 * What a write touches is derived from its body and its final reply by
 * the op's touches hook (ops.h; the hooks are here, the ops name them in
 * their area's table), not remembered from the handler, so a replay from
 * command_log (the reply was lost, the entry reclaimed) bumps the same
 * counters again before it answers.  Bumping twice costs one extra miss.
 *
 *   admin.book.create              lists
 *   admin.book.update, .delete     the book, lists
 *   catalog.review.create          the book, lists (rating, reviews)
 *   admin.inventory.set, .adjust   the book and lists, only when the
 *                                  reply says stock_status_changed
 *   admin.category.create,         lists
 *   admin.author.create
 *   admin.category.update,         lists and the books in the reply's
 *   admin.author.update            touched_book_ids (their pages name it)
 *   order.checkout                 every book of the order (its stock
 *                                  was reserved, so its stock_status may
 *                                  have moved); not the lists
 *
 * Only 2xx replies touch anything: a refused write changed nothing.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catalog_cache.h"
#include "chat_protocol.h"
#include "conv_input.h"
#include "log.h"
#include "ops.h"


static int
chat_catalog_ok(int status)
{
    return status >= 200 && status <= 299;
}


static void
chat_catalog_touch_book(chat_touched_t *t, int64_t id)
{
    if (id > 0 && t->nbooks < CHAT_TOUCHED_BOOKS_MAX) {
        t->books[t->nbooks++] = id;
    }
}


/* the body's book_id, or 0 */
static int64_t
chat_catalog_body_book(const cJSON *body)
{
    int64_t  id;

    if (chat_json_integer(cJSON_GetObjectItemCaseSensitive(body, "book_id"),
                          1, CHAT_INT_MAX, &id) != 0)
    {
        return 0;
    }

    return id;
}


void
chat_catalog_touches_lists(const cJSON *body, int status, const char *reply,
    chat_touched_t *t)
{
    (void) body;
    (void) reply;

    if (chat_catalog_ok(status)) {
        t->lists = 1;
    }
}


void
chat_catalog_touches_book(const cJSON *body, int status, const char *reply,
    chat_touched_t *t)
{
    (void) reply;

    if (chat_catalog_ok(status)) {
        chat_catalog_touch_book(t, chat_catalog_body_book(body));
        t->lists = 1;
    }
}


void
chat_catalog_touches_stock(const cJSON *body, int status, const char *reply,
    chat_touched_t *t)
{
    cJSON  *r;

    if (!chat_catalog_ok(status)) {
        return;
    }

    r = cJSON_Parse(reply);

    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(r,
                                                      "stock_status_changed")))
    {
        chat_catalog_touch_book(t, chat_catalog_body_book(body));
        t->lists = 1;
    }

    cJSON_Delete(r);
}


void
chat_catalog_touches_order(const cJSON *body, int status, const char *reply,
    chat_touched_t *t)
{
    cJSON    *r, *items, *item;
    int64_t   id;

    (void) body;

    if (!chat_catalog_ok(status)) {
        return;
    }

    r = cJSON_Parse(reply);
    items = cJSON_GetObjectItemCaseSensitive(
                cJSON_GetObjectItemCaseSensitive(r, "order"), "items");

    cJSON_ArrayForEach(item, items) {
        if (chat_json_integer(cJSON_GetObjectItemCaseSensitive(item,
                                                               "book_id"),
                              1, CHAT_INT_MAX, &id) == 0)
        {
            chat_catalog_touch_book(t, id);
        }
    }

    cJSON_Delete(r);
}


void
chat_catalog_touches_named(const cJSON *body, int status, const char *reply,
    chat_touched_t *t)
{
    cJSON    *r, *item;
    int64_t   id;

    (void) body;

    if (!chat_catalog_ok(status)) {
        return;
    }

    t->lists = 1;
    r = cJSON_Parse(reply);

    cJSON_ArrayForEach(item, cJSON_GetObjectItemCaseSensitive(r,
                                                     "touched_book_ids"))
    {
        if (chat_json_integer(item, 1, CHAT_INT_MAX, &id) == 0) {
            chat_catalog_touch_book(t, id);
        }
    }

    cJSON_Delete(r);
}


/* keys grown to cap entries; the old array is freed on failure */
static char (*
chat_catalog_keys_grow(char (*keys)[64], size_t cap))[64]
{
    char  (*p)[64];

    p = realloc(keys, cap * sizeof(*keys));
    if (p == NULL) {
        free(keys);
    }

    return p;
}


/*
 * INCR of every key in one pipelined round trip: a worker answering a
 * few dozen checkouts at once bumps a generation for each of their books.
 * 0, or -1 when any failed.
 */
static int
chat_catalog_cache_incr(chat_bus_t *bus, char (*keys)[64], size_t n)
{
    size_t  i;

    if (n == 0) {
        return 0;
    }

    if (!chat_bus_ok(bus)) {
        return -1;
    }

    for (i = 0; i < n; i++) {
        if (chat_router_appendf(&bus->route, "INCR %s", keys[i]) != REDIS_OK) {
            goto lost;
        }
    }

    return chat_bus_replies(bus, n, "INCR (catalog cache generation)") == 0
           ? 0 : -1;

lost:

    chat_bus_lost(bus);
    return -1;
}


int
chat_catalog_cache_bump(chat_bus_t *bus, chat_job_t **jobs, size_t n)
{
    int              any_lists, rc;
    char           (*keys)[64];
    size_t           i, k, nkeys, cap;
    chat_job_t      *job;
    chat_touched_t   t;

    any_lists = 0;
    keys = NULL;
    nkeys = 0;
    cap = 0;
    rc = 0;

    for (i = 0; i < n; i++) {
        job = jobs[i];

        if (!job->done || job->op->touches == NULL || job->body == NULL) {
            continue;
        }

        memset(&t, 0, sizeof(t));
        job->op->touches(job->body, job->reply.status, job->reply.body, &t);

        any_lists |= t.lists;

        if (nkeys + t.nbooks + 1 > cap) {
            cap = (nkeys + t.nbooks + 1) * 2;
            keys = chat_catalog_keys_grow(keys, cap);
            if (keys == NULL) {
                return -1;
            }
        }

        for (k = 0; k < t.nbooks; k++) {
            snprintf(keys[nkeys++], sizeof(keys[0]),
                     CHAT_CACHE_BOOK_PREFIX "%lld}:gen",
                     (long long) t.books[k]);
        }
    }

    if (any_lists) {
        if (nkeys + CHAT_CACHE_LIST_SHARDS > cap) {
            keys = chat_catalog_keys_grow(keys, nkeys + CHAT_CACHE_LIST_SHARDS);
            if (keys == NULL) {
                return -1;
            }
        }

        /* every list shard's counter: which pages a write changes is
         * not known, so all of them go (chat_keys.h) */
        for (k = 0; k < CHAT_CACHE_LIST_SHARDS; k++) {
            (void) chat_key_cache_lists_gen(keys[nkeys++], sizeof(keys[0]),
                                            (unsigned) k);
        }
    }

    rc = chat_catalog_cache_incr(bus, keys, nkeys);

    free(keys);
    return rc;
}
