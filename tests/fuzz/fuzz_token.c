/*
 * fuzz_token.c: libFuzzer harness for the HS256 token signer and verifier
 * (protocol/chat_token.c) and the strict base64 codec under it
 * (chat_base64.c).
 *
 * The first byte picks what the rest means (mode = [0] % 3):
 *
 *   0  raw: the rest is a token, verified as it is with the harness secret
 *      at NOW.  It must never crash, and never be accepted unless its
 *      third part really is the HMAC-SHA256 of the first two, computed
 *      here with OpenSSL and this file's own base64url.
 *
 *   1  re-signed: the rest is "header.payload" text, and the harness
 *      appends the correct MAC, so the fuzzer reaches the header and claims
 *      checks behind the MAC.  Accepted means: the header says HS256, both
 *      parts are the one canonical spelling of their bytes, and the claims
 *      returned are the ones the payload holds (read here with cJSON), not
 *      yet expired and not before nbf.  The same token under another
 *      secret, or a secret too short, is refused.
 *
 *   2  sign-then-mutate: claims are derived from the rest (see
 *      derive_claims), signed, and the token must verify with exactly those
 *      claims one second before exp and be EXPIRED at exp.  Then up to four
 *      fuzzer-chosen byte flips, insertions or deletions are applied; a
 *      mutated token that verifies must be byte-identical to the original,
 *      anything else accepted is a forgery.
 *
 * Every mode also runs the base64 codec over the rest: what one alphabet
 * encodes decodes back, and whatever decodes re-encodes to the same text.
 * Any breach is abort().
 */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "chat_base64.h"
#include "chat_token.h"


#define NOW           1800000000LL
#define MAX_SAFE_INT  9007199254740991LL     /* 2^53 - 1, exact in a double */
#define MAX_UID       999999999999999999LL   /* the verifier reads 18 digits */
#define MAX_MUTATIONS 4

static const unsigned char  secret[] =
    "fuzz-secret-0123456789abcdef-0123456789";
#define SECRET_LEN  (sizeof(secret) - 1)

static const unsigned char  other_secret[] =
    "fuzz-secret-0123456789abcdef-0123456788";


#define fail(what)  fail_at(__LINE__, what)

static void
fail_at(int line, const char *what)
{
    fprintf(stderr, "fuzz_token.c:%d: %s\n", line, what);
    abort();
}


/* ---------------------------------------------------------------- */
/* the harness's own base64url and MAC                               */

