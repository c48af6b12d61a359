/*
 * wsconn.c: many WebSocket client connections on one epoll, for load.
 *
 * A pool owns n connections, numbered 0..n-1.  Connecting is paced: at
 * most max_connecting are between connect() and the 101 at any time, so
 * a listen backlog never overflows into SYN retries.  Each socket binds
 * to one of the pool's source addresses (127.0.0.x) with
 * IP_BIND_ADDRESS_NO_PORT, so the kernel picks the port at connect() time
 * per 4-tuple and tens of thousands of connections do not exhaust the
 * ephemeral range.  A connection that fails (refused, reset, a handshake
 * answered with anything but a valid 101) is retried twice, then counted
 * as failed; the first failure's text is kept for the report.  The 101
 * must carry the Sec-WebSocket-Accept that our key calls for.
 *
 * Once open, a connection's frames are wsio.c's business; the epoll loop
 * here hands them over, and also wakes the owner for its extra
 * descriptors (a signalfd).
 *
 * What it does not do: TLS, extensions, or any reassembly beyond a frame.
 */

#define _GNU_SOURCE
#include <errno.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <arpa/inet.h>

#include <openssl/sha.h>

#include "chat_base64.h"
#include "chatload.h"


#define WS_TRIES         3
#define WS_EXTRA_TAG     (1ull << 63)
#define WS_GUID          "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


int
ws_pool_init(ws_pool_t *p, size_t n, const char *host, int port,
    const char *src_list)
{
    char        *list, *tok, *save;
    size_t       i;

    memset(p, 0, sizeof(*p));

    p->n = n;
    p->max_connecting = 200;
    p->conns = calloc(n ? n : 1, sizeof(ws_conn_t));
    p->queue = calloc(n ? n : 1, sizeof(size_t));
    p->src = calloc(64, sizeof(struct in_addr));
    if (p->conns == NULL || p->queue == NULL || p->src == NULL) {
        return -1;
    }

    for (i = 0; i < n; i++) {
        p->conns[i].fd = -1;
        p->queue[i] = i;
    }
    p->qlen = n;

    p->dst.sin_family = AF_INET;
    p->dst.sin_port = htons((uint16_t) port);
    if (inet_pton(AF_INET, host, &p->dst.sin_addr) != 1) {
        return -1;
    }

    if (src_list != NULL && *src_list) {
        list = strdup(src_list);
        if (list == NULL) {
            return -1;
        }
        for (tok = strtok_r(list, ",", &save); tok && p->nsrc < 64;
             tok = strtok_r(NULL, ",", &save))
        {
            if (inet_pton(AF_INET, tok, &p->src[p->nsrc]) != 1) {
                free(list);
                return -1;
            }
            p->nsrc++;
        }
        free(list);
    }

    p->epfd = epoll_create1(EPOLL_CLOEXEC);
    return p->epfd < 0 ? -1 : 0;
}


int
ws_pool_add_extra(ws_pool_t *p, int fd)
{
    struct epoll_event  ev;

    ev.events = EPOLLIN;
    ev.data.u64 = WS_EXTRA_TAG | (uint64_t) fd;
    return epoll_ctl(p->epfd, EPOLL_CTL_ADD, fd, &ev);
}


void
ws_watch(ws_pool_t *p, size_t i, uint32_t events, int op)
{
    struct epoll_event  ev;

    ev.events = events;
    ev.data.u64 = i;
    (void) epoll_ctl(p->epfd, op, p->conns[i].fd, &ev);
}


static void
ws_key(size_t i, char *key, size_t size)
{
    int            n;
    unsigned char  raw[16];

    memcpy(raw, "chatload", 8);
    memcpy(raw + 8, &i, sizeof(i) < 8 ? sizeof(i) : 8);

    /* the shared codec writes no padding; a key is 24 characters with it */
    n = chat_b64_encode(CHAT_B64_STD, raw, sizeof(raw), key, size - 2);
    if (n == 22) {
        memcpy(key + 22, "==", 3);
    }
}


static void
ws_fail(ws_pool_t *p, size_t i, const char *why)
{
    ws_conn_t  *c = &p->conns[i];

    if (p->first_error[0] == '\0') {
        snprintf(p->first_error, sizeof(p->first_error), "%s", why);
    }

    if (c->fd >= 0) {
        close(c->fd);
        c->fd = -1;
    }

    free(c->in);
    c->in = NULL;
    c->in_len = c->in_cap = 0;
    p->connecting--;

    if (++c->tries < WS_TRIES) {
        c->state = WS_WAITING;
        p->queue[(p->qhead + p->qlen) % p->n] = i;
        p->qlen++;
        return;
    }

    c->state = WS_FAILED;
    p->failed++;
}


static void
ws_start(ws_pool_t *p, size_t i)
{
    int                  fd, one;
    ws_conn_t           *c = &p->conns[i];
    struct sockaddr_in   src;

    fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        c->fd = -1;
        p->connecting++;
        ws_fail(p, i, strerror(errno));
        return;
    }

    c->fd = fd;
    c->state = WS_CONNECTING;
    p->connecting++;
    one = 1;
    (void) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));

    if (p->nsrc > 0) {
        (void) setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one,
                          sizeof(one));
        memset(&src, 0, sizeof(src));
        src.sin_family = AF_INET;
        src.sin_addr = p->src[i % p->nsrc];
        if (bind(fd, (struct sockaddr *) &src, sizeof(src)) != 0) {
            ws_fail(p, i, "bind to the source address failed");
            return;
        }
    }

    if (connect(fd, (struct sockaddr *) &p->dst, sizeof(p->dst)) != 0
        && errno != EINPROGRESS)
    {
        ws_fail(p, i, strerror(errno));
        return;
    }

    ws_watch(p, i, EPOLLIN | EPOLLOUT, EPOLL_CTL_ADD);
}


