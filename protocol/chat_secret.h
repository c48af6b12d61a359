/*
 * chat_secret.h: the one reader of secret files (the token secret, the
 * Redis password), shared by the edge and the backend.  Plain C, no nginx
 * types.  See chat_secret.c.
 */

#ifndef CHAT_SECRET_H
#define CHAT_SECRET_H

#include <stddef.h>
#include <sys/types.h>

/* the largest secret file read */
#define CHAT_SECRET_MAX  4096

/*
 * Reads the secret in the file at path (NUL-terminated) into buf (size
 * bytes, at least CHAT_SECRET_MAX + 2) and NUL-terminates it.  Returns its
 * length, or -1 with *err set to a static text saying why: the file cannot
 * be opened, is not a regular file, is readable by others than its owner
 * and group, is larger than CHAT_SECRET_MAX bytes, or holds nothing once
 * one final "\n" or "\r\n" is taken off.  Only that one line end is taken
 * off: whatever else the file holds is the secret.
 */
ssize_t chat_secret_read(const char *path, unsigned char *buf, size_t size,
    const char **err);

#endif /* CHAT_SECRET_H */
