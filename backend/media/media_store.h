/*
 * media_store.h: where uploaded files and the files made from them live,
 * behind the small interface an object store could implement later.
 * See media_store.c and README.md (The store).
 */

#ifndef CHAT_MEDIA_STORE_H
#define CHAT_MEDIA_STORE_H

#include <stddef.h>

typedef struct chat_media_store_s  chat_media_store_t;

/*
 * The operations.  Files are named by the SHA-256 of their bytes (64
 * lowercase hex digits); a file once stored never changes, so a second
 * put of the same bytes is a no-op and readers may cache for ever.
 *
 *   exists   1 when sha256 is stored, 0 when not, -1 on failure
 *   local    a path the caller can read sha256's file at, into path
 *            (size bytes): the file in place for the local disk, a
 *            fetched temporary copy for a remote store.  0, or -1
 *   put      stores len bytes of data and names them in sha256 (65
 *            bytes, NUL-ended).  0, or -1 (nothing half-written is
 *            ever visible under the name)
 *   publish  stores data under a public name (a book cover's
 *            rendition), served to anyone: only files made by the
 *            workers, never a user's upload as it came.  0, or -1
 */
typedef struct {
    int   (*exists)(const chat_media_store_t *s, const char *sha256);
    int   (*local)(const chat_media_store_t *s, const char *sha256,
                   char *path, size_t size);
    int   (*put)(const chat_media_store_t *s, const void *data, size_t len,
                 char *sha256);
    int   (*publish)(const chat_media_store_t *s, const char *name,
                     const void *data, size_t len);
} chat_media_store_ops_t;

struct chat_media_store_s {
    const chat_media_store_ops_t  *ops;
    const char                    *root;
};

/* The local-disk store under root (the edge's chat_media_root): files
 * in root/blobs/, published ones in root/public/. */
void chat_media_store_local(chat_media_store_t *s, const char *root);

/* The public URL path of a published name ("/media/<name>"). */
#define CHAT_MEDIA_PUBLIC_PREFIX  "/media/"

/* "<prefix>covers/<sha256>-<suffix>.jpg" into buf: a cover size's
 * published name (prefix "") or URL (CHAT_MEDIA_PUBLIC_PREFIX). */
void chat_media_cover_name(char *buf, size_t size, const char *prefix,
    const char *sha256, const char *suffix);

#endif /* CHAT_MEDIA_STORE_H */
