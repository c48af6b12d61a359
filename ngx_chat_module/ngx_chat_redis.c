/*
 * ngx_chat_redis.c: hiredis' async API on nginx's event loop.
 *
 * The adapter has the shape of hiredis' own adapters (adapters/libev.h and
 * friends): the hiredis socket is wrapped in an ngx_connection_t, and the
 * five hooks (addRead, delRead, addWrite, delWrite, cleanup) add and remove
 * nginx events on it.  Events are registered level-triggered rather than
 * with nginx's usual edge-triggered epoll flag: hiredis reads at most one
 * buffer per call, and a level-triggered read event simply fires again
 * while bytes remain, so nothing can be stranded in the socket.
 *
 * On top of the adapter sits the connection's life cycle:
 *   - connect is non-blocking and bounded by an nginx timer;
 *   - a lost or failed connection is retried with exponential backoff and
 *     full jitter (100 ms doubling to 5 s), so a fleet of workers does not
 *     stampede a Redis that just came back;
 *   - a watchdog drops the connection when a reply is overdue (a hung or
 *     unreachable server sends no FIN), and pings an idle connection so a
 *     dead peer is noticed before the next user request needs it.
 * hiredis 0.14 has no timer hook of its own, hence the nginx timers.
 *
 * Whether the endpoint is a Redis Cluster is learnt on the first connect:
 * CLUSTER NODES goes right behind AUTH, and on_connect waits for its
 * answer.  A single Redis answers with an error, and from then on this
 * is the plain connection it always was (reconnects send nothing extra,
 * commands go as they are).  A cluster node answers with the slot map,
 * and ngx_chat_redis_cluster.c takes over the routing; this file still
 * keeps each connection alive, its own and each master's.  The commands
 * sent before the first answer is in follow MOVED, whatever it says.
 *
 * A worker never blocks here: every call returns at once.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>

#include "ngx_chat_metrics.h"
#include "ngx_chat_module.h"
#include "ngx_chat_redis.h"


#define NGX_CHAT_REDIS_BACKOFF_MIN  100
#define NGX_CHAT_REDIS_BACKOFF_MAX  5000
#define NGX_CHAT_REDIS_WATCHDOG     1000


static void ngx_chat_redis_timers_init(ngx_chat_redis_t *rc);
static void ngx_chat_redis_schedule_retry(ngx_chat_redis_t *rc);
static const char *ngx_chat_redis_host(ngx_chat_redis_t *rc);
static int ngx_chat_redis_port(ngx_chat_redis_t *rc);

static void ngx_chat_redis_add_read(void *privdata);
static void ngx_chat_redis_del_read(void *privdata);
static void ngx_chat_redis_add_write(void *privdata);
static void ngx_chat_redis_del_write(void *privdata);
static void ngx_chat_redis_cleanup(void *privdata);

static void ngx_chat_redis_read_handler(ngx_event_t *ev);
static void ngx_chat_redis_write_handler(ngx_event_t *ev);
static void ngx_chat_redis_connected(const redisAsyncContext *ac, int status);
static void ngx_chat_redis_disconnected(const redisAsyncContext *ac,
    int status);
static void ngx_chat_redis_connect_timeout(ngx_event_t *ev);
static void ngx_chat_redis_retry(ngx_event_t *ev);
static void ngx_chat_redis_watchdog(ngx_event_t *ev);
static void ngx_chat_redis_pong(redisAsyncContext *ac, void *reply,
    void *privdata);
static void ngx_chat_redis_authed(redisAsyncContext *ac, void *reply,
    void *privdata);


void
ngx_chat_redis_use_endpoint(ngx_chat_redis_t *rc, const char *name,
    ngx_chat_endpoint_t *ep, ngx_log_t *log)
{
    rc->name = name;
    rc->host = ep->host;
    rc->port = ep->port;
    rc->user = ep->user;
    rc->password = ep->password;
    rc->connect_timeout = ep->connect_timeout;
    rc->log = log;
}


void
ngx_chat_redis_start(ngx_chat_redis_t *rc)
{
    ngx_chat_redis_timers_init(rc);

    rc->backoff = NGX_CHAT_REDIS_BACKOFF_MIN;
    rc->stopping = 0;

    ngx_chat_redis_open(rc);
    ngx_add_timer(&rc->watchdog, NGX_CHAT_REDIS_WATCHDOG);
}


static void
ngx_chat_redis_timers_init(ngx_chat_redis_t *rc)
{
    rc->connect_timer.handler = ngx_chat_redis_connect_timeout;
    rc->connect_timer.data = rc;
    rc->connect_timer.log = rc->log;
    rc->connect_timer.cancelable = 1;

    rc->retry_timer.handler = ngx_chat_redis_retry;
    rc->retry_timer.data = rc;
    rc->retry_timer.log = rc->log;
    rc->retry_timer.cancelable = 1;

    rc->watchdog.handler = ngx_chat_redis_watchdog;
    rc->watchdog.data = rc;
    rc->watchdog.log = rc->log;
    rc->watchdog.cancelable = 1;
}


/*
 * A link is one master's connection of a cluster parent: the parent's
 * settings and owner data (so a reply callback's ac->data->data is the
 * owner's, on a link as on the parent), its own socket, and no retry or
 * watchdog of its own: a lost link takes the parent down, and the
 * parent's watchdog looks after its links.
 */
