/*
 * test_pres.c -- unit tests for presence across workers (pres.c).
 *
 * Covers:     counts across a user's tabs; the emit callback called exactly
 *             once on the first join and the last leave, with the right
 *             arguments; the info kept from the first join; member lists
 *             with and without counts (valid JSON, info as objects); the
 *             members handed back by pres_join; a leave that matches no
 *             join (logged, no emit, no crash); pres_free with members left;
 *             and four threads joining and leaving the same channels while
 *             a fifth reads member lists, after which every (channel, user)
 *             has alternating join/leave events that end balanced.
 * Invariants: the emit callback runs under the channel's stripe lock; the
 *             threaded test relies on that (see record_threaded).
 */
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "pres.h"

/* One emit call, copied. */
struct event {
    int join;
    char channel[64];
    char user[64];
    char info[128];
    int has_info;
};

/* What the single-threaded tests' callback saw. */
struct events {
    int n;
    struct event ev[32];
};

/* The single-threaded emit callback: append a copy of the call. */
static void record(void *arg, int join, const char *channel, const char *user, const char *info)
{
    struct events *e = arg;
    struct event *v;

    assert_true(e->n < (int)(sizeof(e->ev) / sizeof(e->ev[0])));
    v = &e->ev[e->n++];
    v->join = join;
    snprintf(v->channel, sizeof v->channel, "%s", channel);
    snprintf(v->user, sizeof v->user, "%s", user);
    v->has_info = info != NULL;
    snprintf(v->info, sizeof v->info, "%s", info != NULL ? info : "");
}

/* Check event i: kind, channel, user and info (NULL: none). */
static void check_event(const struct events *e, int i, int join, const char *channel,
                        const char *user, const char *info)
{
    assert_true(i < e->n);
    assert_int_equal(e->ev[i].join, join);
    assert_string_equal(e->ev[i].channel, channel);
    assert_string_equal(e->ev[i].user, user);
    assert_int_equal(e->ev[i].has_info, info != NULL);
    if (info != NULL)
        assert_string_equal(e->ev[i].info, info);
}

/* The member object for user in arr, or NULL. */
static json_t *member(json_t *arr, const char *user)
{
    size_t i;
    json_t *m;

    json_array_foreach (arr, i, m) {
        const char *u = json_string_value(json_object_get(m, "user"));

        if (u != NULL && strcmp(u, user) == 0)
            return m;
    }
    return NULL;
}

/* The member list, after a round trip through text to show it is valid JSON. */
static json_t *members(struct pres *p, const char *channel, int counts)
{
    json_t *arr = pres_members(p, channel, counts);
    char *text;
    json_t *back;

    assert_non_null(arr);
    assert_true(json_is_array(arr));
    text = json_dumps(arr, JSON_COMPACT);
    assert_non_null(text);
    back = json_loads(text, 0, NULL);
    assert_non_null(back);
    assert_true(json_equal(arr, back));
    free(text);
    json_decref(arr);
    return back;
}

/* user's connection count in channel as the counted list shows it; 0 when absent. */
static json_int_t connections(struct pres *p, const char *channel, const char *user)
{
    json_t *arr = members(p, channel, 1);
    json_t *m = member(arr, user);
    json_int_t n = 0;

    if (m != NULL) {
        assert_true(json_is_integer(json_object_get(m, "connections")));
        n = json_integer_value(json_object_get(m, "connections"));
    }
    json_decref(arr);
    return n;
}

/* Check that member m carries exactly the info object given as text (NULL: no info). */
static void check_info(json_t *m, const char *info)
{
    json_t *got = json_object_get(m, "info");

    if (info == NULL) {
        assert_null(got);
    } else {
        json_t *want = json_loads(info, 0, NULL);

        assert_non_null(want);
        assert_true(json_is_object(got));
        assert_true(json_equal(got, want));
        json_decref(want);
    }
}

