/*
 * site.h -- what every thread shares about one site ([site NAME] in the
 * config) outside the engine: its name, its PHP calls in flight, and what
 * it published and delivered over the last minute. Where its users,
 * channels and presence members are is the engine's (engine.h).
 *
 * Owns:       struct site: the name, the RPC count, the two rates.
 * Called by:  main.c makes one per configured site, in the config's order,
 *             before any thread starts, and frees them after every thread
 *             has ended; conn.c, client.c and lib/api/routes.c reach a site
 *             through hub->sites[index], index being the connection's
 *             (conn->site) or the API socket's site; rpc.c through its
 *             context.
 *             The rates: lib/api/routes.c adds each publish, worker.c the
 *             frames each publish job queued, routes.c sums both for /stats.
 * Invariants: rpc_inflight and the rates are atomic; the name never changes.
 */
#ifndef HERALD_SITE_H
#define HERALD_SITE_H

#include <stdatomic.h>

#include "rate.h"

struct site {
    char *name;              /* owned: as in the config; "default" without [site] sections */
    atomic_int rpc_inflight; /* PHP calls in flight for this site, every worker (rpc.c) */
    struct rate published;   /* messages this node's API accepted, by second (rate.h) */
    struct rate delivered;   /* frames queued to this node's connections, by second */
};

/* Name a site, with no call in flight and nothing counted. */
void site_init(struct site *s, const char *name);

/* Free a site's name; no thread may use it any more. */
void site_free(struct site *s);

#endif
