/*
 * chat_lanes.c: which lane an operation belongs to, the lanes' stream
 * names and the limits the backend publishes for the edge.  See
 * chat_lanes.h.
 *
 * The table is the one place an operation's lane is written down: the
 * edge routes by it and the backend's pools read the streams it names.
 * Reads are the default so that a new read-only operation cannot land on
 * a lane that is sized for something else; every writing operation is
 * listed.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat_lanes.h"
#include "chat_protocol.h"


static const char *const  chat_lane_names[CHAT_LANE_COUNT] = {
    "chat", "read", "auth", "orders", "admin"
};

typedef struct {
    const char   *op;
    chat_lane_t   lane;
} chat_lane_op_t;

static const chat_lane_op_t  chat_lane_ops[] = {
    /* chat writes: short transactions, batched, latency matters most */
    { "msg.send", CHAT_LANE_CHAT },
    { "msg.edit", CHAT_LANE_CHAT },
    { "msg.delete", CHAT_LANE_CHAT },
    { "conv.create", CHAT_LANE_CHAT },
    { "conv.member.add", CHAT_LANE_CHAT },
    { "conv.member.remove", CHAT_LANE_CHAT },
    { "conv.read", CHAT_LANE_CHAT },
    { "conv.delivered", CHAT_LANE_CHAT },
    { "conv.mute", CHAT_LANE_CHAT },
    { "conv.accept", CHAT_LANE_CHAT },
    { "user.block", CHAT_LANE_CHAT },
    { "user.unblock", CHAT_LANE_CHAT },
    /* recording an upload the edge stored (media.get, a download's
     * check, is a read) */
    { "media.upload", CHAT_LANE_CHAT },

    /* scrypt: about 0.2 s of one core each */
    { "auth.register", CHAT_LANE_AUTH },
    { "auth.login", CHAT_LANE_AUTH },

    /* the shop's writes; the checkout waits on the payment processor */
    { "cart.item.put", CHAT_LANE_ORDERS },
    { "cart.item.delete", CHAT_LANE_ORDERS },
    { "order.checkout", CHAT_LANE_ORDERS },
    { "catalog.review.create", CHAT_LANE_ORDERS },

    /* the back office, the refund (a processor call) included */
    { "admin.book.create", CHAT_LANE_ADMIN },
    { "admin.book.update", CHAT_LANE_ADMIN },
    { "admin.book.delete", CHAT_LANE_ADMIN },
    { "admin.warehouse.create", CHAT_LANE_ADMIN },
    { "admin.warehouse.list", CHAT_LANE_ADMIN },
    { "admin.inventory.set", CHAT_LANE_ADMIN },
    { "admin.inventory.adjust", CHAT_LANE_ADMIN },
    { "admin.order.list", CHAT_LANE_ADMIN },
    { "admin.order.ship", CHAT_LANE_ADMIN },
    { "admin.order.refund", CHAT_LANE_ADMIN },
    /* a cover is resized in the request: image work stays here */
    { "admin.book.cover", CHAT_LANE_ADMIN },
    { "admin.order.deliver", CHAT_LANE_ADMIN },
    { "carrier.delivery", CHAT_LANE_ADMIN },
    { "admin.inventory.book", CHAT_LANE_ADMIN },
    { "admin.category.create", CHAT_LANE_ADMIN },
    { "admin.category.update", CHAT_LANE_ADMIN },
    { "admin.author.create", CHAT_LANE_ADMIN },
    { "admin.author.update", CHAT_LANE_ADMIN },
};


const char *
chat_lane_name(unsigned lane)
{
    return lane < CHAT_LANE_COUNT ? chat_lane_names[lane] : NULL;
}


int
chat_lane_by_name(const char *name, size_t len)
{
    int  i;

    for (i = 0; i < CHAT_LANE_COUNT; i++) {
        if (strlen(chat_lane_names[i]) == len
            && memcmp(chat_lane_names[i], name, len) == 0)
        {
            return i;
        }
    }

    return -1;
}


chat_lane_t
chat_lane_of_op(const char *op, size_t len)
{
    size_t  i;

    for (i = 0; i < sizeof(chat_lane_ops) / sizeof(chat_lane_ops[0]); i++) {
        if (strlen(chat_lane_ops[i].op) == len
            && memcmp(chat_lane_ops[i].op, op, len) == 0)
        {
            return chat_lane_ops[i].lane;
        }
    }

    return CHAT_LANE_READ;
}


