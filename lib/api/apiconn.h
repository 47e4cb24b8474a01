/*
 * apiconn.h -- one caller's connection to an API socket: its bytes in,
 * checked and bounded; its answer out; never a blocking call on it.
 *
 * Owns:       struct apiconn: the socket, the framing state (gate.h), the
 *             request's params and body while it arrives, a few bytes read
 *             past it (a pipelined next request), and the answer being
 *             written.
 * Called by:  api.c, on whichever API thread epoll handed the connection
 *             to (EPOLLONESHOT: one thread at a time).
 * Invariants: only the thread that holds the connection touches it, except
 *             `expired` (set by api.c's deadline sweep, which also shuts
 *             the socket down) and the list links, which api.c keeps under
 *             its lock. Every byte held is on a budget: params at most
 *             APICONN_MAX_PARAMS, the body at most the site's api_max_body
 *             (past it the rest is read and dropped, up to
 *             APICONN_DRAIN_MAX), the bytes past a request at most one
 *             read. A refused caller's params and body are never stored.
 */
#ifndef HERALD_APICONN_H
#define HERALD_APICONN_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "gate.h"
#include "relay.h"

struct cfg_site;

#define APICONN_MAX_PARAMS (64u << 10) /* bytes of PARAMS a request may carry */
#define APICONN_DRAIN_MAX (16u << 20)  /* bytes of a refused request read and dropped */

/* What the connection needs next; returned by every step. */
enum apiconn_step {
    APICONN_READ,  /* wait until it is readable */
    APICONN_WRITE, /* wait until it is writable: an answer is partly written */
    APICONN_READY, /* a whole request is in: answer it (apiconn_serve) */
    APICONN_CLOSE, /* done, or broken: close it */
};

struct apiconn {
    int fd;   /* owned */
    int site; /* index of the site whose socket it came in on */
    long uid; /* the caller's uid (SO_PEERCRED), -1 if unknown */
    struct gate gate;
    int refuse;              /* the request's answer is this error status: 400, 403,
                                413 or 431; 0 = route it */
    int read_only;           /* root outside the site's publish_uids: may read /health,
                                /stats and /metrics, nothing else */
    int fail;                /* closed for this status (400 not FastCGI, 408 stalled,
                                413 drained too much): counted by api.c; 0 = none */
    const char *fail_why;    /* static: why, for api.c's log line */
    struct relay_buf params; /* the PARAMS stream so far */
    struct relay_buf body;   /* STDIN so far; NUL-terminated once whole */
    size_t max_body;         /* the site's api_max_body when the request began */
    size_t dropped;          /* bytes of this request read and not kept */
    uint8_t *rest;           /* owned: bytes read past the request, for the next */
    size_t rest_len;
    uint8_t *out; /* owned: answer (or management reply) being written */
    size_t out_len, out_off;
    int answering;      /* out holds a request's answer (not a management reply) */
    double deadline;    /* monotonic seconds; 0 = none (idle between requests) */
    atomic_int expired; /* set by the deadline sweep, which shut the socket down */
    /* Kept by api.c under its lock. */
    struct apiconn *prev, *next;   /* borrowed: every connection */
    struct apiconn *tprev, *tnext; /* borrowed: the deadline list */
    struct apiconn *qnext;         /* borrowed: a site's queue of whole requests */
    _Atomic double listed;         /* deadline it is on the list with; 0 = not listed.
                                      The sweep reads this, never deadline, which the
                                      holder writes without the lock */
};

/* A connection for an accepted socket of site, from a caller running as uid (-1: unknown). */
struct apiconn *apiconn_new(int fd, int site, long uid, double now, double timeout);

/* Close the socket and free everything. NULL is a no-op. */
void apiconn_free(struct apiconn *c);

/*
 * Read what has arrived (buf is a scratch buffer of size bytes) and check
 * it; site is the snapshot of c's site (limits, publish_uids).
 */
enum apiconn_step apiconn_read(struct apiconn *c, const struct cfg_site *site, uint8_t *buf,
                               size_t size, double now, double timeout);

/*
 * Answer the whole request through libfcgi (relay.h, handler writes the
 * response with c as its argument) and start writing it.
 */
enum apiconn_step apiconn_serve(struct apiconn *c, const struct cfg_site *site, struct relay *r,
                                relay_handler *handler, void *arg, double now, double timeout);

/* Go on writing the answer; once written, close or read the next request. */
enum apiconn_step apiconn_write(struct apiconn *c, const struct cfg_site *site, double now,
                                double timeout);

/* Is a request partly read (as opposed to idle between requests)? */
int apiconn_mid_request(const struct apiconn *c);

#endif
