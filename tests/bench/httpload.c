/*
 * httpload.c: chatload http, an HTTP/1.1 GET load (the catalog figures of
 * the benchmark), closed loop or, with --rates, open loop.
 *
 *   chatload http --port P --paths FILE [--concurrency C] [--warmup S]
 *                 [--measure S] [--label L] [--header 'Name: value']...
 *                 [--rates 200,500,1000]
 *
 * Closed loop (no --rates): C keep-alive connections, each with one
 * request in flight: send a GET of
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
 *
 * Open loop (--rates): for each rate in turn, a step of warm-up, measured
 * window and drain (at most 5 s).  Requests are due at fixed times
 * (rate per second, whatever the answers do), each sent on an idle one
 * of the C keep-alive connections; when none is idle it waits in the
 * client, and its latency still runs from the time it was due, so a
 * server that falls behind shows it in the percentiles, not in a lower
 * offered rate (no coordinated omission).  Latency is due -> last byte;
 * the requests due inside the window count.  One line per step:
 *   http <label> offered=<rate>/s: achieved=<a>/s requests <n> errors <e> p50=.. p99=.. max=.. late=<l>
 * achieved: answers completed in the window per second; late: requests
 * due in the window still unanswered when the drain ended (counted, not
 * timed: read them as a step that did not carry its rate).
 */

#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
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
    int        busy;            /* open loop: a request is in flight */
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


int
cl_tcp_open(const char *host, int port, int epfd, uint64_t tag)
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
    sa.sin_port = htons((uint16_t) port);
    inet_pton(AF_INET, host, &sa.sin_addr);

    if (connect(fd, (struct sockaddr *) &sa, sizeof(sa)) != 0) {
        close(fd);
        return -1;
    }

    one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));

    ev.events = EPOLLIN;
    ev.data.u64 = tag;
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
        close(fd);
        return -1;
    }

    return fd;
}


static int
hl_open(const cl_opts_t *o, int epfd, hl_conn_t *c, size_t i)
{
    c->fd = cl_tcp_open(o->host, o->port, epfd, i);
    return c->fd < 0 ? -1 : 0;
}


/* sends the next path's GET; latency will run from due_ns */
static int
hl_send(const cl_opts_t *o, hl_conn_t *c, uint64_t due_ns)
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
    c->sent_ns = due_ns;

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


/*
 * Reads what connection i has: 0 when its answer is not complete yet, 1
 * with a good answer complete, -1 with a bad one (a status other than
 * 200/206/304, or a broken connection, which is then reopened).  After
 * anything but 0 the connection is idle, ready for the next request (a
 * "Connection: close" answer reopens it).
 */
static int
hl_read(const cl_opts_t *o, int epfd, hl_conn_t *c, size_t i)
{
    int      rc;
    ssize_t  got;

    /* until the header is in, append to it; then each read of the body
     * reuses the whole buffer (only its length counts) */
    if (c->need == 0) {
        got = read(c->fd, c->buf + c->kept, HL_BUF - c->kept);
    } else {
        got = read(c->fd, c->buf, HL_BUF);
    }
    if (got < 0 && (errno == EAGAIN || errno == EINTR)) {
        return 0;
    }
    if (got > 0 && c->need == 0) {
        c->kept += (size_t) got;
    }

    rc = got > 0 ? (c->have += (size_t) got, hl_parse(c)) : -1;
    if (rc == 0) {
        return 0;
    }

    if (rc < 0 || c->closing) {
        close(c->fd);
        if (hl_open(o, epfd, c, i) != 0) {
            cl_die("cannot reopen a connection");
        }
    }

    return (rc > 0 && (c->status == 200 || c->status == 206
                       || c->status == 304)) ? 1 : -1;
}


static void
hl_setup(const cl_opts_t *o, const char *paths, int *epfd, hl_conn_t **conns)
{
    size_t  i;

    hl_read_paths(paths);

    *epfd = epoll_create1(0);
    *conns = calloc(o->concurrency, sizeof(hl_conn_t));
    if (*epfd < 0 || *conns == NULL) {
        cl_die("out of resources");
    }

    for (i = 0; i < o->concurrency; i++) {
        (*conns)[i].buf = malloc(HL_BUF);
        if ((*conns)[i].buf == NULL || hl_open(o, *epfd, &(*conns)[i], i) != 0) {
            cl_die("cannot open connection %zu to port %d", i, o->port);
        }
    }
}


static void
hl_teardown(const cl_opts_t *o, int epfd, hl_conn_t *conns)
{
    size_t  i;

    for (i = 0; i < o->concurrency; i++) {
        close(conns[i].fd);
        free(conns[i].buf);
    }
    free(conns);
    close(epfd);
}


/*
 * One open-loop step at `rate`: requests due every 1/rate s from the
 * start, sent on idle connections (idle[] is a stack of their indices,
 * *nidle of them), for warm-up + window, then a drain.
 */
