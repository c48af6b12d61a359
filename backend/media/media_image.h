/*
 * media_image.h: images through libvips: thumbnails and cover sizes made
 * once, with the pixel limit that refuses decompression bombs, and the
 * demo covers drawn from SVG.  See media_image.c.
 */

#ifndef CHAT_MEDIA_IMAGE_H
#define CHAT_MEDIA_IMAGE_H

#include <stddef.h>

/* the most pixels (width x height) an image may declare before anything
 * decodes it: 50 megapixels, about 200 MB decoded; more is refused */
#define CHAT_MEDIA_MAX_PIXELS  50000000.0

/* Prepares libvips once per process.  0, or -1 (logged). */
int chat_media_image_init(void);

/*
 * The image file at path as a JPEG that fits in box_w x box_h (never
 * enlarged), turned upright from its EXIF orientation, with every piece
 * of metadata (EXIF, XMP, ICC, comments) stripped.  Returns 0 with *out
 * (free it with chat_media_image_free), *len and the result's size in
 * *w, *h; or -1 with *why: "image_too_large" (over the pixel limit,
 * refused from the header before decoding) or "invalid_image" (libvips
 * could not read it).
 */
int chat_media_image_resize(const char *path, int box_w, int box_h,
    void **out, size_t *len, int *w, int *h, const char **why);

/* Lets this process read SVG (librsvg, which libvips counts as
 * untrusted): only `demo-covers` calls it, for its own drawings; the
 * workers never do, and the upload allow-list refuses SVG anyway. */
void chat_media_image_allow_svg(void);

/* An SVG document rendered as a width-pixel-wide JPEG (the demo covers;
 * needs chat_media_image_allow_svg).  0 with *out and *len, or -1. */
int chat_media_image_from_svg(const char *svg, size_t svg_len, int width,
    void **out, size_t *len);

void chat_media_image_free(void *p);

#endif /* CHAT_MEDIA_IMAGE_H */
