/*
 * loadgen.c -- the benchmark load generator: command line, the four modes
 * (idle, broadcast, targeted, api), and the result line.
 *
 * Owns:       the options and the phases of a run; the JSON result.
 * Called by:  bench/run.py (make bench), or by hand; /work/spec/bench.md is
 *             the contract for its command line and output.
 * Invariants: the main thread is the receiver (lg_recv.c, one epoll loop
 *             for every WebSocket connection); the publisher threads
 *             (lg_run.c) each own one lg_pub and block on its answers. The
 *             connections are all up before the first publish. Every phase
 *             is bounded by --timeout, counted from start-up.
 * Errors:     setup failures print one "loadgen: ..." line on stderr and
 *             exit 1; everything that goes wrong during the run is counted
 *             and reported in the JSON, and the exit status is 0 -- unless
 *             not one connection was upgraded, or not one publish answered
 *             2xx: that is a server that is not there, i.e. a setup failure
 *             (the JSON is still printed in the second case).
 * Spec notes: "publishes" counts 2xx answers; the others are publish_errors.
 *             "connect_errors" counts every connection that never got its
 *             101 (TCP and handshake failures); handshake_errors is the
 *             handshake part of it. deliveries_per_s is deliveries over
 *             (last delivery - first publish); publishes_per_s is 2xx
 *             answers over --duration in targeted mode, else over (last
 *             answer - first publish). lat_us is the delivery latency, or
 *             in api mode the publish round trip (also in pub_lat_us).
 *             The fd limit keeps 64 descriptors spare beside N connections
 *             and one per publisher.
 *             Two options for runs split over several processes (bench/
 *             cluster.py), which change nothing when absent: --id-base B
 *             names connection i's user u{B+i} (so shards do not share
 *             users); --shard makes the process print "READY conns=N ..."
 *             once connected and wait for a line on stdin ("GO") before
 *             publishing, counts --timeout again from GO, and after its
 *             result line keeps its connections open until stdin is closed;
 *             in idle mode it holds until stdin is closed instead of --hold.
 *             Its result line gains t_go_ns, t_first_pub_ns,
 *             t_last_answer_ns, t_first_delivery_ns, t_last_delivery_ns
 *             (CLOCK_MONOTONIC, comparable between processes) and the whole
 *             histograms lat_hist and pub_lat_hist as [[us, count], ...].
 *             --script FILE (with --pub fcgi:SOCKET) adds SCRIPT_FILENAME
 *             to each FastCGI request: the publishes go to a php-fpm pool
 *             whose script publishes them on (bench/php/publish.php).
 *             broadcast --publishers 0 only receives: it expects --messages
 *             seqs (0..M-1) that another process publishes, and its
 *             deliveries_per_s is over (last - first delivery).
 * Tests:      runs against Herald; bench/run.py reads the JSON.
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/resource.h>
#include <unistd.h>

#include "lg_hist.h"
#include "lg_pub.h"
#include "lg_recv.h"
#include "lg_run.h"
#include "lg_track.h"
#include "lg_util.h"

#define NS 1000000000.0
#define FD_RESERVE 64        /* descriptors kept free besides the connections */
#define PUB_TIMEOUT_MAX_S 30 /* a publish answer may take this long at most */
#define MAX_PUBLISHERS 1024
#define MAX_SIZE (16u << 20)

static const char *const mode_names[] = {"idle", "broadcast", "targeted", "api"};

/* Print one setup error line and exit 1. */
static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
    va_list ap;

    fputs("loadgen: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(1);
}

/* Print the synopsis on stderr and exit 1. */
static void usage(void)
{
    fputs("usage: loadgen idle|broadcast|targeted|api --sub URL_TEMPLATE [--pub PUB]\n"
          "       [--conns N] [--secret S] [--src-ips K] [--messages M] [--size S]\n"
          "       [--publishers P] [--rate R] [--duration SECS] [--keep] [--hold SECS]\n"
          "       [--timeout SECS] [--id-base B] [--shard] [--script PHP_FILE]\n"
          "       (see /work/spec/bench.md)\n",
          stderr);
    exit(1);
}

