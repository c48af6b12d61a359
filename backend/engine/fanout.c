/*
 * fanout.c: publishing a committed batch: the replies to the gateways
 * that asked, the acknowledgements of the command entries, and the
 * events to the gateways of everyone concerned.
 *
 * After a batch's commit the worker passes its answers (chat_answer_t)
 * and the events of its commands (event.c holds them: JSON text plus
 * recipient ids) to chat_publish.  Delivery follows chat_protocol.h and
 * costs two pipelined round trips however many commands, events and
 * recipients there are:
 *
 *   1. XADD <gateway stream> NOMKSTREAM MAXLEN ~ 10000 * req .. status ..
 *      body ..  for every reply, and
 *      HGETALL chat:online:{<uid>}  for every distinct recipient of every
 *      event.  Each field of an online hash is a gateway's stream key,
 *      its value the time (ms) that gateway last said the user is
 *      connected there; fields older than CHAT_ONLINE_STALE_MS belong to
 *      a gateway that died without cleaning up, and are skipped.
 *   2. XACK <command stream> workers <id> <id> ...  once per shard, for
 *      the entries whose reply is in its stream, and for each event, its
 *      recipients grouped by gateway, one
 *      XADD <gateway stream> NOMKSTREAM MAXLEN ~ 10000 * ev <json> uids <csv>
 *      per gateway.
 *
 * So an entry is acknowledged only once its reply is stored, a reply
 * and every event leave only after the commit, and a 1000-member group
 * message is 1000 HGETALLs in one round trip and one XADD per gateway
 * with someone online, not one per member.  Users with no fresh field are
 * offline: they catch up with sync or history when they come back.
 *
 * Gateway streams expire (EXPIRE 300 s) so the streams of gateways that
 * died go away.  Refreshing that TTL with every XADD would double the
 * commands, so a worker refreshes a stream's TTL at most once a minute
 * (chat_ttl_due, a small table of the streams it wrote to recently),
 * which keeps a live stream alive with four minutes to spare.  A stream
 * that does not exist (a gateway's first reply, or one that expired or
 * was lost with a Redis restart) is never created without its TTL:
 * NOMKSTREAM makes such an XADD a no-op that answers nil, and only those
 * go again, creating the stream, with an EXPIRE right behind, in one more
 * round trip.  The reply's XACK then waits for that round trip.
 *
 * Stale online fields are not deleted here.  The owner might be a slow
 * gateway about to refresh, and an HDEL racing its HSET would cut a live
 * user off until the next refresh; the key's TTL (CHAT_ONLINE_TTL_SEC)
 * bounds the garbage anyway.
 *
 * Failures.  A reply that could not be stored leaves its entry
 * unacknowledged: it is reclaimed and answered again from command_log.
 * A failed event (Redis down, an error reply) is logged and dropped: the
 * command is committed and answered, and delivery is at-least-once only
 * in the sense that clients fill gaps from history and sync.
 *
 * What it does not do: decide who receives what (the operations do), or
 * deliver to clients (the gateways do).
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat_protocol.h"
#include "fanout.h"
#include "log.h"


/* ------------------------------------------------------------------------
 * Gateway streams' TTL
 * --------------------------------------------------------------------- */

#define CHAT_TTL_SLOTS       1024
#define CHAT_TTL_PROBES      8
#define CHAT_TTL_NAME_MAX    200
#define CHAT_TTL_REFRESH_MS  60000

typedef struct {
    int64_t  at;                    /* when we sent its EXPIRE; 0: free */
    size_t   len;
    char     name[CHAT_TTL_NAME_MAX];
} chat_ttl_slot_t;

/* per worker process: the streams whose TTL it refreshed lately */
static chat_ttl_slot_t  chat_ttl[CHAT_TTL_SLOTS];


/*
 * 1 when the stream's TTL is due for a refresh from this worker (the
 * caller then sends its EXPIRE; the time is noted now), else 0.  A full
 * neighbourhood of the table forgets its oldest entry, which only costs
 * an EXPIRE too many.
 */
