/*
 * test_engine_redis.c -- the Redis engine (lib/route/engine_redis.c,
 * engine_redis_sub.c) through the engine interface (engine.h), two
 * engines ("nodes") on one real redis-server (redis_fixture.h), with
 * stand-ins for what main.c hands it: deliver, post, hand and event record
 * what they are given. A message published on one node is handed to the
 * workers holding its stream on the other, numbered, and on no node that
 * does not hold it; a worker's replay is answered on that worker's loop
 * (through post), never on the engine's thread; presence joins once per
 * user across nodes; with Redis gone a publish is refused at once; once
 * stopped, every call answers at once.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "engine.h"
#include "msg.h"
#include "redis_fixture.h"
#include "xmalloc.h"

/* What one node's callbacks were given. */
struct node {
    struct engine *e;
    pthread_mutex_t lock;
    char handed[16][256]; /* each handed item's frame payload */
    uint64_t masks[16];   /* and the workers it went to */
    int nhanded;
    int delivered; /* jobs given to deliver */
    char events[8][64];
    int nevents;
    void (*posted_fn[16])(void *); /* post's calls, run by the test thread */
    void *posted_arg[16];
    int nposted;
    int nran; /* of those, run */
};

static struct node nodes[2];

/* A frame's payload as text (short, unmasked text frames). */
static void payload(const struct msg *m, char *out, size_t size)
{
    size_t hdr = (m->data[1] & 0x7f) < 126 ? 2 : 4;
    size_t n = m->len - hdr < size - 1 ? m->len - hdr : size - 1;

    memcpy(out, m->data + hdr, n);
    out[n] = '\0';
}

/* eng_deliver_fn: a job that reaches no worker here is done at once. */
static void deliver(void *arg, void *job, const struct dir_mask *mask, int detached)
{
    struct node *n = arg;

    pthread_mutex_lock(&n->lock);
    n->delivered++;
    pthread_mutex_unlock(&n->lock);
    assert_true(dir_mask_empty(mask));
}

/* eng_hand_fn: record each item's frame and mask, then free the items as cmd_job_free would. */
static void hand(void *arg, int site, struct eng_item *items, size_t nitems,
                 const struct dir_mask *mask)
{
    struct node *n = arg;

    pthread_mutex_lock(&n->lock);
    for (size_t i = 0; i < nitems; i++) {
        struct eng_item *it = &items[i];
        struct msg *m = it->msg != NULL ? it->msg : it->frames != NULL ? it->frames[0] : NULL;

        if (n->nhanded < 16) {
            if (m != NULL)
                payload(m, n->handed[n->nhanded], sizeof n->handed[0]);
            else
                snprintf(n->handed[n->nhanded], sizeof n->handed[0], "catch-up");
            n->masks[n->nhanded++] = mask->bits[0];
        }
        eng_item_clear(it);
    }
    free(items);
    pthread_mutex_unlock(&n->lock);
}

/* eng_post_fn: kept for the test thread, which plays worker 0's loop. */
static void post(void *arg, int worker, void (*fn)(void *), void *fnarg)
{
    struct node *n = arg;

    assert_int_equal(worker, 0);
    pthread_mutex_lock(&n->lock);
    assert_true(n->nposted < 16);
    n->posted_fn[n->nposted] = fn;
    n->posted_arg[n->nposted++] = fnarg;
    pthread_mutex_unlock(&n->lock);
}

/* eng_event_fn */
static void event(void *arg, int site, int join, const char *channel, const char *user,
                  const char *info)
{
    struct node *n = arg;

    pthread_mutex_lock(&n->lock);
    if (n->nevents < 8)
        snprintf(n->events[n->nevents++], sizeof n->events[0], "%c%s:%s", join ? '+' : '-', channel,
                 user);
    pthread_mutex_unlock(&n->lock);
}

/* Run what was posted to worker 0 of n and not run yet, as its loop would; returns how many. */
static int run_posted(struct node *n)
{
    int ran = 0;

    for (;;) {
        void (*fn)(void *) = NULL;
        void *arg = NULL;

        pthread_mutex_lock(&n->lock);
        if (n->nran < n->nposted) {
            fn = n->posted_fn[n->nran];
            arg = n->posted_arg[n->nran++];
        }
        pthread_mutex_unlock(&n->lock);
        if (fn == NULL)
            return ran;
        fn(arg);
        ran++;
    }
}

/* Wait (up to seconds) until *counter, read under n's lock, reaches want. */
static int wait_for(struct node *n, const int *counter, int want, double seconds)
{
    for (int i = 0; i < (int)(seconds * 1000); i++) {
        int v;

        pthread_mutex_lock(&n->lock);
        v = *counter;
        pthread_mutex_unlock(&n->lock);
        if (v >= want)
            return v;
        usleep(1000);
    }
    pthread_mutex_lock(&n->lock);
    int v = *counter;
    pthread_mutex_unlock(&n->lock);
    return v;
}

/* eng_counts_fn: the engine says it is available (both links up). */
static void counted(void *arg, int err, const struct eng_counts *r)
{
    *(int *)arg = err == ENG_OK;
}

