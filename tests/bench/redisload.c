/*
 * redisload.c: the two modes that talk to Redis directly (hiredis, sync).
 *
 * hop: the plain Redis reference for the end-to-end latency.  One
 * connection XADDs the same "lat:..." text the chat clients send, paced
 * at the same rates and in the same steps (pipelined per 1 ms tick); a
 * second connection, on its own thread, reads them back with XREAD BLOCK
 * and times each entry.  That is one hop of the command bus, the floor
 * under anything that goes edge -> Redis -> worker -> Redis -> edge.
 *
 * commit: the worker pool's throughput.  N msg.send commands, laid out by
 * the edge's own chat_envelope_argv() and sharded by its
 * chat_envelope_shard(), are XADDed in one pipelined burst onto the
 * command streams, all answering to one reply stream of ours; the clock
 * runs from the first XADD until the last reply has been read.  Messages
 * go round-robin over the 1:1 conversations, so the per-conversation row
 * lock is not what limits it.  On a Redis Cluster (CLUSTER NODES answers)
 * each XADD goes to the master of its stream's slot (cl_bus_t).
 */

#define _GNU_SOURCE
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "chat_cluster.h"
#include "chat_envelope.h"
#include "chat_protocol.h"
#include "chatload.h"


#define HOP_STREAM  "bench:hop"


typedef struct {
    const cl_opts_t  *o;
    redisContext     *rd;
    cl_step_t        *steps;
    uint64_t          measure[CL_MAX_STEPS];
    uint64_t          send_end[CL_MAX_STEPS];
    atomic_int        cur;
    atomic_int        stop;
    uint64_t          received;
} hop_t;


static redisContext *
cl_redis_at(const char *host, int port)
{
    redisContext  *c;

    redisReply    *r;
    const char    *pass;

    c = redisConnect(host, port);
    if (c == NULL || c->err) {
        cl_die("redis %s:%d: %s", host, port, c ? c->errstr : "out of memory");
    }

    /* the stack's Redis wants its admin's password, as redis-cli takes it */
    pass = getenv("REDISCLI_AUTH");
    if (pass != NULL && pass[0] != '\0') {
        r = redisCommand(c, "AUTH %s", pass);
        if (r == NULL || r->type == REDIS_REPLY_ERROR) {
            cl_die("redis %s:%d: AUTH refused", host, port);
        }
        freeReplyObject(r);
    }

    return c;
}


static redisContext *
cl_redis(const cl_opts_t *o)
{
    return cl_redis_at(o->host, o->redis_port);
}


static void
hop_entry(hop_t *h, const redisReply *fields, uint64_t now)
{
    int        step, m, cur;
    int64_t    uid;
    uint64_t   ts;
    cl_step_t *s;

    if (fields->type != REDIS_REPLY_ARRAY || fields->elements < 2
        || fields->element[1]->type != REDIS_REPLY_STRING
        || cl_text_parse(fields->element[1]->str, fields->element[1]->len,
                         &step, &m, &ts, &uid) != 0
        || step < 0 || step >= h->o->nrates)
    {
        return;
    }

    s = &h->steps[step];
    h->received++;
    if (m) {
        s->delivered++;
        hist_add(&s->lat, now > ts ? (now - ts) / 1000 : 0);
    }

    cur = atomic_load(&h->cur);
    if (cur >= 0 && now >= h->measure[cur] && now < h->send_end[cur]) {
        h->steps[cur].window_recv++;
    }
}


static void *
hop_reader(void *arg)
{
    char         last[64];
    size_t       i;
    hop_t       *h = arg;
    uint64_t     now;
    redisReply  *r, *entries, *e;

    snprintf(last, sizeof(last), "0-0");

    while (!atomic_load(&h->stop)) {
        r = redisCommand(h->rd, "XREAD COUNT 5000 BLOCK 200 STREAMS %s %s",
                         HOP_STREAM, last);
        now = cl_now_ns();
        if (r == NULL) {
            cl_die("redis: %s", h->rd->errstr);
        }

        if (r->type == REDIS_REPLY_ARRAY && r->elements == 1
            && r->element[0]->elements == 2)
        {
            entries = r->element[0]->element[1];
            for (i = 0; i < entries->elements; i++) {
                e = entries->element[i];
                if (e->elements != 2) {
                    continue;
                }
                hop_entry(h, e->element[1], now);
                snprintf(last, sizeof(last), "%s", e->element[0]->str);
            }
        }

        freeReplyObject(r);
    }

    return NULL;
}


