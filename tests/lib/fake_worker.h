/*
 * fake_worker.h -- stand-in workers for code that talks to workers only
 * through cmd.h (the API routes, the command queue): each is a real libev
 * loop on its own thread with a real cmd_queue, and runs a caller-given
 * function on every job, then reports the job done. Used by
 * tests/unit/test_cmd.c and bench/bench_api.c.
 */
#ifndef HERALD_TESTS_FAKE_WORKER_H
#define HERALD_TESTS_FAKE_WORKER_H

#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <ev.h>

#include "cmd.h"

struct fake_worker;

/* What a fake worker does with a job (before it is reported done). */
typedef void (*fake_worker_fn)(struct fake_worker *w, struct cmd_job *job);

struct fake_worker {
    struct ev_loop *loop;
    struct cmd_queue queue;
    pthread_t thread;
    int id;
    fake_worker_fn run;
    int ran[16]; /* the first job types run, in order */
    int nran;
};

/* Run every queued job; a shutdown job also ends the loop. */
static inline void fake_worker_wake(struct ev_loop *loop, ev_async *a, int revents)
{
    struct fake_worker *w =
        (struct fake_worker *)((char *)a - offsetof(struct fake_worker, queue.wake));
    struct cmd_node *node = cmd_queue_take(&w->queue);

    (void)revents;
    while (node != NULL) {
        struct cmd_node *next = node->next;
        struct cmd_job *job = node->job;

        if (w->nran < 16)
            w->ran[w->nran++] = (int)job->type;
        if (w->run != NULL)
            w->run(w, job);
        if (job->type == CMD_SHUTDOWN)
            ev_break(loop, EVBREAK_ALL);
        cmd_job_done(job);
        node = next;
    }
}

static inline void *fake_worker_main(void *arg)
{
    struct fake_worker *w = arg;

    ev_run(w->loop, 0);
    return NULL;
}

/* Start n fake workers and fill hub (qs holds n queue pointers). Aborts on failure. */
static inline void fake_workers_start(struct fake_worker *ws, int n, struct cmd_queue **qs,
                                      struct cmd_hub *hub, fake_worker_fn run)
{
    for (int i = 0; i < n; i++) {
        memset(&ws[i], 0, sizeof ws[i]);
        ws[i].id = i;
        ws[i].run = run;
        ws[i].loop = ev_loop_new(EVFLAG_AUTO);
        if (ws[i].loop == NULL)
            abort();
        cmd_queue_init(&ws[i].queue, ws[i].loop, fake_worker_wake);
        ev_async_start(ws[i].loop, &ws[i].queue.wake);
        qs[i] = &ws[i].queue;
    }
    hub->queues = qs;
    hub->nqueues = n;
    hub->sites = NULL;
    hub->nsites = 0;
    for (int i = 0; i < n; i++)
        if (pthread_create(&ws[i].thread, NULL, fake_worker_main, &ws[i]) != 0)
            abort();
}

/* Send a shutdown job, join the threads, free the loops. */
static inline void fake_workers_stop(struct fake_worker *ws, int n, struct cmd_hub *hub)
{
    struct cmd_job *job = cmd_job_new(CMD_SHUTDOWN, n, 0);

    cmd_submit(hub, job);
    cmd_job_wait(job);
    cmd_job_free(job);
    for (int i = 0; i < n; i++) {
        pthread_join(ws[i].thread, NULL);
        ev_async_stop(ws[i].loop, &ws[i].queue.wake);
        cmd_queue_destroy(&ws[i].queue);
        ev_loop_destroy(ws[i].loop);
    }
}

#endif
