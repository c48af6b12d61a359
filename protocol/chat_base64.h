/*
 * chat_base64.h: unpadded base64 in either alphabet, strict on decode.
 * Tokens use the URL-safe alphabet (RFC 4648 section 5), password hashes
 * the standard one.  Plain C, shared by the edge and the backend.
 */

#ifndef CHAT_BASE64_H
#define CHAT_BASE64_H

#include <stddef.h>

typedef enum {
    CHAT_B64_STD,       /* A-Z a-z 0-9 + / */
    CHAT_B64_URL        /* A-Z a-z 0-9 - _ */
} chat_b64_alphabet_t;

/*
 * Encodes len bytes without padding and NUL-terminates.  Returns the
 * encoded length, or -1 when out cannot hold it and the NUL.
 */
int chat_b64_encode(chat_b64_alphabet_t alphabet, const unsigned char *in,
    size_t len, char *out, size_t out_size);

/*
 * Decodes exactly len characters.  Refuses (-1) padding, characters
 * outside the alphabet, a length that leaves 6 dangling bits, non-zero
 * unused bits in the last character (so each byte string has exactly one
 * spelling), and output larger than out_size.  Returns the byte count.
 */
int chat_b64_decode(chat_b64_alphabet_t alphabet, const char *in, size_t len,
    unsigned char *out, size_t out_size);

#endif /* CHAT_BASE64_H */
