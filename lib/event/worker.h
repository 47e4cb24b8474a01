/*
 * worker.h -- an event-loop thread that owns connections.
 *
 * Owns:       one ev_loop, its listener watcher, its connections (through
 *             the open array, the timed lists and the pending list), per
 *             site a registry, subscriptions and stats, and its command queue.
 * Called by:  main.c (create, start, shut down, join, free); conn.c uses
 *             the fields below from the same thread.
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
#include "dir.h"
#include "reg.h"
#include "rpc.h"
#include "stats.h"
#include "sub.h"

struct cfg;
struct conn;
struct conn_ops;
struct conn_out;
struct msg;

/* What a worker keeps per site: its users, its channels, its counters. */
struct worker_site {
    struct reg reg;        /* the site's users with a connection here */
    struct sub_table subs; /* the site's channel subscriptions here */
    struct stats stats;    /* counters of the site's connections here */
};

/* A FIFO of conns with deadlines, linked through conn->tnext/tprev. */
struct conn_list {
    struct conn *head; /* borrowed: earliest deadline */
    struct conn *tail; /* borrowed */
};

struct worker {
    int id;
    pthread_t thread;
    struct ev_loop *loop;            /* owned */
    const struct cfg *cfg;           /* borrowed: the config snapshot */
    struct cmd_hub *hub;             /* borrowed: queues, sites' directories and presence */
    const struct conn_ops *conn_ops; /* borrowed: what its connections tell their owner */
    int lfd;                         /* listener: owned when own_lfd */
    int own_lfd;
    ev_io accept_io;
    ev_timer accept_pause; /* backs off after EMFILE */
    ev_prepare prepare;    /* flushes and frees, before each poll */
    ev_timer tick;         /* timed lists, shutdown progress */
    ev_timer ping;         /* ping rounds */
    struct cmd_queue queue;
    struct worker_site *sites; /* owned: one per hub site, same index */
    int nsites;
    struct rpc_ctx rpc; /* PHP calls in flight (rpc.c), charged to sites[i].stats */
    struct stats stats; /* what no site owns: accept errors, and with several
                           sites the handshakes refused before one was known */
    struct conn **open; /* owned array; conns borrowed */
    size_t nopen;
    size_t capopen;
    size_t nconns; /* conns in any state */
    struct conn_list handshaking;
    struct conn_list closing;
    struct conn *pending;      /* borrowed: conns to flush or free */
    struct conn_out *out_free; /* owned: recycled out-queue entries */
    size_t nout_free;
    uint8_t *rbuf; /* owned: shared read buffer */
    size_t rbuf_size;
    struct msg *ping_msg;        /* ref */
    ev_tstamp refused_logged;    /* when a flood of refusals was last logged (conn.c) */
    unsigned long refused_quiet; /* refusals not logged since then */
    uint64_t next_conn_id;       /* worker id << 48, then a counter */
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

/* Timed lists: append with a deadline, or remove. */
void worker_timer_add(struct worker *w, struct conn *c, int which, ev_tstamp deadline);
void worker_timer_remove(struct worker *w, struct conn *c);

/* The open array: add an upgraded conn, remove one leaving OPEN. */
void worker_open_add(struct worker *w, struct conn *c);
void worker_open_remove(struct worker *w, struct conn *c);

/* Put a conn on the pending list (flush or free before the next poll). */
void worker_pending_add(struct worker *w, struct conn *c);

/* Out-queue entries, recycled per worker: no malloc per delivery. */
struct conn_out *worker_out_get(struct worker *w);
void worker_out_put(struct worker *w, struct conn_out *o);

#endif
