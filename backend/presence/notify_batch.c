/*
 * notify_batch.c: the batching rule of offline notifications, kept apart
 * from Redis, PostgreSQL and HTTP so it can be unit-tested
 * (tests/unit/test_backend_notify.c).
 *
 * Jobs of one recipient and conversation gather into one open batch.  A
 * batch is due once no job joined it for quiet_ms, or max_delay_ms after
 * its first job at the latest, so a burst becomes one notification and a
 * steady trickle still notifies regularly.  A batch that has been tried
 * (attempts > 0) is closed: a job arriving during its retries starts a new
 * batch, so a retry always sends exactly what was tried before.  The batch
 * keeps the newest message's sender and preview, the seq range, the count
 * and the stream ids to ack once it is done.  The list is small (one
 * entry per recipient and conversation in flight) and searched linearly.
 */

#include <stdlib.h>
#include <string.h>

#include "notify_batch.h"


long
chat_batches_add(chat_batches_t *bs, const chat_notify_job_t *job,
    int64_t now, int64_t quiet_ms, int64_t max_delay_ms)
{
    size_t         i, cap;
    char         **ids, *id, *preview;
    chat_batch_t  *b, *items;

    b = NULL;

    for (i = 0; i < bs->n; i++) {
        if (bs->items[i].uid == job->uid && bs->items[i].cid == job->cid
            && bs->items[i].attempts == 0)
        {
            b = &bs->items[i];
            break;
        }
    }

    if (b == NULL) {
        if (bs->n == bs->cap) {
            cap = bs->cap ? bs->cap * 2 : 16;
            items = realloc(bs->items, cap * sizeof(chat_batch_t));
            if (items == NULL) {
                return -1;
            }
            bs->items = items;
            bs->cap = cap;
        }

        i = bs->n;
        b = &bs->items[i];
        memset(b, 0, sizeof(chat_batch_t));
        b->uid = job->uid;
        b->cid = job->cid;
        b->first_seq = job->seq;
        b->last_seq = job->seq;
        b->sender = job->sender;
        b->first_ms = now;
        bs->n++;
    }

    if (b->nids == b->cap) {
        cap = b->cap ? b->cap * 2 : 8;
        ids = realloc(b->ids, cap * sizeof(char *));
        if (ids == NULL) {
            goto failed;
        }
        b->ids = ids;
        b->cap = cap;
    }

    id = strdup(job->id);
    if (id == NULL) {
        goto failed;
    }

    if (b->preview == NULL || job->seq >= b->last_seq) {
        preview = strdup(job->preview);
        if (preview == NULL) {
            free(id);
            goto failed;
        }
        free(b->preview);
        b->preview = preview;
        b->last_seq = job->seq;
        b->sender = job->sender;
    }

    if (job->seq < b->first_seq) {
        b->first_seq = job->seq;
    }

    b->ids[b->nids++] = id;
    b->count++;

    b->due_ms = now + quiet_ms;
    if (b->due_ms > b->first_ms + max_delay_ms) {
        b->due_ms = b->first_ms + max_delay_ms;
    }

    return (long) i;

failed:

    if (b->count == 0) {
        chat_batches_remove(bs, i);
    }

    return -1;
}


void
chat_batches_remove(chat_batches_t *bs, size_t i)
{
    size_t         k;
    chat_batch_t  *b = &bs->items[i];

    for (k = 0; k < b->nids; k++) {
        free(b->ids[k]);
    }
    free(b->ids);
    free(b->preview);

    bs->items[i] = bs->items[--bs->n];
}


void
chat_batches_free(chat_batches_t *bs)
{
    while (bs->n > 0) {
        chat_batches_remove(bs, bs->n - 1);
    }

    free(bs->items);
    bs->items = NULL;
    bs->cap = 0;
}


int64_t
chat_batches_next_due(const chat_batches_t *bs, int64_t none)
{
    size_t   i;
    int64_t  due;

    due = none;

    for (i = 0; i < bs->n; i++) {
        if (i == 0 || bs->items[i].due_ms < due) {
            due = bs->items[i].due_ms;
        }
    }

    return due;
}


int64_t
chat_notify_backoff(int64_t base_ms, int attempts, int64_t max_ms)
{
    int64_t  delay;

    delay = base_ms;

    while (--attempts > 0 && delay < max_ms) {
        delay *= 2;
    }

    return delay < max_ms ? delay : max_ms;
}


size_t
chat_utf8_prefix_len(const char *s, size_t max)
{
    size_t  len;

    len = strlen(s);
    if (len <= max) {
        return len;
    }

    /* back off continuation bytes (10xxxxxx) to the start of a character */
    len = max;
    while (len > 0 && ((unsigned char) s[len] & 0xc0) == 0x80) {
        len--;
    }

    return len;
}