/* An integer option in [min, max]. */
static uint64_t arg_u64(const char *name, const char *s, uint64_t min, uint64_t max)
{
    char *end;
    unsigned long long v;

    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || s[0] == '-' || v < min || v > max)
        die("--%s %s: expected an integer from %llu to %llu", name, s, (unsigned long long)min,
            (unsigned long long)max);
    return v;
}

/* A number option in [min, max]. */
static double arg_double(const char *name, const char *s, double min, double max)
{
    char *end;
    double v;

    errno = 0;
    v = strtod(s, &end);
    if (errno != 0 || end == s || *end != '\0' || !(v >= min && v <= max))
        die("--%s %s: expected a number from %g to %g", name, s, min, max);
    return v;
}

/* Check a URL template expands with the values its mode provides. */
static void check_template(const char *what, const char *tmpl, int allow_conn_vars)
{
    struct lg_vars v = {.id = allow_conn_vars ? 0 : -1, .channel = "all"};
    char out[2048];
    const char *bad = NULL;

    if (allow_conn_vars) {
        v.user = "u0";
        v.token = "x";
    }
    if (lg_util_expand(out, sizeof out, tmpl, &v, &bad) < 0) {
        if (bad != NULL)
            die("%s %s: unknown or unavailable placeholder at \"%.20s\"", what, tmpl, bad);
        die("%s %s: too long", what, tmpl);
    }
}

/* Parse argv into *o; exits on any error. */
static void parse_args(int argc, char **argv, struct lg_opts *o)
{
    static const struct option longopts[] = {
        {"sub", required_argument, NULL, 's'},
        {"pub", required_argument, NULL, 'p'},
        {"conns", required_argument, NULL, 'n'},
        {"secret", required_argument, NULL, 'k'},
        {"src-ips", required_argument, NULL, 'i'},
        {"messages", required_argument, NULL, 'm'},
        {"size", required_argument, NULL, 'z'},
        {"publishers", required_argument, NULL, 'P'},
        {"rate", required_argument, NULL, 'r'},
        {"duration", required_argument, NULL, 'd'},
        {"keep", no_argument, NULL, 'K'},
        {"hold", required_argument, NULL, 'h'},
        {"timeout", required_argument, NULL, 't'},
        {"id-base", required_argument, NULL, 'b'},
        {"shard", no_argument, NULL, 'S'},
        {"script", required_argument, NULL, 'F'},
        {NULL, 0, NULL, 0},
    };
    int c, mode = -1;

    *o = (struct lg_opts){.conns = 1000,
                          .messages = 100,
                          .size = 100,
                          .publishers = 1,
                          .duration = 10,
                          .hold = 10,
                          .timeout = 120};
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case 's': o->sub = optarg; break;
        case 'p': o->pub = optarg; break;
        case 'k': o->secret = optarg; break;
        case 'n': o->conns = arg_u64("conns", optarg, 1, 10000000); break;
        case 'i': o->src_ips = (int)arg_u64("src-ips", optarg, 1, 254); break;
        case 'm': o->messages = arg_u64("messages", optarg, 1, LG_TRACK_MAX_SEQ); break;
        case 'z': o->size = arg_u64("size", optarg, 0, MAX_SIZE); break;
        case 'P': o->publishers = (int)arg_u64("publishers", optarg, 0, MAX_PUBLISHERS); break;
        case 'r': o->rate = arg_double("rate", optarg, 0, 1e9); break;
        case 'd': o->duration = arg_double("duration", optarg, 0.001, 86400); break;
        case 'K': o->keep = 1; break;
        case 'h': o->hold = arg_double("hold", optarg, 0, 86400 * 7); break;
        case 't': o->timeout = arg_double("timeout", optarg, 0.001, 86400 * 7); break;
        case 'b': o->id_base = arg_u64("id-base", optarg, 0, 1000000000); break;
        case 'S': o->shard = 1; break;
        case 'F': o->script = optarg; break;
        default: usage();
        }
    }
    if (optind != argc - 1)
        usage();
    for (int m = 0; m < 4; m++)
        if (strcmp(argv[optind], mode_names[m]) == 0)
            mode = m;
    if (mode < 0)
        die("unknown mode %s: expected idle, broadcast, targeted or api", argv[optind]);
    o->mode = (enum lg_mode)mode;
    if (o->mode != LG_MODE_API && o->sub == NULL)
        die("%s needs --sub URL_TEMPLATE", mode_names[mode]);
    if (o->publishers == 0 && o->mode != LG_MODE_BROADCAST)
        die("--publishers 0 (receive only) is for broadcast");
    if (o->shard && o->mode == LG_MODE_API)
        die("--shard is for idle, broadcast and targeted");
    if (o->mode != LG_MODE_IDLE && o->publishers > 0 && o->pub == NULL)
        die("%s needs --pub PUB", mode_names[mode]);
    if (o->sub != NULL && strstr(o->sub, "{token}") != NULL && o->secret == NULL)
        die("--sub %s: {token} needs --secret", o->sub);
    if (o->sub != NULL)
        check_template("--sub", o->sub, 1);
    if (o->pub != NULL)
        check_template("--pub", o->pub, 0);
    if (o->script != NULL && (o->pub == NULL || strncmp(o->pub, "fcgi:", 5) != 0))
        die("--script is for --pub fcgi:SOCKET (a php-fpm pool)");
    if (o->script != NULL && (o->script[0] != '/' || strlen(o->script) >= LG_PUB_MAX_SCRIPT))
        die("--script %s: expected an absolute path under %d bytes", o->script, LG_PUB_MAX_SCRIPT);
    if (o->src_ips == 0) {
        o->src_ips = (int)((o->conns + 19999) / 20000 + 1);
        o->src_ips = o->src_ips < 4 ? 4 : o->src_ips > 254 ? 254 : o->src_ips;
    }
}