static int
chat_ttl_due(const char *name, size_t len, int64_t now)
{
    size_t            i, h;
    uint64_t          hash;
    chat_ttl_slot_t  *s, *oldest;

    if (len > CHAT_TTL_NAME_MAX) {
        return 1;
    }

    hash = 14695981039346656037ULL;             /* FNV-1a */
    for (i = 0; i < len; i++) {
        hash = (hash ^ (unsigned char) name[i]) * 1099511628211ULL;
    }

    oldest = NULL;

    for (i = 0; i < CHAT_TTL_PROBES; i++) {
        h = (size_t) ((hash + i) % CHAT_TTL_SLOTS);
        s = &chat_ttl[h];

        if (s->at != 0 && s->len == len && memcmp(s->name, name, len) == 0) {
            if (now - s->at < CHAT_TTL_REFRESH_MS) {
                return 0;
            }
            s->at = now;
            return 1;
        }

        if (oldest == NULL || s->at < oldest->at) {
            oldest = s;
        }
    }

    oldest->at = now;
    oldest->len = len;
    memcpy(oldest->name, name, len);

    return 1;
}


/* ------------------------------------------------------------------------
 * The pipeline
 * --------------------------------------------------------------------- */

/* what each appended command was, to read its reply */
typedef enum {
    CHAT_SENT_REPLY,            /* XADD NOMKSTREAM of answer [index] */
    CHAT_SENT_CREATE,           /* XADD creating a missing stream */
    CHAT_SENT_EXPIRE,
    CHAT_SENT_ONLINE,           /* HGETALL of recipient [index] */
    CHAT_SENT_ACK,
    CHAT_SENT_EVENT             /* XADD NOMKSTREAM of route [index] */
} chat_sent_kind_t;

typedef struct {
    chat_sent_kind_t  kind;
    size_t            index;
} chat_sent_t;

/* an event XADD that found no stream, to send again creating it */
typedef struct {
    const char  *gw;            /* borrowed from an online reply */
    size_t       gw_len;
    const char  *json;          /* borrowed from the event */
    char        *uids;
} chat_retry_t;

typedef struct {
    chat_bus_t      *bus;
    int64_t          mono;
    chat_sent_t     *sent;
    size_t           nsent;
    size_t           cap;
    chat_retry_t    *retries;   /* events that found no stream */
    size_t           nretries;
    size_t           capretries;
    int              failed;    /* an append failed: the connection is lost */
} chat_pipe_t;


static int
chat_pipe_note(chat_pipe_t *p, chat_sent_kind_t kind, size_t index)
{
    size_t        cap;
    chat_sent_t  *s;

    if (p->nsent == p->cap) {
        cap = p->cap ? p->cap * 2 : 64;
        s = realloc(p->sent, cap * sizeof(chat_sent_t));
        if (s == NULL) {
            return -1;
        }
        p->sent = s;
        p->cap = cap;
    }

    p->sent[p->nsent].kind = kind;
    p->sent[p->nsent].index = index;
    p->nsent++;

    return 0;
}


/* Appends argv as one command; kind and index say what it is. */
static int
chat_pipe_append(chat_pipe_t *p, int argc, const char **argv,
    const size_t *argvlen, chat_sent_kind_t kind, size_t index)
{
    if (p->failed) {
        return -1;
    }

    if (chat_pipe_note(p, kind, index) != 0) {
        /* the pipeline holds what was appended; nothing more goes in */
        p->failed = 1;
        return -1;
    }

    if (chat_router_append_argv(&p->bus->route, argc, argv, argvlen)
        != REDIS_OK)
    {
        p->nsent--;
        p->failed = 1;
        chat_bus_lost(p->bus);
        return -1;
    }

    return 0;
}


/* EXPIRE <stream> 300, when this worker's refresh of it is due (or
 * always, with force: a stream just created). */
