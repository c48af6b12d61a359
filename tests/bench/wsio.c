/*
 * wsio.c: frames in and out on open WebSocket client connections (the
 * pool, connecting and the handshake are in wsconn.c).
 *
 * Out: frames are masked, as RFC 6455 requires of clients, and written at
 * once; what a short write leaves behind waits in the connection's own
 * buffer (at most 1 MiB, then sending refuses) and EPOLLOUT is asked for
 * until it is gone.
 *
 * In: bytes are read into one buffer shared by the whole pool, and only
 * the tail of a frame split across reads is kept per connection, so an
 * idle connection costs its socket and a 40-byte struct.  Pings are
 * answered with pongs, a close is echoed and the socket closed.  Text
 * frames go to the pool's callback; fragments are passed on as they come
 * (nothing we receive is fragmented in practice) and counted.
 */

#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "chatload.h"


#define WS_MAX_OUT  (1u << 20)


char             ws_rbuf[WS_RBUF_SIZE];
static uint32_t  ws_mask_state = 2463534242u;


static uint32_t
ws_mask_next(void)
{
    ws_mask_state ^= ws_mask_state << 13;
    ws_mask_state ^= ws_mask_state >> 17;
    ws_mask_state ^= ws_mask_state << 5;
    return ws_mask_state;
}


void
ws_drop(ws_pool_t *p, size_t i)
{
    ws_conn_t  *c = &p->conns[i];

    if (c->fd >= 0) {
        close(c->fd);
        c->fd = -1;
    }

    if (c->state == WS_OPEN) {
        p->open--;
        p->closed++;
    }

    c->state = WS_CLOSED;
    free(c->in);
    free(c->out);
    c->in = c->out = NULL;
    c->in_len = c->in_cap = c->out_len = c->out_off = c->out_cap = 0;
}


static int
ws_write(ws_pool_t *p, size_t i, const char *data, size_t len)
{
    char       *out;
    size_t      need;
    ssize_t     n;
    ws_conn_t  *c = &p->conns[i];

    n = 0;

    if (c->out_len == c->out_off) {
        n = write(c->fd, data, len);
        if (n < 0) {
            if (errno != EAGAIN) {
                ws_drop(p, i);
                return -1;
            }
            n = 0;
        }
        if ((size_t) n == len) {
            return 0;
        }
    }

    need = c->out_len - c->out_off + len - (size_t) n;
    if (need > WS_MAX_OUT) {
        return -1;
    }

    if (c->out_off > 0) {
        memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
        c->out_len -= c->out_off;
        c->out_off = 0;
    }

    if (need > c->out_cap) {
        out = realloc(c->out, need);
        if (out == NULL) {
            return -1;
        }
        c->out = out;
        c->out_cap = (uint32_t) need;
    }

    memcpy(c->out + c->out_len, data + n, len - (size_t) n);
    c->out_len += (uint32_t) (len - (size_t) n);

    if (!c->want_out) {
        c->want_out = 1;
        ws_watch(p, i, EPOLLIN | EPOLLOUT, EPOLL_CTL_MOD);
    }

    return 0;
}


void
ws_flush(ws_pool_t *p, size_t i)
{
    ssize_t     n;
    ws_conn_t  *c = &p->conns[i];

    while (c->out_off < c->out_len) {
        n = write(c->fd, c->out + c->out_off, c->out_len - c->out_off);
        if (n < 0) {
            if (errno != EAGAIN) {
                ws_drop(p, i);
            }
            return;
        }
        c->out_off += (uint32_t) n;
    }

    c->out_off = c->out_len = 0;
    c->want_out = 0;
    ws_watch(p, i, EPOLLIN, EPOLL_CTL_MOD);
}


