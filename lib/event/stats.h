/*
 * stats.h -- counters for /stats and /metrics.
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
#include "histo.h"
#include "proto.h"
#include "rpc.h"

/* Close codes counted as protocol errors, in this order. */
#define STATS_NPROTO 3
extern const int stats_proto_codes[STATS_NPROTO]; /* 1002, 1007, 1009 */

/* What a published message targets: its kind, in this order. */
enum stats_kind { STATS_KIND_USER, STATS_KIND_CHANNEL, STATS_KIND_BROADCAST, STATS_NKIND };
extern const char *const stats_kind_names[STATS_NKIND]; /* "user", "channel", "broadcast" */

/* The kind of a message to a channel (has_channel), to everyone (broadcast) or to users. */
static inline enum stats_kind stats_kind_of(int has_channel, int broadcast)
{
    return has_channel ? STATS_KIND_CHANNEL : broadcast ? STATS_KIND_BROADCAST : STATS_KIND_USER;
}

/* Close codes counted by code, in this order; any other is counted in the last slot. */
#define STATS_NCLOSE 11
extern const int stats_close_codes[STATS_NCLOSE - 1]; /* 1000 ... 1011 */

struct stats {
    uint64_t connections;                         /* open WebSocket connections now */
    uint64_t connections_total;                   /* upgrades since start */
    uint64_t delivered;                           /* frames queued to connections by publishes */
    uint64_t delivered_kind[STATS_NKIND];         /* the same, by the message's kind */
    uint64_t closes[STATS_NCLOSE];                /* open connections ended, by close code */
    struct histo delivery_lag;                    /* frame handed to workers -> written */
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

/* The API's routes, by which /metrics counts requests; anything else is "other". */
enum stats_route {
    STATS_ROUTE_PUBLISH,
    STATS_ROUTE_PRESENCE,
    STATS_ROUTE_HEALTH,
    STATS_ROUTE_STATS,
    STATS_ROUTE_METRICS,
    STATS_ROUTE_OTHER,
    STATS_NROUTE
};
extern const char *const stats_route_names[STATS_NROUTE]; /* "publish", ... "other" */

/* HTTP statuses counted per route, in this order; any other is counted in the last slot. */
#define STATS_NSTATUS 10
extern const int stats_statuses[STATS_NSTATUS - 1]; /* 200, then stats_api_statuses */

struct stats_api {
    atomic_uint_fast64_t requests;  /* FastCGI requests answered */
    atomic_uint_fast64_t published; /* publish items accepted */
    atomic_uint_fast64_t errors[STATS_NAPI];
    atomic_uint_fast64_t published_kind[STATS_NKIND];           /* items accepted, by kind */
    atomic_uint_fast64_t by_route[STATS_NROUTE][STATS_NSTATUS]; /* requests */
    struct histo_shared publish_latency; /* a publish routed -> handed to the workers */
};

#define STATS_INC(st, field) ((st)->field++)

/* Count a close we initiated with this code; other codes are not errors. */
void stats_count_protocol_error(struct stats *st, int code);

/* Count an open connection's end with this close code (1006: it ended without one). */
void stats_count_close(struct stats *st, int code);

/* The route a request path is counted under. */
enum stats_route stats_route_of(const char *path);

/* Count an API answer with this HTTP status (errors by status), on route "other". */
void stats_count_api_status(struct stats_api *st, int status);

/* Count an API answer with this HTTP status on this route. */
void stats_count_api(struct stats_api *st, enum stats_route route, int status);

/* Add every counter of src to dst. */
void stats_add(struct stats *dst, const struct stats *src);

#endif
