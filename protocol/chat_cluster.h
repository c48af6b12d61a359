/*
 * chat_cluster.h: what a Redis Cluster client must know, without a
 * connection: which slot a key hashes to, which argument of a command is
 * its first key, who owns which slot (from CLUSTER NODES) and where a
 * MOVED or ASK redirection points.
 *
 * The Redis clients themselves (the backend's engine/redis_route.c, the
 * edge's ngx_chat_redis_cluster.c) keep their connections; this file only
 * answers questions about bytes, so both sides route by the same rules
 * and the parsers can be fuzzed on their own.  See chat_cluster.c.
 *
 * Plain C, no hiredis, nginx or backend types; unit-tested
 * (test_cluster.c) and fuzzed (fuzz_cluster.c).
 */

#ifndef CHAT_CLUSTER_H
#define CHAT_CLUSTER_H

#include <stddef.h>
#include <stdint.h>

#define CHAT_CLUSTER_SLOTS      16384
#define CHAT_CLUSTER_MAX_NODES  64      /* masters in one map */
#define CHAT_CLUSTER_HOST_LEN   64      /* an address, NUL included */
#define CHAT_CLUSTER_NO_NODE    0xffff  /* a slot nobody serves */

typedef struct {
    char  host[CHAT_CLUSTER_HOST_LEN];
    int   port;
} chat_cluster_addr_t;

/* which master serves each slot: node[owner[slot]] */
typedef struct {
    chat_cluster_addr_t  node[CHAT_CLUSTER_MAX_NODES];
    int                  nodes;
    uint16_t             owner[CHAT_CLUSTER_SLOTS];
} chat_cluster_map_t;

typedef enum {
    CHAT_CLUSTER_NOT_REDIRECT = 0,
    CHAT_CLUSTER_MOVED,     /* the slot lives there now: refresh the map */
    CHAT_CLUSTER_ASK        /* this once: ASKING, then the command there */
} chat_cluster_redirect_t;

/* The slot of a key: CRC16-XMODEM of the key, or of its hash tag (the
 * bytes between the first '{' and the next '}', when not empty), mod
 * 16384.  Redis' own rule (cluster.c keyHashSlot). */
unsigned chat_cluster_slot(const char *key, size_t len);

/*
 * The index in argv of the command's first key, or -1 for a command that
 * has none (MULTI, EXEC, SCRIPT, CLUSTER, CONFIG, PING, AUTH...; EVAL and
 * EVALSHA with 0 keys).  Knows the commands whose first key is not
 * argv[1]: EVAL/EVALSHA (argv[3]), XREAD/XREADGROUP (after STREAMS),
 * XGROUP and XINFO (argv[2]).  argvlen may be NULL for C strings.
 */
int chat_cluster_key_index(int argc, const char *const *argv,
    const size_t *argvlen);

/*
 * Fills map from the text of CLUSTER NODES: one line per node, "<id>
 * <ip:port@cport[,hostname]> <flags> <master> <ping> <pong> <epoch>
 * <link> <slot>...", where a slot is "n", "a-b" or a migration note
 * "[n->-id]" / "[n-<-id]" (skipped: the owner still serves the slot and
 * redirects with ASK).  Only masters that are not failing count.  Returns
 * the number of slots served (16384 on a healthy cluster), or -1 on text
 * it does not understand or more than CHAT_CLUSTER_MAX_NODES masters.
 */
int chat_cluster_map_parse(chat_cluster_map_t *map, const char *text,
    size_t len);

/*
 * Orders n keys so that the keys of one slot are next to each other (a
 * cluster refuses a command whose keys span slots, even on one master),
 * each slot's keys in their given order and the slots in the order their
 * first key came: order[] receives a permutation of 0..n-1 and slot_of[]
 * each key's slot, in input order (both hold n).  Returns the number of
 * groups.  How a reader of many streams (the edge's long-poll watcher)
 * splits one XREAD into one per slot.
 */
size_t chat_cluster_group_by_slot(const char *const *keys,
    const size_t *lens, size_t n, size_t *order, unsigned *slot_of);

/* The index of addr in map->node, or -1. */
int chat_cluster_map_find(const chat_cluster_map_t *map, const char *host,
    int port);

/*
 * Reads an error reply "MOVED <slot> <host>:<port>" or "ASK <slot>
 * <host>:<port>" into *slot and *addr.  Anything else (another error, an
 * address that does not fit) is CHAT_CLUSTER_NOT_REDIRECT.
 */
chat_cluster_redirect_t chat_cluster_redirect_parse(const char *err,
    size_t len, unsigned *slot, chat_cluster_addr_t *addr);

#endif /* CHAT_CLUSTER_H */
