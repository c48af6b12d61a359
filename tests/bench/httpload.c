/*
 * httpload.c: chatload http, a closed-loop HTTP/1.1 GET load (the catalog
 * figures of the benchmark).
 *
 *   chatload http --port P --paths FILE [--concurrency C] [--warmup S]
 *                 [--measure S] [--label L] [--header 'Name: value']...
 *
 * C keep-alive connections, each with one request in flight: send a GET of
 * the next path of FILE (one path per line, taken in turn by all
 * connections together), with the --header lines (up to 4: a bearer token,
 * a Range), read the whole answer (Content-Length framing), send the next.
 * The header is kept for parsing; the body is only counted, so an answer
 * of any size (a 10 MiB file) streams through one buffer.  Latency is from
 * the write to the last byte of the answer; only answers completed inside
 * the measured window (after the warm-up) count.  A status other than 200,
 * 206 or 304, or a connection that fails, counts as an error (and the
 * connection is reopened).  One thread on epoll, like the rest of
 * chatload, so the figures of two targets measured with it are
 * comparable: the same client limits apply to both.
 *
 * Prints one line (MB = 10^6 bytes of whole answers, header included):
 *   http <label>: <n> requests <r> req/s errors <e> p50=..ms p99=..ms max=..ms <m> MB/s
 */

#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "chatload.h"


#define HL_BUF  (1u << 20)


typedef struct {
    int        fd;
    uint64_t   sent_ns;
    size_t     have;            /* bytes of the current answer read */
    size_t     need;            /* header + body, once the header is in */
    size_t     kept;            /* bytes of it in buf (the header's part) */
    int        closing;         /* the answer said Connection: close */
    int        status;
    char      *buf;
} hl_conn_t;


static char   **hl_paths;
static size_t   hl_npaths;
static size_t   hl_next;


static void
hl_read_paths(const char *file)
{
    FILE    *f;
    char     line[4096];
    size_t   cap, len;

    f = fopen(file, "r");
    if (f == NULL) {
        cl_die("cannot open %s", file);
    }

    cap = 0;
    while (fgets(line, sizeof(line), f) != NULL) {
        len = strcspn(line, "\r\n");
        if (len == 0) {
            continue;
        }
        line[len] = '\0';
        if (hl_npaths == cap) {
            cap = cap ? cap * 2 : 1024;
            hl_paths = realloc(hl_paths, cap * sizeof(char *));
            if (hl_paths == NULL) {
                cl_die("out of memory");
            }
        }
        hl_paths[hl_npaths++] = strdup(line);
    }

    fclose(f);

    if (hl_npaths == 0) {
        cl_die("%s has no paths", file);
    }
}


static int
hl_open(const cl_opts_t *o, int epfd, hl_conn_t *c, size_t i)
{
    int                 fd, one;
    struct sockaddr_in  sa;
    struct epoll_event  ev;

    fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) {
        return -1;
    }

    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t) o->port);
    inet_pton(AF_INET, o->host, &sa.sin_addr);

    if (connect(fd, (struct sockaddr *) &sa, sizeof(sa)) != 0) {
        close(fd);
        return -1;
    }

    one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));

    ev.events = EPOLLIN;
    ev.data.u64 = i;
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
        close(fd);
        return -1;
    }

    c->fd = fd;
    return 0;
}


static int
hl_send(const cl_opts_t *o, hl_conn_t *c)
{
    int          n, i;
    char         req[8400];
    const char  *path;

    path = hl_paths[hl_next++ % hl_npaths];

    n = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: %s\r\n",
                 path, o->host);
    for (i = 0; i < o->nheaders && n > 0 && (size_t) n < sizeof(req); i++) {
        n += snprintf(req + n, sizeof(req) - (size_t) n, "%s\r\n",
                      o->headers[i]);
    }
    if (n <= 0 || (size_t) n + 2 >= sizeof(req)) {
        cl_die("the request for %s is too long", path);
    }
    n += snprintf(req + n, sizeof(req) - (size_t) n, "\r\n");

    c->have = 0;
    c->need = 0;
    c->kept = 0;
    c->closing = 0;
    c->status = 0;
    c->sent_ns = cl_now_ns();

    /* a small request on an idle keep-alive socket: one write does it */
    return write(c->fd, req, (size_t) n) == n ? 0 : -1;
}


