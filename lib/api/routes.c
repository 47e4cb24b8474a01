/*
 * routes.c -- the API's routes: POST /publish, GET /presence (a channel's
 * members, or a user's connections), GET /health, GET /stats, GET /metrics
 * (scrape.c writes it).
 *
 * Owns:       request validation and the JSON answers.
 * Called by:  api.c, on an API thread, once per request.
 * Invariants: a publish is validated whole before anything is sent (a batch
 *             with one bad message publishes nothing), encoded into one
 *             shared frame per message, and handed through the engine to the
 *             workers as one job; the answer waits for the workers' counts.
 *             Every refusal is a 4xx with {"ok":false,"error":...}, made in
 *             api_error; what the engine could not do is a 503
 *             ("engine_unavailable"), never accepted and dropped.
 */
#include "api.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cfg.h"
#include "chan.h"
#include "engine.h"
#include "fmt.h"
#include "http.h"
#include "msg.h"
#include "proto.h"
#include "rate.h"
#include "scrape.h"
#include "site.h"
#include "tok.h"
#include "ws.h"
#include "xmalloc.h"

#define ROUTES_MAX_BATCH 1000
#define ROUTES_MAX_USERS 10000

void api_error(struct api_response *resp, int status, const char *fmt, ...)
{
    char msg[512];
    json_t *o;
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    /* The message may quote the caller's bytes (a path): keep it valid JSON text. */
    for (char *p = msg; *p != '\0'; p++)
        if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
            *p = '?';
    o = json_pack("{s:b, s:s}", "ok", 0, "error", msg);
    resp->status = status;
    resp->body = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;
    if (resp->body == NULL)
        resp->body = xstrdup("{\"ok\":false,\"error\":\"internal error\"}");
    json_decref(o);
}