size_t
chat_lane_stream(char *buf, size_t size, unsigned lane, unsigned shard)
{
    int  n;

    if (lane >= CHAT_LANE_COUNT) {
        return 0;
    }

    n = snprintf(buf, size, CHAT_CMD_STREAM_PREFIX "%s:{%u}",
                 chat_lane_names[lane], shard);

    return (n > 0 && (size_t) n < size) ? (size_t) n : 0;
}


size_t
chat_lane_limits_format(char *buf, size_t size,
    const chat_lane_limits_t *limits)
{
    int  n;

    n = snprintf(buf, size,
                 "queue=%lld timeout=%lld retry=%lld wait=%lld shards=%lld "
                 "keyid=%lld presence_ttl=%lld",
                 (long long) limits->queue, (long long) limits->timeout_ms,
                 (long long) limits->retry_s, (long long) limits->wait_ms,
                 (long long) limits->shards,
                 (long long) limits->key_id,
                 (long long) limits->presence_ttl_ms);

    return (n > 0 && (size_t) n < size) ? (size_t) n : 0;
}


int
chat_lane_limits_parse(const char *s, size_t len, chat_lane_limits_t *limits)
{
    size_t        i, j, k;
    int64_t       v, *field;
    const char   *name;

    memset(limits, 0, sizeof(*limits));

    i = 0;
    while (i < len) {
        while (i < len && s[i] == ' ') {
            i++;
        }

        name = s + i;
        for (j = i; j < len && s[j] != '=' && s[j] != ' '; j++) {
            /* the name */
        }

        if (j >= len || s[j] != '=') {
            return i < len ? -1 : 0;
        }

        k = j + 1;
        v = 0;
        if (k >= len || s[k] < '0' || s[k] > '9') {
            return -1;
        }
        while (k < len && s[k] >= '0' && s[k] <= '9') {
            if (v > (INT64_MAX - 9) / 10) {
                return -1;
            }
            v = v * 10 + (s[k] - '0');
            k++;
        }
        if (k < len && s[k] != ' ') {
            return -1;
        }

        field = NULL;
        if (j - i == 5 && memcmp(name, "queue", 5) == 0) {
            field = &limits->queue;
        } else if (j - i == 7 && memcmp(name, "timeout", 7) == 0) {
            field = &limits->timeout_ms;
        } else if (j - i == 5 && memcmp(name, "retry", 5) == 0) {
            field = &limits->retry_s;
        } else if (j - i == 4 && memcmp(name, "wait", 4) == 0) {
            field = &limits->wait_ms;
        } else if (j - i == 6 && memcmp(name, "shards", 6) == 0) {
            field = &limits->shards;
        } else if (j - i == 5 && memcmp(name, "keyid", 5) == 0) {
            field = &limits->key_id;
        } else if (j - i == 12 && memcmp(name, "presence_ttl", 12) == 0) {
            field = &limits->presence_ttl_ms;
        }

        if (field != NULL) {
            *field = v;
        }

        i = k;
    }

    return 0;
}


int
chat_lane_limits_agree(const chat_lane_limits_t *published, int64_t shards,
    int64_t key_id, char *why, size_t size)
{
    if (published->shards > 0 && published->shards != shards) {
        snprintf(why, size, "the backend reads %lld command stream shards "
                 "per lane, this edge writes %lld (chat_stream_shards and "
                 "--shards must be equal)", (long long) published->shards,
                 (long long) shards);
        return 0;
    }

    if (published->key_id > 0 && published->key_id != key_id) {
        snprintf(why, size, "the backend's token secret is not this edge's "
                 "(fingerprints %llx and %llx): its tokens would be refused "
                 "here and its sealed fields would not open",
                 (unsigned long long) published->key_id,
                 (unsigned long long) key_id);
        return 0;
    }

    if (size) {
        why[0] = '\0';
    }

    return 1;
}


int
chat_lane_presence_ttl_agree(const chat_lane_limits_t *published,
    int64_t ttl_ms, char *why, size_t size)
{
    int64_t  theirs = published->presence_ttl_ms;

    if (theirs > 0 && theirs != ttl_ms) {
        snprintf(why, size, "the backend's presence TTL is %lld ms, this "
                 "edge's %lld ms (chat_presence_ttl and CHAT_PRESENCE_TTL_MS "
                 "must be equal): users will show offline while online, or "
                 "online after they left", (long long) theirs,
                 (long long) ttl_ms);
        return 0;
    }

    if (size) {
        why[0] = '\0';
    }

    return 1;
}
