/*
 * stats.c -- counter helpers for /stats.
 *
 * Owns:       the tables of counted close codes and API statuses.
 * Called by:  conn.c (worker thread), lib/api/routes.c (API threads).
 * Invariants: struct stats is touched by its worker only; struct stats_api
 *             only through atomics.
 */
#include "stats.h"

#include <stddef.h>

const int stats_proto_codes[STATS_NPROTO] = {1002, 1007, 1009};
const int stats_api_statuses[STATS_NAPI] = {400, 403, 404, 405, 408, 413, 431, 503};

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
}