static void test_pres_tabs_counted_one_event_each_way(void **state)
{
    struct pres p;
    struct events e = {0};

    pres_init(&p);
    /* the first tab joins: one event */
    pres_join(&p, "room:1", "42", "{\"name\":\"Ann\"}", record, &e, NULL);
    assert_int_equal(e.n, 1);
    check_event(&e, 0, 1, "room:1", "42", "{\"name\":\"Ann\"}");
    /* two more tabs (on any worker): silent */
    pres_join(&p, "room:1", "42", "{\"name\":\"Ann\"}", record, &e, NULL);
    pres_join(&p, "room:1", "42", NULL, record, &e, NULL);
    assert_int_equal(e.n, 1);
    assert_int_equal(connections(&p, "room:1", "42"), 3);
    /* two of three leave: silent */
    pres_leave(&p, "room:1", "42", record, &e);
    pres_leave(&p, "room:1", "42", record, &e);
    assert_int_equal(e.n, 1);
    assert_int_equal(connections(&p, "room:1", "42"), 1);
    /* the last leaves: one event, with no info */
    pres_leave(&p, "room:1", "42", record, &e);
    assert_int_equal(e.n, 2);
    check_event(&e, 1, 0, "room:1", "42", NULL);
    assert_int_equal(connections(&p, "room:1", "42"), 0);
    /* and joins again: a fresh join event */
    pres_join(&p, "room:1", "42", NULL, record, &e, NULL);
    assert_int_equal(e.n, 3);
    check_event(&e, 2, 1, "room:1", "42", NULL);
    pres_leave(&p, "room:1", "42", record, &e);
    assert_int_equal(e.n, 4);
    check_event(&e, 3, 0, "room:1", "42", NULL);
    pres_free(&p);
}

static void test_pres_users_and_channels_are_separate(void **state)
{
    struct pres p;
    struct events e = {0};

    pres_init(&p);
    pres_join(&p, "room:1", "42", NULL, record, &e, NULL);
    pres_join(&p, "room:2", "42", NULL, record, &e, NULL);
    pres_join(&p, "room:1", "7", NULL, record, &e, NULL);
    /* user ids and channel names are whole strings */
    pres_join(&p, "room:1", "4", NULL, record, &e, NULL);
    pres_join(&p, "room:10", "42", NULL, record, &e, NULL);
    assert_int_equal(e.n, 5);
    check_event(&e, 1, 1, "room:2", "42", NULL);
    check_event(&e, 3, 1, "room:1", "4", NULL);
    check_event(&e, 4, 1, "room:10", "42", NULL);
    assert_int_equal(connections(&p, "room:1", "42"), 1);
    assert_int_equal(connections(&p, "room:1", "4"), 1);
    /* 42 leaves room:1: room:2 and room:10 keep it, 7 stays in room:1 */
    pres_leave(&p, "room:1", "42", record, &e);
    assert_int_equal(e.n, 6);
    check_event(&e, 5, 0, "room:1", "42", NULL);
    assert_int_equal(connections(&p, "room:2", "42"), 1);
    assert_int_equal(connections(&p, "room:10", "42"), 1);
    assert_int_equal(connections(&p, "room:1", "7"), 1);
    assert_int_equal(connections(&p, "room:1", "4"), 1);
    pres_leave(&p, "room:1", "7", record, &e);
    pres_leave(&p, "room:1", "4", record, &e);
    pres_leave(&p, "room:2", "42", record, &e);
    pres_leave(&p, "room:10", "42", record, &e);
    assert_int_equal(e.n, 10);
    check_event(&e, 9, 0, "room:10", "42", NULL);
    pres_free(&p);
}

static void test_pres_info_from_first_join(void **state)
{
    struct pres p;
    struct events e = {0};
    json_t *arr;

    pres_init(&p);
    pres_join(&p, "room:1", "42", "{\"name\":\"Ann\"}", record, &e, NULL);
    /* a later tab with other info changes nothing */
    pres_join(&p, "room:1", "42", "{\"name\":\"Annie\"}", record, &e, NULL);
    arr = members(&p, "room:1", 0);
    assert_int_equal(json_array_size(arr), 1);
    check_info(member(arr, "42"), "{\"name\":\"Ann\"}");
    json_decref(arr);
    /* a first join without info keeps none, even when a later tab has some */
    pres_join(&p, "room:1", "7", NULL, record, &e, NULL);
    pres_join(&p, "room:1", "7", "{\"name\":\"Bob\"}", record, &e, NULL);
    arr = members(&p, "room:1", 0);
    check_info(member(arr, "7"), NULL);
    json_decref(arr);
    assert_int_equal(e.n, 2);
    check_event(&e, 1, 1, "room:1", "7", NULL);
    /* once every tab has left, the next first join brings its own info */
    pres_leave(&p, "room:1", "42", record, &e);
    pres_leave(&p, "room:1", "42", record, &e);
    pres_join(&p, "room:1", "42", "{\"name\":\"Annie\"}", record, &e, NULL);
    check_event(&e, 3, 1, "room:1", "42", "{\"name\":\"Annie\"}");
    arr = members(&p, "room:1", 0);
    check_info(member(arr, "42"), "{\"name\":\"Annie\"}");
    json_decref(arr);
    /* left in the table on purpose: pres_free frees it (ASan checks) */
    pres_free(&p);
}

