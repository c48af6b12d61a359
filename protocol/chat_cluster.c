/*
 * chat_cluster.c: Redis Cluster's rules as plain functions of bytes.
 *
 * A cluster splits the key space into 16384 slots; each master serves
 * some of them and answers a command for a slot it does not serve with
 * "MOVED <slot> <host>:<port>" (the slot lives there now) or, while a slot
 * migrates, "ASK <slot> <host>:<port>" (this key already moved: send
 * ASKING and the command there, once; the map does not change).  A client
 * keeps a map of slot to master, sends each command to the master of its
 * first key's slot, and refreshes the map on MOVED.
 *
 * The map is read from CLUSTER NODES rather than CLUSTER SLOTS or SHARDS
 * because it is one bulk string: parsing it needs no client library's
 * reply types, so the same parser serves the backend (hiredis) and the
 * edge (hiredis async) and is fuzzed as it is.
 *
 * Which argument is a command's first key is a short table of the
 * commands this project sends whose key is not argv[1]; it does not try
 * to know every Redis command (COMMAND GETKEYS would, at a round trip).
 *
 * What it does not do: connect, send, or decide when to refresh; the
 * callers do (backend/engine/redis_route.c,
 * ngx_chat_module/ngx_chat_redis_cluster.c).
 */

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "chat_cluster.h"


/* ------------------------------------------------------------------------
 * Key to slot
 * --------------------------------------------------------------------- */

/* CRC16-XMODEM (polynomial 0x1021, initial value 0, no reflection), the
 * checksum Redis hashes keys with. */
static uint16_t
chat_cluster_crc16(const unsigned char *p, size_t len)
{
    int       bit;
    size_t    i;
    uint16_t  crc;

    crc = 0;

    for (i = 0; i < len; i++) {
        crc ^= (uint16_t) (p[i] << 8);
        for (bit = 0; bit < 8; bit++) {
            crc = (crc & 0x8000) ? (uint16_t) ((crc << 1) ^ 0x1021)
                                 : (uint16_t) (crc << 1);
        }
    }

    return crc;
}


unsigned
chat_cluster_slot(const char *key, size_t len)
{
    const char  *open, *close;

    /* a hash tag: the first '{', the first '}' after it, not empty */
    open = memchr(key, '{', len);
    if (open != NULL) {
        close = memchr(open + 1, '}', len - (size_t) (open + 1 - key));
        if (close != NULL && close > open + 1) {
            key = open + 1;
            len = (size_t) (close - key);
        }
    }

    return chat_cluster_crc16((const unsigned char *) key, len)
           & (CHAT_CLUSTER_SLOTS - 1);
}


/* ------------------------------------------------------------------------
 * Which argument is the first key
 * --------------------------------------------------------------------- */

static int
chat_cluster_arg_is(const char *arg, size_t len, const char *word)
{
    return strlen(word) == len && strncasecmp(arg, word, len) == 0;
}


int
chat_cluster_key_index(int argc, const char *const *argv,
    const size_t *argvlen)
{
    int          i;
    long         numkeys;
    char         digits[16];
    size_t       len[3];
    const char  *name;

    static const char *const keyless[] = {
        "MULTI", "EXEC", "DISCARD", "WATCH" /* keys, but not ours */,
        "SCRIPT", "CLUSTER", "CONFIG", "PING", "AUTH", "HELLO", "ASKING",
        "READONLY", "INFO", "CLIENT", "SELECT", "ECHO", "TIME", "DBSIZE",
        "FLUSHALL", "FLUSHDB", "WAIT", "COMMAND", "PUBLISH", "DEBUG",
        NULL
    };

    if (argc < 1) {
        return -1;
    }

    for (i = 0; i < 3 && i < argc; i++) {
        len[i] = argvlen ? argvlen[i] : strlen(argv[i]);
    }

    name = argv[0];

    for (i = 0; keyless[i] != NULL; i++) {
        if (chat_cluster_arg_is(name, len[0], keyless[i])) {
            return -1;
        }
    }

    if (chat_cluster_arg_is(name, len[0], "EVAL")
        || chat_cluster_arg_is(name, len[0], "EVALSHA")
        || chat_cluster_arg_is(name, len[0], "EVAL_RO")
        || chat_cluster_arg_is(name, len[0], "EVALSHA_RO")
        || chat_cluster_arg_is(name, len[0], "FCALL"))
    {
        if (argc < 4 || len[2] == 0 || len[2] >= sizeof(digits)) {
            return -1;
        }
        memcpy(digits, argv[2], len[2]);
        digits[len[2]] = '\0';
        numkeys = strtol(digits, NULL, 10);
        return numkeys > 0 ? 3 : -1;
    }

    if (chat_cluster_arg_is(name, len[0], "XREAD")
        || chat_cluster_arg_is(name, len[0], "XREADGROUP"))
    {
        for (i = 1; i + 1 < argc; i++) {
            if (chat_cluster_arg_is(argv[i],
                                    argvlen ? argvlen[i] : strlen(argv[i]),
                                    "STREAMS"))
            {
                return i + 1;
            }
        }
        return -1;
    }

    if (chat_cluster_arg_is(name, len[0], "XGROUP")
        || chat_cluster_arg_is(name, len[0], "XINFO")
        || chat_cluster_arg_is(name, len[0], "OBJECT")
        || chat_cluster_arg_is(name, len[0], "MEMORY"))
    {
        return argc > 2 ? 2 : -1;
    }

    return argc > 1 ? 1 : -1;
}


