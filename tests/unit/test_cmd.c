/*
 * test_cmd.c -- jobs from one thread to event-loop threads: every worker
 * runs each job once, in order, and the sender wakes when all are done.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <ev.h>

#include "cmd.h"

#define NLOOPS 3

/* A minimal worker: a loop, a queue, and a record of what it ran. */
struct fake_worker {
    struct ev_loop *loop;
    struct cmd_queue queue;
    pthread_t thread;
    int ran[16];
    int nran;
    int id;
};

static void on_wake(struct ev_loop *loop, ev_async *a, int revents)
{
    struct fake_worker *w =
        (struct fake_worker *)((char *)a - offsetof(struct fake_worker, queue.wake));
    struct cmd_node *node = cmd_queue_take(&w->queue);

    while (node != NULL) {
        struct cmd_node *next = node->next;
        struct cmd_job *job = node->job;

        if (w->nran < 16)
            w->ran[w->nran++] = (int)job->type;
        if (job->type == CMD_PUBLISH) {
            pthread_mutex_lock(&job->lock);
            job->delivered[0] += (uint64_t)(w->id + 1);
            pthread_mutex_unlock(&job->lock);
        } else if (job->type == CMD_STATS) {
            struct stats mine = {.connections = (uint64_t)(w->id + 1)};

            pthread_mutex_lock(&job->lock);
            stats_add(&job->stats, &mine);
            pthread_mutex_unlock(&job->lock);
        }
        if (job->type == CMD_SHUTDOWN)
            ev_break(loop, EVBREAK_ALL);
        cmd_job_done(job);
        node = next;
    }
}

static void *run_loop(void *arg)
{
    struct fake_worker *w = arg;

    ev_run(w->loop, 0);
    return NULL;
}

static void start(struct fake_worker *ws, struct cmd_queue **qs, struct cmd_hub *hub)
{
    for (int i = 0; i < NLOOPS; i++) {
        memset(&ws[i], 0, sizeof ws[i]);
        ws[i].id = i;
        ws[i].loop = ev_loop_new(EVFLAG_AUTO);
        cmd_queue_init(&ws[i].queue, ws[i].loop, on_wake);
        ev_async_start(ws[i].loop, &ws[i].queue.wake);
        qs[i] = &ws[i].queue;
    }
    hub->queues = qs;
    hub->nqueues = NLOOPS;
    for (int i = 0; i < NLOOPS; i++)
        pthread_create(&ws[i].thread, NULL, run_loop, &ws[i]);
}

static void stop(struct fake_worker *ws, struct cmd_hub *hub)
{
    struct cmd_job *job = cmd_job_new(CMD_SHUTDOWN, NLOOPS, 0);

    cmd_submit(hub, job);
    cmd_job_wait(job);
    cmd_job_free(job);
    for (int i = 0; i < NLOOPS; i++) {
        pthread_join(ws[i].thread, NULL);
        ev_async_stop(ws[i].loop, &ws[i].queue.wake);
        cmd_queue_destroy(&ws[i].queue);
        ev_loop_destroy(ws[i].loop);
    }
}

static void test_cmd_publish_sums_every_worker(void **state)
{
    struct fake_worker ws[NLOOPS];
    struct cmd_queue *qs[NLOOPS];
    struct cmd_hub hub;

    start(ws, qs, &hub);
    for (int round = 0; round < 100; round++) {
        struct cmd_job *job = cmd_job_new(CMD_PUBLISH, NLOOPS, 1);

        cmd_submit(&hub, job);
        cmd_job_wait(job);
        /* workers add 1, 2 and 3: all three ran before wait returned */
        assert_int_equal(job->delivered[0], 6);
        cmd_job_free(job);
    }
    stop(ws, &hub);
    for (int i = 0; i < NLOOPS; i++)
        assert_int_equal(ws[i].ran[0], CMD_PUBLISH);
}

static void test_cmd_stats_sums_every_worker(void **state)
{
    struct fake_worker ws[NLOOPS];
    struct cmd_queue *qs[NLOOPS];
    struct cmd_hub hub;
    struct cmd_job *job;

    start(ws, qs, &hub);
    job = cmd_job_new(CMD_STATS, NLOOPS, 0);
    cmd_submit(&hub, job);
    cmd_job_wait(job);
    /* workers report 1, 2 and 3 connections: all three are in the sum */
    assert_int_equal(job->stats.connections, 6);
    cmd_job_free(job);
    stop(ws, &hub);
}

static void test_cmd_jobs_run_in_order(void **state)
{
    struct fake_worker ws[NLOOPS];
    struct cmd_queue *qs[NLOOPS];
    struct cmd_hub hub;
    struct cmd_job *a, *b;

    start(ws, qs, &hub);
    a = cmd_job_new(CMD_STATS, NLOOPS, 0);
    b = cmd_job_new(CMD_PUBLISH, NLOOPS, 1);
    cmd_submit(&hub, a);
    cmd_submit(&hub, b);
    cmd_job_wait(a);
    cmd_job_wait(b);
    cmd_job_free(a);
    cmd_job_free(b);
    stop(ws, &hub);
    for (int i = 0; i < NLOOPS; i++) {
        assert_int_equal(ws[i].nran, 3);
        assert_int_equal(ws[i].ran[0], CMD_STATS);
        assert_int_equal(ws[i].ran[1], CMD_PUBLISH);
        assert_int_equal(ws[i].ran[2], CMD_SHUTDOWN);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cmd_publish_sums_every_worker),
        cmocka_unit_test(test_cmd_stats_sums_every_worker),
        cmocka_unit_test(test_cmd_jobs_run_in_order),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