/* Raise RLIMIT_NOFILE to its hard limit; refuse N connections that cannot fit. */
static void raise_fd_limit(const struct lg_opts *o)
{
    struct rlimit rl;
    uint64_t need = (o->mode == LG_MODE_API ? 0 : o->conns) + (uint64_t)o->publishers + FD_RESERVE;

    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        die("getrlimit(RLIMIT_NOFILE): %s", strerror(errno));
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
        die("setrlimit(RLIMIT_NOFILE, %llu): %s", (unsigned long long)rl.rlim_max, strerror(errno));
    if (rl.rlim_cur != RLIM_INFINITY && need > rl.rlim_cur)
        die("--conns %llu needs %llu open files with %d publishers; the limit is %llu "
            "(at most %llu connections)",
            (unsigned long long)o->conns, (unsigned long long)need, o->publishers,
            (unsigned long long)rl.rlim_cur,
            (unsigned long long)(rl.rlim_cur - FD_RESERVE - (uint64_t)o->publishers));
}

/*
 * done() for broadcast: publishers finished and every open connection has
 * every 2xx seq (receive only: every one of the --messages seqs).
 */
static int broadcast_done(void *arg, const struct lg_recv_stats *st)
{
    struct lg_run *run = arg;
    uint64_t want = run->o->publishers > 0 ? atomic_load(&run->ok) : run->o->messages;

    return atomic_load(&run->done) == run->o->publishers && st->live_received >= st->live * want;
}

/* done() while the driver is awaited (--shard): stdin has a line, or is closed. */
static int stdin_ready(void *arg, const struct lg_recv_stats *st)
{
    struct pollfd p = {.fd = STDIN_FILENO, .events = POLLIN};

    return poll(&p, 1, 0) > 0;
}

static uint64_t t_go; /* --shard: ns when GO was read */

/*
 * --shard: say READY, serve the connections until a line arrives on stdin
 * (GO), and return the new deadline, --timeout from now. Exits 1 when stdin
 * is closed first or the old deadline passes.
 */
