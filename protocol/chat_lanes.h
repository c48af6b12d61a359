/*
 * chat_lanes.h: lanes, the kinds of work on the command bus, shared by the
 * edge and the backend (compiled into both, like chat_envelope.c).
 *
 * A lane is a bulkhead.  Every operation belongs to one lane; the edge
 * XADDs a command to its lane's streams, CHAT_CMD_STREAM_PREFIX "<lane>:{"
 * "<shard>}", and the backend runs a separate pool of processes per lane,
 * each reading only its own lane's streams.  Scrypt on the auth lane or a
 * slow payment processor on the orders lane therefore never holds up a
 * chat message: they queue in different streams for different processes.
 *
 * The backend is the one place a lane is configured (process count,
 * batch, concurrency, timeout, queue bound, scheduling priority; see
 * backend/engine/lanes.c).  Every worker publishes its lane's limits in the hash
 * CHAT_LANES_KEY, field <lane>, value "queue=<n> timeout=<ms> retry=<s>
 * shards=<n> keyid=<fingerprint of the token secret> presence_ttl=<ms>",
 * with its heartbeat; the edge refuses the lane (503 misconfigured) while
 * shards or keyid differ from its own (chat_lane_limits_agree), and warns
 * while the presence TTL does (chat_lane_presence_ttl_agree: presence
 * flaps or lags, nothing is lost).  The edge reads the hash with the lanes' queue
 * depths (pending + unread entries of the consumer group, ngx_chat_lanes.c) a few
 * times a second and refuses a command at once with 503 overloaded and
 * Retry-After when its lane is at its bound, instead of letting it wait
 * for the full command timeout and answering 504.
 *
 * Plain C, no nginx or backend types; unit-tested (test_lanes.c).
 */

#ifndef CHAT_LANES_H
#define CHAT_LANES_H

#include <stddef.h>
#include <stdint.h>

#include "chat_keys.h"

typedef enum {
    CHAT_LANE_CHAT = 0,     /* chat writes: messages, conversations, receipts */
    CHAT_LANE_READ,         /* reads: history, sync, lists, catalog, search */
    CHAT_LANE_AUTH,         /* sign-up and login: CPU-bound scrypt */
    CHAT_LANE_ORDERS,       /* the shop's writes: cart, checkout (payments) */
    CHAT_LANE_ADMIN,        /* back office: catalog, stock, orders */
    CHAT_LANE_COUNT
} chat_lane_t;

/* the limits a lane's pool publishes for the edge */
typedef struct {
    int64_t  queue;         /* commands waiting or running; 0: unbounded */
    int64_t  timeout_ms;    /* how long the edge waits for an answer */
    int64_t  retry_s;       /* Retry-After of an overloaded answer */

    /* what the edge must agree on (0: not published) */
    int64_t  shards;        /* command stream shards per lane */
    int64_t  key_id;        /* chat_token_key_id() of the token secret */

    /* what the edge should agree on: it warns, it does not refuse */
    int64_t  presence_ttl_ms;   /* CHAT_PRESENCE_TTL_MS */

    /* the bound in time beside queue's in commands: while the lane's
     * oldest unread command has waited this long, new ones are refused
     * too (ms; 0: none) */
    int64_t  wait_ms;
} chat_lane_limits_t;

/* "chat", "read", ...; NULL for a value out of range */
const char *chat_lane_name(unsigned lane);

/* the lane called name (len bytes), or -1 */
int chat_lane_by_name(const char *name, size_t len);

/* the lane of op (len bytes); an op the table does not know is a read */
chat_lane_t chat_lane_of_op(const char *op, size_t len);

/* Writes the lane's stream key for shard into buf ("chat:cmd:chat:{3}").
 * Returns its length, or 0 when it does not fit or lane is invalid. */
size_t chat_lane_stream(char *buf, size_t size, unsigned lane, unsigned shard);

/* "queue=<n> timeout=<ms> retry=<s> shards=<n> keyid=<n>
 * presence_ttl=<ms>" into buf; its length, or 0. */
size_t chat_lane_limits_format(char *buf, size_t size,
    const chat_lane_limits_t *limits);

/* Parses what chat_lane_limits_format wrote (fields in any order, unknown
 * ones skipped, missing ones 0).  0, or -1 when a value is not a number. */
int chat_lane_limits_parse(const char *s, size_t len,
    chat_lane_limits_t *limits);

/*
 * Whether a lane's published limits agree with the edge's own shard count
 * and secret fingerprint: 1 when they do (or were not published), else 0
 * with why (NUL-terminated, cut to size) naming what differs and both
 * values.
 */
int chat_lane_limits_agree(const chat_lane_limits_t *published,
    int64_t shards, int64_t key_id, char *why, size_t size);

/*
 * Whether a lane's published presence TTL is the edge's chat_presence_ttl:
 * 1 when it is (or was not published), else 0 with why, as above.  A
 * mismatch shows users offline while they are online (the backend's TTL
 * shorter: the edge refreshes too late) or online for too long after they
 * left (longer); it loses nothing, so the edge warns instead of refusing.
 */
int chat_lane_presence_ttl_agree(const chat_lane_limits_t *published,
    int64_t ttl_ms, char *why, size_t size);

#endif /* CHAT_LANES_H */