/* Two nodes on the test's Redis, each with one site and two workers; wait until both are up. */
static void nodes_start(void)
{
    static const char *const names[] = {"shop"};
    char address[128];

    snprintf(address, sizeof address, "unix:%s", sock);
    for (int i = 0; i < 2; i++) {
        struct eng_redis_cfg cfg = {
            .address = address,
            .prefix = "t:",
            .node = i == 0 ? "a" : "b",
            .timeout = 1.0,
            .history_size = 10,
            .history_ttl = 60,
        };

        memset(&nodes[i], 0, sizeof nodes[i]);
        pthread_mutex_init(&nodes[i].lock, NULL);
        nodes[i].e = eng_redis_new(&cfg, 1, names, 2, deliver, event, post, hand, &nodes[i]);
        assert_non_null(nodes[i].e);
    }
    /* Available once both links are up: /stats's figure. */
    for (int i = 0; i < 2; i++) {
        int up = 0;

        for (int t = 0; t < 3000 && !up; t++) {
            eng_counts(nodes[i].e, 0, counted, &up);
            if (!up)
                usleep(1000);
        }
        assert_true(up);
    }
}

static void nodes_stop(void)
{
    for (int i = 0; i < 2; i++) {
        eng_stop(nodes[i].e);
        run_posted(&nodes[i]);
        eng_free(nodes[i].e);
        pthread_mutex_destroy(&nodes[i].lock);
    }
}

/* eng_done_fn for a publish from the test thread (no loop: answered on the engine's). */
static void published(void *arg, int err)
{
    atomic_store((atomic_int *)arg, err == ENG_OK ? 1 : -1);
}

/* Publish text to user (or channel) through n as the API does; returns the answer (1 or -1). */
static int publish(struct node *n, const char *user, const char *channel, const char *text,
                   uint64_t *reached)
{
    struct eng_item item;
    char *texts[1] = {xstrdup(text)};
    char *users[1] = {(char *)user};
    int job;
    atomic_int done = 0;
    struct eng_pub p = {0, &item, 1, texts, &job, 0};

    memset(&item, 0, sizeof item);
    if (user != NULL) {
        item.users = users;
        item.nusers = 1;
    }
    item.channel = (char *)channel;
    eng_publish(n->e, &p, published, &done);
    for (int i = 0; i < 3000 && atomic_load(&done) == 0; i++)
        usleep(1000);
    free(texts[0]);
    if (reached != NULL)
        *reached = item.reached;
    return atomic_load(&done);
}

static void test_redis_a_message_reaches_the_node_holding_its_stream_only(void **state)
{
    struct eng_stream u = {0, 'u', "42"};
    uint64_t reached = 99;
    int published = 0;

    redis_start(NULL);
    nodes_start();
    eng_hold(nodes[0].e, &u, 1, 1);
    /* The hold's SUBSCRIBE takes effect in the background: publish until it has. */
    for (int i = 0; i < 200 && reached == 99; i++) {
        assert_int_equal(publish(&nodes[1], "42", NULL, "{\"event\":\"e\"}", &reached), 1);
        published++;
        if (reached == 0) {
            reached = 99;
            usleep(10000);
        }
    }
    assert_int_equal(reached, 1); /* one node holds the user */
    assert_int_equal(wait_for(&nodes[0], &nodes[0].nhanded, 1, 3), 1);
    assert_non_null(strstr(nodes[0].handed[0], "\"event\":\"e\""));
    assert_non_null(strstr(nodes[0].handed[0], "\"id\":\""));
    assert_int_equal(nodes[0].masks[0], 1u << 1);    /* worker 1 holds it */
    assert_int_equal(nodes[1].nhanded, 0);           /* node b holds nothing */
    assert_int_equal(nodes[1].delivered, published); /* each job itself, to no worker */
    eng_hold(nodes[0].e, &u, 1, 0);
    nodes_stop();
}

/* eng_since_fn: record the answer. */
struct replay {
    int answered;
    int err;
    int ok;
    size_t n;
    char id[ENG_ID_MAX];
    int on_engine_thread;
};

static pthread_t test_thread;

static void replayed(void *arg, int err, const struct eng_since *r)
{
    struct replay *rp = arg;

    rp->answered = 1;
    rp->err = err;
    rp->on_engine_thread = !pthread_equal(pthread_self(), test_thread);
    if (err == ENG_OK) {
        rp->ok = r->ok;
        rp->n = r->n;
        snprintf(rp->id, sizeof rp->id, "%s", r->id);
    }
}

