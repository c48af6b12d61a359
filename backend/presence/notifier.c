/*
 * notifier.c: the notifier process (one, beside the workers, when
 * CHAT_NOTIFY_WEBHOOK is set): offline notification jobs to a push
 * gateway's webhook, batched, filtered and retried.
 *
 * Jobs come from chat:notify (notify_queue.c: one per message and
 * offline recipient), read with XREADGROUP GROUP notifier notifier.  Jobs
 * of the same recipient and conversation gather into one batch
 * (notify_batch.c), which is sent once no job joined it for
 * CHAT_NOTIFY_QUIET_MS, or CHAT_NOTIFY_MAX_DELAY_MS after its first job at
 * the latest: a burst of 50 messages is one call.  Before sending, PostgreSQL is asked whether
 * the recipient is still a member, has muted the conversation, or has
 * meanwhile read past the batch on another device; then nothing is sent.
 * The call is
 *
 *   POST <webhook>   Content-Type: application/json
 *                    X-Notification-Id: <recipient>:<conversation>:<last_seq>
 *   {"recipient_id", "conversation_id", "sender_id", "preview",
 *    "count", "first_seq", "last_seq"}
 *
 * (sender and preview of the newest message).  A 2xx answer completes
 * the batch.  A 5xx, a 429, a timeout or a refused connection is retried
 * after CHAT_NOTIFY_BACKOFF_MS, doubling each time, up to
 * CHAT_NOTIFY_ATTEMPTS calls; then the batch is logged and dropped.
 * Another 4xx is logged and dropped at once (it will not get better).
 * X-Notification-Id is the same on every retry, so the gateway can drop
 * a duplicate when an answer was lost.
 *
 * The jobs of a batch are acked only when it is finished, so a notifier
 * that dies loses nothing: its successor (the consumer name is fixed)
 * re-reads its pending jobs first and batches them again.  Calls are
 * blocking (http_client.c, with a deadline): a slow gateway slows this
 * process only, never a worker.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "bus.h"
#include "db.h"
#include "http_client.h"
#include "log.h"
#include "notify_batch.h"
#include "notify_queue.h"
#include "roles.h"
#include "supervisor.h"


#define CHAT_NOTIFY_READ       "500"
#define CHAT_NOTIFY_BLOCK_MAX  1000


typedef struct {
    chat_bus_t      bus;
    chat_db_t       db;
    char            consumer[300];
    chat_batches_t  batches;
    int             backlog;
} chat_notifier_t;


static volatile sig_atomic_t  chat_notifier_stop;


/* Removes batch i (its jobs acked when ack is set). */
static void
chat_notifier_finish(chat_notifier_t *nt, size_t i, int ack)
{
    size_t        k;
    redisReply   *r;
    const char  **argv;
    chat_batch_t *b = &nt->batches.items[i];

    if (ack && chat_bus_ok(&nt->bus)) {
        argv = malloc((b->nids + 3) * sizeof(char *));
        if (argv != NULL) {
            argv[0] = "XACK";
            argv[1] = CHAT_NOTIFY_STREAM;
            argv[2] = CHAT_NOTIFY_GROUP;
            for (k = 0; k < b->nids; k++) {
                argv[k + 3] = b->ids[k];
            }
            r = chat_bus_command(&nt->bus, (int) b->nids + 3, argv, NULL);
            (void) chat_bus_check(r, "XACK " CHAT_NOTIFY_STREAM);
            freeReplyObject(r);
            free(argv);
        }
    }

    chat_batches_remove(&nt->batches, i);
}


