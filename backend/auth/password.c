/*
 * password.c: how passwords are stored and checked.
 *
 * A password is never stored, only scrypt(password, salt) computed by
 * OpenSSL 3's EVP_KDF "SCRYPT", with a fresh 16-byte salt from RAND_bytes
 * and a 32-byte output, written as one self-describing string:
 *
 *   $scrypt$ln=14,r=8,p=5$<base64 salt>$<base64 hash>
 *
 * ln is log2(N).  OWASP lists N = 2^17, r = 8, p = 1 (128 MiB) and
 * N = 2^14, r = 8, p = 5 (16 MiB) among its equal-strength minimums; new
 * hashes get the second.  The 128 MiB one is bound by memory bandwidth: on
 * a 2-core host it took 0.68 s of a core against 0.20 s, and while a burst
 * of sign-ups ran it streamed through the caches every other process on
 * the machine uses, doubling a chat message's latency (the benchmark's
 * figure 7).  Either way each hash costs a noticeable slice of a core,
 * which is the point.  Because the
 * string names its parameters, verification reads them back from it: the
 * defaults can change and old hashes (ln=17,r=8,p=1 ones included) keep
 * working; nothing re-hashes them at login yet.  Base64 is the standard alphabet without
 * padding, decoded strictly so a string has exactly one spelling.
 *
 * Verification recomputes the hash with the stored salt and parameters and
 * compares with CRYPTO_memcmp, whose running time does not depend on where
 * the first difference is.  Parameters are bounded before any work is
 * done, so a corrupted row cannot make a worker allocate gigabytes.
 *
 * What it does not do: decide policy (length rules live in validate.c),
 * run in the background (the caller blocks; workers may), or pepper.
 */

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include "chat_base64.h"
#include "log.h"
#include "password.h"


#define CHAT_SCRYPT_PREFIX    "$scrypt$"
#define CHAT_SCRYPT_SALT_LEN  16
#define CHAT_SCRYPT_HASH_LEN  32

/* limits a stored string must respect */
#define CHAT_SCRYPT_LN_MIN    10
#define CHAT_SCRYPT_LN_MAX    20
#define CHAT_SCRYPT_R_MAX     16
#define CHAT_SCRYPT_P_MAX     16
#define CHAT_SCRYPT_MEM_MAX   ((uint64_t) 512 * 1024 * 1024)
#define CHAT_SCRYPT_SALT_MIN  8
#define CHAT_SCRYPT_BIN_MAX   64

/* OpenSSL refuses to use more than maxmem; ours is above anything the
 * limits allow (128 * r * N plus the 128 * r * p working blocks) */
#define CHAT_SCRYPT_MAXMEM    ((uint64_t) 1024 * 1024 * 1024)

static EVP_KDF  *chat_scrypt_kdf;

/* ------------------------------------------------------------------------
 * scrypt
 * --------------------------------------------------------------------- */

static void
chat_password_log_openssl(const char *what)
{
    char           buf[256];
    unsigned long  e;

    e = ERR_get_error();
    ERR_error_string_n(e, buf, sizeof(buf));
    ERR_clear_error();

    chat_log_error("password: %s: %s", what, e ? buf : "unknown error");
}


static int
chat_password_params_ok(unsigned ln, unsigned r, unsigned p)
{
    return ln >= CHAT_SCRYPT_LN_MIN && ln <= CHAT_SCRYPT_LN_MAX
           && r >= 1 && r <= CHAT_SCRYPT_R_MAX
           && p >= 1 && p <= CHAT_SCRYPT_P_MAX
           && (uint64_t) 128 * r * ((uint64_t) 1 << ln) <= CHAT_SCRYPT_MEM_MAX;
}


static int
chat_scrypt(const char *password, size_t len, const unsigned char *salt,
    size_t salt_len, unsigned ln, unsigned r, unsigned p,
    unsigned char *out, size_t out_len)
{
    int            rc;
    uint32_t       r32, p32;
    uint64_t       n, maxmem;
    OSSL_PARAM     params[7], *pp;
    EVP_KDF_CTX   *kctx;

    rc = -1;
    kctx = NULL;

    if (chat_scrypt_kdf == NULL) {
        chat_scrypt_kdf = EVP_KDF_fetch(NULL, OSSL_KDF_NAME_SCRYPT, NULL);
        if (chat_scrypt_kdf == NULL) {
            chat_password_log_openssl("EVP_KDF_fetch(SCRYPT)");
            goto err;
        }
    }

    kctx = EVP_KDF_CTX_new(chat_scrypt_kdf);
    if (kctx == NULL) {
        chat_password_log_openssl("EVP_KDF_CTX_new");
        goto err;
    }

    n = (uint64_t) 1 << ln;
    r32 = r;
    p32 = p;
    maxmem = CHAT_SCRYPT_MAXMEM;

    /* OSSL_PARAM wants non-const pointers; the KDF only reads them */
    pp = params;
    *pp++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_PASSWORD,
                                              (void *) password, len);
    *pp++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT,
                                              (void *) salt, salt_len);
    *pp++ = OSSL_PARAM_construct_uint64(OSSL_KDF_PARAM_SCRYPT_N, &n);
    *pp++ = OSSL_PARAM_construct_uint32(OSSL_KDF_PARAM_SCRYPT_R, &r32);
    *pp++ = OSSL_PARAM_construct_uint32(OSSL_KDF_PARAM_SCRYPT_P, &p32);
    *pp++ = OSSL_PARAM_construct_uint64(OSSL_KDF_PARAM_SCRYPT_MAXMEM,
                                        &maxmem);
    *pp = OSSL_PARAM_construct_end();

    if (EVP_KDF_derive(kctx, out, out_len, params) != 1) {
        chat_password_log_openssl("EVP_KDF_derive(SCRYPT)");
        goto err;
    }

    rc = 0;

