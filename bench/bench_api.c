/*
 * bench_api.c -- micro-benchmarks of what one publish costs on the API
 * side: libfcgi reading the FastCGI request, then api_route validating it,
 * encoding the frame and handing it to the workers.
 *
 * Owns:       a socketpair standing in for the PHP client's connection, an
 *             FCGX_Request, a struct api with a development cfg, and one
 *             fake worker thread; all released before main returns.
 * Called by:  make bench (build/bench/bench_api); run it by hand as well.
 * Invariants: the request bytes are encoded once, as php-client/src/
 *             FastCgi.php encodes them (BEGIN_REQUEST, PARAMS, STDIN, each
 *             stream closed by an empty record), and written to the client
 *             end before each iteration, outside the timing. The server end
 *             is handed to libfcgi the way lib/api/api.c does it: ipcFd preset,
 *             keepConnection = 1, then FCGX_Accept_r. What is timed is
 *             FCGX_Accept_r through FCGX_Finish_r, including what api.c's
 *             api_handle does to read the request (the three parameters it
 *             looks up, a copy of the path, the body into a malloc'd buffer);
 *             each iteration takes its own two clock readings, and the cost
 *             of one reading (measured at start) is taken off per iteration.
 *             The response is not written: FCGX_Finish_r sends only the empty
 *             STDOUT and the END_REQUEST records. The fake worker is
 *             tests/unit/test_cmd.c's: an ev_loop, a cmd_queue, and a wakeup
 *             callback that counts one delivery per target user and finishes
 *             the job; it touches no connection, so api_route's figure is
 *             validation, JSON envelope, msg encode and the cross-thread
 *             round trip, and nothing of the delivery itself.
 * Errors:     any set-up step or a request that does not read back as it
 *             was written aborts the program (bench_fail).
 *
 * Cases:
 *   fcgi, fd closed    BEGIN_REQUEST flags 0, as the PHP client sends it:
 *                      FCGX_Finish_r closes the fd through libfcgi's
 *                      OS_IpcClose, which shuts down the write side and
 *                      waits (poll, up to 2 s) for the client's EOF before
 *                      close. The client end is half-closed right after the
 *                      write, so that wait ends at once; a fresh socketpair
 *                      per iteration, outside the timing, stands in for
 *                      accept().
 *   fcgi, fd kept      FCGI_KEEP_CONN set (nginx's fastcgi_keep_conn): one
 *                      socketpair for every iteration, no close.
 *   api_route          POST /publish of the same body: one user, one event,
 *                      one fake worker.
 *   cmd round trip     cmd_submit + cmd_job_wait of an empty one-item
 *                      publish job: api_route's cross-thread part alone.
 *   api_route, none    the same call with a hub of no queues, so the job is
 *                      complete when submitted: api_route without the
 *                      cross-thread part (validation, envelope, msg_new, job
 *                      allocation, the JSON answer).
 */
#include "bench.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <ev.h>
#include <fastcgi.h>
#include <fcgiapp.h>

#include "api.h"
#include "cfg.h"
#include "cmd.h"
#include "engine.h"
#include "hist.h"
#include "site.h"

#include "../tests/lib/fake_worker.h"

static const char body[] =
    "{\"users\":[\"user-48213\"],\"event\":\"order.shipped\",\"data\":{\"id\":7,\"status\":"
    "\"shipped\",\"carrier\":\"DHL\",\"eta\":\"2024-05-02\",\"items\":3,\"total\":\"59.90\"}}";

/* A growing byte buffer for the encoded request. */
struct bytes {
    uint8_t p[4096];
    size_t len;
};

static void put(struct bytes *b, const void *p, size_t n)
{
    if (n == 0)
        return;
    if (b->len + n > sizeof b->p)
        bench_fail("request over %zu bytes", sizeof b->p);
    memcpy(b->p + b->len, p, n);
    b->len += n;
}

/* One record of request id 1, padded to a multiple of 8 bytes. */
static void put_record(struct bytes *b, int type, const void *content, size_t len)
{
    static const uint8_t zeros[8];
    FCGI_Header h = {
        .version = FCGI_VERSION_1,
        .type = (unsigned char)type,
        .requestIdB0 = 1,
        .contentLengthB1 = (unsigned char)(len >> 8),
        .contentLengthB0 = (unsigned char)len,
        .paddingLength = (unsigned char)((8 - len % 8) % 8),
    };

    put(b, &h, sizeof h);
    put(b, content, len);
    put(b, zeros, h.paddingLength);
}