/* Adds one job (an entry's id and fields) to its batch. */
static void
chat_notifier_add(chat_notifier_t *nt, const redisReply *entry, int64_t now)
{
    size_t             i;
    redisReply        *r;
    const char        *name, *value, *argv[4];
    const redisReply  *f;
    chat_notify_job_t  job;

    f = entry->element[1];
    memset(&job, 0, sizeof(job));
    job.id = entry->element[0]->str;
    job.preview = "";

    for (i = 0; f->type == REDIS_REPLY_ARRAY && i + 1 < f->elements; i += 2) {
        name = f->element[i]->str;
        value = f->element[i + 1]->str;

        if (strcmp(name, "uid") == 0) {
            job.uid = strtoll(value, NULL, 10);
        } else if (strcmp(name, "cid") == 0) {
            job.cid = strtoll(value, NULL, 10);
        } else if (strcmp(name, "seq") == 0) {
            job.seq = strtoll(value, NULL, 10);
        } else if (strcmp(name, "sender") == 0) {
            job.sender = strtoll(value, NULL, 10);
        } else if (strcmp(name, "preview") == 0) {
            job.preview = value;
        }
    }

    if (job.uid <= 0 || job.cid <= 0 || job.seq <= 0) {
        /* cannot be sent, ever (or trimmed away while pending): drop it */
        chat_log_error("notifier: malformed job %s, dropped", job.id);

        argv[0] = "XACK";
        argv[1] = CHAT_NOTIFY_STREAM;
        argv[2] = CHAT_NOTIFY_GROUP;
        argv[3] = job.id;
        r = chat_bus_command(&nt->bus, 4, argv, NULL);
        (void) chat_bus_check(r, "XACK " CHAT_NOTIFY_STREAM);
        freeReplyObject(r);
        return;
    }

    if (chat_batches_add(&nt->batches, &job, now, chat_roles.notify_quiet_ms,
                         chat_roles.notify_max_delay_ms) < 0)
    {
        chat_log_error("notifier: out of memory, job %s left pending",
                       job.id);
    }
}


/* Whether the recipient still wants it: 1 yes, 0 no, -1 PostgreSQL. */
static int
chat_notifier_wanted(chat_notifier_t *nt, const chat_batch_t *b)
{
    int          wanted;
    char         c[24], u[24], s[24];
    PGresult    *res;
    const char  *values[3];

    snprintf(c, sizeof(c), "%lld", (long long) b->cid);
    snprintf(u, sizeof(u), "%lld", (long long) b->uid);
    snprintf(s, sizeof(s), "%lld", (long long) b->last_seq);
    values[0] = c;
    values[1] = u;
    values[2] = s;

    res = chat_db_query_prepared(&nt->db,
        "SELECT 1 FROM conversation_members "
        "WHERE conversation_id = $1 AND user_id = $2 "
        "  AND NOT muted AND last_read_seq < $3",
        3, values, NULL, NULL);
    if (res == NULL) {
        return -1;
    }

    wanted = PQntuples(res) == 1;
    PQclear(res);

    return wanted;
}