static int
ws_send_frame(ws_pool_t *p, size_t i, int opcode, const char *data,
    size_t len)
{
    int       rc;
    char      stack[4096], *f;
    size_t    h, k;
    uint32_t  m;

    f = len + 14 <= sizeof(stack) ? stack : malloc(len + 14);
    if (f == NULL) {
        return -1;
    }

    f[0] = (char) (0x80 | opcode);
    if (len < 126) {
        f[1] = (char) (0x80 | len);
        h = 2;
    } else if (len < 65536) {
        f[1] = (char) (0x80 | 126);
        f[2] = (char) (len >> 8);
        f[3] = (char) len;
        h = 4;
    } else {
        f[1] = (char) (0x80 | 127);
        for (k = 0; k < 8; k++) {
            f[2 + k] = (char) ((uint64_t) len >> (56 - 8 * k));
        }
        h = 10;
    }

    m = ws_mask_next();
    memcpy(f + h, &m, 4);
    for (k = 0; k < len; k++) {
        f[h + 4 + k] = (char) (data[k] ^ f[h + (k & 3)]);
    }

    rc = ws_write(p, i, f, h + 4 + len);
    if (f != stack) {
        free(f);
    }
    return rc;
}


int
ws_send_text(ws_pool_t *p, size_t i, const char *data, size_t len)
{
    if (p->conns[i].state != WS_OPEN) {
        return -1;
    }

    return ws_send_frame(p, i, 1, data, len);
}


/* parses whole frames out of buf; keeps what is left of a split one */
void
ws_frames(ws_pool_t *p, size_t i, char *buf, size_t len)
{
    int             op;
    char           *in;
    size_t          off, hdr, k;
    uint64_t        plen;
    unsigned char  *b;
    ws_conn_t      *c = &p->conns[i];

    off = 0;

    while (len - off >= 2 && c->state == WS_OPEN) {
        b = (unsigned char *) buf + off;
        plen = b[1] & 0x7f;
        hdr = 2;

        if (plen == 126) {
            if (len - off < 4) {
                break;
            }
            plen = (uint64_t) b[2] << 8 | b[3];
            hdr = 4;
        } else if (plen == 127) {
            if (len - off < 10) {
                break;
            }
            for (plen = 0, k = 0; k < 8; k++) {
                plen = plen << 8 | b[2 + k];
            }
            hdr = 10;
        }

        if ((b[1] & 0x80) || plen > WS_RBUF_SIZE / 2) {
            ws_drop(p, i);      /* a masked or huge server frame */
            return;
        }

        if (len - off < hdr + plen) {
            break;
        }

        op = b[0] & 0x0f;

        switch (op) {
        case 0:
        case 1:
            if (op == 0 || !(b[0] & 0x80)) {
                p->fragmented++;
            }
            p->on_text(p->ud, i, (char *) b + hdr, (size_t) plen);
            break;
        case 8:
            (void) ws_send_frame(p, i, 8, "\x03\xe8", 2);
            ws_drop(p, i);
            return;
        case 9:
            (void) ws_send_frame(p, i, 10, (char *) b + hdr, (size_t) plen);
            break;
        default:
            break;
        }

        off += hdr + (size_t) plen;
    }

    if (c->state != WS_OPEN) {
        return;
    }

    if (off == len) {
        c->in_len = 0;
        if (c->in_cap > 4096) {
            free(c->in);
            c->in = NULL;
            c->in_cap = 0;
        }
        return;
    }

    if (len - off > c->in_cap) {
        in = realloc(c->in, len - off);
        if (in == NULL) {
            cl_die("out of memory");
        }
        c->in = in;
        c->in_cap = (uint32_t) (len - off);
    }

    memmove(c->in, buf + off, len - off);
    c->in_len = (uint32_t) (len - off);
}


void
ws_readable(ws_pool_t *p, size_t i)
{
    size_t      have;
    ssize_t     n;
    ws_conn_t  *c = &p->conns[i];

    have = c->in_len;
    if (have > 0) {
        memcpy(ws_rbuf, c->in, have);
    }

    n = read(c->fd, ws_rbuf + have, WS_RBUF_SIZE - have);
    if (n <= 0) {
        if (n < 0 && errno == EAGAIN) {
            return;
        }
        ws_drop(p, i);
        return;
    }

    ws_frames(p, i, ws_rbuf, have + (size_t) n);
}
