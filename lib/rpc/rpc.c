/*
 * rpc.c -- calls to PHP through php-fpm, without blocking (see rpc.h).
 *
 * Owns:       struct rpc_call and everything in it.
 * Called by:  client.c (start) and worker.c (its context, abort at exit),
 *             on the owning worker's thread; the loop drives each call through
 *             connect, write, read, and ends it on the answer, an error or
 *             the timer.
 * Invariants: one FastCGI request per connection (no keep-conn), so a
 *             call owns its socket and a failure never touches another
 *             call. rpc_end is the only way out: it stops the watchers,
 *             closes the socket, settles the counters and hands the
 *             result to the context's done callback before freeing the call.
 */
#include "rpc.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "cfg.h"
#include "log.h"
#include "net.h"
#include "proto.h"
#include "xmalloc.h"

#define RPC_REQUEST_ID 1
#define RPC_READ_CHUNK 16384

static const char *const rpc_kind_names[] = {"rpc", "connect", "disconnect", "subscribe"};

static void rpc_on_io(struct ev_loop *loop, ev_io *io, int revents);
static void rpc_on_timeout(struct ev_loop *loop, ev_timer *t, int revents);

/* Hex HMAC-SHA256 of body with the secret into hex (65 bytes). */
static int rpc_sign(const struct cfg_site *cfg, const char *body, size_t len, char hex[65])
{
    unsigned char mac[32];
    unsigned int mac_len = 0;

    if (HMAC(EVP_sha256(), cfg->secret, (int)cfg->secret_len, (const unsigned char *)body, len, mac,
             &mac_len) == NULL ||
        mac_len != sizeof mac)
        return -1;
    for (size_t i = 0; i < sizeof mac; i++)
        snprintf(hex + 2 * i, 3, "%02x", mac[i]);
    return 0;
}

/* Encode the FastCGI request for body into call->req. Returns 0 or -1. */
static int rpc_encode(struct rpc_call *call, const char *body, size_t len)
{
    const struct cfg_site *cfg = call->x->cfg->sites[call->site];
    char sig[65], clen[24], uri[32];
    struct fcgic_param p[12];
    size_t n = 0;

#define RPC_PARAM(k, v)                                                                            \
    (p[n].name = (k), p[n].name_len = strlen(k), p[n].value = (v), p[n].value_len = strlen(v), n++)
    if (rpc_sign(cfg, body, len, sig) < 0)
        return -1;
    snprintf(clen, sizeof clen, "%zu", len);
    snprintf(uri, sizeof uri, "/herald/%s", rpc_kind_names[call->kind]);
    RPC_PARAM("SCRIPT_FILENAME", cfg->rpc_script);
    RPC_PARAM("SCRIPT_NAME", uri);
    RPC_PARAM("REQUEST_URI", uri);
    RPC_PARAM("QUERY_STRING", "");
    RPC_PARAM("REQUEST_METHOD", "POST");
    RPC_PARAM("CONTENT_TYPE", "application/json");
    RPC_PARAM("CONTENT_LENGTH", clen);
    RPC_PARAM("SERVER_SOFTWARE", "herald/" HERALD_VERSION);
    RPC_PARAM("GATEWAY_INTERFACE", "CGI/1.1");
    RPC_PARAM("SERVER_PROTOCOL", "HTTP/1.1");
    RPC_PARAM("REMOTE_ADDR", "127.0.0.1");
    RPC_PARAM("HERALD_SIGNATURE", sig);
#undef RPC_PARAM
    return fcgic_encode(RPC_REQUEST_ID, p, n, body, len, &call->req, &call->req_len);
}

/* Link call onto the context's list. */
static void rpc_link(struct rpc_ctx *x, struct rpc_call *call)
{
    call->wprev = NULL;
    call->wnext = x->calls;
    if (x->calls != NULL)
        x->calls->wprev = call;
    x->calls = call;
}

/* Take call off the context's list. */
static void rpc_unlink(struct rpc_ctx *x, struct rpc_call *call)
{
    if (call->wprev != NULL)
        call->wprev->wnext = call->wnext;
    else
        x->calls = call->wnext;
    if (call->wnext != NULL)
        call->wnext->wprev = call->wprev;
}

/* Stop, close and free call; no result is handed on. */
static void rpc_free(struct rpc_call *call)
{
    struct rpc_ctx *x = call->x;

    ev_io_stop(x->loop, &call->io);
    ev_timer_stop(x->loop, &call->timer);
    if (call->fd >= 0)
        close(call->fd);
    rpc_unlink(x, call);
    atomic_fetch_sub(x->sites[call->site].inflight, 1);
    fcgic_parser_free(&call->parser);
    json_decref(call->ref);
    free(call->channel);
    free(call->since);
    free(call->req);
    free(call);
}

