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

#include "../lib/fake_worker.h"

#define NLOOPS 3

/* What each fake worker does: worker i adds i + 1 to a publish's count and to the stats. */
static void add_my_share(struct fake_worker *w, struct cmd_job *job)
{
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
}

static void start(struct fake_worker *ws, struct cmd_queue **qs, struct cmd_hub *hub)
{
    fake_workers_start(ws, NLOOPS, qs, hub, add_my_share);
}

static void stop(struct fake_worker *ws, struct cmd_hub *hub)
{
    fake_workers_stop(ws, NLOOPS, hub);
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
