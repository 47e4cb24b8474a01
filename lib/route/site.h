/*
 * site.h -- what every thread shares about one site ([site NAME] in the
 * config): its name, the tables that say where its users, channels and
 * presence members are, and its PHP calls in flight.
 *
 * Owns:       struct site: the name, the three tables, the RPC count.
 * Called by:  main.c makes one per configured site, in the config's order,
 *             before any thread starts, and frees them after every thread
 *             has ended; conn.c, client.c, pub.c, rpc.c and lib/api/routes.c reach a
 *             site through hub->sites[index], index being the connection's
 *             (conn->site) or the API socket's site.
 * Invariants: sites are isolated by construction, not by checks: a site's
 *             users, channels and members live only in its own tables, so
 *             a lookup made for site A cannot find anything of site B. The
 *             tables lock themselves (dir.h, pres.h), rpc_inflight is an atomic;
 *             the name never changes.
 */
#ifndef HERALD_SITE_H
#define HERALD_SITE_H

#include <stdatomic.h>

#include "dir.h"
#include "pres.h"

struct site {
    char *name;              /* owned: as in the config; "default" without [site] sections */
    struct dir users;        /* which workers hold which users */
    struct dir chans;        /* which workers hold which channels */
    struct pres pres;        /* presence members */
    atomic_int rpc_inflight; /* PHP calls in flight for this site, every worker (rpc.c) */
};

/* Prepare a site's empty tables. */
void site_init(struct site *s, const char *name);

/* Free a site's tables; no thread may use them any more. */
void site_free(struct site *s);

#endif
