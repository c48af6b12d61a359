/*
 * redis_route_read.c: the bus's blocking stream reads over a cluster
 * (chat_router_read_streams; on a single server it is the command).
 *
 * XREADGROUP cannot name keys of two slots, and a lane's shards live on
 * several masters, so the read becomes one per slot.  Each goes out on a
 * reader of its own (a connection to the slot's master, opened on first
 * use and again when the slot has moved): a read blocked there never
 * holds up the replies and acks the worker sends meanwhile on the
 * command connections.  The call waits (poll) until any read answers,
 * merges the answers already in into one [[stream, entries]...] reply,
 * and leaves the reads still blocked in flight for the next call.  An
 * answer MOVED marks the map stale: it is read again before the next
 * read.
 */

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#include "redis_route.h"
#include "redis_route_internal.h"


/* ------------------------------------------------------------------------
 * Reading streams spread over masters
 * --------------------------------------------------------------------- */

/* The first of the nkeys keys with key k's slot: the keys of one slot
 * share a read (and a reader, at the leader's index). */
static int
chat_router_slot_leader(const char **keys, const size_t *lens, int k)
{
    int       j;
    unsigned  slot;

    slot = chat_cluster_slot(keys[k], lens[k]);

    for (j = 0; j < k; j++) {
        if (chat_cluster_slot(keys[j], lens[j]) == slot) {
            return j;
        }
    }

    return k;
}


/* Sends the read of leader's slot (its streams among argv's keys) on
 * that slot's reader, connected to the slot's master. */
static int
chat_router_read_send(chat_router_t *rt, int leader, int argc,
    const char **argv, const size_t *argvlen, int keys_at, int nkeys)
{
    int                   i, k, done, owner;
    size_t               *sublen;
    const char          **sub;
    chat_router_reader_t  *rd;
    const char          **keys;
    const size_t         *lens;

    rd = &rt->reader[leader];
    keys = argv + keys_at;
    lens = argvlen + keys_at;
    owner = rt->map->owner[chat_cluster_slot(keys[leader], lens[leader])];

    /* the slot moved (a failover, a MOVED): read from its new master */
    if (rd->ctx != NULL
        && (rd->addr.port != rt->node[owner].addr.port
            || strcmp(rd->addr.host, rt->node[owner].addr.host) != 0))
    {
        redisFree(rd->ctx);
        rd->ctx = NULL;
    }

    if (rd->ctx == NULL) {
        rd->addr = rt->node[owner].addr;
        rd->ctx = chat_router_open(rt, rd->addr.host, rd->addr.port);
        if (rd->ctx == NULL) {
            rt->up = 0;
            return -1;
        }
    }

    sub = malloc((size_t) argc * sizeof(char *));
    sublen = malloc((size_t) argc * sizeof(size_t));
    if (sub == NULL || sublen == NULL) {
        free(sub);
        free(sublen);
        chat_router_fail(rt, "out of memory", NULL);
        return -1;
    }

    for (k = 0; k < keys_at; k++) {
        sub[k] = argv[k];
        sublen[k] = argvlen[k];
    }

    for (i = 0; i < nkeys; i++) {               /* the keys, then ids */
        if (chat_router_slot_leader(keys, lens, i) == leader) {
            sub[k] = keys[i];
            sublen[k++] = lens[i];
        }
    }
    for (i = 0; i < nkeys; i++) {
        if (chat_router_slot_leader(keys, lens, i) == leader) {
            sub[k] = argv[keys_at + nkeys + i];
            sublen[k++] = argvlen[keys_at + nkeys + i];
        }
    }

    done = 0;
    if (redisAppendCommandArgv(rd->ctx, k, sub, sublen) == REDIS_OK) {
        do {
            if (redisBufferWrite(rd->ctx, &done) != REDIS_OK) {
                break;
            }
        } while (!done);
    }

    free(sub);
    free(sublen);

    if (!done) {
        chat_router_lost(rt, rd->ctx);
        return -1;
    }

    rd->reading = 1;
    return 0;
}


/* Appends the [stream, entries] pairs of one answer to m; takes r.  An
 * error answer is kept in *err (the first one) instead; a MOVED one
 * marks the map stale. */
static int
chat_router_read_merge(chat_router_t *rt, redisReply *m, redisReply *r,
    redisReply **err)
{
    size_t        i;
    redisReply  **el;

    if (r->type == REDIS_REPLY_ERROR) {
        if (strncmp(r->str, "MOVED ", 6) == 0) {
            rt->stale = 1;          /* read from the new master next time */
        }

        if (*err == NULL) {
            *err = r;
        } else {
            freeReplyObject(r);
        }
        return 0;
    }

    if (r->type == REDIS_REPLY_ARRAY && r->elements > 0) {
        el = realloc(m->element,
                     (m->elements + r->elements) * sizeof(redisReply *));
        if (el == NULL) {
            freeReplyObject(r);
            return -1;
        }
        m->element = el;
        for (i = 0; i < r->elements; i++) {
            m->element[m->elements++] = r->element[i];
        }
        free(r->element);
        r->element = NULL;
        r->elements = 0;
    }

    freeReplyObject(r);
    return 0;
}


