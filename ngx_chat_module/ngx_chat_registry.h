/*
 * ngx_chat_registry.h: who is connected to this nginx worker, per user.
 */

#ifndef NGX_CHAT_REGISTRY_H
#define NGX_CHAT_REGISTRY_H

#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_chat_bus.h"


typedef struct ngx_chat_client_s  ngx_chat_client_t;

/*
 * Hands one event (a complete JSON text) to a client.  It must not remove
 * any client from the registry synchronously: a client that has to go
 * (its queue overflowed, say) schedules its own close.
 */
typedef void (*ngx_chat_deliver_pt)(ngx_chat_client_t *client, u_char *event,
    size_t len);

/* The session sid (len bytes) of the client's user was signed out: a
 * client of that session ends itself (from a safe place, as above). */
typedef void (*ngx_chat_revoke_pt)(ngx_chat_client_t *client, u_char *sid,
    size_t len);


/* One live endpoint of a user: a WebSocket, later a long-poll session. */
struct ngx_chat_client_s {
    ngx_queue_t           queue;        /* in its user's list */
    ngx_chat_registry_t  *registry;     /* its gateway's (set before add) */
    int64_t               uid;
    ngx_chat_deliver_pt   deliver;
    ngx_chat_revoke_pt    revoke;       /* NULL: not tied to a session */
    void                 *data;
};


/* A gateway's registry (one per Redis endpoint: user ids are an
 * application's own); NULL when out of memory. */
ngx_chat_registry_t *ngx_chat_registry_create(ngx_cycle_t *cycle,
    ngx_chat_gateway_t *gw);
void ngx_chat_registry_stop(ngx_chat_registry_t *reg);

/* The first client of a user announces the user online in the Redis of
 * client->registry's gateway. */
ngx_int_t ngx_chat_registry_add(ngx_chat_client_t *client);

/* The last client of a user leaving withdraws the announcement. */
void ngx_chat_registry_remove(ngx_chat_client_t *client);

/* Delivers event to every local client of every user in the csv list. */
void ngx_chat_registry_deliver(ngx_chat_registry_t *reg, u_char *uids,
    size_t uids_len, u_char *event, size_t len);

/* Tells every local client of uid that the session sid was revoked. */
void ngx_chat_registry_revoke(ngx_chat_registry_t *reg, int64_t uid,
    u_char *sid, size_t len);

/* Re-announces every local user (after Redis came back, say). */
void ngx_chat_registry_announce_all(ngx_chat_registry_t *reg);

/* Number of clients on this worker, all gateways, for logs and metrics. */
ngx_uint_t ngx_chat_registry_clients(void);

#endif /* NGX_CHAT_REGISTRY_H */
