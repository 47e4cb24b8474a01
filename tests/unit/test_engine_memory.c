/*
 * test_engine_memory.c -- the memory engine (lib/route/engine_memory.c)
 * through the engine interface (engine.h), against real history (hist.c)
 * and real command queues to stand-in workers (tests/lib/fake_worker.h),
 * delivering through cmd_deliver as main.c has it: a job goes to exactly
 * the workers that hold a target; every stream's messages are numbered in
 * order, kept, and reach each worker in that order even when two threads
 * publish at once; a user's frame is made only for a user who is online;
 * without history a message goes out as it is; a replay finds what was
 * missed; presence joins and leaves once per user whatever the number of
 * tabs; online lookups and counts agree with the holds; sites share nothing.
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
#include "engine.h"
#include "../lib/fake_worker.h"
#include "hist.h"
#include "msg.h"
#include "proto.h"
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
static struct engine *engine;

/* The presence events the engine emitted, as "+site:channel:user" or "-...", in order. */
static char events[16][64];
static int nevents;

/* eng_event_fn: record the event (the tests run it on one thread). */
static void record_event(void *arg, int site, int join, const char *channel, const char *user,
                         const char *info)
{
    (void)arg;
    (void)info;
    if (nevents < 16)
        snprintf(events[nevents++], sizeof events[0], "%c%d:%s:%s", join ? '+' : '-', site, channel,
                 user);
}

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
        const struct eng_item *it = &job->items[i];

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
    const char *names[] = {"shop", "blog"};
    size_t max_bytes[] = {64 << 20, 64 << 20};

    memset(seen, 0, sizeof seen);
    nevents = 0;
    for (int i = 0; i < NWORKERS; i++)
        pthread_mutex_init(&seen[i].lock, NULL);
    fake_workers_start(workers, NWORKERS, queues, &hub, record);
    hist_init(&hist, size, 3600, 2, names, max_bytes);
    engine = eng_memory_new(&hist, 2, names, NWORKERS, cmd_deliver, record_event, &hub);
    hub.engine = engine;
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
    eng_free(engine);
    hist_free(&hist);
    for (int i = 0; i < NWORKERS; i++)
        pthread_mutex_destroy(&seen[i].lock);
    return 0;
}

/* Worker `worker` holds (or stops holding) a connection of the stream (site, kind, name). */
static void hold(int site, char kind, const char *name, int worker, int held)
{
    struct eng_stream s = {site, kind, name};

    eng_hold(engine, &s, worker, held);
}

/* eng_done_fn: the engine's answer into *arg. */
static void published(void *arg, int err)
{
    *(int *)arg = err;
}

/* Publish job through the engine (made from texts unless NULL); returns it to wait on. */
static struct cmd_job *submit(struct cmd_job *job, char **texts)
{
    struct eng_pub p = {job->site, job->items, job->nitems, texts, job, 0};
    int err = 1;

    eng_publish(engine, &p, published, &err);
    /* memory answers before it returns, and never fails. */
    assert_int_equal(err, ENG_OK);
    return job;
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

    job = submit(job, texts);
    cmd_job_wait(job);
    off = job->items[0].offset;
    cmd_job_free(job);
    free(texts[0]);
    return off;
}

static void test_engine_goes_to_the_workers_holding_the_channel_only(void **state)
{
    char id[HIST_ID_MAX], want[64];
    uint64_t off;

    hold(0, 'c', "news", 1, 1);
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
    hold(0, 'c', "news", 1, 0);
}

/* What a since callback was told: offsets of the items, the position and its id. */
struct replay {
    int err, ok;
    size_t n;
    uint64_t offsets[8];
    uint64_t last;
    char id[ENG_ID_MAX];
};

/* eng_since_fn: copy what the items are valid for during the call only. */
static void replayed(void *arg, int err, const struct eng_since *r)
{
    struct replay *rp = arg;

    rp->err = err;
    rp->ok = r->ok;
    rp->n = r->n;
    for (size_t i = 0; i < r->n && i < 8; i++)
        rp->offsets[i] = r->items[i].offset;
    rp->last = r->last;
    memcpy(rp->id, r->id, sizeof rp->id);
}

