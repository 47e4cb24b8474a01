/*
 * rpc.h -- calls from Herald to PHP: a FastCGI client of php-fpm on the
 * worker's libev loop (docs/protocol.md, section 3).
 *
 * Owns:       struct rpc_call: its socket, watchers, request and answer
 *             buffers, from rpc_start until its result is handed on.
 * Called by:  client.c on the owning worker's thread; the worker frees
 *             what is left at exit with rpc_abort_all.
 * Invariants: nothing here blocks: the connect, the writes and the reads
 *             are all non-blocking and driven by the loop, and every call
 *             ends within rpc_timeout. A call ends exactly once, through
 *             client_rpc_done, and is freed right after it returns. Each
 *             site's rpc_inflight (site.h) counts its calls between
 *             start and end, so one site's calls cannot take another's.
 */
#ifndef HERALD_RPC_H
#define HERALD_RPC_H

#include <stddef.h>

#include <ev.h>
#include <jansson.h>

#include "fcgi_client.h"
#include "proto.h"

struct worker;
struct conn;

enum rpc_kind {
    RPC_CALL,    /* a client's {"op":"rpc"} */
    RPC_CONNECT, /* hooks */
    RPC_DISCONNECT,
    RPC_SUBSCRIBE,
};

struct rpc_call {
    struct rpc_call *conn_next; /* borrowed: the connection's next call */
    struct rpc_call *wnext;     /* borrowed: the worker's list of calls */
    struct rpc_call *wprev;     /* borrowed */
    struct conn *conn;          /* borrowed: the caller; NULL once it is gone */
    enum rpc_kind kind;
    json_t *ref;      /* owned: the command's ref, or NULL */
    char *channel;    /* owned: RPC_SUBSCRIBE's channel */
    char *since;      /* owned: RPC_SUBSCRIBE's since, or NULL */
    struct worker *w; /* borrowed */
    int site;         /* the site whose PHP answers (cfg->sites index) */
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
    const char *body; /* borrowed: the JSON text, valid until client_rpc_done returns */
    size_t body_len;
    const json_t *answer; /* borrowed: body parsed, when err is PROTO_OK */
};

/*
 * Start a call of this kind to site's PHP, for conn c (NULL for a hook) with
 * body (stolen: the request's JSON object, to which "type" and "time" are
 * added). Returns the call, or NULL with *err set: PROTO_E_RPC_BUSY over
 * the site's rpc_max_inflight, PROTO_E_RPC_UNAVAILABLE when no socket can be made.
 * Counted here, once: a hook over rpc_max_inflight as rpc_dropped, a call
 * that cannot reach php-fpm as rpc_failed.
 */
struct rpc_call *rpc_start(struct worker *w, int site, enum rpc_kind kind, struct conn *c,
                           json_t *body, enum proto_err *err);

/* End every call still in flight without a result (worker exit). */
void rpc_abort_all(struct worker *w);

#endif
