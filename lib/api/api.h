/*
 * api.h -- the FastCGI API endpoint: one Unix socket per site, all served
 * by one small pool of threads, answering /publish, /presence, /health,
 * /stats and /metrics for the site whose socket the request came in on.
 *
 * Owns:       struct api: the listening sockets, the threads (each with its
 *             libfcgi relay), every open connection (apiconn.h), the
 *             deadline list, and the API counters of each site.
 * Called by:  main.c (start after the workers, stop before them);
 *             routes.c (request handling, on the API threads).
 * Invariants: never touches a WebSocket connection: publishes become cmd
 *             jobs, and cmd.h is the only header shared with the workers.
 *             A request can reach only its socket's site: the site index
 *             travels with the connection from accept to api_route, and
 *             every table a route reads is that site's (hub->sites[site]).
 *             What a caller can take is bounded: its connections per site
 *             (api_max_connections per caller uid; more are closed at once),
 *             and the threads answering one site at once (`share`), so
 *             neither a hostile local user nor a busy site can take the
 *             descriptors, memory or threads another needs.
 */
#ifndef HERALD_API_H
#define HERALD_API_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <time.h>

#include "cmd.h"
#include "relay.h"
#include "stats.h"

struct cfg;
struct apiconn;

struct api_caller;

/* One site's API socket, counters, and what its callers hold now. */
struct api_site {
    int lfd;    /* owned: listening unix socket, or -1 */
    char *path; /* owned: its file, removed at stop */
    struct stats_api stats;
    pthread_mutex_t lock;       /* the fields below */
    struct api_caller *callers; /* owned: uthash of open connections per caller uid */
    double logged;              /* when a line about its callers was last logged */
    unsigned long unlogged;     /* lines held back since */
    int serving;                /* requests being answered now */
    struct apiconn *ready_head; /* borrowed: whole requests waiting for the site's share */
    struct apiconn *ready_tail; /* borrowed */
};

/* One API thread: its libfcgi relay and read buffer. */
struct api_thread {
    struct api *a; /* borrowed */
    pthread_t tid;
    int started;
    struct relay relay;
    uint8_t *buf; /* owned: read buffer */
};

struct api {
    const struct cfg *cfg;     /* borrowed: the config snapshot */
    const struct cmd_hub *hub; /* borrowed: the workers' queues, the sites' tables */
    struct api_site *sites;    /* owned: one per cfg->sites entry, same index */
    int nsites;
    int epfd; /* owned: the listeners and every waiting connection */
    int nthreads;
    struct api_thread *threads; /* owned */
    int share;                  /* requests of one site answered at once, at most */
    int sharing;                /* share < api_threads: sites take turns (queue, count) */
    atomic_int stopping;
    time_t started;
    pthread_mutex_t lock;       /* conns and the deadline list */
    struct apiconn *conns;      /* borrowed: every open connection */
    struct apiconn *timed_head; /* borrowed: connections with a deadline, earliest first */
    struct apiconn *timed_tail; /* borrowed */
    atomic_llong sweep_due_ms;  /* monotonic ms when deadlines are next looked at */
};

/* One answer: an HTTP status and a JSON body (or another type's). */
struct api_response {
    int status;
    const char *allow; /* static: Allow header for 405, or NULL */
    const char *type;  /* static: the body's Content-Type, or NULL for JSON */
    char *body;        /* owned: JSON text, or text of type */
};

/*
 * Bind every site's API socket (mode and group from its config) and start
 * the threads. Returns NULL with *cause set.
 */
struct api *api_start(const struct cfg *cfg, const struct cmd_hub *hub, char **cause);

/* Use this snapshot for the requests that start from now on (a reload). */
void api_set_cfg(struct api *a, const struct cfg *cfg);

/* The snapshot a request should read. */
static inline const struct cfg *api_cfg(struct api *a)
{
    return __atomic_load_n(&a->cfg, __ATOMIC_ACQUIRE);
}

/* Stop accepting, wait for the threads, remove the socket file, free. */
void api_stop(struct api *a);

/*
 * Route one request that came in on site's socket (routes.c). body is
 * NUL-terminated at body[len]. Fills *resp; the caller frees resp->body.
 */
void api_route(struct api *a, int site, const char *method, const char *path, const char *query,
               const char *body, size_t len, struct api_response *resp);

/* A JSON error body {"ok":false,"error":msg} with this status (routes.c). */
void api_error(struct api_response *resp, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
