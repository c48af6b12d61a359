/*
 * test_secret.c: the one secret-file reader of the edge and the backend.
 * Exactly one final line end ("\n" or "\r\n") is taken off, never more;
 * files any user can read, empty files, files over the cap and things
 * that are not regular files are refused with a reason.  Real files in a
 * temporary directory.
 */

/* open(2), fstat(2) and friends under -std=c11 (the unit tests) */
#if !defined(_GNU_SOURCE) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE  200809L
#endif

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "chat_secret.h"
#include "unit.h"


static char  dir[] = "/tmp/test_secret.XXXXXX";
static char  path[256];


/* writes len bytes of data to the test file with the given mode */
static void
put(const char *data, size_t len, mode_t mode)
{
    FILE  *f;

    unlink(path);
    f = fopen(path, "wb");
    if (f == NULL || fwrite(data, 1, len, f) != len || fclose(f) != 0) {
        perror(path);
        exit(2);
    }
    chmod(path, mode);
}


/* the secret read back, or NULL (why in *err) */
static const char *
get(ssize_t *n, const char **err)
{
    static unsigned char  buf[CHAT_SECRET_MAX + 2];

    *err = NULL;
    *n = chat_secret_read(path, buf, sizeof(buf), err);
    return *n < 0 ? NULL : (const char *) buf;
}


static void
test_one_line_end_only(void)
{
    ssize_t      n;
    const char  *s, *err;

    put("secret", 6, 0600);
    s = get(&n, &err);
    CHECK(n == 6 && s != NULL && strcmp(s, "secret") == 0);

    put("secret\n", 7, 0600);
    s = get(&n, &err);
    CHECK(n == 6 && s != NULL && strcmp(s, "secret") == 0);

    put("secret\r\n", 8, 0600);
    s = get(&n, &err);
    CHECK(n == 6 && s != NULL && strcmp(s, "secret") == 0);

    /* the second newline is part of the secret, the same on both sides */
    put("secret\n\n", 8, 0600);
    s = get(&n, &err);
    CHECK(n == 7 && s != NULL && memcmp(s, "secret\n", 7) == 0);

    put("secret\r\n\r\n", 10, 0600);
    s = get(&n, &err);
    CHECK(n == 8 && s != NULL && memcmp(s, "secret\r\n", 8) == 0);

    /* a lone "\r" is not a line end here */
    put("secret\r", 7, 0600);
    s = get(&n, &err);
    CHECK(n == 7 && s != NULL && memcmp(s, "secret\r", 7) == 0);

    /* leading and inner white space is kept */
    put(" se cret \n", 10, 0600);
    s = get(&n, &err);
    CHECK(n == 9 && s != NULL && strcmp(s, " se cret ") == 0);
}


static void
test_modes(void)
{
    ssize_t      n;
    const char  *s, *err;

    put("secret\n", 7, 0640);
    s = get(&n, &err);
    CHECK(n == 6 && s != NULL);

    put("secret\n", 7, 0400);
    s = get(&n, &err);
    CHECK(n == 6 && s != NULL);

    put("secret\n", 7, 0644);
    s = get(&n, &err);
    CHECK(n == -1 && s == NULL && err != NULL && strstr(err, "any user"));

    put("secret\n", 7, 0602);
    s = get(&n, &err);
    CHECK(n == -1 && err != NULL && strstr(err, "any user"));
}


static void
test_refused(void)
{
    ssize_t      n;
    char        *big;
    const char  *s, *err;

    put("", 0, 0600);
    s = get(&n, &err);
    CHECK(n == -1 && s == NULL && err != NULL && strstr(err, "empty"));

    put("\n", 1, 0600);
    s = get(&n, &err);
    CHECK(n == -1 && err != NULL && strstr(err, "empty"));

    put("\r\n", 2, 0600);
    s = get(&n, &err);
    CHECK(n == -1 && err != NULL && strstr(err, "empty"));

    big = malloc(CHAT_SECRET_MAX + 2);
    CHECK(big != NULL);
    if (big == NULL) {
        return;
    }
    memset(big, 'x', CHAT_SECRET_MAX + 1);

    put(big, CHAT_SECRET_MAX, 0600);
    s = get(&n, &err);
    CHECK(n == CHAT_SECRET_MAX && s != NULL);

    put(big, CHAT_SECRET_MAX + 1, 0600);
    s = get(&n, &err);
    CHECK(n == -1 && err != NULL && strstr(err, "larger"));
    free(big);

    unlink(path);
    s = get(&n, &err);
    CHECK(n == -1 && err != NULL && strstr(err, "no such file"));

    /* a directory is not a secret */
    snprintf(path, sizeof(path), "%s", dir);
    chmod(dir, 0700);
    s = get(&n, &err);
    CHECK(n == -1 && err != NULL && strstr(err, "regular"));
    snprintf(path, sizeof(path), "%s/secret", dir);
}


static void
test_small_buffer(void)
{
    unsigned char  buf[16];
    const char    *err;

    put("secret\n", 7, 0600);
    err = NULL;
    CHECK(chat_secret_read(path, buf, sizeof(buf), &err) == -1
          && err != NULL);
}


int
main(void)
{
    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        return 2;
    }
    snprintf(path, sizeof(path), "%s/secret", dir);

    UNIT_RUN(test_one_line_end_only);
    UNIT_RUN(test_modes);
    UNIT_RUN(test_refused);
    UNIT_RUN(test_small_buffer);

    unlink(path);
    rmdir(dir);

    return UNIT_SUMMARY();
}