/* One webhook call for batch b: 1 done, 0 retry later, -1 give up. */
static int
chat_notifier_call(const chat_batch_t *b)
{
    int                    rc;
    char                  *body, header[128];
    cJSON                 *json;
    const char            *headers[2];
    chat_http_result_t     result;
    chat_http_response_t   resp;

    json = cJSON_CreateObject();
    if (json == NULL
        || cJSON_AddNumberToObject(json, "recipient_id", (double) b->uid)
           == NULL
        || cJSON_AddNumberToObject(json, "conversation_id", (double) b->cid)
           == NULL
        || cJSON_AddNumberToObject(json, "sender_id", (double) b->sender)
           == NULL
        || cJSON_AddStringToObject(json, "preview",
                                   b->preview ? b->preview : "") == NULL
        || cJSON_AddNumberToObject(json, "count", b->count) == NULL
        || cJSON_AddNumberToObject(json, "first_seq", (double) b->first_seq)
           == NULL
        || cJSON_AddNumberToObject(json, "last_seq", (double) b->last_seq)
           == NULL
        || (body = cJSON_PrintUnformatted(json)) == NULL)
    {
        cJSON_Delete(json);
        return 0;
    }

    cJSON_Delete(json);

    snprintf(header, sizeof(header), "X-Notification-Id: %lld:%lld:%lld",
             (long long) b->uid, (long long) b->cid, (long long) b->last_seq);
    headers[0] = header;
    headers[1] = NULL;

    memset(&resp, 0, sizeof(resp));
    result = chat_http_request("POST", chat_roles.notify_webhook, headers,
                               body, chat_roles.notify_timeout_ms, &resp);
    cJSON_free(body);

    if (result == CHAT_HTTP_OK && resp.status >= 200 && resp.status < 300) {
        chat_log_info("notifier: user %lld, conversation %lld: %d message(s) "
                      "notified", (long long) b->uid, (long long) b->cid,
                      b->count);
        rc = 1;

    } else if (result == CHAT_HTTP_OK && resp.status != 429
               && resp.status < 500)
    {
        chat_log_error("notifier: webhook answered %ld for user %lld, "
                       "conversation %lld; dropped", resp.status,
                       (long long) b->uid, (long long) b->cid);
        rc = -1;

    } else if (result == CHAT_HTTP_FAILED) {
        chat_log_error("notifier: webhook call failed: %s; dropped",
                       resp.error);
        rc = -1;

    } else {
        chat_log_warn("notifier: webhook %s (status %ld) for user %lld, "
                      "conversation %lld, attempt %d",
                      result == CHAT_HTTP_OK ? "failed"
                                             : chat_http_result_text(result),
                      resp.status, (long long) b->uid, (long long) b->cid,
                      b->attempts + 1);
        rc = 0;
    }

    chat_http_response_free(&resp);

    return rc;
}


/* Sends the batches that are due. */
static void
chat_notifier_send_due(chat_notifier_t *nt)
{
    int            rc;
    size_t         i;
    int64_t        now;
    chat_batch_t  *b;

    i = 0;

    while (i < nt->batches.n && !chat_notifier_stop) {
        b = &nt->batches.items[i];
        now = chat_mono_ms();

        if (b->due_ms > now) {
            i++;
            continue;
        }

        rc = chat_notifier_wanted(nt, b);

        if (rc < 0) {
            /* PostgreSQL is down: try again in a second */
            b->due_ms = now + 1000;
            i++;
            continue;
        }

        if (rc == 0) {
            chat_log_debug("notifier: user %lld, conversation %lld: muted, "
                           "left or read; not sent", (long long) b->uid,
                           (long long) b->cid);
            chat_notifier_finish(nt, i, 1);
            continue;
        }

        rc = chat_notifier_call(b);
        b->attempts++;

        if (rc == 0 && b->attempts >= chat_roles.notify_attempts) {
            chat_log_error("notifier: user %lld, conversation %lld: gave up "
                           "after %d attempts", (long long) b->uid,
                           (long long) b->cid, b->attempts);
            rc = -1;
        }

        if (rc != 0) {
            chat_notifier_finish(nt, i, 1);
            continue;
        }

        b->due_ms = chat_mono_ms()
                    + chat_notify_backoff(chat_roles.notify_backoff_ms,
                                          b->attempts, 60000);
        i++;
    }
}