/* A 200 answer: {"ok":true} followed by the fields of o (reference stolen). */
static void routes_ok(struct api_response *resp, json_t *o)
{
    json_t *answer = json_pack("{s:b}", "ok", 1);

    json_object_update(answer, o);
    json_decref(o);
    resp->status = 200;
    resp->body = json_dumps(answer, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(answer);
}

static int routes_cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Read "users" into it->users, deduplicated. Returns 0, or -1 with *err set. */
static int routes_users(json_t *users, struct eng_item *it, char *err, size_t errlen)
{
    size_t n = json_array_size(users), i, j;
    char id[TOK_MAX_SUB + 1];
    json_t *u;

    if (!json_is_array(users) || n == 0 || n > ROUTES_MAX_USERS) {
        snprintf(err, errlen, "users must be a non-empty array of at most %d user ids",
                 ROUTES_MAX_USERS);
        return -1;
    }
    it->users = xcalloc(n, sizeof *it->users);
    json_array_foreach (users, i, u) {
        if (tok_user_id(u, id) == 0) {
            it->users[it->nusers++] = xstrdup(id);
        } else {
            snprintf(err, errlen,
                     "users[%zu]: a user id is a string of 1 to %d bytes "
                     "without control characters, or an integer",
                     i, TOK_MAX_SUB);
            return -1;
        }
    }
    qsort(it->users, it->nusers, sizeof *it->users, routes_cmp_str);
    for (i = j = 0; i < it->nusers; i++) {
        if (j > 0 && strcmp(it->users[j - 1], it->users[i]) == 0)
            free(it->users[i]);
        else
            it->users[j++] = it->users[i];
    }
    it->nusers = j;
    return 0;
}

/* A publish to a channel: check the name and encode the channel envelope. */
static int routes_channel_item(const json_t *chan, const json_t *event, const json_t *data,
                               struct eng_item *it, char **text, char *err, size_t errlen)
{
    if (!json_is_string(chan) ||
        !chan_name_valid(json_string_value(chan), json_string_length(chan))) {
        snprintf(err, errlen, "channel must be 1 to %d bytes of A-Z a-z 0-9 _ . : @ / = + -",
                 CHAN_MAX_NAME);
        return -1;
    }
    it->channel = xstrdup(json_string_value(chan));
    *text = proto_channel_text(it->channel, json_string_value(event), data, NULL);
    if (*text == NULL) {
        snprintf(err, errlen, "data cannot be encoded");
        return -1;
    }
    return 0;
}

/* Validate one message object; encode its envelope into *text and its frame into *it. */
static int routes_item(json_t *o, struct eng_item *it, char **text, char *err, size_t errlen)
{
    json_t *event, *data, *users, *bc, *chan;

    if (!json_is_object(o)) {
        snprintf(err, errlen, "a message must be a JSON object");
        return -1;
    }
    event = json_object_get(o, "event");
    data = json_object_get(o, "data");
    users = json_object_get(o, "users");
    bc = json_object_get(o, "broadcast");
    chan = json_object_get(o, "channel");
    if (!json_is_string(event) ||
        !proto_event_valid(json_string_value(event), json_string_length(event))) {
        snprintf(err, errlen,
                 "event must be a string of 1 to %d bytes without control "
                 "characters",
                 PROTO_MAX_EVENT);
        return -1;
    }
    if ((users != NULL) + (bc != NULL) + (chan != NULL) > 1) {
        snprintf(err, errlen, "give one of users, broadcast and channel");
        return -1;
    }
    if (bc != NULL && !json_is_true(bc)) {
        snprintf(err, errlen, "broadcast must be true");
        return -1;
    }
    if (users == NULL && bc == NULL && chan == NULL) {
        snprintf(err, errlen, "missing users (or broadcast: true, or channel)");
        return -1;
    }
    if (chan != NULL)
        return routes_channel_item(chan, event, data, it, text, err, errlen);
    if (bc != NULL)
        it->broadcast = 1;
    else if (routes_users(users, it, err, errlen) != 0)
        return -1;
    *text = proto_channel_text(NULL, json_string_value(event), data, NULL);
    if (*text == NULL) {
        snprintf(err, errlen, "data cannot be encoded");
        return -1;
    }
    return 0;
}

/*
 * An engine call from an API thread, which may block: the callback fills in
 * the answer and says it is done; routes_wait sleeps until then (not at all
 * with the memory engine, which answers before returning).
 */
struct routes_wait {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int done;
    int err;
    json_t *members;          /* eng_members_fn's answer */
    struct eng_online online; /* eng_online_fn's */
    struct eng_counts counts; /* eng_counts_fn's */
};

#define ROUTES_WAIT_INIT                                                                           \
    {                                                                                              \
        .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER                        \
    }

/* The engine has answered w with err. */
static void routes_answered(struct routes_wait *w, int err)
{
    pthread_mutex_lock(&w->lock);
    w->err = err;
    w->done = 1;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->lock);
}

/* Wait for the engine's answer; returns its error. */
static int routes_wait(struct routes_wait *w)
{
    pthread_mutex_lock(&w->lock);
    while (!w->done)
        pthread_cond_wait(&w->cond, &w->lock);
    pthread_mutex_unlock(&w->lock);
    pthread_mutex_destroy(&w->lock);
    pthread_cond_destroy(&w->cond);
    return w->err;
}

/* eng_done_fn */
static void routes_done(void *arg, int err)
{
    routes_answered(arg, err);
}

/* eng_members_fn */
static void routes_got_members(void *arg, int err, json_t *members)
{
    struct routes_wait *w = arg;

    w->members = members;
    routes_answered(w, err);
}

/* eng_online_fn */
static void routes_got_online(void *arg, int err, const struct eng_online *r)
{
    struct routes_wait *w = arg;

    if (err == ENG_OK)
        w->online = *r;
    routes_answered(w, err);
}

/* eng_counts_fn */
static void routes_got_counts(void *arg, int err, const struct eng_counts *r)
{
    struct routes_wait *w = arg;

    if (err == ENG_OK)
        w->counts = *r;
    routes_answered(w, err);
}

