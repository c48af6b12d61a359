/*
 * ngx_chat_redis.h: one self-healing hiredis async connection living on an
 * nginx worker's event loop; on a Redis Cluster, one connection per
 * master behind the same calls, routed by slot (ngx_chat_redis_cluster.c).
 */

#ifndef NGX_CHAT_REDIS_H
#define NGX_CHAT_REDIS_H

#include <ngx_config.h>
#include <ngx_core.h>

#include <hiredis/hiredis.h>
#include <hiredis/async.h>

#include "chat_cluster.h"
#include "chat_scripts.h"


typedef struct ngx_chat_redis_s          ngx_chat_redis_t;
typedef struct ngx_chat_redis_cluster_s  ngx_chat_redis_cluster_t;

typedef void (*ngx_chat_redis_event_pt)(ngx_chat_redis_t *rc);

struct ngx_chat_redis_s {
    redisAsyncContext        *ac;           /* NULL while not connected */
    ngx_connection_t         *conn;         /* wraps ac's socket */

    const char               *name;         /* for logs: "commands", ... */
    ngx_str_t                 host;         /* NUL-terminated */
    in_port_t                 port;
    ngx_str_t                 user;           /* empty: the default user */
    ngx_str_t                 password;       /* empty: no AUTH */
    ngx_msec_t                connect_timeout;
    ngx_msec_t                stall_timeout;  /* reply overdue: reconnect */
    ngx_msec_t                idle_ping;      /* 0: never ping */

    ngx_event_t               connect_timer;
    ngx_event_t               retry_timer;
    ngx_event_t               watchdog;
    ngx_msec_t                backoff;
    ngx_msec_t                last_read;

    ngx_log_t                *log;
    void                     *data;

    ngx_chat_redis_event_pt   on_connect;     /* ready for commands */
    ngx_chat_redis_event_pt   on_disconnect;  /* may be NULL */

    /* a cluster: its map and its masters' connections (the links),
     * made when the endpoint first answers CLUSTER NODES */
    ngx_chat_redis_cluster_t *cluster;
    ngx_chat_redis_t         *parent;       /* set on a link: its owner */
    chat_cluster_addr_t       at;           /* a link's or seed's address */

    unsigned                  connected:1;  /* ready: on_connect has run */
    unsigned                  linked:1;     /* ac's socket is connected */
    unsigned                  single:1;     /* not a cluster (known) */
    unsigned                  closing:1;    /* ac is being freed */
    unsigned                  stopping:1;
};


/* Starts connecting; the connection then keeps itself up until stopped. */
void ngx_chat_redis_start(ngx_chat_redis_t *rc);

/* Drops the connection for good (worker exit); pending callbacks get NULL. */
void ngx_chat_redis_stop(ngx_chat_redis_t *rc);

/*
 * True while connected or connecting: commands can be queued.  False
 * between a lost connection and the next attempt.
 */
ngx_int_t ngx_chat_redis_usable(ngx_chat_redis_t *rc);

/*
 * Queues a command.  Returns NGX_ERROR when there is no connection or hiredis
 * refused it; then fn is never called.  Otherwise fn is called exactly
 * once, with a NULL reply if the connection drops first.
 */
ngx_int_t ngx_chat_redis_command(ngx_chat_redis_t *rc, redisCallbackFn *fn,
    void *privdata, int argc, const char **argv, const size_t *argvlen);

/*
 * Runs a shared script (chat_scripts.h) by its SHA1: EVALSHA <sha>
 * followed by argv (numkeys, keys, args).  When Redis answers NOSCRIPT
 * (its script cache is empty: first use, a restart, a failover) the
 * script is loaded (SCRIPT LOAD) and run again by SHA, once; fn sees
 * only the final answer.  Returns and calls fn as
 * ngx_chat_redis_command() does.
 */
ngx_int_t ngx_chat_redis_script(ngx_chat_redis_t *rc, chat_script_t *script,
    redisCallbackFn *fn, void *privdata, int argc, const char **argv,
    const size_t *argvlen);

/* True when the endpoint is a Redis Cluster: a command must name keys of
 * one slot (a reader of many streams splits its read by slot). */
