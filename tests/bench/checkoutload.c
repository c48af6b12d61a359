/*
 * checkoutload.c: chatload checkout, the shoppers of the checkout figures
 * (figure 4, and figure 7's checkouts beside chat).
 *
 *   chatload checkout --port P --payment-port Q --secret FILE
 *                     (--uid-base U | --uids FILE) --shoppers S
 *                     --books FIRST:COUNT --measure SECONDS [--label L]
 *                     [--rates R] [--slow-share F]
 *
 * Each shopper is one user (a token signed here with the stack's secret,
 * by the edge's own signer) with two keep-alive connections, one to nginx
 * and one to the payment provider, and does what checkout.mjs did, the
 * way a browser does it: PUT one random book of the range into the cart,
 * tokenize a card with the provider (answered at once, not timed), POST
 * /api/v1/orders with a fresh Idempotency-Key and the token (timed, from
 * the write to the last byte of the answer).  A checkout refused with 409
 * out_of_stock takes the book out of the cart again (DELETE), so the next
 * pick counts.  Half the shoppers ship to eu, half to us.
 *
 * Why C: the node generator spent 3.6 ms of CPU per checkout (three fetch
 * calls and their JSON), more than the product's PostgreSQL, on the same
 * two cores as the stack it measured: at 200 checkouts/s it took most of a
 * core from what it was timing.  This one spends a few tens of µs.
 *
 * Closed loop (no --rates, figure 4): every shopper loops for the whole
 * window.  One line, as checkout.mjs printed it:
 *   <label> shoppers=S books=K checkouts=C rate=R/s p50=..ms p99=..ms
 *           max=..ms out_of_stock=O pending=P errors=E load_cpu=..us
 * checkouts counts 201 with status "paid", rate is those per second of
 * the window, the latencies are theirs; pending: 201 still
 * pending_payment (the reconciler settles them later); load_cpu: this
 * process's CPU (user + system) per paid checkout.
 *
 * Open loop (--rates R, figure 7): a checkout is due every 1/R s and goes
 * to an idle shopper; with none idle it is skipped (counted).  A share F
 * of them pay with the provider's slow card.  One line:
 *   checkouts offered=R/s answered paid:N,pending_payment:M,...,skipped:K
 *             checkout_p99=..ms
 * the p99 over the checkouts with the ordinary card.
 *
 * A connection the other side closed (nginx's keepalive_requests, the
 * provider's keep-alive timeout) before the answer is reopened and the
 * request written again: a cart PUT and a tokenization are safe to
 * repeat, and a checkout is repeated with the same key and token, which
 * the API answers from its first run.
 */

#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "chat_token.h"
#include "chatload.h"


#define CK_BUF      16384
#define CK_REQ      4096

#define CK_CARD_OK    "4242424242424242"
#define CK_CARD_SLOW  "4000000000000309"


typedef enum {
    CK_IDLE = 0,
    CK_CART,            /* the cart PUT is out */
    CK_TOKEN,           /* the card's tokenization is out */
    CK_ORDER,           /* the checkout is out */
    CK_DROP             /* the sold-out book's DELETE is out */
} ck_state_t;


typedef struct {
    int        fd;
    int        port;
    int        retried;         /* the request was written again once */
    size_t     have;
    size_t     need;            /* header + body, once the header is in */
    size_t     hlen;
    int        status;
    char       buf[CK_BUF];
    char       req[CK_REQ];
    size_t     req_len;
} ck_conn_t;


typedef struct {
    ck_conn_t   shop;           /* nginx */
    ck_conn_t   pay;            /* the payment provider */
    int64_t     uid;
    ck_state_t  state;
    int64_t     book;
    int         slow;
    uint64_t    t0;             /* the checkout's write */
    char        token[CHAT_TOKEN_MAX_LEN];
} ck_shopper_t;


typedef struct {
    const cl_opts_t  *o;
    int               epfd;
    ck_shopper_t     *s;
    size_t            n;
    int               exp_year;
    uint64_t          from;     /* the window */
    uint64_t          to;
    hist_t            lat;
    uint64_t          paid;
    uint64_t          pending;
    uint64_t          out_of_stock;
    uint64_t          errors;
    uint64_t          skipped;
    uint64_t          other[600];   /* open loop: answers by status */
    size_t           *idle;
    size_t            nidle;
} ck_t;


