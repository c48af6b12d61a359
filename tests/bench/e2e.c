/*
 * e2e.c: WebSocket clients that sit idle, or send and receive paced chat
 * messages and time them from sender to recipient.
 *
 * Clients are numbered globally; this process runs clients
 * first .. first+clients-1 (first and clients even).  Clients 2k and 2k+1
 * are the two members of one 1:1 conversation: conv_base + k on our edge,
 * channel k on nchan (a pubsub location: one WebSocket both publishes and
 * subscribes).  Every message is therefore delivered to exactly one other
 * client, plus a copy back to its sender on both systems (the edge sends
 * a message event to every member's connections; nchan echoes to every
 * subscriber), and that copy is counted apart, not timed.
 *
 * Both systems get the same client frame, byte for byte:
 *
 *   {"type":"send","conversation_id":C,"client_msg_id":"<step>.<m>.<ts>.<proc>.<seq>",
 *    "text":"lat:<step>:<m>:<ts_ns>:<uid>:xxxx..."}
 *
 * The edge turns it into msg.send and delivers {"type":"message",
 * "message":{... "text":"lat:..."}}; nchan delivers it verbatim.  Either
 * way the recipient finds "lat:", and the latency is CLOCK_MONOTONIC now
 * minus <ts_ns> (one machine, one clock).  On our edge the ack carries the
 * client_msg_id back, which gives the sender -> ack (commit) latency too.
 *
 * Pacing is open-loop against the clock: after each epoll round the
 * process sends however many messages the rate says are due, from its
 * clients in turn.  A step is warm-up, then the measured window, then a
 * drain of at least drain_s that goes on (up to a cap) until everything
 * sent has arrived, so a backlog does not spill into the next step unless
 * the cap says so.  Several processes get the go signal (SIGUSR1)
 * together and drift apart by no more than their drains differ.  Only
 * messages sent inside the window are timed; "achieved" counts every
 * delivery that lands inside the window, so a system that falls behind
 * shows it.
 *
 * With --control the steps are not known in advance: each line on stdin
 * is the rate (and optionally the warm-up and measured seconds) of one
 * more step on the same connections (bench.sh's ceiling search decides
 * the next rate from the last result), the
 * results file is rewritten after every step, and "done <step>" goes to
 * stdout.  A message that arrives after its own step is over counts for
 * that step, never for the window of a later one.
 */

#define _GNU_SOURCE
#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include "chat_token.h"
#include "chatload.h"


typedef struct {
    const cl_opts_t  *o;
    ws_pool_t         pool;
    int               chat;
    unsigned char     secret[4096];
    size_t            secret_len;

    cl_step_t        *steps;
    int               cur;
    uint64_t          start[CL_MAX_STEPS];
    uint64_t          measure[CL_MAX_STEPS];
    uint64_t          send_end[CL_MAX_STEPS];

    size_t            rr;
    uint64_t          seq;
    uint64_t          sent_total;
    uint64_t          recv_total;
    uint64_t          refused_total;
    uint64_t          timeouts;
    uint64_t          other;
    uint64_t          stale;
    int               go;
    int               stop;
    double            next_rate;    /* --control: the step asked for */
    double            next_warmup;
    double            next_measure;
    char              line[64];     /* --control: stdin, a partial line */
    size_t            line_len;
    int               eof;
    int               sfd;
    int               errors_logged;
} e2e_t;


/* ------------------------------------------------------------ the text */

int
cl_text_make(char *buf, size_t size, int step, int measured, uint64_t ts,
    int64_t uid, int len)
{
    int  n;

    n = snprintf(buf, size, "lat:%d:%d:%" PRIu64 ":%" PRId64 ":", step,
                 measured, ts, uid);
    if (n < 0 || (size_t) n >= size) {
        return -1;
    }

    while (n < len && (size_t) n + 1 < size) {
        buf[n++] = 'x';
    }
    buf[n] = '\0';

    return n;
}


