/*
 * hist.c: latency histograms, the per-step results file, and the merge of
 * several processes' files into the printed figure lines.
 *
 * A histogram is HDR-style log-linear: values (microseconds) below 128
 * have a bucket each; above, every power of two is cut into 64 buckets,
 * so a percentile read from it is at most 1/64 above the true value.
 * min, max and sum are exact.  Percentiles are reported as the upper edge
 * of the bucket they fall in (never optimistic), clamped to the exact max.
 *
 * Processes write their steps as text lines; "chatload merge" adds the
 * files of one run together and prints one line per step.  Merging
 * histograms is exact, which is why the processes write buckets rather
 * than their own percentiles.
 */

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "chatload.h"


void
hist_init(hist_t *h)
{
    memset(h, 0, sizeof(*h));
    h->min = UINT64_MAX;
}


static size_t
hist_index(uint64_t v)
{
    int     msb, shift;
    size_t  i;

    if (v < 2 * HIST_SUB) {
        return (size_t) v;
    }

    msb = 63 - __builtin_clzll(v);
    shift = msb - HIST_SUB_BITS;
    i = (size_t) (shift + 1) * HIST_SUB + (size_t) (v >> shift) - HIST_SUB;

    return i < HIST_BUCKETS ? i : HIST_BUCKETS - 1;
}


/* the largest value that falls into bucket i */
static uint64_t
hist_upper(size_t i)
{
    int       shift;
    uint64_t  sub;

    if (i < 2 * HIST_SUB) {
        return i;
    }

    shift = (int) (i / HIST_SUB) - 1;
    sub = i % HIST_SUB + HIST_SUB;

    return ((sub + 1) << shift) - 1;
}


void
hist_add(hist_t *h, uint64_t us)
{
    h->b[hist_index(us)]++;
    h->count++;
    h->sum += us;

    if (us < h->min) {
        h->min = us;
    }

    if (us > h->max) {
        h->max = us;
    }
}


void
hist_merge(hist_t *into, const hist_t *from)
{
    size_t  i;

    if (from->count == 0) {
        return;
    }

    for (i = 0; i < HIST_BUCKETS; i++) {
        into->b[i] += from->b[i];
    }

    into->count += from->count;
    into->sum += from->sum;

    if (from->min < into->min) {
        into->min = from->min;
    }

    if (from->max > into->max) {
        into->max = from->max;
    }
}


uint64_t
hist_pct(const hist_t *h, double pct)
{
    size_t    i;
    uint64_t  want, seen, v;

    if (h->count == 0) {
        return 0;
    }

    want = (uint64_t) ((double) h->count * pct / 100.0 + 0.999999);
    if (want == 0) {
        want = 1;
    }

    seen = 0;

    for (i = 0; i < HIST_BUCKETS; i++) {
        seen += h->b[i];
        if (seen >= want) {
            v = hist_upper(i);
            return v > h->max ? h->max : v;
        }
    }

    return h->max;
}


static const char *
hist_ms(uint64_t us, char *buf, size_t size)
{
    if (us >= 100000) {
        snprintf(buf, size, "%.0fms", (double) us / 1000.0);
    } else {
        snprintf(buf, size, "%.2fms", (double) us / 1000.0);
    }

    return buf;
}


const char *
hist_summary(const hist_t *h, char *buf, size_t size)
{
    char  a[32], b[32], c[32];

    if (h->count == 0) {
        snprintf(buf, size, "p50=- p99=- max=-");
        return buf;
    }

    snprintf(buf, size, "p50=%s p99=%s max=%s",
             hist_ms(hist_pct(h, 50), a, sizeof(a)),
             hist_ms(hist_pct(h, 99), b, sizeof(b)),
             hist_ms(h->max, c, sizeof(c)));

    return buf;
}


/* "hist <name> <step> <count> <min> <max> <sum> i:n i:n ..." */
void
hist_write(FILE *f, const char *name, int step, const hist_t *h)
{
    size_t  i;

    fprintf(f, "hist %s %d %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64,
            name, step, h->count, h->count ? h->min : 0, h->max, h->sum);

    for (i = 0; i < HIST_BUCKETS; i++) {
        if (h->b[i]) {
            fprintf(f, " %zu:%" PRIu64, i, h->b[i]);
        }
    }

    fputc('\n', f);
}


int
hist_read_line(const char *line, char *name, size_t name_size, int *step,
    hist_t *h)
{
    int       used;
    char      word[32];
    size_t    i;
    uint64_t  n;
    const char  *p;

    hist_init(h);

    if (sscanf(line, "hist %31s %d %" SCNu64 " %" SCNu64 " %" SCNu64
               " %" SCNu64 "%n", word, step, &h->count, &h->min, &h->max,
               &h->sum, &used) != 6)
    {
        return -1;
    }

    snprintf(name, name_size, "%s", word);
    if (h->count == 0) {
        h->min = UINT64_MAX;
    }

    for (p = line + used; sscanf(p, " %zu:%" SCNu64 "%n", &i, &n, &used) == 2;
         p += used)
    {
        if (i < HIST_BUCKETS) {
            h->b[i] += n;
        }
    }

    return 0;
}


