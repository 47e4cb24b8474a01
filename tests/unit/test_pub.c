/*
 * test_pub.c -- number, keep and hand out a publish (lib/route/pub.c),
 * against real history (hist.c), a real directory (dir.c) and real
 * command queues to stand-in workers (tests/lib/fake_worker.h): a job goes
 * to exactly the workers that hold a target; every stream's messages are
 * numbered in order, kept, and reach each worker in that order even when
 * two threads publish at once; a user's frame is made only for a user who
 * is online; without history a message goes out as it is.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <pthread.h>

#include "cmd.h"
#include "dir.h"
#include "../lib/fake_worker.h"
#include "hist.h"
#include "msg.h"
#include "proto.h"
#include "pub.h"
#include "site.h"
#include "xmalloc.h"

#define NWORKERS 3
#define SEEN_MAX 4096 /* channel offsets a worker records */

/* What one stand-in worker received. */
struct seen {
    pthread_mutex_t lock;
    int jobs;                   /* publish jobs */
    uint64_t offsets[SEEN_MAX]; /* the channel items' offsets, in arrival order */
    int noffsets;
    char last[512];  /* the last channel item's frame payload */
    int user_frames; /* user items' frames made (online users) */
};

static struct fake_worker workers[NWORKERS];
static struct cmd_queue *queues[NWORKERS];
static struct seen seen[NWORKERS];
static struct cmd_hub hub;
static struct hist hist;
static struct site site;

/* A frame's payload as text (the frames here are short, unmasked text frames). */
static void payload(const struct msg *m, char *out, size_t size)
{
    size_t hdr = (m->data[1] & 0x7f) < 126 ? 2 : 4;
    size_t n = m->len - hdr < size - 1 ? m->len - hdr : size - 1;

    memcpy(out, m->data + hdr, n);
    out[n] = '\0';
}

/* fake_worker_fn: record a publish job's channel offsets and frames. */
static void record(struct fake_worker *w, struct cmd_job *job)
{
    struct seen *s = &seen[w->id];

    if (job->type != CMD_PUBLISH)
        return;
    pthread_mutex_lock(&s->lock);
    s->jobs++;
    for (size_t i = 0; i < job->nitems; i++) {
        const struct cmd_item *it = &job->items[i];

        if (it->channel != NULL && s->noffsets < SEEN_MAX)
            s->offsets[s->noffsets++] = it->offset;
        if (it->channel != NULL && it->msg != NULL)
            payload(it->msg, s->last, sizeof s->last);
        for (size_t u = 0; it->frames != NULL && u < it->nusers; u++)
            s->user_frames += it->frames[u] != NULL;
    }
    pthread_mutex_unlock(&s->lock);
}

/* Start the workers and the tables: history keeps `size` messages a stream (0: off). */
static void start(size_t size)
{
    const char *names[] = {"shop"};
    size_t max_bytes[] = {64 << 20};

    memset(seen, 0, sizeof seen);
    for (int i = 0; i < NWORKERS; i++)
        pthread_mutex_init(&seen[i].lock, NULL);
    fake_workers_start(workers, NWORKERS, queues, &hub, record);
    hist_init(&hist, size, 3600, 1, names, max_bytes);
    site_init(&site, "shop");
    hub.sites = &site;
    hub.nsites = 1;
    hub.hist = &hist;
}

static int setup(void **state)
{
    start(100);
    return 0;
}

static int setup_no_history(void **state)
{
    start(0);
    return 0;
}

static int teardown(void **state)
{
    fake_workers_stop(workers, NWORKERS, &hub);
    site_free(&site);
    hist_free(&hist);
    for (int i = 0; i < NWORKERS; i++)
        pthread_mutex_destroy(&seen[i].lock);
    return 0;
}

/* A job of one channel message, its text in *text (malloc'd). */
static struct cmd_job *channel_job(const char *channel, const char *event, char **text)
{
    struct cmd_job *job = cmd_job_new(CMD_PUBLISH, NWORKERS, 1);

    job->site = 0;
    job->items[0].channel = xstrdup(channel);
    *text = proto_channel_text(channel, event, NULL, NULL);
    return job;
}

/* Publish one message to channel and wait for the workers; returns its offset. */
static uint64_t publish_channel(const char *channel, const char *event)
{
    char *texts[1];
    struct cmd_job *job = channel_job(channel, event, &texts[0]);
    uint64_t off;

    job = pub_submit(&hub, job, texts, 0);
    cmd_job_wait(job);
    off = job->items[0].offset;
    cmd_job_free(job);
    free(texts[0]);
    return off;
}

static void test_pub_goes_to_the_workers_holding_the_channel_only(void **state)
{
    char id[HIST_ID_MAX], want[64];
    uint64_t off;

    dir_add(&site.chans, "news", 4, 1);
    off = publish_channel("news", "e1");
    assert_int_equal(off, 1);
    assert_int_equal(seen[0].jobs, 0);
    assert_int_equal(seen[1].jobs, 1);
    assert_int_equal(seen[2].jobs, 0);
    /* The frame carries the message's id, which names the offset. */
    snprintf(want, sizeof want, "\"id\":\"%s\"", hist_id(&hist, off, id));
    assert_non_null(strstr(seen[1].last, want));
    assert_non_null(strstr(seen[1].last, "\"event\":\"e1\""));
    /* Nobody holds "sport": numbered and kept, sent to no worker. */
    assert_int_equal(publish_channel("sport", "e2"), 2);
    assert_int_equal(seen[0].jobs + seen[1].jobs + seen[2].jobs, 1);
    dir_remove(&site.chans, "news", 4, 1);
}

