/*
 * ngx_chat_registry.c: the map from user id to this worker's live clients
 * (WebSocket connections now, long-poll sessions later), and this worker's
 * entries in Redis' online registry (chat_protocol.h).
 *
 * Workers fan an event out once per gateway with the list of recipients
 * that gateway serves; the registry turns that list into connections.
 * There is one registry per gateway (per Redis endpoint): user ids are an
 * application's own, so user 7 of one application is not user 7 of the
 * other, and an event read from one Redis only reaches the clients that
 * connected through a location using that Redis.  A
 * user is one red-black tree node holding a queue of clients; the node
 * lives from the user's first local client to the last.
 *
 * Redis learns who is here from three moments: a user's first client,
 * a timer that refreshes every local user well within the TTL
 * (chat_presence_ttl / 3), and the user's last client leaving.  The
 * refresh is spread over its interval, a sixteenth of the users (by user
 * id) every interval / 16: announcing 10,000 users in one go queued every
 * message's XADD behind 10,000 scripts and set the p99 of a big stack.  What is
 * written then, and how it becomes presence events, is
 * ngx_chat_presence.c's.  If this worker dies without withdrawing, its
 * field goes stale and the backend's presence sweeper declares the user
 * offline; if Redis restarts and loses the hash, the next refresh (or the
 * reconnect, which re-announces everyone at once) puts it back.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>

#include "chat_protocol.h"
#include "ngx_chat_bus.h"
#include "ngx_chat_module.h"
#include "ngx_chat_registry.h"


typedef struct {
    ngx_rbtree_node_t   node;           /* key: user id */
    ngx_queue_t         clients;
} ngx_chat_user_t;


struct ngx_chat_registry_s {
    ngx_rbtree_t         users;
    ngx_rbtree_node_t    sentinel;
    ngx_event_t          refresh;
    ngx_uint_t           refresh_slice;  /* which sixteenth is next */
    ngx_uint_t           nclients;
    ngx_log_t           *log;
    ngx_chat_gateway_t  *gw;             /* whose Redis hears of them */
};


static ngx_chat_user_t *ngx_chat_registry_find(ngx_chat_registry_t *reg,
    int64_t uid);
static void ngx_chat_registry_announce(ngx_chat_registry_t *reg,
    int64_t uid, ngx_uint_t online);
static void ngx_chat_registry_refresh(ngx_event_t *ev);
static ngx_msec_t ngx_chat_registry_refresh_step(void);


#define NGX_CHAT_REFRESH_SLICES  16


ngx_chat_registry_t *
ngx_chat_registry_create(ngx_cycle_t *cycle, ngx_chat_gateway_t *gw)
{
    ngx_chat_registry_t  *reg;

    reg = ngx_pcalloc(cycle->pool, sizeof(ngx_chat_registry_t));
    if (reg == NULL) {
        return NULL;
    }

    ngx_rbtree_init(&reg->users, &reg->sentinel, ngx_rbtree_insert_value);
    reg->log = cycle->log;
    reg->gw = gw;

    reg->refresh.handler = ngx_chat_registry_refresh;
    reg->refresh.data = reg;
    reg->refresh.log = cycle->log;
    reg->refresh.cancelable = 1;
    ngx_add_timer(&reg->refresh, ngx_chat_registry_refresh_step());

    return reg;
}


void
ngx_chat_registry_stop(ngx_chat_registry_t *reg)
{
    if (reg != NULL && reg->refresh.timer_set) {
        ngx_del_timer(&reg->refresh);
    }
}


ngx_int_t
ngx_chat_registry_add(ngx_chat_client_t *client)
{
    ngx_chat_user_t      *user;
    ngx_chat_registry_t  *reg = client->registry;

    if (reg == NULL) {
        return NGX_ERROR;
    }

    user = ngx_chat_registry_find(reg, client->uid);

    if (user == NULL) {
        user = ngx_alloc(sizeof(ngx_chat_user_t), reg->log);
        if (user == NULL) {
            return NGX_ERROR;
        }

        ngx_memzero(user, sizeof(ngx_chat_user_t));
        user->node.key = (ngx_rbtree_key_t) client->uid;
        ngx_queue_init(&user->clients);
        ngx_rbtree_insert(&reg->users, &user->node);

        ngx_chat_registry_announce(reg, client->uid, 1);
    }

    ngx_queue_insert_tail(&user->clients, &client->queue);
    reg->nclients++;

    return NGX_OK;
}


void
ngx_chat_registry_remove(ngx_chat_client_t *client)
{
    ngx_chat_user_t      *user;
    ngx_chat_registry_t  *reg = client->registry;

    if (reg == NULL || client->queue.next == NULL) {
        return;
    }

    ngx_queue_remove(&client->queue);
    client->queue.next = NULL;
    reg->nclients--;

    user = ngx_chat_registry_find(reg, client->uid);
    if (user == NULL || !ngx_queue_empty(&user->clients)) {
        return;
    }

    ngx_rbtree_delete(&reg->users, &user->node);
    ngx_free(user);

    ngx_chat_registry_announce(reg, client->uid, 0);
}


