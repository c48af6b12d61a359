/*
 * notify_queue.c: after a commit, a notification job for every recipient
 * of a new message who has no device online.
 *
 * The worker passes the events of its committed batch here after the
 * fan-out.  For each {"type":"message","message":{...}} event, the
 * recipients other than the sender are looked up in the online registry
 * (pipelined HGETALL chat:online:{uid}, one round trip for the batch); a
 * recipient with no gateway field refreshed within the presence TTL gets
 *
 *   XADD chat:notify MAXLEN ~ 100000 * uid <recipient> cid <conversation>
 *        seq <seq> sender <sender id> preview <first 100 bytes of text>
 *
 * (a second round trip).  The notifier (notifier.c) batches, filters
 * (muted, already read) and delivers them.  The preview is cut on a UTF-8
 * character boundary.
 *
 * What it does not do: decide whether to notify a muted member (the
 * notifier reads that when it sends, so a mute applies to jobs already
 * queued), or retry: a job lost to a Redis failure here is logged, and
 * the message itself is committed and waits in history.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "chat_protocol.h"
#include "log.h"
#include "notify_batch.h"
#include "notify_queue.h"
#include "roles.h"


#define CHAT_MESSAGE_EVENT  "{\"type\":\"message\","


/* Whether the HGETALL reply r names a gateway refreshed within the
 * presence TTL. */
static int
chat_notify_online(const redisReply *r, int64_t now)
{
    size_t  i;

    if (r == NULL || r->type != REDIS_REPLY_ARRAY) {
        return 1;       /* unknown: do not disturb */
    }

    for (i = 0; i + 1 < r->elements; i += 2) {
        /* chat_online_field_fresh allows CHAT_ONLINE_STALE_MS; shift the
         * clock so it allows the presence TTL instead */
        if (chat_online_field_fresh(r->element[i]->str, r->element[i]->len,
                r->element[i + 1]->str, r->element[i + 1]->len,
                now - chat_roles.presence_ttl_ms + CHAT_ONLINE_STALE_MS))
        {
            return 1;
        }
    }

    return 0;
}


/* One message event: HGETALLs for its recipients, then XADDs for the
 * offline ones.  0, or -1 when the connection is gone. */
static int
chat_notify_message(chat_bus_t *bus, const chat_event_t *e, int64_t now)
{
    int           rc;
    char          uid[24], cid[24], seq[24], sender[24];
    char          key[CHAT_KEY_MAX];
    void         *reply;
    size_t        i, plen, queued;
    cJSON        *ev;
    int64_t       from;
    redisReply  **online;
    const cJSON  *msg, *c, *s, *f, *t;
    const char   *argv[16];
    size_t        argvlen[16];

    ev = cJSON_Parse(e->json);
    msg = cJSON_GetObjectItemCaseSensitive(ev, "message");
    c = cJSON_GetObjectItemCaseSensitive(msg, "conversation_id");
    s = cJSON_GetObjectItemCaseSensitive(msg, "seq");
    f = cJSON_GetObjectItemCaseSensitive(msg, "sender_id");
    t = cJSON_GetObjectItemCaseSensitive(msg, "text");

    if (!cJSON_IsNumber(c) || !cJSON_IsNumber(s) || !cJSON_IsNumber(f)
        || !cJSON_IsString(t))
    {
        cJSON_Delete(ev);
        return 0;
    }

    from = (int64_t) f->valuedouble;
    snprintf(cid, sizeof(cid), "%lld", (long long) c->valuedouble);
    snprintf(seq, sizeof(seq), "%lld", (long long) s->valuedouble);
    snprintf(sender, sizeof(sender), "%lld", (long long) from);
    plen = chat_utf8_prefix_len(t->valuestring, CHAT_NOTIFY_PREVIEW);

    online = calloc(e->n ? e->n : 1, sizeof(redisReply *));
    if (online == NULL) {
        cJSON_Delete(ev);
        return 0;
    }

    rc = -1;

    for (i = 0; i < e->n; i++) {
        if (e->uids[i] == from) {
            continue;
        }
        (void) chat_key_online(key, sizeof(key), e->uids[i]);
        if (chat_router_appendf(&bus->route, "HGETALL %s", key) != REDIS_OK) {
            chat_bus_lost(bus);
            goto done;
        }
    }

    for (i = 0; i < e->n; i++) {
        if (e->uids[i] == from) {
            continue;
        }
        if (chat_router_get_reply(&bus->route, &reply) != REDIS_OK) {
            chat_bus_lost(bus);
            goto done;
        }
        online[i] = reply;
    }

    argv[0] = "XADD";
    argv[1] = CHAT_NOTIFY_STREAM;
    argv[2] = "MAXLEN";
    argv[3] = "~";
    argv[4] = "100000";
    argv[5] = "*";
    argv[6] = "uid";
    argv[8] = "cid";
    argv[9] = cid;
    argv[10] = "seq";
    argv[11] = seq;
    argv[12] = "sender";
    argv[13] = sender;
    argv[14] = "preview";
    argv[15] = t->valuestring;

    for (i = 0; i < 16; i++) {
        argvlen[i] = i == 7 ? 0 : strlen(argv[i]);
    }
    argvlen[15] = plen;

    queued = 0;

    for (i = 0; i < e->n; i++) {
        if (e->uids[i] == from || chat_notify_online(online[i], now)) {
            continue;
        }

        snprintf(uid, sizeof(uid), "%lld", (long long) e->uids[i]);
        argv[7] = uid;
        argvlen[7] = strlen(uid);

        if (chat_router_append_argv(&bus->route, 16, argv, argvlen)
            != REDIS_OK)
        {
            chat_bus_lost(bus);
            goto done;
        }
        queued++;
    }

    /* error replies are only logged: a lost connection is the failure */
    rc = chat_bus_replies(bus, queued, "XADD " CHAT_NOTIFY_STREAM) < 0 ? -1 : 0;

done:

    for (i = 0; i < e->n; i++) {
        freeReplyObject(online[i]);
    }
    free(online);
    cJSON_Delete(ev);

    return rc;
}


void
chat_notify_queue(chat_bus_t *bus, chat_events_t *const *lists, size_t n)
{
    size_t   i, j;
    int64_t  now;

    if (chat_roles.notify_webhook == NULL) {
        return;
    }

    now = chat_time_ms();

    for (i = 0; i < n; i++) {
        for (j = 0; j < lists[i]->n; j++) {
            if (!chat_bus_ok(bus)) {
                return;
            }

            if (strncmp(lists[i]->items[j].json, CHAT_MESSAGE_EVENT,
                        sizeof(CHAT_MESSAGE_EVENT) - 1) == 0
                && chat_notify_message(bus, &lists[i]->items[j], now) != 0)
            {
                chat_log_error("notify: jobs for a message were lost "
                               "(redis connection)");
                return;
            }
        }
    }
}