/* Answer 503: the engine could not do it, so nothing was done. */
static void routes_unavailable(struct api_response *resp)
{
    api_error(resp, 503, "engine_unavailable");
}

/*
 * Hand job to the engine and wait for the workers; returns the engine's
 * error. The publish latency, from t0 to the job in the workers' hands,
 * is counted once the engine is done.
 */
static int routes_submit(struct api *a, struct cmd_job *job, char **texts, uint64_t t0)
{
    struct routes_wait w = ROUTES_WAIT_INIT;
    struct eng_pub p = {job->site, job->items, job->nitems, texts, job, 0};

    eng_publish(a->hub->engine, &p, routes_done, &w);
    if (routes_wait(&w) != ENG_OK)
        return w.err;
    histo_observe_shared(&a->sites[job->site].stats.publish_latency, histo_now_ns() - t0);
    cmd_job_wait(job);
    return ENG_OK;
}

/*
 * The answer to a publish: {"ok":true,"delivered":N}, or [N,...] for a
 * batch. Written straight, as routes_ok would dump it: every publish makes
 * one, and a jansson object for it cost as much as the rest of the answer.
 */
static void routes_delivered(struct api_response *resp, const struct cmd_job *job, int batch)
{
    static const char head[] = "{\"ok\":true,\"delivered\":";
    /* A count's digits and a comma or bracket around each. */
    char *p = xmalloc(sizeof head + job->nitems * (FMT_U64_MAX + 1) + 3);

    resp->status = 200;
    resp->body = p;
    memcpy(p, head, sizeof head - 1);
    p += sizeof head - 1;
    if (batch)
        *p++ = '[';
    for (size_t i = 0; i < job->nitems; i++) {
        if (i > 0)
            *p++ = ',';
        p += fmt_u64(p, job->delivered[i] + job->items[i].reached);
    }
    if (batch)
        *p++ = ']';
    *p++ = '}';
    *p = '\0';
}

/* POST /publish: one message object, or an array of them. */
static void routes_publish(struct api *a, int site, const char *body, size_t len,
                           struct api_response *resp)
{
    uint64_t t0 = histo_now_ns();
    json_error_t jerr;
    /* "\u0000" inside data is valid JSON; names are checked for it separately. */
    json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
    json_t *o;
    struct cmd_job *job;
    char **texts;
    size_t n, i;
    char err[256];
    int batch;

    if (root == NULL) {
        /* jansson quotes the body ("near '...'"); keep that out of callers' logs. */
        char *near = strstr(jerr.text, " near '");

        if (near != NULL)
            *near = '\0';
        api_error(resp, 400, "malformed JSON: %s (line %d, column %d)", jerr.text, jerr.line,
                  jerr.column);
        return;
    }
    batch = json_is_array(root);
    n = batch ? json_array_size(root) : 1;
    if (batch && (n == 0 || n > ROUTES_MAX_BATCH)) {
        api_error(resp, 400, "a batch holds 1 to %d messages", ROUTES_MAX_BATCH);
        json_decref(root);
        return;
    }
    job = cmd_job_new(CMD_PUBLISH, a->hub->nqueues, n);
    job->site = site;
    texts = xcalloc(n, sizeof *texts);
    for (i = 0; i < n; i++) {
        o = batch ? json_array_get(root, i) : root;
        if (routes_item(o, &job->items[i], &texts[i], err, sizeof err) != 0) {
            if (batch)
                api_error(resp, 400, "message %zu: %s", i, err);
            else
                api_error(resp, 400, "%s", err);
            goto done;
        }
    }
    if (routes_submit(a, job, texts, t0) != ENG_OK) {
        routes_unavailable(resp);
        goto done;
    }
    atomic_fetch_add(&a->sites[site].stats.published, n);
    rate_add(&a->hub->sites[site].published, n, rate_now());
    for (i = 0; i < n; i++) {
        enum stats_kind k = stats_kind_of(job->items[i].channel != NULL, job->items[i].broadcast);

        atomic_fetch_add(&a->sites[site].stats.published_kind[k], 1);
    }
    routes_delivered(resp, job, batch);
done:
    cmd_job_free(job);
    for (i = 0; i < n; i++)
        free(texts[i]);
    free(texts);
    json_decref(root);
}

