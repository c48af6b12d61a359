/*
 * chatload.h: the benchmark load generator's shared types.
 *
 * chatload is one binary with modes (main.c): WebSocket clients that sit
 * idle, or send and receive paced chat messages (wsconn.c, e2e.c), against
 * either our edge or nchan; a Redis stream hop at the same rates and a
 * burst of msg.send commands straight onto the bus (redisload.c); and the
 * merge of several processes' histograms into the printed figures
 * (hist.c).  Everything runs on loopback and stops by itself.
 */

#ifndef CHATLOAD_H
#define CHATLOAD_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <netinet/in.h>


/* ---------------------------------------------------------------- clocks */

uint64_t cl_now_ns(void);           /* CLOCK_MONOTONIC, nanoseconds */
void cl_die(const char *fmt, ...) __attribute__((format(printf, 1, 2),
                                                 noreturn));
void cl_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));


/* ------------------------------------------------------------- histogram */

/*
 * Log-linear histogram of microsecond values (HDR-style): exact below 128,
 * then 64 sub-buckets per power of two, so any percentile is within 1.6%.
 * min, max and the sum are kept exactly.
 */
#define HIST_SUB_BITS   6
#define HIST_SUB        (1u << HIST_SUB_BITS)
#define HIST_BUCKETS    (HIST_SUB * 42)

typedef struct {
    uint64_t  count;
    uint64_t  min;
    uint64_t  max;
    uint64_t  sum;
    uint64_t  b[HIST_BUCKETS];
} hist_t;

void hist_init(hist_t *h);
void hist_add(hist_t *h, uint64_t us);
void hist_merge(hist_t *into, const hist_t *from);
uint64_t hist_pct(const hist_t *h, double pct);     /* microseconds */
void hist_write(FILE *f, const char *name, int step, const hist_t *h);
int hist_read_line(const char *line, char *name, size_t name_size,
    int *step, hist_t *h);
/* "p50=1.23ms p99=4.56ms max=7.89ms" into buf */
const char *hist_summary(const hist_t *h, char *buf, size_t size);


/* ------------------------------------------------------- steps (results) */

#define CL_MAX_STEPS  16

/* What one process saw in one paced step; summed over processes. */
typedef struct {
    double    rate;             /* offered, all processes together */
    double    measure_s;        /* length of the measured window */
    uint64_t  sent;             /* frames written, warm-up included */
    uint64_t  sent_measured;    /* written inside the measured window */
    uint64_t  send_failed;      /* connection gone or output refused */
    uint64_t  acks;
    uint64_t  errors;           /* error frames from the edge */
    uint64_t  delivered;        /* measured messages that reached the peer */
    uint64_t  window_recv;      /* any deliveries inside the window */
    uint64_t  echoes;           /* copies delivered back to the sender */
    hist_t    lat;              /* sender -> recipient, measured messages */
    hist_t    ack;              /* sender -> ack (chat only) */
} cl_step_t;

void cl_steps_write(FILE *f, const cl_step_t *steps, int n);
int cl_steps_read(FILE *f, cl_step_t *steps, int max);   /* adds into */


/* --------------------------------------------------------- ws connections */

typedef enum {
    WS_WAITING = 0,     /* not yet tried, or waiting for a retry */
    WS_CONNECTING,
    WS_HANDSHAKE,
    WS_OPEN,
    WS_CLOSED,          /* was open, the server closed it */
    WS_FAILED           /* never opened after every try */
} ws_state_t;

typedef struct {
    int        fd;
    uint8_t    state;
    uint8_t    tries;
    uint8_t    want_out;
    char      *in;          /* handshake bytes or a partial frame */
    uint32_t   in_len;
    uint32_t   in_cap;
    char      *out;         /* what a short write left behind */
    uint32_t   out_len;
    uint32_t   out_off;
    uint32_t   out_cap;
} ws_conn_t;

typedef struct ws_pool_s  ws_pool_t;

/* writes the whole HTTP upgrade request of connection i (key included) */
typedef int (*ws_request_fn)(void *ud, size_t i, const char *key, char *buf,
    size_t size);
/* one complete text frame from the server */
typedef void (*ws_text_fn)(void *ud, size_t i, const char *data, size_t len);
/* an extra descriptor (timerfd, signalfd) became readable */
typedef void (*ws_extra_fn)(void *ud, int fd);

struct ws_pool_s {
    int              epfd;
    ws_conn_t       *conns;
    size_t           n;
    struct sockaddr_in  dst;
    struct in_addr  *src;
    size_t           nsrc;
    ws_request_fn    request;
    ws_text_fn       on_text;
    ws_extra_fn      on_extra;
    void            *ud;