static int
ck_open(ck_t *ck, ck_conn_t *c, int port, uint64_t tag)
{
    c->fd = cl_tcp_open(ck->o->host, port, ck->epfd, tag);
    c->port = port;
    return c->fd < 0 ? -1 : 0;
}


static int
ck_write(ck_conn_t *c)
{
    c->have = 0;
    c->need = 0;
    c->hlen = 0;
    c->status = 0;

    /* a small request on a keep-alive socket: one write does it */
    return write(c->fd, c->req, c->req_len) == (ssize_t) c->req_len ? 0 : -1;
}


/* builds and writes a request; body may be NULL */
static int
ck_request(ck_conn_t *c, const char *method, const char *path,
    const char *auth, const char *key, const char *body)
{
    int     n;
    size_t  blen;

    blen = body ? strlen(body) : 0;
    n = snprintf(c->req, sizeof(c->req),
                 "%s %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
                 "%s%s%s%s%s%s"
                 "Content-Type: application/json\r\n"
                 "Content-Length: %zu\r\n\r\n%s",
                 method, path, c->port,
                 auth ? "Authorization: Bearer " : "", auth ? auth : "",
                 auth ? "\r\n" : "",
                 key ? "Idempotency-Key: " : "", key ? key : "",
                 key ? "\r\n" : "",
                 blen, body ? body : "");
    if (n <= 0 || (size_t) n >= sizeof(c->req)) {
        cl_die("a request for %s is too long", path);
    }

    c->req_len = (size_t) n;
    c->retried = 0;
    return ck_write(c);
}


/* the header named (case-insensitive) in the answer's header, or NULL */
static const char *
ck_header(const ck_conn_t *c, const char *name)
{
    size_t       nlen;
    const char  *p, *end;

    nlen = strlen(name);
    end = c->buf + c->hlen;

    for (p = c->buf; p != NULL && p + nlen < end; ) {
        p = memchr(p, '\n', (size_t) (end - p));
        if (p == NULL) {
            break;
        }
        p++;
        if ((size_t) (end - p) > nlen && strncasecmp(p, name, nlen) == 0
            && p[nlen] == ':')
        {
            return p + nlen + 1;
        }
    }

    return NULL;
}


/*
 * Reads what c has: 1 with its answer complete (c->buf holds it, NUL
 * ended), 0 when more is needed, -1 when the connection broke (it is
 * reopened and the request written again, once; a second break is an
 * error the caller counts).
 */
