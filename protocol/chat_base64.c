/*
 * chat_base64.c: the project's one base64 codec.  Encoding never pads;
 * decoding accepts only the canonical unpadded spelling, because both users
 * (token MACs, password hash strings) compare or verify what they decode
 * and a second spelling of the same bytes would be a second valid token.
 */

#include <stdint.h>

#include "chat_base64.h"


static const char *const chat_b64_alphabets[] = {
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
};


int
chat_b64_encode(chat_b64_alphabet_t alphabet, const unsigned char *in,
    size_t len, char *out, size_t out_size)
{
    size_t       i, n;
    uint32_t     v;
    const char  *a;

    if ((len * 4 + 2) / 3 + 1 > out_size) {
        return -1;
    }

    a = chat_b64_alphabets[alphabet];
    n = 0;

    for (i = 0; i + 2 < len; i += 3) {
        v = (uint32_t) in[i] << 16 | (uint32_t) in[i + 1] << 8 | in[i + 2];
        out[n++] = a[(v >> 18) & 63];
        out[n++] = a[(v >> 12) & 63];
        out[n++] = a[(v >> 6) & 63];
        out[n++] = a[v & 63];
    }

    if (len - i == 1) {
        v = (uint32_t) in[i] << 16;
        out[n++] = a[(v >> 18) & 63];
        out[n++] = a[(v >> 12) & 63];

    } else if (len - i == 2) {
        v = (uint32_t) in[i] << 16 | (uint32_t) in[i + 1] << 8;
        out[n++] = a[(v >> 18) & 63];
        out[n++] = a[(v >> 12) & 63];
        out[n++] = a[(v >> 6) & 63];
    }

    out[n] = '\0';
    return (int) n;
}


static int
chat_b64_value(chat_b64_alphabet_t alphabet, unsigned char c)
{
    if (c >= 'A' && c <= 'Z') {
        return c - 'A';
    }
    if (c >= 'a' && c <= 'z') {
        return c - 'a' + 26;
    }
    if (c >= '0' && c <= '9') {
        return c - '0' + 52;
    }
    if (c == (alphabet == CHAT_B64_URL ? '-' : '+')) {
        return 62;
    }
    if (c == (alphabet == CHAT_B64_URL ? '_' : '/')) {
        return 63;
    }
    return -1;
}


int
chat_b64_decode(chat_b64_alphabet_t alphabet, const char *in, size_t len,
    unsigned char *out, size_t out_size)
{
    int       d;
    size_t    i, n, bits;
    uint32_t  acc;

    if (len % 4 == 1 || len * 3 / 4 > out_size) {
        return -1;
    }

    acc = 0;
    bits = 0;
    n = 0;

    for (i = 0; i < len; i++) {
        d = chat_b64_value(alphabet, (unsigned char) in[i]);
        if (d < 0) {
            return -1;
        }

        acc = (acc << 6) | (uint32_t) d;
        bits += 6;

        if (bits >= 8) {
            bits -= 8;
            out[n++] = (unsigned char) (acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }

    if (acc != 0) {
        return -1;              /* unused trailing bits must be zero */
    }

    return (int) n;
}