int
cl_mode_hop(const cl_opts_t *o)
{
    int           k, m;
    char          text[512];
    FILE         *f;
    hop_t         h;
    double        rate;
    uint64_t      t0, step_ns, now, due, n, sent_k, end;
    pthread_t     reader;
    redisReply   *r;
    redisContext *pub;
    struct timespec  tick = { 0, 1000000 };

    memset(&h, 0, sizeof(h));
    h.o = o;
    atomic_init(&h.cur, -1);
    atomic_init(&h.stop, 0);
    h.steps = calloc(CL_MAX_STEPS, sizeof(cl_step_t));
    if (h.steps == NULL) {
        cl_die("out of memory");
    }
    for (k = 0; k < CL_MAX_STEPS; k++) {
        hist_init(&h.steps[k].lat);
        hist_init(&h.steps[k].ack);
    }

    pub = cl_redis(o);
    h.rd = cl_redis(o);
    freeReplyObject(redisCommand(pub, "DEL %s", HOP_STREAM));

    t0 = cl_now_ns();
    step_ns = (uint64_t) ((o->warmup_s + o->measure_s + o->drain_s) * 1e9);
    for (k = 0; k < o->nrates; k++) {
        h.measure[k] = t0 + (uint64_t) k * step_ns
                       + (uint64_t) (o->warmup_s * 1e9);
        h.send_end[k] = h.measure[k] + (uint64_t) (o->measure_s * 1e9);
        h.steps[k].rate = o->rates[k];
        h.steps[k].measure_s = o->measure_s;
    }

    if (pthread_create(&reader, NULL, hop_reader, &h) != 0) {
        cl_die("cannot start the reader thread");
    }

    for (k = 0; k < o->nrates; k++) {
        atomic_store(&h.cur, k);
        rate = o->rates[k];
        sent_k = 0;

        for ( ;; ) {
            now = cl_now_ns();
            if (now > h.send_end[k]) {
                now = h.send_end[k];
            }
            due = (uint64_t) (rate * (double) (now - (t0 + k * step_ns))
                              / 1e9);
            m = now >= h.measure[k];

            for (n = 0; sent_k < due; sent_k++, n++) {
                cl_text_make(text, sizeof(text), k, m, cl_now_ns(), 0,
                             o->text_len);
                redisAppendCommand(pub, "XADD %s MAXLEN ~ 100000 * t %s",
                                   HOP_STREAM, text);
                h.steps[k].sent++;
                h.steps[k].sent_measured += (uint64_t) m;
            }
            while (n-- > 0) {
                if (redisGetReply(pub, (void **) &r) != REDIS_OK) {
                    cl_die("redis: %s", pub->errstr);
                }
                freeReplyObject(r);
            }

            if (now >= h.send_end[k]) {
                break;
            }
            nanosleep(&tick, NULL);
        }

        end = h.send_end[k] + (uint64_t) (o->drain_s * 1e9);
        while (cl_now_ns() < end) {
            nanosleep(&tick, NULL);
        }
    }

    atomic_store(&h.stop, 1);
    pthread_join(reader, NULL);
    freeReplyObject(redisCommand(pub, "DEL %s", HOP_STREAM));

    f = fopen(o->out, "w");
    if (f == NULL) {
        cl_die("cannot write %s", o->out);
    }
    cl_steps_write(f, h.steps, o->nrates);
    fclose(f);

    redisFree(pub);
    redisFree(h.rd);
    free(h.steps);
    return 0;
}


/* ---------------------------------------------------------------- commit */

static const redisReply *
cl_field(const redisReply *fields, const char *name)
{
    size_t  i;

    for (i = 0; i + 1 < fields->elements; i += 2) {
        if (strcmp(fields->element[i]->str, name) == 0) {
            return fields->element[i + 1];
        }
    }

    return NULL;
}


/* What the commit mode has read of its reply stream. */
typedef struct {
    char     last[64];
    char     first_other[200];
    size_t   got;
    size_t   ok;
    size_t   other;
    uint64_t t_first;
    uint64_t t_last;
} cl_replies_t;


/* One XREAD of the reply stream gw (BLOCK block_ms, or none when < 0):
 * counts the replies (events are skipped).  The number of entries read. */