static void
ws_pump(ws_pool_t *p)
{
    size_t  i;

    while (p->connecting < p->max_connecting && p->qlen > 0) {
        i = p->queue[p->qhead];
        p->qhead = (p->qhead + 1) % p->n;
        p->qlen--;
        ws_start(p, i);
    }
}


static void
ws_connected(ws_pool_t *p, size_t i)
{
    int         err, n;
    char        key[32], req[2048];
    socklen_t   len;
    ws_conn_t  *c = &p->conns[i];

    err = 0;
    len = sizeof(err);
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err) {
        ws_fail(p, i, strerror(err ? err : errno));
        return;
    }

    ws_key(i, key, sizeof(key));
    n = p->request(p->ud, i, key, req, sizeof(req));
    if (n <= 0 || write(c->fd, req, (size_t) n) != n) {
        ws_fail(p, i, "could not write the upgrade request");
        return;
    }

    c->state = WS_HANDSHAKE;
    ws_watch(p, i, EPOLLIN, EPOLL_CTL_MOD);
}


/* the 101 must carry the Sec-WebSocket-Accept our key calls for */
static int
ws_accept_ok(size_t i, const char *head)
{
    char           key[32], want[64], raw[96];
    const char    *h;
    unsigned char  digest[SHA_DIGEST_LENGTH];

    ws_key(i, key, sizeof(key));
    snprintf(raw, sizeof(raw), "%s%s", key, WS_GUID);
    SHA1((unsigned char *) raw, strlen(raw), digest);
    /* unpadded here: the answer's trailing "=" is not compared */
    (void) chat_b64_encode(CHAT_B64_STD, digest, sizeof(digest), want,
                           sizeof(want));

    h = strcasestr(head, "\r\nSec-WebSocket-Accept:");
    if (h == NULL) {
        return 0;
    }

    h += sizeof("\r\nSec-WebSocket-Accept:") - 1;
    while (*h == ' ') {
        h++;
    }

    return strncmp(h, want, strlen(want)) == 0;
}


static void
ws_handshake(ws_pool_t *p, size_t i)
{
    char       *end, why[160];
    size_t      head, rest;
    ssize_t     n;
    ws_conn_t  *c = &p->conns[i];

    if (c->in == NULL) {
        c->in = malloc(2048);
        if (c->in == NULL) {
            cl_die("out of memory");
        }
        c->in_cap = 2048;
    }

    n = read(c->fd, c->in + c->in_len, c->in_cap - c->in_len - 1);
    if (n <= 0) {
        if (n < 0 && errno == EAGAIN) {
            return;
        }
        ws_fail(p, i, n == 0 ? "closed during the handshake"
                             : strerror(errno));
        return;
    }

    c->in_len += (uint32_t) n;
    c->in[c->in_len] = '\0';

    end = strstr(c->in, "\r\n\r\n");
    if (end == NULL) {
        if (c->in_len + 1 >= c->in_cap) {
            ws_fail(p, i, "handshake answer too long");
        }
        return;
    }

    head = (size_t) (end - c->in) + 4;
    *end = '\0';

    if (strncmp(c->in, "HTTP/1.1 101", 12) != 0 || !ws_accept_ok(i, c->in)) {
        snprintf(why, sizeof(why), "handshake refused: %.*s",
                 (int) strcspn(c->in, "\r"), c->in);
        ws_fail(p, i, why);
        return;
    }

    c->state = WS_OPEN;
    p->connecting--;
    p->open++;

    rest = c->in_len - head;
    memcpy(ws_rbuf, c->in + head, rest);
    free(c->in);
    c->in = NULL;
    c->in_len = c->in_cap = 0;

    if (rest > 0) {
        ws_frames(p, i, ws_rbuf, rest);
    }
}



void
ws_pool_poll(ws_pool_t *p, int timeout_ms)
{
    int                 n, k;
    size_t              i;
    uint32_t            e;
    struct epoll_event  evs[512];

    ws_pump(p);

    n = epoll_wait(p->epfd, evs, 512, timeout_ms);

    for (k = 0; k < n; k++) {
        if (evs[k].data.u64 & WS_EXTRA_TAG) {
            p->on_extra(p->ud, (int) (evs[k].data.u64 & ~WS_EXTRA_TAG));
            continue;
        }

        i = (size_t) evs[k].data.u64;
        e = evs[k].events;

        switch (p->conns[i].state) {
        case WS_CONNECTING:
            ws_connected(p, i);
            break;
        case WS_HANDSHAKE:
            ws_handshake(p, i);
            break;
        case WS_OPEN:
            if (e & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
                ws_readable(p, i);
            }
            if ((e & EPOLLOUT) && p->conns[i].state == WS_OPEN) {
                ws_flush(p, i);
            }
            break;
        default:
            break;
        }
    }

    ws_pump(p);
}


void
ws_pool_connect_all(ws_pool_t *p, uint64_t deadline)
{
    while (p->open + p->failed + p->closed < p->n
           && cl_now_ns() < deadline)
    {
        ws_pool_poll(p, 20);
    }
}


void
ws_pool_close_all(ws_pool_t *p)
{
    size_t  i;

    for (i = 0; i < p->n; i++) {
        if (p->conns[i].fd >= 0) {
            close(p->conns[i].fd);
            p->conns[i].fd = -1;
        }
        free(p->conns[i].in);
        free(p->conns[i].out);
    }

    close(p->epfd);
    free(p->conns);
    free(p->queue);
    free(p->src);
}