void
ngx_chat_redis_link_init(ngx_chat_redis_t *link, ngx_chat_redis_t *parent,
    const chat_cluster_addr_t *addr)
{
    /* the settings, the owner's data and log; none of the state */
    *link = *parent;

    ngx_memzero(&link->connect_timer, sizeof(ngx_event_t));
    ngx_memzero(&link->retry_timer, sizeof(ngx_event_t));
    ngx_memzero(&link->watchdog, sizeof(ngx_event_t));
    link->ac = NULL;
    link->conn = NULL;
    link->on_connect = NULL;
    link->on_disconnect = NULL;
    link->cluster = NULL;
    link->parent = parent;
    link->at = *addr;
    link->connected = 0;
    link->linked = 0;
    link->closing = 0;
    link->stopping = 0;
    link->single = 1;           /* no detection: it is a cluster's node */

    ngx_chat_redis_timers_init(link);
}


ngx_int_t
ngx_chat_redis_usable(ngx_chat_redis_t *rc)
{
    if (rc->cluster != NULL) {
        return rc->connected;
    }

    return rc->ac != NULL;
}


ngx_int_t
ngx_chat_redis_is_cluster(ngx_chat_redis_t *rc)
{
    return rc->cluster != NULL;
}


/* where rc connects: a link's node, a cluster's seed, or chat_redis */
static const char *
ngx_chat_redis_host(ngx_chat_redis_t *rc)
{
    return rc->at.port ? rc->at.host : (const char *) rc->host.data;
}


static int
ngx_chat_redis_port(ngx_chat_redis_t *rc)
{
    return rc->at.port ? rc->at.port : (int) rc->port;
}


void
ngx_chat_redis_stop(ngx_chat_redis_t *rc)
{
    rc->stopping = 1;

    if (rc->retry_timer.timer_set) {
        ngx_del_timer(&rc->retry_timer);
    }

    if (rc->watchdog.timer_set) {
        ngx_del_timer(&rc->watchdog);
    }

    ngx_chat_redis_close(rc, NULL);
}


ngx_int_t
ngx_chat_redis_command(ngx_chat_redis_t *rc, redisCallbackFn *fn,
    void *privdata, int argc, const char **argv, const size_t *argvlen)
{
    if (rc->cluster != NULL) {
        return ngx_chat_redis_cluster_command(rc, fn, privdata, argc, argv,
                                              argvlen);
    }

    if (!rc->single && rc->ac != NULL) {
        /* not known yet: if it is a cluster, MOVED is followed */
        return ngx_chat_redis_routed(rc, rc, fn, privdata, argc, argv,
                                     argvlen);
    }

    return ngx_chat_redis_send(rc, fn, privdata, argc, argv, argvlen);
}


