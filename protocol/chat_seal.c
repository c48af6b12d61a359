/*
 * chat_seal.c: the secret fields of a command or a reply (a password, a
 * bearer token) sealed while they are on the bus.
 *
 * Why.  Redis keeps every command and reply in its append-only file
 * until the next rewrite, long after the stream entry was trimmed, and
 * the file outlives the process.  A password or a token written there in
 * clear is a password or a token on disk.  So the edge seals what a
 * command must carry in secret before the XADD, the worker opens it
 * after the read, and the reply travels back the same way: Redis, its
 * AOF and the dead-letter stream only ever hold sealed text.
 *
 * How.  AES-256-GCM with a fresh random 96-bit nonce per value and a key
 * that only the edge and the workers hold: HKDF-SHA256 of the token
 * secret both already read (nothing new to deploy or rotate apart), under
 * a label of its own, so the key is not the HS256 key and not the key of
 * any other use (CHAT_SEAL_HASH_LABEL is the backend's request hash).
 * The associated data binds a value to where it may be opened:
 *
 *   <dir> "\n" <op> "\n" <field> "\n" <gw> "\n" <req>
 *
 * dir "cmd" or "reply"; for a reply also the gateway's reply stream and
 * the request id, so a sealed token opens for exactly the request it
 * answers.  None of the parts can hold "\n" (op names, field names,
 * validated stream keys, decimal ids), so the layout is unambiguous.  A
 * random nonce under one key is safe for about 2^32 values, which at
 * this project's login rates is centuries.
 *
 * The text form is "s1." then unpadded base64url of nonce, ciphertext and
 * the 16-byte tag: a JSON string, so a sealed field stays a field of the
 * body and nothing else in the envelope changes.  "s1" names the format
 * and key derivation, for a later rotation.
 *
 * Which fields are sealed is the table below, read by both sides.
 *
 * What it does not do: hide that a field exists or its length (the email
 * of a login is not secret and stays readable for debugging), or protect
 * against someone who can write to Redis (they can forge commands anyway:
 * the bus trusts its writers).
 */

#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/rand.h>

#include "chat_base64.h"
#include "chat_seal.h"


#define CHAT_SEAL_NONCE_LEN  12
#define CHAT_SEAL_TAG_LEN    16
#define CHAT_SEAL_RAW_MAX    (CHAT_SEAL_NONCE_LEN + CHAT_SEAL_MAX_PLAIN     \
                              + CHAT_SEAL_TAG_LEN)


typedef struct {
    const char         *op;
    const char *const  *fields;
} chat_seal_rule_t;


static const char *const  chat_seal_password[] = { "password", NULL };
static const char *const  chat_seal_token[] = { "token", NULL };

/* what a command carries in secret: the password that scrypt checks */
static const chat_seal_rule_t  chat_seal_commands[] = {
    { "auth.register", chat_seal_password },
    { "auth.login", chat_seal_password },
    { NULL, NULL }
};

/* what a reply carries in secret: the bearer token of a session (also
 * that of a refresh, for the op that gives one) */
static const chat_seal_rule_t  chat_seal_replies[] = {
    { "auth.register", chat_seal_token },
    { "auth.login", chat_seal_token },
    { "auth.refresh", chat_seal_token },
    { NULL, NULL }
};


static const char *const *
chat_seal_lookup(const chat_seal_rule_t *rules, const char *op, size_t len)
{
    for ( /* void */ ; rules->op; rules++) {
        if (strlen(rules->op) == len && memcmp(rules->op, op, len) == 0) {
            return rules->fields;
        }
    }

    return NULL;
}


const char *const *
chat_seal_command_fields(const char *op, size_t op_len)
{
    return chat_seal_lookup(chat_seal_commands, op, op_len);
}


const char *const *
chat_seal_reply_fields(const char *op, size_t op_len)
{
    return chat_seal_lookup(chat_seal_replies, op, op_len);
}


