/*
 * main.c: chatload, the benchmark's load generator.  Flags and modes.
 *
 *   chatload idle   --system chat|nchan --port P --clients N [--first I]
 *                   [--src 127.0.0.2,...] [--secret FILE --uid-base U]
 *                   [--hold S]
 *       opens N WebSockets, prints "ready ...", holds them until SIGTERM
 *       (or S seconds)
 *   chatload e2e    (the idle flags) --rates 1000,5000 --procs K --proc J
 *                   --conv-base C --warmup S --measure S --drain S
 *                   --max-drain S --final-drain S --out FILE
 *       the same, then on SIGUSR1 runs the paced steps (e2e.c) and
 *       writes the results to FILE
 *   chatload e2e    (as above, without --rates) --control
 *       the same clients for steps told one at a time: each line on stdin
 *       is "<rate> [<warmup s> <measure s>]"; after its step FILE holds
 *       every step so far and "done <step>" is printed; stdin's end ends
 *       it (bench.sh's sessions: figures 1 and 6 and the ceiling search)
 *   chatload hop    --redis-port P --rates ... --out FILE
 *       XADD -> XREAD latency at the same rates (redisload.c)
 *   chatload commit --redis-port P --count N --pairs K --uid-base U
 *                   --conv-base C [--shards 4] [--hold S] [--rates R]
 *       N msg.send commands straight onto the bus, timed to the last reply
 *       (a burst, or paced at R/s with --rates)
 *   chatload http   --port P --paths FILE [--concurrency C] [--warmup S]
 *                   [--measure S] [--label L] [--header 'Name: value']...
 *                   [--rates 200,500,1000]
 *       keep-alive GETs of the paths in FILE (httpload.c): closed loop,
 *       or with --rates open loop at each fixed offered rate in turn
 *       (the catalog figures)
 *   chatload checkout --port P --payment-port Q --secret FILE
 *                   (--uid-base U | --uids FILE) --shoppers S
 *                   --books FIRST:COUNT --measure S [--label L]
 *                   [--rates R --slow-share F]
 *       shoppers putting a book in the cart, tokenizing a card and
 *       checking out (checkoutload.c): closed loop, or open loop at R/s
 *       (the checkout figures)
 *   chatload fsync  --out FILE [--count N]
 *       times fdatasync() of 8 KiB writes to FILE, one at a time
 *       (fsyncload.c): the disk's flush, the floor of a durable answer
 *   chatload merge  LABEL FILE...
 *       adds the result files of one run and prints one line per step
 *
 * Nothing here aims anywhere but the host given (127.0.0.1 by default);
 * every mode ends by itself.
 */

#define _GNU_SOURCE
#include <getopt.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "chatload.h"


uint64_t
cl_now_ns(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t) ts.tv_sec * 1000000000u + (uint64_t) ts.tv_nsec;
}