/* GET /health. */
static void routes_health(struct api *a, int site, struct api_response *resp)
{
    routes_ok(resp, json_pack("{s:I, s:i, s:s}", "uptime", (json_int_t)(time(NULL) - a->started),
                              "workers", a->hub->nqueues, "site", a->hub->sites[site].name));
}

/* {"name": count, ...} for the handshake refusal counters. */
static json_t *routes_refusals(const struct stats *st)
{
    json_t *o = json_object();

    for (int r = 1; r < HS_REASON_COUNT; r++)
        json_object_set_new(o, hs_reason_name((enum hs_reason)r),
                            json_integer((json_int_t)st->handshakes_refused[r]));
    return o;
}

/* {"code": count, ...} for counters indexed by a table of codes. */
static json_t *routes_by_code(const int *codes, size_t n, const uint64_t *counts)
{
    json_t *o = json_object();
    char key[16];

    for (size_t i = 0; i < n; i++) {
        snprintf(key, sizeof key, "%d", codes[i]);
        json_object_set_new(o, key, json_integer((json_int_t)counts[i]));
    }
    return o;
}

/* Percent-decoded query parameter name into out; 1 found, 0 absent, -1 malformed. */
static int routes_param(const char *query, const char *name, char *out, size_t outlen)
{
    char target[4096];
    struct http_str t, v;
    int n;

    n = snprintf(target, sizeof target, "?%s", query);
    if (n < 0 || (size_t)n >= sizeof target)
        return -1;
    t.p = target;
    t.len = (size_t)n;
    if (!http_query_param(t, name, &v))
        return 0;
    n = http_percent_decode(v, out, outlen - 1);
    if (n < 0)
        return -1;
    out[n] = '\0';
    return strlen(out) == (size_t)n ? 1 : -1;
}

/* GET /presence?channel=C: the members of a presence channel. */
static void routes_presence_channel(struct api *a, int site, const char *channel,
                                    struct api_response *resp)
{
    const struct cfg_site *cfg = api_cfg(a)->sites[site];
    size_t len = strlen(channel);
    struct routes_wait w = ROUTES_WAIT_INIT;
    struct eng_stream ch = {site, 'c', channel};

    if (!chan_name_valid(channel, len)) {
        api_error(resp, 400, "channel must be 1 to %d bytes of A-Z a-z 0-9 _ . : @ / = + -",
                  CHAN_MAX_NAME);
        return;
    }
    if (!chan_match_any(cfg->presence_channels, cfg->npresence_channels, channel, len)) {
        api_error(resp, 400, "%s is not a presence channel (see presence_channels)", channel);
        return;
    }
    eng_members(a->hub->engine, &ch, 1, routes_got_members, &w);
    if (routes_wait(&w) != ENG_OK) {
        routes_unavailable(resp);
        return;
    }
    routes_ok(resp, json_pack("{s:s, s:o}", "channel", channel, "members", w.members));
}

/* GET /presence?user=U: is the user online here, and with how many connections. */
static void routes_presence_user(struct api *a, int site, const char *user,
                                 struct api_response *resp)
{
    struct routes_wait w = ROUTES_WAIT_INIT;
    struct cmd_job *job;
    uint64_t n;