int
cl_text_parse(const char *data, size_t len, int *step, int *measured,
    uint64_t *ts, int64_t *uid)
{
    char        tmp[96];
    size_t      n;
    const char  *p;

    p = memmem(data, len, "lat:", 4);
    if (p == NULL) {
        return -1;
    }

    n = len - (size_t) (p - data);
    if (n >= sizeof(tmp)) {
        n = sizeof(tmp) - 1;
    }
    memcpy(tmp, p, n);
    tmp[n] = '\0';

    return sscanf(tmp, "lat:%d:%d:%" SCNu64 ":%" SCNd64 ":", step, measured,
                  ts, uid) == 4 ? 0 : -1;
}


/* ------------------------------------------------------------- clients */

static int64_t
e2e_uid(e2e_t *e, size_t i)
{
    size_t  g = e->o->first + i;

    return e->chat ? e->o->uid_base + (int64_t) g : (int64_t) g;
}


static int
e2e_request(void *ud, size_t i, const char *key, char *buf, size_t size)
{
    int      n;
    char                 token[CHAT_TOKEN_MAX_LEN], path[64];
    e2e_t               *e = ud;
    int64_t              now;
    chat_token_claims_t  claims;

    token[0] = '\0';

    if (e->chat) {
        now = (int64_t) time(NULL);
        memset(&claims, 0, sizeof(claims));
        claims.uid = e2e_uid(e, i);
        strcpy(claims.role, "user");
        strcpy(claims.sid, "bench");
        claims.iat = now;
        claims.exp = now + 86400;
        claims.sxp = claims.exp;

        if (chat_token_sign(e->secret, e->secret_len, &claims, token,
                            sizeof(token)) < 0)
        {
            return -1;
        }
        snprintf(path, sizeof(path), "/ws");
    } else {
        snprintf(path, sizeof(path), "/ps/%zu", (e->o->first + i) / 2);
    }

    n = snprintf(buf, size,
                 "GET %s HTTP/1.1\r\n"
                 "Host: %s:%d\r\n"
                 "Upgrade: websocket\r\n"
                 "Connection: Upgrade\r\n"
                 "Sec-WebSocket-Key: %s\r\n"
                 "Sec-WebSocket-Version: 13\r\n"
                 "%s%s%s"
                 "\r\n",
                 path, e->o->host, e->o->port, key,
                 e->chat ? "Authorization: Bearer " : "", token,
                 e->chat ? "\r\n" : "");

    return (n > 0 && (size_t) n < size) ? n : -1;
}


static int
e2e_step_of(e2e_t *e, int step)
{
    return (step >= 0 && step < CL_MAX_STEPS && step <= e->cur) ? step : -1;
}


static void
e2e_on_text(void *ud, size_t i, const char *data, size_t len)
{
    int          step, m;
    e2e_t       *e = ud;
    int64_t      uid;
    uint64_t     ts, now;
    cl_step_t   *s;
    const char  *p;

    now = cl_now_ns();

    if (cl_text_parse(data, len, &step, &m, &ts, &uid) == 0
        && !memmem(data, len, "\"type\":\"ack\"", 12)
        && !memmem(data, len, "\"type\":\"error\"", 14))
    {
        step = e2e_step_of(e, step);
        if (step < 0) {
            return;
        }
        /* sent before this run began: a message of an earlier run that
         * arrived late (a backlog), not one of ours */
        if (e->cur < 0 || ts < e->start[0]) {
            e->stale++;
            return;
        }
        if (uid == e2e_uid(e, i)) {
            e->steps[step].echoes++;
            return;
        }
        e->recv_total++;
        if (m) {
            e->steps[step].delivered++;
            hist_add(&e->steps[step].lat, now > ts ? (now - ts) / 1000 : 0);
        }
        if (step == e->cur && now >= e->measure[step]
            && now < e->send_end[step])
        {
            e->steps[e->cur].window_recv++;
        }
        return;
    }

    p = memmem(data, len, "\"client_msg_id\":\"", 17);
    if (p == NULL) {
        p = memmem(data, len, "\"ref\":\"", 7);
        p = p ? p + 7 : NULL;
    } else {
        p += 17;
    }

    step = -1;
    m = 0;
    ts = 0;
    if (p == NULL || sscanf(p, "%d.%d.%" SCNu64, &step, &m, &ts) != 3) {
        step = e->cur;
    }
    step = e2e_step_of(e, step);

    if (memmem(data, len, "\"type\":\"ack\"", 12)) {
        if (step >= 0) {
            s = &e->steps[step];
            s->acks++;
            if (m && ts) {
                hist_add(&s->ack, now > ts ? (now - ts) / 1000 : 0);
            }
        }

    } else if (memmem(data, len, "\"type\":\"error\"", 14)) {
        if (memmem(data, len, "\"code\":\"timeout\"", 16)) {
            e->timeouts++;
        } else {
            e->refused_total++;
        }
        if (step >= 0) {
            e->steps[step].errors++;
        }
        if (e->errors_logged++ < 3) {
            cl_log("proc %d: error frame: %.*s", e->o->proc,
                   (int) (len > 300 ? 300 : len), data);
        }

    } else {
        e->other++;
    }
}


