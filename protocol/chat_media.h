/*
 * chat_media.h: what the edge and the workers agree on about uploaded
 * files: the allow-list of types, how a type is recognised from the
 * file's first bytes (never from its name or the client's Content-Type),
 * and where a file lives in the content-addressed store.  Plain C, no
 * nginx or libpq, so both sides and the unit tests link it.
 */

#ifndef CHAT_MEDIA_H
#define CHAT_MEDIA_H

#include <stddef.h>

/* how many leading bytes chat_media_sniff wants (fewer are fine) */
#define CHAT_MEDIA_SNIFF_LEN     4096

/* "blobs/ab/<64 hex>" plus NUL */
#define CHAT_MEDIA_REL_PATH_LEN  (6 + 3 + 64 + 1)

/* a display name (?name=), in characters */
#define CHAT_MEDIA_NAME_MAX      255

/*
 * The type of a file whose first len bytes are head, or NULL when it is
 * none of the allowed kinds (chat_media.c lists them).  name (may be
 * NULL) only tells apart the documents that share one container (a .docx
 * and an .xlsx are both ZIP files): it never makes a file allowed.
 * complete says head is the whole file (a short text file).
 */
const char *chat_media_sniff(const unsigned char *head, size_t len,
    const char *name, size_t name_len, int complete);

/* 1 when type is on the allow-list (the workers check the edge's word). */
int chat_media_type_allowed(const char *type);

/* 1 for the image types that are shown inline and get thumbnails. */
int chat_media_type_is_image(const char *type);

/* 1 when s is 64 lowercase hex digits. */
int chat_media_sha256_valid(const char *s, size_t len);

/*
 * "blobs/<first two hex>/<sha256>" into buf (CHAT_MEDIA_REL_PATH_LEN
 * bytes): where a file lives under the store's root, on disk and behind
 * the internal download location.  0, or -1 when sha256 is not valid.
 */
int chat_media_rel_path(char *buf, size_t size, const char *sha256);

#endif /* CHAT_MEDIA_H */