static void test_engine_numbers_and_keeps_each_stream_in_order(void **state)
{
    struct eng_stream news = {0, 'c', "news"};
    char first[ENG_ID_MAX], want[ENG_ID_MAX];
    struct replay rp = {.err = 1};
    uint64_t a, b, c;

    a = publish_channel("news", "a");
    b = publish_channel("news", "b");
    c = publish_channel("news", "c");
    assert_true(a < b && b < c);
    /* A client that saw the first asks for what followed: the other two, in order. */
    eng_id(engine, &news, a, first);
    eng_since(engine, &news, first, replayed, &rp);
    assert_int_equal(rp.err, ENG_OK);
    assert_int_equal(rp.ok, 1);
    assert_int_equal(rp.n, 2);
    assert_int_equal(rp.offsets[0], b);
    assert_int_equal(rp.offsets[1], c);
    assert_int_equal(rp.last, c);
    eng_id(engine, &news, c, want);
    assert_string_equal(rp.id, want);
    /* Up to date: nothing missed, still recoverable. */
    eng_since(engine, &news, want, replayed, &rp);
    assert_int_equal(rp.ok, 1);
    assert_int_equal(rp.n, 0);
    /* An id of another epoch cannot be vouched for: not recoverable, nothing sent. */
    eng_since(engine, &news, strcmp(want, "00000000:1") == 0 ? "00000001:1" : "00000000:1",
              replayed, &rp);
    assert_int_equal(rp.ok, 0);
    assert_int_equal(rp.n, 0);
}

/* eng_members_fn: the member list as compact JSON text into arg (256 bytes). */
static void got_members(void *arg, int err, json_t *members)
{
    char *text = json_dumps(members, JSON_COMPACT | JSON_SORT_KEYS);

    assert_int_equal(err, ENG_OK);
    snprintf(arg, 256, "%s", text);
    free(text);
    json_decref(members);
}

static void test_engine_presence_joins_and_leaves_once_per_user(void **state)
{
    struct eng_stream room = {0, 'c', "room"};
    char members[256];

    /* Two tabs of alice, on two workers: one member, one join. */
    eng_join(engine, &room, "alice", "{\"name\":\"Alice\"}", got_members, members);
    assert_string_equal(members, "[{\"info\":{\"name\":\"Alice\"},\"user\":\"alice\"}]");
    eng_join(engine, &room, "alice", NULL, NULL, NULL);
    eng_join(engine, &room, "bob", NULL, got_members, members);
    assert_int_equal(nevents, 2);
    assert_string_equal(events[0], "+0:room:alice");
    assert_string_equal(events[1], "+0:room:bob");
    eng_members(engine, &room, 1, got_members, members);
    assert_non_null(strstr(members, "\"connections\":2,\"info\":{\"name\":\"Alice\"}"));
    /* alice closes one tab: still a member, no event; the other: she leaves, once. */
    eng_leave(engine, &room, "alice");
    assert_int_equal(nevents, 2);
    eng_leave(engine, &room, "alice");
    assert_int_equal(nevents, 3);
    assert_string_equal(events[2], "-0:room:alice");
    eng_members(engine, &room, 0, got_members, members);
    assert_string_equal(members, "[{\"user\":\"bob\"}]");
    eng_leave(engine, &room, "bob");
    eng_members(engine, &room, 0, got_members, members);
    assert_string_equal(members, "[]");
}

/* eng_online_fn and eng_counts_fn: copy the answer. */
static void got_online(void *arg, int err, const struct eng_online *r)
{
    assert_int_equal(err, ENG_OK);
    *(struct eng_online *)arg = *r;
}

static void got_counts(void *arg, int err, const struct eng_counts *r)
{
    assert_int_equal(err, ENG_OK);
    *(struct eng_counts *)arg = *r;
}

static void test_engine_online_and_counts_follow_the_holds(void **state)
{
    struct eng_online on;
    struct eng_counts n;

    hold(0, 'u', "alice", 1, 1);
    hold(0, 'u', "alice", 2, 1);
    hold(0, 'c', "news", 0, 1);
    eng_online(engine, 0, "alice", got_online, &on);
    assert_false(dir_mask_has(&on.local, 0));
    assert_true(dir_mask_has(&on.local, 1));
    assert_true(dir_mask_has(&on.local, 2));
    assert_int_equal(on.remote, 0);
    eng_counts(engine, 0, got_counts, &n);
    assert_int_equal(n.users, 1);
    assert_int_equal(n.channels, 1);
    publish_channel("news", "x");
    eng_counts(engine, 0, got_counts, &n);
    assert_int_equal(n.history.streams, 1);
    assert_int_equal(n.history.messages, 1);
    hold(0, 'u', "alice", 1, 0);
    hold(0, 'u', "alice", 2, 0);
    hold(0, 'c', "news", 0, 0);
    eng_online(engine, 0, "alice", got_online, &on);
    assert_true(dir_mask_empty(&on.local));
    eng_counts(engine, 0, got_counts, &n);
    assert_int_equal(n.users, 0);
    assert_int_equal(n.channels, 0);
}