/* One XREADGROUP of jobs into batches.  0 or -1. */
static int
chat_notifier_read(chat_notifier_t *nt)
{
    int          argc;
    char         block[24];
    size_t       i;
    int64_t      now, wait;
    redisReply  *r, *entries;
    const char  *argv[11];

    now = chat_mono_ms();
    wait = chat_batches_next_due(&nt->batches, now + CHAT_NOTIFY_BLOCK_MAX)
           - now;
    if (wait > CHAT_NOTIFY_BLOCK_MAX) {
        wait = CHAT_NOTIFY_BLOCK_MAX;
    }

    if (wait <= 0 && !nt->backlog) {
        return 0;
    }

    snprintf(block, sizeof(block), "%lld", (long long) wait);

    argc = 0;
    argv[argc++] = "XREADGROUP";
    argv[argc++] = "GROUP";
    argv[argc++] = CHAT_NOTIFY_GROUP;
    argv[argc++] = CHAT_NOTIFY_GROUP;       /* one consumer, fixed name */
    if (!nt->backlog) {
        /* the backlog (our pending jobs) is read whole, once */
        argv[argc++] = "COUNT";
        argv[argc++] = CHAT_NOTIFY_READ;
        argv[argc++] = "BLOCK";
        argv[argc++] = block;
    }
    argv[argc++] = "STREAMS";
    argv[argc++] = CHAT_NOTIFY_STREAM;
    argv[argc++] = nt->backlog ? "0" : ">";

    r = chat_bus_command(&nt->bus, argc, argv, NULL);
    if (chat_bus_check(r, "XREADGROUP " CHAT_NOTIFY_STREAM) != 0) {
        freeReplyObject(r);
        return -1;
    }

    if (r->type == REDIS_REPLY_ARRAY && r->elements == 1
        && r->element[0]->elements == 2)
    {
        entries = r->element[0]->element[1];
        now = chat_mono_ms();

        for (i = 0; i < entries->elements; i++) {
            if (entries->element[i]->type == REDIS_REPLY_ARRAY
                && entries->element[i]->elements == 2)
            {
                chat_notifier_add(nt, entries->element[i], now);
            }
        }

    }

    nt->backlog = 0;

    freeReplyObject(r);
    return 0;
}


/* XGROUP CREATE chat:notify notifier 0 MKSTREAM.  0 or -1. */
static int
chat_notifier_group(chat_notifier_t *nt)
{
    int          rc;
    redisReply  *r;
    const char  *argv[6] = {
        "XGROUP", "CREATE", CHAT_NOTIFY_STREAM, CHAT_NOTIFY_GROUP, "0",
        "MKSTREAM"
    };

    r = chat_bus_command(&nt->bus, 6, argv, NULL);
    if (r == NULL) {
        return -1;
    }

    rc = 0;
    if (r->type == REDIS_REPLY_ERROR && strncmp(r->str, "BUSYGROUP", 9) != 0)
    {
        chat_log_error("redis: XGROUP CREATE %s: %s", CHAT_NOTIFY_STREAM,
                       r->str);
        rc = -1;
    }

    freeReplyObject(r);
    return rc;
}


int
chat_notifier_run(const chat_config_t *cfg, pid_t supervisor)
{
    char             host[256];
    chat_notifier_t  nt;

    chat_log_set_role("notifier");
    chat_supervised_signals(&chat_notifier_stop, supervisor);

    memset(&nt, 0, sizeof(nt));

    if (gethostname(host, sizeof(host)) != 0) {
        strcpy(host, "localhost");
    }
    host[sizeof(host) - 1] = '\0';

    snprintf(nt.consumer, sizeof(nt.consumer), "%s:%ld:notifier", host,
             (long) getpid());

    chat_db_init(&nt.db, cfg->pg, "chat-backend notifier");

    if (chat_bus_init(&nt.bus, cfg, nt.consumer) != 0) {
        chat_log_error("out of memory");
        return 1;
    }

    chat_log_info("started: webhook %s, quiet %d ms, at most %d ms, "
                  "%d attempts", chat_roles.notify_webhook,
                  chat_roles.notify_quiet_ms, chat_roles.notify_max_delay_ms,
                  chat_roles.notify_attempts);

    while (!chat_notifier_stop) {

        if (!chat_bus_ok(&nt.bus)) {
            if (chat_bus_connect(&nt.bus, &chat_notifier_stop) != 0) {
                break;
            }
            if (chat_notifier_group(&nt) != 0) {
                chat_sleep_ms(1000);
                continue;
            }

            /* batches in memory are pending in the group too: rebuild */
            chat_batches_free(&nt.batches);
            nt.backlog = 1;
        }

        (void) chat_db_reconnect(&nt.db);

        if (chat_notifier_read(&nt) != 0) {
            chat_sleep_ms(100);
            continue;
        }

        chat_notifier_send_due(&nt);
    }

    chat_batches_free(&nt.batches);
    chat_bus_free(&nt.bus);
    chat_db_close(&nt.db);

    chat_log_info("stopped");

    return 0;
}
