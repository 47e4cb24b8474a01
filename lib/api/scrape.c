/*
 * scrape.c -- Herald's figures as Prometheus series (scrape.h).
 *
 * Owns:       the list of metric names, their types, help and labels
 *             (docs/deploy.md "Metrics" lists them for users).
 * Called by:  routes.c on an API thread, mlisten.c on its own thread.
 * Invariants: every figure is gathered first, for every site asked for,
 *             then written family by family, so each family's HELP and
 *             TYPE come once with all its samples after them, as the
 *             format wants. A worker's counters reach here only as the copy
 *             the CMD_STATS job made; the API's are atomics read once.
 */
#include "scrape.h"

#include <dirent.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "cfg.h"
#include "engine.h"
#include "proto.h"
#include "rlink.h"
#include "site.h"
#include "xmalloc.h"

/* One site's figures, gathered before anything is written. */
struct scrape_site {
    const char *name; /* borrowed */
    struct stats st;  /* its counters in every worker, added up */
    struct eng_counts counts;
    int engine_ok; /* the engine answered its counts */
    uint64_t published_kind[STATS_NKIND];
    uint64_t by_route[STATS_NROUTE][STATS_NSTATUS];
    struct histo publish_latency;
    int rpc_inflight;
};

/* Waiting on an API thread for the engine's counts. */
struct scrape_wait {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int done;
    int err;
    struct eng_counts *counts; /* borrowed: filled on ENG_OK */
};

/* eng_counts_fn */
static void scrape_got_counts(void *arg, int err, const struct eng_counts *r)
{
    struct scrape_wait *w = arg;

    pthread_mutex_lock(&w->lock);
    if (err == ENG_OK)
        *w->counts = *r;
    w->err = err;
    w->done = 1;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->lock);
}

/* Gather site i's figures into s; the workers' counters no site owns are added to unrouted. */
static void scrape_gather(struct api *a, int i, struct scrape_site *s, struct stats *unrouted)
{
    struct cmd_job *job = cmd_job_new(CMD_STATS, a->hub->nqueues, 0);
    struct scrape_wait w = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, &s->counts};
    const struct stats_api *as = &a->sites[i].stats;

    memset(s, 0, sizeof *s);
    s->name = a->hub->sites[i].name;
    job->site = i;
    cmd_submit(a->hub, job);
    cmd_job_wait(job);
    s->st = job->stats;
    if (unrouted != NULL)
        *unrouted = job->unrouted;
    cmd_job_free(job);
    eng_counts(a->hub->engine, i, scrape_got_counts, &w);
    pthread_mutex_lock(&w.lock);
    while (!w.done)
        pthread_cond_wait(&w.cond, &w.lock);
    pthread_mutex_unlock(&w.lock);
    pthread_mutex_destroy(&w.lock);
    pthread_cond_destroy(&w.cond);
    s->engine_ok = w.err == ENG_OK;
    for (int k = 0; k < STATS_NKIND; k++)
        s->published_kind[k] = atomic_load(&as->published_kind[k]);
    for (int r = 0; r < STATS_NROUTE; r++)
        for (int c = 0; c < STATS_NSTATUS; c++)
            s->by_route[r][c] = atomic_load(&as->by_route[r][c]);
    histo_add_shared(&s->publish_latency, &as->publish_latency);
    s->rpc_inflight = atomic_load(&a->hub->sites[i].rpc_inflight);
}

/* The one-value-per-site families, in the order they are written. */
enum scrape_field {
    SCRAPE_CONNECTIONS,
    SCRAPE_USERS,
    SCRAPE_CHANNELS,
    SCRAPE_SUBSCRIPTIONS,
    SCRAPE_OPENED,
    SCRAPE_SLOW,
    SCRAPE_RPC_INFLIGHT,
    SCRAPE_HIST_STREAMS,
    SCRAPE_HIST_MESSAGES,
    SCRAPE_HIST_BYTES,
    SCRAPE_HIST_MAX_BYTES,
    SCRAPE_HIST_EVICTED,
    SCRAPE_HIST_NOT_KEPT,
    SCRAPE_NFIELDS
};

