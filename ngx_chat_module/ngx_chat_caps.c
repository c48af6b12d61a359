/*
 * ngx_chat_caps.c: how many WebSockets one user may hold open on this
 * edge (chat_ws_max_per_user).
 *
 * Every live WebSocket multiplies each of its user's events (a frame per
 * connection), so without a cap one account could open hundreds and make
 * every message to it that much dearer.  The count lives in a shared
 * memory zone ("chat_caps", NGX_CHAT_CAPS_ZONE_SIZE), so it holds across
 * all of this nginx's workers: a red-black tree with one node per (user,
 * application, worker process slot) holding that worker's connections of
 * that user.  The application is the Redis endpoint of the location
 * (ngx_chat_module.h): user ids are each application's own.
 * A handshake sums the user's nodes under the zone's mutex and takes one
 * more only below the cap; a closing connection gives its one back (its
 * pool cleanup, which runs exactly once).
 *
 * Why per slot: a worker that is killed runs no cleanup, so its counts
 * would stay forever.  Its replacement takes the same slot (as the
 * metrics' gauges rely on too) and, at start, drops every node of that
 * slot; a reload's new workers have their own slots while the old ones
 * close their connections and give them back.
 *
 * What it covers: this edge only.  With several edges behind a balancer a
 * user may hold the cap on each; long-poll sessions are capped globally
 * instead, in Redis (ngx_chat_poll.c), because they live in Redis.
 *
 * What it does not do: refuse when the zone is full.  A handshake that
 * finds no room for a node is let through uncounted (logged): the cap is
 * a protection against abuse, not worth refusing honest users over.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_chat_module.h"


#define NGX_CHAT_CAPS_ZONE_SIZE  (8 * 1024 * 1024)


typedef struct {
    ngx_rbtree_node_t   node;           /* key: the user id */
    ngx_uint_t          app;            /* the endpoint's index */
    ngx_int_t           slot;           /* ngx_process_slot of the worker */
    ngx_uint_t          count;          /* its open WebSockets of the user */
} ngx_chat_caps_node_t;


typedef struct {
    ngx_rbtree_t        rbtree;
    ngx_rbtree_node_t   sentinel;
} ngx_chat_caps_sh_t;


static ngx_int_t ngx_chat_caps_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
static void ngx_chat_caps_insert(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel);
static ngx_chat_caps_node_t *ngx_chat_caps_first(int64_t uid);


static ngx_str_t           ngx_chat_caps_name = ngx_string("chat_caps");
static ngx_slab_pool_t    *ngx_chat_caps_shpool;
static ngx_chat_caps_sh_t *ngx_chat_caps_sh;


/* From init_main_conf, like the metrics zone. */
ngx_int_t
ngx_chat_caps_zone(ngx_conf_t *cf)
{
    ngx_shm_zone_t  *shm_zone;

    shm_zone = ngx_shared_memory_add(cf, &ngx_chat_caps_name,
                                     NGX_CHAT_CAPS_ZONE_SIZE,
                                     &ngx_chat_module);
    if (shm_zone == NULL) {
        return NGX_ERROR;
    }

    shm_zone->init = ngx_chat_caps_init_zone;

    return NGX_OK;
}


static ngx_int_t
ngx_chat_caps_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_slab_pool_t     *shpool;
    ngx_chat_caps_sh_t  *sh;

    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;
    ngx_chat_caps_shpool = shpool;

    if (data) {
        /* a reload: the old workers' connections are still counted */
        shm_zone->data = data;
        ngx_chat_caps_sh = data;
        return NGX_OK;
    }

    sh = ngx_slab_alloc(shpool, sizeof(ngx_chat_caps_sh_t));
    if (sh == NULL) {
        return NGX_ERROR;
    }

    ngx_rbtree_init(&sh->rbtree, &sh->sentinel, ngx_chat_caps_insert);

    shpool->log_nomem = 0;      /* a full zone is handled (and logged) here */

    shm_zone->data = sh;
    ngx_chat_caps_sh = sh;

    return NGX_OK;
}


/* nodes are ordered by (user, slot): a user's nodes are neighbours */
static void
ngx_chat_caps_insert(ngx_rbtree_node_t *temp, ngx_rbtree_node_t *node,
    ngx_rbtree_node_t *sentinel)
{
    ngx_rbtree_node_t  **p;

    for ( ;; ) {

        if (node->key != temp->key) {
            p = (node->key < temp->key) ? &temp->left : &temp->right;

        } else {
            p = (((ngx_chat_caps_node_t *) node)->slot
                 < ((ngx_chat_caps_node_t *) temp)->slot)
                ? &temp->left : &temp->right;
        }

        if (*p == sentinel) {
            break;
        }

        temp = *p;
    }

    *p = node;
    node->parent = temp;
    node->left = sentinel;
    node->right = sentinel;
    ngx_rbt_red(node);
}