/* --control: a line of stdin is the rate of the next step */
static void
e2e_on_control(e2e_t *e)
{
    char     *nl, *end;
    ssize_t   n;

    n = read(0, e->line + e->line_len, sizeof(e->line) - 1 - e->line_len);
    if (n <= 0) {
        e->eof = 1;
        close(0);           /* out of the epoll set: it would stay ready */
        return;
    }

    e->line_len += (size_t) n;
    e->line[e->line_len] = '\0';

    nl = strchr(e->line, '\n');
    if (nl == NULL) {
        if (e->line_len == sizeof(e->line) - 1) {
            e->eof = 1;                     /* not a rate: give up */
        }
        return;
    }

    /* "<rate> [<warmup s> <measure s>]" */
    *nl = '\0';
    e->next_warmup = e->o->warmup_s;
    e->next_measure = e->o->measure_s;
    e->next_rate = strtod(e->line, &end);
    if (end == e->line || e->next_rate <= 0) {
        e->eof = 1;
    } else if (sscanf(end, "%lf %lf", &e->next_warmup, &e->next_measure) == 2
               && (e->next_warmup < 0 || e->next_measure <= 0))
    {
        e->eof = 1;
    }

    e->line_len -= (size_t) (nl + 1 - e->line);
    memmove(e->line, nl + 1, e->line_len);
}


static void
e2e_on_extra(void *ud, int fd)
{
    e2e_t                    *e = ud;
    struct signalfd_siginfo   si;

    if (fd == 0) {
        e2e_on_control(e);
        return;
    }

    if (read(fd, &si, sizeof(si)) != (ssize_t) sizeof(si)) {
        return;
    }

    if (si.ssi_signo == SIGUSR1) {
        e->go = 1;
    } else {
        e->stop = 1;
    }
}


/* ------------------------------------------------------------- sending */

static void
e2e_send_one(e2e_t *e, int step, int m, uint64_t now)
{
    int       n;
    char      text[512], frame[1024];
    size_t    i, g, tries;
    int64_t   conv;

    for (tries = 0; tries < e->pool.n; tries++) {
        i = e->rr++ % e->pool.n;
        if (e->pool.conns[i].state == WS_OPEN) {
            break;
        }
    }

    if (tries == e->pool.n) {
        e->steps[step].send_failed++;
        return;
    }

    g = e->o->first + i;
    conv = e->chat ? e->o->conv_base + (int64_t) (g / 2) : (int64_t) (g / 2);

    if (cl_text_make(text, sizeof(text), step, m, now, e2e_uid(e, i),
                     e->o->text_len) < 0)
    {
        cl_die("text too long");
    }

    n = snprintf(frame, sizeof(frame),
                 "{\"type\":\"send\",\"conversation_id\":%" PRId64 ","
                 "\"client_msg_id\":\"%d.%d.%" PRIu64 ".%d.%" PRIu64 "\","
                 "\"text\":\"%s\"}",
                 conv, step, m, now, e->o->proc, e->seq++, text);

    if (ws_send_text(&e->pool, i, frame, (size_t) n) != 0) {
        e->steps[step].send_failed++;
        return;
    }

    e->steps[step].sent++;
    e->sent_total++;
    if (m) {
        e->steps[step].sent_measured++;
    }
}