static void test_engine_sites_share_nothing(void **state)
{
    struct eng_stream room_blog = {1, 'c', "room"}, room_shop = {0, 'c', "room"};
    struct eng_online on;
    struct eng_counts n;
    char members[256];
    char *texts[1];
    struct cmd_job *job;

    /* shop's alice and news subscribers are nothing to blog. */
    hold(0, 'u', "alice", 1, 1);
    hold(0, 'c', "news", 1, 1);
    eng_online(engine, 1, "alice", got_online, &on);
    assert_true(dir_mask_empty(&on.local));
    eng_counts(engine, 1, got_counts, &n);
    assert_int_equal(n.users + n.channels, 0);
    /* blog publishing into a "news" of its own reaches no shop worker. */
    job = channel_job("news", "blog-only", &texts[0]);
    job->site = 1;
    job = submit(job, texts);
    cmd_job_wait(job);
    assert_int_equal(seen[0].jobs + seen[1].jobs + seen[2].jobs, 0);
    cmd_job_free(job);
    free(texts[0]);
    /* Presence in blog's "room" is blog's: events say so, shop's room stays empty. */
    eng_join(engine, &room_blog, "alice", NULL, NULL, NULL);
    assert_int_equal(nevents, 1);
    assert_string_equal(events[0], "+1:room:alice");
    eng_members(engine, &room_shop, 0, got_members, members);
    assert_string_equal(members, "[]");
    eng_leave(engine, &room_blog, "alice");
    hold(0, 'u', "alice", 1, 0);
    hold(0, 'c', "news", 1, 0);
}

static void test_engine_makes_user_frames_for_online_users_only(void **state)
{
    struct cmd_job *job = cmd_job_new(CMD_PUBLISH, NWORKERS, 1);
    char *texts[1] = {proto_channel_text(NULL, "dm", NULL, NULL)};
    struct eng_item *it = &job->items[0];

    it->users = xcalloc(2, sizeof *it->users);
    it->users[0] = xstrdup("alice");
    it->users[1] = xstrdup("bob");
    it->nusers = 2;
    hold(0, 'u', "alice", 2, 1);
    job = submit(job, texts);
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
    hold(0, 'u', "alice", 2, 0);
}

/* Publishing thread: n messages into "race". */
static void *publisher(void *arg)
{
    for (int i = 0; i < 300; i++)
        publish_channel("race", "r");
    return arg;
}

static void test_engine_every_worker_gets_a_stream_in_offset_order(void **state)
{
    pthread_t t[2];

    for (int w = 0; w < NWORKERS; w++)
        hold(0, 'c', "race", w, 1);
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&t[i], NULL, publisher, NULL), 0);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    for (int w = 0; w < NWORKERS; w++) {
        assert_int_equal(seen[w].noffsets, 600);
        for (int i = 1; i < seen[w].noffsets; i++)
            assert_true(seen[w].offsets[i] > seen[w].offsets[i - 1]);
        hold(0, 'c', "race", w, 0);
    }
}

static void test_engine_hand_out_sends_a_frame_as_it_is(void **state)
{
    struct cmd_job *job = cmd_job_new(CMD_PUBLISH, NWORKERS, 1);

    hold(0, 'c', "room", 0, 1);
    job->items[0].channel = xstrdup("room");
    job->items[0].msg = proto_presence(1, "room", "alice", NULL);
    job = submit(job, NULL);
    cmd_job_wait(job);
    assert_int_equal(seen[0].jobs, 1);
    assert_int_equal(seen[1].jobs + seen[2].jobs, 0);
    /* Presence events are not numbered: no offset, no id. */
    assert_int_equal(seen[0].offsets[0], 0);
    assert_null(strstr(seen[0].last, "\"id\""));
    cmd_job_free(job);
    hold(0, 'c', "room", 0, 0);
}

static void test_engine_without_history_sends_the_text_unnumbered(void **state)
{
    char *texts[1];
    struct cmd_job *job;

    hold(0, 'c', "news", 0, 1);
    job = channel_job("news", "plain", &texts[0]);
    job = submit(job, texts);
    cmd_job_wait(job);
    assert_int_equal(seen[0].jobs, 1);
    assert_int_equal(job->items[0].offset, 0);
    assert_null(strstr(seen[0].last, "\"id\""));
    assert_non_null(strstr(seen[0].last, "\"event\":\"plain\""));
    /* Nothing kept it: the text is still the caller's. */
    assert_non_null(texts[0]);
    free(texts[0]);
    cmd_job_free(job);
    hold(0, 'c', "news", 0, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_engine_goes_to_the_workers_holding_the_channel_only,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_engine_numbers_and_keeps_each_stream_in_order, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_engine_presence_joins_and_leaves_once_per_user, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_engine_online_and_counts_follow_the_holds, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_engine_sites_share_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_engine_makes_user_frames_for_online_users_only, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_engine_every_worker_gets_a_stream_in_offset_order,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_engine_hand_out_sends_a_frame_as_it_is, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_engine_without_history_sends_the_text_unnumbered,
                                        setup_no_history, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