ngx_int_t ngx_chat_redis_is_cluster(ngx_chat_redis_t *rc);

/* what a stream reader does with one entry's [field, value, ...] */
typedef void (*ngx_chat_redis_entry_pt)(redisReply *fields, void *data);

/*
 * Queues XREAD COUNT count BLOCK block_ms STREAMS key last_id (all
 * NUL-terminated) for the reader of one stream; fn gets the reply as
 * from ngx_chat_redis_command().
 */
ngx_int_t ngx_chat_redis_xread(ngx_chat_redis_t *rc, redisCallbackFn *fn,
    const char *count, const char *block_ms, const char *key,
    const char *last_id);

/*
 * Walks the entries of an XREAD reply on one stream in order: each one's
 * id goes into last_id (size bytes, NUL-terminated; an id that does not
 * fit is skipped), then fn(fields, data) runs.  A nil reply (the block
 * timed out) has none.
 */
void ngx_chat_redis_xread_entries(redisReply *rr, char *last_id, size_t size,
    ngx_chat_redis_entry_pt fn, void *data);


/*
 * Between ngx_chat_redis.c (one connection's life) and
 * ngx_chat_redis_cluster.c (the map, the links, the routing); not for
 * other callers.
 */

/* makes link a connection of parent's to addr (not yet connecting) */
void ngx_chat_redis_link_init(ngx_chat_redis_t *link,
    ngx_chat_redis_t *parent, const chat_cluster_addr_t *addr);
/* connects rc (a link: to rc->at) with AUTH queued; errors retry */
void ngx_chat_redis_open(ngx_chat_redis_t *rc);
/* queues a command on rc's own connection as it is: no routing */
ngx_int_t ngx_chat_redis_send(ngx_chat_redis_t *rc, redisCallbackFn *fn,
    void *privdata, int argc, const char **argv, const size_t *argvlen);
/* closes rc's connection; a parent's links go too; may log why */
void ngx_chat_redis_close(ngx_chat_redis_t *rc, const char *why);
/*
 * A block of head bytes (the caller's record) followed by extra + argc
 * argument pointers and lengths and a copy of argv's bytes at
 * [extra .. extra + argc) (argvlen NULL: C strings); the caller fills the
 * first extra.  What a command keeps to be sent again; ngx_free() it.
 */
void *ngx_chat_redis_argv_copy(size_t head, int extra, int argc,
    const char **argv, const size_t *argvlen, const char ***cargv,
    size_t **cargvlen, ngx_log_t *log);
/* a parent is ready: back-off reset, on_connect */
void ngx_chat_redis_ready(ngx_chat_redis_t *rc);
/* the one stall and idle-ping check, on a parent or a link */
const char *ngx_chat_redis_check(ngx_chat_redis_t *rc);

/* queues CLUSTER NODES on a parent that is not known to be single */
void ngx_chat_redis_cluster_detect(ngx_chat_redis_t *rc);
/* where a parent connects next (into rc->at; port 0: the configured
 * chat_redis): after a failure, the masters of the last map in turn */
void ngx_chat_redis_cluster_seed(ngx_chat_redis_t *rc);
/* sends a command on conn, following MOVED and ASK for parent rc */
ngx_int_t ngx_chat_redis_routed(ngx_chat_redis_t *rc,
    ngx_chat_redis_t *conn, redisCallbackFn *fn, void *privdata, int argc,
    const char **argv, const size_t *argvlen);
/* sends a command to its key's master (keyless: the parent's own) */
ngx_int_t ngx_chat_redis_cluster_command(ngx_chat_redis_t *rc,
    redisCallbackFn *fn, void *privdata, int argc, const char **argv,
    const size_t *argvlen);
void ngx_chat_redis_cluster_link_up(ngx_chat_redis_t *link);
void ngx_chat_redis_cluster_link_lost(ngx_chat_redis_t *link);
void ngx_chat_redis_cluster_close_links(ngx_chat_redis_t *rc);
const char *ngx_chat_redis_cluster_check(ngx_chat_redis_t *rc);

#endif /* NGX_CHAT_REDIS_H */
