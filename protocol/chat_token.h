/*
 * chat_token.h: HS256 JSON Web Tokens, signed by the backend and verified
 * by the edge.  Plain C over OpenSSL and cJSON, no nginx types, so the
 * backend and the unit tests compile the same file.
 *
 * Verification is deliberately narrow: the header must name HS256 (nothing
 * else is accepted, "none" included), every part must be strict unpadded
 * base64url, the MAC is compared in constant time, and the payload must
 * carry a numeric "exp" in the future, a "sub" that is a positive decimal
 * user id, a "role" (chat_role_name, chat_protocol.h), and the sign-in session it
 * belongs to: "sid" (what a logout revokes) and "sxp" (when the session
 * ends: no refresh reaches past it).
 */

#ifndef CHAT_TOKEN_H
#define CHAT_TOKEN_H

#include <stddef.h>
#include <stdint.h>

#define CHAT_TOKEN_MAX_LEN  1024
#define CHAT_TOKEN_MIN_SECRET_LEN  32

/* a session id: 1 to 32 base64url characters; ours are 16 random bytes */
#define CHAT_TOKEN_SID_MAX  32
#define CHAT_TOKEN_SID_LEN  22

typedef enum {
    CHAT_TOKEN_OK = 0,
    CHAT_TOKEN_MALFORMED,       /* not three strict base64url parts, bad JSON */
    CHAT_TOKEN_BAD_ALG,         /* header alg is not exactly HS256 */
    CHAT_TOKEN_BAD_SIGNATURE,   /* MAC mismatch */
    CHAT_TOKEN_EXPIRED,         /* exp <= now */
    CHAT_TOKEN_BAD_CLAIMS,      /* exp, sub, role, sid or sxp missing or
                                   invalid */
    CHAT_TOKEN_NOT_YET_VALID    /* nbf > now */
} chat_token_status_t;

typedef struct {
    int64_t  uid;
    char     role[8];           /* "user", "admin" or "carrier",
                                   NUL-terminated */
    char     sid[CHAT_TOKEN_SID_MAX + 1];   /* NUL-terminated */
    int64_t  iat;
    int64_t  exp;
    int64_t  sxp;               /* the session's end, >= exp */
} chat_token_claims_t;

/*
 * Writes a NUL-terminated token for claims into out.  Returns its length,
 * or -1 when out is too small or the claims are invalid: a secret under
 * the minimum, uid outside 1 .. 10^18 - 1 (the verifier reads 18 digits),
 * a role chat_role_name (chat_protocol.h) does not know, a sid that is not 1 to 32 base64url
 * characters, iat, exp or sxp beyond +-(2^53 - 1) (not exact as a JSON
 * number), exp <= iat or sxp < exp.  So every token it writes verifies.
 */
int chat_token_sign(const unsigned char *secret, size_t secret_len,
    const chat_token_claims_t *claims, char *out, size_t out_size);

/*
 * A fresh session id (CHAT_TOKEN_SID_LEN base64url characters of 16
 * random bytes, NUL-terminated) in sid, of at least CHAT_TOKEN_SID_LEN + 1
 * bytes.  Returns 0, or -1 when the random generator fails.
 */
int chat_token_new_sid(char *sid, size_t size);

/* Whether s (len bytes) is a session id the verifier accepts. */
int chat_token_sid_valid(const char *s, size_t len);

/*
 * Checks token (len bytes, need not be NUL-terminated) at time now (seconds
 * since the epoch).  claims is filled only on CHAT_TOKEN_OK.
 */
chat_token_status_t chat_token_verify(const unsigned char *secret,
    size_t secret_len, const char *token, size_t len, int64_t now,
    chat_token_claims_t *claims);

const char *chat_token_status_text(chat_token_status_t status);

/*
 * A fingerprint of the secret, 1 .. 2^48 - 1: the first six bytes of
 * HMAC-SHA256(secret, "chat key id").  The backend publishes it and the
 * edge compares it with its own (chat_lanes.h), so two sides with
 * different secrets are found at once instead of by tokens that fail; it
 * says nothing usable about the secret.  0 when hashing fails.
 */
int64_t chat_token_key_id(const unsigned char *secret, size_t secret_len);

#endif /* CHAT_TOKEN_H */
