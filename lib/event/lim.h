/*
 * lim.h -- connection limits: in total, per client address (a count and a
 * rate of new connections), and on the file descriptors WebSockets may
 * take, where the client address is the peer's, or the one a trusted proxy
 * forwarded.
 *
 * Owns:       struct lim (atomic totals and striped per-address entries).
 * Called by:  conn.c on worker threads: at accept (file descriptors, and
 *             the per-address check of a peer that is not a trusted
 *             proxy), at the upgrade (the total, and the per-address check
 *             of a proxied client) and when a connection goes; main.c sets
 *             the descriptor budget and sweeps idle entries once a second.
 * Invariants: a connection is checked against its address exactly once and,
 *             when admitted, counted there until it is freed; it counts in
 *             the total from its 101 until it leaves OPEN. An address entry
 *             exists while it has a connection, or while its bucket is not
 *             full again and fewer than LIM_IDLE_MAX entries are kept: an
 *             attack from many addresses cannot grow the table past its
 *             connections plus that bound. X-Forwarded-For is read only
 *             when the peer is in trusted_proxies, so a client cannot
 *             choose its own address.
 * Tests:      tests/unit/test_lim.c; 76-limits, 82-hostile-ws.
 */
#ifndef HERALD_LIM_H
#define HERALD_LIM_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>

#include <uthash.h>

#include "handshake.h"
#include "http.h"

#define LIM_STRIPES 64
#define LIM_ADDR_MAX 64    /* an IPv6 address as text, or "unix" */
#define LIM_IDLE_MAX 65536 /* address entries kept without a connection (for their rate) */
#define LIM_FD_SPARE 64    /* descriptors kept beside the API's and RPC's (lim_fd_reserve) */
/* Connections metrics_listen holds at most (mlisten.c): kept from the WebSockets too. */
#define LIM_FD_METRICS 64

struct cfg;
struct lim_addr;

struct lim {
    atomic_long total;         /* open WebSockets, every worker */
    atomic_long fds;           /* WebSocket sockets, from accept to close */
    atomic_long fd_max;        /* most fds WebSockets may hold (lim_set_fd_max) */
    atomic_long naddrs;        /* address entries, every stripe */
    atomic_int told_no_client; /* the "proxy names no client" line was logged */
    pthread_mutex_t lock[LIM_STRIPES];
    struct lim_addr *table[LIM_STRIPES]; /* owned: uthash heads */
};

void lim_init(struct lim *l);

void lim_free(struct lim *l);

/* Seconds on the monotonic clock: the time lim_addr_enter and lim_sweep take. */
double lim_now(void);

/* The peer of fd as text ("unix" for a unix socket). Returns 0, or -1. */
int lim_peer(int fd, char addr[LIM_ADDR_MAX]);

/* Is addr (a lim_peer answer) one of cfg's trusted_proxies? */
int lim_trusted(const struct cfg *cfg, const char *addr);

/*
 * The client's address for fd and its request head into addr: the peer's,
 * or, when the peer is a trusted proxy, the nearest untrusted address in
 * X-Forwarded-For. Returns 0; 1 when the peer is a trusted proxy that names
 * no client (no usable X-Forwarded-For: addr is the proxy's), so its
 * clients cannot be told apart; -1 when the peer cannot be read.
 */
int lim_client_addr(const struct cfg *cfg, int fd, const struct http_request *req,
                    char addr[LIM_ADDR_MAX]);

/* Is any per-address limit on (max_connections_per_ip or connect_rate)? */
int lim_addr_on(const struct cfg *cfg);

/*
 * One new connection from addr, at time now (lim_now): take a token from
 * its connect_rate bucket (HS_TOO_FAST when there is none), then count it
 * against max_connections_per_ip (HS_ADDR_LIMIT when at it; the token is
 * spent all the same: the rate counts attempts). HS_OK when counted: the
 * caller gives it back with lim_addr_leave.
 */
enum hs_reason lim_addr_enter(struct lim *l, const struct cfg *cfg, const char *addr, double now);

/* A connection counted by lim_addr_enter went; an idle entry may be forgotten here. */
void lim_addr_leave(struct lim *l, const struct cfg *cfg, const char *addr, double now);

/*
 * Forget every address with no connection whose bucket is full again at
 * now. Returns how many entries are left.
 */
long lim_sweep(struct lim *l, const struct cfg *cfg, double now);

/* Count one more open WebSocket, or refuse: HS_TOO_MANY over max_connections. */
enum hs_reason lim_total_take(struct lim *l, const struct cfg *cfg);

/* An open WebSocket counted by lim_total_take left OPEN. */
void lim_total_release(struct lim *l);

/*
 * Descriptors to keep for everything but WebSockets, beyond those open at
 * start: LIM_FD_SPARE, plus per site api_max_connections and, for a site
 * with RPC, rpc_max_inflight, and LIM_FD_METRICS with metrics_listen.
 */
long lim_fd_reserve(const struct cfg *cfg);

/* At most max WebSocket sockets from now on (main.c: the file limit less the rest). */
void lim_set_fd_max(struct lim *l, long max);

/* One more WebSocket socket: 0, or -1 (not counted) when it would pass fd_max. */
int lim_fd_take(struct lim *l);

/* A WebSocket socket counted by lim_fd_take was closed. */
void lim_fd_release(struct lim *l);

#endif
