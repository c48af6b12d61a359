/*
 * media_store.c: the local-disk implementation of the store
 * (media_store.h).
 *
 * Layout under the root, shared with the edge (chat_media.c):
 *   blobs/ab/<sha256>      every file by the hash of its bytes: uploads
 *                          (moved here by the edge), thumbnails
 *   public/<name>          published renditions (book covers), served
 *                          by nginx to anyone
 * A write goes to a temporary name in the same directory, is fsync'ed
 * and renamed into place, so a reader never sees half a file and a crash
 * leaves at most a stray temporary.  Files are 0600 and directories 0700
 * (the stack's rule, tests/integration/secrets.test.mjs): the edge and
 * the workers run as one user.
 */

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "chat_media.h"
#include "log.h"
#include "media_store.h"


/* mkdir -p of path's directory part (path itself is a file) */
static int
chat_media_mkdirs(char *path)
{
    char  *p;

    for (p = path + 1; *p; p++) {
        if (*p != '/') {
            continue;
        }
        *p = '\0';
        if (mkdir(path, 0700) != 0 && errno != EEXIST) {
            chat_log_error("media: mkdir %s: %s", path, strerror(errno));
            *p = '/';
            return -1;
        }
        *p = '/';
    }

    return 0;
}


/* data into path atomically: a temporary beside it, fsync, rename */
static int
chat_media_write_file(char *path, const void *data, size_t len)
{
    int      fd;
    char     tmp[4096];
    size_t   done;
    ssize_t  n;

    if (chat_media_mkdirs(path) != 0
        || snprintf(tmp, sizeof(tmp), "%s.tmp%ld", path, (long) getpid())
           >= (int) sizeof(tmp))
    {
        return -1;
    }

    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        chat_log_error("media: open %s: %s", tmp, strerror(errno));
        return -1;
    }

    for (done = 0; done < len; done += (size_t) n) {
        n = write(fd, (const char *) data + done, len - done);
        if (n <= 0) {
            if (n < 0 && errno == EINTR) {
                n = 0;
                continue;
            }
            goto failed;
        }
    }

    if (fsync(fd) != 0 || close(fd) != 0) {
        fd = -1;
        goto failed;
    }

    if (rename(tmp, path) != 0) {
        fd = -1;
        goto failed;
    }

    return 0;

failed:

    chat_log_error("media: writing %s: %s", path, strerror(errno));
    if (fd >= 0) {
        close(fd);
    }
    unlink(tmp);
    return -1;
}


static int
chat_media_local_path(const chat_media_store_t *s, const char *sha256,
    char *path, size_t size)
{
    char  rel[CHAT_MEDIA_REL_PATH_LEN];

    if (chat_media_rel_path(rel, sizeof(rel), sha256) != 0
        || snprintf(path, size, "%s/%s", s->root, rel) >= (int) size)
    {
        return -1;
    }

    return 0;
}


static int
chat_media_local_exists(const chat_media_store_t *s, const char *sha256)
{
    char         path[4096];
    struct stat  st;

    if (chat_media_local_path(s, sha256, path, sizeof(path)) != 0) {
        return 0;
    }

    if (stat(path, &st) == 0) {
        return S_ISREG(st.st_mode) ? 1 : 0;
    }

    return errno == ENOENT ? 0 : -1;
}


static int
chat_media_local_put(const chat_media_store_t *s, const void *data,
    size_t len, char *sha256)
{
    char           path[4096];
    unsigned int   i, mdlen;
    unsigned char  md[EVP_MAX_MD_SIZE];

    if (EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL) != 1
        || mdlen != 32)
    {
        return -1;
    }

    for (i = 0; i < 32; i++) {
        snprintf(sha256 + i * 2, 3, "%02x", md[i]);
    }

    if (chat_media_local_exists(s, sha256) == 1) {
        return 0;
    }

    if (chat_media_local_path(s, sha256, path, sizeof(path)) != 0) {
        return -1;
    }

    return chat_media_write_file(path, data, len);
}


static int
chat_media_local_publish(const chat_media_store_t *s, const char *name,
    const void *data, size_t len)
{
    char  path[4096];

    if (strstr(name, "..") != NULL || name[0] == '/'
        || snprintf(path, sizeof(path), "%s/public/%s", s->root, name)
           >= (int) sizeof(path))
    {
        return -1;
    }

    return chat_media_write_file(path, data, len);
}


static const chat_media_store_ops_t  chat_media_local_ops = {
    chat_media_local_exists,
    chat_media_local_path,
    chat_media_local_put,
    chat_media_local_publish
};


void
chat_media_cover_name(char *buf, size_t size, const char *prefix,
    const char *sha256, const char *suffix)
{
    snprintf(buf, size, "%scovers/%s-%s.jpg", prefix, sha256, suffix);
}


void
chat_media_store_local(chat_media_store_t *s, const char *root)
{
    s->ops = &chat_media_local_ops;
    s->root = root;
}