/* A name-value pair length: one byte under 128, else four with the top bit set. */
static void put_nv_len(struct bytes *b, size_t n)
{
    uint8_t l4[4] = {(uint8_t)(n >> 24 | 0x80), (uint8_t)(n >> 16), (uint8_t)(n >> 8), (uint8_t)n};
    uint8_t l1 = (uint8_t)n;

    if (n < 128)
        put(b, &l1, 1);
    else
        put(b, l4, 4);
}

/* FastCgi::encodeRequest(FastCgi::params('POST', '/publish', body), body). */
static void encode_request(struct bytes *out, int flags)
{
    char cl[32];
    const char *params[][2] = {
        {"GATEWAY_INTERFACE", "CGI/1.1"},     {"SERVER_PROTOCOL", "HTTP/1.1"},
        {"REQUEST_METHOD", "POST"},           {"SCRIPT_NAME", "/publish"},
        {"REQUEST_URI", "/publish"},          {"QUERY_STRING", ""},
        {"CONTENT_TYPE", "application/json"}, {"CONTENT_LENGTH", cl},
    };
    FCGI_BeginRequestBody begin = {.roleB0 = FCGI_RESPONDER, .flags = (unsigned char)flags};
    struct bytes pairs = {.len = 0};

    snprintf(cl, sizeof cl, "%zu", sizeof body - 1);
    for (size_t i = 0; i < sizeof params / sizeof params[0]; i++) {
        put_nv_len(&pairs, strlen(params[i][0]));
        put_nv_len(&pairs, strlen(params[i][1]));
        put(&pairs, params[i][0], strlen(params[i][0]));
        put(&pairs, params[i][1], strlen(params[i][1]));
    }
    out->len = 0;
    put_record(out, FCGI_BEGIN_REQUEST, &begin, sizeof begin);
    put_record(out, FCGI_PARAMS, pairs.p, pairs.len);
    put_record(out, FCGI_PARAMS, NULL, 0);
    put_record(out, FCGI_STDIN, body, sizeof body - 1);
    put_record(out, FCGI_STDIN, NULL, 0);
}

struct fcgi_case {
    struct bytes req; /* the encoded request */
    int keep;         /* 1: FCGI_KEEP_CONN, one socketpair throughout */
    int sv[2];        /* server end, client end (kept case only) */
    FCGX_Request fcgx;
    size_t max_body;      /* cfg->api_max_body */
    double clock_cost;    /* ns one bench_now_ns() adds to a timed span */
    uint8_t answer[4096]; /* what the last iteration sent back */
    size_t answer_len;
};

/*
 * What api_handle does up to api_route: accept the request, look up its
 * parameters, copy the path, read the body; then finish it. Returns the
 * body length (or fails), adding what it read to *acc.
 */
static size_t read_request(struct fcgi_case *c, uint64_t *acc)
{
    const char *method, *script, *cl;
    size_t cap = 4096, n = 0;
    char *buf, *path;
    int r;

    if (FCGX_Accept_r(&c->fcgx) < 0)
        bench_fail("FCGX_Accept_r failed");
    method = FCGX_GetParam("REQUEST_METHOD", c->fcgx.envp);
    script = FCGX_GetParam("SCRIPT_NAME", c->fcgx.envp);
    cl = FCGX_GetParam("CONTENT_LENGTH", c->fcgx.envp);
    if (method == NULL || script == NULL || cl == NULL || strtoull(cl, NULL, 10) > c->max_body)
        bench_fail("request parameters did not come through");
    path = strdup(script);
    buf = malloc(cap + 1);
    if (path == NULL || buf == NULL)
        bench_fail("out of memory");
    while ((r = FCGX_GetStr(buf + n, (int)(cap - n), c->fcgx.in)) > 0)
        n += (size_t)r;
    buf[n] = '\0';
    *acc += n + (unsigned char)method[0] + (unsigned char)path[1] + (unsigned char)buf[n / 2];
    if (n != sizeof body - 1 || memcmp(buf, body, n) != 0)
        bench_fail("body read back as %zu bytes", n);
    free(buf);
    free(path);
    FCGX_Finish_r(&c->fcgx);
    return n;
}

/* Write all of p to fd (a blocking socket). */
static void write_all(int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);

        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            bench_fail("write: %s", strerror(errno));
        p += w;
        n -= (size_t)w;
    }
}