static void
hl_open_step(const cl_opts_t *o, const char *label, int epfd,
    hl_conn_t *conns, size_t *idle, size_t *nidle, double rate)
{
    int                 n, k, rc;
    size_t              i;
    uint64_t            start, from, to, drain_to, now, sent, due, due_ns;
    uint64_t            done, errors, inflight_measured, k_from, k_to;
    hist_t              lat;
    char                sum[128];
    struct epoll_event  evs[256];

    hist_init(&lat);
    start = cl_now_ns();
    from = start + (uint64_t) (o->warmup_s * 1e9);
    to = from + (uint64_t) (o->measure_s * 1e9);
    drain_to = to + 5000000000ull;
    /* request k is due at start + k / rate: those of the window */
    k_from = (uint64_t) ceil((double) (from - start) * rate / 1e9);
    k_to = (uint64_t) ceil((double) (to - start) * rate / 1e9);
    sent = 0;
    done = 0;
    errors = 0;
    inflight_measured = 0;

    for (;;) {
        now = cl_now_ns();

        /* what is due by now goes out on idle connections, oldest first;
         * nothing new is due after the window */
        due = now < to ? (uint64_t) ((double) (now - start) * rate / 1e9) + 1
                       : k_to;
        while (sent < due && *nidle > 0) {
            due_ns = start + (uint64_t) ((double) sent * 1e9 / rate);
            i = idle[--*nidle];
            if (hl_send(o, &conns[i], due_ns) != 0) {
                cl_die("write failed");
            }
            conns[i].busy = 1;
            if (sent >= k_from && sent < k_to) {
                inflight_measured++;
            }
            sent++;
        }

        if (now >= to
            && ((sent >= k_to && inflight_measured == 0) || now >= drain_to))
        {
            break;
        }

        n = epoll_wait(epfd, evs, 256, 1);
        for (k = 0; k < n; k++) {
            i = (size_t) evs[k].data.u64;
            rc = hl_read(o, epfd, &conns[i], i);
            if (rc == 0 || !conns[i].busy) {
                continue;       /* more to come, or an idle one closed */
            }
            now = cl_now_ns();
            if (conns[i].sent_ns >= from && conns[i].sent_ns < to) {
                inflight_measured--;
                if (rc < 0) {
                    errors++;
                } else {
                    hist_add(&lat, (now - conns[i].sent_ns) / 1000);
                    done++;
                }
            }
            conns[i].busy = 0;
            idle[(*nidle)++] = i;
        }
    }

    printf("http %s offered=%.0f/s: achieved=%.0f/s requests %llu errors %llu %s late=%llu\n",
           label ? label : "-", rate, (double) done / o->measure_s,
           (unsigned long long) done, (unsigned long long) errors,
           hist_summary(&lat, sum, sizeof(sum)),
           (unsigned long long) (k_to - k_from > done + errors
                                 ? k_to - k_from - done - errors : 0));
    fflush(stdout);

    /* a connection still waiting for an answer after the drain is
     * abandoned: reopened, so the next step starts with every one idle */
    for (i = 0; i < o->concurrency; i++) {
        if (conns[i].busy) {
            close(conns[i].fd);
            if (hl_open(o, epfd, &conns[i], i) != 0) {
                cl_die("cannot reopen a connection");
            }
            conns[i].busy = 0;
            idle[(*nidle)++] = i;
        }
    }
}


static int
hl_open_loop(const cl_opts_t *o, const char *paths, const char *label)
{
    int         epfd, r;
    size_t      i, nidle, *idle;
    hl_conn_t  *conns;

    hl_setup(o, paths, &epfd, &conns);

    idle = malloc(o->concurrency * sizeof(size_t));
    if (idle == NULL) {
        cl_die("out of memory");
    }
    for (i = 0; i < o->concurrency; i++) {
        idle[i] = o->concurrency - 1 - i;
    }
    nidle = o->concurrency;

    for (r = 0; r < o->nrates; r++) {
        hl_open_step(o, label, epfd, conns, idle, &nidle, o->rates[r]);
    }

    free(idle);
    hl_teardown(o, epfd, conns);
    return 0;
}


int
cl_mode_http(const cl_opts_t *o, const char *paths, const char *label)
{
    int                 epfd, n, k, rc;
    size_t              i;
    uint64_t            start, measure_from, measure_to, now, done, errors;
    uint64_t            bytes;
    hl_conn_t          *conns;
    hist_t              lat;
    char                sum[128];
    struct epoll_event  evs[256];

    if (o->nrates > 0) {
        return hl_open_loop(o, paths, label);
    }

    hist_init(&lat);
    hl_setup(o, paths, &epfd, &conns);

    for (i = 0; i < o->concurrency; i++) {
        if (hl_send(o, &conns[i], cl_now_ns()) != 0) {
            cl_die("cannot send on connection %zu", i);
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
            i = (size_t) evs[k].data.u64;
            rc = hl_read(o, epfd, &conns[i], i);
            if (rc == 0) {
                continue;
            }

            now = cl_now_ns();
            if (now >= measure_from) {
                if (rc < 0) {
                    errors++;
                } else {
                    hist_add(&lat, (now - conns[i].sent_ns) / 1000);
                    done++;
                    bytes += conns[i].need;
                }
            }

            if (hl_send(o, &conns[i], now) != 0) {
                cl_die("write failed");
            }
        }
    }

    printf("http %s: %llu requests %.0f req/s errors %llu %s %.1f MB/s\n",
           label ? label : "-", (unsigned long long) done,
           (double) done / o->measure_s, (unsigned long long) errors,
           hist_summary(&lat, sum, sizeof(sum)),
           (double) bytes / 1e6 / o->measure_s);

    hl_teardown(o, epfd, conns);
    return 0;
}