static size_t
cl_commit_read(redisContext *c, const char *gw, int block_ms,
    cl_replies_t *rp)
{
    size_t             i, n;
    redisReply        *r, *entries, *e;
    const redisReply  *status, *bodyf;

    r = block_ms < 0
        ? redisCommand(c, "XREAD COUNT 2000 STREAMS %s %s", gw, rp->last)
        : redisCommand(c, "XREAD COUNT 2000 BLOCK %d STREAMS %s %s",
                       block_ms, gw, rp->last);
    if (r == NULL) {
        cl_die("redis: %s", c->errstr);
    }

    n = 0;

    if (r->type == REDIS_REPLY_ARRAY && r->elements == 1) {
        entries = r->element[0]->element[1];
        n = entries->elements;
        rp->t_last = cl_now_ns();
        if (rp->t_first == 0) {
            rp->t_first = rp->t_last;
        }

        for (i = 0; i < entries->elements; i++) {
            e = entries->element[i];
            snprintf(rp->last, sizeof(rp->last), "%s", e->element[0]->str);
            status = cl_field(e->element[1], CHAT_F_STATUS);
            bodyf = cl_field(e->element[1], CHAT_F_BODY);
            if (cl_field(e->element[1], CHAT_F_REQ) == NULL) {
                continue;   /* an event, not a reply */
            }
            rp->got++;
            if (status && strcmp(status->str, "201") == 0) {
                rp->ok++;
            } else {
                rp->other++;
                if (rp->first_other[0] == '\0') {
                    snprintf(rp->first_other, sizeof(rp->first_other),
                             "%s %s", status ? status->str : "?",
                             bodyf ? bodyf->str : "");
                }
            }
        }
    }

    freeReplyObject(r);

    return n;
}


/*
 * The commit mode's Redis: one server, or every master of a Redis Cluster
 * (bench.sh puts the two figures side by side: what routing by slot costs
 * the backend).  Each command stream goes to the master of its slot, by
 * the rules the backend and the edge route with (chat_cluster.c); the
 * XADDs are pipelined per node.
 */
typedef struct {
    redisContext        *node[CHAT_CLUSTER_MAX_NODES];
    size_t               pending[CHAT_CLUSTER_MAX_NODES];
    size_t               pending_all;
    int                  nodes;
    chat_cluster_map_t  *map;       /* NULL: a single server, node[0] */
} cl_bus_t;


static void
cl_bus_open(cl_bus_t *b, const cl_opts_t *o)
{
    int           i, served;
    redisReply   *r;

    memset(b, 0, sizeof(*b));
    b->node[0] = cl_redis(o);
    b->nodes = 1;

    /* a server without cluster support answers an error */
    r = redisCommand(b->node[0], "CLUSTER NODES");
    if (r == NULL) {
        cl_die("redis: %s", b->node[0]->errstr);
    }

    if (r->type == REDIS_REPLY_STRING) {
        b->map = malloc(sizeof(*b->map));
        if (b->map == NULL) {
            cl_die("out of memory");
        }
        served = chat_cluster_map_parse(b->map, r->str, r->len);
        if (served != CHAT_CLUSTER_SLOTS) {
            cl_die("redis: the cluster serves %d of %d slots", served,
                   CHAT_CLUSTER_SLOTS);
        }
        redisFree(b->node[0]);
        for (i = 0; i < b->map->nodes; i++) {
            b->node[i] = cl_redis_at(b->map->node[i].host,
                                     b->map->node[i].port);
        }
        b->nodes = b->map->nodes;
    }

    freeReplyObject(r);
}


/* The connection to the node that holds key. */
static redisContext *
cl_bus_conn(const cl_bus_t *b, const char *key, int *index)
{
    int  i;

    i = b->map == NULL ? 0 : b->map->owner[chat_cluster_slot(key,
                                                            strlen(key))];
    if (index != NULL) {
        *index = i;
    }

    return b->node[i];
}


/* Reads the answers of every appended XADD. */
static void
cl_bus_flush(cl_bus_t *b)
{
    int          i;
    redisReply  *r;

    for (i = 0; i < b->nodes; i++) {
        while (b->pending[i] > 0) {
            if (redisGetReply(b->node[i], (void **) &r) != REDIS_OK
                || r->type == REDIS_REPLY_ERROR)
            {
                cl_die("XADD failed: %s", r ? r->str : b->node[i]->errstr);
            }
            freeReplyObject(r);
            b->pending[i]--;
        }
    }

    b->pending_all = 0;
}


static void
cl_bus_close(cl_bus_t *b)
{
    int  i;

    for (i = 0; i < b->nodes; i++) {
        redisFree(b->node[i]);
    }

    free(b->map);
}