static int
ck_read(ck_t *ck, ck_conn_t *c, uint64_t tag)
{
    ssize_t      got;
    char        *end;
    const char  *cl;

    got = read(c->fd, c->buf + c->have, CK_BUF - 1 - c->have);
    if (got < 0 && (errno == EAGAIN || errno == EINTR)) {
        return 0;
    }

    if (got <= 0) {
        epoll_ctl(ck->epfd, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
        if (ck_open(ck, c, c->port, tag) != 0) {
            cl_die("cannot reopen a connection to port %d", c->port);
        }
        if (c->req_len == 0 || c->retried) {
            return -1;
        }
        c->retried = 1;
        return ck_write(c) == 0 ? 0 : -1;
    }

    c->have += (size_t) got;
    c->buf[c->have] = '\0';

    if (c->need == 0) {
        end = memmem(c->buf, c->have, "\r\n\r\n", 4);
        if (end == NULL) {
            if (c->have >= CK_BUF - 1) {
                cl_die("an answer's header is over %d bytes", CK_BUF);
            }
            return 0;
        }
        c->hlen = (size_t) (end - c->buf) + 4;
        c->status = atoi(c->buf + 9);
        cl = ck_header(c, "Content-Length");
        c->need = c->hlen + (cl ? strtoul(cl, NULL, 10) : 0);
        if (c->need >= CK_BUF) {
            cl_die("an answer of %zu bytes is over %d", c->need, CK_BUF);
        }
    }

    if (c->have < c->need) {
        return 0;
    }

    /* this answer is done: the next request starts a new one */
    c->req_len = 0;
    return 1;
}


static void
ck_count(ck_t *ck, int status)
{
    ck->other[status > 0 && status < 600 ? status : 0]++;
}


/* starts shopper i's next checkout: the cart PUT */
static void
ck_start(ck_t *ck, size_t i)
{
    char           path[96];
    ck_shopper_t  *s;

    s = &ck->s[i];
    s->book = ck->o->books_first + (int64_t) (random() % ck->o->books_count);
    s->slow = ck->o->slow_share > 0
              && (double) random() / RAND_MAX < ck->o->slow_share;
    snprintf(path, sizeof(path), "/api/v1/cart/items/%lld",
             (long long) s->book);

    s->state = CK_CART;
    if (ck_request(&s->shop, "PUT", path, s->token, NULL,
                   "{\"quantity\":1}") != 0)
    {
        cl_die("write failed");
    }
}


/* shopper i is done with a checkout: the next, or idle */
static void
ck_next(ck_t *ck, size_t i)
{
    ck->s[i].state = CK_IDLE;

    if (ck->o->nrates == 0 && cl_now_ns() < ck->to) {
        ck_start(ck, i);
    } else {
        ck->idle[ck->nidle++] = i;
    }
}


static void
ck_answer(ck_t *ck, size_t i, ck_conn_t *c, int rc)
{
    int            eu, measured;
    char           body[512], key[48], path[96];
    const char    *id, *b;
    uint64_t       now;
    ck_shopper_t  *s;

    s = &ck->s[i];
    b = c->buf + c->hlen;
    now = cl_now_ns();

    switch (s->state) {

    case CK_CART:
        if (rc < 0 || c->status != 200) {
            ck->errors++;
            ck_count(ck, rc < 0 ? 0 : c->status);
            ck_next(ck, i);
            return;
        }
        snprintf(body, sizeof(body),
                 "{\"card\":{\"number\":\"%s\",\"exp_month\":12,"
                 "\"exp_year\":%d,\"cvc\":\"123\"}}",
                 s->slow ? CK_CARD_SLOW : CK_CARD_OK, ck->exp_year);
        s->state = CK_TOKEN;
        if (ck_request(&s->pay, "POST", "/v1/tokens", NULL, NULL, body)
            != 0)
        {
            cl_die("write failed");
        }
        return;

    case CK_TOKEN:
        id = rc > 0 && c->status == 201 ? strstr(b, "\"id\":\"") : NULL;
        if (id == NULL || strchr(id + 6, '"') == NULL
            || strchr(id + 6, '"') - (id + 6) > 100)
        {
            ck->errors++;
            ck_count(ck, rc < 0 ? 0 : c->status);
            ck_next(ck, i);
            return;
        }
        id += 6;
        eu = (s->uid & 1) == 1;
        snprintf(body, sizeof(body),
                 "{\"shipping_address\":{\"name\":\"Shopper %lld\","
                 "\"line1\":\"1 Bench Road\",\"city\":\"Benchville\","
                 "\"country\":\"%s\",\"region\":\"%s\"},"
                 "\"payment\":{\"token\":\"%.*s\"}}",
                 (long long) s->uid, eu ? "PT" : "US", eu ? "eu" : "us",
                 (int) (strchr(id, '"') - id), id);
        snprintf(key, sizeof(key), "bench-%08lx%08lx",
                 (unsigned long) random(), (unsigned long) random());
        s->state = CK_ORDER;
        s->t0 = now;
        if (ck_request(&s->shop, "POST", "/api/v1/orders", s->token, key,
                       body) != 0)
        {
            cl_die("write failed");
        }
        return;

    case CK_ORDER:
        measured = s->t0 >= ck->from && s->t0 < ck->to;
        if (rc > 0 && c->status == 201 && strstr(b, "\"status\":\"paid\"")) {
            if (measured) {
                ck->paid++;
                ck_count(ck, 1);
                if (!s->slow) {
                    hist_add(&ck->lat, (now - s->t0) / 1000);
                }
            }
        } else if (rc > 0 && c->status == 201
                   && strstr(b, "\"status\":\"pending_payment\""))
        {
            if (measured) {
                ck->pending++;
                ck_count(ck, 2);
            }
        } else if (rc > 0 && c->status == 409 && strstr(b, "out_of_stock")) {
            if (measured) {
                ck->out_of_stock++;
                ck_count(ck, 409);
            }
            snprintf(path, sizeof(path), "/api/v1/cart/items/%lld",
                     (long long) s->book);
            s->state = CK_DROP;
            if (ck_request(&s->shop, "DELETE", path, s->token, NULL, NULL)
                != 0)
            {
                cl_die("write failed");
            }
            return;
        } else if (measured) {
            ck->errors++;
            ck_count(ck, rc < 0 ? 0 : c->status);
        }
        ck_next(ck, i);
        return;

    case CK_DROP:
    case CK_IDLE:
        ck_next(ck, i);
        return;
    }
}


static void
ck_read_uids(ck_t *ck)
{
    FILE       *f;
    size_t      i;
    long long   v;

    if (ck->o->uids_file == NULL) {
        for (i = 0; i < ck->n; i++) {
            ck->s[i].uid = ck->o->uid_base + (int64_t) i;
        }
        return;
    }

    f = fopen(ck->o->uids_file, "r");
    if (f == NULL) {
        cl_die("cannot open %s", ck->o->uids_file);
    }
    for (i = 0; i < ck->n; i++) {
        if (fscanf(f, "%lld", &v) != 1 || v <= 0) {
            cl_die("%s has fewer than %zu user ids", ck->o->uids_file, ck->n);
        }
        ck->s[i].uid = v;
    }
    fclose(f);
}


static void
ck_setup(ck_t *ck)
{
    FILE                 *f;
    size_t                i, slen;
    time_t                now;
    struct tm             tm;
    unsigned char         secret[4096];
    chat_token_claims_t   claims;

    f = fopen(ck->o->secret_file, "r");
    if (f == NULL) {
        cl_die("cannot read the token secret %s", ck->o->secret_file);
    }
    slen = fread(secret, 1, sizeof(secret), f);
    fclose(f);
    while (slen > 0 && (secret[slen - 1] == '\n' || secret[slen - 1] == '\r')) {
        slen--;
    }

    now = time(NULL);
    gmtime_r(&now, &tm);
    ck->exp_year = tm.tm_year + 1900 + 2;
    srandom((unsigned) now ^ (unsigned) getpid());

    ck->epfd = epoll_create1(0);
    ck->s = calloc(ck->n, sizeof(ck_shopper_t));
    ck->idle = malloc(ck->n * sizeof(size_t));
    if (ck->epfd < 0 || ck->s == NULL || ck->idle == NULL) {
        cl_die("out of resources");
    }

    ck_read_uids(ck);

    for (i = 0; i < ck->n; i++) {
        memset(&claims, 0, sizeof(claims));
        claims.uid = ck->s[i].uid;
        strcpy(claims.role, "user");
        strcpy(claims.sid, "bench");
        claims.iat = (int64_t) now;
        claims.exp = (int64_t) now + 3600;
        claims.sxp = claims.exp;
        if (chat_token_sign(secret, slen, &claims, ck->s[i].token,
                            sizeof(ck->s[i].token)) < 0)
        {
            cl_die("cannot sign a token (is the secret long enough?)");
        }

        if (ck_open(ck, &ck->s[i].shop, ck->o->port, i * 2) != 0
            || ck_open(ck, &ck->s[i].pay, ck->o->payment_port, i * 2 + 1)
               != 0)
        {
            cl_die("cannot open shopper %zu's connections", i);
        }
        ck->idle[ck->nidle++] = ck->n - 1 - i;
    }
}


static void
ck_print(ck_t *ck, const char *label)
{
    int            k;
    size_t         len;
    char           name[24], parts[1024];
    double         p50, p99, cpu_us;
    uint64_t       n;
    struct rusage  ru;

    /* this process's own CPU per paid checkout: what the load cost */
    getrusage(RUSAGE_SELF, &ru);
    cpu_us = (double) (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e6
             + (double) (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);

    if (ck->o->nrates == 0) {
        p50 = (double) hist_pct(&ck->lat, 50) / 1000;
        p99 = (double) hist_pct(&ck->lat, 99) / 1000;
        printf("%s shoppers=%zu books=%lld checkouts=%llu rate=%.0f/s "
               "p50=%.1fms p99=%.1fms max=%.1fms out_of_stock=%llu "
               "pending=%llu errors=%llu load_cpu=%.0fus\n",
               label ? label : "checkout", ck->n,
               (long long) ck->o->books_count,
               (unsigned long long) ck->paid,
               (double) ck->paid / ck->o->measure_s, p50, p99,
               (double) ck->lat.max / 1000,
               (unsigned long long) ck->out_of_stock,
               (unsigned long long) ck->pending,
               (unsigned long long) ck->errors,
               ck->paid ? cpu_us / (double) ck->paid : 0.0);
        return;
    }

    len = 0;
    parts[0] = '\0';
    for (k = 0; k < 600 && len < sizeof(parts) - 64; k++) {
        n = ck->other[k];
        if (n == 0) {
            continue;
        }
        if (k == 0) {
            snprintf(name, sizeof(name), "error");
        } else if (k == 1) {
            snprintf(name, sizeof(name), "paid");
        } else if (k == 2) {
            snprintf(name, sizeof(name), "pending_payment");
        } else {
            snprintf(name, sizeof(name), "%d", k);
        }
        len += (size_t) snprintf(parts + len, sizeof(parts) - len, "%s%s:%llu",
                                 len ? "," : "", name, (unsigned long long) n);
    }
    if (ck->skipped) {
        snprintf(parts + len, sizeof(parts) - len, "%sskipped:%llu",
                 len ? "," : "", (unsigned long long) ck->skipped);
    }

    printf("checkouts offered=%.0f/s answered %s checkout_p99=%.0fms\n",
           ck->o->rates[0], parts[0] ? parts : "nothing",
           (double) hist_pct(&ck->lat, 99) / 1000);
}


int
cl_mode_checkout(const cl_opts_t *o, const char *label)
{
    int                 n, k, rc;
    size_t              i;
    uint64_t            start, now, due, sent, drain_to;
    ck_t                ck;
    ck_conn_t          *c;
    ck_shopper_t       *s;
    struct epoll_event  evs[256];

    memset(&ck, 0, sizeof(ck));
    ck.o = o;
    ck.n = o->concurrency;
    hist_init(&ck.lat);

    ck_setup(&ck);

    start = cl_now_ns();
    ck.from = start;
    ck.to = start + (uint64_t) (o->measure_s * 1e9);
    drain_to = ck.to + 30000000000ull;
    sent = 0;

    if (o->nrates == 0) {
        while (ck.nidle > 0) {
            ck.nidle--;
            ck_start(&ck, ck.idle[ck.nidle]);
        }
    }

    for (;;) {
        now = cl_now_ns();

        if (o->nrates > 0 && now < ck.to) {
            due = (uint64_t) ((double) (now - start) * o->rates[0] / 1e9) + 1;
            for ( ; sent < due; sent++) {
                if (ck.nidle == 0) {
                    ck.skipped++;
                    continue;
                }
                ck_start(&ck, ck.idle[--ck.nidle]);
            }
        }

        /* after the window, only the checkouts out finish */
        if (now >= ck.to && (ck.nidle == ck.n || now >= drain_to)) {
            break;
        }

        n = epoll_wait(ck.epfd, evs, 256, 1);
        for (k = 0; k < n; k++) {
            i = (size_t) evs[k].data.u64 / 2;
            s = &ck.s[i];
            c = (evs[k].data.u64 & 1) ? &s->pay : &s->shop;
            rc = ck_read(&ck, c, evs[k].data.u64);
            /* an idle connection closed by the other side is reopened
             * and nobody waited on it */
            if (rc == 0 || s->state == CK_IDLE
                || c != (s->state == CK_TOKEN ? &s->pay : &s->shop))
            {
                continue;
            }
            ck_answer(&ck, i, c, rc);
        }
    }

    ck_print(&ck, label);
    fflush(stdout);

    for (i = 0; i < ck.n; i++) {
        close(ck.s[i].shop.fd);
        close(ck.s[i].pay.fd);
    }
    free(ck.s);
    free(ck.idle);
    close(ck.epfd);

    return 0;
}
