/*
 * password.h: password hashing with scrypt (OpenSSL 3 EVP_KDF) in a
 * self-describing string.  See password.c.
 */

#ifndef CHAT_PASSWORD_H
#define CHAT_PASSWORD_H

#include <stddef.h>

/* buffer size that holds any hash string this module writes or accepts */
#define CHAT_PASSWORD_HASH_SIZE  256

/* the parameters new hashes get: N = 2^14, r = 8, p = 5, one of OWASP's
 * equal-strength scrypt settings (see password.c for why this one) */
#define CHAT_PASSWORD_LN  14
#define CHAT_PASSWORD_R   8
#define CHAT_PASSWORD_P   5

/*
 * Hashes password (len bytes) with a fresh random salt and the default
 * parameters, writing "$scrypt$ln=14,r=8,p=5$<salt>$<hash>" (standard
 * base64, unpadded) NUL-terminated into out.  Returns 0, or -1 when out
 * is too small or OpenSSL fails (the reason is logged).
 */
int chat_password_hash(const char *password, size_t len, char *out,
    size_t out_size);

/* The same with explicit parameters (for tests and future upgrades);
 * the parameters must pass the limits chat_password_verify applies. */
int chat_password_hash_params(const char *password, size_t len,
    unsigned ln, unsigned r, unsigned p, char *out, size_t out_size);

/*
 * Checks password against a stored hash string, reading the parameters
 * from the string.  Returns 1 on a match, 0 on a mismatch, -1 when the
 * stored string is malformed, names another algorithm or parameters
 * outside the accepted limits, or OpenSSL fails.  The comparison runs in
 * constant time.
 */
int chat_password_verify(const char *password, size_t len,
    const char *stored);

/* Frees the cached KDF handle (only to keep leak checkers quiet). */
void chat_password_cleanup(void);

#endif /* CHAT_PASSWORD_H */