static uint64_t shard_go(const struct lg_opts *o, struct lg_recv *r, uint64_t deadline)
{
    const struct lg_recv_stats *st = lg_recv_stats(r);
    char line[64], *cause = NULL;

    printf("READY conns=%llu seconds=%.3f\n", (unsigned long long)st->connected,
           (double)(st->t_connected - st->t_connect_start) / NS);
    if (fflush(stdout) != 0)
        die("stdout: %s", strerror(errno));
    if (lg_recv_run(r, deadline, stdin_ready, NULL, &cause) != 0)
        die("%s", cause);
    if (!stdin_ready(NULL, st))
        die("--shard: no GO on stdin within --timeout");
    if (fgets(line, sizeof line, stdin) == NULL)
        die("--shard: stdin closed before GO");
    t_go = lg_util_now_ns();
    return t_go + (uint64_t)(o->timeout * NS);
}

/* --shard: after the result, keep the connections open until stdin is closed. */
static void shard_hold(const struct lg_opts *o, struct lg_recv *r)
{
    uint64_t deadline = lg_util_now_ns() + (uint64_t)(o->timeout * NS);
    char buf[256], *cause = NULL;

    for (;;) {
        if (lg_recv_run(r, deadline, stdin_ready, NULL, &cause) != 0)
            die("%s", cause);
        if (!stdin_ready(NULL, NULL) || read(STDIN_FILENO, buf, sizeof buf) <= 0)
            return;
    }
}

/* --shard: ,"key":[[us,count],...] for the non-empty buckets of h. */
static void print_hist(const char *key, const struct lg_hist *h)
{
    int first = 1;

    printf(",\"%s\":[", key);
    for (size_t i = 0; i < LG_HIST_BUCKETS; i++) {
        if (h->bucket[i] == 0)
            continue;
        printf("%s[%llu,%llu]", first ? "" : ",", (unsigned long long)lg_hist_bucket_value(i),
               (unsigned long long)h->bucket[i]);
        first = 0;
    }
    putchar(']');
}

/* done() for targeted: publishers finished and every 2xx seq arrived. */
static int targeted_done(void *arg, const struct lg_recv_stats *st)
{
    struct lg_run *run = arg;

    return atomic_load(&run->done) == run->o->publishers && st->deliveries >= atomic_load(&run->ok);
}

/* done() for idle: never; the hold ends at the deadline. */
static int never_done(void *arg, const struct lg_recv_stats *st)
{
    return 0;
}

/* Seconds between two ns stamps, 0 when they are not in order. */
static double secs(uint64_t from, uint64_t to)
{
    return to > from ? (double)(to - from) / NS : 0;
}

/* Print "key":{"p50":..,"p99":..,"p999":..,"max":..}. */
static void print_lat(const char *key, const struct lg_hist *h)
{
    printf("\"%s\":{\"p50\":%llu,\"p99\":%llu,\"p999\":%llu,\"max\":%llu}", key,
           (unsigned long long)lg_hist_quantile(h, 0.5),
           (unsigned long long)lg_hist_quantile(h, 0.99),
           (unsigned long long)lg_hist_quantile(h, 0.999), (unsigned long long)h->max_us);
}

/* The connection counters every mode with subscribers reports. */
static void print_conn_counters(const struct lg_recv_stats *st)
{
    printf("\"connected\":%llu,\"connect_errors\":%llu,\"handshake_errors\":%llu,"
           "\"closes\":%llu,\"disconnects\":%llu,\"protocol_errors\":%llu,\"pings\":%llu",
           (unsigned long long)st->connected,
           (unsigned long long)(st->connect_errors + st->handshake_errors),
           (unsigned long long)st->handshake_errors, (unsigned long long)st->closes,
           (unsigned long long)st->disconnects, (unsigned long long)st->protocol_errors,
           (unsigned long long)st->pings);
}

