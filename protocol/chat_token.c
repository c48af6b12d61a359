/*
 * chat_token.c: HS256 JSON Web Tokens (RFC 7519 with RFC 7515 compact
 * serialisation), reduced to the one shape this project issues:
 *
 *   base64url({"alg":"HS256","typ":"JWT"}) "." base64url(claims) "." MAC
 *
 * The backend signs after a login; the edge verifies on every request.
 * Verification never trusts the header to choose an algorithm: the header
 * must say HS256 and the MAC is always HMAC-SHA256 with our secret, so "none",
 * HS512 and RS256 tokens are refused before any MAC is computed.  Base64url
 * is strict (no padding, no foreign characters, no non-zero trailing bits),
 * so each token has exactly one spelling.  MACs are compared in constant time.
 *
 * Every token names its sign-in session: "sid", which a logout revokes
 * (the edge keeps the revoked ones, ngx_chat_revoked.c), and "sxp", the
 * session's end, which a refresh never reaches past.  A token without
 * them is refused: it could not be signed out.
 *
 * What it does not do: key rotation, audiences, or revocation itself.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "chat_base64.h"
#include "chat_protocol.h"
#include "chat_token.h"


#define CHAT_TOKEN_MAC_LEN  32

/*
 * The largest values the verifier reads back: "sub" has at most 18 digits,
 * and iat/exp travel as JSON numbers, exact in a double only up to 2^53 - 1.
 * The signer refuses anything beyond, so every token it writes verifies.
 */
#define CHAT_TOKEN_MAX_UID       999999999999999999LL
#define CHAT_TOKEN_MAX_SAFE_INT  9007199254740991LL

static int
chat_token_mac(const unsigned char *secret, size_t secret_len,
    const char *data, size_t len, unsigned char *mac)
{
    unsigned int  mac_len;

    mac_len = 0;

    if (HMAC(EVP_sha256(), secret, (int) secret_len,
             (const unsigned char *) data, len, mac, &mac_len) == NULL
        || mac_len != CHAT_TOKEN_MAC_LEN)
    {
        return -1;
    }

    return 0;
}