void
cl_die(const char *fmt, ...)
{
    va_list  ap;

    fputs("chatload: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(1);
}


void
cl_log(const char *fmt, ...)
{
    va_list  ap;

    fputs("chatload: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}


static void
usage(void)
{
    fputs("usage: chatload idle|e2e|hop|commit|http|checkout|fsync [flags]\n"
          "       chatload merge LABEL FILE...\n"
          "see the comment at the top of tests/bench/main.c\n", stderr);
    exit(2);
}


static int
parse_rates(const char *s, double *rates)
{
    int    n;
    char  *end;

    for (n = 0; *s && n < CL_MAX_STEPS; n++) {
        rates[n] = strtod(s, &end);
        if (end == s || rates[n] <= 0) {
            return -1;
        }
        s = (*end == ',') ? end + 1 : end;
    }

    return *s ? -1 : n;
}


static double
num(const char *name, const char *v, double min)
{
    char    *end;
    double   d;

    d = strtod(v, &end);
    if (end == v || *end || d < min) {
        cl_die("--%s wants a number >= %g, not \"%s\"", name, min, v);
    }

    return d;
}


int
main(int argc, char **argv)
{
    int            c, idx;
    long long      b1, b2;
    const char    *mode, *paths, *label;
    cl_opts_t      o;
    struct rlimit  rl;

    static const struct option  opts[] = {
        { "system", 1, 0, 's' }, { "host", 1, 0, 'H' },
        { "port", 1, 0, 'p' }, { "secret", 1, 0, 'S' },
        { "src", 1, 0, 'a' }, { "uid-base", 1, 0, 'u' },
        { "conv-base", 1, 0, 'v' }, { "first", 1, 0, 'f' },
        { "clients", 1, 0, 'n' }, { "concurrency", 1, 0, 'c' },
        { "rates", 1, 0, 'r' }, { "procs", 1, 0, 'K' },
        { "proc", 1, 0, 'J' }, { "warmup", 1, 0, 'w' },
        { "measure", 1, 0, 'm' }, { "drain", 1, 0, 'd' },
        { "final-drain", 1, 0, 'D' }, { "max-drain", 1, 0, 'M' }, { "connect-timeout", 1, 0, 'T' },
        { "hold", 1, 0, 'h' }, { "text-len", 1, 0, 'L' },
        { "out", 1, 0, 'o' }, { "redis-port", 1, 0, 'R' },
        { "count", 1, 0, 'N' }, { "pairs", 1, 0, 'P' },
        { "shards", 1, 0, 'X' }, { "paths", 1, 0, 'F' },
        { "label", 1, 0, 'l' }, { "control", 0, 0, 'C' },
        { "header", 1, 0, 'E' }, { "payment-port", 1, 0, 'Q' },
        { "books", 1, 0, 'B' }, { "shoppers", 1, 0, 'Y' },
        { "slow-share", 1, 0, 'Z' }, { "uids", 1, 0, 'U' }, { 0, 0, 0, 0 }
    };

    if (argc < 2) {
        usage();
    }

    mode = argv[1];

    if (strcmp(mode, "merge") == 0) {
        if (argc < 4) {
            usage();
        }
        return cl_mode_merge(argv[2], argc - 3, argv + 3);
    }

    memset(&o, 0, sizeof(o));
    o.system = "chat";
    o.host = "127.0.0.1";
    o.concurrency = 200;
    o.procs = 1;
    o.warmup_s = 2;
    o.measure_s = 10;
    o.drain_s = 3;
    o.max_drain_s = 15;
    o.final_drain_s = 20;
    o.connect_s = 180;
    o.hold_s = 600;
    o.text_len = 64;
    o.shards = 4;

    paths = NULL;
    label = NULL;

    optind = 2;
    while ((c = getopt_long(argc, argv, "", opts, &idx)) != -1) {
        switch (c) {
        case 's': o.system = optarg; break;
        case 'H': o.host = optarg; break;
        case 'p': o.port = (int) num("port", optarg, 1); break;
        case 'S': o.secret_file = optarg; break;
        case 'a': o.src = optarg; break;
        case 'u': o.uid_base = (int64_t) num("uid-base", optarg, 0); break;
        case 'v': o.conv_base = (int64_t) num("conv-base", optarg, 0); break;
        case 'f': o.first = (size_t) num("first", optarg, 0); break;
        case 'n': o.clients = (size_t) num("clients", optarg, 0); break;
        case 'c': o.concurrency = (size_t) num("concurrency", optarg, 1);
                  break;
        case 'r':
            o.nrates = parse_rates(optarg, o.rates);
            if (o.nrates <= 0) {
                cl_die("--rates wants up to %d positive numbers, "
                       "comma-separated", CL_MAX_STEPS);
            }
            break;
        case 'K': o.procs = (int) num("procs", optarg, 1); break;
        case 'J': o.proc = (int) num("proc", optarg, 0); break;
        case 'w': o.warmup_s = num("warmup", optarg, 0); break;
        case 'm': o.measure_s = num("measure", optarg, 0.1); break;
        case 'd': o.drain_s = num("drain", optarg, 0); break;
        case 'D': o.final_drain_s = num("final-drain", optarg, 0); break;
        case 'M': o.max_drain_s = num("max-drain", optarg, 0); break;
        case 'T': o.connect_s = num("connect-timeout", optarg, 1); break;
        case 'h': o.hold_s = num("hold", optarg, 0); break;
        case 'L': o.text_len = (int) num("text-len", optarg, 40); break;
        case 'o': o.out = optarg; break;
        case 'R': o.redis_port = (int) num("redis-port", optarg, 1); break;
        case 'N': o.count = (size_t) num("count", optarg, 1); break;
        case 'P': o.pairs = (size_t) num("pairs", optarg, 1); break;
        case 'X': o.shards = (int) num("shards", optarg, 1); break;
        case 'F': paths = optarg; break;
        case 'l': label = optarg; break;
        case 'C': o.control = 1; break;
        case 'Q': o.payment_port = (int) num("payment-port", optarg, 1);
                  break;
        case 'B':
            if (sscanf(optarg, "%lld:%lld", &b1, &b2) != 2 || b1 < 1
                || b2 < 1)
            {
                cl_die("--books wants FIRST:COUNT, not \"%s\"", optarg);
            }
            o.books_first = (int64_t) b1;
            o.books_count = (int64_t) b2;
            break;
        case 'Y': o.concurrency = (size_t) num("shoppers", optarg, 1); break;
        case 'Z': o.slow_share = num("slow-share", optarg, 0); break;
        case 'U': o.uids_file = optarg; break;
        case 'E':
            if (o.nheaders == CL_MAX_HEADERS || strlen(optarg) > 1024) {
                cl_die("--header: at most %d, of 1024 bytes each",
                       CL_MAX_HEADERS);
            }
            o.headers[o.nheaders++] = optarg;
            break;
        default: usage();
        }
    }

    if (o.text_len > 400) {
        cl_die("--text-len is at most 400");
    }

    /* every connection is a descriptor: take all the hard limit allows */
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        (void) setrlimit(RLIMIT_NOFILE, &rl);
    }

    if (strcmp(mode, "idle") == 0 || strcmp(mode, "e2e") == 0) {
        if (o.port == 0 || o.clients == 0 || (o.first | o.clients) & 1) {
            cl_die("%s needs --port and an even --clients and --first",
                   mode);
        }
        if (strcmp(o.system, "chat") != 0 && strcmp(o.system, "nchan") != 0) {
            cl_die("--system is chat or nchan");
        }
        if (strcmp(o.system, "chat") == 0 && o.secret_file == NULL) {
            cl_die("--system chat needs --secret (the token secret file)");
        }
        if (o.clients + 50 > rl.rlim_max) {
            cl_die("%zu connections need more descriptors than the %llu "
                   "allowed: use more processes", o.clients,
                   (unsigned long long) rl.rlim_max);
        }
        if (strcmp(mode, "e2e") == 0
            && ((o.nrates == 0) == !o.control || o.out == NULL))
        {
            cl_die("e2e needs --out and either --rates or --control");
        }
        return cl_mode_clients(&o, strcmp(mode, "e2e") == 0);
    }

    if (strcmp(mode, "http") == 0) {
        if (o.port == 0 || paths == NULL) {
            cl_die("http needs --port and --paths");
        }
        return cl_mode_http(&o, paths, label);
    }

    if (strcmp(mode, "checkout") == 0) {
        if (o.port == 0 || o.payment_port == 0 || o.secret_file == NULL
            || o.books_count == 0 || (o.uid_base == 0 && o.uids_file == NULL)
            || o.nrates > 1)
        {
            cl_die("checkout needs --port, --payment-port, --secret, --books "
                   "and --uid-base or --uids (and at most one rate)");
        }
        if (o.concurrency * 2 + 50 > rl.rlim_max) {
            cl_die("%zu shoppers need more descriptors than allowed",
                   o.concurrency);
        }
        return cl_mode_checkout(&o, label);
    }

    if (strcmp(mode, "fsync") == 0) {
        if (o.out == NULL) {
            cl_die("fsync needs --out (a file on the disk to measure)");
        }
        if (o.count == 0) {
            o.count = 1000;
        }
        return cl_mode_fsync(&o);
    }

    if (strcmp(mode, "hop") == 0) {
        if (o.redis_port == 0 || o.nrates == 0 || o.out == NULL) {
            cl_die("hop needs --redis-port, --rates and --out");
        }
        return cl_mode_hop(&o);
    }

    if (strcmp(mode, "commit") == 0) {
        if (o.redis_port == 0) {
            cl_die("commit needs --redis-port");
        }
        if (o.hold_s == 600) {
            o.hold_s = 30;      /* give up after 30 s without a reply */
        }
        return cl_mode_commit(&o);
    }

    usage();
    return 2;
}