static const struct {
    const char *name, *type, *help;
} scrape_fields[SCRAPE_NFIELDS] = {
    {"herald_connections", "gauge", "Open WebSocket connections."},
    {"herald_users", "gauge", "Users with an open connection (across nodes with Redis)."},
    {"herald_channels", "gauge", "Channels with a subscriber (across nodes with Redis)."},
    {"herald_subscriptions", "gauge", "Channel subscriptions of this node's connections."},
    {"herald_connections_opened_total", "counter", "WebSocket upgrades since start."},
    {"herald_slow_consumers_total", "counter",
     "Connections closed for exceeding max_queued_bytes."},
    {"herald_rpc_inflight", "gauge", "Calls to PHP in flight."},
    {"herald_history_streams", "gauge", "Streams with history kept."},
    {"herald_history_messages", "gauge", "Messages kept in history."},
    {"herald_history_bytes", "gauge", "Bytes of history kept."},
    {"herald_history_max_bytes", "gauge", "The history's memory budget in bytes."},
    {"herald_history_evicted_total", "counter",
     "Messages dropped from history: by size, age or budget."},
    {"herald_history_not_kept_total", "counter",
     "Messages delivered but not kept: past the hard bound."},
};

/* Site s's value of field f. */
static uint64_t scrape_value(const struct scrape_site *s, enum scrape_field f)
{
    switch (f) {
    case SCRAPE_CONNECTIONS: return s->st.connections;
    case SCRAPE_USERS: return s->counts.users;
    case SCRAPE_CHANNELS: return s->counts.channels;
    case SCRAPE_SUBSCRIPTIONS: return s->st.subscriptions;
    case SCRAPE_OPENED: return s->st.connections_total;
    case SCRAPE_SLOW: return s->st.slow_consumers;
    case SCRAPE_RPC_INFLIGHT: return s->rpc_inflight > 0 ? (uint64_t)s->rpc_inflight : 0;
    case SCRAPE_HIST_STREAMS: return s->counts.history.streams;
    case SCRAPE_HIST_MESSAGES: return s->counts.history.messages;
    case SCRAPE_HIST_BYTES: return s->counts.history.bytes;
    case SCRAPE_HIST_MAX_BYTES: return s->counts.history.max_bytes;
    case SCRAPE_HIST_EVICTED: return s->counts.history.evicted;
    case SCRAPE_HIST_NOT_KEPT: return s->counts.history.not_kept;
    default: return 0;
    }
}

/* The families with one value per site. */
static void scrape_scalars(struct metrics_buf *b, const struct scrape_site *s, int n)
{
    for (int f = 0; f < SCRAPE_NFIELDS; f++) {
        metrics_family(b, scrape_fields[f].name, scrape_fields[f].type, scrape_fields[f].help);
        for (int i = 0; i < n; i++) {
            struct metrics_label l = {"site", s[i].name};

            metrics_sample(b, scrape_fields[f].name, &l, 1,
                           scrape_value(&s[i], (enum scrape_field)f));
        }
    }
}

/* A family with a second label from a table of names: value(site, index). */
static void scrape_labelled(struct metrics_buf *b, const struct scrape_site *s, int n,
                            const char *name, const char *help, const char *label,
                            const char *const *names, int from, int to,
                            uint64_t (*value)(const struct scrape_site *, int))
{
    metrics_family(b, name, "counter", help);
    for (int i = 0; i < n; i++) {
        for (int k = from; k < to; k++) {
            struct metrics_label l[2] = {{"site", s[i].name}, {label, names[k]}};

            metrics_sample(b, name, l, 2, value(&s[i], k));
        }
    }
}

static uint64_t scrape_published(const struct scrape_site *s, int k)
{
    return s->published_kind[k];
}

static uint64_t scrape_delivered(const struct scrape_site *s, int k)
{
    return s->st.delivered_kind[k];
}

static uint64_t scrape_refused(const struct scrape_site *s, int k)
{
    return s->st.handshakes_refused[k];
}

static uint64_t scrape_closes(const struct scrape_site *s, int k)
{
    return s->st.closes[k];
}

static uint64_t scrape_client_errors(const struct scrape_site *s, int k)
{
    return s->st.client_errors[k];
}

/* rpc outcomes: ok, app_error, failed, dropped. */
static uint64_t scrape_rpc(const struct scrape_site *s, int k)
{
    const struct rpc_counts *r = &s->st.rpc;
    uint64_t v[] = {r->replies, r->app_errors, r->failed, r->dropped};

    return v[k];
}