static int
chat_pipe_expire(chat_pipe_t *p, const char *gw, size_t gw_len, int force)
{
    char         ttl[16];
    const char  *argv[3];
    size_t       argvlen[3];

    /* a forced one (a new stream) is noted as a refresh too */
    if (!chat_ttl_due(gw, gw_len, p->mono) && !force) {
        return 0;
    }

    snprintf(ttl, sizeof(ttl), "%d", CHAT_GW_STREAM_TTL_SEC);

    argv[0] = "EXPIRE";
    argv[1] = gw;
    argv[2] = ttl;
    argvlen[0] = 6;
    argvlen[1] = gw_len;
    argvlen[2] = strlen(ttl);

    return chat_pipe_append(p, 3, argv, argvlen, CHAT_SENT_EXPIRE, 0);
}


/* XADD of a reply; create: without NOMKSTREAM, then its EXPIRE. */
static int
chat_pipe_reply(chat_pipe_t *p, const chat_answer_t *a, size_t index,
    int create)
{
    int          argc;
    char         st[16];
    const char  *argv[14];
    size_t       argvlen[14];

    snprintf(st, sizeof(st), "%d", a->status);

    argc = 0;
#define CHAT_ARG(s, n)  (argv[argc] = (s), argvlen[argc] = (n), argc++)
    CHAT_ARG("XADD", 4);
    CHAT_ARG(a->gw, a->gw_len);
    if (!create) {
        CHAT_ARG("NOMKSTREAM", 10);
    }
    CHAT_ARG("MAXLEN", 6);
    CHAT_ARG("~", 1);
    CHAT_ARG(CHAT_GW_STREAM_MAXLEN, sizeof(CHAT_GW_STREAM_MAXLEN) - 1);
    CHAT_ARG("*", 1);
    CHAT_ARG(CHAT_F_REQ, sizeof(CHAT_F_REQ) - 1);
    CHAT_ARG(a->req, a->req_len);
    CHAT_ARG(CHAT_F_STATUS, sizeof(CHAT_F_STATUS) - 1);
    CHAT_ARG(st, strlen(st));
    CHAT_ARG(CHAT_F_BODY, sizeof(CHAT_F_BODY) - 1);
    CHAT_ARG(a->body, strlen(a->body));
#undef CHAT_ARG

    if (chat_pipe_append(p, argc, argv, argvlen,
                         create ? CHAT_SENT_CREATE : CHAT_SENT_REPLY, index)
        != 0)
    {
        return -1;
    }

    return chat_pipe_expire(p, a->gw, a->gw_len, create);
}


/* XADD of an event for the uids (csv) one gateway serves. */
static int
chat_pipe_event(chat_pipe_t *p, const char *gw, size_t gw_len,
    const char *json, const char *uids, size_t index, int create)
{
    int          argc;
    const char  *argv[12];
    size_t       argvlen[12];

    argc = 0;
#define CHAT_ARG(s, n)  (argv[argc] = (s), argvlen[argc] = (n), argc++)
    CHAT_ARG("XADD", 4);
    CHAT_ARG(gw, gw_len);
    if (!create) {
        CHAT_ARG("NOMKSTREAM", 10);
    }
    CHAT_ARG("MAXLEN", 6);
    CHAT_ARG("~", 1);
    CHAT_ARG(CHAT_GW_STREAM_MAXLEN, sizeof(CHAT_GW_STREAM_MAXLEN) - 1);
    CHAT_ARG("*", 1);
    CHAT_ARG(CHAT_F_EVENT, sizeof(CHAT_F_EVENT) - 1);
    CHAT_ARG(json, strlen(json));
    CHAT_ARG(CHAT_F_UIDS, sizeof(CHAT_F_UIDS) - 1);
    CHAT_ARG(uids, strlen(uids));
#undef CHAT_ARG

    if (chat_pipe_append(p, argc, argv, argvlen,
                         create ? CHAT_SENT_CREATE : CHAT_SENT_EVENT, index)
        != 0)
    {
        return -1;
    }

    return chat_pipe_expire(p, gw, gw_len, create);
}