/* End call with res: count it, hand it to client.c, free it. */
static void rpc_end(struct rpc_call *call, struct rpc_result *res)
{
    struct rpc_counts *n = call->x->sites[call->site].counts;

    if (res->err != PROTO_OK) {
        n->failed++;
        log_msg(LOG_WARN, "rpc", "%s call failed: %s: %s", rpc_kind_names[call->kind],
                proto_err_name(res->err), res->why);
    } else if (res->status / 100 == 2) {
        n->replies++;
    } else {
        n->app_errors++;
    }
    call->x->done(call, res);
    rpc_free(call);
}

/* End call with a failure of Herald's own. */
static void rpc_fail(struct rpc_call *call, enum proto_err e, const char *fmt, const char *arg)
{
    struct rpc_result res;

    memset(&res, 0, sizeof res);
    res.err = e;
    snprintf(res.why, sizeof res.why, fmt, arg);
    rpc_end(call, &res);
}

void rpc_ctx_init(struct rpc_ctx *x, struct ev_loop *loop, const struct cfg *cfg, rpc_done_fn *done,
                  int nsites)
{
    memset(x, 0, sizeof *x);
    x->loop = loop;
    x->cfg = cfg;
    x->done = done;
    x->sites = xcalloc((size_t)nsites, sizeof *x->sites);
    x->nsites = nsites;
}

void rpc_ctx_site(struct rpc_ctx *x, int site, struct rpc_counts *counts, atomic_int *inflight)
{
    x->sites[site].counts = counts;
    x->sites[site].inflight = inflight;
}

struct rpc_call *rpc_start(struct rpc_ctx *x, int site, enum rpc_kind kind, struct conn *c,
                           json_t *body, enum proto_err *err)
{
    const struct cfg_site *cfg = x->cfg->sites[site];
    struct rpc_counts *n = x->sites[site].counts;
    atomic_int *inflight = x->sites[site].inflight;
    struct rpc_call *call;
    char *text, *cause = NULL;
    int r;

    if (atomic_fetch_add(inflight, 1) >= cfg->rpc_max_inflight) {
        atomic_fetch_sub(inflight, 1);
        json_decref(body);
        /* A client's call is answered rpc_busy (a client error); a hook is dropped. */
        if (kind == RPC_CONNECT || kind == RPC_DISCONNECT)
            n->dropped++;
        *err = PROTO_E_RPC_BUSY;
        return NULL;
    }
    json_object_set_new(body, "type", json_string(rpc_kind_names[kind]));
    json_object_set_new(body, "time", json_integer((json_int_t)time(NULL)));
    text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    call = xcalloc(1, sizeof *call);
    call->x = x;
    call->site = site;
    call->kind = kind;
    call->conn = c;
    call->fd = -1;
    fcgic_parser_init(&call->parser, RPC_REQUEST_ID, x->cfg->max_message_size + FCGIC_MAX_HEAD);
    rpc_link(x, call);
    n->calls++;
    r = text != NULL ? rpc_encode(call, text, strlen(text)) : -1;
    free(text);
    if (r == 0)
        call->fd = net_connect(cfg->rpc_socket, &cause);
    if (call->fd < 0) {
        log_msg(LOG_WARN, "rpc", "cannot reach php-fpm: %s", cause != NULL ? cause : "encode");
        free(cause);
        n->failed++;
        rpc_free(call);
        *err = PROTO_E_RPC_UNAVAILABLE;
        return NULL;
    }
    ev_io_init(&call->io, rpc_on_io, call->fd, EV_WRITE);
    ev_io_start(x->loop, &call->io);
    ev_timer_init(&call->timer, rpc_on_timeout, cfg->rpc_timeout_ms / 1000.0, 0.);
    ev_timer_start(x->loop, &call->timer);
    return call;
}

void rpc_ctx_free(struct rpc_ctx *x)
{
    while (x->calls != NULL) {
        x->sites[x->calls->site].counts->failed++;
        rpc_free(x->calls);
    }
    free(x->sites);
    x->sites = NULL;
    x->nsites = 0;
}

/* The request is written: now wait for the answer. */
static void rpc_write(struct rpc_call *call)
{
    while (call->req_off < call->req_len) {
        ssize_t n = write(call->fd, call->req + call->req_off, call->req_len - call->req_off);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n < 0) {
            rpc_fail(call, PROTO_E_RPC_UNAVAILABLE, "php-fpm: %s", strerror(errno));
            return;
        }
        call->req_off += (size_t)n;
    }
    ev_io_stop(call->x->loop, &call->io);
    ev_io_set(&call->io, call->fd, EV_READ);
    ev_io_start(call->x->loop, &call->io);
}