/* The result of a run with publishers; st is NULL in api mode. */
static void print_result(const struct lg_run *run, const struct lg_recv_stats *st, uint64_t missing,
                         const struct lg_hist *rtt, int timed_out)
{
    const struct lg_opts *o = run->o;
    uint64_t ok = atomic_load(&run->ok), first = atomic_load(&run->t_first_pub);
    uint64_t last_ans = atomic_load(&run->t_last_answer);
    uint64_t dl = st ? st->deliveries : 0, last_del = st ? st->t_last_delivery : 0;
    double pub_secs = o->mode == LG_MODE_TARGETED ? o->duration : secs(first, last_ans);
    /* Receive only (broadcast --publishers 0): from the first delivery. */
    uint64_t from = o->publishers > 0 ? first : (st ? st->t_first_delivery : 0);
    double del_secs = secs(from, last_del);
    double seconds = st ? (del_secs > 0 ? del_secs : secs(from, lg_util_now_ns())) : pub_secs;

    printf("{\"mode\":\"%s\",\"conns\":%llu,\"messages\":%llu,\"size\":%llu,\"publishers\":%d,"
           "\"rate\":%g,\"keep\":%s,",
           mode_names[o->mode], (unsigned long long)(st ? o->conns : 0),
           (unsigned long long)(o->mode == LG_MODE_TARGETED ? ok + atomic_load(&run->errors)
                                                            : o->messages),
           (unsigned long long)o->size, o->publishers, o->rate, o->keep ? "true" : "false");
    if (o->mode == LG_MODE_TARGETED)
        printf("\"duration\":%g,", o->duration);
    printf("\"publishes\":%llu,\"publish_errors\":%llu,\"deliveries\":%llu,\"missing\":%llu,"
           "\"duplicates\":%llu,\"misrouted\":%llu,\"seconds\":%.6f,\"deliveries_per_s\":%.1f,"
           "\"publishes_per_s\":%.1f,",
           (unsigned long long)ok, (unsigned long long)atomic_load(&run->errors),
           (unsigned long long)dl, (unsigned long long)missing,
           (unsigned long long)(st ? st->duplicates : 0),
           (unsigned long long)(st ? st->misrouted : 0), seconds,
           del_secs > 0 ? (double)dl / del_secs : 0, pub_secs > 0 ? (double)ok / pub_secs : 0);
    print_lat("lat_us", st ? &st->lat : rtt);
    putchar(',');
    print_lat("pub_lat_us", rtt);
    printf(",\"pub_conns\":%lu", run->pub_conns);
    if (st != NULL) {
        putchar(',');
        print_conn_counters(st);
    }
    printf(",\"timed_out\":%s", timed_out ? "true" : "false");
    if (o->shard) {
        printf(",\"id_base\":%llu,\"t_go_ns\":%llu,\"t_first_pub_ns\":%llu,"
               "\"t_last_answer_ns\":%llu,\"t_first_delivery_ns\":%llu,"
               "\"t_last_delivery_ns\":%llu",
               (unsigned long long)o->id_base, (unsigned long long)t_go, (unsigned long long)first,
               (unsigned long long)last_ans, (unsigned long long)(st ? st->t_first_delivery : 0),
               (unsigned long long)last_del);
        if (st != NULL)
            print_hist("lat_hist", &st->lat);
        print_hist("pub_lat_hist", rtt);
    }
    printf("}\n");
}

/* Open the connections; exit 1 if not one of them was upgraded. */
static struct lg_recv *connect_all(const struct lg_opts *o, struct lg_track *track,
                                   uint64_t deadline)
{
    struct lg_recv_cfg cfg = {.tmpl = o->sub,
                              .secret = o->secret,
                              .conns = (uint32_t)o->conns,
                              .src_ips = o->src_ips,
                              .targeted = o->mode == LG_MODE_TARGETED,
                              .id_base = o->id_base,
                              .messages = o->mode == LG_MODE_BROADCAST ? o->messages : 0,
                              .track = track};
    const struct lg_recv_stats *st;
    struct lg_recv *r;
    char *cause = NULL;

    r = lg_recv_new(&cfg, &cause);
    if (r == NULL || lg_recv_connect(r, deadline, &cause) != 0)
        die("%s", cause ? cause : "out of memory");
    st = lg_recv_stats(r);
    fprintf(stderr,
            "loadgen: %llu/%llu connections upgraded in %.2f s (%llu connect, "
            "%llu handshake errors)%s%s\n",
            (unsigned long long)st->connected, (unsigned long long)o->conns,
            secs(st->t_connect_start, st->t_connected), (unsigned long long)st->connect_errors,
            (unsigned long long)st->handshake_errors, lg_recv_first_error(r)[0] ? "; first: " : "",
            lg_recv_first_error(r));
    if (st->connected == 0 && st->handshake_errors == 0)
        die("no connection was upgraded; is the server at %s running?", o->sub);
    if (st->connected == 0)
        die("no connection was upgraded: the server refused every handshake");
    return r;
}

