/*
 * cmd.c -- jobs from the API and main threads to the workers.
 *
 * Owns:       struct cmd_job and struct cmd_queue mechanics.
 * Called by:  lib/api/routes.c, main.c (submit, wait, free) on their threads;
 *             worker.c (take, done) on each worker's thread.
 * Invariants: a job is pushed to every worker through that worker's queue
 *             and ev_async (h2o's multithread receivers): one lock round
 *             and one wakeup per worker per API request, however many
 *             items or recipients it holds. The sender waits on a condition
 *             variable; the last worker to finish signals it. A detached
 *             job has no waiter: the last worker frees it instead.
 */
#include "cmd.h"

#include <stdlib.h>
#include <string.h>

#include "histo.h"
#include "msg.h"
#include "xmalloc.h"

struct cmd_job *cmd_job_new(enum cmd_type type, int nworkers, size_t nitems)
{
    struct cmd_job *job = xcalloc(1, sizeof *job + (size_t)nworkers * sizeof job->nodes[0]);

    job->type = type;
    pthread_mutex_init(&job->lock, NULL);
    pthread_cond_init(&job->done, NULL);
    job->nnodes = nworkers;
    if (nitems > 0) {
        job->items = xcalloc(nitems, sizeof *job->items);
        job->delivered = xcalloc(nitems, sizeof *job->delivered);
        job->nitems = nitems;
    }
    return job;
}

void cmd_job_free(struct cmd_job *job)
{
    if (job == NULL)
        return;
    for (size_t i = 0; i < job->nitems; i++)
        eng_item_clear(&job->items[i]);
    free(job->items);
    free(job->delivered);
    pthread_mutex_destroy(&job->lock);
    pthread_cond_destroy(&job->done);
    free(job);
}

void cmd_submit(const struct cmd_hub *hub, struct cmd_job *job)
{
    struct dir_mask all;

    dir_mask_all(&all, hub->nqueues);
    cmd_submit_to(hub, job, &all);
}

void cmd_submit_to(const struct cmd_hub *hub, struct cmd_job *job, const struct dir_mask *mask)
{
    job->pending = 0;
    for (int i = 0; i < hub->nqueues; i++)
        job->pending += dir_mask_has(mask, i);
    for (int i = 0; i < hub->nqueues; i++) {
        struct cmd_queue *q = hub->queues[i];
        struct cmd_node *node = &job->nodes[i];

        if (!dir_mask_has(mask, i))
            continue;

        node->job = job;
        node->next = NULL;
        pthread_mutex_lock(&q->lock);
        if (q->tail != NULL)
            q->tail->next = node;
        else
            q->head = node;
        q->tail = node;
        pthread_mutex_unlock(&q->lock);
        ev_async_send(q->loop, &q->wake);
    }
}

/* Stamp a publish job's frames with now: the delivery lag runs from here to the write. */
static void cmd_stamp(struct cmd_job *job)
{
    uint64_t now = histo_now_ns();

    for (size_t i = 0; i < job->nitems; i++) {
        struct eng_item *it = &job->items[i];

        if (it->msg != NULL)
            atomic_store_explicit(&it->msg->queued, now, memory_order_relaxed);
        for (size_t u = 0; it->frames != NULL && u < it->nusers; u++)
            if (it->frames[u] != NULL)
                atomic_store_explicit(&it->frames[u]->queued, now, memory_order_relaxed);
    }
}

void cmd_deliver(void *hub, void *job, const struct dir_mask *mask, int detached)
{
    struct cmd_job *j = job;

    j->detached = detached;
    if (j->type == CMD_PUBLISH && !dir_mask_empty(mask))
        cmd_stamp(j);
    if (detached && dir_mask_empty(mask)) {
        cmd_job_free(j);
        return;
    }
    cmd_submit_to(hub, j, mask);
}

void cmd_post(void *hub, int worker, void (*fn)(void *), void *fnarg)
{
    const struct cmd_hub *h = hub;
    struct cmd_job *job = cmd_job_new(CMD_RUN, h->nqueues, 0);
    struct dir_mask one;

    memset(&one, 0, sizeof one);
    one.bits[worker / 64] |= (uint64_t)1 << (worker % 64);
    job->run = fn;
    job->run_arg = fnarg;
    job->detached = 1;
    cmd_submit_to(h, job, &one);
}

void cmd_hand(void *hub, int site, struct eng_item *items, size_t nitems,
              const struct dir_mask *mask)
{
    const struct cmd_hub *h = hub;
    struct cmd_job *job = cmd_job_new(CMD_PUBLISH, h->nqueues, 0);

    job->site = site;
    job->items = items;
    job->nitems = nitems;
    job->delivered = xcalloc(nitems, sizeof *job->delivered);
    cmd_deliver(hub, job, mask, 1);
}

void cmd_job_wait(struct cmd_job *job)
{
    pthread_mutex_lock(&job->lock);
    while (job->pending > 0)
        pthread_cond_wait(&job->done, &job->lock);
    pthread_mutex_unlock(&job->lock);
}

void cmd_job_done(struct cmd_job *job)
{
    /* Read before unlocking: a waiting sender may free the job right after. */
    int detached = job->detached;
    int last;

    pthread_mutex_lock(&job->lock);
    last = --job->pending == 0;
    if (last && !detached)
        pthread_cond_signal(&job->done);
    pthread_mutex_unlock(&job->lock);
    if (last && detached)
        cmd_job_free(job);
}

void cmd_queue_init(struct cmd_queue *q, struct ev_loop *loop,
                    void (*cb)(struct ev_loop *, ev_async *, int))
{
    pthread_mutex_init(&q->lock, NULL);
    q->head = q->tail = NULL;
    q->loop = loop;
    ev_async_init(&q->wake, cb);
}

void cmd_queue_destroy(struct cmd_queue *q)
{
    pthread_mutex_destroy(&q->lock);
}

struct cmd_node *cmd_queue_take(struct cmd_queue *q)
{
    struct cmd_node *head;

    pthread_mutex_lock(&q->lock);
    head = q->head;
    q->head = q->tail = NULL;
    pthread_mutex_unlock(&q->lock);
    return head;
}
