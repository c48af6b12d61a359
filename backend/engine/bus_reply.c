/*
 * bus_reply.c: how an entry leaves the command bus.
 *
 *   - answered outside a batch (a dead letter, a malformed entry):
 *     chat_bus_finish pipelines XACK of the command, the XADD of the
 *     reply to the gateway's stream (trimmed to about 10000 entries) and
 *     an EXPIRE of that stream (so streams of gateways that died go
 *     away), in one round trip (chat_bus_finish_many: the same for
 *     several).  The replies of a committed batch go with its events
 *     instead, fewer commands in fewer round trips: chat_publish,
 *     fanout.c;
 *   - dead-lettered: chat_bus_dead_letter copies the entry, with where it
 *     came from, how often it was delivered and why it was set aside, to
 *     chat:dlq for a human to look at, trimmed to about the newest
 *     CHAT_DLQ_MAXLEN entries; the worker then answers and acks it as
 *     above (or only acks it when the entry has no usable reply address).
 *
 * The order is the worker's promise: these run only after the command's
 * transaction committed (or after deciding it never will), so a reply
 * never announces something that could still be rolled back.  If the
 * connection drops in between, the entry stays pending, is reclaimed, and
 * the replay from command_log answers it.
 *
 * Why chat:dlq is trimmed although each entry is evidence: what lands
 * there can be caused by any client (a command PostgreSQL refuses is
 * retried into it), so an unbounded stream is a way to fill Redis.  The
 * newest entries are the ones an operator looks at; how many arrived in
 * all is the stream's own entries-added count, which trimming keeps and
 * /metrics shows as chat_dead_letters_total, so a burst is seen even
 * when its entries are gone.
 *
 * What it does not do: retry; a failure is reported to the caller.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus.h"
#include "chat_protocol.h"
#include "log.h"

int
chat_bus_finish_many(chat_bus_t *bus, const chat_answer_t *a, size_t n)
{
    char         st[16];
    size_t       i, sent;

    if (!chat_bus_ok(bus)) {
        return -1;
    }

    sent = 0;

    for (i = 0; i < n; i++) {
        snprintf(st, sizeof(st), "%d", a[i].status);

        if (a[i].id != NULL) {
            if (chat_router_appendf(&bus->route, "XACK %s %s %s",
                                    bus->streams[a[i].shard], CHAT_CMD_GROUP,
                                    a[i].id)
                != REDIS_OK)
            {
                goto lost;
            }
            sent++;
        }

        if (chat_router_appendf(&bus->route,
                "XADD %b MAXLEN ~ %s * " CHAT_F_REQ " %b " CHAT_F_STATUS
                " %s " CHAT_F_BODY " %s",
                a[i].gw, a[i].gw_len, CHAT_GW_STREAM_MAXLEN, a[i].req,
                a[i].req_len, st, a[i].body)
            != REDIS_OK
            || chat_router_appendf(&bus->route, "EXPIRE %b %d", a[i].gw,
                                   a[i].gw_len, CHAT_GW_STREAM_TTL_SEC)
               != REDIS_OK)
        {
            goto lost;
        }

        sent += 2;
    }

    return chat_bus_replies(bus, sent, "XACK / reply XADD / EXPIRE") == 0
           ? 0 : -1;

lost:

    chat_bus_lost(bus);
    return -1;
}


int
chat_bus_finish(chat_bus_t *bus, int shard, const char *id, const char *gw,
    size_t gw_len, const char *req, size_t req_len, int status,
    const char *body)
{
    chat_answer_t  a;

    a.shard = shard;
    a.id = id;
    a.gw = gw;
    a.gw_len = gw_len;
    a.req = req;
    a.req_len = req_len;
    a.status = status;
    a.body = body;

    return chat_bus_finish_many(bus, &a, 1);
}


int
chat_bus_ack(chat_bus_t *bus, int shard, const char *id)
{
    int          rc;
    const char  *argv[4];
    redisReply  *r;

    argv[0] = "XACK";
    argv[1] = bus->streams[shard];
    argv[2] = CHAT_CMD_GROUP;
    argv[3] = id;

    r = chat_bus_command(bus, 4, argv, NULL);
    rc = chat_bus_check(r, "XACK");
    freeReplyObject(r);

    return rc;
}


int
chat_bus_dead_letter(chat_bus_t *bus, int shard, const char *id,
    const redisReply *fields, long long deliveries, const char *reason)
{
    int           rc, argc;
    char          count[24];
    size_t        i, nf, *argvlen;
    const char  **argv;
    redisReply   *r;

    nf = 0;
    if (fields != NULL && fields->type == REDIS_REPLY_ARRAY) {
        nf = fields->elements & ~(size_t) 1;   /* whole pairs only */
    }

    argv = malloc((nf + 14) * sizeof(char *));
    argvlen = malloc((nf + 14) * sizeof(size_t));
    if (argv == NULL || argvlen == NULL) {
        free(argv);
        free(argvlen);
        return -1;
    }

    snprintf(count, sizeof(count), "%lld", deliveries);

    argc = 0;
    argv[argc++] = "XADD";
    argv[argc++] = CHAT_DLQ_STREAM;
    argv[argc++] = "MAXLEN";
    argv[argc++] = "~";
    argv[argc++] = CHAT_DLQ_MAXLEN;
    argv[argc++] = "*";

    for (i = 0; i < (size_t) argc; i++) {
        argvlen[i] = strlen(argv[i]);
    }

    for (i = 0; i < nf; i++) {
        if (fields->element[i]->type == REDIS_REPLY_STRING) {
            argv[argc] = fields->element[i]->str;
            argvlen[argc++] = fields->element[i]->len;
        } else {
            argv[argc] = "";        /* keep pairs aligned */
            argvlen[argc++] = 0;
        }
    }

#define CHAT_BUS_ARG(s)  (argv[argc] = (s), argvlen[argc] = strlen(s), argc++)
    CHAT_BUS_ARG("stream");
    CHAT_BUS_ARG(bus->streams[shard]);
    CHAT_BUS_ARG("orig_id");
    CHAT_BUS_ARG(id);
    CHAT_BUS_ARG("deliveries");
    CHAT_BUS_ARG(count);
    CHAT_BUS_ARG("reason");
    CHAT_BUS_ARG(reason);
#undef CHAT_BUS_ARG

    r = chat_bus_command(bus, argc, argv, argvlen);
    rc = chat_bus_check(r, "XADD " CHAT_DLQ_STREAM);

    freeReplyObject(r);
    free(argv);
    free(argvlen);

    return rc;
}