/* ------------------------------------------------------------------------
 * Addresses and redirections
 * --------------------------------------------------------------------- */

/* "host:port" (the last ':' splits, so an IPv6 address works) of n bytes
 * into addr.  0 or -1. */
static int
chat_cluster_addr_parse(const char *s, size_t n, chat_cluster_addr_t *addr)
{
    size_t  i, colon;
    long    port;

    colon = n;
    for (i = 0; i < n; i++) {
        if (s[i] == ':') {
            colon = i;
        }
    }

    if (colon == 0 || colon == n || colon >= CHAT_CLUSTER_HOST_LEN
        || n - colon - 1 > 5)
    {
        return -1;
    }

    port = 0;
    for (i = colon + 1; i < n; i++) {
        if (!isdigit((unsigned char) s[i])) {
            return -1;
        }
        port = port * 10 + (s[i] - '0');
    }

    if (port < 1 || port > 65535) {
        return -1;
    }

    for (i = 0; i < colon; i++) {
        if (s[i] == '\0' || isspace((unsigned char) s[i])) {
            return -1;
        }
    }

    memcpy(addr->host, s, colon);
    addr->host[colon] = '\0';
    addr->port = (int) port;

    return 0;
}


chat_cluster_redirect_t
chat_cluster_redirect_parse(const char *err, size_t len, unsigned *slot,
    chat_cluster_addr_t *addr)
{
    size_t                   i, skip;
    unsigned long            n;
    chat_cluster_redirect_t  kind;

    if (len > 6 && memcmp(err, "MOVED ", 6) == 0) {
        kind = CHAT_CLUSTER_MOVED;
        skip = 6;
    } else if (len > 4 && memcmp(err, "ASK ", 4) == 0) {
        kind = CHAT_CLUSTER_ASK;
        skip = 4;
    } else {
        return CHAT_CLUSTER_NOT_REDIRECT;
    }

    n = 0;
    for (i = skip; i < len && isdigit((unsigned char) err[i]); i++) {
        n = n * 10 + (unsigned long) (err[i] - '0');
        if (n >= CHAT_CLUSTER_SLOTS) {
            return CHAT_CLUSTER_NOT_REDIRECT;
        }
    }

    if (i == skip || i >= len || err[i] != ' ') {
        return CHAT_CLUSTER_NOT_REDIRECT;
    }

    i++;
    if (chat_cluster_addr_parse(err + i, len - i, addr) != 0) {
        return CHAT_CLUSTER_NOT_REDIRECT;
    }

    *slot = (unsigned) n;
    return kind;
}


/* ------------------------------------------------------------------------
 * Keys grouped by slot
 * --------------------------------------------------------------------- */

size_t
chat_cluster_group_by_slot(const char *const *keys, const size_t *lens,
    size_t n, size_t *order, unsigned *slot_of)
{
    size_t    i, j, k, t, groups;
    unsigned  s;

    for (i = 0; i < n; i++) {
        slot_of[i] = chat_cluster_slot(keys[i], lens[i]);
        order[i] = i;
    }

    /* n is one nginx worker's held polls: a pass per group is cheaper
     * than a sort for the few slots a worker holds, and keeps each
     * slot's keys in their order without a stable sort */
    groups = 0;
    k = 0;

    while (k < n) {
        s = slot_of[order[k++]];
        groups++;

        for (j = k; j < n; j++) {
            if (slot_of[order[j]] == s) {
                t = order[j];
                memmove(&order[k + 1], &order[k], (j - k) * sizeof(size_t));
                order[k++] = t;
            }
        }
    }

    return groups;
}


/* ------------------------------------------------------------------------
 * The slot map
 * --------------------------------------------------------------------- */

int
chat_cluster_map_find(const chat_cluster_map_t *map, const char *host,
    int port)
{
    int  i;

    for (i = 0; i < map->nodes; i++) {
        if (map->node[i].port == port && strcmp(map->node[i].host, host) == 0)
        {
            return i;
        }
    }

    return -1;
}


/* The next space-separated word of [*p, end): its start and length, *p
 * moved past it.  0 when there is none. */
static size_t
chat_cluster_word(const char **p, const char *end, const char **word)
{
    const char  *s;

    s = *p;
    while (s < end && *s == ' ') {
        s++;
    }

    *word = s;
    while (s < end && *s != ' ') {
        s++;
    }

    *p = s;
    return (size_t) (s - *word);
}


