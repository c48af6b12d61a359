/*
 * fsyncload.c: chatload fsync, the disk's flush latency: the floor under
 * every durable acknowledgement.
 *
 *   chatload fsync --out FILE [--count N]
 *
 * Writes 8 KiB (a WAL page) at one of 64 offsets of FILE and times the
 * fdatasync() that follows, N times (default 1,000), one at a time, then
 * removes FILE.  A chat message is acknowledged after its transaction's
 * commit, and a commit waits for PostgreSQL's WAL flush, which is this
 * call on the same disk: a message that arrives while a commit is being
 * flushed waits for that flush and then its own, so two of these are
 * what the durable path cannot go under.  One line:
 *
 *   fsync <FILE's folder>: n=N p50=..ms p99=..ms max=..ms
 */

#define _GNU_SOURCE
#include <fcntl.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "chatload.h"


int
cl_mode_fsync(const cl_opts_t *o)
{
    int       fd;
    char      page[8192], sum[160], dir[4096];
    size_t    i;
    uint64_t  t0;
    hist_t    lat;

    fd = open(o->out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0) {
        cl_die("cannot create %s", o->out);
    }

    memset(page, 'x', sizeof(page));
    hist_init(&lat);

    for (i = 0; i < o->count; i++) {
        if (pwrite(fd, page, sizeof(page), (off_t) (i % 64) * 8192)
            != (ssize_t) sizeof(page))
        {
            cl_die("cannot write %s", o->out);
        }
        t0 = cl_now_ns();
        if (fdatasync(fd) != 0) {
            cl_die("fdatasync of %s failed", o->out);
        }
        hist_add(&lat, (cl_now_ns() - t0) / 1000);
    }

    close(fd);
    unlink(o->out);

    snprintf(dir, sizeof(dir), "%s", o->out);
    printf("fsync %s: n=%zu %s\n", dirname(dir), o->count,
           hist_summary(&lat, sum, sizeof(sum)));

    return 0;
}