int
cl_mode_commit(const cl_opts_t *o)
{
    const struct timespec  tick = { 0, 1000000 };

    int              argc, n;
    char             gw[64], key[64], body[512], text[256], stream[64];
    size_t           i, k, argvlen[CHAT_ENVELOPE_ARGC];
    int64_t          conv, uid;
    uint64_t         t0, idle_since;
    const char      *argv[CHAT_ENVELOPE_ARGC];
    cl_bus_t         bus;
    cl_replies_t     rp;
    redisContext    *c;
    chat_envelope_t  env;
    struct timespec  wall;
    chat_envelope_numbers_t  numbers;

    if (o->pairs == 0 || o->count == 0) {
        cl_die("commit needs --count and --pairs");
    }

    cl_bus_open(&bus, o);
    snprintf(gw, sizeof(gw), CHAT_GW_STREAM_PREFIX "bench-%d}", (int) getpid());
    c = cl_bus_conn(&bus, gw, NULL);    /* the replies' stream */
    freeReplyObject(redisCommand(c, "DEL %s", gw));

    memset(&env, 0, sizeof(env));
    env.op.data = "msg.send";
    env.op.len = 8;
    env.role.data = "user";
    env.role.len = 4;
    env.gw.data = gw;
    env.gw.len = strlen(gw);

    memset(&rp, 0, sizeof(rp));
    snprintf(rp.last, sizeof(rp.last), "0-0");
    t0 = cl_now_ns();

    for (i = 0; i < o->count; i++) {
        /* --rates R: paced at R commands/s (sent each 1 ms tick), so the
         * worker pool is measured at a fixed rate rather than a burst */
        while (o->nrates > 0
               && (double) i >= o->rates[0] * (double) (cl_now_ns() - t0)
                                / 1e9)
        {
            cl_bus_flush(&bus);
            /* the replies meanwhile: the reply stream is capped */
            if (cl_commit_read(c, gw, -1, &rp) == 0) {
                nanosleep(&tick, NULL);
            }
        }

        k = i % o->pairs;
        conv = o->conv_base + (int64_t) k;
        uid = o->uid_base + (int64_t) (2 * k + (i / o->pairs) % 2);

        snprintf(key, sizeof(key), "gbench-%d:%zu", (int) getpid(), i);
        cl_text_make(text, sizeof(text), 0, 1, cl_now_ns(), uid, o->text_len);
        snprintf(body, sizeof(body),
                 "{\"conversation_id\":%" PRId64 ",\"client_msg_id\":"
                 "\"c%d.%zu\",\"text\":\"%s\"}", conv, (int) getpid(), i,
                 text);
        /* msg.send is on the chat lane (chat_lanes.h) */
        snprintf(stream, sizeof(stream), CHAT_CMD_STREAM_PREFIX "chat:{%u}",
                 chat_envelope_shard(key, strlen(key), (unsigned) o->shards));

        clock_gettime(CLOCK_REALTIME, &wall);
        env.key.data = key;
        env.key.len = strlen(key);
        env.body.data = body;
        env.body.len = strlen(body);
        env.uid = uid;
        env.req = i + 1;
        env.ts = (int64_t) wall.tv_sec * 1000 + wall.tv_nsec / 1000000;

        argc = chat_envelope_argv(&env, stream, "100000", &numbers, argv,
                                  argvlen);
        if (argc < 0) {
            cl_die("the envelope was refused");
        }
        redisAppendCommandArgv(cl_bus_conn(&bus, stream, &n), argc, argv,
                               argvlen);
        bus.pending[n]++;

        if (++bus.pending_all == 1000 || i + 1 == o->count) {
            cl_bus_flush(&bus);
        }
    }

    idle_since = cl_now_ns();

    while (rp.got < o->count
           && cl_now_ns() - idle_since < (uint64_t) (o->hold_s * 1e9))
    {
        if (cl_commit_read(c, gw, 500, &rp) > 0) {
            idle_since = cl_now_ns();
        }
    }

    freeReplyObject(redisCommand(c, "DEL %s", gw));
    cl_bus_close(&bus);

    printf("commit msgs=%zu replies=%zu ok=%zu seconds=%.2f rate=%.0f/s"
           " first_reply_ms=%.0f%s%s\n", o->count, rp.got, rp.ok,
           rp.t_last ? (double) (rp.t_last - t0) / 1e9 : 0.0,
           rp.t_last ? (double) rp.ok / ((double) (rp.t_last - t0) / 1e9)
                     : 0.0,
           rp.t_first ? (double) (rp.t_first - t0) / 1e6 : 0.0,
           rp.other ? " first_other=" : "", rp.first_other);

    return rp.got == o->count && rp.other == 0 ? 0 : 1;
}