static void test_pres_members_lists(void **state)
{
    static const char *const info_ann =
        "{\"name\":\"Ann \\\"A\\\" {x}\",\"tags\":[1,2],\"n\":{\"o\":null},\"u\":\"\\u00e9\"}";
    struct pres p;
    struct events e = {0};
    json_t *arr, *m;

    pres_init(&p);
    /* nobody there: an empty array, with or without counts */
    arr = members(&p, "room:none", 0);
    assert_int_equal(json_array_size(arr), 0);
    json_decref(arr);
    arr = members(&p, "room:none", 1);
    assert_int_equal(json_array_size(arr), 0);
    json_decref(arr);

    pres_join(&p, "room:1", "42", info_ann, record, &e, NULL);
    pres_join(&p, "room:1", "42", NULL, record, &e, NULL);
    pres_join(&p, "room:1", "7", NULL, record, &e, NULL);
    pres_join(&p, "room:1", "user with \"quotes\" and \\", "{}", record, &e, NULL);

    /* without counts: exactly {"user","info"?} */
    arr = members(&p, "room:1", 0);
    assert_int_equal(json_array_size(arr), 3);
    m = member(arr, "42");
    assert_non_null(m);
    check_info(m, info_ann);
    assert_int_equal(json_object_size(m), 2);
    m = member(arr, "7");
    assert_non_null(m);
    check_info(m, NULL);
    assert_int_equal(json_object_size(m), 1);
    m = member(arr, "user with \"quotes\" and \\");
    assert_non_null(m);
    check_info(m, "{}");
    json_decref(arr);

    /* with counts: "connections" added */
    arr = members(&p, "room:1", 1);
    assert_int_equal(json_array_size(arr), 3);
    m = member(arr, "42");
    assert_int_equal(json_object_size(m), 3);
    check_info(m, info_ann);
    assert_int_equal(json_integer_value(json_object_get(m, "connections")), 2);
    m = member(arr, "7");
    assert_int_equal(json_object_size(m), 2);
    assert_int_equal(json_integer_value(json_object_get(m, "connections")), 1);
    json_decref(arr);

    /* other channels are not mixed in */
    arr = members(&p, "room:10", 0);
    assert_int_equal(json_array_size(arr), 0);
    json_decref(arr);
    pres_free(&p);
}

static void test_pres_join_hands_back_members(void **state)
{
    struct pres p;
    struct events e = {0};
    json_t *list = NULL;

    pres_init(&p);
    pres_join(&p, "room:1", "42", "{\"name\":\"Ann\"}", record, &e, &list);
    /* the subscriber is in its own list, without counts */
    assert_non_null(list);
    assert_int_equal(json_array_size(list), 1);
    check_info(member(list, "42"), "{\"name\":\"Ann\"}");
    assert_null(json_object_get(member(list, "42"), "connections"));
    json_decref(list);
    list = NULL;
    pres_join(&p, "room:1", "7", NULL, record, &e, &list);
    assert_int_equal(json_array_size(list), 2);
    assert_non_null(member(list, "42"));
    assert_non_null(member(list, "7"));
    json_decref(list);
    list = NULL;
    /* a second tab gets the list too, with no event */
    pres_join(&p, "room:1", "7", NULL, record, &e, &list);
    assert_int_equal(json_array_size(list), 2);
    assert_int_equal(e.n, 2);
    json_decref(list);
    pres_free(&p);
}

/* Run fn with stderr going to a temporary file; returns what was written (static). */
static const char *capture_stderr(void (*fn)(void *), void *arg)
{
    static char out[4096];
    FILE *tmp = tmpfile();
    int saved = dup(STDERR_FILENO);
    size_t n;

    assert_non_null(tmp);
    assert_true(saved >= 0);
    assert_true(dup2(fileno(tmp), STDERR_FILENO) >= 0);
    fn(arg);
    assert_true(dup2(saved, STDERR_FILENO) >= 0);
    close(saved);
    rewind(tmp);
    n = fread(out, 1, sizeof out - 1, tmp);
    out[n] = '\0';
    fclose(tmp);
    return out;
}