/* idle: connect, say READY, hold, report. */
static void run_idle(const struct lg_opts *o, uint64_t deadline)
{
    struct lg_recv *r = connect_all(o, NULL, deadline);
    const struct lg_recv_stats *st = lg_recv_stats(r);
    uint64_t start = lg_util_now_ns(), end = start + (uint64_t)(o->hold * NS);
    char *cause = NULL;

    printf("READY conns=%llu seconds=%.3f\n", (unsigned long long)st->connected,
           secs(st->t_connect_start, st->t_connected));
    if (fflush(stdout) != 0)
        die("stdout: %s", strerror(errno));
    if (o->shard) {
        /* Held until the driver closes stdin (or the deadline). */
        if (lg_recv_run(r, deadline, stdin_ready, NULL, &cause) != 0)
            die("%s", cause);
        end = lg_util_now_ns();
    } else if (lg_recv_run(r, end < deadline ? end : deadline, never_done, NULL, &cause) != 0) {
        die("%s", cause);
    }
    fprintf(stderr, "loadgen: held %llu connections for %.1f s; %llu still open\n",
            (unsigned long long)st->connected, secs(start, lg_util_now_ns()),
            (unsigned long long)st->live);
    printf("{\"mode\":\"idle\",\"conns\":%llu,\"seconds\":%.6f,\"hold\":%g,",
           (unsigned long long)o->conns, secs(st->t_connect_start, st->t_connected), o->hold);
    print_conn_counters(st);
    printf(",\"open\":%llu,\"timed_out\":%s}\n", (unsigned long long)st->live,
           end > deadline ? "true" : "false");
    lg_recv_free(r);
}

/* broadcast and targeted: connect, publish, receive until complete, report. */
static void run_publish(const struct lg_opts *o, struct lg_run *run, uint64_t deadline)
{
    int targeted = o->mode == LG_MODE_TARGETED;
    struct lg_track *track = lg_track_new(targeted, o->messages);
    struct lg_recv *r = connect_all(o, track, deadline);
    const struct lg_recv_stats *st = lg_recv_stats(r);
    int (*done)(void *, const struct lg_recv_stats *) = targeted ? targeted_done : broadcast_done;
    struct lg_hist *rtt = lg_util_calloc(1, sizeof *rtt);
    uint32_t *live = NULL;
    uint64_t missing;
    char *cause = NULL;
    int timed_out;

    run->track = track;
    if (o->shard) {
        deadline = shard_go(o, r, deadline);
        run->deadline = deadline;
    }
    if (o->publishers == 0) /* receive only: every seq below --messages is expected */
        for (uint64_t seq = 0; seq < o->messages; seq++)
            lg_track_ok(track, seq);
    if (targeted) {
        live = lg_recv_live_ids(r, &run->nlive);
        run->live = live;
        if (o->rate > 0)
            fprintf(stderr,
                    "loadgen: publishing to single users for %g s at %g/s from %d "
                    "publishers\n",
                    o->duration, o->rate, o->publishers);
        else
            fprintf(stderr,
                    "loadgen: publishing to single users for %g s as fast as %d "
                    "publishers get answers\n",
                    o->duration, o->publishers);
    } else {
        fprintf(stderr,
                "loadgen: broadcasting %llu messages of %llu bytes to %llu "
                "connections from %d publishers\n",
                (unsigned long long)o->messages, (unsigned long long)o->size,
                (unsigned long long)st->live, o->publishers);
    }
    if (o->publishers > 0 && lg_run_start(run, &cause) != 0)
        die("%s", cause ? cause : "cannot start the publishers");
    if (lg_recv_run(r, deadline, done, run, &cause) != 0)
        die("%s", cause);
    timed_out = !done(run, st);
    if (o->publishers > 0)
        lg_run_join(run, rtt);
    missing = targeted ? lg_track_missing(track, atomic_load(&run->next_seq)) : lg_recv_missing(r);
    fprintf(stderr, "loadgen: %llu publishes, %llu deliveries, %llu missing, %llu duplicates%s\n",
            (unsigned long long)atomic_load(&run->ok), (unsigned long long)st->deliveries,
            (unsigned long long)missing, (unsigned long long)st->duplicates,
            timed_out ? " (timed out)" : "");
    print_result(run, st, missing, rtt, timed_out);
    if (o->shard) {
        if (fflush(stdout) != 0)
            die("stdout: %s", strerror(errno));
        shard_hold(o, r);
    }
    free(rtt);
    free(live);
    lg_recv_free(r);
    lg_track_free(track);
}