/* ------------------------------------------------------------ step files */

void
cl_steps_write(FILE *f, const cl_step_t *steps, int n)
{
    int               i;
    const cl_step_t  *s;

    for (i = 0; i < n; i++) {
        s = &steps[i];
        fprintf(f, "step %d %.1f %.3f %" PRIu64 " %" PRIu64 " %" PRIu64
                " %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64
                "\n", i, s->rate, s->measure_s, s->sent, s->sent_measured,
                s->send_failed, s->acks, s->errors, s->delivered,
                s->window_recv, s->echoes);
        hist_write(f, "lat", i, &s->lat);
        hist_write(f, "ack", i, &s->ack);
    }
}


int
cl_steps_read(FILE *f, cl_step_t *steps, int max)
{
    int        i, n;
    char      *line, name[32];
    size_t     cap;
    hist_t    *h;
    double     rate, measure;
    uint64_t   v[8];
    cl_step_t *s;

    line = NULL;
    cap = 0;
    n = 0;

    h = malloc(sizeof(hist_t));
    if (h == NULL) {
        return -1;
    }

    while (getline(&line, &cap, f) > 0) {
        if (strncmp(line, "step ", 5) == 0) {
            if (sscanf(line, "step %d %lf %lf %" SCNu64 " %" SCNu64 " %"
                       SCNu64 " %" SCNu64 " %" SCNu64 " %" SCNu64 " %" SCNu64
                       " %" SCNu64, &i, &rate, &measure, &v[0], &v[1], &v[2],
                       &v[3], &v[4], &v[5], &v[6], &v[7]) != 11
                || i < 0 || i >= max)
            {
                continue;
            }
            s = &steps[i];
            s->rate = rate;
            s->measure_s = measure;
            s->sent += v[0];
            s->sent_measured += v[1];
            s->send_failed += v[2];
            s->acks += v[3];
            s->errors += v[4];
            s->delivered += v[5];
            s->window_recv += v[6];
            s->echoes += v[7];
            if (i + 1 > n) {
                n = i + 1;
            }

        } else if (hist_read_line(line, name, sizeof(name), &i, h) == 0
                   && i >= 0 && i < max)
        {
            hist_merge(strcmp(name, "ack") == 0 ? &steps[i].ack
                                                : &steps[i].lat, h);
        }
    }

    free(h);
    free(line);
    return n;
}


/* chatload merge <label> <file>...: one line per step */
int
cl_mode_merge(const char *label, int argc, char **argv)
{
    int         i, n, nfiles, k;
    char        lat[96];
    FILE       *f;
    cl_step_t  *steps, *s;

    steps = calloc(CL_MAX_STEPS, sizeof(cl_step_t));
    if (steps == NULL) {
        cl_die("out of memory");
    }

    for (i = 0; i < CL_MAX_STEPS; i++) {
        hist_init(&steps[i].lat);
        hist_init(&steps[i].ack);
    }

    n = 0;
    nfiles = 0;

    for (i = 0; i < argc; i++) {
        f = fopen(argv[i], "r");
        if (f == NULL) {
            cl_log("merge: cannot open %s", argv[i]);
            continue;
        }
        k = cl_steps_read(f, steps, CL_MAX_STEPS);
        fclose(f);
        nfiles++;
        if (k > n) {
            n = k;
        }
    }

    if (nfiles == 0 || n == 0) {
        printf("%s: no results\n", label);
        free(steps);
        return 1;
    }

    for (i = 0; i < n; i++) {
        s = &steps[i];
        printf("%s offered=%.0f/s achieved=%.0f/s delivered=%" PRIu64 "/%"
               PRIu64 " %s", label, s->rate,
               s->measure_s > 0 ? (double) s->window_recv / s->measure_s : 0,
               s->delivered, s->sent_measured,
               hist_summary(&s->lat, lat, sizeof(lat)));

        if (s->ack.count > 0) {
            printf(" ack_p50=%.2fms ack_p99=%.2fms",
                   (double) hist_pct(&s->ack, 50) / 1000.0,
                   (double) hist_pct(&s->ack, 99) / 1000.0);
        }

        if (s->errors || s->send_failed) {
            printf(" errors=%" PRIu64 " send_failed=%" PRIu64, s->errors,
                   s->send_failed);
        }

        putchar('\n');
    }

    free(steps);
    return 0;
}