/* Read what libfcgi answered: to EOF, or (kept) what is there now. */
static void drain(struct fcgi_case *c, int fd)
{
    c->answer_len = 0;
    for (;;) {
        uint8_t tmp[4096];
        ssize_t r = recv(fd, tmp, sizeof tmp, c->keep ? MSG_DONTWAIT : 0);

        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && c->keep && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (r < 0)
            bench_fail("recv: %s", strerror(errno));
        if (r == 0)
            return;
        if (c->answer_len + (size_t)r <= sizeof c->answer) {
            memcpy(c->answer + c->answer_len, tmp, (size_t)r);
            c->answer_len += (size_t)r;
        }
    }
}

static uint64_t run_fcgi(void *ctx, uint64_t n)
{
    struct fcgi_case *c = ctx;
    uint64_t spent = 0, acc = 0, clock;

    for (uint64_t i = 0; i < n; i++) {
        int client;
        uint64_t t0, t1;

        if (c->keep) {
            client = c->sv[1];
            c->fcgx.ipcFd = c->sv[0];
        } else {
            int sv[2];

            if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
                bench_fail("socketpair: %s", strerror(errno));
            client = sv[1];
            c->fcgx.ipcFd = sv[0];
        }
        write_all(client, c->req.p, c->req.len);
        if (!c->keep)
            shutdown(client, SHUT_WR);
        c->fcgx.keepConnection = 1; /* as api.c does for a freshly accepted fd */
        t0 = bench_now_ns();
        read_request(c, &acc);
        t1 = bench_now_ns();
        spent += t1 - t0;
        drain(c, client);
        if (!c->keep)
            close(client);
    }
    bench_sink += acc;
    clock = (uint64_t)(c->clock_cost * (double)n);
    return spent > clock ? spent - clock : 0;
}

/* Check the last answer ends with END_REQUEST, and the fd's fate. */
static void check_answer(const struct fcgi_case *c)
{
    const FCGI_Header *h;

    if (c->answer_len < 16)
        bench_fail("answer of %zu bytes", c->answer_len);
    h = (const FCGI_Header *)(c->answer + c->answer_len - 16);
    if (h->type != FCGI_END_REQUEST)
        bench_fail("answer does not end with END_REQUEST");
    if (c->keep ? c->fcgx.ipcFd != c->sv[0] : c->fcgx.ipcFd != -1)
        bench_fail("ipcFd is %d after FCGX_Finish_r", c->fcgx.ipcFd);
}

static void bench_fcgi(size_t max_body, double clock_cost)
{
    static struct fcgi_case c; /* static: FCGX_Request and the buffers are large */
    char name[128];

    if (FCGX_Init() != 0)
        bench_fail("FCGX_Init failed");
    for (int keep = 0; keep <= 1; keep++) {
        memset(&c, 0, sizeof c);
        c.keep = keep;
        c.max_body = max_body;
        c.clock_cost = clock_cost;
        encode_request(&c.req, keep ? FCGI_KEEP_CONN : 0);
        FCGX_InitRequest(&c.fcgx, -1, 0);
        if (keep && socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, c.sv) != 0)
            bench_fail("socketpair: %s", strerror(errno));
        run_fcgi(&c, 1);
        check_answer(&c);
        snprintf(name, sizeof name,
                 "FCGX_Accept_r..FCGX_Finish_r, one publish (%zu B request, %zu B body, %s)",
                 c.req.len, sizeof body - 1,
                 keep ? "FCGI_KEEP_CONN, fd kept" : "PHP client's flags 0, fd closed");
        bench_run_timed(name, run_fcgi, &c, c.req.len);
        if (keep) {
            close(c.sv[0]);
            close(c.sv[1]);
        }
        c.fcgx.ipcFd = -1;
        FCGX_Free(&c.fcgx, 0);
    }
}

/* The fake worker's job: one delivery per target user. */
static void deliver_one_each(struct fake_worker *w, struct cmd_job *job)
{
    if (job->type != CMD_PUBLISH)
        return;
    pthread_mutex_lock(&job->lock);
    for (size_t i = 0; i < job->nitems; i++)
        job->delivered[i] += job->items[i].nusers;
    pthread_mutex_unlock(&job->lock);
}

static void run_route(void *ctx, uint64_t n)
{
    struct api *a = ctx;
    uint64_t acc = 0;

    for (uint64_t i = 0; i < n; i++) {
        struct api_response resp = {0};

        api_route(a, 0, "POST", "/publish", "", body, sizeof body - 1, &resp);
        acc += (uint64_t)resp.status + (unsigned char)resp.body[0];
        free(resp.body);
    }
    bench_sink += acc;
}