/* Collects the answers already in: merged into m, *got counted.  Fills
 * pfd with the readers still waiting; their count, or -1 when lost. */
static int
chat_router_read_collect(chat_router_t *rt, redisReply *m, redisReply **err,
    int *got, struct pollfd *pfd, int *who)
{
    int                    k, waiting;
    void                  *reply;
    chat_router_reader_t  *rd;

    waiting = 0;

    for (k = 0; k < rt->nreaders; k++) {
        rd = &rt->reader[k];
        if (!rd->reading) {
            continue;
        }

        if (redisGetReplyFromReader(rd->ctx, &reply) != REDIS_OK) {
            chat_router_lost(rt, rd->ctx);
            return -1;
        }

        if (reply != NULL) {
            rd->reading = 0;
            (*got)++;
            if (chat_router_read_merge(rt, m, reply, err) != 0) {
                chat_router_fail(rt, "out of memory", NULL);
                return -1;
            }
            continue;
        }

        pfd[waiting].fd = rd->ctx->fd;
        pfd[waiting].events = POLLIN;
        pfd[waiting].revents = 0;
        who[waiting++] = k;
    }

    return waiting;
}


redisReply *
chat_router_read_streams(chat_router_t *rt, int argc, const char **argv,
    const size_t *argvlen, int keys_at, int nkeys, int block_ms)
{
    int                    i, got, rc, waiting, *who;
    unsigned               slot;
    redisReply            *m, *err;
    struct pollfd         *pfd;

    if (!rt->up) {
        return NULL;
    }

    if (!rt->cluster) {
        return chat_router_command_argv(rt, argc, argv, argvlen);
    }

    err = NULL;

    /* a read answered MOVED: the streams' slots have new masters */
    if (rt->stale && rt->head == rt->tail && chat_router_refresh(rt) != 0) {
        return NULL;
    }

    /* a reader per slot, at its first key's index (the bus reads the
     * same streams every time) */
    if (rt->nreaders != nkeys) {
        for (i = 0; i < rt->nreaders; i++) {
            redisFree(rt->reader[i].ctx);
        }
        free(rt->reader);
        rt->reader = calloc((size_t) nkeys, sizeof(*rt->reader));
        rt->nreaders = rt->reader ? nkeys : 0;
        if (rt->reader == NULL) {
            chat_router_fail(rt, "out of memory", NULL);
            return NULL;
        }
    }

    /* a read for every slot, unless its last one is still in flight */
    for (i = 0; i < nkeys; i++) {
        slot = chat_cluster_slot(argv[keys_at + i], argvlen[keys_at + i]);
        if (rt->map->owner[slot] == CHAT_CLUSTER_NO_NODE) {
            chat_router_fail(rt, "no master serves a stream's slot", NULL);
            return NULL;
        }

        if (chat_router_slot_leader(argv + keys_at, argvlen + keys_at, i) == i
            && !rt->reader[i].reading
            && chat_router_read_send(rt, i, argc, argv, argvlen, keys_at,
                                     nkeys) != 0)
        {
            return NULL;
        }
    }

    m = calloc(1, sizeof(*m));
    pfd = calloc((size_t) nkeys, sizeof(*pfd));
    who = calloc((size_t) nkeys, sizeof(*who));
    if (m == NULL || pfd == NULL || who == NULL) {
        chat_router_fail(rt, "out of memory", NULL);
        goto failed;
    }

    m->type = REDIS_REPLY_ARRAY;
    got = 0;

    /* until the first answer: every read ends within its BLOCK, so past
     * that and a margin the connection is taken for lost */
    for ( ;; ) {
        waiting = chat_router_read_collect(rt, m, &err, &got, pfd, who);
        if (waiting < 0) {
            goto failed;
        }

        if (got > 0 || waiting == 0) {
            break;
        }

        rc = poll(pfd, (nfds_t) waiting, block_ms + 5000);
        if (rc < 0 && errno == EINTR) {
            break;                          /* a signal: answer nil */
        }
        if (rc <= 0) {
            chat_router_fail(rt, "a blocking read did not end", NULL);
            goto failed;
        }

        for (i = 0; i < waiting; i++) {
            if (pfd[i].revents != 0
                && redisBufferRead(rt->reader[who[i]].ctx) != REDIS_OK)
            {
                chat_router_lost(rt, rt->reader[who[i]].ctx);
                goto failed;
            }
        }
    }

    free(pfd);
    free(who);

    if (err != NULL) {
        freeReplyObject(m);
        return err;
    }

    if (m->elements == 0) {
        m->type = REDIS_REPLY_NIL;
    }

    return m;

failed:

    free(pfd);
    free(who);
    freeReplyObject(err);
    freeReplyObject(m);
    return NULL;
}