/* Remembers an event XADD that found no stream; it goes again. */
static int
chat_pipe_retry(chat_pipe_t *p, const char *gw, size_t gw_len,
    const char *json, const char *uids)
{
    size_t         cap;
    chat_retry_t  *r;

    if (p->nretries == p->capretries) {
        cap = p->capretries ? p->capretries * 2 : 8;
        r = realloc(p->retries, cap * sizeof(chat_retry_t));
        if (r == NULL) {
            return -1;
        }
        p->retries = r;
        p->capretries = cap;
    }

    r = &p->retries[p->nretries];
    r->uids = strdup(uids);
    if (r->uids == NULL) {
        return -1;
    }

    r->gw = gw;
    r->gw_len = gw_len;
    r->json = json;
    p->nretries++;

    return 0;
}


/* ------------------------------------------------------------------------
 * Recipients and routes
 * --------------------------------------------------------------------- */

static int
chat_fanout_cmp(const void *a, const void *b)
{
    int64_t  x = *(const int64_t *) a, y = *(const int64_t *) b;

    return (x > y) - (x < y);
}


/* The sorted distinct recipients of every event; *nu their count. */
static int64_t *
chat_fanout_recipients(chat_events_t *const *lists, size_t n, size_t *nu)
{
    size_t    i, j, k, count;
    int64_t  *uids;

    count = 0;
    for (i = 0; i < n; i++) {
        for (j = 0; j < lists[i]->n; j++) {
            count += lists[i]->items[j].n;
        }
    }

    uids = malloc((count ? count : 1) * sizeof(int64_t));
    if (uids == NULL) {
        return NULL;
    }

    k = 0;
    for (i = 0; i < n; i++) {
        for (j = 0; j < lists[i]->n; j++) {
            memcpy(uids + k, lists[i]->items[j].uids,
                   lists[i]->items[j].n * sizeof(int64_t));
            k += lists[i]->items[j].n;
        }
    }

    qsort(uids, k, sizeof(int64_t), chat_fanout_cmp);

    *nu = 0;
    for (i = 0; i < k; i++) {
        if (*nu == 0 || uids[i] != uids[*nu - 1]) {
            uids[(*nu)++] = uids[i];
        }
    }

    return uids;
}


/* Groups one event's recipients by fresh gateway into routes. */
static int
chat_fanout_route(const chat_event_t *e, const int64_t *uids, size_t nu,
    redisReply **online, int64_t now, chat_routes_t *routes)
{
    size_t        i, f;
    int64_t      *hit;
    redisReply   *r, *name, *value;

    chat_routes_reset(routes);

    for (i = 0; i < e->n; i++) {
        hit = bsearch(&e->uids[i], uids, nu, sizeof(int64_t),
                      chat_fanout_cmp);
        r = hit ? online[hit - uids] : NULL;

        if (r == NULL || r->type != REDIS_REPLY_ARRAY) {
            continue;
        }

        for (f = 0; f + 1 < r->elements; f += 2) {
            name = r->element[f];
            value = r->element[f + 1];

            if (name->type == REDIS_REPLY_STRING
                && value->type == REDIS_REPLY_STRING
                && chat_online_field_fresh(name->str, name->len, value->str,
                                           value->len, now)
                && chat_routes_add(routes, name->str, name->len, e->uids[i])
                   != 0)
            {
                return -1;
            }
        }
    }

    return 0;
}


/* ------------------------------------------------------------------------
 * Publishing
 * --------------------------------------------------------------------- */

/*
 * XACK <stream> workers <ids...> per shard, for the answers whose reply
 * is stored (landed[i]), appended to the pipeline.
 */
