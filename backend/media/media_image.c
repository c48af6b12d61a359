/*
 * media_image.c: the one place that decodes images: libvips (Debian's
 * libvips-dev), never a decoder of our own.
 *
 * Safety.  A small file can declare a huge image (a "decompression
 * bomb": a 50 KB PNG of 100,000 x 100,000 pixels).  Every image is
 * opened lazily first, which reads only its header, and refused when it
 * declares more than CHAT_MEDIA_MAX_PIXELS; only then is it decoded,
 * shrunk while loading where the format allows (JPEG), and re-encoded.
 * Loaders libvips marks untrusted (the ImageMagick and other fallbacks)
 * are blocked, so only its own JPEG, PNG, GIF, WebP and SVG readers run;
 * the upload allow-list (chat_media.c) admits only the first four.
 * libvips runs with one thread and no operation cache: it works on the
 * admin lane, beside other work, and must stay small.
 *
 * What comes out is always a fresh JPEG without metadata ("strip"): no
 * EXIF (a phone photo's GPS position), no XMP, no comments.
 */

#include <string.h>

#include <vips/vips.h>

#include "log.h"
#include "media_image.h"


int
chat_media_image_init(void)
{
    static int  done;

    if (done) {
        return 0;
    }

    if (VIPS_INIT("chat-backend") != 0) {
        chat_log_error("media: libvips would not start: %s",
                       vips_error_buffer());
        vips_error_clear();
        return -1;
    }

    vips_concurrency_set(1);
    vips_cache_set_max(0);
    vips_block_untrusted_set(TRUE);
    done = 1;

    return 0;
}


/* a JPEG of in, flattened onto white when it has alpha, stripped */
static int
chat_media_image_jpeg(VipsImage *in, void **out, size_t *len)
{
    int         rc;
    VipsImage  *flat;

    flat = NULL;

    if (vips_image_hasalpha(in)) {
        VipsArrayDouble  *white = vips_array_double_newv(1, 255.0);

        rc = vips_flatten(in, &flat, "background", white, NULL);
        vips_area_unref(VIPS_AREA(white));
        if (rc != 0) {
            return -1;
        }
        in = flat;
    }

    rc = vips_jpegsave_buffer(in, out, len, "Q", 82, "strip", TRUE,
                              "optimize_coding", TRUE, NULL);

    if (flat != NULL) {
        g_object_unref(flat);
    }

    return rc;
}


int
chat_media_image_resize(const char *path, int box_w, int box_h,
    void **out, size_t *len, int *w, int *h, const char **why)
{
    double      pixels;
    VipsImage  *head, *thumb;

    *why = "invalid_image";

    if (chat_media_image_init() != 0) {
        return -1;
    }

    /* the header only: nothing is decoded yet */
    head = vips_image_new_from_file(path, "access", VIPS_ACCESS_SEQUENTIAL,
                                    NULL);
    if (head == NULL) {
        chat_log_warn("media: %s: %s", path, vips_error_buffer());
        vips_error_clear();
        return -1;
    }

    pixels = (double) vips_image_get_width(head)
             * (double) vips_image_get_height(head);
    g_object_unref(head);

    if (pixels > CHAT_MEDIA_MAX_PIXELS) {
        *why = "image_too_large";
        return -1;
    }

    if (vips_thumbnail(path, &thumb, box_w, "height", box_h,
                       "size", VIPS_SIZE_DOWN, NULL)
        != 0)
    {
        chat_log_warn("media: thumbnail of %s: %s", path,
                      vips_error_buffer());
        vips_error_clear();
        return -1;
    }

    *w = vips_image_get_width(thumb);
    *h = vips_image_get_height(thumb);

    if (chat_media_image_jpeg(thumb, out, len) != 0) {
        chat_log_warn("media: encoding %s: %s", path, vips_error_buffer());
        vips_error_clear();
        g_object_unref(thumb);
        return -1;
    }

    g_object_unref(thumb);
    return 0;
}


void
chat_media_image_allow_svg(void)
{
    if (chat_media_image_init() == 0) {
        vips_operation_block_set("VipsForeignLoadSvg", FALSE);
    }
}


int
chat_media_image_from_svg(const char *svg, size_t svg_len, int width,
    void **out, size_t *len)
{
    VipsImage  *img;

    if (chat_media_image_init() != 0) {
        return -1;
    }

    /* a book's shape: 2:3 */
    if (vips_thumbnail_buffer((void *) svg, svg_len, &img, width,
                              "height", width * 3 / 2, NULL)
        != 0)
    {
        chat_log_error("media: drawing a cover: %s", vips_error_buffer());
        vips_error_clear();
        return -1;
    }

    if (chat_media_image_jpeg(img, out, len) != 0) {
        chat_log_error("media: encoding a cover: %s", vips_error_buffer());
        vips_error_clear();
        g_object_unref(img);
        return -1;
    }

    g_object_unref(img);
    return 0;
}


void
chat_media_image_free(void *p)
{
    g_free(p);
}
