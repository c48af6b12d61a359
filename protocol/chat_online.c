/*
 * chat_online.c: the fan-out rule in C (chat_online.h says what and
 * why; chat_scripts.c has the same rule in Lua).
 */

#include <string.h>

#include "chat_online.h"


/* CHAT_POLL_STREAM_PREFIX "<uid>}:<CHAT_POLL_SID_LEN lowercase hex>" */
static int
chat_online_poll_stream(const char *name, size_t name_len)
{
    size_t  i, plen;

    plen = sizeof(CHAT_POLL_STREAM_PREFIX) - 1;

    if (name_len <= plen || memcmp(name, CHAT_POLL_STREAM_PREFIX, plen) != 0) {
        return 0;
    }

    for (i = plen; i < name_len && name[i] >= '0' && name[i] <= '9'; i++) {
        /* the uid */
    }

    if (i == plen || i > plen + 19 || name_len != i + 2 + CHAT_POLL_SID_LEN
        || name[i] != '}' || name[i + 1] != ':')
    {
        return 0;
    }

    for (i += 2; i < name_len; i++) {
        if (!((name[i] >= '0' && name[i] <= '9')
              || (name[i] >= 'a' && name[i] <= 'f')))
        {
            return 0;
        }
    }

    return 1;
}


/* CHAT_GW_STREAM_PREFIX "<gateway id>}", at most CHAT_MAX_GW_LEN, no NUL */
static int
chat_online_gw_stream(const char *name, size_t name_len)
{
    size_t  plen;

    plen = sizeof(CHAT_GW_STREAM_PREFIX) - 1;

    return name_len > plen + 1 && name_len <= CHAT_MAX_GW_LEN
           && memcmp(name, CHAT_GW_STREAM_PREFIX, plen) == 0
           && name[name_len - 1] == '}'
           && memchr(name, '\0', name_len) == NULL;
}


int
chat_online_field_routable(const char *name, size_t name_len)
{
    return chat_online_gw_stream(name, name_len)
           || chat_online_poll_stream(name, name_len);
}


int
chat_online_field_fresh(const char *name, size_t name_len, const char *value,
    size_t value_len, int64_t now_ms)
{
    size_t   i;
    int64_t  ms;

    if (!chat_online_field_routable(name, name_len)) {
        return 0;
    }

    if (value_len == 0 || value_len > 15) {
        return 0;
    }

    ms = 0;
    for (i = 0; i < value_len; i++) {
        if (value[i] < '0' || value[i] > '9') {
            return 0;
        }
        ms = ms * 10 + (value[i] - '0');
    }

    return now_ms - ms <= CHAT_ONLINE_STALE_MS;
}
