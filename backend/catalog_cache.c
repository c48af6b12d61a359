/*
 * catalog_cache.c: invalidating the edge's catalog cache after a write.
 *
 * The edge (ngx_chat_module/ngx_chat_cache.c) caches book details under
 * the book's generation counter and list pages under the lists'
 * counter, and a reader's entry is stored under the generation the
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
 * What a write touches is derived from its op, its body and its final
 * reply, not remembered from the handler, so a replay from command_log
 * (the reply was lost, the entry reclaimed) bumps the same counters
 * again before it answers.  Bumping twice costs one extra miss.
 *
 *   admin.book.create              lists
 *   admin.book.update, .delete     the book, lists
 *   catalog.review.create          the book, lists (rating, reviews)
 *   admin.inventory.set, .adjust   the book and lists, only when the
 *                                  reply says stock_status_changed
 *   order.checkout                 every book of the order (its stock
 *                                  was reserved, so its stock_status may
 *                                  have moved); not the lists
 *
 * Only 2xx replies touch anything: a refused write changed nothing.
 */

#include <stdio.h>
#include <string.h>

#include "catalog_cache.h"
#include "chat_protocol.h"
#include "conv_input.h"
#include "log.h"
#include "ops.h"


void
chat_catalog_cache_touched(const char *op, const cJSON *body, int status,
    const char *reply, int64_t *book, int *lists)
{
    cJSON    *r;
    int64_t   id;

    *book = 0;
    *lists = 0;

    if (status < 200 || status > 299) {
        return;
    }

    if (chat_json_integer(cJSON_GetObjectItemCaseSensitive(body, "book_id"),
                          1, CHAT_INT_MAX, &id) != 0)
    {
        id = 0;
    }

    if (strcmp(op, "admin.book.create") == 0) {
        *lists = 1;
        return;
    }

    if (strcmp(op, "admin.book.update") == 0
        || strcmp(op, "admin.book.delete") == 0
        || strcmp(op, "catalog.review.create") == 0)
    {
        *book = id;
        *lists = 1;
        return;
    }

    if (strcmp(op, "admin.inventory.set") == 0
        || strcmp(op, "admin.inventory.adjust") == 0)
    {
        r = cJSON_Parse(reply);
        if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(r,
                                                  "stock_status_changed")))
        {
            *book = id;
            *lists = 1;
        }
        cJSON_Delete(r);
    }
}


static int
chat_catalog_cache_incr(chat_bus_t *bus, const char *key)
{
    int          rc;
    const char  *argv[2];
    redisReply  *r;

    argv[0] = "INCR";
    argv[1] = key;

    r = chat_bus_command(bus, 2, argv, NULL);
    rc = chat_bus_check(r, "INCR (catalog cache generation)");
    freeReplyObject(r);

    return rc;
}


/* INCRs the generation of one book's cached pages. */
static int
chat_catalog_cache_book(chat_bus_t *bus, int64_t book)
{
    char  key[64];

    snprintf(key, sizeof(key), CHAT_CACHE_BOOK_PREFIX "%lld}:gen",
             (long long) book);

    return chat_catalog_cache_incr(bus, key);
}


/*
 * A checkout's reply {"order": {"items": [{"book_id", ...}]}}: every book
 * in it.  The details page of a book being bought is rendered again after
 * each purchase, which is what showing its stock truthfully costs; list
 * pages are left to chat_cache_ttl (a purchase does not bump them, or a
 * busy store would never have a cached search page).
 */
static int
chat_catalog_cache_order(chat_bus_t *bus, const char *reply)
{
    int       rc;
    cJSON    *r, *items, *item;
    int64_t   id;

    r = cJSON_Parse(reply);
    items = cJSON_GetObjectItemCaseSensitive(
                cJSON_GetObjectItemCaseSensitive(r, "order"), "items");
    rc = 0;

    cJSON_ArrayForEach(item, items) {
        if (chat_json_integer(cJSON_GetObjectItemCaseSensitive(item,
                                                               "book_id"),
                              1, CHAT_INT_MAX, &id) == 0
            && chat_catalog_cache_book(bus, id) != 0)
        {
            rc = -1;
            break;
        }
    }

    cJSON_Delete(r);
    return rc;
}


int
chat_catalog_cache_bump(chat_bus_t *bus, chat_job_t **jobs, size_t n)
{
    int          lists, any_lists;
    size_t       i;
    int64_t      book;
    chat_job_t  *job;

    any_lists = 0;

    for (i = 0; i < n; i++) {
        job = jobs[i];

        if (!job->done || !(job->op->flags & CHAT_OP_CATALOG)
            || job->body == NULL)
        {
            continue;
        }

        if (strcmp(job->op->name, "order.checkout") == 0) {
            if (job->reply.status >= 200 && job->reply.status <= 299
                && chat_catalog_cache_order(bus, job->reply.body) != 0)
            {
                return -1;
            }
            continue;
        }

        chat_catalog_cache_touched(job->op->name, job->body,
                                   job->reply.status, job->reply.body,
                                   &book, &lists);

        any_lists |= lists;

        if (book > 0 && chat_catalog_cache_book(bus, book) != 0) {
            return -1;
        }
    }

    if (any_lists && chat_catalog_cache_incr(bus, CHAT_CACHE_LISTS_GEN) != 0)
    {
        return -1;
    }

    return 0;
}