    if (!tok_user_valid(user, strlen(user))) {
        api_error(resp, 400, "user must be 1 to %d bytes without control characters", TOK_MAX_SUB);
        return;
    }
    eng_online(a->hub->engine, site, user, routes_got_online, &w);
    if (routes_wait(&w) != ENG_OK) {
        routes_unavailable(resp);
        return;
    }
    job = cmd_job_new(CMD_COUNT_USER, a->hub->nqueues, 1);
    job->site = site;
    job->items[0].users = xcalloc(1, sizeof *job->items[0].users);
    job->items[0].users[0] = xstrdup(user);
    job->items[0].nusers = 1;
    cmd_submit_to(a->hub, job, &w.online.local);
    cmd_job_wait(job);
    n = job->delivered[0] + w.online.remote;
    cmd_job_free(job);
    routes_ok(resp, json_pack("{s:s, s:b, s:I}", "user", user, "online", n > 0, "connections",
                              (json_int_t)n));
}

/* GET /presence with channel= or user=. */
static void routes_presence(struct api *a, int site, const char *query, struct api_response *resp)
{
    char value[512];
    int r;

    if ((r = routes_param(query, "channel", value, sizeof value)) > 0) {
        routes_presence_channel(a, site, value, resp);
        return;
    }
    if (r == 0 && (r = routes_param(query, "user", value, sizeof value)) > 0) {
        routes_presence_user(a, site, value, resp);
        return;
    }
    api_error(resp, 400,
              r < 0 ? "malformed query string"
                    : "give channel=NAME or user=ID in the query string");
}

/* {"code": count, ...} for the client error counters. */
static json_t *routes_client_errors(const struct stats *st)
{
    json_t *o = json_object();

    for (int e = PROTO_E_FIRST; e < PROTO_NERR; e++)
        json_object_set_new(o, proto_err_name((enum proto_err)e),
                            json_integer((json_int_t)st->client_errors[e]));
    return o;
}

/* The RPC counters; inflight is the site's own (its rpc_max_inflight is its own budget). */
static json_t *routes_rpc(struct api *a, int site, const struct stats *st)
{
    return json_pack("{s:I, s:I, s:I, s:I, s:I, s:i}", "calls", (json_int_t)st->rpc.calls,
                     "replies", (json_int_t)st->rpc.replies, "app_errors",
                     (json_int_t)st->rpc.app_errors, "failed", (json_int_t)st->rpc.failed,
                     "dropped", (json_int_t)st->rpc.dropped, "inflight",
                     atomic_load(&a->hub->sites[site].rpc_inflight));
}

/* The site's history gauges: its streams, kept messages, memory and budget, drops. */
static json_t *routes_history(const struct hist_stats *h)
{
    const struct hist_stats st = *h;

    return json_pack("{s:I, s:I, s:I, s:I, s:I, s:I}", "streams", (json_int_t)st.streams,
                     "messages", (json_int_t)st.messages, "bytes", (json_int_t)st.bytes,
                     "max_bytes", (json_int_t)st.max_bytes, "evicted", (json_int_t)st.evicted,
                     "not_kept", (json_int_t)st.not_kept);
}

/* What the site published and delivered in the last RATE_WINDOW seconds (this one included). */
static json_t *routes_last_minute(const struct site *hs)
{
    uint32_t now = rate_now();

    return json_pack("{s:I, s:I, s:i}", "published", (json_int_t)rate_sum(&hs->published, now),
                     "delivered", (json_int_t)rate_sum(&hs->delivered, now), "seconds",
                     RATE_WINDOW);
}

