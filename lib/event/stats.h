/*
 * stats.h -- counters for /stats.
 *
 * Owns:       struct stats (one per worker, plain uint64_t: only that
 *             worker's thread writes it) and struct stats_api (shared by
 *             the API threads, atomic).
 * Called by:  conn.c and worker.c bump worker counters; lib/api/ bumps the API
 *             counters; a CMD_STATS job adds every worker's copy together.
 * Invariants: a worker's struct stats is read by other threads only as a
 *             copy the worker made while running the stats command.
 */
#ifndef HERALD_STATS_H
#define HERALD_STATS_H

#include <stdatomic.h>
#include <stdint.h>

#include "handshake.h"
#include "proto.h"
#include "rpc.h"

/* Close codes counted as protocol errors, in this order. */
#define STATS_NPROTO 3
extern const int stats_proto_codes[STATS_NPROTO]; /* 1002, 1007, 1009 */

struct stats {
    uint64_t connections;                         /* open WebSocket connections now */
    uint64_t connections_total;                   /* upgrades since start */
    uint64_t delivered;                           /* frames queued to connections by publishes */
    uint64_t handshakes_refused[HS_REASON_COUNT]; /* by reason */
    uint64_t protocol_errors[STATS_NPROTO];       /* connections we closed, by code */
    uint64_t accept_errors;                       /* accept() failures other than EAGAIN */
    uint64_t slow_consumers;                      /* closed for exceeding max_queued_bytes */
    uint64_t subscriptions;             /* channel subscriptions now (filled for CMD_STATS) */
    uint64_t client_errors[PROTO_NERR]; /* error answers to browser commands, by code */
    struct rpc_counts rpc;              /* calls to PHP (rpc.h) */
    uint64_t recoveries_ok;             /* since given and every missed message replayed */
    uint64_t recoveries_failed;         /* since given but not recoverable: told so */
};

/* HTTP statuses counted as API errors, in this order. */
#define STATS_NAPI 8
extern const int stats_api_statuses[STATS_NAPI]; /* 400, 403, 404, 405, 408, 413, 431, 503 */

struct stats_api {
    atomic_uint_fast64_t requests;  /* FastCGI requests answered */
    atomic_uint_fast64_t published; /* publish items accepted */
    atomic_uint_fast64_t errors[STATS_NAPI];
};

#define STATS_INC(st, field) ((st)->field++)

/* Count a close we initiated with this code; other codes are not errors. */
void stats_count_protocol_error(struct stats *st, int code);

/* Count an API answer with this HTTP status (errors by status). */
void stats_count_api_status(struct stats_api *st, int status);

/* Add every counter of src to dst. */
void stats_add(struct stats *dst, const struct stats *src);

#endif
