/*
 * ngx_chat_lanes.h: the edge's view of the lanes (chat_lanes.h): which
 * stream a command goes to, how long to wait for it, and whether its lane
 * can take it now.  See ngx_chat_lanes.c.
 */

#ifndef NGX_CHAT_LANES_H
#define NGX_CHAT_LANES_H

#include <ngx_config.h>
#include <ngx_core.h>

#include "chat_lanes.h"
#include "ngx_chat_module.h"


/* The lanes of a gateway's Redis (and its backend); NULL when out of
 * memory.  Every call below takes a gateway's (NULL: none, the lane
 * takes everything and is unknown). */
ngx_chat_lanes_t *ngx_chat_lanes_create(ngx_cycle_t *cycle,
    ngx_chat_gateway_t *gw);
void ngx_chat_lanes_stop(ngx_chat_lanes_t *l);

/* The stream key of lane's shard, NUL-terminated; NULL before init. */
const char *ngx_chat_lanes_stream(ngx_chat_lanes_t *l, chat_lane_t lane,
    ngx_uint_t shard);

/*
 * Whether lane takes one more command now.  NGX_OK, with *timeout set to
 * how long to wait for its answer (counted as sent); NGX_BUSY, with
 * *retry_after set to the seconds to tell the client; or NGX_ABORT (with
 * *retry_after too) when the lane's pool does not agree with this edge on
 * shards or the secret: refused until it does.
 */
ngx_int_t ngx_chat_lanes_admit(ngx_chat_lanes_t *l, chat_lane_t lane,
    ngx_msec_t *timeout, time_t *retry_after);

/* What this worker last knew of lane: its depth (as Redis told, plus our
 * own sends since) and its queue bound (0: none known), how long its
 * oldest unread command had waited (ms) and its wait bound (0: none
 * known).  NGX_OK, or NGX_DECLINED before the first answer from Redis. */
ngx_int_t ngx_chat_lanes_view(ngx_chat_lanes_t *l, chat_lane_t lane,
    int64_t *depth, int64_t *queue, int64_t *waited, int64_t *wait);

/* 1 while lane's pool disagrees with this edge (ngx_chat_lanes.c) */
ngx_uint_t ngx_chat_lanes_disagree(ngx_chat_lanes_t *l, chat_lane_t lane);

/* 1 while some lane's pool publishes another presence TTL than this
 * edge's chat_presence_ttl (warned, not refused) */
ngx_uint_t ngx_chat_lanes_presence_ttl_disagrees(ngx_chat_lanes_t *l);

#endif /* NGX_CHAT_LANES_H */
