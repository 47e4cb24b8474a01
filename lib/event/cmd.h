/*
 * cmd.h -- commands from other threads to the workers: the only header
 * the FastCGI API and the workers share.
 *
 * Owns:       struct cmd_job (one request's work, sent to every worker and
 *             waited on by its sender), struct cmd_queue (one per worker),
 *             struct cmd_hub (all the queues, handed to the API at start).
 * Called by:  lib/api/routes.c and main.c submit and wait; worker.c takes
 *             jobs off its queue in its ev_async callback and finishes them.
 * Invariants: a job's inputs are read-only once submitted; its results are
 *             written only under job->lock. The sender owns the job and
 *             frees it after cmd_job_wait returns, when no worker holds it.
 */
#ifndef HERALD_CMD_H
#define HERALD_CMD_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <ev.h>

#include "dir.h"
#include "engine.h"
#include "stats.h"

struct msg;
struct cfg;
struct lim;
struct site;

enum cmd_type {
    CMD_PUBLISH,    /* queue items[i].msg to its targets; count per item */
    CMD_STATS,      /* add this worker's counters */
    CMD_COUNT_USER, /* add items[0].users[0]'s connections here to delivered[0] */
    CMD_SHUTDOWN,   /* close every connection with 1001 and stop */
    CMD_RELOAD,     /* use the snapshot in cfg from now on */
    CMD_RUN,        /* call run(run_arg) on the worker's thread (an engine's late answer) */
};

struct cmd_job;

/* A job's place in one worker's queue. */
struct cmd_node {
    struct cmd_node *next; /* borrowed: next in the queue */
    struct cmd_job *job;   /* borrowed */
};

struct cmd_job {
    enum cmd_type type;
    int site;     /* CMD_PUBLISH, CMD_STATS, CMD_COUNT_USER: of this site only */
    int detached; /* nobody waits: the last worker frees the job */
    pthread_mutex_t lock;
    pthread_cond_t done;
    int pending; /* workers that have not finished */
    /* CMD_PUBLISH */
    struct eng_item *items; /* owned */
    size_t nitems;
    uint64_t *delivered; /* owned: per item, summed over workers */
    /* CMD_STATS */
    struct stats stats;    /* the job's site, summed over workers */
    struct stats unrouted; /* before a site was known (worker->stats), summed */
    /* CMD_RELOAD */
    const struct cfg *cfg; /* borrowed: the new snapshot */
    /* CMD_RUN */
    void (*run)(void *arg);
    void *run_arg;
    int nnodes;
    struct cmd_node nodes[]; /* one per worker */
};

struct cmd_queue {
    pthread_mutex_t lock;
    struct cmd_node *head; /* borrowed */
    struct cmd_node *tail; /* borrowed */
    ev_async wake;         /* fired after each push */
    struct ev_loop *loop;  /* borrowed: the worker's loop */
};

/*
 * What every thread shares: the workers' queues, the sites, the engine
 * (where users, channels and presence members are, and history) and the
 * connection limits. Each has its own locks; the hub itself is filled
 * before any thread starts.
 */
struct cmd_hub {
    struct cmd_queue **queues; /* borrowed: one per worker */
    int nqueues;
    struct site *sites; /* borrowed: one per configured site (site.h) */
    int nsites;
    struct engine *engine; /* borrowed: publishing, history, presence, who is where */
    struct lim *lim;       /* borrowed: connection limits */
};

/* A job of this type for nworkers workers, with nitems empty items. */
struct cmd_job *cmd_job_new(enum cmd_type type, int nworkers, size_t nitems);

/* Free a job and what it owns (item frames unref'd). NULL is a no-op. */
void cmd_job_free(struct cmd_job *job);

/* Send the job to every worker of the hub. */
void cmd_submit(const struct cmd_hub *hub, struct cmd_job *job);

/*
 * Send the job only to the workers in mask (none: the job is done at once,
 * and cmd_job_wait returns without waiting).
 */
void cmd_submit_to(const struct cmd_hub *hub, struct cmd_job *job, const struct dir_mask *mask);

/*
 * eng_deliver_fn for the engine (main.c hands it over with the hub as arg):
 * job, a struct cmd_job, goes to the workers in mask. Detached, nobody
 * waits: the last worker to finish frees it (at once, here, if mask is
 * empty); for workers publishing to each other, which must never block.
 */
void cmd_deliver(void *hub, void *job, const struct dir_mask *mask, int detached);

/*
 * eng_post_fn for the engine: run fn(fnarg) on worker `worker`'s thread,
 * after what is queued there now. Nobody waits.
 */
void cmd_post(void *hub, int worker, void (*fn)(void *), void *fnarg);

/*
 * eng_hand_fn for the engine: a detached publish job of site made of items
 * (taken over, as an array of nitems), to the workers in mask.
 */
void cmd_hand(void *hub, int site, struct eng_item *items, size_t nitems,
              const struct dir_mask *mask);

/* Block until every worker has finished the job. */
void cmd_job_wait(struct cmd_job *job);

/* A worker is finished with the job: its node is no longer used. */
void cmd_job_done(struct cmd_job *job);

/* Prepare a queue for the worker whose loop will run cb on wakeups. */
void cmd_queue_init(struct cmd_queue *q, struct ev_loop *loop,
                    void (*cb)(struct ev_loop *, ev_async *, int));

/* Release a queue's lock (its watcher must be stopped by the worker). */
void cmd_queue_destroy(struct cmd_queue *q);

/* Take every queued node, oldest first; the worker runs them in order. */
struct cmd_node *cmd_queue_take(struct cmd_queue *q);

#endif