    size_t          *queue;     /* ring of connections still to try */
    size_t           qhead;
    size_t           qlen;
    size_t           max_connecting;
    size_t           connecting;
    size_t           open;
    size_t           failed;
    size_t           closed;
    uint64_t         fragmented;
    char             first_error[160];
};

int ws_pool_init(ws_pool_t *p, size_t n, const char *host, int port,
    const char *src_list);
/* connects every connection, at most max_connecting at a time; returns
 * once all are open or failed, or at the deadline (monotonic ns) */
void ws_pool_connect_all(ws_pool_t *p, uint64_t deadline);
/* one epoll round, at most timeout_ms */
void ws_pool_poll(ws_pool_t *p, int timeout_ms);
int ws_pool_add_extra(ws_pool_t *p, int fd);
/* a masked text frame; -1 when the connection is not open or its output
 * is backed up past 1 MiB */
int ws_send_text(ws_pool_t *p, size_t i, const char *data, size_t len);
void ws_pool_close_all(ws_pool_t *p);

/* between wsconn.c and wsio.c */
#define WS_RBUF_SIZE  (4u << 20)
extern char ws_rbuf[WS_RBUF_SIZE];
void ws_watch(ws_pool_t *p, size_t i, uint32_t events, int op);
void ws_frames(ws_pool_t *p, size_t i, char *buf, size_t len);
void ws_readable(ws_pool_t *p, size_t i);
void ws_flush(ws_pool_t *p, size_t i);
void ws_drop(ws_pool_t *p, size_t i);


/* ----------------------------------------------------------------- modes */

#define CL_MAX_HEADERS  4

typedef struct {
    const char  *system;        /* "chat" or "nchan" */
    const char  *host;
    int          port;
    const char  *secret_file;
    const char  *src;           /* comma-separated source addresses */
    int64_t      uid_base;      /* uid of client index 0 */
    int64_t      conv_base;     /* conversation of pair 0 */
    size_t       first;         /* global index of this process's first */
    size_t       clients;
    size_t       concurrency;
    double       rates[CL_MAX_STEPS];
    int          nrates;
    int          procs;         /* processes sharing the offered rate */
    int          proc;          /* this process's number */
    double       warmup_s;
    double       measure_s;
    double       drain_s;
    double       max_drain_s;
    double       final_drain_s;
    double       connect_s;
    double       hold_s;
    int          text_len;
    int          control;       /* e2e: rates come on stdin, one a line */
    const char  *out;
    int          redis_port;
    size_t       count;
    size_t       pairs;
    int          shards;
    const char  *headers[CL_MAX_HEADERS];  /* http: extra request headers */
    int          nheaders;
    int          payment_port;  /* checkout: the payment provider */
    int64_t      books_first;   /* checkout: the books picked from */
    int64_t      books_count;
    double       slow_share;    /* checkout: share paid with the slow card */
    const char  *uids_file;     /* checkout: user ids, instead of uid_base */
} cl_opts_t;

int cl_mode_clients(const cl_opts_t *o, int paced);    /* idle or e2e */
int cl_mode_hop(const cl_opts_t *o);
int cl_mode_commit(const cl_opts_t *o);
int cl_mode_merge(const char *label, int argc, char **argv);
/* a TCP connection to host:port (TCP_NODELAY), watched for input on epfd
 * with tag as its epoll data: its descriptor, or -1 (httpload.c) */
int cl_tcp_open(const char *host, int port, int epfd, uint64_t tag);
/* closed-loop GETs of the paths in a file (httpload.c, the catalog) */
int cl_mode_http(const cl_opts_t *o, const char *paths, const char *label);
/* shoppers: cart, card, checkout (checkoutload.c, the checkout figures) */
int cl_mode_checkout(const cl_opts_t *o, const char *label);
/* the disk's fdatasync latency (fsyncload.c, figures 1 and 3) */
int cl_mode_fsync(const cl_opts_t *o);

/* message text shared by every system: lat:<step>:<m>:<ts_ns>:<uid>:xxxx */
int cl_text_make(char *buf, size_t size, int step, int measured,
    uint64_t ts, int64_t uid, int len);
/* finds "lat:" in data and parses it; 0 when found */
int cl_text_parse(const char *data, size_t len, int *step, int *measured,
    uint64_t *ts, int64_t *uid);

#endif /* CHATLOAD_H */