int
chat_token_sign(const unsigned char *secret, size_t secret_len,
    const chat_token_claims_t *claims, char *out, size_t out_size)
{
    int            n, len;
    char           payload[320];
    unsigned char  mac[CHAT_TOKEN_MAC_LEN];
    static const char  header[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";

    if (secret_len < CHAT_TOKEN_MIN_SECRET_LEN || claims->uid <= 0
        || claims->uid > CHAT_TOKEN_MAX_UID || claims->exp <= claims->iat
        || claims->iat < -CHAT_TOKEN_MAX_SAFE_INT
        || claims->sxp < claims->exp
        || claims->sxp > CHAT_TOKEN_MAX_SAFE_INT
        || memchr(claims->role, '\0', sizeof(claims->role)) == NULL
        || chat_role_name(claims->role, strlen(claims->role)) == NULL
        || memchr(claims->sid, '\0', sizeof(claims->sid)) == NULL
        || !chat_token_sid_valid(claims->sid, strlen(claims->sid)))
    {
        return -1;
    }

    n = snprintf(payload, sizeof(payload),
                 "{\"sub\":\"%lld\",\"role\":\"%s\",\"sid\":\"%s\","
                 "\"iat\":%lld,\"exp\":%lld,\"sxp\":%lld}",
                 (long long) claims->uid, claims->role, claims->sid,
                 (long long) claims->iat, (long long) claims->exp,
                 (long long) claims->sxp);
    if (n < 0 || (size_t) n >= sizeof(payload)) {
        return -1;
    }

    len = chat_b64_encode(CHAT_B64_URL, (const unsigned char *) header,
                             sizeof(header) - 1, out, out_size);
    if (len < 0 || (size_t) len + 1 >= out_size) {
        return -1;
    }
    out[len++] = '.';

    n = chat_b64_encode(CHAT_B64_URL, (const unsigned char *) payload, (size_t) n,
                           out + len, out_size - len);
    if (n < 0) {
        return -1;
    }
    len += n;

    if (chat_token_mac(secret, secret_len, out, (size_t) len, mac) != 0
        || (size_t) len + 1 >= out_size)
    {
        return -1;
    }
    out[len++] = '.';

    n = chat_b64_encode(CHAT_B64_URL, mac, sizeof(mac), out + len, out_size - len);
    if (n < 0 || (size_t) (len + n) >= out_size) {
        return -1;
    }
    len += n;
    out[len] = '\0';

    return len;
}


int
chat_token_new_sid(char *sid, size_t size)
{
    unsigned char  rnd[16];

    if (size < CHAT_TOKEN_SID_LEN + 1 || RAND_bytes(rnd, sizeof(rnd)) != 1) {
        return -1;
    }

    return chat_b64_encode(CHAT_B64_URL, rnd, sizeof(rnd), sid, size)
           == CHAT_TOKEN_SID_LEN ? 0 : -1;
}


int
chat_token_sid_valid(const char *s, size_t len)
{
    size_t  i;

    if (len == 0 || len > CHAT_TOKEN_SID_MAX) {
        return 0;
    }

    for (i = 0; i < len; i++) {
        if (!((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= 'a' && s[i] <= 'z')
              || (s[i] >= '0' && s[i] <= '9') || s[i] == '-' || s[i] == '_'))
        {
            return 0;
        }
    }

    return 1;
}


/* Parses a JSON object from a decoded part; the caller deletes it. */
static cJSON *
chat_token_json_part(const char *part, size_t len)
{
    int            n;
    unsigned char  buf[CHAT_TOKEN_MAX_LEN];

    n = chat_b64_decode(CHAT_B64_URL, part, len, buf, sizeof(buf));
    if (n <= 0) {
        return NULL;
    }

    return cJSON_ParseWithLength((const char *) buf, (size_t) n);
}


/* A JSON number that is an exact integer within the 53-bit safe range. */
static int
chat_token_json_int(const cJSON *item, int64_t *value)
{
    double  d;

    if (!cJSON_IsNumber(item)) {
        return -1;
    }

    d = item->valuedouble;
    if (d != d || d < -9007199254740991.0 || d > 9007199254740991.0
        || d != (double) (int64_t) d)
    {
        return -1;
    }

    *value = (int64_t) d;
    return 0;
}


static chat_token_status_t
chat_token_check_header(const char *part, size_t len)
{
    cJSON               *header, *alg, *typ;
    chat_token_status_t  rc;

    header = chat_token_json_part(part, len);
    if (header == NULL || !cJSON_IsObject(header)) {
        cJSON_Delete(header);
        return CHAT_TOKEN_MALFORMED;
    }

    alg = cJSON_GetObjectItemCaseSensitive(header, "alg");
    typ = cJSON_GetObjectItemCaseSensitive(header, "typ");

    rc = CHAT_TOKEN_OK;

    if (!cJSON_IsString(alg) || strcmp(alg->valuestring, "HS256") != 0) {
        rc = CHAT_TOKEN_BAD_ALG;

    } else if (typ != NULL
               && (!cJSON_IsString(typ)
                   || strcmp(typ->valuestring, "JWT") != 0))
    {
        rc = CHAT_TOKEN_MALFORMED;
    }

    cJSON_Delete(header);
    return rc;
}


static chat_token_status_t
chat_token_check_claims(const char *part, size_t len, int64_t now,
    chat_token_claims_t *claims)
{
    char                *end;
    cJSON               *payload, *exp, *iat, *nbf, *sub, *role, *sid, *sxp;
    int64_t              not_before;
    long long            uid;
    chat_token_status_t  rc;

    payload = chat_token_json_part(part, len);
    if (payload == NULL || !cJSON_IsObject(payload)) {
        cJSON_Delete(payload);
        return CHAT_TOKEN_MALFORMED;
    }

    exp = cJSON_GetObjectItemCaseSensitive(payload, "exp");
    iat = cJSON_GetObjectItemCaseSensitive(payload, "iat");
    nbf = cJSON_GetObjectItemCaseSensitive(payload, "nbf");
    sub = cJSON_GetObjectItemCaseSensitive(payload, "sub");
    role = cJSON_GetObjectItemCaseSensitive(payload, "role");
    sid = cJSON_GetObjectItemCaseSensitive(payload, "sid");
    sxp = cJSON_GetObjectItemCaseSensitive(payload, "sxp");

    rc = CHAT_TOKEN_BAD_CLAIMS;
    claims->iat = 0;

    if (chat_token_json_int(exp, &claims->exp) != 0) {
        goto done;
    }

    if (iat != NULL && chat_token_json_int(iat, &claims->iat) != 0) {
        goto done;
    }

    /* we never issue nbf, but a token that carries one is honoured: no
     * leeway, the edge and the issuer share a clock source (NTP) */
    not_before = 0;
    if (nbf != NULL && chat_token_json_int(nbf, &not_before) != 0) {
        goto done;
    }

    if (!cJSON_IsString(sub) || sub->valuestring[0] < '1'
        || sub->valuestring[0] > '9' || strlen(sub->valuestring) > 18)
    {
        goto done;
    }

    uid = strtoll(sub->valuestring, &end, 10);
    if (*end != '\0' || uid <= 0) {
        goto done;
    }
    claims->uid = uid;

    if (!cJSON_IsString(role) || chat_role_name(role->valuestring, strlen(role->valuestring)) == NULL) {
        goto done;
    }
    strcpy(claims->role, role->valuestring);

    /* the session: what a logout revokes, and its end */
    if (!cJSON_IsString(sid)
        || !chat_token_sid_valid(sid->valuestring, strlen(sid->valuestring))
        || chat_token_json_int(sxp, &claims->sxp) != 0
        || claims->sxp < claims->exp)
    {
        goto done;
    }
    strcpy(claims->sid, sid->valuestring);

    if (claims->exp <= now) {
        rc = CHAT_TOKEN_EXPIRED;
    } else if (nbf != NULL && not_before > now) {
        rc = CHAT_TOKEN_NOT_YET_VALID;
    } else {
        rc = CHAT_TOKEN_OK;
    }

done:

    cJSON_Delete(payload);
    return rc;
}


chat_token_status_t
chat_token_verify(const unsigned char *secret, size_t secret_len,
    const char *token, size_t len, int64_t now, chat_token_claims_t *claims)
{
    int                  n;
    const char          *dot1, *dot2, *end;
    unsigned char        mac[CHAT_TOKEN_MAC_LEN], given[CHAT_TOKEN_MAC_LEN + 3];
    chat_token_status_t  rc;
    chat_token_claims_t  parsed;

    if (len == 0 || len > CHAT_TOKEN_MAX_LEN) {
        return CHAT_TOKEN_MALFORMED;
    }

    end = token + len;
    dot1 = memchr(token, '.', len);
    if (dot1 == NULL) {
        return CHAT_TOKEN_MALFORMED;
    }

    dot2 = memchr(dot1 + 1, '.', (size_t) (end - dot1 - 1));
    if (dot2 == NULL || memchr(dot2 + 1, '.', (size_t) (end - dot2 - 1))) {
        return CHAT_TOKEN_MALFORMED;
    }

    rc = chat_token_check_header(token, (size_t) (dot1 - token));
    if (rc != CHAT_TOKEN_OK) {
        return rc;
    }

    n = chat_b64_decode(CHAT_B64_URL, dot2 + 1, (size_t) (end - dot2 - 1), given,
                           sizeof(given));
    if (n != CHAT_TOKEN_MAC_LEN) {
        return n < 0 ? CHAT_TOKEN_MALFORMED : CHAT_TOKEN_BAD_SIGNATURE;
    }

    if (secret_len < CHAT_TOKEN_MIN_SECRET_LEN
        || chat_token_mac(secret, secret_len, token,
                          (size_t) (dot2 - token), mac) != 0
        || CRYPTO_memcmp(mac, given, CHAT_TOKEN_MAC_LEN) != 0)
    {
        return CHAT_TOKEN_BAD_SIGNATURE;
    }

    /* claims are looked at only once the MAC says we wrote them */
    rc = chat_token_check_claims(dot1 + 1, (size_t) (dot2 - dot1 - 1), now,
                                 &parsed);
    if (rc == CHAT_TOKEN_OK) {
        *claims = parsed;
    }

    return rc;
}


int64_t
chat_token_key_id(const unsigned char *secret, size_t secret_len)
{
    int            i;
    int64_t        id;
    unsigned int   len;
    unsigned char  mac[EVP_MAX_MD_SIZE];

    static const char  label[] = "chat key id";

    if (HMAC(EVP_sha256(), secret, (int) secret_len,
             (const unsigned char *) label, sizeof(label) - 1, mac, &len)
        == NULL || len < 6)
    {
        return 0;
    }

    id = 0;
    for (i = 0; i < 6; i++) {
        id = (id << 8) | mac[i];
    }

    return id != 0 ? id : 1;
}


const char *
chat_token_status_text(chat_token_status_t status)
{
    switch (status) {
    case CHAT_TOKEN_OK:
        return "valid";
    case CHAT_TOKEN_MALFORMED:
        return "malformed token";
    case CHAT_TOKEN_BAD_ALG:
        return "token algorithm is not HS256";
    case CHAT_TOKEN_BAD_SIGNATURE:
        return "bad token signature";
    case CHAT_TOKEN_EXPIRED:
        return "token expired";
    case CHAT_TOKEN_NOT_YET_VALID:
        return "token not valid yet (nbf)";
    case CHAT_TOKEN_BAD_CLAIMS:
        return "token claims missing or invalid";
    }
    return "unknown token error";
}
