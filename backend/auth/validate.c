/*
 * validate.c: the rules for what a user may type, kept apart from the
 * operations so they are unit-tested without a database and shared by the
 * auth operations and the user-add subcommand.
 *
 * How it works: each check trims what the rule says may be trimmed, walks
 * the bytes once, and either copies the normalised value out or names the
 * first problem in words a client developer can act on.  UTF-8 is checked
 * strictly because PostgreSQL refuses malformed text, and a value that
 * reaches the database only to fail there would look like an outage.
 *
 * What it does not do: check that an e-mail domain exists, apply Unicode
 * normalisation or case folding beyond ASCII, or judge password strength
 * beyond its length.
 */

#include <string.h>

#include "chat_utf8.h"
#include "validate.h"


static int
chat_is_ascii_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f'
           || c == '\v';
}


void
chat_trim(const char **s, size_t *len)
{
    while (*len > 0 && chat_is_ascii_space((unsigned char) (*s)[0])) {
        (*s)++;
        (*len)--;
    }

    while (*len > 0 && chat_is_ascii_space((unsigned char) (*s)[*len - 1])) {
        (*len)--;
    }
}


size_t
chat_utf8_next(const unsigned char *s, size_t avail, unsigned *cp)
{
    size_t    n, i;
    unsigned  c, min;

    c = s[0];

    if (c < 0x80) {
        *cp = c;
        return 1;
    }

    if (c >= 0xc2 && c <= 0xdf) {
        n = 2; c &= 0x1f; min = 0x80;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3; c &= 0x0f; min = 0x800;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4; c &= 0x07; min = 0x10000;
    } else {
        return 0;               /* continuation byte, C0/C1, F5..FF */
    }

    if (avail < n) {
        return 0;
    }

    for (i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80) {
            return 0;
        }
        c = (c << 6) | (s[i] & 0x3f);
    }

    if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff)) {
        return 0;               /* overlong, out of range, surrogate */
    }

    *cp = c;
    return n;
}


const char *
chat_email_normalize(const char *in, size_t len, char *out, size_t out_size)
{
    size_t         i, at, ats;
    unsigned char  c;

    chat_trim(&in, &len);

    if (len == 0) {
        return "email is empty";
    }

    if (len > CHAT_EMAIL_MAX) {
        return "email is longer than 254 bytes";
    }

    if (len + 1 > out_size) {
        return "email is too long";
    }

    if (!chat_utf8_valid((const unsigned char *) in, len)) {
        return "email is not valid UTF-8";
    }

    ats = 0;
    at = 0;

    for (i = 0; i < len; i++) {
        c = (unsigned char) in[i];

        if (c <= 0x20 || c == 0x7f) {
            return "email must not contain spaces or control characters";
        }

        if (c == '@') {
            ats++;
            at = i;
        }

        out[i] = (c >= 'A' && c <= 'Z') ? (char) (c + ('a' - 'A')) : (char) c;
    }

    out[len] = '\0';

    if (ats != 1) {
        return "email must contain exactly one @";
    }

    if (at == 0 || at == len - 1) {
        return "email needs a name before and a domain after the @";
    }

    return NULL;
}


const char *
chat_display_name_normalize(const char *in, size_t len, char *out,
    size_t out_size)
{
    size_t    i, n, chars;
    unsigned  cp;

    chat_trim(&in, &len);

    if (len == 0) {
        return "display_name is empty";
    }

    chars = 0;

    for (i = 0; i < len; i += n) {
        n = chat_utf8_next((const unsigned char *) in + i, len - i, &cp);
        if (n == 0) {
            return "display_name is not valid UTF-8";
        }

        if (cp < 0x20 || (cp >= 0x7f && cp <= 0x9f)) {
            return "display_name must not contain control characters";
        }

        if (++chars > CHAT_DISPLAY_NAME_MAX) {
            return "display_name is longer than 100 characters";
        }
    }

    if (len + 1 > out_size) {
        return "display_name is too long";
    }

    memcpy(out, in, len);
    out[len] = '\0';

    return NULL;
}


const char *
chat_password_check(const char *password, size_t len)
{
    (void) password;

    if (len < CHAT_PASSWORD_MIN) {
        return "password must be at least 8 bytes";
    }

    if (len > CHAT_PASSWORD_MAX) {
        return "password must be at most 1024 bytes";
    }

    return NULL;
}
