/*
 * chat_protocol.h: the command bus contract between the edge (nginx module)
 * and the backend worker pool.  Both sides include this one header so a
 * field name can only be spelled one way.  It has no nginx dependency.
 *
 * Commands: the edge XADDs one entry to a command stream.  Every entry is a
 * flat list of field/value pairs:
 *
 *   v     protocol version, "1"
 *   key   idempotency key, unique per logical command ("u<uid>:<client key>"
 *         when the client sent Idempotency-Key, else "g<gateway>:<req>")
 *   op    operation name, e.g. "auth.register"
 *   uid   verified user id from the token, decimal; "0" when anonymous
 *   role  "user", "admin", "carrier" (chat_role_name), or "" when
 *         anonymous
 *   gw    the reply stream key of the gateway that wants the answer
 *   req   the gateway's request id, decimal, echoed in the reply
 *   ts    milliseconds since the epoch when the edge queued the command
 *   body  the JSON request body (already checked well-formed by the edge)
 *
 * Replies: a worker XADDs to the stream named by "gw" an entry with
 *
 *   req     the request id from the command
 *   status  HTTP status code, decimal
 *   body    JSON response body; errors are {"error":{"code","message"}}
 *
 * and refreshes the reply stream's TTL, so streams of gateways that died go
 * away by themselves.
 *
 * Events: after a commit, a worker fans an event out ONCE PER GATEWAY (not
 * once per recipient) by XADDing to that gateway's stream an entry with
 *
 *   ev      the event, a complete JSON text such as
 *           {"type":"message","message":{...}}; the edge sends it verbatim
 *           as one WebSocket text frame
 *   uids    comma-separated decimal ids of the recipients that gateway
 *           serves, e.g. "12,40,7"
 *
 * and no "req".  The gateway delivers ev to every local connection of
 * every listed user (all their devices, the sender's included).
 *
 * Who is online where: the edge keeps, for every user with at least one
 * live connection on that gateway, the hash CHAT_ONLINE_PREFIX "<uid>}"
 * field <gateway reply stream key> = "<unix_ms>" (Redis' clock) refreshed
 * every chat_presence_ttl / 3, with the key's TTL chat_presence_ttl, and
 * HDELs its field when the user's last local connection closes (see
 * chat_scripts.c for the presence keys written alongside).  A worker
 * fanning out reads the members' hashes (pipelined HGETALL) and sends to
 * the fields the fan-out rule (chat_online.h) counts; the typing script
 * applies the same rule in Lua.  CHAT_ONLINE_REFRESH_MS is the refresh
 * used before the configuration is known.
 *
 * Worker liveness: every worker HSETs CHAT_WORKERS_KEY field <consumer> to
 * "<unix_ms>:<pg>" once a second, <pg> being 1 when its PostgreSQL
 * connection works, 0 otherwise.  The edge's health endpoint reads it.
 */

#ifndef CHAT_PROTOCOL_H
#define CHAT_PROTOCOL_H

#include <string.h>

#include "chat_keys.h"
#include "chat_online.h"

#define CHAT_PROTOCOL_VERSION   "1"

/* every Redis key, stream and field name: chat_keys.h; which online
 * fields an event goes to: chat_online.h */

/*
 * Worker figures: with every heartbeat a worker HSETs CHAT_STATS_KEY field
 * <consumer> to its counters since it started, decimal numbers separated
 * by single spaces (backend/engine/stats.c writes them, the edge's
 * `chat_metrics cluster` reads them):
 *
 *   v1 <lane> <commands> <failed> <batches> <batch_commands>
 *      <commit_count> <commit_sum_ms> <commit buckets...>
 *      <call_count> <call_sum_ms> <call buckets...>
 *
 * with CHAT_LATENCY_NBOUNDS + 1 buckets each (not cumulative; the last is
 * +Inf).  The field goes when the heartbeat's does.
 */
#define CHAT_STATS_VERSION      "v1"

/* upper bounds of every latency histogram's buckets, in milliseconds
 * (exported in seconds) */
#define CHAT_LATENCY_BOUNDS_MS                                                \
    1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000
#define CHAT_LATENCY_NBOUNDS    13

/* a worker whose heartbeat is older than this counts as dead */
#define CHAT_WORKER_STALE_MS    10000

/* the longest request id (CHAT_F_RID) a command may carry */
#define CHAT_MAX_RID_LEN  64

/* card details a checkout's payment must not carry: the browser tokenizes
 * the card with the payment processor and sends {token}.  The edge
 * refuses them before anything is queued, the worker again for a command
 * that did not come through the edge; both answer 400 with this code and
 * message. */
#define CHAT_CARD_FIELDS        "card_number", "number", "exp_month",       \
                                "exp_year", "cvc", "card"
#define CHAT_CARD_REFUSED_CODE  "card_data_not_accepted"
#define CHAT_CARD_REFUSED_TEXT  "card details are not accepted: tokenize "  \
                                "the card with the payment processor (GET " \
                                "/api/v1/payments/config names it) and "    \
                                "send payment: {token}"

/* size limits both sides enforce */
#define CHAT_MAX_KEY_LEN    200
#define CHAT_MAX_OP_LEN     64

/*
 * The roles a token, a sign-in session and a command may carry: "user",
 * "admin", and "carrier" (the account a delivery carrier's webhook signs
 * in with: it may report deliveries and nothing else).  Returns the
 * role's own spelling (a string constant) for the len bytes at p, or NULL
 * for anything else.  The one list, read by the token code, the edge's
 * sessions and both ends of the envelope.
 */
static inline const char *
chat_role_name(const char *p, size_t len)
{
    static const char *const  roles[] = { "user", "admin", "carrier" };
    size_t                    i;

    for (i = 0; i < sizeof(roles) / sizeof(roles[0]); i++) {
        if (strlen(roles[i]) == len && memcmp(roles[i], p, len) == 0) {
            return roles[i];
        }
    }

    return NULL;
}

#endif /* CHAT_PROTOCOL_H */