struct stray {
    struct pres *p;
    struct events *e;
};

/* Leaves that match no join: an unknown channel, an unknown user, one leave too many. */
static void stray_leaves(void *arg)
{
    struct stray *s = arg;

    pres_leave(s->p, "room:never", "42", record, s->e);
    pres_leave(s->p, "room:1", "nobody", record, s->e);
    pres_leave(s->p, "room:1", "42", record, s->e);
    pres_leave(s->p, "room:1", "42", record, s->e);
}

static void test_pres_leave_without_join(void **state)
{
    struct pres p;
    struct events e = {0};
    struct stray s = {&p, &e};
    const char *log;
    const char *at;
    int lines = 0;

    pres_init(&p);
    pres_join(&p, "room:1", "42", NULL, record, &e, NULL);
    assert_int_equal(e.n, 1);
    log = capture_stderr(stray_leaves, &s);
    /* the one real leave emitted; the three strays did not */
    assert_int_equal(e.n, 2);
    check_event(&e, 1, 0, "room:1", "42", NULL);
    /* each stray is one error line naming the user and channel */
    for (at = log; (at = strstr(at, "never joined")) != NULL; at++)
        lines++;
    assert_int_equal(lines, 3);
    assert_non_null(strstr(log, "room:never"));
    assert_non_null(strstr(log, "nobody"));
    /* the table is still usable and empty */
    assert_int_equal(connections(&p, "room:1", "42"), 0);
    pres_join(&p, "room:1", "42", NULL, record, &e, NULL);
    assert_int_equal(e.n, 3);
    check_event(&e, 2, 1, "room:1", "42", NULL);
    pres_free(&p);
}

/* ---- many threads ---- */

/*
 * Few (channel, user) pairs and many rounds: the contention per pair is what
 * exposes an event handed on outside the lock (room:0 and room:1 fall in
 * different stripes). Measured: moving pres_join's emit after the unlock
 * fails this test in most runs on two cores; it takes about a second.
 */
enum { TH = 4, NCHAN = 2, NUSER = 2, ROUNDS = 4000, TABS = 2 };
/* at most one event per join or leave call */
#define MAX_EVENTS (TH * ROUNDS * NUSER * TABS * 2)

/* One event of the threaded test, per channel. */
struct tev {
    unsigned char join;
    unsigned char user;
    unsigned char from; /* the thread whose info the join carries */
};

/*
 * Per-channel event logs. Each log is appended to only from the emit
 * callback, which runs under that channel's stripe lock, so two appends to
 * one log never overlap and need no lock of their own; different channels
 * have different logs. The main thread reads them only after every worker
 * is joined.
 */
static struct tev chan_log[NCHAN][MAX_EVENTS];
static int chan_nlog[NCHAN];
static atomic_int threaded_bad; /* callback arguments that made no sense */

/* Channel index from "room:N"; -1 if not one of ours. */
static int chan_index(const char *channel)
{
    int i;

    if (sscanf(channel, "room:%d", &i) != 1 || i < 0 || i >= NCHAN)
        return -1;
    return i;
}

/* The threaded emit callback. */
static void record_threaded(void *arg, int join, const char *channel, const char *user,
                            const char *info)
{
    int c = chan_index(channel);
    int u = -1, t = -1;

    if (sscanf(user, "u%d", &u) != 1 || u < 0 || u >= NUSER || c < 0 ||
        chan_nlog[c] >= MAX_EVENTS) {
        atomic_fetch_add(&threaded_bad, 1);
        return;
    }
    /* a join carries the first joiner's info, a leave none */
    if (join ? (info == NULL || sscanf(info, "{\"t\":%d}", &t) != 1 || t < 0 || t >= TH)
             : info != NULL) {
        atomic_fetch_add(&threaded_bad, 1);
        return;
    }
    chan_log[c][chan_nlog[c]++] =
        (struct tev){(unsigned char)join, (unsigned char)u, (unsigned char)(join ? t : 0)};
    /* give the CPU away: a callback run outside the lock would be overtaken here */
    sched_yield();
}

struct churner {
    struct pres *p;
    int id;
};

static atomic_int churning; /* worker threads still running */

