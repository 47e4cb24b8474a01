/*
 * rpc.h -- calls from Herald to PHP: a FastCGI client of php-fpm on the
 * worker's libev loop (docs/protocol.md, section 3).
 *
 * Owns:       struct rpc_call: its socket, watchers, request and answer
 *             buffers, from rpc_start until its result is handed on.
 * Called by:  client.c on the owning worker's thread; the worker owns one
 *             struct rpc_ctx and frees what is left at exit with
 *             rpc_ctx_free.
 * Invariants: nothing here blocks: the connect, the writes and the reads
 *             are all non-blocking and driven by the loop, and every call
 *             ends within rpc_timeout. A call ends exactly once, through
 *             the context's done callback, and is freed right after it
 *             returns. Each site's in-flight count (site.h rpc_inflight,
 *             shared by every worker) counts its calls between start and
 *             end, so one site's calls cannot take another's. This layer
 *             knows nothing of workers or connections: the context carries
 *             what a call needs.
 */
#ifndef HERALD_RPC_H
#define HERALD_RPC_H

#include <stddef.h>

#include <ev.h>
#include <jansson.h>

#include "fcgi_client.h"
#include "proto.h"

#include <stdatomic.h>
#include <stdint.h>

struct cfg;
struct conn;
struct rpc_call;
struct rpc_result;

enum rpc_kind {
    RPC_CALL,    /* a client's {"op":"rpc"} */
    RPC_CONNECT, /* hooks */
    RPC_DISCONNECT,
    RPC_SUBSCRIBE,
};

/* A site's RPC counters, part of its /stats (stats.h). */
struct rpc_counts {
    uint64_t calls;      /* requests sent to PHP, hooks included */
    uint64_t replies;    /* 2xx JSON answers */
    uint64_t app_errors; /* herald_rpc_error() answers */
    uint64_t failed;     /* unavailable, timeout, failed, bad reply */
    uint64_t dropped;    /* hooks not sent: over rpc_max_inflight or no socket */
};

/* A call ended with res; the call is freed when this returns. */
typedef void rpc_done_fn(struct rpc_call *call, const struct rpc_result *res);

/* What a call is charged to, per site (the index of cfg->sites). */
struct rpc_site {
    struct rpc_counts *counts; /* borrowed: this thread's counters of the site */
    atomic_int *inflight;      /* borrowed: the site's calls in flight, every thread */
};

/* One thread's calls: its loop, its settings, where results go. */
struct rpc_ctx {
    struct ev_loop *loop;   /* borrowed */
    const struct cfg *cfg;  /* borrowed: the snapshot; its owner keeps it current */
    rpc_done_fn *done;      /* how every call's end is reported */
    struct rpc_site *sites; /* owned: one per configured site */
    int nsites;
    struct rpc_call *calls; /* owned: in flight */
};

struct rpc_call {
    struct rpc_call *conn_next; /* borrowed: the connection's next call */
    struct rpc_call *wnext;     /* borrowed: the context's list of calls */
    struct rpc_call *wprev;     /* borrowed */
    struct conn *conn;          /* borrowed: the caller; NULL once it is gone */
    enum rpc_kind kind;
    json_t *ref;       /* owned: the command's ref, or NULL */
    char *channel;     /* owned: RPC_SUBSCRIBE's channel */
    char *since;       /* owned: RPC_SUBSCRIBE's since, or NULL */
    struct rpc_ctx *x; /* borrowed */
    int site;          /* the site whose PHP answers (cfg->sites index) */
    int fd;
    ev_io io;
    ev_timer timer;
    char *req; /* owned: the encoded FastCGI request */
    size_t req_len;
    size_t req_off; /* bytes written */
    struct fcgic_parser parser;
};

/*
 * How a call ended: err is a Herald failure explained by why; or err is
 * PROTO_OK and PHP answered: a 2xx status with JSON text in
 * body, or another status with {"code","message"} whose code is valid
 * (herald_rpc_error). Any other answer is turned into PROTO_E_RPC_FAILED
 * or PROTO_E_RPC_BAD_REPLY here.
 */
struct rpc_result {
    enum proto_err err;
    char why[128];
    int status;
    const char *body; /* borrowed: the JSON text, valid until the done callback returns */
    size_t body_len;
    const json_t *answer; /* borrowed: body parsed, when err is PROTO_OK */
};

/* Ready x for loop and cfg's sites, each charged to its own counters and count. */
void rpc_ctx_init(struct rpc_ctx *x, struct ev_loop *loop, const struct cfg *cfg, rpc_done_fn *done,
                  int nsites);

/* Charge site's calls to counts and inflight. */
void rpc_ctx_site(struct rpc_ctx *x, int site, struct rpc_counts *counts, atomic_int *inflight);

/*
 * Start a call of this kind to site's PHP, for conn c (NULL for a hook) with
 * body (stolen: the request's JSON object, to which "type" and "time" are
 * added). Returns the call, or NULL with *err set: PROTO_E_RPC_BUSY over
 * the site's rpc_max_inflight, PROTO_E_RPC_UNAVAILABLE when no socket can be made.
 * Counted here, once: a hook over rpc_max_inflight as dropped, a call
 * that cannot reach php-fpm as failed.
 */
struct rpc_call *rpc_start(struct rpc_ctx *x, int site, enum rpc_kind kind, struct conn *c,
                           json_t *body, enum proto_err *err);

/* End every call still in flight without a result (worker exit), and free x's table. */
void rpc_ctx_free(struct rpc_ctx *x);

#endif