/* "n" or "a-b" into [*from, *to].  0 or -1. */
static int
chat_cluster_range_parse(const char *s, size_t n, unsigned *from,
    unsigned *to)
{
    size_t     i;
    unsigned   v[2];
    int        k;

    k = 0;
    v[0] = v[1] = 0;

    for (i = 0; i < n; i++) {
        if (s[i] == '-' && k == 0 && i > 0) {
            k = 1;
            continue;
        }
        if (!isdigit((unsigned char) s[i])) {
            return -1;
        }
        v[k] = v[k] * 10 + (unsigned) (s[i] - '0');
        if (v[k] >= CHAT_CLUSTER_SLOTS) {
            return -1;
        }
    }

    if (n == 0 || s[n - 1] == '-') {
        return -1;
    }

    *from = v[0];
    *to = k ? v[1] : v[0];

    return *from <= *to ? 0 : -1;
}


/* 1 when the comma-separated flags hold flag. */
static int
chat_cluster_has_flag(const char *flags, size_t len, const char *flag)
{
    size_t       n;
    const char  *end, *comma;

    end = flags + len;

    while (flags < end) {
        comma = memchr(flags, ',', (size_t) (end - flags));
        n = (size_t) ((comma ? comma : end) - flags);
        if (chat_cluster_arg_is(flags, n, flag)) {
            return 1;
        }
        flags += n + 1;
    }

    return 0;
}


/* One line of CLUSTER NODES.  0, or -1 when it is not understood. */
static int
chat_cluster_line_parse(chat_cluster_map_t *map, const char *p,
    const char *end, int *served)
{
    int                   i, idx;
    size_t                n;
    unsigned              from, to, s;
    const char           *w, *flags, *at;
    size_t                flags_len;
    chat_cluster_addr_t   addr;
    const char           *addr_w;
    size_t                addr_len;

    if (chat_cluster_word(&p, end, &w) == 0) {
        return 0;                           /* an empty line */
    }

    addr_len = chat_cluster_word(&p, end, &addr_w);
    flags_len = chat_cluster_word(&p, end, &flags);
    if (addr_len == 0 || flags_len == 0) {
        return -1;
    }

    /* master id, ping sent, pong received, config epoch, link state:
     * all must be there, the slots follow */
    for (i = 0; i < 5; i++) {
        if (chat_cluster_word(&p, end, &w) == 0) {
            return -1;
        }
    }

    /* only a working master serves slots ("fail?" is one node's
     * suspicion, not yet the cluster's verdict: it still counts) */
    if (!chat_cluster_has_flag(flags, flags_len, "master")
        || chat_cluster_has_flag(flags, flags_len, "fail")
        || chat_cluster_has_flag(flags, flags_len, "noaddr")
        || chat_cluster_has_flag(flags, flags_len, "handshake"))
    {
        return 0;
    }

    /* ip:port@cport[,hostname] */
    at = memchr(addr_w, '@', addr_len);
    if (at != NULL) {
        addr_len = (size_t) (at - addr_w);
    }

    if (chat_cluster_addr_parse(addr_w, addr_len, &addr) != 0) {
        return -1;
    }

    idx = -1;

    while ((n = chat_cluster_word(&p, end, &w)) != 0) {
        if (w[0] == '[') {
            continue;                       /* a migration note */
        }

        if (chat_cluster_range_parse(w, n, &from, &to) != 0) {
            return -1;
        }

        if (idx < 0) {
            idx = chat_cluster_map_find(map, addr.host, addr.port);
            if (idx < 0) {
                if (map->nodes == CHAT_CLUSTER_MAX_NODES) {
                    return -1;
                }
                idx = map->nodes++;
                map->node[idx] = addr;
            }
        }

        for (s = from; s <= to; s++) {
            if (map->owner[s] == CHAT_CLUSTER_NO_NODE) {
                (*served)++;
            }
            map->owner[s] = (uint16_t) idx;
        }
    }

    return 0;
}


int
chat_cluster_map_parse(chat_cluster_map_t *map, const char *text, size_t len)
{
    int          served;
    size_t       i;
    const char  *line, *end, *nl;

    map->nodes = 0;
    for (i = 0; i < CHAT_CLUSTER_SLOTS; i++) {
        map->owner[i] = CHAT_CLUSTER_NO_NODE;
    }

    served = 0;
    line = text;
    end = text + len;

    while (line < end) {
        nl = memchr(line, '\n', (size_t) (end - line));
        if (nl == NULL) {
            nl = end;
        }

        /* tolerate "\r\n" line ends */
        if (chat_cluster_line_parse(map, line,
                                    nl > line && nl[-1] == '\r' ? nl - 1 : nl,
                                    &served)
            != 0)
        {
            return -1;
        }

        line = nl + 1;
    }

    return served;
}