/* api: publish --messages to user "nobody" and time the answers. */
static void run_api(const struct lg_opts *o, struct lg_run *run, uint64_t deadline)
{
    char *cause = NULL;
    struct lg_hist *rtt = lg_util_calloc(1, sizeof *rtt);
    int timed_out;

    fprintf(stderr, "loadgen: %llu publishes from %d publishers%s\n",
            (unsigned long long)o->messages, o->publishers, o->keep ? " on kept connections" : "");
    if (lg_run_start(run, &cause) != 0)
        die("%s", cause ? cause : "cannot start the publishers");
    while (atomic_load(&run->done) < o->publishers && lg_util_now_ns() < deadline)
        lg_util_sleep_until(lg_util_now_ns() + 10000000u);
    timed_out = atomic_load(&run->done) < o->publishers;
    lg_run_join(run, rtt);
    fprintf(stderr, "loadgen: %llu publishes answered 2xx, %llu errors%s\n",
            (unsigned long long)atomic_load(&run->ok),
            (unsigned long long)atomic_load(&run->errors), timed_out ? " (timed out)" : "");
    print_result(run, NULL, 0, rtt, timed_out);
    free(rtt);
}

/* Parse the command line, raise the fd limit, run the mode, print the result. */
int main(int argc, char **argv)
{
    static struct lg_run run; /* zeroed: its atomics start at 0 */
    struct lg_opts o;
    uint64_t deadline;
    char *cause = NULL;
    double pub_timeout;

    parse_args(argc, argv, &o);
    raise_fd_limit(&o);
    if (signal(SIGPIPE, SIG_IGN) == SIG_ERR)
        die("signal: %s", strerror(errno));
    deadline = lg_util_now_ns() + (uint64_t)(o.timeout * NS);
    run.o = &o;
    run.deadline = deadline;
    pub_timeout = o.timeout < PUB_TIMEOUT_MAX_S ? o.timeout : PUB_TIMEOUT_MAX_S;
    if (o.pub != NULL &&
        lg_pub_parse(o.pub, o.keep, (int)(pub_timeout * 1000), &run.pubcfg, &cause) != 0)
        die("%s", cause ? cause : "bad --pub");
    if (o.script != NULL)
        strcpy(run.pubcfg.script, o.script);
    if (o.mode == LG_MODE_IDLE)
        run_idle(&o, deadline);
    else if (o.mode == LG_MODE_API)
        run_api(&o, &run, deadline);
    else
        run_publish(&o, &run, deadline);
    if (fflush(stdout) != 0)
        die("stdout: %s", strerror(errno));
    if (o.mode != LG_MODE_IDLE && o.publishers > 0 && atomic_load(&run.ok) == 0)
        die("no publish was answered 2xx: nothing was measured");
    return 0;
}