static void run_round_trip(void *ctx, uint64_t n)
{
    const struct cmd_hub *hub = ctx;
    uint64_t acc = 0;

    for (uint64_t i = 0; i < n; i++) {
        struct cmd_job *job = cmd_job_new(CMD_PUBLISH, hub->nqueues, 1);

        cmd_submit(hub, job);
        cmd_job_wait(job);
        acc += job->delivered[0] + (uint64_t)job->pending;
        cmd_job_free(job);
    }
    bench_sink += acc;
}

/* One api_route call outside the timing, to check the answer. */
static void check_route(struct api *a, const char *want)
{
    struct api_response resp = {0};

    api_route(a, 0, "POST", "/publish", "", body, sizeof body - 1, &resp);
    if (resp.status != 200 || strcmp(resp.body, want) != 0)
        bench_fail("api_route answered %d %s", resp.status, resp.body);
    free(resp.body);
}

static void bench_route(const struct cfg *cfg)
{
    struct fake_worker w;
    struct cmd_queue *qs[1];
    struct cmd_hub hub = {0}, none = {.queues = NULL, .nqueues = 0};
    struct hist hist;
    const char *names[] = {"default"};
    const size_t budgets[] = {64u << 20};
    struct api_site asite = {.lfd = -1};
    struct eng_stream user = {0, 'u', "user-48213"};
    struct engine *engine, *engine_none;
    struct site site;
    struct api a;
    char name[128];

    memset(&w, 0, sizeof w);
    memset(&a, 0, sizeof a);
    /* The target user is online at worker 0, so the publish wakes it. */
    site_init(&site, "default");
    /* History on, as by default: each publish is numbered and kept. */
    hist_init(&hist, 100, 300, 1, names, budgets);
    engine = eng_memory_new(&hist, 1, names, 1, cmd_deliver, NULL, &hub);
    engine_none = eng_memory_new(&hist, 1, names, 0, cmd_deliver, NULL, &none);
    eng_hold(engine, &user, 0, 1);
    eng_hold(engine_none, &user, 0, 1);
    fake_workers_start(&w, 1, qs, &hub, deliver_one_each);
    hub.sites = &site;
    hub.nsites = 1;
    hub.engine = engine;
    none.sites = &site;
    none.nsites = 1;
    none.engine = engine_none;
    a.cfg = cfg;
    a.hub = &hub;
    a.sites = &asite;
    a.nsites = 1;
    a.started = time(NULL);
    check_route(&a, "{\"ok\":true,\"delivered\":1}");
    snprintf(name, sizeof name, "api_route POST /publish (1 user, %zu B body, 1 fake worker)",
             sizeof body - 1);
    bench_run(name, run_route, &a, 0);
    bench_run("cmd_submit + cmd_job_wait (1 fake worker, empty publish job)", run_round_trip, &hub,
              0);
    fake_workers_stop(&w, 1, &hub);

    /* No worker: the job is done as soon as it is submitted. */
    a.hub = &none;
    check_route(&a, "{\"ok\":true,\"delivered\":0}");
    snprintf(name, sizeof name, "api_route POST /publish (1 user, %zu B body, 0 workers)",
             sizeof body - 1);
    bench_run(name, run_route, &a, 0);
    /* The user offline: the directory says so and no worker is woken. */
    eng_hold(engine, &user, 0, 0);
    a.hub = &hub;
    check_route(&a, "{\"ok\":true,\"delivered\":0}");
    snprintf(name, sizeof name, "api_route POST /publish (1 offline user, %zu B body)",
             sizeof body - 1);
    bench_run(name, run_route, &a, 0);
    site_free(&site);
    eng_free(engine);
    eng_free(engine_none);
    hist_free(&hist);
}

int main(void)
{
    char arg0[] = "bench_api";
    char *argv[] = {arg0, NULL};
    struct cfg cfg;
    enum cfg_action action;
    char *cause = NULL;
    double clock_cost = bench_clock_cost_ns();

    if (cfg_load(1, argv, &cfg, &action, &cause) != 0 || action != CFG_RUN)
        bench_fail("cfg_load: %s", cause ? cause : "no configuration");
    bench_fcgi(cfg.sites[0]->api_max_body, clock_cost);
    bench_route(&cfg);
    cfg_free(&cfg);
    return 0;
}