static int
chat_pipe_acks(chat_pipe_t *p, const chat_answer_t *a, size_t k,
    const unsigned char *landed)
{
    int           shard, argc;
    size_t        i;
    const char  **argv;

    argv = malloc((k + 3) * sizeof(char *));
    if (argv == NULL) {
        return -1;
    }

    for (shard = 0; shard < p->bus->cfg->shards; shard++) {
        argc = 0;
        argv[argc++] = "XACK";
        argv[argc++] = p->bus->streams[shard];
        argv[argc++] = CHAT_CMD_GROUP;

        for (i = 0; i < k; i++) {
            if (a[i].shard == shard && a[i].id != NULL && landed[i]) {
                argv[argc++] = a[i].id;
            }
        }

        if (argc > 3
            && chat_pipe_append(p, argc, argv, NULL, CHAT_SENT_ACK, 0) != 0)
        {
            free(argv);
            return -1;
        }
    }

    free(argv);
    return 0;
}


int
chat_publish(chat_bus_t *bus, const chat_answer_t *a, size_t k,
    chat_events_t *const *lists, size_t n)
{
    int               rc, events_ok;
    void             *reply;
    size_t            i, j, r, s, nu, nevents, sent;
    int64_t           now, *uids;
    redisReply      **online, *x;
    chat_pipe_t       p;
    chat_event_t     *e;
    chat_routes_t     routes;
    unsigned char    *landed, *missing;

    nevents = 0;
    for (i = 0; i < n; i++) {
        nevents += lists[i]->n;
    }

    if (k == 0 && nevents == 0) {
        return 0;
    }

    if (!chat_bus_ok(bus)) {
        chat_log_warn("publish: Redis is down; %zu replies wait for a "
                      "replay, %zu events dropped", k, nevents);
        return -1;
    }

    rc = -1;
    events_ok = 1;
    nu = 0;
    online = NULL;
    memset(&p, 0, sizeof(p));
    memset(&routes, 0, sizeof(routes));
    p.bus = bus;
    p.mono = chat_mono_ms();

    uids = chat_fanout_recipients(lists, n, &nu);
    online = calloc(nu ? nu : 1, sizeof(redisReply *));
    landed = calloc(k ? k : 1, 1);
    missing = calloc(k ? k : 1, 1);

    if (uids == NULL || online == NULL || landed == NULL || missing == NULL)
    {
        goto done;
    }

    /* round trip 1: the replies, the online hash of every recipient */
    for (i = 0; i < k; i++) {
        (void) chat_pipe_reply(&p, &a[i], i, 0);
    }

    for (i = 0; i < nu; i++) {
        const char  *argv[2];
        char         key[CHAT_KEY_MAX];

        (void) chat_key_online(key, sizeof(key), uids[i]);
        argv[0] = "HGETALL";
        argv[1] = key;
        (void) chat_pipe_append(&p, 2, argv, NULL, CHAT_SENT_ONLINE, i);
    }

    sent = p.nsent;

    for (s = 0; s < sent; s++) {
        if (!chat_bus_ok(bus)
            || chat_router_get_reply(&bus->route, &reply) != REDIS_OK)
        {
            chat_bus_lost(bus);
            goto done;
        }

        x = reply;
        i = p.sent[s].index;

        switch (p.sent[s].kind) {

        case CHAT_SENT_REPLY:
            if (x->type == REDIS_REPLY_NIL) {
                missing[i] = 1;
            } else if (chat_bus_check(x, "reply XADD") == 0) {
                landed[i] = 1;
            }
            freeReplyObject(x);
            break;

        case CHAT_SENT_ONLINE:
            online[i] = x;
            if (x->type != REDIS_REPLY_ARRAY) {
                (void) chat_bus_check(x, "HGETALL online");
            }
            break;

        default:
            (void) chat_bus_check(x, "EXPIRE");
            freeReplyObject(x);
        }
    }

    if (p.failed) {
        goto done;
    }

    /* round trip 2: the replies that found no stream go again, creating
     * it; the acks of the replies now stored; every event */
    p.nsent = 0;

    for (i = 0; i < k; i++) {
        if (missing[i] && chat_pipe_reply(&p, &a[i], i, 1) == 0) {
            landed[i] = 1;
        }
    }

    (void) chat_pipe_acks(&p, a, k, landed);

    now = chat_time_ms();
    r = 0;

    for (i = 0; i < n && !p.failed; i++) {
        for (j = 0; j < lists[i]->n && !p.failed; j++) {
            e = &lists[i]->items[j];

            if (chat_fanout_route(e, uids, nu, online, now, &routes) != 0) {
                events_ok = 0;
                continue;
            }

            for (s = 0; s < routes.n; s++, r++) {
                if (chat_pipe_event(&p, routes.items[s].gw,
                                    routes.items[s].gw_len, e->json,
                                    routes.items[s].uids, r, 0) != 0)
                {
                    break;
                }

                /* kept in case the stream is missing; the route's
                 * buffers are reused by the next event */
                if (chat_pipe_retry(&p, routes.items[s].gw,
                                    routes.items[s].gw_len, e->json,
                                    routes.items[s].uids) != 0)
                {
                    p.failed = 1;
                    break;
                }
            }
        }
    }

    rc = 0;
    sent = p.nsent;

    for (s = 0; s < sent; s++) {
        if (!chat_bus_ok(bus)
            || chat_router_get_reply(&bus->route, &reply) != REDIS_OK)
        {
            chat_bus_lost(bus);
            rc = -1;
            goto done;
        }

        x = reply;
        i = p.sent[s].index;

        switch (p.sent[s].kind) {

        case CHAT_SENT_CREATE:
            if (chat_bus_check(x, "reply XADD") != 0) {
                rc = -1;
            }
            break;

        case CHAT_SENT_ACK:
            if (chat_bus_check(x, "XACK") != 0) {
                rc = -1;
            }
            break;

        case CHAT_SENT_EVENT:
            /* the stream exists: no retry for this one */
            if (x->type != REDIS_REPLY_NIL && i < p.nretries) {
                if (chat_bus_check(x, "event XADD") != 0) {
                    events_ok = 0;
                }
                free(p.retries[i].uids);
                p.retries[i].uids = NULL;
            }
            break;

        default:
            (void) chat_bus_check(x, "EXPIRE");
        }

        freeReplyObject(x);
    }

    if (p.failed) {
        rc = -1;
        goto done;
    }

    /* round trip 3, rare: events whose gateway stream was missing */
    p.nsent = 0;

    for (i = 0; i < p.nretries; i++) {
        if (p.retries[i].uids != NULL) {
            (void) chat_pipe_event(&p, p.retries[i].gw, p.retries[i].gw_len,
                                   p.retries[i].json, p.retries[i].uids, i,
                                   1);
        }
    }

    sent = p.nsent;

    for (s = 0; s < sent; s++) {
        if (!chat_bus_ok(bus)
            || chat_router_get_reply(&bus->route, &reply) != REDIS_OK)
        {
            chat_bus_lost(bus);
            events_ok = 0;
            break;
        }
        if (chat_bus_check(reply, "event XADD") != 0) {
            events_ok = 0;
        }
        freeReplyObject(reply);
    }

    chat_log_debug("publish: %zu replies, %zu events, %zu users, "
                   "%zu event XADDs", k, nevents, nu, p.nretries);

done:

    if (p.failed) {
        events_ok = 0;
    }

    if (!events_ok || rc != 0) {
        chat_log_error("publish of %zu replies and %zu events failed or was "
                       "cut short; unanswered entries are replayed, clients "
                       "catch up from history", k, nevents);
    }

    for (i = 0; online != NULL && i < nu; i++) {
        freeReplyObject(online[i]);
    }

    for (i = 0; i < p.nretries; i++) {
        free(p.retries[i].uids);
    }

    free(online);
    free(uids);
    free(landed);
    free(missing);
    free(p.sent);
    free(p.retries);
    chat_routes_free(&routes);

    return rc;
}


int
chat_fanout(chat_bus_t *bus, chat_events_t *const *lists, size_t n)
{
    return chat_publish(bus, NULL, 0, lists, n);
}