static const char  b64url_chars[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";


/* unpadded; out must hold 4 * ceil(len / 3) + 1 */
static size_t
ref_b64url_encode(const unsigned char *in, size_t len, char *out)
{
    size_t    i, n, k;
    uint32_t  v;

    n = 0;

    for (i = 0; i < len; i += 3) {
        v = 0;
        for (k = 0; k < 3; k++) {
            v = v << 8 | (i + k < len ? in[i + k] : 0);
        }
        /* 1 byte gives 2 characters, 2 give 3, 3 give 4 */
        for (k = 0; k < (len - i >= 3 ? 4 : len - i + 1); k++) {
            out[n++] = b64url_chars[(v >> (18 - 6 * k)) & 63];
        }
    }

    out[n] = '\0';
    return n;
}


/* Lenient on purpose (leftover bits are dropped): canonical spelling is
 * checked separately by re-encoding.  -1 on a foreign character. */
static int
ref_b64url_decode(const char *in, size_t len, unsigned char *out)
{
    size_t       i, n, bits;
    uint32_t     acc;
    const char  *c;

    acc = 0;
    bits = 0;
    n = 0;

    for (i = 0; i < len; i++) {
        c = in[i] ? strchr(b64url_chars, in[i]) : NULL;
        if (c == NULL) {
            return -1;
        }
        acc = acc << 6 | (uint32_t) (c - b64url_chars);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[n++] = (unsigned char) (acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }

    return (int) n;
}


/* base64url(HMAC-SHA256(key, data)) into out (at least 44 bytes) */
static size_t
ref_mac(const unsigned char *key, size_t key_len, const char *data,
    size_t len, char *out)
{
    unsigned int   mac_len;
    unsigned char  mac[EVP_MAX_MD_SIZE];

    if (HMAC(EVP_sha256(), key, (int) key_len, (const unsigned char *) data,
             len, mac, &mac_len) == NULL || mac_len != 32)
    {
        fail("HMAC failed");
    }

    return ref_b64url_encode(mac, mac_len, out);
}


/* whether token is header.payload.mac with mac right for the first two */
static int
ref_signed(const char *token, size_t len)
{
    char        mac[64];
    size_t      n;
    const char  *dot1, *dot2;

    dot1 = memchr(token, '.', len);
    if (dot1 == NULL) {
        return 0;
    }
    dot2 = memchr(dot1 + 1, '.', len - (size_t) (dot1 + 1 - token));
    if (dot2 == NULL
        || memchr(dot2 + 1, '.', len - (size_t) (dot2 + 1 - token)))
    {
        return 0;
    }

    n = ref_mac(secret, SECRET_LEN, token, (size_t) (dot2 - token), mac);

    return len - (size_t) (dot2 + 1 - token) == n
           && memcmp(dot2 + 1, mac, n) == 0;
}


/* Verifies a copy in a buffer of exactly len bytes (no NUL after it). */
static chat_token_status_t
verify(const unsigned char *key, size_t key_len, const char *token,
    size_t len, int64_t now, chat_token_claims_t *claims)
{
    char                 *copy;
    chat_token_status_t   rc;

    copy = malloc(len ? len : 1);
    if (copy == NULL) {
        fail("out of memory");
    }
    memcpy(copy, token, len);

    memset(claims, 0xa5, sizeof(*claims));
    rc = chat_token_verify(key, key_len, copy, len, now, claims);
    free(copy);

    if (chat_token_status_text(rc) == NULL) {
        fail("a status without text");
    }

    if (rc == CHAT_TOKEN_OK
        && (claims->uid <= 0 || claims->exp <= now
            || !chat_token_sid_valid(claims->sid, strlen(claims->sid))
            || claims->sxp < claims->exp
            || (strcmp(claims->role, "user") != 0
                && strcmp(claims->role, "admin") != 0
                && strcmp(claims->role, "carrier") != 0)))
    {
        fail("accepted with claims no token may carry");
    }

    return rc;
}


/* ---------------------------------------------------------------- */
/* mode 0: the input is a token                                      */


static void
fuzz_raw(const char *token, size_t len)
{
    chat_token_claims_t  claims;

    if (verify(secret, SECRET_LEN, token, len, NOW, &claims) == CHAT_TOKEN_OK
        && !ref_signed(token, len))
    {
        fail("accepted a token that is not signed with the secret");
    }
}


/* ---------------------------------------------------------------- */
/* mode 1: the input is header.payload, the MAC is added here        */


/* Decodes part with the harness's decoder and requires the one spelling. */
static cJSON *
ref_json_part(const char *part, size_t len)
{
    int             n;
    char           *again;
    cJSON          *json;
    unsigned char  *bytes;

    bytes = malloc(len + 1);
    again = malloc(len + 8);
    if (bytes == NULL || again == NULL) {
        fail("out of memory");
    }

    n = ref_b64url_decode(part, len, bytes);
    if (n < 0) {
        fail("accepted a part that is not base64url");
    }

    if (ref_b64url_encode(bytes, (size_t) n, again) != len
        || memcmp(again, part, len) != 0)
    {
        fail("accepted a part that is not the canonical spelling");
    }

    json = cJSON_ParseWithLength((const char *) bytes, (size_t) n);
    free(bytes);
    free(again);

    if (!cJSON_IsObject(json)) {
        fail("accepted a part that is not a JSON object");
    }

    return json;
}


/* what the payload says must be what verify returned */
static void
check_accepted(const char *token, size_t len,
    const chat_token_claims_t *claims)
{
    cJSON       *header, *payload, *alg, *sub, *role, *exp, *iat, *nbf;
    const char  *dot1, *dot2;

    dot1 = memchr(token, '.', len);
    dot2 = memchr(dot1 + 1, '.', len - (size_t) (dot1 + 1 - token));

    header = ref_json_part(token, (size_t) (dot1 - token));
    payload = ref_json_part(dot1 + 1, (size_t) (dot2 - dot1 - 1));

    alg = cJSON_GetObjectItemCaseSensitive(header, "alg");
    if (!cJSON_IsString(alg) || strcmp(alg->valuestring, "HS256") != 0) {
        fail("accepted a header that does not say HS256");
    }

    sub = cJSON_GetObjectItemCaseSensitive(payload, "sub");
    role = cJSON_GetObjectItemCaseSensitive(payload, "role");
    exp = cJSON_GetObjectItemCaseSensitive(payload, "exp");
    iat = cJSON_GetObjectItemCaseSensitive(payload, "iat");
    nbf = cJSON_GetObjectItemCaseSensitive(payload, "nbf");

    if (!cJSON_IsString(sub) || strtoll(sub->valuestring, NULL, 10)
                                != claims->uid)
    {
        fail("uid is not the payload's sub");
    }

    if (!cJSON_IsString(role) || strcmp(role->valuestring, claims->role)) {
        fail("role is not the payload's role");
    }

    if (!cJSON_IsNumber(exp) || exp->valuedouble != (double) claims->exp) {
        fail("exp is not the payload's exp");
    }

    if (iat != NULL
        && (!cJSON_IsNumber(iat) || iat->valuedouble != (double) claims->iat))
    {
        fail("iat is not the payload's iat");
    }

    if (nbf != NULL && (!cJSON_IsNumber(nbf) || nbf->valuedouble > NOW)) {
        fail("accepted before nbf, or with an nbf that is not a number");
    }

    cJSON_Delete(header);
    cJSON_Delete(payload);
}


/* hp "." base64url(HMAC(key, hp)) in a new buffer; *len its length */
static char *
resign(const unsigned char *key, size_t key_len, const char *hp,
    size_t hp_len, size_t *len)
{
    char  *token;

    token = malloc(hp_len + 64);
    if (token == NULL) {
        fail("out of memory");
    }
    memcpy(token, hp, hp_len);
    token[hp_len] = '.';
    *len = hp_len + 1 + ref_mac(key, key_len, hp, hp_len,
                                token + hp_len + 1);
    return token;
}


static void
fuzz_resigned(const char *hp, size_t len)
{
    char                 *token;
    size_t                n;
    chat_token_claims_t   claims;

    token = resign(secret, SECRET_LEN, hp, len, &n);

    if (verify(secret, SECRET_LEN, token, n, NOW, &claims) == CHAT_TOKEN_OK)
    {
        check_accepted(token, n, &claims);
    }

    if (verify(other_secret, SECRET_LEN, token, n, NOW, &claims)
        == CHAT_TOKEN_OK)
    {
        fail("accepted under another secret");
    }

    free(token);

    /* signed and verified with a secret one byte short of the minimum */
    token = resign(secret, CHAT_TOKEN_MIN_SECRET_LEN - 1, hp, len, &n);

    if (verify(secret, CHAT_TOKEN_MIN_SECRET_LEN - 1, token, n, NOW, &claims)
        == CHAT_TOKEN_OK)
    {
        fail("accepted with a secret shorter than the minimum");
    }

    free(token);
}


/* ---------------------------------------------------------------- */
/* mode 2: sign, then mutate                                         */


typedef struct {
    const uint8_t  *p;
    size_t          n;
} reader_t;


/* the next bytes as a little-endian number; zeros once the input ends */
static uint64_t
take(reader_t *r, size_t bytes)
{
    size_t    i;
    uint64_t  v;

    v = 0;
    for (i = 0; i < bytes; i++) {
        if (r->n > 0) {
            v |= (uint64_t) *r->p << (8 * i);
            r->p++;
            r->n--;
        }
    }

    return v;
}


typedef struct {
    int64_t  uid;
    char     role[8];
    int64_t  iat;
    int64_t  exp;
} wanted_t;


/*
 * A selector byte, then: uid (any 64-bit value, or a small positive one),
 * role (user, admin, empty, or up to six bytes of the input), iat (any, or
 * shortly before NOW), exp (any, or iat plus a signed 32-bit delta).
 */
static void
derive_claims(reader_t *r, wanted_t *w)
{
    size_t    i, n;
    unsigned  sel;

    sel = (unsigned) take(r, 1);

    w->uid = (sel & 1) ? (int64_t) take(r, 8) : 1 + (int64_t) take(r, 4);

    memset(w->role, 0, sizeof(w->role));
    switch ((sel >> 1) & 3) {
    case 0:
        strcpy(w->role, "user");
        break;
    case 1:
        strcpy(w->role, "admin");
        break;
    case 2:
        break;
    default:
        n = take(r, 1) % 7;
        for (i = 0; i < n; i++) {
            w->role[i] = (char) (1 + take(r, 1) % 255);
        }
    }

    w->iat = (sel & 8) ? (int64_t) take(r, 8) : NOW - (int64_t) take(r, 3);

    if (sel & 16) {
        w->exp = (int64_t) take(r, 8);
    } else {
        /* a delta that can make exp wrap is simply not used */
        w->exp = (int64_t) (int32_t) take(r, 4);
        w->exp = (w->exp > 0 && w->iat > INT64_MAX - w->exp)
                 || (w->exp < 0 && w->iat < INT64_MIN - w->exp)
                 ? w->iat : w->iat + w->exp;
    }
}


/* the contract: sign what the verifier can read back, refuse the rest */
static int
signable(const wanted_t *w)
{
    return w->uid > 0 && w->uid <= MAX_UID
           && (strcmp(w->role, "user") == 0 || strcmp(w->role, "admin") == 0
               || strcmp(w->role, "carrier") == 0)
           && w->iat >= -MAX_SAFE_INT && w->iat <= MAX_SAFE_INT
           && w->exp >= -MAX_SAFE_INT && w->exp <= MAX_SAFE_INT
           && w->exp > w->iat;
}


static void
fuzz_sign_mutate(reader_t *r)
{
    int                   n, i, nmut;
    char                  token[CHAT_TOKEN_MAX_LEN + 1];
    char                  mutated[CHAT_TOKEN_MAX_LEN + MAX_MUTATIONS + 1];
    size_t                len, pos;
    unsigned              kind, val;
    wanted_t              w;
    chat_token_claims_t   claims;
    chat_token_status_t   rc;

    derive_claims(r, &w);

    /* the session ends with the token, the earliest it may */
    memset(&claims, 0, sizeof(claims));
    claims.uid = w.uid;
    memcpy(claims.role, w.role, sizeof(claims.role));
    strcpy(claims.sid, "fuzz-session_1");
    claims.iat = w.iat;
    claims.exp = w.exp;
    claims.sxp = w.exp;

    n = chat_token_sign(secret, SECRET_LEN, &claims, token, sizeof(token));

    if ((n > 0) != signable(&w)) {
        fprintf(stderr, "uid %lld role \"%s\" iat %lld exp %lld: sign %d\n",
                (long long) w.uid, w.role, (long long) w.iat,
                (long long) w.exp, n);
        fail(n > 0 ? "signed claims the verifier cannot accept"
                   : "refused to sign valid claims");
    }

    if (n <= 0) {
        return;
    }

    if ((size_t) n != strlen(token) || !ref_signed(token, (size_t) n)) {
        fail("sign wrote a token whose MAC is not right");
    }

    /* the round trip, one second before exp and at exp */

    rc = verify(secret, SECRET_LEN, token, (size_t) n, w.exp - 1, &claims);
    if (rc != CHAT_TOKEN_OK) {
        fprintf(stderr, "%s: %s\n", token, chat_token_status_text(rc));
        fail("a freshly signed token does not verify before exp");
    }

    if (claims.uid != w.uid || strcmp(claims.role, w.role) != 0
        || claims.iat != w.iat || claims.exp != w.exp
        || claims.sxp != w.exp || strcmp(claims.sid, "fuzz-session_1") != 0)
    {
        fail("claims do not survive the round trip");
    }

    if (verify(secret, SECRET_LEN, token, (size_t) n, w.exp, &claims)
        != CHAT_TOKEN_EXPIRED)
    {
        fail("a token is not EXPIRED at exp");
    }

    /* flip, insert or delete bytes where the fuzzer says */

    memcpy(mutated, token, (size_t) n);
    len = (size_t) n;
    nmut = 1 + (int) (take(r, 1) % MAX_MUTATIONS);

    for (i = 0; i < nmut; i++) {
        kind = (unsigned) take(r, 1) % 3;
        pos = (size_t) take(r, 2);
        val = (unsigned) take(r, 1);

        if (kind == 0 && len > 0) {
            mutated[pos % len] ^= (char) val;

        } else if (kind == 1) {
            pos %= len + 1;
            memmove(mutated + pos + 1, mutated + pos, len - pos);
            mutated[pos] = (char) val;
            len++;

        } else if (len > 0) {
            pos %= len;
            memmove(mutated + pos, mutated + pos + 1, len - pos - 1);
            len--;
        }
    }

    if (verify(secret, SECRET_LEN, mutated, len, w.exp - 1, &claims)
        == CHAT_TOKEN_OK
        && (len != (size_t) n || memcmp(mutated, token, len) != 0))
    {
        fprintf(stderr, "original %s\nforgery  %.*s\n", token, (int) len,
                mutated);
        fail("a mutated token verified: forgery");
    }
}


/* ---------------------------------------------------------------- */
/* the codec on its own                                              */


static void
check_base64(const uint8_t *data, size_t size)
{
    int             n, m;
    char           *text;
    unsigned char  *bytes;
    chat_b64_alphabet_t  a;

    text = malloc(size * 4 / 3 + 8);
    bytes = malloc(size + 1);
    if (text == NULL || bytes == NULL) {
        fail("out of memory");
    }

    for (a = CHAT_B64_STD; a <= CHAT_B64_URL; a++) {

        /* bytes -> text -> the same bytes */
        n = chat_b64_encode(a, data, size, text, size * 4 / 3 + 8);
        if (n < 0 || (size_t) n != (size * 4 + 2) / 3
            || text[n] != '\0')
        {
            fail("encode: wrong length or no NUL");
        }
        m = chat_b64_decode(a, text, (size_t) n, bytes, size + 1);
        if (m < 0 || (size_t) m != size || memcmp(bytes, data, size) != 0) {
            fail("decode of an encoding does not give the bytes back");
        }

        /* text -> bytes -> the same text: one spelling per byte string */
        m = chat_b64_decode(a, (const char *) data, size, bytes, size + 1);
        if (m >= 0) {
            n = chat_b64_encode(a, bytes, (size_t) m, text, size * 4 / 3 + 8);
            if (n < 0 || (size_t) n != size || memcmp(text, data, size) != 0)
            {
                fail("decode accepted a spelling encode does not write");
            }
        }
    }

    free(text);
    free(bytes);
}


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    reader_t  r;

    if (size < 1) {
        return 0;
    }

    check_base64(data + 1, size - 1);

    switch (data[0] % 3) {

    case 0:
        fuzz_raw((const char *) data + 1, size - 1);
        break;

    case 1:
        fuzz_resigned((const char *) data + 1, size - 1);
        break;

    default:
        r.p = data + 1;
        r.n = size - 1;
        fuzz_sign_mutate(&r);
    }

    return 0;
}