/* Does PHP's error answer carry a valid {"code": ...} (herald_rpc_error)? */
static int rpc_app_error_ok(const json_t *answer)
{
    const char *code = json_string_value(json_object_get(answer, "code"));

    return code != NULL && proto_code_valid(code, strlen(code));
}

/* The answer is complete: check it and end the call. */
static void rpc_answered(struct rpc_call *call)
{
    struct fcgic_parser *p = &call->parser;
    struct fcgic_response r;
    struct rpc_result res;
    json_t *answer;
    char status[16];

    if (p->err_len > 0) {
        /* PHP's stderr may hold newlines: keep the log at one line per event. */
        for (char *s = p->err; *s != '\0'; s++)
            if ((unsigned char)*s < 0x20 || *s == 0x7f)
                *s = ' ';
        log_msg(LOG_WARN, "rpc", "%s: php-fpm stderr: %s",
                call->x->cfg->sites[call->site]->rpc_script, p->err);
    }
    if (p->protocol_status != FCGIC_REQUEST_COMPLETE) {
        rpc_fail(call, PROTO_E_RPC_UNAVAILABLE, "%s", "php-fpm refused the request (overloaded)");
        return;
    }
    if (fcgic_parse_response(p->out != NULL ? p->out : "", p->out_len, &r) != 0) {
        rpc_fail(call, PROTO_E_RPC_BAD_REPLY, "%s", "the answer is not a CGI response");
        return;
    }
    memset(&res, 0, sizeof res);
    res.err = PROTO_OK;
    res.status = r.status;
    res.body = r.body;
    res.body_len = r.body_len;
    answer = json_loadb(r.body, r.body_len, JSON_DECODE_ANY, NULL);
    res.answer = answer;
    snprintf(status, sizeof status, "%d", r.status);
    if (r.status / 100 != 2 && !rpc_app_error_ok(res.answer))
        rpc_fail(call, PROTO_E_RPC_FAILED, "the PHP script failed (HTTP %s)", status);
    else if (res.answer == NULL)
        rpc_fail(call, PROTO_E_RPC_BAD_REPLY, "%s", "the PHP script's answer is not JSON");
    else
        rpc_end(call, &res);
    json_decref(answer);
}

/* Read what php-fpm sent; end the call on a whole answer, an error or EOF. */
static void rpc_read(struct rpc_call *call)
{
    char buf[RPC_READ_CHUNK];

    for (;;) {
        ssize_t n = read(call->fd, buf, sizeof buf);
        int r;

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n <= 0) {
            rpc_fail(call, PROTO_E_RPC_FAILED,
                     "php-fpm closed the connection before "
                     "answering%s",
                     n < 0 ? " (reset)" : "");
            return;
        }
        r = fcgic_parser_feed(&call->parser, buf, (size_t)n);
        if (r == FCGIC_DONE) {
            rpc_answered(call);
            return;
        }
        if (r == FCGIC_E_TOO_LARGE) {
            rpc_fail(call, PROTO_E_RPC_BAD_REPLY, "%s", "the answer is over max_message_size");
            return;
        }
        if (r < 0) {
            rpc_fail(call, PROTO_E_RPC_BAD_REPLY, "%s", "php-fpm broke the FastCGI protocol");
            return;
        }
    }
}

/* The socket is ready: finish connecting, write, or read. */
static void rpc_on_io(struct ev_loop *loop, ev_io *io, int revents)
{
    struct rpc_call *call = (struct rpc_call *)((char *)io - offsetof(struct rpc_call, io));
    int soerr = 0;
    socklen_t len = sizeof soerr;

    if (revents & EV_WRITE) {
        if (call->req_off == 0 &&
            (getsockopt(call->fd, SOL_SOCKET, SO_ERROR, &soerr, &len) != 0 || soerr != 0)) {
            rpc_fail(call, PROTO_E_RPC_UNAVAILABLE, "php-fpm: %s", strerror(soerr ? soerr : errno));
            return;
        }
        rpc_write(call);
        return;
    }
    rpc_read(call);
}

/* No whole answer in time. */
static void rpc_on_timeout(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct rpc_call *call = (struct rpc_call *)((char *)t - offsetof(struct rpc_call, timer));

    rpc_fail(call, PROTO_E_RPC_TIMEOUT, "no answer from PHP within %s",
             call->req_off < call->req_len ? "rpc_timeout (still sending)" : "rpc_timeout");
}