/* 1 when the answer is complete, 0 when more is needed, -1 on a bad one */
static int
hl_parse(hl_conn_t *c)
{
    char    *end, *cl;
    size_t   hlen;

    if (c->need == 0) {
        end = memmem(c->buf, c->kept, "\r\n\r\n", 4);
        if (end == NULL) {
            return c->kept >= HL_BUF ? -1 : 0;
        }

        hlen = (size_t) (end - c->buf) + 4;
        c->status = atoi(c->buf + 9);

        cl = memmem(c->buf, hlen, "Content-Length:", 15);
        c->need = hlen + (cl ? strtoul(cl + 15, NULL, 10) : 0);
        /* nginx ends a keep-alive connection after keepalive_requests:
         * not an error, the next request goes on a new connection */
        c->closing = memmem(c->buf, hlen, "Connection: close", 17) != NULL;
    }

    return c->have >= c->need ? 1 : 0;
}


int
cl_mode_http(const cl_opts_t *o, const char *paths, const char *label)
{
    int                 epfd, n, k, rc;
    size_t              i;
    ssize_t             got;
    uint64_t            start, measure_from, measure_to, now, done, errors;
    uint64_t            bytes;
    hl_conn_t          *conns;
    hist_t              lat;
    char                sum[128];
    struct epoll_event  evs[256];

    hl_read_paths(paths);
    hist_init(&lat);

    epfd = epoll_create1(0);
    conns = calloc(o->concurrency, sizeof(hl_conn_t));
    if (epfd < 0 || conns == NULL) {
        cl_die("out of resources");
    }

    for (i = 0; i < o->concurrency; i++) {
        conns[i].buf = malloc(HL_BUF);
        if (conns[i].buf == NULL || hl_open(o, epfd, &conns[i], i) != 0
            || hl_send(o, &conns[i]) != 0)
        {
            cl_die("cannot open connection %zu to port %d", i, o->port);
        }
    }

    start = cl_now_ns();
    measure_from = start + (uint64_t) (o->warmup_s * 1e9);
    measure_to = measure_from + (uint64_t) (o->measure_s * 1e9);
    done = 0;
    errors = 0;
    bytes = 0;

    while ((now = cl_now_ns()) < measure_to) {
        n = epoll_wait(epfd, evs, 256, 100);

        for (k = 0; k < n; k++) {
            hl_conn_t  *c = &conns[evs[k].data.u64];

            /* until the header is in, append to it; then each read of
             * the body reuses the whole buffer (only its length counts) */
            if (c->need == 0) {
                got = read(c->fd, c->buf + c->kept, HL_BUF - c->kept);
            } else {
                got = read(c->fd, c->buf, HL_BUF);
            }
            if (got < 0 && (errno == EAGAIN || errno == EINTR)) {
                continue;
            }
            if (got > 0 && c->need == 0) {
                c->kept += (size_t) got;
            }

            rc = got > 0 ? (c->have += (size_t) got, hl_parse(c)) : -1;
            if (rc == 0) {
                continue;
            }

            now = cl_now_ns();
            if (rc < 0 || (c->status != 200 && c->status != 206
                           && c->status != 304))
            {
                if (now >= measure_from) {
                    errors++;
                }
                if (rc < 0) {
                    close(c->fd);
                    if (hl_open(o, epfd, c, (size_t) evs[k].data.u64) != 0) {
                        cl_die("cannot reopen a connection");
                    }
                }

            } else if (now >= measure_from) {
                hist_add(&lat, (now - c->sent_ns) / 1000);
                done++;
                bytes += c->need;
            }

            if (rc > 0 && c->closing) {
                close(c->fd);
                if (hl_open(o, epfd, c, (size_t) evs[k].data.u64) != 0) {
                    cl_die("cannot reopen a connection");
                }
            }

            if (hl_send(o, c) != 0) {
                cl_die("write failed");
            }
        }
    }

    printf("http %s: %llu requests %.0f req/s errors %llu %s %.1f MB/s\n",
           label ? label : "-", (unsigned long long) done,
           (double) done / o->measure_s, (unsigned long long) errors,
           hist_summary(&lat, sum, sizeof(sum)),
           (double) bytes / 1e6 / o->measure_s);

    for (i = 0; i < o->concurrency; i++) {
        close(conns[i].fd);
        free(conns[i].buf);
    }
    free(conns);
    close(epfd);

    return 0;
}
