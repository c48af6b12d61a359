/*
 * test_backend_notify.c: the batching rule of offline notifications
 * (backend/presence/notify_batch.c): one batch per recipient and conversation, due
 * after a quiet time but never later than a maximum delay, closed once
 * tried, newest preview kept; the retry backoff; previews cut on UTF-8
 * character boundaries.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "notify_batch.h"
#include "unit.h"


static long
add(chat_batches_t *bs, int64_t uid, int64_t cid, int64_t seq,
    const char *preview, int64_t now)
{
    char               id[32];
    chat_notify_job_t  job;

    snprintf(id, sizeof(id), "%lld-0", (long long) (now * 100 + seq));
    job.id = id;
    job.uid = uid;
    job.cid = cid;
    job.seq = seq;
    job.sender = 1000 + seq;
    job.preview = preview;

    return chat_batches_add(bs, &job, now, 1000, 10000);
}


static void
test_burst_is_one_batch(void)
{
    int             i;
    char            text[32];
    chat_batches_t  bs;

    memset(&bs, 0, sizeof(bs));

    for (i = 1; i <= 50; i++) {
        snprintf(text, sizeof(text), "message %d", i);
        CHECK(add(&bs, 7, 3, i, text, 100 + i) == 0);
    }

    CHECK(bs.n == 1);
    CHECK(bs.items[0].count == 50);
    CHECK(bs.items[0].nids == 50);
    CHECK(bs.items[0].first_seq == 1 && bs.items[0].last_seq == 50);
    CHECK(strcmp(bs.items[0].preview, "message 50") == 0);
    CHECK(bs.items[0].sender == 1050);
    CHECK(bs.items[0].due_ms == 150 + 1000);         /* quiet after the last */
    CHECK(chat_batches_next_due(&bs, -1) == 1150);

    chat_batches_free(&bs);
    CHECK(bs.n == 0 && bs.items == NULL);
}


static void
test_out_of_order_keeps_newest(void)
{
    chat_batches_t  bs;

    memset(&bs, 0, sizeof(bs));

    CHECK(add(&bs, 7, 3, 5, "five", 0) == 0);
    CHECK(add(&bs, 7, 3, 3, "three", 1) == 0);
    CHECK(add(&bs, 7, 3, 4, "four", 2) == 0);

    CHECK(bs.items[0].first_seq == 3 && bs.items[0].last_seq == 5);
    CHECK(strcmp(bs.items[0].preview, "five") == 0);
    CHECK(bs.items[0].sender == 1005);

    chat_batches_free(&bs);
}


static void
test_separate_batches(void)
{
    chat_batches_t  bs;

    memset(&bs, 0, sizeof(bs));

    CHECK(add(&bs, 7, 3, 1, "a", 0) == 0);
    CHECK(add(&bs, 7, 4, 1, "b", 0) == 1);           /* other conversation */
    CHECK(add(&bs, 8, 3, 1, "c", 0) == 2);           /* other recipient */
    CHECK(add(&bs, 7, 3, 2, "d", 0) == 0);
    CHECK(bs.n == 3);

    /* a tried batch is closed: a new job starts another */
    bs.items[0].attempts = 1;
    CHECK(add(&bs, 7, 3, 3, "e", 5) == 3);
    CHECK(bs.items[0].count == 2 && bs.items[3].count == 1);

    chat_batches_remove(&bs, 0);
    CHECK(bs.n == 3);
    CHECK(bs.items[0].uid == 7 && bs.items[0].cid == 3
          && bs.items[0].count == 1);                 /* the last moved in */

    chat_batches_free(&bs);
}


static void
test_max_delay(void)
{
    int64_t         t;
    chat_batches_t  bs;

    memset(&bs, 0, sizeof(bs));

    /* a message every 500 ms never leaves 1 s of quiet: the cap decides */
    for (t = 0; t <= 20000; t += 500) {
        CHECK(add(&bs, 7, 3, t / 500 + 1, "x", t) == 0);
        CHECK(bs.items[0].due_ms <= 10000);
    }
    CHECK(bs.items[0].due_ms == 10000);

    chat_batches_free(&bs);
    CHECK(chat_batches_next_due(&bs, 42) == 42);
}


static void
test_backoff(void)
{
    CHECK(chat_notify_backoff(500, 1, 60000) == 500);
    CHECK(chat_notify_backoff(500, 2, 60000) == 1000);
    CHECK(chat_notify_backoff(500, 4, 60000) == 4000);
    CHECK(chat_notify_backoff(500, 20, 60000) == 60000);
    CHECK(chat_notify_backoff(500, 1000, 60000) == 60000);
}


static void
test_utf8_prefix(void)
{
    /* "é" is c3 a9, "€" is e2 82 ac */
    CHECK(chat_utf8_prefix_len("hello", 100) == 5);
    CHECK(chat_utf8_prefix_len("hello", 3) == 3);
    CHECK(chat_utf8_prefix_len("", 3) == 0);
    CHECK(chat_utf8_prefix_len("ab\xc3\xa9", 3) == 2);
    CHECK(chat_utf8_prefix_len("ab\xc3\xa9", 4) == 4);
    CHECK(chat_utf8_prefix_len("a\xe2\x82\xac" "b", 2) == 1);
    CHECK(chat_utf8_prefix_len("a\xe2\x82\xac" "b", 3) == 1);
    CHECK(chat_utf8_prefix_len("a\xe2\x82\xac" "b", 4) == 4);
    CHECK(chat_utf8_prefix_len("\xf0\x9f\x98\x80", 2) == 0);
}


int
main(void)
{
    UNIT_RUN(test_burst_is_one_batch);
    UNIT_RUN(test_out_of_order_keeps_newest);
    UNIT_RUN(test_separate_batches);
    UNIT_RUN(test_max_delay);
    UNIT_RUN(test_backoff);
    UNIT_RUN(test_utf8_prefix);

    return UNIT_SUMMARY();
}