static void test_pub_numbers_and_keeps_each_stream_in_order(void **state)
{
    char key[HIST_KEY_MAX], first[HIST_ID_MAX], id[HIST_ID_MAX];
    struct hist_item *items;
    size_t n;
    uint64_t last, a, b, c;

    a = publish_channel("news", "a");
    b = publish_channel("news", "b");
    c = publish_channel("news", "c");
    assert_true(a < b && b < c);
    /* A client that saw the first asks for what followed: the other two, in order. */
    hist_id(&hist, a, first);
    hist_key(key, sizeof key, "shop", 'c', "news");
    assert_int_equal(hist_since(&hist, 0, key, first, &items, &n, &last, id), 1);
    assert_int_equal(n, 2);
    assert_int_equal(items[0].offset, b);
    assert_int_equal(items[1].offset, c);
    assert_int_equal(last, c);
    for (size_t i = 0; i < n; i++)
        hist_body_unref(items[i].body);
    free(items);
}

static void test_pub_makes_user_frames_for_online_users_only(void **state)
{
    struct cmd_job *job = cmd_job_new(CMD_PUBLISH, NWORKERS, 1);
    char *texts[1] = {proto_channel_text(NULL, "dm", NULL, NULL)};
    struct cmd_item *it = &job->items[0];

    it->users = xcalloc(2, sizeof *it->users);
    it->users[0] = xstrdup("alice");
    it->users[1] = xstrdup("bob");
    it->nusers = 2;
    dir_add(&site.users, "alice", 5, 2);
    job = pub_submit(&hub, job, texts, 0);
    cmd_job_wait(job);
    /* Only alice's worker gets the job, with alice's frame; bob's message is kept. */
    assert_int_equal(seen[2].jobs, 1);
    assert_int_equal(seen[0].jobs + seen[1].jobs, 0);
    assert_non_null(it->frames[0]);
    assert_null(it->frames[1]);
    assert_int_equal(seen[2].user_frames, 1);
    assert_true(it->offsets[0] != 0 && it->offsets[1] != 0 && it->offsets[0] != it->offsets[1]);
    /* History took the text over. */
    assert_null(texts[0]);
    cmd_job_free(job);
    dir_remove(&site.users, "alice", 5, 2);
}

/* Publishing thread: n messages into "race". */
static void *publisher(void *arg)
{
    for (int i = 0; i < 300; i++)
        publish_channel("race", "r");
    return arg;
}

static void test_pub_every_worker_gets_a_stream_in_offset_order(void **state)
{
    pthread_t t[2];

    for (int w = 0; w < NWORKERS; w++)
        dir_add(&site.chans, "race", 4, w);
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&t[i], NULL, publisher, NULL), 0);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    for (int w = 0; w < NWORKERS; w++) {
        assert_int_equal(seen[w].noffsets, 600);
        for (int i = 1; i < seen[w].noffsets; i++)
            assert_true(seen[w].offsets[i] > seen[w].offsets[i - 1]);
        dir_remove(&site.chans, "race", 4, w);
    }
}

static void test_pub_hand_out_sends_a_frame_as_it_is(void **state)
{
    struct cmd_job *job = cmd_job_new(CMD_PUBLISH, NWORKERS, 1);

    dir_add(&site.chans, "room", 4, 0);
    job->items[0].channel = xstrdup("room");
    job->items[0].msg = proto_presence(1, "room", "alice", NULL);
    job = pub_hand_out(&hub, job, 0);
    cmd_job_wait(job);
    assert_int_equal(seen[0].jobs, 1);
    assert_int_equal(seen[1].jobs + seen[2].jobs, 0);
    /* Presence events are not numbered: no offset, no id. */
    assert_int_equal(seen[0].offsets[0], 0);
    assert_null(strstr(seen[0].last, "\"id\""));
    cmd_job_free(job);
    dir_remove(&site.chans, "room", 4, 0);
}

static void test_pub_without_history_sends_the_text_unnumbered(void **state)
{
    char *texts[1];
    struct cmd_job *job;

    dir_add(&site.chans, "news", 4, 0);
    job = channel_job("news", "plain", &texts[0]);
    job = pub_submit(&hub, job, texts, 0);
    cmd_job_wait(job);
    assert_int_equal(seen[0].jobs, 1);
    assert_int_equal(job->items[0].offset, 0);
    assert_null(strstr(seen[0].last, "\"id\""));
    assert_non_null(strstr(seen[0].last, "\"event\":\"plain\""));
    /* Nothing kept it: the text is still the caller's. */
    assert_non_null(texts[0]);
    free(texts[0]);
    cmd_job_free(job);
    dir_remove(&site.chans, "news", 4, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_pub_goes_to_the_workers_holding_the_channel_only,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_pub_numbers_and_keeps_each_stream_in_order, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_pub_makes_user_frames_for_online_users_only, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_pub_every_worker_gets_a_stream_in_offset_order, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_pub_hand_out_sends_a_frame_as_it_is, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pub_without_history_sends_the_text_unnumbered,
                                        setup_no_history, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