void
ngx_chat_registry_deliver(ngx_chat_registry_t *reg, u_char *uids,
    size_t uids_len, u_char *event, size_t len)
{
    u_char             *p, *end, *comma;
    ngx_int_t           uid;
    ngx_queue_t        *q;
    ngx_chat_user_t    *user;
    ngx_chat_client_t  *client;

    end = uids + uids_len;

    for (p = uids; p < end; p = comma + 1) {
        comma = ngx_strlchr(p, end, ',');
        if (comma == NULL) {
            comma = end;
        }

        uid = ngx_atoi(p, comma - p);
        if (uid <= 0) {
            continue;
        }

        user = ngx_chat_registry_find(reg, uid);
        if (user == NULL) {
            /* left since the worker looked: the client resyncs later */
            continue;
        }

        for (q = ngx_queue_head(&user->clients);
             q != ngx_queue_sentinel(&user->clients);
             q = ngx_queue_next(q))
        {
            client = ngx_queue_data(q, ngx_chat_client_t, queue);
            client->deliver(client, event, len);
        }
    }
}


void
ngx_chat_registry_revoke(ngx_chat_registry_t *reg, int64_t uid, u_char *sid,
    size_t len)
{
    ngx_queue_t        *q;
    ngx_chat_user_t    *user;
    ngx_chat_client_t  *client;

    if (reg == NULL) {
        return;
    }

    user = ngx_chat_registry_find(reg, uid);
    if (user == NULL) {
        return;
    }

    for (q = ngx_queue_head(&user->clients);
         q != ngx_queue_sentinel(&user->clients);
         q = ngx_queue_next(q))
    {
        client = ngx_queue_data(q, ngx_chat_client_t, queue);

        if (client->revoke) {
            client->revoke(client, sid, len);
        }
    }
}


void
ngx_chat_registry_announce_all(ngx_chat_registry_t *reg)
{
    ngx_rbtree_node_t  *node, *root, *sentinel;

    if (reg == NULL) {
        return;
    }

    root = reg->users.root;
    sentinel = reg->users.sentinel;

    if (root == sentinel) {
        return;
    }

    for (node = ngx_rbtree_min(root, sentinel);
         node;
         node = ngx_rbtree_next(&reg->users, node))
    {
        ngx_chat_registry_announce(reg, (int64_t) node->key, 1);
    }
}


ngx_uint_t
ngx_chat_registry_clients(void)
{
    ngx_uint_t           i, n, sum;
    ngx_chat_gateway_t  *gws;

    gws = ngx_chat_bus_gateways(&n);
    sum = 0;

    for (i = 0; i < n; i++) {
        sum += gws[i].registry ? gws[i].registry->nclients : 0;
    }

    return sum;
}


static ngx_chat_user_t *
ngx_chat_registry_find(ngx_chat_registry_t *reg, int64_t uid)
{
    ngx_rbtree_key_t    key;
    ngx_rbtree_node_t  *node, *sentinel;

    key = (ngx_rbtree_key_t) uid;
    node = reg->users.root;
    sentinel = reg->users.sentinel;

    while (node != sentinel) {
        if (key < node->key) {
            node = node->left;

        } else if (key > node->key) {
            node = node->right;

        } else {
            return (ngx_chat_user_t *) node;
        }
    }

    return NULL;
}


/* The user's presence in Redis: see ngx_chat_presence.c. */
static void
ngx_chat_registry_announce(ngx_chat_registry_t *reg, int64_t uid,
    ngx_uint_t online)
{
    ngx_chat_presence_announce(reg->gw, uid, online);
}


static void
ngx_chat_registry_refresh(ngx_event_t *ev)
{
    ngx_uint_t            slice;
    ngx_rbtree_node_t    *node, *root, *sentinel;
    ngx_chat_registry_t  *reg = ev->data;

    if (ngx_exiting) {
        return;
    }

    slice = reg->refresh_slice;
    reg->refresh_slice = (slice + 1) % NGX_CHAT_REFRESH_SLICES;

    root = reg->users.root;
    sentinel = reg->users.sentinel;

    if (root != sentinel) {
        for (node = ngx_rbtree_min(root, sentinel);
             node;
             node = ngx_rbtree_next(&reg->users, node))
        {
            if ((uint64_t) node->key % NGX_CHAT_REFRESH_SLICES == slice) {
                ngx_chat_registry_announce(reg, (int64_t) node->key, 1);
            }
        }
    }

    ngx_add_timer(ev, ngx_chat_registry_refresh_step());
}


/* Each user is refreshed once per interval, one slice per step. */
static ngx_msec_t
ngx_chat_registry_refresh_step(void)
{
    ngx_msec_t  step;

    step = ngx_chat_presence_refresh_interval() / NGX_CHAT_REFRESH_SLICES;

    return step ? step : 1;
}
