/*
 * validate.h: pure checks of user input (UTF-8, e-mail, display name,
 * password length).  No I/O, no allocation.  See validate.c.
 */

#ifndef CHAT_VALIDATE_H
#define CHAT_VALIDATE_H

#include <stddef.h>

#define CHAT_EMAIL_MAX              254     /* bytes */
#define CHAT_DISPLAY_NAME_MAX       100     /* characters */
#define CHAT_DISPLAY_NAME_MAX_BYTES (CHAT_DISPLAY_NAME_MAX * 4)
#define CHAT_PASSWORD_MIN           8       /* bytes */
#define CHAT_PASSWORD_MAX           1024    /* bytes */


/* Decodes one UTF-8 sequence at s (avail > 0 bytes available).  Returns
 * its length and stores the code point, or returns 0 if the sequence is
 * not well-formed. */
size_t chat_utf8_next(const unsigned char *s, size_t avail,
    unsigned *cp);

/* Narrows [*s, *s + *len) to drop leading and trailing ASCII white
 * space. */
void chat_trim(const char **s, size_t *len);

/*
 * The checks below return NULL when the value is acceptable and has been
 * written, NUL-terminated, into out; otherwise a static sentence saying
 * what is wrong, suitable for an API error message.  out_size must be at
 * least the documented maximum + 1 for the value to fit.
 */

/* Trims ASCII white space, lowercases ASCII letters, then requires exactly
 * one '@' with non-empty parts, no white space or control characters,
 * valid UTF-8, at most CHAT_EMAIL_MAX bytes. */
const char *chat_email_normalize(const char *in, size_t len, char *out,
    size_t out_size);

/* Trims ASCII white space, then requires valid UTF-8, 1 to
 * CHAT_DISPLAY_NAME_MAX characters, no control characters. */
const char *chat_display_name_normalize(const char *in, size_t len,
    char *out, size_t out_size);

/* Requires CHAT_PASSWORD_MIN to CHAT_PASSWORD_MAX bytes.  Passwords are
 * never trimmed or rewritten. */
const char *chat_password_check(const char *password, size_t len);

#endif /* CHAT_VALIDATE_H */