/* recovery outcomes: ok, failed. */
static uint64_t scrape_recoveries(const struct scrape_site *s, int k)
{
    return k == 0 ? s->st.recoveries_ok : s->st.recoveries_failed;
}

/* The families with a kind, reason, code or outcome label. */
static void scrape_by_label(struct metrics_buf *b, const struct scrape_site *s, int n)
{
    static const char *const outcomes[] = {"ok", "app_error", "failed", "dropped"};
    static const char *const recovered[] = {"ok", "failed"};
    const char *reasons[HS_REASON_COUNT], *errors[PROTO_NERR], *codes[STATS_NCLOSE];
    char code_text[STATS_NCLOSE][8];

    for (int r = 0; r < HS_REASON_COUNT; r++)
        reasons[r] = hs_reason_name((enum hs_reason)r);
    for (int e = 0; e < PROTO_NERR; e++)
        errors[e] = e >= PROTO_E_FIRST ? proto_err_name((enum proto_err)e) : "";
    for (int c = 0; c < STATS_NCLOSE; c++) {
        if (c < STATS_NCLOSE - 1)
            snprintf(code_text[c], sizeof code_text[c], "%d", stats_close_codes[c]);
        else
            snprintf(code_text[c], sizeof code_text[c], "other");
        codes[c] = code_text[c];
    }
    scrape_labelled(b, s, n, "herald_messages_published_total",
                    "Messages accepted by POST /publish, by target kind.", "kind", stats_kind_names,
                    0, STATS_NKIND, scrape_published);
    scrape_labelled(b, s, n, "herald_frames_delivered_total",
                    "Frames queued to connections by publishes, by target kind.", "kind",
                    stats_kind_names, 0, STATS_NKIND, scrape_delivered);
    scrape_labelled(b, s, n, "herald_handshakes_refused_total", "WebSocket handshakes refused.",
                    "reason", reasons, 1, HS_REASON_COUNT, scrape_refused);
    scrape_labelled(b, s, n, "herald_closes_total",
                    "Open connections ended, by close code (1006: without a close frame).", "code",
                    codes, 0, STATS_NCLOSE, scrape_closes);
    scrape_labelled(b, s, n, "herald_client_errors_total",
                    "Error answers to browser commands, by error.", "reason", errors, PROTO_E_FIRST,
                    PROTO_NERR, scrape_client_errors);
    scrape_labelled(b, s, n, "herald_rpc_calls_total", "Calls to PHP ended, by outcome.", "outcome",
                    outcomes, 0, 4, scrape_rpc);
    scrape_labelled(b, s, n, "herald_recoveries_total",
                    "Reconnects with since: all missed messages replayed (ok) or not.", "outcome",
                    recovered, 0, 2, scrape_recoveries);
}

/* API requests by route and status: only the pairs that happened, of a fixed few. */
static void scrape_requests(struct metrics_buf *b, const struct scrape_site *s, int n)
{
    const char *name = "herald_api_requests_total";

    metrics_family(b, name, "counter", "FastCGI API requests answered, by route and status.");
    for (int i = 0; i < n; i++) {
        for (int r = 0; r < STATS_NROUTE; r++) {
            for (int c = 0; c < STATS_NSTATUS; c++) {
                char status[8];
                struct metrics_label l[3] = {
                    {"site", s[i].name}, {"route", stats_route_names[r]}, {"status", status}};

                if (s[i].by_route[r][c] == 0)
                    continue;
                if (c < STATS_NSTATUS - 1)
                    snprintf(status, sizeof status, "%d", stats_statuses[c]);
                else
                    snprintf(status, sizeof status, "other");
                metrics_sample(b, name, l, 3, s[i].by_route[r][c]);
            }
        }
    }
}

/* The two latency histograms. */
static void scrape_histograms(struct metrics_buf *b, const struct scrape_site *s, int n)
{
    const char *pl = "herald_publish_latency_seconds", *dl = "herald_delivery_lag_seconds";

    metrics_family(b, pl, "histogram",
                   "POST /publish: from the request routed to its messages handed to the workers.");
    for (int i = 0; i < n; i++) {
        struct metrics_label l = {"site", s[i].name};

        metrics_histogram(b, pl, &l, 1, &s[i].publish_latency);
    }
    metrics_family(b, dl, "histogram",
                   "A published frame: from handed to the workers to written to the socket.");
    for (int i = 0; i < n; i++) {
        struct metrics_label l = {"site", s[i].name};

        metrics_histogram(b, dl, &l, 1, &s[i].st.delivery_lag);
    }
}