static void
e2e_send_due(e2e_t *e, int k, double rate)
{
    int       m;
    uint64_t  now, due;

    now = cl_now_ns();
    if (now >= e->send_end[k]) {
        now = e->send_end[k];
    }

    due = (uint64_t) (rate * (double) (now - e->start[k]) / 1e9);
    m = now >= e->measure[k];

    while (e->steps[k].sent + e->steps[k].send_failed < due) {
        e2e_send_one(e, k, m, cl_now_ns());
    }
}


/* everything sent has arrived or been refused (a timed-out command is
 * still on the bus and may yet be delivered, so it does not count) */
static int
e2e_settled(e2e_t *e)
{
    return e->recv_total + e->refused_total >= e->sent_total;
}


/* One paced step k at rate (all processes together), warmup_s then
 * measure_s; last: the final drain applies. */
static void
e2e_step(e2e_t *e, int k, double rate, double warmup_s, double measure_s,
    int last)
{
    double     max_drain;
    uint64_t   now, min_end, max_end;
    const cl_opts_t  *o = e->o;

    e->start[k] = cl_now_ns();
    e->measure[k] = e->start[k] + (uint64_t) (warmup_s * 1e9);
    e->send_end[k] = e->measure[k] + (uint64_t) (measure_s * 1e9);
    e->steps[k].rate = rate;
    e->steps[k].measure_s = measure_s;
    e->cur = k;
    rate /= o->procs;

    while (cl_now_ns() < e->send_end[k] && !e->stop) {
        e2e_send_due(e, k, rate);
        ws_pool_poll(&e->pool, 1);
    }
    e2e_send_due(e, k, rate);

    /* drain: at least drain_s, then until settled or the cap */
    max_drain = last ? o->final_drain_s : o->max_drain_s;
    min_end = e->send_end[k] + (uint64_t) (o->drain_s * 1e9);
    max_end = e->send_end[k] + (uint64_t) (max_drain * 1e9);

    for ( ;; ) {
        now = cl_now_ns();
        if (e->stop || now >= max_end
            || (now >= min_end && e2e_settled(e)))
        {
            break;
        }
        ws_pool_poll(&e->pool, 20);
    }
}


static void
e2e_write(e2e_t *e, int n)
{
    FILE  *f;

    f = fopen(e->o->out, "w");
    if (f == NULL) {
        cl_die("cannot write %s", e->o->out);
    }
    cl_steps_write(f, e->steps, n);
    fclose(f);
}


/* The steps of --rates, or (--control) those stdin asks for; returns
 * how many ran. */
static int
e2e_run(e2e_t *e)
{
    int  k;

    if (!e->o->control) {
        for (k = 0; k < e->o->nrates && !e->stop; k++) {
            e2e_step(e, k, e->o->rates[k], e->o->warmup_s, e->o->measure_s,
                     k + 1 == e->o->nrates);
        }
        return k;
    }

    for (k = 0; k < CL_MAX_STEPS && !e->stop; k++) {
        while (e->next_rate == 0 && !e->eof && !e->stop) {
            ws_pool_poll(&e->pool, 200);
        }
        if (e->next_rate == 0) {
            break;
        }

        e2e_step(e, k, e->next_rate, e->next_warmup, e->next_measure, 0);
        e->next_rate = 0;

        e2e_write(e, k + 1);
        printf("done %d\n", k);
        fflush(stdout);
    }

    return k;
}


/* ---------------------------------------------------------------- mode */

