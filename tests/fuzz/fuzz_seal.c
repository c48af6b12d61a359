/*
 * fuzz_seal.c: libFuzzer harness for the bus's sealed fields
 * (protocol/chat_seal.c) and the base64url under them.
 *
 * The first byte picks what the rest means (mode = [0] % 2):
 *
 *   0  foreign: the rest is text that claims to be sealed.  Opening it
 *      must never crash and never succeed: nobody but chat_seal made it,
 *      and forging a GCM tag is out of reach, so an accepted input is a
 *      forgery and aborts.  The JSON helper is fed the same text as a
 *      field's value and must refuse it too.
 *
 *   1  round trip: the rest (up to CHAT_SEAL_MAX_PLAIN bytes) is sealed,
 *      must open back to exactly itself with the same place, and must not
 *      open for another field, direction or request.  Then up to four
 *      fuzzer-chosen byte changes are made to the sealed text; a changed
 *      text that opens must be byte-identical to the original.
 *
 * Any breach is abort().
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "chat_seal.h"


#define MAX_MUTATIONS  4

static const unsigned char  secret[] =
    "fuzz-secret-0123456789abcdef0123456789";

static const chat_seal_ad_t  here = {
    "reply", "auth.login", 10, "chat:gw:{fuzz}", 14, "42", 2
};


static const unsigned char *
key(void)
{
    static int            done;
    static unsigned char  k[CHAT_SEAL_KEY_LEN];

    if (!done) {
        if (chat_seal_derive(secret, sizeof(secret) - 1, CHAT_SEAL_LABEL, k,
                             sizeof(k)) != 0)
        {
            abort();
        }
        done = 1;
    }

    return k;
}


static void
foreign(const uint8_t *data, size_t size)
{
    char           *text;
    cJSON          *obj;
    unsigned char   out[CHAT_SEAL_MAX_PLAIN + 1];
    static const char *const  fields[] = { "token", NULL };

    if (chat_seal_open(key(), &here, "token", (const char *) data, size, out,
                       sizeof(out)) != -1)
    {
        abort();
    }

    text = malloc(size + 1);
    if (text == NULL) {
        return;
    }
    memcpy(text, data, size);
    text[size] = '\0';

    obj = cJSON_CreateObject();
    if (obj != NULL && cJSON_AddStringToObject(obj, "token", text) != NULL
        && chat_seal_open_json(key(), &here, fields, obj) != -1)
    {
        abort();
    }

    cJSON_Delete(obj);
    free(text);
}


static void
round_trip(const uint8_t *data, size_t size)
{
    int             n, m;
    size_t          i, at;
    char           *sealed, *changed;
    unsigned char  *out;
    chat_seal_ad_t  other;

    if (size > CHAT_SEAL_MAX_PLAIN + 2 * MAX_MUTATIONS) {
        return;
    }

    /* the last bytes steer the mutations, the rest is the plain text */
    m = size >= 2 * MAX_MUTATIONS ? MAX_MUTATIONS : 0;
    if (size - 2 * (size_t) m > CHAT_SEAL_MAX_PLAIN) {
        return;
    }

    sealed = malloc(CHAT_SEAL_TEXT_LEN(CHAT_SEAL_MAX_PLAIN));
    changed = malloc(CHAT_SEAL_TEXT_LEN(CHAT_SEAL_MAX_PLAIN));
    out = malloc(CHAT_SEAL_MAX_PLAIN + 1);

    if (sealed == NULL || changed == NULL || out == NULL) {
        goto done;
    }

    size -= 2 * (size_t) m;

    n = chat_seal(key(), &here, "token", data, size, sealed,
                  CHAT_SEAL_TEXT_LEN(CHAT_SEAL_MAX_PLAIN));
    if (n < 0) {
        abort();
    }

    if (chat_seal_open(key(), &here, "token", sealed, (size_t) n, out,
                       CHAT_SEAL_MAX_PLAIN + 1) != (int) size
        || memcmp(out, data, size) != 0)
    {
        abort();
    }

    other = here;
    other.req = "43";
    if (chat_seal_open(key(), &other, "token", sealed, (size_t) n, out,
                       CHAT_SEAL_MAX_PLAIN + 1) != -1
        || chat_seal_open(key(), &here, "password", sealed, (size_t) n, out,
                          CHAT_SEAL_MAX_PLAIN + 1) != -1)
    {
        abort();
    }

    memcpy(changed, sealed, (size_t) n);

    for (i = 0; i < (size_t) m; i++) {
        at = data[size + 2 * i] % (size_t) n;
        changed[at] = (char) data[size + 2 * i + 1];
    }

    if (chat_seal_open(key(), &here, "token", changed, (size_t) n, out,
                       CHAT_SEAL_MAX_PLAIN + 1) != -1
        && memcmp(changed, sealed, (size_t) n) != 0)
    {
        abort();
    }

done:

    free(sealed);
    free(changed);
    free(out);
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0) {
        return 0;
    }

    if (data[0] % 2 == 0) {
        foreign(data + 1, size - 1);
    } else {
        round_trip(data + 1, size - 1);
    }

    return 0;
}
