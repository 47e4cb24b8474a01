/*
 * lim.h -- connection limits: in total and per client address, where the
 * client address is the peer's, or the one a trusted proxy forwarded.
 *
 * Owns:       struct lim (an atomic total and striped per-address counts).
 * Called by:  conn.c on worker threads, when a handshake is about to be
 *             accepted and when an open connection leaves.
 * Invariants: a connection is counted from its 101 until it leaves OPEN,
 *             exactly once; an address entry exists while its count is
 *             above zero. X-Forwarded-For is read only when the peer is in
 *             trusted_proxies, so a client cannot choose its own address.
 */
#ifndef HERALD_LIM_H
#define HERALD_LIM_H

#include <pthread.h>
#include <stdatomic.h>

#include <uthash.h>

#include "handshake.h"
#include "http.h"

#define LIM_STRIPES 64
#define LIM_ADDR_MAX 64       /* an IPv6 address as text, or "unix" */

struct cfg;
struct lim_addr;

struct lim {
    atomic_long total;                      /* open connections, every worker */
    pthread_mutex_t lock[LIM_STRIPES];
    struct lim_addr *table[LIM_STRIPES];    /* owned: uthash heads */
};

void lim_init(struct lim *l);

void lim_free(struct lim *l);

/*
 * The client's address for fd and its request head into addr: the peer's,
 * or, when the peer is a trusted proxy, the nearest untrusted address in
 * X-Forwarded-For. Returns 0, or -1 when the peer cannot be read.
 */
int lim_client_addr(const struct cfg *cfg, int fd, const struct http_request *req,
                    char addr[LIM_ADDR_MAX]);

/*
 * Count one more connection from addr (NULL: no per-address limit), or
 * refuse: HS_TOO_MANY over max_connections, HS_ADDR_LIMIT over
 * max_connections_per_ip. HS_OK when counted.
 */
enum hs_reason lim_admit(struct lim *l, const struct cfg *cfg, const char *addr);

/* A counted connection left (addr as given to lim_admit). */
void lim_release(struct lim *l, const char *addr);

#endif