/* One worker: join and leave every (channel, user), with up to TABS tabs open at once. */
static void *churn(void *arg)
{
    struct churner *w = arg;
    char channel[16], user[16], info[16];

    snprintf(info, sizeof info, "{\"t\":%d}", w->id);
    for (int r = 0; r < ROUNDS; r++) {
        for (int k = 0; k < NCHAN * NUSER; k++) {
            /* each thread walks the pairs in its own order */
            int i = (k * (2 * w->id + 1) + r) % (NCHAN * NUSER);

            snprintf(channel, sizeof channel, "room:%d", i % NCHAN);
            snprintf(user, sizeof user, "u%d", i / NCHAN);
            for (int tab = 0; tab < TABS; tab++)
                pres_join(w->p, channel, user, info, record_threaded, NULL, NULL);
            if ((r + w->id) % 2 == 0)
                pres_leave(w->p, channel, user, record_threaded, NULL);
            else
                sched_yield();
            for (int tab = (r + w->id) % 2 == 0 ? 1 : 0; tab < TABS; tab++)
                pres_leave(w->p, channel, user, record_threaded, NULL);
        }
    }
    atomic_fetch_sub(&churning, 1);
    return NULL;
}

/* An API thread: reads member lists while the workers churn; each must be sane. */
static void *read_members(void *arg)
{
    struct pres *p = arg;
    char channel[16];
    long bad = 0;

    while (atomic_load(&churning) > 0) {
        for (int c = 0; c < NCHAN; c++) {
            json_t *arr, *m;
            size_t i;

            snprintf(channel, sizeof channel, "room:%d", c);
            arr = pres_members(p, channel, 1);
            if (!json_is_array(arr) || json_array_size(arr) > NUSER)
                bad++;
            json_array_foreach (arr, i, m) {
                json_int_t n = json_integer_value(json_object_get(m, "connections"));

                if (json_string_value(json_object_get(m, "user")) == NULL || n < 1 ||
                    n > TH * TABS || !json_is_object(json_object_get(m, "info")))
                    bad++;
            }
            json_decref(arr);
        }
        usleep(100);
    }
    return (void *)bad;
}

static void test_pres_threads_events_alternate_and_balance(void **state)
{
    struct pres p;
    struct churner w[TH];
    pthread_t t[TH], reader;
    void *bad = NULL;

    pres_init(&p);
    memset(chan_nlog, 0, sizeof chan_nlog);
    atomic_store(&threaded_bad, 0);
    atomic_store(&churning, TH);
    for (int i = 0; i < TH; i++) {
        w[i].p = &p;
        w[i].id = i;
        assert_int_equal(pthread_create(&t[i], NULL, churn, &w[i]), 0);
    }
    assert_int_equal(pthread_create(&reader, NULL, read_members, &p), 0);
    for (int i = 0; i < TH; i++)
        assert_int_equal(pthread_join(t[i], NULL), 0);
    assert_int_equal(pthread_join(reader, &bad), 0);
    assert_int_equal((long)bad, 0);
    assert_int_equal(atomic_load(&threaded_bad), 0);

    for (int c = 0; c < NCHAN; c++) {
        char channel[16];
        json_t *arr;

        for (int u = 0; u < NUSER; u++) {
            int in = 0, joins = 0;

            for (int k = 0; k < chan_nlog[c]; k++) {
                const struct tev *v = &chan_log[c][k];

                if (v->user != u)
                    continue;
                /* join, leave, join, leave...: never two of a kind in a row */
                if (v->join == in) {
                    print_error("room:%d u%d: event %d is a second %s in a row\n", c, u, k,
                                v->join ? "join" : "leave");
                    fail();
                }
                in = v->join;
                joins += v->join;
            }
            /* every pair joined at least once, and the last event is a leave */
            assert_true(joins >= 1);
            assert_int_equal(in, 0);
        }
        snprintf(channel, sizeof channel, "room:%d", c);
        arr = pres_members(&p, channel, 1);
        assert_int_equal(json_array_size(arr), 0);
        json_decref(arr);
    }
    pres_free(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pres_tabs_counted_one_event_each_way),
        cmocka_unit_test(test_pres_users_and_channels_are_separate),
        cmocka_unit_test(test_pres_info_from_first_join),
        cmocka_unit_test(test_pres_members_lists),
        cmocka_unit_test(test_pres_join_hands_back_members),
        cmocka_unit_test(test_pres_leave_without_join),
        cmocka_unit_test(test_pres_threads_events_alternate_and_balance),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