ngx_int_t
ngx_chat_redis_send(ngx_chat_redis_t *rc, redisCallbackFn *fn,
    void *privdata, int argc, const char **argv, const size_t *argvlen)
{
    /*
     * While connect(2) is in progress hiredis buffers the command and sends
     * it once connected; if the connect fails, fn gets NULL.  So a worker
     * that has just started (or reconnects) queues instead of refusing.
     */
    if (rc->ac == NULL) {
        return NGX_ERROR;
    }

    if (rc->ac->replies.head == NULL) {
        /* the stall clock starts with the first outstanding command */
        rc->last_read = ngx_current_msec;
    }

    if (redisAsyncCommandArgv(rc->ac, fn, privdata, argc, argv, argvlen)
        != REDIS_OK)
    {
        ngx_log_error(NGX_LOG_ERR, rc->log, 0,
                      "chat redis %s: command refused: %s", rc->name,
                      rc->ac->errstr ? rc->ac->errstr : "unknown error");
        return NGX_ERROR;
    }

    return NGX_OK;
}


void
ngx_chat_redis_open(ngx_chat_redis_t *rc)
{
    int                 n;
    size_t              argvlen[3];
    const char         *argv[3];
    ngx_connection_t   *c;
    redisAsyncContext  *ac;

    if (rc->cluster != NULL) {
        ngx_chat_redis_cluster_seed(rc);
    }

    rc->closing = 0;

    ac = redisAsyncConnect(ngx_chat_redis_host(rc), ngx_chat_redis_port(rc));
    if (ac == NULL) {
        ngx_log_error(NGX_LOG_ERR, rc->log, 0,
                      "chat redis %s: out of memory", rc->name);
        ngx_chat_redis_schedule_retry(rc);
        return;
    }

    if (ac->err) {
        ngx_log_error(NGX_LOG_ERR, rc->log, 0,
                      "chat redis %s: connect to %s:%d failed: %s",
                      rc->name, ngx_chat_redis_host(rc),
                      ngx_chat_redis_port(rc), ac->errstr);
        redisAsyncFree(ac);
        ngx_chat_redis_schedule_retry(rc);
        return;
    }

    c = ngx_get_connection(ac->c.fd, rc->log);
    if (c == NULL) {
        /* ngx_get_connection() has logged "worker_connections are not enough" */
        redisAsyncFree(ac);
        ngx_chat_redis_schedule_retry(rc);
        return;
    }

    c->data = rc;
    c->read->handler = ngx_chat_redis_read_handler;
    c->write->handler = ngx_chat_redis_write_handler;
    c->read->log = rc->log;
    c->write->log = rc->log;

    rc->ac = ac;
    rc->conn = c;
    rc->connected = 0;
    rc->linked = 0;
    ac->data = rc;

    ac->ev.data = rc;
    ac->ev.addRead = ngx_chat_redis_add_read;
    ac->ev.delRead = ngx_chat_redis_del_read;
    ac->ev.addWrite = ngx_chat_redis_add_write;
    ac->ev.delWrite = ngx_chat_redis_del_write;
    ac->ev.cleanup = ngx_chat_redis_cleanup;

    redisAsyncSetConnectCallback(ac, ngx_chat_redis_connected);
    redisAsyncSetDisconnectCallback(ac, ngx_chat_redis_disconnected);

    /*
     * AUTH goes first in the queue: hiredis sends it as soon as connect(2)
     * has finished, ahead of anything the owner queues from on_connect on,
     * and Redis answers in order, so nothing runs unauthenticated.
     */
    if (rc->password.len) {
        argv[0] = "AUTH";
        argvlen[0] = 4;
        n = 1;

        if (rc->user.len) {
            argv[n] = (const char *) rc->user.data;
            argvlen[n++] = rc->user.len;
        }

        argv[n] = (const char *) rc->password.data;
        argvlen[n++] = rc->password.len;

        if (redisAsyncCommandArgv(ac, ngx_chat_redis_authed, NULL, n, argv,
                                  argvlen)
            != REDIS_OK)
        {
            ngx_chat_redis_close(rc, "AUTH could not be queued");
            return;
        }
    }

    /* a parent that may be a cluster's node asks, right behind AUTH */
    if (rc->parent == NULL && !rc->single) {
        ngx_chat_redis_cluster_detect(rc);
    }

    /* hiredis learns that connect(2) finished from the first write event */
    ngx_chat_redis_add_write(rc);

    ngx_add_timer(&rc->connect_timer, rc->connect_timeout);
}


