/*
 * lg_recv.h -- the receiver: N WebSocket client connections on one epoll
 * loop, their handshakes, frames, and the check of every delivery.
 *
 * Owns:       struct lg_recv (opaque): the connections, the epoll fd, the
 *             shared read buffer, and struct lg_recv_stats.
 * Called by:  loadgen.c, on the main thread only (the receiver thread).
 * Invariants: one thread; publishers reach it only through struct lg_track.
 * Errors:     lg_recv_new returns NULL with *cause (owned by the caller);
 *             the loops return -1 with *cause only when epoll itself fails.
 *             Per-connection failures are counted, never fatal.
 */
#ifndef HERALD_LG_RECV_H
#define HERALD_LG_RECV_H

#include <stdint.h>

#include "lg_hist.h"
#include "lg_track.h"

#define LG_RECV_MAX_INFLIGHT 256 /* handshakes in flight at once */

struct lg_recv_cfg {
    const char *tmpl;       /* borrowed: --sub URL template */
    const char *secret;     /* borrowed: --secret, or NULL */
    uint32_t conns;         /* N */
    int src_ips;            /* K: sources 127.0.0.1 .. 127.0.0.K */
    int targeted;           /* {channel} is u{id} rather than "all" */
    uint64_t id_base;       /* {user} (and a targeted {channel}) is u{id_base + id} */
    uint64_t messages;      /* broadcast: seqs per connection to track; 0 otherwise */
    struct lg_track *track; /* borrowed: NULL in idle mode */
};

struct lg_recv_stats {
    uint64_t connected;        /* upgraded, ever */
    uint64_t live;             /* upgraded and still open */
    uint64_t connect_errors;   /* TCP connect failures (socket, bind, connect) */
    uint64_t handshake_errors; /* bad answer, EOF or timeout before the upgrade */
    uint64_t closes;           /* close frames from the server */
    uint64_t disconnects;      /* upgraded connections lost without a close frame */
    uint64_t protocol_errors;  /* bad frames, unparsable messages, unknown seqs */
    uint64_t deliveries;       /* first arrivals at the right connection */
    uint64_t live_received;    /* deliveries at connections still open */
    uint64_t duplicates;       /* repeated arrivals */
    uint64_t misrouted;        /* targeted seqs at the wrong connection */
    uint64_t pings;            /* pings answered */
    uint64_t t_first_delivery; /* ns, 0 before the first */
    uint64_t t_last_delivery;  /* ns, 0 before the first */
    uint64_t t_connect_start;  /* ns when the connect phase began */
    uint64_t t_connected;      /* ns when the connect phase ended */
    struct lg_hist lat;        /* delivery latency */
};

struct lg_recv;

/* Parse the template and set up epoll; connects nothing yet. */
struct lg_recv *lg_recv_new(const struct lg_recv_cfg *cfg, char **cause);

/* Close every connection and free it all; NULL is a no-op. */
void lg_recv_free(struct lg_recv *r);

/*
 * Open all N connections, at most LG_RECV_MAX_INFLIGHT handshakes at a time,
 * until each is upgraded or failed, or until deadline (ns). 0 or -1.
 */
int lg_recv_connect(struct lg_recv *r, uint64_t deadline, char **cause);

/* Serve the connections until done(arg, stats) is nonzero or deadline. 0 or -1. */
int lg_recv_run(struct lg_recv *r, uint64_t deadline,
                int (*done)(void *arg, const struct lg_recv_stats *st), void *arg, char **cause);

/* The counters so far. */
const struct lg_recv_stats *lg_recv_stats(const struct lg_recv *r);

/* The first connect or handshake failure, for one line on stderr ("" if none). */
const char *lg_recv_first_error(const struct lg_recv *r);

/*
 * Broadcast: over every connection that was upgraded, the seqs answered 2xx
 * that it never received.
 */
uint64_t lg_recv_missing(const struct lg_recv *r);

/* Ids of the connections upgraded and still open; *n set. Owned by the caller. */
uint32_t *lg_recv_live_ids(const struct lg_recv *r, uint32_t *n);

#endif
