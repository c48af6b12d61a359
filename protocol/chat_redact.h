/*
 * chat_redact.h: a request line (or URI) fit for a log: the values of the
 * query parameters that carry credentials are replaced.  Plain C, no
 * nginx types, so the unit tests and the fuzzer compile it too.
 */

#ifndef CHAT_REDACT_H
#define CHAT_REDACT_H

#include <stddef.h>

/* what a hidden value is replaced with */
#define CHAT_REDACTED  "[hidden]"

/* an output buffer of this size always suffices for an input of len */
#define chat_redact_bound(len)  (2 * (len) + 16)

/*
 * Copies in (len bytes: "GET /ws?a=1&access_token=x HTTP/1.1", or just
 * "/ws?ticket=y") to out, with the value of every access_token and ticket
 * query parameter (names compared case-insensitively, as nginx's
 * ngx_http_arg() finds them) replaced by CHAT_REDACTED.  The query is
 * what follows the first '?' up to a space or '#'.  Returns the length
 * written (no NUL is added), or -1 when out_size is too small.
 */
int chat_redact_query(const char *in, size_t len, char *out, size_t out_size);

/*
 * Whether in (len bytes) holds a credential parameter in its query; when
 * it does not, chat_redact_query() would copy it unchanged.
 */
int chat_redact_needed(const char *in, size_t len);

#endif /* CHAT_REDACT_H */