static void
ngx_chat_redis_schedule_retry(ngx_chat_redis_t *rc)
{
    ngx_msec_t  delay;

    if (rc->parent != NULL) {
        /* a link does not retry: its parent goes down and starts over */
        ngx_chat_redis_cluster_link_lost(rc);
        return;
    }

    if (rc->stopping || rc->retry_timer.timer_set) {
        return;
    }

    /* every failed or lost connection ends up here, once */
    ngx_chat_metric_inc(redis_failures);

    /* full jitter: anywhere in [backoff/2, backoff] */
    delay = rc->backoff / 2 + (ngx_msec_t) ngx_random() % (rc->backoff / 2 + 1);

    rc->backoff *= 2;
    if (rc->backoff > NGX_CHAT_REDIS_BACKOFF_MAX) {
        rc->backoff = NGX_CHAT_REDIS_BACKOFF_MAX;
    }

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, rc->log, 0,
                   "chat redis %s: reconnect in %M ms", rc->name, delay);

    ngx_add_timer(&rc->retry_timer, delay);
}


/*
 * Frees the hiredis context: outstanding callbacks run with a NULL reply,
 * the cleanup hook releases the nginx connection, and a reconnect is
 * scheduled unless we are stopping.  A cluster parent's links go first:
 * the owner sees one connection, up or down.  Inside one of the
 * context's own callbacks hiredis frees it when the callback returns, so
 * closing marks a close already under way.
 */
void
ngx_chat_redis_close(ngx_chat_redis_t *rc, const char *why)
{
    redisAsyncContext  *ac;

    ac = rc->ac;
    if (ac == NULL || rc->closing) {
        return;
    }

    rc->closing = 1;

    if (why) {
        ngx_log_error(NGX_LOG_ERR, rc->log, 0,
                      "chat redis %s: %s, dropping connection to %s:%d",
                      rc->name, why, ngx_chat_redis_host(rc),
                      ngx_chat_redis_port(rc));
    }

    if (rc->cluster != NULL) {
        ngx_chat_redis_cluster_close_links(rc);
    }

    /* not connected yet: hiredis will not call the disconnect callback */
    if (!rc->linked) {
        rc->ac = NULL;
        redisAsyncFree(ac);
        ngx_chat_redis_schedule_retry(rc);
        return;
    }

    redisAsyncFree(ac);       /* runs ngx_chat_redis_disconnected() */
}


/* hiredis' event hooks */

static void
ngx_chat_redis_add_read(void *privdata)
{
    ngx_chat_redis_t  *rc = privdata;

    if (rc->conn && !rc->conn->read->active) {
        /* flags 0: level-triggered, see the file comment */
        if (ngx_add_event(rc->conn->read, NGX_READ_EVENT, 0) != NGX_OK) {
            ngx_log_error(NGX_LOG_ALERT, rc->log, 0,
                          "chat redis %s: adding read event failed",
                          rc->name);
        }
    }
}


static void
ngx_chat_redis_del_read(void *privdata)
{
    ngx_chat_redis_t  *rc = privdata;

    if (rc->conn && rc->conn->read->active) {
        ngx_del_event(rc->conn->read, NGX_READ_EVENT, 0);
    }
}


static void
ngx_chat_redis_add_write(void *privdata)
{
    ngx_chat_redis_t  *rc = privdata;

    if (rc->conn && !rc->conn->write->active) {
        if (ngx_add_event(rc->conn->write, NGX_WRITE_EVENT, 0) != NGX_OK) {
            ngx_log_error(NGX_LOG_ALERT, rc->log, 0,
                          "chat redis %s: adding write event failed",
                          rc->name);
        }
    }
}


static void
ngx_chat_redis_del_write(void *privdata)
{
    ngx_chat_redis_t  *rc = privdata;

    if (rc->conn && rc->conn->write->active) {
        ngx_del_event(rc->conn->write, NGX_WRITE_EVENT, 0);
    }
}


/* Called by hiredis just before it closes the socket. */
static void
ngx_chat_redis_cleanup(void *privdata)
{
    ngx_chat_redis_t  *rc = privdata;
    ngx_connection_t  *c;

    c = rc->conn;
    if (c == NULL) {
        return;
    }

    if (c->read->active) {
        ngx_del_event(c->read, NGX_READ_EVENT, 0);
    }

    if (c->write->active) {
        ngx_del_event(c->write, NGX_WRITE_EVENT, 0);
    }

    if (c->read->posted) {
        ngx_delete_posted_event(c->read);
    }

    if (c->write->posted) {
        ngx_delete_posted_event(c->write);
    }

    if (rc->connect_timer.timer_set) {
        ngx_del_timer(&rc->connect_timer);
    }

    /* hiredis owns the descriptor and closes it itself */
    c->fd = (ngx_socket_t) -1;
    ngx_free_connection(c);

    rc->conn = NULL;
}


