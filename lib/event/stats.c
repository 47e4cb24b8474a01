/*
 * stats.c -- counter helpers for /stats and /metrics.
 *
 * Owns:       the tables of counted close codes, kinds, routes and API
 *             statuses: every label /metrics gives comes from one of them,
 *             so the series stay few whatever callers send.
 * Called by:  conn.c (worker thread), lib/api/routes.c (API threads).
 * Invariants: struct stats is touched by its worker only; struct stats_api
 *             only through atomics.
 */
#include "stats.h"

#include <stddef.h>
#include <string.h>

const int stats_proto_codes[STATS_NPROTO] = {1002, 1007, 1009};
const int stats_api_statuses[STATS_NAPI] = {400, 403, 404, 405, 408, 413, 431, 503};
const int stats_statuses[STATS_NSTATUS - 1] = {200, 400, 403, 404, 405, 408, 413, 431, 503};
const char *const stats_kind_names[STATS_NKIND] = {"user", "channel", "broadcast"};
const int stats_close_codes[STATS_NCLOSE - 1] = {1000, 1001, 1002, 1003, 1005,
                                                 1006, 1007, 1008, 1009, 1011};
const char *const stats_route_names[STATS_NROUTE] = {"publish", "presence", "health",
                                                     "stats",   "metrics",  "other"};

/* The slot of value in table (n entries), or n: "other". */
static size_t stats_slot(const int *table, size_t n, int value)
{
    size_t i = 0;

    while (i < n && table[i] != value)
        i++;
    return i;
}

void stats_count_close(struct stats *st, int code)
{
    st->closes[stats_slot(stats_close_codes, STATS_NCLOSE - 1, code)]++;
}

enum stats_route stats_route_of(const char *path)
{
    for (int r = 0; r < STATS_ROUTE_OTHER; r++)
        if (path[0] == '/' && strcmp(path + 1, stats_route_names[r]) == 0)
            return (enum stats_route)r;
    return STATS_ROUTE_OTHER;
}

void stats_count_protocol_error(struct stats *st, int code)
{
    for (size_t i = 0; i < STATS_NPROTO; i++) {
        if (stats_proto_codes[i] == code) {
            st->protocol_errors[i]++;
            return;
        }
    }
}

void stats_count_api_status(struct stats_api *st, int status)
{
    stats_count_api(st, STATS_ROUTE_OTHER, status);
}

void stats_count_api(struct stats_api *st, enum stats_route route, int status)
{
    atomic_fetch_add(&st->by_route[route][stats_slot(stats_statuses, STATS_NSTATUS - 1, status)],
                     1);
    atomic_fetch_add(&st->requests, 1);
    for (size_t i = 0; i < STATS_NAPI; i++) {
        if (stats_api_statuses[i] == status) {
            atomic_fetch_add(&st->errors[i], 1);
            return;
        }
    }
}

void stats_add(struct stats *dst, const struct stats *src)
{
    dst->connections += src->connections;
    dst->connections_total += src->connections_total;
    dst->delivered += src->delivered;
    dst->accept_errors += src->accept_errors;
    dst->slow_consumers += src->slow_consumers;
    dst->subscriptions += src->subscriptions;
    dst->rpc.calls += src->rpc.calls;
    dst->rpc.replies += src->rpc.replies;
    dst->rpc.app_errors += src->rpc.app_errors;
    dst->rpc.failed += src->rpc.failed;
    dst->rpc.dropped += src->rpc.dropped;
    dst->recoveries_ok += src->recoveries_ok;
    dst->recoveries_failed += src->recoveries_failed;
    for (size_t i = 0; i < PROTO_NERR; i++)
        dst->client_errors[i] += src->client_errors[i];
    for (size_t i = 0; i < HS_REASON_COUNT; i++)
        dst->handshakes_refused[i] += src->handshakes_refused[i];
    for (size_t i = 0; i < STATS_NPROTO; i++)
        dst->protocol_errors[i] += src->protocol_errors[i];
    for (size_t i = 0; i < STATS_NKIND; i++)
        dst->delivered_kind[i] += src->delivered_kind[i];
    for (size_t i = 0; i < STATS_NCLOSE; i++)
        dst->closes[i] += src->closes[i];
    histo_add(&dst->delivery_lag, &src->delivery_lag);
}
