/*
 * fuzz_cluster.c: libFuzzer harness for Redis Cluster's rules
 * (protocol/chat_cluster.c), which read what a Redis node sends back:
 * CLUSTER NODES text and MOVED/ASK errors.
 *
 * The input is used four ways.  Checked against the rules in
 * chat_cluster.h, from references written here:
 *   - as CLUSTER NODES text: the count returned is -1 or the number of
 *     slots with an owner, every owner is a node of the map, every node
 *     has a NUL-terminated host and a port in 1..65535, no two nodes are
 *     the same address;
 *   - as an error reply: a redirection has a slot below 16384, a port in
 *     1..65535, and formats back ("MOVED <slot> <host>:<port>") to the
 *     input;
 *   - as a key: the slot is below 16384 and is that of the hash tag a
 *     reference walk finds (or of the whole key);
 *   - as a command (arguments split at '\n'): the first key's index is
 *     -1 or an argument of the command.
 * Any breach is abort().
 */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat_cluster.h"

#define FUZZ_MAX_ARGS  32


static void
check_map(const uint8_t *data, size_t size)
{
    int                  i, k, served, owned;
    static chat_cluster_map_t  map;

    served = chat_cluster_map_parse(&map, (const char *) data, size);
    if (served < 0) {
        return;
    }

    owned = 0;
    for (i = 0; i < CHAT_CLUSTER_SLOTS; i++) {
        if (map.owner[i] == CHAT_CLUSTER_NO_NODE) {
            continue;
        }
        if (map.owner[i] >= map.nodes) {
            abort();
        }
        owned++;
    }

    if (owned != served || map.nodes > CHAT_CLUSTER_MAX_NODES) {
        abort();
    }

    for (i = 0; i < map.nodes; i++) {
        if (memchr(map.node[i].host, '\0', CHAT_CLUSTER_HOST_LEN) == NULL
            || map.node[i].host[0] == '\0'
            || map.node[i].port < 1 || map.node[i].port > 65535)
        {
            abort();
        }
        for (k = 0; k < i; k++) {
            if (map.node[k].port == map.node[i].port
                && strcmp(map.node[k].host, map.node[i].host) == 0)
            {
                abort();
            }
        }
    }
}


static void
check_redirect(const uint8_t *data, size_t size)
{
    int                       n;
    char                      back[160];
    unsigned                  slot;
    chat_cluster_addr_t       a;
    chat_cluster_redirect_t   kind;

    kind = chat_cluster_redirect_parse((const char *) data, size, &slot, &a);
    if (kind == CHAT_CLUSTER_NOT_REDIRECT) {
        return;
    }

    if (slot >= CHAT_CLUSTER_SLOTS || a.port < 1 || a.port > 65535
        || memchr(a.host, '\0', sizeof(a.host)) == NULL)
    {
        abort();
    }

    /* leading zeros in the numbers are accepted: compare loosely on
     * those, exactly otherwise */
    n = snprintf(back, sizeof(back), "%s %u %s:%d",
                 kind == CHAT_CLUSTER_MOVED ? "MOVED" : "ASK", slot, a.host,
                 a.port);
    if (n < 0 || (size_t) n > size
        || ((size_t) n == size && memcmp(back, data, size) != 0))
    {
        abort();
    }
}


static void
check_slot(const uint8_t *data, size_t size)
{
    size_t         open, close;
    unsigned       slot;
    const uint8_t  *k;
    size_t         klen;

    slot = chat_cluster_slot((const char *) data, size);
    if (slot >= CHAT_CLUSTER_SLOTS) {
        abort();
    }

    /* the reference: Redis' keyHashSlot, written out */
    k = data;
    klen = size;
    for (open = 0; open < size && data[open] != '{'; open++) {
        /* void */
    }
    if (open < size) {
        for (close = open + 1; close < size && data[close] != '}'; close++) {
            /* void */
        }
        if (close < size && close != open + 1) {
            k = data + open + 1;
            klen = close - open - 1;
        }
    }

    /* a tag holding a '{' would be tagged again when hashed alone:
     * compare those by their CRC only through the whole-key case */
    if ((k == data || memchr(k, '{', klen) == NULL)
        && chat_cluster_slot((const char *) k, klen) != slot)
    {
        abort();
    }
}


static void
check_key_index(const uint8_t *data, size_t size)
{
    int          argc, idx;
    size_t       lens[FUZZ_MAX_ARGS], at, i;
    const char  *argv[FUZZ_MAX_ARGS];

    argc = 0;
    at = 0;
    for (i = 0; i <= size && argc < FUZZ_MAX_ARGS; i++) {
        if (i == size || data[i] == '\n') {
            argv[argc] = (const char *) data + at;
            lens[argc++] = i - at;
            at = i + 1;
        }
    }

    idx = chat_cluster_key_index(argc, argv, lens);
    if (idx < -1 || idx >= argc || idx == 0) {
        abort();
    }
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_map(data, size);
    check_redirect(data, size);
    check_slot(data, size);
    check_key_index(data, size);

    return 0;
}