/* nginx event handlers */

static void
ngx_chat_redis_read_handler(ngx_event_t *ev)
{
    ngx_connection_t  *c = ev->data;
    ngx_chat_redis_t  *rc = c->data;

    rc->last_read = ngx_current_msec;

    /* may free the context and the connection: touch neither after this */
    redisAsyncHandleRead(rc->ac);
}


static void
ngx_chat_redis_write_handler(ngx_event_t *ev)
{
    ngx_connection_t  *c = ev->data;
    ngx_chat_redis_t  *rc = c->data;

    redisAsyncHandleWrite(rc->ac);
}


static void
ngx_chat_redis_connected(const redisAsyncContext *ac, int status)
{
    ngx_chat_redis_t  *rc = ac->data;

    if (rc->connect_timer.timer_set) {
        ngx_del_timer(&rc->connect_timer);
    }

    if (status != REDIS_OK) {
        ngx_log_error(NGX_LOG_ERR, rc->log, 0,
                      "chat redis %s: connect to %s:%d failed: %s",
                      rc->name, ngx_chat_redis_host(rc),
                      ngx_chat_redis_port(rc),
                      ac->errstr ? ac->errstr : "unknown error");

        /* hiredis frees the context after this callback returns */
        rc->ac = NULL;
        ngx_chat_redis_schedule_retry(rc);
        return;
    }

    ngx_log_error(NGX_LOG_NOTICE, rc->log, 0,
                  "chat redis %s: connected to %s:%d",
                  rc->name, ngx_chat_redis_host(rc), ngx_chat_redis_port(rc));

    ngx_chat_metric_inc(redis_connects);

    rc->linked = 1;
    rc->last_read = ngx_current_msec;

    if (rc->parent != NULL) {
        ngx_chat_redis_cluster_link_up(rc);
        return;
    }

    if (rc->single) {
        ngx_chat_redis_ready(rc);
    }

    /* else on_connect waits for CLUSTER NODES' answer */
}


void
ngx_chat_redis_ready(ngx_chat_redis_t *rc)
{
    rc->connected = 1;
    rc->backoff = NGX_CHAT_REDIS_BACKOFF_MIN;

    if (rc->on_connect) {
        rc->on_connect(rc);
    }
}


static void
ngx_chat_redis_disconnected(const redisAsyncContext *ac, int status)
{
    ngx_chat_redis_t  *rc = ac->data;

    if (status != REDIS_OK && !rc->stopping) {
        ngx_log_error(NGX_LOG_ERR, rc->log, 0,
                      "chat redis %s: connection to %s:%d lost: %s",
                      rc->name, ngx_chat_redis_host(rc),
                      ngx_chat_redis_port(rc),
                      ac->errstr ? ac->errstr : "closed");
    }

    rc->ac = NULL;
    rc->connected = 0;
    rc->linked = 0;

    /* the parent's own connection gone: its masters' go with it */
    if (rc->cluster != NULL) {
        ngx_chat_redis_cluster_close_links(rc);
    }

    if (rc->on_disconnect) {
        rc->on_disconnect(rc);
    }

    ngx_chat_redis_schedule_retry(rc);
}


/* timers */

static void
ngx_chat_redis_connect_timeout(ngx_event_t *ev)
{
    ngx_chat_redis_close(ev->data, "connect timed out");
}


static void
ngx_chat_redis_retry(ngx_event_t *ev)
{
    ngx_chat_redis_t  *rc = ev->data;

    if (!rc->stopping && rc->ac == NULL) {
        ngx_chat_redis_open(rc);
    }
}


static void
ngx_chat_redis_watchdog(ngx_event_t *ev)
{
    ngx_chat_redis_t  *rc = ev->data;
    const char        *why;

    if (rc->stopping || ngx_exiting) {
        return;
    }

    ngx_add_timer(&rc->watchdog, NGX_CHAT_REDIS_WATCHDOG);

    why = ngx_chat_redis_check(rc);

    if (why == NULL && rc->cluster != NULL) {
        why = ngx_chat_redis_cluster_check(rc);
    }

    if (why != NULL) {
        ngx_chat_redis_close(rc, why);
    }
}


