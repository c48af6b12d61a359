/*
 * test_redact.c: chat_redact.c, the request line fit for a log: the
 * values of access_token and ticket never appear, everything else is
 * kept byte for byte.
 */

#include <string.h>

#include "chat_redact.h"
#include "unit.h"


/* in, redacted, must equal want */
static int
redacts_to(const char *in, const char *want)
{
    int     n;
    char    out[chat_redact_bound(256)];
    size_t  len;

    len = strlen(in);
    n = chat_redact_query(in, len, out, chat_redact_bound(len));

    if (n < 0 || (size_t) n != strlen(want) || memcmp(out, want, n) != 0) {
        fprintf(stderr, "  \"%s\" -> \"%.*s\", want \"%s\"\n", in,
                n < 0 ? 0 : n, out, want);
        return 0;
    }

    /* something hidden: it was needed; nothing to hide: nothing changed */
    return strcmp(in, want) == 0 || chat_redact_needed(in, len);
}


static void
test_credentials_hidden(void)
{
    CHECK(redacts_to("GET /ws?access_token=eyJ.abc.def HTTP/1.1",
                     "GET /ws?access_token=[hidden] HTTP/1.1"));
    CHECK(redacts_to("GET /ws?ticket=Zm9v HTTP/1.1",
                     "GET /ws?ticket=[hidden] HTTP/1.1"));
    CHECK(redacts_to("GET /ws?a=1&ticket=t&b=2&access_token=x HTTP/1.1",
                     "GET /ws?a=1&ticket=[hidden]&b=2&access_token=[hidden]"
                     " HTTP/1.1"));
    /* the names as ngx_http_arg() finds them: any case */
    CHECK(redacts_to("GET /ws?ACCESS_TOKEN=x&Ticket=y HTTP/1.1",
                     "GET /ws?ACCESS_TOKEN=[hidden]&Ticket=[hidden] HTTP/1.1"));
    /* every occurrence, and empty values */
    CHECK(redacts_to("GET /ws?ticket=a&ticket=b&ticket= HTTP/1.1",
                     "GET /ws?ticket=[hidden]&ticket=[hidden]&ticket=[hidden]"
                     " HTTP/1.1"));
    /* a URI without method and protocol, and a fragment */
    CHECK(redacts_to("/ws?ticket=abc", "/ws?ticket=[hidden]"));
    CHECK(redacts_to("/ws?ticket=abc#frag", "/ws?ticket=[hidden]#frag"));
    /* a value holding '?' or '=' is one value */
    CHECK(redacts_to("/x?access_token=a?b=c&z=1",
                     "/x?access_token=[hidden]&z=1"));
}


static void
test_everything_else_kept(void)
{
    CHECK(redacts_to("GET /api/v1/books HTTP/1.1",
                     "GET /api/v1/books HTTP/1.1"));
    CHECK(redacts_to("GET /ws? HTTP/1.1", "GET /ws? HTTP/1.1"));
    CHECK(redacts_to("GET /api/v1/events?cursor=ab_1-0&timeout=25 HTTP/1.1",
                     "GET /api/v1/events?cursor=ab_1-0&timeout=25 HTTP/1.1"));
    /* names that only contain or resemble the secret ones */
    CHECK(redacts_to("GET /x?my_ticket=1&tickets=2&access_tokens=3&ticket"
                     " HTTP/1.1",
                     "GET /x?my_ticket=1&tickets=2&access_tokens=3&ticket"
                     " HTTP/1.1"));
    CHECK(redacts_to("GET /x?&&a=1& HTTP/1.1", "GET /x?&&a=1& HTTP/1.1"));
    /* the path is not a query: only what follows '?' */
    CHECK(redacts_to("GET /ticket=1/x HTTP/1.1", "GET /ticket=1/x HTTP/1.1"));
    CHECK(redacts_to("", ""));
    CHECK(!chat_redact_needed("GET /x?tickets=1 HTTP/1.1", 25));
    /* a value hidden already comes back the same */
    CHECK(redacts_to("/ws?ticket=[hidden]", "/ws?ticket=[hidden]"));
    CHECK(chat_redact_needed("/ws?ticket=[hidden]", 19));
}


static void
test_small_buffer_refused(void)
{
    char         out[16];
    const char  *in = "/ws?ticket=";

    CHECK(chat_redact_query(in, strlen(in), out, sizeof(out)) < 0);
    CHECK(chat_redact_query(in, strlen(in), out, 0) < 0);
}


int
main(void)
{
    UNIT_RUN(test_credentials_hidden);
    UNIT_RUN(test_everything_else_kept);
    UNIT_RUN(test_small_buffer_refused);

    return UNIT_SUMMARY();
}
