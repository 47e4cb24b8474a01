/*
 * worker.h -- an event-loop thread that owns connections.
 *
 * Owns:       one ev_loop, its listener watcher, its connections and what
 *             they share (cx, a struct conn_ctx: the open array, the timed
 *             and pending lists, per site a registry, subscriptions and
 *             stats, the RPC context), and its command queue.
 * Called by:  main.c (create, start, shut down, join, free). Connections
 *             see only cx (conn.h), never struct worker.
 * Invariants: everything here is touched only by the worker's thread,
 *             except `queue` (locked) which other threads push jobs onto.
 */
#ifndef HERALD_WORKER_H
#define HERALD_WORKER_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include <ev.h>

#include "cmd.h"
#include "conn.h"
#include "rpc.h"

struct cfg;
struct msg;

struct worker {
    struct conn_ctx cx; /* what its connections share: the loop, config, sites, lists (conn.h) */
    pthread_t thread;
    int lfd; /* listener: owned when own_lfd */
    int own_lfd;
    ev_io accept_io;
    ev_timer accept_pause; /* backs off after EMFILE */
    ev_prepare prepare;    /* flushes and frees, before each poll */
    ev_timer tick;         /* timed lists, shutdown progress */
    ev_timer ping;         /* ping rounds */
    struct cmd_queue queue;
    struct msg *ping_msg; /* ref */
    int shutting_down;
    ev_tstamp shutdown_deadline;
};

/*
 * Create worker `id` with its loop. lfd >= 0 is a shared listener (unix
 * socket) to watch; lfd < 0 makes the worker bind its own SO_REUSEPORT
 * TCP listener. Returns NULL with *cause set.
 */
struct worker *worker_new(int id, const struct cfg *cfg, struct cmd_hub *hub,
                          const struct conn_ops *ops, rpc_done_fn *rpc_done, int lfd, char **cause);

/* Start the worker's thread. Returns 0 or -1 with *cause set. */
int worker_start(struct worker *w, char **cause);

/* Wait for the thread to end (after a CMD_SHUTDOWN job). */
void worker_join(struct worker *w);

/* Free a worker whose thread has ended (or never started). NULL is a no-op. */
void worker_free(struct worker *w);

#endif