/* "reply overdue" when rc's oldest reply is; pings rc when idle */
const char *
ngx_chat_redis_check(ngx_chat_redis_t *rc)
{
    ngx_msec_t          quiet;
    static const char  *ping[] = { "PING" };
    static size_t       ping_len[] = { 4 };

    if (rc->ac == NULL || !rc->linked || rc->closing) {
        return NULL;
    }

    quiet = ngx_current_msec - rc->last_read;

    if (rc->ac->replies.head != NULL) {
        return quiet > rc->stall_timeout ? "reply overdue" : NULL;
    }

    if (rc->idle_ping && quiet > rc->idle_ping) {
        (void) ngx_chat_redis_send(rc, ngx_chat_redis_pong, NULL, 1, ping,
                                   ping_len);
    }

    return NULL;
}


static void
ngx_chat_redis_pong(redisAsyncContext *ac, void *reply, void *privdata)
{
    /* nothing to do: any bytes read already reset the stall clock */
}


/* a command kept to be sent again */

void *
ngx_chat_redis_argv_copy(size_t head, int extra, int argc, const char **argv,
    const size_t *argvlen, const char ***cargv, size_t **cargvlen,
    ngx_log_t *log)
{
    int       i;
    size_t    size, len;
    u_char   *block, *p;

    size = head + (extra + argc) * (sizeof(char *) + sizeof(size_t));
    for (i = 0; i < argc; i++) {
        size += argvlen ? argvlen[i] : ngx_strlen(argv[i]);
    }

    block = ngx_alloc(size, log);
    if (block == NULL) {
        return NULL;
    }

    *cargv = (const char **) (block + head);
    *cargvlen = (size_t *) (*cargv + extra + argc);

    p = (u_char *) (*cargvlen + extra + argc);
    for (i = 0; i < argc; i++) {
        len = argvlen ? argvlen[i] : ngx_strlen(argv[i]);
        (*cargv)[extra + i] = (const char *) p;
        (*cargvlen)[extra + i] = len;
        p = ngx_cpymem(p, argv[i], len);
    }

    return block;
}


/* shared scripts, by SHA */

/* one script call: what to send again after a NOSCRIPT, and to whom to
 * give the final answer; argv and its bytes follow it in one block */
typedef struct {
    ngx_chat_redis_t  *rc;
    chat_script_t     *script;
    redisCallbackFn   *fn;
    void              *privdata;
    int                argc;
    const char       **argv;
    size_t            *argvlen;
    ngx_uint_t         reloaded;
} ngx_chat_redis_script_t;


static void ngx_chat_redis_script_done(redisAsyncContext *ac, void *reply,
    void *privdata);


ngx_int_t
ngx_chat_redis_script(ngx_chat_redis_t *rc, chat_script_t *script,
    redisCallbackFn *fn, void *privdata, int argc, const char **argv,
    const size_t *argvlen)
{
    size_t                   *cargvlen;
    const char              **cargv;
    ngx_chat_redis_script_t  *sc;

    if (!ngx_chat_redis_usable(rc)) {
        return NGX_ERROR;
    }

    /* the script's arguments after EVALSHA <sha> */
    sc = ngx_chat_redis_argv_copy(sizeof(ngx_chat_redis_script_t), 2, argc,
                                  argv, argvlen, &cargv, &cargvlen, rc->log);
    if (sc == NULL) {
        return NGX_ERROR;
    }

    sc->rc = rc;
    sc->script = script;
    sc->fn = fn;
    sc->privdata = privdata;
    sc->argc = argc + 2;
    sc->argv = cargv;
    sc->argvlen = cargvlen;
    sc->reloaded = 0;

    sc->argv[0] = "EVALSHA";
    sc->argvlen[0] = sizeof("EVALSHA") - 1;
    sc->argv[1] = chat_script_sha(script);
    sc->argvlen[1] = 40;

    if (ngx_chat_redis_command(rc, ngx_chat_redis_script_done, sc, sc->argc,
                               sc->argv, sc->argvlen)
        != NGX_OK)
    {
        ngx_free(sc);
        return NGX_ERROR;
    }

    return NGX_OK;
}