static void test_redis_a_workers_replay_is_answered_on_its_own_loop(void **state)
{
    struct eng_stream c = {0, 'c', "news"};
    struct replay rp = {0};
    uint64_t reached = 0;

    test_thread = pthread_self();
    redis_start(NULL);
    nodes_start();
    assert_int_equal(publish(&nodes[1], NULL, "news", "{\"event\":\"one\"}", &reached), 1);
    assert_int_equal(publish(&nodes[1], NULL, "news", "{\"event\":\"two\"}", &reached), 1);
    eng_bind(nodes[0].e, 0); /* the test thread is worker 0 of node a from now on */
    eng_hold(nodes[0].e, &c, 0, 1);
    eng_since(nodes[0].e, &c, "", replayed, &rp);
    assert_int_equal(wait_for(&nodes[0], &nodes[0].nposted, 1, 3), 1);
    assert_int_equal(rp.answered, 0); /* not before the worker's loop runs it */
    assert_int_equal(run_posted(&nodes[0]), 1);
    assert_int_equal(rp.answered, 1);
    assert_int_equal(rp.on_engine_thread, 0);
    assert_int_equal(rp.err, ENG_OK);
    assert_int_equal(rp.ok, 1);
    assert_non_null(strstr(rp.id, ":2")); /* the position: two published */
    eng_hold(nodes[0].e, &c, 0, 0);
    eng_bind(nodes[0].e, -1);
    nodes_stop();
}

/* eng_members_fn */
static void got_members(void *arg, int err, json_t *members)
{
    *(int *)arg = err == ENG_OK ? (int)json_array_size(members) + 1 : -1;
    json_decref(members);
}

static void test_redis_presence_joins_once_per_user_across_nodes(void **state)
{
    struct eng_stream ch = {0, 'c', "room"};
    int m1 = 0, m2 = 0;

    redis_start(NULL);
    nodes_start();
    eng_hold(nodes[0].e, &ch, 0, 1); /* node a has a subscriber: it gets the events */
    usleep(200000);
    eng_join(nodes[0].e, &ch, "7", NULL, got_members, &m1);
    eng_join(nodes[1].e, &ch, "7", "{\"n\":1}", got_members, &m2);
    for (int i = 0; i < 3000 && (m1 == 0 || m2 == 0); i++)
        usleep(1000);
    assert_int_equal(m1, 2); /* one member */
    assert_int_equal(m2, 2); /* the same one */
    usleep(300000);
    assert_int_equal(nodes[0].nevents, 1);
    assert_string_equal(nodes[0].events[0], "+room:7");
    eng_leave(nodes[1].e, &ch, "7");
    usleep(200000);
    assert_int_equal(nodes[0].nevents, 1); /* still a member through node a */
    eng_leave(nodes[0].e, &ch, "7");
    assert_int_equal(wait_for(&nodes[0], &nodes[0].nevents, 2, 3), 2);
    assert_string_equal(nodes[0].events[1], "-room:7");
    eng_hold(nodes[0].e, &ch, 0, 0);
    nodes_stop();
}

static void test_redis_gone_refuses_a_publish_at_once(void **state)
{
    struct eng_item item;
    char *texts[1] = {xstrdup("{\"event\":\"e\"}")};
    char *users[1] = {"42"};
    int job, answered = 0;
    atomic_int done = 0;
    struct eng_pub p = {0, &item, 1, texts, &job, 0};

    redis_start(NULL);
    nodes_start();
    redis_kill();
    /* The links notice at once (the socket closes); the engine is then unavailable. */
    for (int i = 0; i < 3000; i++) {
        memset(&item, 0, sizeof item);
        item.users = users;
        item.nusers = 1;
        atomic_store(&done, 0);
        eng_publish(nodes[0].e, &p, published, &done);
        answered = atomic_load(&done);
        if (answered == -1)
            break;
        while (atomic_load(&done) == 0)
            usleep(1000);
        if (texts[0] == NULL)
            texts[0] = xstrdup("{\"event\":\"e\"}");
        usleep(1000);
    }
    assert_int_equal(answered, -1); /* answered before eng_publish returned */
    assert_non_null(texts[0]);      /* the text is still the caller's */
    free(texts[0]);
    nodes_stop();
}

static void test_redis_stopped_answers_every_call_at_once(void **state)
{
    struct eng_stream u = {0, 'u', "1"};
    struct replay rp = {0};

    test_thread = pthread_self();
    redis_start(NULL);
    nodes_start();
    eng_stop(nodes[0].e);
    eng_since(nodes[0].e, &u, "", replayed, &rp);
    assert_int_equal(rp.answered, 1);
    assert_int_equal(rp.err, ENG_E_UNAVAILABLE);
    assert_int_equal(publish(&nodes[0], "1", NULL, "{}", NULL), -1);
    nodes_stop();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(
            test_redis_a_message_reaches_the_node_holding_its_stream_only, redis_setup,
            redis_teardown),
        cmocka_unit_test_setup_teardown(test_redis_a_workers_replay_is_answered_on_its_own_loop,
                                        redis_setup, redis_teardown),
        cmocka_unit_test_setup_teardown(test_redis_presence_joins_once_per_user_across_nodes,
                                        redis_setup, redis_teardown),
        cmocka_unit_test_setup_teardown(test_redis_gone_refuses_a_publish_at_once, redis_setup,
                                        redis_teardown),
        cmocka_unit_test_setup_teardown(test_redis_stopped_answers_every_call_at_once, redis_setup,
                                        redis_teardown),
    };

    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
