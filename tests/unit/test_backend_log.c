/*
 * test_backend_log.c: the backend's log records (backend/engine/log.c):
 * the text line names the request id while one is set, the JSON line is
 * one object with escaped text, and a long message is cut, not spilled.
 */

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "unit.h"
#include "log.h"


/* runs the logging calls with stderr on a pipe; returns what was written */
static char  out[8192];

static const char *
capture_begin(int *saved, int fds[2])
{
    fflush(stderr);
    if (pipe(fds) != 0) {
        return NULL;
    }
    *saved = dup(STDERR_FILENO);
    dup2(fds[1], STDERR_FILENO);
    close(fds[1]);
    return "";
}

static const char *
capture_end(int saved, int fds[2])
{
    ssize_t  n, got = 0;

    dup2(saved, STDERR_FILENO);
    close(saved);
    while ((n = read(fds[0], out + got, sizeof(out) - 1 - got)) > 0) {
        got += n;
    }
    close(fds[0]);
    out[got] = '\0';
    return out;
}


static void
test_text_names_the_request(void)
{
    int          saved, fds[2];
    const char  *s;

    chat_log_set_json(0);
    chat_log_set_role("worker");
    CHECK(capture_begin(&saved, fds) != NULL);
    chat_log_set_request("0f1e2d3c", 8);
    chat_log_info("registered user %d", 7);
    chat_log_set_request(NULL, 0);
    chat_log_info("no request now");
    s = capture_end(saved, fds);

    CHECK(strstr(s, "[info] worker ") != NULL);
    CHECK(strstr(s, " rid=0f1e2d3c: registered user 7\n") != NULL);
    CHECK(strstr(s, "rid=0f1e2d3c: no request") == NULL);
    CHECK(strstr(s, ": no request now\n") != NULL);
}


static void
test_json_is_one_escaped_object(void)
{
    int          saved, fds[2];
    const char  *s;

    chat_log_set_json(1);
    CHECK(capture_begin(&saved, fds) != NULL);
    chat_log_set_request("ab-12", 5);
    chat_log_warn("say \"hi\"\\ then\nnext\x01");
    chat_log_set_request(NULL, 0);
    s = capture_end(saved, fds);
    chat_log_set_json(0);

    CHECK(strncmp(s, "{\"time\":\"", 9) == 0);
    CHECK(strstr(s, "\"level\":\"warn\",\"role\":\"worker\",\"pid\":") != NULL);
    CHECK(strstr(s, "\"rid\":\"ab-12\",") != NULL);
    CHECK(strstr(s, "\"msg\":\"say \\\"hi\\\"\\\\ then\\nnext\\u0001\"}\n") != NULL);
    /* one line: the only newline is the last byte */
    CHECK(strchr(s, '\n') == s + strlen(s) - 1);
}


static void
test_long_message_is_cut(void)
{
    int          saved, fds[2];
    char         big[5000];
    const char  *s;

    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';

    chat_log_set_json(1);
    CHECK(capture_begin(&saved, fds) != NULL);
    chat_log_error("%s", big);
    s = capture_end(saved, fds);
    chat_log_set_json(0);
    CHECK(strlen(s) < 2400);
    CHECK(strstr(s, "...\"}\n") != NULL);

    CHECK(capture_begin(&saved, fds) != NULL);
    chat_log_error("%s", big);
    s = capture_end(saved, fds);
    CHECK(strlen(s) < 2400);
    CHECK(strstr(s, "...\n") != NULL);
}


int
main(void)
{
    UNIT_RUN(test_text_names_the_request);
    UNIT_RUN(test_json_is_one_escaped_object);
    UNIT_RUN(test_long_message_is_cut);
    return UNIT_SUMMARY();
}
