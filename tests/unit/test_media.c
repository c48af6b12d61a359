/*
 * test_media.c: the upload allow-list (chat_media.c): types come from the
 * first bytes only, a name only tells office documents apart, refused
 * kinds stay refused whatever they are called, and the store's paths.
 */

#include <string.h>

#include "chat_media.h"
#include "unit.h"


#define SNIFF(s, name)                                                      \
    chat_media_sniff((const unsigned char *) (s), sizeof(s) - 1, (name),    \
                     length(name), 1)

static size_t
length(const char *s)
{
    return s ? strlen(s) : 0;
}


#define IS(got, want)  ((got) != NULL && strcmp((got), (want)) == 0)


static void
test_images_by_magic(void)
{
    CHECK(IS(SNIFF("\xff\xd8\xff\xe0rest", "x.txt"), "image/jpeg"));
    CHECK(IS(SNIFF("\x89PNG\r\n\x1a\nrest", NULL), "image/png"));
    CHECK(IS(SNIFF("GIF89a....", "a.pdf"), "image/gif"));
    CHECK(IS(SNIFF("GIF87a....", NULL), "image/gif"));
    CHECK(IS(SNIFF("RIFF\x10\0\0\0WEBPVP8 ", NULL), "image/webp"));
    CHECK(chat_media_type_is_image("image/png"));
    CHECK(!chat_media_type_is_image("application/pdf"));
}


static void
test_documents(void)
{
    CHECK(IS(SNIFF("%PDF-1.7\n", "x.png"), "application/pdf"));
    CHECK(IS(SNIFF("PK\x03\x04....", "Report.DOCX"),
             "application/vnd.openxmlformats-officedocument."
             "wordprocessingml.document"));
    CHECK(IS(SNIFF("PK\x03\x04....", "sheet.ods"),
             "application/vnd.oasis.opendocument.spreadsheet"));
    CHECK(IS(SNIFF("PK\x03\x04....", "archive.bin"), "application/zip"));
    /* a name never makes a file allowed */
    CHECK(SNIFF("\x7f" "ELF\x02\x01\x01", "report.docx") == NULL);
}


static void
test_text(void)
{
    const unsigned char  cut[] = "caf\xc3";    /* a sequence cut short */

    CHECK(IS(SNIFF("hello\nworld\t!\r\n", NULL), "text/plain; charset=utf-8"));
    CHECK(IS(SNIFF("gr\xc3\xbc\xc3\x9f" "e", NULL),
             "text/plain; charset=utf-8"));
    /* a window that ends inside a sequence is fine, a whole file is not */
    CHECK(IS(chat_media_sniff(cut, 4, NULL, 0, 0),
             "text/plain; charset=utf-8"));
    CHECK(chat_media_sniff(cut, 4, NULL, 0, 1) == NULL);
    CHECK(SNIFF("bin\x01" "ary", NULL) == NULL);
    CHECK(SNIFF("nul\0here", NULL) == NULL);
    CHECK(SNIFF("\xff\xfe" "bad", NULL) == NULL);
    /* markup is refused even as text: SVG, HTML */
    CHECK(SNIFF("<svg xmlns=\"http://www.w3.org/2000/svg\"/>", "a.txt")
          == NULL);
    CHECK(SNIFF("<html><script>", NULL) == NULL);
    CHECK(chat_media_sniff((const unsigned char *) "", 0, NULL, 0, 1)
          == NULL);
}


static void
test_allow_list(void)
{
    CHECK(chat_media_type_allowed("image/webp"));
    CHECK(chat_media_type_allowed("text/plain; charset=utf-8"));
    CHECK(chat_media_type_allowed("application/vnd.oasis.opendocument.text"));
    CHECK(!chat_media_type_allowed("image/svg+xml"));
    CHECK(!chat_media_type_allowed("text/html"));
    CHECK(!chat_media_type_allowed(""));
}


static void
test_paths(void)
{
    char         buf[CHAT_MEDIA_REL_PATH_LEN];
    const char  *sha =
        "ab0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcd";

    CHECK(chat_media_rel_path(buf, sizeof(buf), sha) == 0);
    CHECK(strcmp(buf, "blobs/ab/ab0123456789abcdef0123456789abcdef"
                      "0123456789abcdef0123456789abcd") == 0);
    CHECK(chat_media_rel_path(buf, sizeof(buf), "../../etc/passwd") == -1);
    CHECK(chat_media_rel_path(buf, sizeof(buf) - 1, sha) == -1);
    CHECK(!chat_media_sha256_valid("AB0123456789abcdef0123456789abcdef"
                                   "0123456789abcdef0123456789abcd", 64));
    CHECK(!chat_media_sha256_valid(sha, 63));
}


int
main(void)
{
    UNIT_RUN(test_images_by_magic);
    UNIT_RUN(test_documents);
    UNIT_RUN(test_text);
    UNIT_RUN(test_allow_list);
    UNIT_RUN(test_paths);

    return UNIT_SUMMARY();
}
