/*
 * session.h: the sign-in session a token belongs to.  See session.c.
 */

#ifndef CHAT_AUTH_SESSION_H
#define CHAT_AUTH_SESSION_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "config.h"

/*
 * Signs a token for uid and role into token (size bytes, at least
 * CHAT_TOKEN_MAX_LEN).  session NULL starts a new session (a fresh sid,
 * ending cfg->session_ttl from now); else it is {"sid", "sxp"} of the
 * session to continue.  The token lives cfg->token_ttl, never past the
 * session's end.  Returns 0, or -1 (bad session, session over, no
 * randomness).
 */
int chat_auth_sign(const chat_config_t *cfg, int64_t uid, const char *role,
    const cJSON *session, char *token, size_t size);

#endif /* CHAT_AUTH_SESSION_H */
