/*
 * notify_batch.h: offline notification jobs gathered into batches per
 * recipient and conversation.  Pure (memory only); notifier.c drives it.
 * See notify_batch.c.
 */

#ifndef CHAT_NOTIFY_BATCH_H
#define CHAT_NOTIFY_BATCH_H

#include <stddef.h>
#include <stdint.h>

/* One job off chat:notify (strings borrowed for the call). */
typedef struct {
    const char  *id;            /* stream entry id */
    int64_t      uid;           /* recipient */
    int64_t      cid;
    int64_t      seq;
    int64_t      sender;
    const char  *preview;
} chat_notify_job_t;

typedef struct {
    int64_t     uid;
    int64_t     cid;
    int64_t     sender;         /* of the newest message */
    int64_t     first_seq;
    int64_t     last_seq;
    int         count;
    char       *preview;        /* of the newest message */
    char      **ids;            /* entries to ack when the batch is done */
    size_t      nids;
    size_t      cap;
    int64_t     first_ms;       /* when its first job arrived */
    int64_t     due_ms;         /* when to send it (next) */
    int         attempts;       /* calls made; > 0: closed to new jobs */
} chat_batch_t;

typedef struct {
    chat_batch_t  *items;
    size_t         n;
    size_t         cap;
} chat_batches_t;

/*
 * Adds job at time now (ms) to the open batch of its recipient and
 * conversation, or to a new one.  The batch is due quiet_ms after its
 * newest job, but never later than max_delay_ms after its first.  Returns
 * the batch's index, or -1 without memory.
 */
long chat_batches_add(chat_batches_t *bs, const chat_notify_job_t *job,
    int64_t now, int64_t quiet_ms, int64_t max_delay_ms);

/* Frees batch i; the last batch takes its place. */
void chat_batches_remove(chat_batches_t *bs, size_t i);

void chat_batches_free(chat_batches_t *bs);

/* The earliest due time, or none when there is no batch. */
int64_t chat_batches_next_due(const chat_batches_t *bs, int64_t none);

/* Delay before retry number attempts (1, 2, ...): base_ms doubled each
 * time, at most max_ms. */
int64_t chat_notify_backoff(int64_t base_ms, int attempts, int64_t max_ms);

/* The length of the longest prefix of s of at most max bytes that does
 * not cut a UTF-8 character (s is valid UTF-8). */
size_t chat_utf8_prefix_len(const char *s, size_t max);

#endif /* CHAT_NOTIFY_BATCH_H */