int
chat_seal_derive(const unsigned char *secret, size_t secret_len,
    const char *label, unsigned char *out, size_t len)
{
    int           rc;
    EVP_KDF      *kdf;
    OSSL_PARAM    params[4];
    EVP_KDF_CTX  *kctx;

    kdf = EVP_KDF_fetch(NULL, OSSL_KDF_NAME_HKDF, NULL);
    if (kdf == NULL) {
        return -1;
    }

    kctx = EVP_KDF_CTX_new(kdf);
    EVP_KDF_free(kdf);

    if (kctx == NULL) {
        return -1;
    }

    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST,
                                                 (char *) "SHA256", 0);
    params[1] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY,
                                                  (void *) secret,
                                                  secret_len);
    params[2] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO,
                                                  (void *) label,
                                                  strlen(label));
    params[3] = OSSL_PARAM_construct_end();

    rc = EVP_KDF_derive(kctx, out, len, params) == 1 ? 0 : -1;

    EVP_KDF_CTX_free(kctx);

    return rc;
}


/* Feeds the associated data of (ad, field) into a GCM context. */
static int
chat_seal_aad(EVP_CIPHER_CTX *ctx, const chat_seal_ad_t *ad,
    const char *field)
{
    int          n;
    size_t       i;
    const char  *part[5];
    size_t       len[5];

    part[0] = ad->dir;      len[0] = strlen(ad->dir);
    part[1] = ad->op;       len[1] = ad->op_len;
    part[2] = field;        len[2] = strlen(field);
    part[3] = ad->gw;       len[3] = ad->gw_len;
    part[4] = ad->req;      len[4] = ad->req_len;

    for (i = 0; i < 5; i++) {
        if ((i > 0 && EVP_CipherUpdate(ctx, NULL, &n,
                                       (const unsigned char *) "\n", 1)
                      != 1)
            || (len[i] > 0
                && EVP_CipherUpdate(ctx, NULL, &n,
                                    (const unsigned char *) part[i],
                                    (int) len[i])
                   != 1))
        {
            return -1;
        }
    }

    return 0;
}


int
chat_seal(const unsigned char *key, const chat_seal_ad_t *ad,
    const char *field, const unsigned char *plain, size_t len, char *out,
    size_t out_size)
{
    int              n, rc, enc;
    size_t           plen;
    unsigned char    raw[CHAT_SEAL_RAW_MAX];
    EVP_CIPHER_CTX  *ctx;

    plen = sizeof(CHAT_SEAL_PREFIX) - 1;

    if (len > CHAT_SEAL_MAX_PLAIN || out_size < plen) {
        return -1;
    }

    ctx = EVP_CIPHER_CTX_new();
    if (ctx == NULL) {
        return -1;
    }

    rc = -1;
    n = 0;

    if (RAND_bytes(raw, CHAT_SEAL_NONCE_LEN) != 1
        || EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, key, raw) != 1
        || chat_seal_aad(ctx, ad, field) != 0
        || EVP_EncryptUpdate(ctx, raw + CHAT_SEAL_NONCE_LEN, &n, plain,
                             (int) len) != 1
        || EVP_EncryptFinal_ex(ctx, raw + CHAT_SEAL_NONCE_LEN + n, &n) != 1
        || EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, CHAT_SEAL_TAG_LEN,
                               raw + CHAT_SEAL_NONCE_LEN + len) != 1)
    {
        goto done;
    }

    memcpy(out, CHAT_SEAL_PREFIX, plen);

    enc = chat_b64_encode(CHAT_B64_URL, raw,
                          CHAT_SEAL_NONCE_LEN + len + CHAT_SEAL_TAG_LEN,
                          out + plen, out_size - plen);
    if (enc >= 0) {
        rc = (int) plen + enc;
    }

done:

    EVP_CIPHER_CTX_free(ctx);
    OPENSSL_cleanse(raw, sizeof(raw));

    return rc;
}