static void
e2e_read_secret(e2e_t *e)
{
    FILE    *f;
    size_t   n;

    f = fopen(e->o->secret_file, "r");
    if (f == NULL) {
        cl_die("cannot read the token secret %s", e->o->secret_file);
    }

    n = fread(e->secret, 1, sizeof(e->secret), f);
    fclose(f);

    while (n > 0 && (e->secret[n - 1] == '\n' || e->secret[n - 1] == '\r')) {
        n--;
    }
    e->secret_len = n;
}


static double
e2e_cpu_s(const struct rusage *ru)
{
    return (double) ru->ru_utime.tv_sec + ru->ru_utime.tv_usec / 1e6
           + (double) ru->ru_stime.tv_sec + ru->ru_stime.tv_usec / 1e6;
}


int
cl_mode_clients(const cl_opts_t *o, int paced)
{
    int        k;
    e2e_t     *e;
    sigset_t   mask;
    uint64_t   t;
    struct rusage  ru0, ru1;

    e = calloc(1, sizeof(e2e_t));
    if (e == NULL) {
        cl_die("out of memory");
    }

    e->o = o;
    e->cur = -1;
    e->chat = strcmp(o->system, "chat") == 0;
    e->steps = calloc(CL_MAX_STEPS, sizeof(cl_step_t));
    if (e->steps == NULL) {
        cl_die("out of memory");
    }
    for (k = 0; k < CL_MAX_STEPS; k++) {
        hist_init(&e->steps[k].lat);
        hist_init(&e->steps[k].ack);
    }

    if (e->chat) {
        e2e_read_secret(e);
    }

    sigemptyset(&mask);
    sigaddset(&mask, SIGUSR1);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    e->sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);

    if (ws_pool_init(&e->pool, o->clients, o->host, o->port, o->src) != 0
        || e->sfd < 0 || ws_pool_add_extra(&e->pool, e->sfd) != 0
        || (paced && o->control && ws_pool_add_extra(&e->pool, 0) != 0))
    {
        cl_die("cannot set up %zu connections to %s:%d", o->clients, o->host,
               o->port);
    }

    e->pool.max_connecting = o->concurrency;
    e->pool.request = e2e_request;
    e->pool.on_text = e2e_on_text;
    e->pool.on_extra = e2e_on_extra;
    e->pool.ud = e;

    t = cl_now_ns();
    ws_pool_connect_all(&e->pool, t + (uint64_t) (o->connect_s * 1e9));
    t = cl_now_ns() - t;

    printf("ready proc=%d open=%zu failed=%zu closed=%zu connect_s=%.1f%s%s\n",
           o->proc, e->pool.open, e->pool.failed, e->pool.closed,
           (double) t / 1e9, e->pool.first_error[0] ? " first_error=" : "",
           e->pool.first_error);
    fflush(stdout);

    /* idle: hold until told to stop; paced: until told to go */
    t = cl_now_ns() + (uint64_t) (o->hold_s * 1e9);
    while (!e->stop && !e->go && cl_now_ns() < t) {
        ws_pool_poll(&e->pool, 200);
    }

    if (paced && e->go && !e->stop) {
        getrusage(RUSAGE_SELF, &ru0);
        t = cl_now_ns();
        k = e2e_run(e);
        t = cl_now_ns() - t;
        getrusage(RUSAGE_SELF, &ru1);

        e2e_write(e, k);

        cl_log("proc %d: sent %" PRIu64 " delivered %" PRIu64 " refused %"
               PRIu64 " timed out %" PRIu64 " other frames %" PRIu64
               " fragments %" PRIu64 " stale %" PRIu64
               " still open %zu closed %zu;"
               " own cpu %.0f%% of one core over %.0fs", o->proc,
               e->sent_total, e->recv_total, e->refused_total, e->timeouts,
               e->other, e->pool.fragmented, e->stale, e->pool.open,
               e->pool.closed,
               100.0 * (e2e_cpu_s(&ru1) - e2e_cpu_s(&ru0)) / ((double) t / 1e9),
               (double) t / 1e9);
    }

    ws_pool_close_all(&e->pool);
    free(e->steps);
    free(e);
    return 0;
}