err:

    EVP_KDF_CTX_free(kctx);
    return rc;
}


int
chat_password_hash(const char *password, size_t len, char *out,
    size_t out_size)
{
    return chat_password_hash_params(password, len, CHAT_PASSWORD_LN,
                                     CHAT_PASSWORD_R, CHAT_PASSWORD_P,
                                     out, out_size);
}


int
chat_password_hash_params(const char *password, size_t len, unsigned ln,
    unsigned r, unsigned p, char *out, size_t out_size)
{
    int            rc, n, m;
    unsigned char  salt[CHAT_SCRYPT_SALT_LEN], hash[CHAT_SCRYPT_HASH_LEN];

    rc = -1;

    if (!chat_password_params_ok(ln, r, p)) {
        chat_log_error("password: scrypt parameters out of range");
        goto err;
    }

    if (RAND_bytes(salt, sizeof(salt)) != 1) {
        chat_password_log_openssl("RAND_bytes");
        goto err;
    }

    if (chat_scrypt(password, len, salt, sizeof(salt), ln, r, p,
                    hash, sizeof(hash)) != 0)
    {
        goto err;
    }

    n = snprintf(out, out_size, CHAT_SCRYPT_PREFIX "ln=%u,r=%u,p=%u$",
                 ln, r, p);
    if (n < 0 || (size_t) n >= out_size) {
        goto err;
    }

    m = chat_b64_encode(CHAT_B64_STD, salt, sizeof(salt), out + n, out_size - n);
    if (m < 0 || (size_t) (n + m + 1) >= out_size) {
        goto err;
    }

    n += m;
    out[n++] = '$';

    if (chat_b64_encode(CHAT_B64_STD, hash, sizeof(hash), out + n, out_size - n) < 0) {
        goto err;
    }

    rc = 0;

err:

    if (rc != 0 && out_size > 0) {
        out[0] = '\0';
    }

    OPENSSL_cleanse(hash, sizeof(hash));
    return rc;
}


/* Reads "<name>=<1..3 digits, no leading zero><sep>" at *s and advances. */
static int
chat_password_param(const char **s, const char *name, char sep,
    unsigned *value)
{
    size_t       i, nlen;
    unsigned     v;
    const char  *p;

    p = *s;
    nlen = strlen(name);

    if (strncmp(p, name, nlen) != 0 || p[nlen] != '=') {
        return -1;
    }

    p += nlen + 1;
    v = 0;

    for (i = 0; p[i] >= '0' && p[i] <= '9'; i++) {
        if (i == 3 || (i == 1 && p[0] == '0')) {
            return -1;
        }
        v = v * 10 + (unsigned) (p[i] - '0');
    }

    if (i == 0 || p[i] != sep) {
        return -1;
    }

    *value = v;
    *s = p + i + 1;
    return 0;
}


int
chat_password_verify(const char *password, size_t len, const char *stored)
{
    int            rc, salt_len, hash_len;
    unsigned       ln, r, p;
    const char    *s, *dollar;
    unsigned char  salt[CHAT_SCRYPT_BIN_MAX], want[CHAT_SCRYPT_BIN_MAX];
    unsigned char  got[CHAT_SCRYPT_BIN_MAX];

    rc = -1;
    hash_len = 0;

    if (strncmp(stored, CHAT_SCRYPT_PREFIX, sizeof(CHAT_SCRYPT_PREFIX) - 1)
        != 0)
    {
        goto err;
    }

    s = stored + sizeof(CHAT_SCRYPT_PREFIX) - 1;

    if (chat_password_param(&s, "ln", ',', &ln) != 0
        || chat_password_param(&s, "r", ',', &r) != 0
        || chat_password_param(&s, "p", '$', &p) != 0
        || !chat_password_params_ok(ln, r, p))
    {
        goto err;
    }

    dollar = strchr(s, '$');
    if (dollar == NULL) {
        goto err;
    }

    salt_len = chat_b64_decode(CHAT_B64_STD, s, dollar - s, salt, sizeof(salt));
    hash_len = chat_b64_decode(CHAT_B64_STD, dollar + 1, strlen(dollar + 1), want,
                               sizeof(want));

    /* the hash must be exactly as long as we write them: scrypt's output
     * of n bytes is the first n bytes of a longer one, so a truncated
     * string (its shorter base64 can still be a strict spelling) would
     * otherwise verify */
    if (salt_len < CHAT_SCRYPT_SALT_MIN || hash_len != CHAT_SCRYPT_HASH_LEN) {
        goto err;
    }

    if (chat_scrypt(password, len, salt, salt_len, ln, r, p, got, hash_len)
        != 0)
    {
        goto err;
    }

    rc = CRYPTO_memcmp(got, want, hash_len) == 0 ? 1 : 0;

err:

    if (hash_len > 0) {
        OPENSSL_cleanse(got, hash_len);
    }

    return rc;
}


void
chat_password_cleanup(void)
{
    EVP_KDF_free(chat_scrypt_kdf);
    chat_scrypt_kdf = NULL;
}