int
chat_seal_open(const unsigned char *key, const chat_seal_ad_t *ad,
    const char *field, const char *sealed, size_t len, unsigned char *out,
    size_t out_size)
{
    int              n, m, rc, raw_len;
    size_t           plen, clen;
    unsigned char    raw[CHAT_SEAL_RAW_MAX];
    EVP_CIPHER_CTX  *ctx;

    plen = sizeof(CHAT_SEAL_PREFIX) - 1;

    if (len < plen || memcmp(sealed, CHAT_SEAL_PREFIX, plen) != 0) {
        return -1;
    }

    raw_len = chat_b64_decode(CHAT_B64_URL, sealed + plen, len - plen, raw,
                              sizeof(raw));

    if (raw_len < CHAT_SEAL_NONCE_LEN + CHAT_SEAL_TAG_LEN) {
        return -1;
    }

    clen = (size_t) raw_len - CHAT_SEAL_NONCE_LEN - CHAT_SEAL_TAG_LEN;

    if (clen + 1 > out_size) {
        return -1;
    }

    ctx = EVP_CIPHER_CTX_new();
    if (ctx == NULL) {
        return -1;
    }

    rc = -1;
    n = 0;
    m = 0;

    if (EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, key, raw) == 1
        && chat_seal_aad(ctx, ad, field) == 0
        && EVP_DecryptUpdate(ctx, out, &n, raw + CHAT_SEAL_NONCE_LEN,
                             (int) clen) == 1
        && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, CHAT_SEAL_TAG_LEN,
                               raw + CHAT_SEAL_NONCE_LEN + clen) == 1
        && EVP_DecryptFinal_ex(ctx, out + n, &m) == 1)
    {
        rc = n + m;
        out[rc] = '\0';

    } else {
        /* nothing of an unauthenticated plaintext is handed out */
        OPENSSL_cleanse(out, out_size);
    }

    EVP_CIPHER_CTX_free(ctx);

    return rc;
}


int
chat_seal_json(const unsigned char *key, const chat_seal_ad_t *ad,
    const char *const *fields, cJSON *obj)
{
    int      n;
    char     text[CHAT_SEAL_TEXT_LEN(CHAT_SEAL_MAX_PLAIN)];
    cJSON   *item, *sealed;

    for ( /* void */ ; fields && *fields; fields++) {
        item = cJSON_GetObjectItemCaseSensitive(obj, *fields);
        if (item == NULL) {
            continue;
        }

        if (!cJSON_IsString(item) || item->valuestring == NULL) {
            return -1;
        }

        n = chat_seal(key, ad, *fields,
                      (const unsigned char *) item->valuestring,
                      strlen(item->valuestring), text, sizeof(text));
        if (n < 0) {
            return -1;
        }

        sealed = cJSON_CreateString(text);
        if (sealed == NULL) {
            return -1;
        }

        /* the clear value goes with the item it replaces */
        OPENSSL_cleanse(item->valuestring, strlen(item->valuestring));

        if (!cJSON_ReplaceItemInObjectCaseSensitive(obj, *fields, sealed)) {
            cJSON_Delete(sealed);
            return -1;
        }
    }

    return 0;
}


int
chat_seal_open_json(const unsigned char *key, const chat_seal_ad_t *ad,
    const char *const *fields, cJSON *obj)
{
    int             n, rc;
    cJSON          *item, *plain;
    unsigned char   text[CHAT_SEAL_MAX_PLAIN + 1];

    rc = 0;

    for ( /* void */ ; fields && *fields; fields++) {
        item = cJSON_GetObjectItemCaseSensitive(obj, *fields);
        if (item == NULL) {
            continue;
        }

        if (!cJSON_IsString(item) || item->valuestring == NULL) {
            rc = -1;
            break;
        }

        n = chat_seal_open(key, ad, *fields, item->valuestring,
                           strlen(item->valuestring), text, sizeof(text));

        if (n < 0 || memchr(text, '\0', (size_t) n) != NULL) {
            rc = -1;
            break;
        }

        plain = cJSON_CreateString((const char *) text);
        if (plain == NULL
            || !cJSON_ReplaceItemInObjectCaseSensitive(obj, *fields, plain))
        {
            cJSON_Delete(plain);
            rc = -1;
            break;
        }
    }

    OPENSSL_cleanse(text, sizeof(text));

    return rc;
}