/* Open descriptors of this process: the entries of /proc/self/fd, less the one reading it. */
static uint64_t scrape_open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    uint64_t n = 0;

    if (d == NULL)
        return 0;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n > 0 ? n - 1 : 0;
}

/* One unlabelled sample, with its family. */
static void scrape_one(struct metrics_buf *b, const char *name, const char *type, const char *help,
                       uint64_t v)
{
    metrics_family(b, name, type, help);
    metrics_sample(b, name, NULL, 0, v);
}

/* The engine's series: up, and for one with Redis links their errors, reconnects, round trips. */
static void scrape_engine(struct metrics_buf *b, const struct engine *e, int up)
{
    struct metrics_label l = {"engine", e->ops->name};
    struct histo rtt = {0};

    metrics_family(b, "herald_engine_up", "gauge", "1 when the engine answered this scrape.");
    metrics_sample(b, "herald_engine_up", &l, 1, (uint64_t)up);
    if (e->links == NULL)
        return;
    metrics_family(b, "herald_engine_errors_total", "counter",
                   "Redis commands answered with an error, a timeout or a lost connection.");
    metrics_sample(b, "herald_engine_errors_total", &l, 1, atomic_load(&e->links->errors));
    metrics_family(b, "herald_engine_reconnects_total", "counter",
                   "Redis links connected again after having been up.");
    metrics_sample(b, "herald_engine_reconnects_total", &l, 1, atomic_load(&e->links->reconnects));
    histo_add_shared(&rtt, &e->links->rtt);
    metrics_family(b, "herald_engine_rtt_seconds", "histogram",
                   "Redis commands: from sent to their reply read.");
    metrics_histogram(b, "herald_engine_rtt_seconds", &l, 1, &rtt);
}

/* The process-wide series: build, start, descriptors, what no site owns, the engine. */
static void scrape_process(struct api *a, struct metrics_buf *b, const struct stats *un, int up)
{
    struct metrics_label v = {"version", HERALD_VERSION};
    struct rlimit rl;
    const char *name = "herald_unrouted_handshakes_refused_total";

    metrics_family(b, "herald_build_info", "gauge", "Always 1; the version in its label.");
    metrics_sample(b, "herald_build_info", &v, 1, 1);
    scrape_one(b, "herald_process_start_time_seconds", "gauge",
               "Start time of the process since the Unix epoch, in seconds.", (uint64_t)a->started);
    scrape_one(b, "herald_process_open_fds", "gauge", "Number of open file descriptors.",
               scrape_open_fds());
    scrape_one(b, "herald_process_max_fds", "gauge", "Maximum number of open file descriptors.",
               getrlimit(RLIMIT_NOFILE, &rl) == 0 ? (uint64_t)rl.rlim_cur : 0);
    scrape_one(b, "herald_accept_errors_total", "counter",
               "accept() failures on the WebSocket listener, other than EAGAIN.",
               un->accept_errors);
    metrics_family(b, name, "counter",
                   "Handshakes refused before a site was known (several sites: 404, timeout).");
    for (int r = 1; r < HS_REASON_COUNT; r++) {
        struct metrics_label l = {"reason", hs_reason_name((enum hs_reason)r)};

        metrics_sample(b, name, &l, 1, un->handshakes_refused[r]);
    }
    scrape_engine(b, a->hub->engine, up);
}

void scrape_write(struct api *a, int site, struct metrics_buf *b)
{
    int n = site >= 0 ? 1 : a->nsites, up = 1;
    struct scrape_site *s = xcalloc((size_t)n, sizeof *s);
    struct stats unrouted;

    memset(&unrouted, 0, sizeof unrouted);
    for (int i = 0; i < n; i++) {
        scrape_gather(a, site >= 0 ? site : i, &s[i], i == 0 ? &unrouted : NULL);
        up &= s[i].engine_ok;
    }
    scrape_scalars(b, s, n);
    scrape_by_label(b, s, n);
    scrape_requests(b, s, n);
    scrape_histograms(b, s, n);
    if (site < 0)
        scrape_process(a, b, &unrouted, up);
    free(s);
}
