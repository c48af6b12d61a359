/*
 * chat_seal.h: secret fields sealed for their trip over the command bus.
 * Plain C over OpenSSL and cJSON, no nginx types: the edge, the backend
 * and the unit tests compile this one file.  See chat_seal.c.
 */

#ifndef CHAT_SEAL_H
#define CHAT_SEAL_H

#include <stddef.h>

#include <cjson/cJSON.h>

#define CHAT_SEAL_KEY_LEN    32

/* the HKDF labels of the keys derived from the token secret */
#define CHAT_SEAL_LABEL      "chat bus seal v1"
#define CHAT_SEAL_HASH_LABEL "chat request hash v1"

/* "s1." then base64url(nonce 12 || ciphertext || tag 16), unpadded */
#define CHAT_SEAL_PREFIX     "s1."
#define CHAT_SEAL_OVERHEAD   (12 + 16)
#define CHAT_SEAL_TEXT_LEN(n)                                               \
    (sizeof(CHAT_SEAL_PREFIX) - 1 + ((n) + CHAT_SEAL_OVERHEAD) / 3 * 4 + 4)

/* the longest value a sealed field may carry, bytes */
#define CHAT_SEAL_MAX_PLAIN  4096

/*
 * Where a sealed value may be opened: the direction ("cmd" or "reply"),
 * the op, and for replies the gateway's reply stream and the request id
 * (the command's "gw" and "req").  The field's name is added per field.
 * All bytes, not necessarily NUL-terminated; gw and req may be empty.
 */
typedef struct {
    const char  *dir;
    const char  *op;        size_t  op_len;
    const char  *gw;        size_t  gw_len;
    const char  *req;       size_t  req_len;
} chat_seal_ad_t;

/*
 * Derives len bytes from the token secret with HKDF-SHA256 under label
 * (one of the CHAT_SEAL_*LABEL): 0, or -1.
 */
int chat_seal_derive(const unsigned char *secret, size_t secret_len,
    const char *label, unsigned char *out, size_t len);

/*
 * Seals plain (len bytes) under key with ad into out as NUL-terminated
 * text: its length, or -1 (out too small, len over CHAT_SEAL_MAX_PLAIN,
 * OpenSSL failed).  Every call draws a fresh random nonce.
 */
int chat_seal(const unsigned char *key, const chat_seal_ad_t *ad,
    const char *field, const unsigned char *plain, size_t len, char *out,
    size_t out_size);

/*
 * Opens sealed text (len bytes) made by chat_seal with the same key, ad
 * and field into out (NUL-terminated): the plain length, or -1 when it
 * is not sealed text, was sealed for another place, was altered, or
 * does not fit.
 */
int chat_seal_open(const unsigned char *key, const chat_seal_ad_t *ad,
    const char *field, const char *sealed, size_t len, unsigned char *out,
    size_t out_size);

/*
 * Which top-level body fields travel sealed: in a command of op, and in
 * a 2xx reply to it.  A NULL-terminated list, or NULL for none.  Both
 * sides read the same table, so a field cannot be sealed on one side
 * and taken as plain on the other.
 */
const char *const *chat_seal_command_fields(const char *op, size_t op_len);
const char *const *chat_seal_reply_fields(const char *op, size_t op_len);

/*
 * Replaces each of fields that obj has (a JSON string) with its sealed
 * text: 0, or -1 (one is not a string, or sealing failed; obj may then
 * be half sealed and must not be sent).
 */
int chat_seal_json(const unsigned char *key, const chat_seal_ad_t *ad,
    const char *const *fields, cJSON *obj);

/*
 * The reverse: each of fields that obj has must be sealed text that
 * opens with ad, and is replaced by its plain string (without NUL, as
 * the JSON string it was made from).  0, or -1 naming
 * nothing: a listed field in clear counts as a failure, so a side that
 * forgot to seal is caught, not trusted.
 */
int chat_seal_open_json(const unsigned char *key, const chat_seal_ad_t *ad,
    const char *const *fields, cJSON *obj);

#endif /* CHAT_SEAL_H */