static void
ngx_chat_redis_script_done(redisAsyncContext *ac, void *reply, void *privdata)
{
    redisReply               *rr = reply;
    const char               *load[3];
    ngx_chat_redis_t         *node;
    ngx_chat_redis_script_t  *sc = privdata;

    if (rr != NULL && rr->type == REDIS_REPLY_ERROR && !sc->reloaded
        && chat_script_noscript(rr->str, rr->len))
    {
        /*
         * loaded, then run again on the same connection, in order: the
         * one that answered (on a cluster, the master that said
         * NOSCRIPT, a link, which sends as it is)
         */
        node = ac->data;
        sc->reloaded = 1;
        load[0] = "SCRIPT";
        load[1] = "LOAD";
        load[2] = sc->script->text;

        ngx_log_error(NGX_LOG_INFO, sc->rc->log, 0,
                      "chat redis %s: loading the %s script on %s:%d",
                      sc->rc->name, sc->script->name,
                      ngx_chat_redis_host(node), ngx_chat_redis_port(node));

        if (ngx_chat_redis_command(node, NULL, NULL, 3, load, NULL)
            == NGX_OK
            && ngx_chat_redis_command(node, ngx_chat_redis_script_done, sc,
                                      sc->argc, sc->argv, sc->argvlen)
               == NGX_OK)
        {
            return;
        }
    }

    if (sc->fn != NULL) {
        sc->fn(ac, reply, sc->privdata);
    }

    ngx_free(sc);
}


/* stream readers */

ngx_int_t
ngx_chat_redis_xread(ngx_chat_redis_t *rc, redisCallbackFn *fn,
    const char *count, const char *block_ms, const char *key,
    const char *last_id)
{
    ngx_uint_t   i;
    size_t       argvlen[8];
    const char  *argv[8];

    argv[0] = "XREAD";
    argv[1] = "COUNT";
    argv[2] = count;
    argv[3] = "BLOCK";
    argv[4] = block_ms;
    argv[5] = "STREAMS";
    argv[6] = key;
    argv[7] = last_id;

    for (i = 0; i < 8; i++) {
        argvlen[i] = ngx_strlen(argv[i]);
    }

    return ngx_chat_redis_command(rc, fn, NULL, 8, argv, argvlen);
}


void
ngx_chat_redis_xread_entries(redisReply *rr, char *last_id, size_t size,
    ngx_chat_redis_entry_pt fn, void *data)
{
    size_t       i;
    redisReply  *entries, *entry;

    /* [[stream, [[id, [field, value, ...]], ...]]] or nil on timeout */
    if (rr == NULL || rr->type != REDIS_REPLY_ARRAY || rr->elements != 1
        || rr->element[0]->type != REDIS_REPLY_ARRAY
        || rr->element[0]->elements != 2
        || rr->element[0]->element[1]->type != REDIS_REPLY_ARRAY)
    {
        return;
    }

    entries = rr->element[0]->element[1];

    for (i = 0; i < entries->elements; i++) {
        entry = entries->element[i];

        if (entry->type != REDIS_REPLY_ARRAY || entry->elements != 2
            || entry->element[0]->type != REDIS_REPLY_STRING
            || entry->element[0]->len >= size)
        {
            continue;
        }

        ngx_memcpy(last_id, entry->element[0]->str, entry->element[0]->len);
        last_id[entry->element[0]->len] = '\0';

        fn(entry->element[1], data);
    }
}


/* A refused AUTH: say why, and start over (with backoff) rather than let
 * every command fail with NOAUTH. */
static void
ngx_chat_redis_authed(redisAsyncContext *ac, void *reply, void *privdata)
{
    redisReply        *rr = reply;
    ngx_chat_redis_t  *rc;

    rc = ac->data;

    if (rr == NULL || rr->type != REDIS_REPLY_ERROR) {
        return;
    }

    ngx_log_error(NGX_LOG_ERR, rc->log, 0,
                  "chat redis %s: AUTH refused by %s:%d: %s (check "
                  "chat_redis_user and chat_redis_password_file)",
                  rc->name, ngx_chat_redis_host(rc), ngx_chat_redis_port(rc),
                  rr->str);

    redisAsyncDisconnect(ac);
}
