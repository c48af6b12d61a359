/*
 * chat_secret.c: reading a secret file, strictly and the same way on both
 * sides.
 *
 * The edge (chat_token_secret_file, chat_redis_password_file) and the
 * backend (--token-secret-file, --redis-password-file) read their secrets
 * here, so a file that works for one works for the other.  Before there was
 * one reader per side, the edge took every trailing newline off and the
 * backend one: a secret file ending in two newlines made the two sides
 * disagree and every token fail.
 *
 * The rules:
 *   - exactly one final line end is taken off, "\n" or "\r\n", because
 *     editors and `echo` add one; a second one is part of the secret (and
 *     the same on both sides);
 *   - a file any user may read (the "other" permission bits) is refused:
 *     the secret signs every token, or opens Redis.  Group-readable is
 *     allowed, so a file can be shared with a service's group (0640
 *     root:nginx) without being everybody's;
 *   - only a regular file, at most CHAT_SECRET_MAX bytes, and not empty.
 *
 * What it does not do: watch the file (both sides read it once, at start
 * or at nginx's configuration load), or decide a minimum length (the
 * callers know what the secret is for).
 */

/* open(2), fstat(2) and friends under -std=c11 (the unit tests) */
#if !defined(_GNU_SOURCE) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE  200809L
#endif

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "chat_secret.h"


ssize_t
chat_secret_read(const char *path, unsigned char *buf, size_t size,
    const char **err)
{
    int          fd;
    size_t       len;
    ssize_t      n;
    struct stat  st;

    /* one byte beyond the limit shows a file that grew past it */
    if (size < CHAT_SECRET_MAX + 2) {
        *err = "internal error: buffer too small";
        return -1;
    }

    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd == -1) {
        *err = (errno == ENOENT) ? "no such file"
             : (errno == EACCES) ? "permission denied"
             : "cannot be opened";
        return -1;
    }

    if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode)) {
        *err = "is not a regular file";
        goto failed;
    }

    if (st.st_mode & (S_IROTH | S_IWOTH)) {
        *err = "is readable or writable by any user; "
               "chmod o-rwx it (0600 or 0640)";
        goto failed;
    }

    if (st.st_size > CHAT_SECRET_MAX) {
        *err = "is larger than 4096 bytes";
        goto failed;
    }

    /* read to the end, whatever fstat said: the file may be growing */
    len = 0;

    for ( ;; ) {
        n = read(fd, buf + len, CHAT_SECRET_MAX + 1 - len);

        if (n == -1) {
            if (errno == EINTR) {
                continue;
            }
            *err = "cannot be read";
            goto failed;
        }

        if (n == 0) {
            break;
        }

        len += (size_t) n;

        if (len > CHAT_SECRET_MAX) {
            *err = "is larger than 4096 bytes";
            goto failed;
        }
    }

    close(fd);

    if (len > 0 && buf[len - 1] == '\n') {
        len--;
        if (len > 0 && buf[len - 1] == '\r') {
            len--;
        }
    }

    if (len == 0) {
        *err = "is empty";
        return -1;
    }

    buf[len] = '\0';

    return (ssize_t) len;

failed:

    close(fd);
    return -1;
}
