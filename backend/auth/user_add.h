/*
 * user_add.h: the "chat-backend user-add" subcommand.  See user_add.c.
 */

#ifndef CHAT_USER_ADD_H
#define CHAT_USER_ADD_H

#include "config.h"

/* Creates the user unless the e-mail exists; returns the exit status. */
int chat_user_add(const chat_config_t *cfg, const char *email,
    const char *password, const char *display_name, int admin);

#endif /* CHAT_USER_ADD_H */