/* GET /stats: the site's counters in every worker, added up. */
static void routes_stats(struct api *a, int site, struct api_response *resp)
{
    struct cmd_job *job = cmd_job_new(CMD_STATS, a->hub->nqueues, 0);
    const struct stats_api *as = &a->sites[site].stats;
    struct site *hs = &a->hub->sites[site];
    struct routes_wait w = ROUTES_WAIT_INIT;
    uint64_t api_errors[STATS_NAPI];
    const struct stats *st = &job->stats, *un = &job->unrouted;
    const struct eng_counts *ec = &w.counts;
    json_t *o;

    job->site = site;
    cmd_submit(a->hub, job);
    cmd_job_wait(job);
    /* This node's own figures are worth having even when the engine cannot answer. */
    memset(&w.counts, 0, sizeof w.counts);
    eng_counts(a->hub->engine, site, routes_got_counts, &w);
    routes_wait(&w);
    for (size_t i = 0; i < STATS_NAPI; i++)
        api_errors[i] = atomic_load(&as->errors[i]);
    o = json_pack("{s:I, s:i, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:o, s:o, s:I, s:o}", "uptime",
                  (json_int_t)(time(NULL) - a->started), "workers", a->hub->nqueues, "connections",
                  (json_int_t)st->connections, "users", (json_int_t)ec->users, "published",
                  (json_int_t)atomic_load(&as->published), "delivered", (json_int_t)st->delivered,
                  "connections_total", (json_int_t)st->connections_total, "accept_errors",
                  (json_int_t)un->accept_errors, "slow_consumers", (json_int_t)st->slow_consumers,
                  "handshakes_refused", routes_refusals(st), "protocol_errors",
                  routes_by_code(stats_proto_codes, STATS_NPROTO, st->protocol_errors),
                  "api_requests", (json_int_t)atomic_load(&as->requests), "api_errors",
                  routes_by_code(stats_api_statuses, STATS_NAPI, api_errors));
    json_object_set_new(o, "site", json_string(hs->name));
    /* Daemon-wide: with several sites, handshakes no site could be told of (404, timeout). */
    json_object_set_new(o, "unrouted",
                        json_pack("{s:o}", "handshakes_refused", routes_refusals(un)));
    json_object_set_new(o, "last_minute", routes_last_minute(hs));
    json_object_set_new(o, "channels", json_integer((json_int_t)ec->channels));
    json_object_set_new(o, "subscriptions", json_integer((json_int_t)st->subscriptions));
    json_object_set_new(o, "client_errors", routes_client_errors(st));
    json_object_set_new(o, "rpc", routes_rpc(a, site, st));
    json_object_set_new(o, "history", routes_history(&ec->history));
    json_object_set_new(
        o, "engine",
        json_pack("{s:s, s:b}", "name", a->hub->engine->ops->name, "available", w.err == ENG_OK));
    json_object_set_new(o, "recoveries",
                        json_pack("{s:I, s:I}", "ok", (json_int_t)st->recoveries_ok, "failed",
                                  (json_int_t)st->recoveries_failed));
    routes_ok(resp, o);
    cmd_job_free(job);
}

/* GET /metrics: the site's series in Prometheus' text format. */
static void routes_metrics(struct api *a, int site, struct api_response *resp)
{
    struct metrics_buf b;

    metrics_buf_init(&b);
    scrape_write(a, site, &b);
    resp->status = 200;
    resp->type = METRICS_CONTENT_TYPE;
    resp->body = b.p;
}

void api_route(struct api *a, int site, const char *method, const char *path, const char *query,
               const char *body, size_t len, struct api_response *resp)
{
    if (strcmp(path, "/publish") == 0) {
        if (strcmp(method, "POST") != 0) {
            resp->allow = "POST";
            api_error(resp, 405, "use POST for /publish");
            return;
        }
        routes_publish(a, site, body, len, resp);
    } else if (strcmp(path, "/health") == 0 || strcmp(path, "/stats") == 0 ||
               strcmp(path, "/presence") == 0 || strcmp(path, "/metrics") == 0) {
        if (strcmp(method, "GET") != 0) {
            resp->allow = "GET";
            api_error(resp, 405, "use GET for %s", path);
            return;
        }
        if (path[1] == 'h')
            routes_health(a, site, resp);
        else if (path[1] == 'p')
            routes_presence(a, site, query, resp);
        else if (path[1] == 'm')
            routes_metrics(a, site, resp);
        else
            routes_stats(a, site, resp);
    } else {
        api_error(resp, 404, "no such endpoint: %.100s", path);
    }
}