/* The user's first node (lowest slot), or NULL.  Under the mutex. */
static ngx_chat_caps_node_t *
ngx_chat_caps_first(int64_t uid)
{
    ngx_rbtree_key_t    key;
    ngx_rbtree_node_t  *node, *sentinel, *first;

    key = (ngx_rbtree_key_t) uid;
    node = ngx_chat_caps_sh->rbtree.root;
    sentinel = ngx_chat_caps_sh->rbtree.sentinel;
    first = NULL;

    while (node != sentinel) {

        if (node->key < key) {
            node = node->right;
            continue;
        }

        if (node->key == key) {
            first = node;
        }

        node = node->left;
    }

    return (ngx_chat_caps_node_t *) first;
}


/*
 * Takes one of max WebSockets of user uid of application app (an
 * endpoint's index).  NGX_OK: taken (give it back with
 * ngx_chat_caps_ws_release); NGX_DECLINED: the user has max open on this
 * edge; NGX_AGAIN: not counted (no zone, or no room in it), let through.
 */
ngx_int_t
ngx_chat_caps_ws_acquire(ngx_uint_t app, int64_t uid, ngx_uint_t max,
    ngx_log_t *log)
{
    ngx_uint_t             total;
    ngx_rbtree_node_t     *n;
    ngx_chat_caps_node_t  *cn, *mine;

    if (ngx_chat_caps_sh == NULL) {
        return NGX_AGAIN;
    }

    total = 0;
    mine = NULL;

    ngx_shmtx_lock(&ngx_chat_caps_shpool->mutex);

    for (cn = ngx_chat_caps_first(uid);
         cn != NULL && cn->node.key == (ngx_rbtree_key_t) uid;
         n = ngx_rbtree_next(&ngx_chat_caps_sh->rbtree, &cn->node),
         cn = (ngx_chat_caps_node_t *) n)
    {
        if (cn->app != app) {
            continue;
        }

        total += cn->count;
        if (cn->slot == ngx_process_slot) {
            mine = cn;
        }
    }

    if (total >= max) {
        ngx_shmtx_unlock(&ngx_chat_caps_shpool->mutex);
        return NGX_DECLINED;
    }

    if (mine != NULL) {
        mine->count++;
        ngx_shmtx_unlock(&ngx_chat_caps_shpool->mutex);
        return NGX_OK;
    }

    mine = ngx_slab_alloc_locked(ngx_chat_caps_shpool,
                                 sizeof(ngx_chat_caps_node_t));
    if (mine == NULL) {
        ngx_shmtx_unlock(&ngx_chat_caps_shpool->mutex);
        ngx_log_error(NGX_LOG_WARN, log, 0,
                      "chat caps: zone \"chat_caps\" is full, user %L's "
                      "WebSocket is not counted", uid);
        return NGX_AGAIN;
    }

    mine->node.key = (ngx_rbtree_key_t) uid;
    mine->app = app;
    mine->slot = ngx_process_slot;
    mine->count = 1;
    ngx_rbtree_insert(&ngx_chat_caps_sh->rbtree, &mine->node);

    ngx_shmtx_unlock(&ngx_chat_caps_shpool->mutex);

    return NGX_OK;
}


/* Gives back one WebSocket that ngx_chat_caps_ws_acquire took. */
void
ngx_chat_caps_ws_release(ngx_uint_t app, int64_t uid)
{
    ngx_rbtree_node_t     *n;
    ngx_chat_caps_node_t  *cn;

    if (ngx_chat_caps_sh == NULL) {
        return;
    }

    ngx_shmtx_lock(&ngx_chat_caps_shpool->mutex);

    for (cn = ngx_chat_caps_first(uid);
         cn != NULL && cn->node.key == (ngx_rbtree_key_t) uid;
         n = ngx_rbtree_next(&ngx_chat_caps_sh->rbtree, &cn->node),
         cn = (ngx_chat_caps_node_t *) n)
    {
        if (cn->slot != ngx_process_slot || cn->app != app) {
            continue;
        }

        if (--cn->count == 0) {
            ngx_rbtree_delete(&ngx_chat_caps_sh->rbtree, &cn->node);
            ngx_slab_free_locked(ngx_chat_caps_shpool, cn);
        }

        break;
    }

    ngx_shmtx_unlock(&ngx_chat_caps_shpool->mutex);
}


/* A new worker owns its slot: a killed predecessor's counts go. */
void
ngx_chat_caps_init_process(void)
{
    ngx_rbtree_node_t     *node, *next, *sentinel;
    ngx_chat_caps_node_t  *cn;

    if (ngx_chat_caps_sh == NULL) {
        return;
    }

    ngx_shmtx_lock(&ngx_chat_caps_shpool->mutex);

    sentinel = ngx_chat_caps_sh->rbtree.sentinel;
    node = ngx_chat_caps_sh->rbtree.root;

    if (node != sentinel) {
        node = ngx_rbtree_min(node, sentinel);
    }

    while (node != sentinel && node != NULL) {
        next = ngx_rbtree_next(&ngx_chat_caps_sh->rbtree, node);
        cn = (ngx_chat_caps_node_t *) node;

        if (cn->slot == ngx_process_slot) {
            ngx_rbtree_delete(&ngx_chat_caps_sh->rbtree, node);
            ngx_slab_free_locked(ngx_chat_caps_shpool, cn);
        }

        node = next;
    }

    ngx_shmtx_unlock(&ngx_chat_caps_shpool->mutex);
}
