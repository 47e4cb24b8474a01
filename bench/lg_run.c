/*
 * lg_run.c -- a run's publisher threads: each takes the next seq, waits for
 * its slot in the schedule, builds the payload, publishes, and accounts for
 * the answer.
 *
 * Owns:       the publisher threads and, per thread, its lg_pub connection,
 *             body buffer, PRNG and round-trip histogram.
 * Called by:  loadgen.c (lg_run_start, lg_run_join).
 * Invariants: one shared seq counter: with --rate R seq k is sent at
 *             t0 + k/R, an absolute schedule, so a late publish does not
 *             push the later ones back; with rate 0 each thread sends as
 *             soon as its previous answer arrived. In targeted mode the
 *             target is recorded in lg_track before the publish is sent, and
 *             a 2xx answer is recorded after, so the receiver can check
 *             every arrival. A thread closes its connection as soon as it
 *             is done: a kept FastCGI connection holds one of Herald's API
 *             threads for as long as it is open.
 * Errors:     a non-2xx answer or a failed request counts in errors; the
 *             first reason per thread is kept for one stderr line.
 * Spec notes: payload {"s":SEQ,"t":NS,"p":"xx.."} of exactly --size bytes
 *             (when --size is large enough to hold s and t), t being
 *             CLOCK_MONOTONIC just before the request is built. Over fcgi it
 *             is the "data" of Herald's envelope: {"broadcast":true,...} or
 *             {"users":["u17"],...}, event "b".
 * Tests:      broadcast, targeted and api runs against Herald.
 */
#include "lg_run.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lg_util.h"

#define NS 1000000000.0

/* One publisher thread's own state. */
struct lg_publisher {
    struct lg_run *run; /* borrowed */
    pthread_t thread;
    struct lg_pub *pub; /* owned: NULL once the thread finished */
    uint64_t rng;
    char *body; /* owned: the request body being built */
    size_t bodycap;
    char first_error[256];
    unsigned long connects; /* connections its lg_pub opened */
    struct lg_hist rtt;     /* publish round trips */
};

/* Make room for n body bytes. */
static void body_reserve(struct lg_publisher *pb, size_t n)
{
    if (n > pb->bodycap) {
        pb->bodycap = n;
        pb->body = lg_util_realloc(pb->body, n);
    }
}

/*
 * Build the body for seq: the payload {"s":SEQ,"t":NS,"p":"xx.."} padded to
 * --size bytes, wrapped in Herald's publish envelope for fcgi. Returns its length.
 */
static size_t build_body(struct lg_publisher *pb, uint64_t seq, uint64_t t, const char *user)
{
    const struct lg_run *run = pb->run;
    size_t size = run->o->size, n = 0, head, pad;
    char pre[160], post[8];
    int np = 0;

    if (run->pubcfg.kind == LG_PUB_FCGI)
        np = user ? snprintf(pre, sizeof pre, "{\"users\":[\"%s\"],\"event\":\"b\",\"data\":", user)
                  : snprintf(pre, sizeof pre, "{\"broadcast\":true,\"event\":\"b\",\"data\":");
    body_reserve(pb, (size_t)np + size + 96);
    memcpy(pb->body, pre, (size_t)np);
    n = (size_t)np;
    head = (size_t)snprintf(pb->body + n, 80, "{\"s\":%llu,\"t\":%llu,\"p\":\"",
                            (unsigned long long)seq, (unsigned long long)t);
    pad = size > head + 2 ? size - head - 2 : 0;
    memset(pb->body + n + head, 'x', pad);
    n += head + pad;
    snprintf(post, sizeof post, "\"}%s", np > 0 ? "}" : "");
    memcpy(pb->body + n, post, strlen(post));
    return n + strlen(post);
}

/* Raise an atomic to v if it is lower. */
static void atomic_max(_Atomic uint64_t *a, uint64_t v)
{
    uint64_t cur = atomic_load(a);

    while (cur < v && !atomic_compare_exchange_weak(a, &cur, v))
        ;
}

/* Lower an atomic to v if it is higher or still 0 (unset). */
static void atomic_min_set(_Atomic uint64_t *a, uint64_t v)
{
    uint64_t cur = atomic_load(a);

    while ((cur == 0 || v < cur) && !atomic_compare_exchange_weak(a, &cur, v))
        ;
}

/* Send seq; account for the answer. 0, or -1 when there is no one to target. */
static int publish_one(struct lg_publisher *pb, uint64_t seq)
{
    struct lg_run *run = pb->run;
    const struct lg_opts *o = run->o;
    char user[24];
    const char *channel = "all", *target = NULL;
    uint64_t t, done;
    size_t len;
    int status = 0, rc;

    if (o->mode == LG_MODE_TARGETED) {
        uint32_t id;

        if (run->nlive == 0)
            return -1;
        id = run->live[lg_util_rand(&pb->rng) % run->nlive];
        if (lg_track_target(run->track, seq, id) != 0)
            return -1;
        snprintf(user, sizeof user, "u%llu", (unsigned long long)(o->id_base + id));
        channel = target = user;
    } else if (o->mode == LG_MODE_API) {
        channel = target = "nobody";
    }
    t = lg_util_now_ns();
    len = build_body(pb, seq, t, target);
    atomic_min_set(&run->t_first_pub, t);
    rc = lg_pub_post(pb->pub, channel, pb->body, len, &status);
    done = lg_util_now_ns();
    lg_hist_record(&pb->rtt, done - t);
    atomic_max(&run->t_last_answer, done);
    if (rc == 0 && status >= 200 && status < 300) {
        if (run->track != NULL)
            lg_track_ok(run->track, seq);
        atomic_fetch_add(&run->ok, 1);
        return 0;
    }
    atomic_fetch_add(&run->errors, 1);
    if (pb->first_error[0] == '\0') {
        if (rc == 0)
            snprintf(pb->first_error, sizeof pb->first_error, "answer status %d", status);
        else
            snprintf(pb->first_error, sizeof pb->first_error, "%s", lg_pub_error(pb->pub));
    }
    return 0;
}

/* A publisher thread: take the next seq, wait for its slot, publish, repeat. */
static void *publisher_main(void *arg)
{
    struct lg_publisher *pb = arg;
    struct lg_run *run = pb->run;
    const struct lg_opts *o = run->o;

    while (!atomic_load(&run->stop)) {
        uint64_t k = atomic_fetch_add(&run->next_seq, 1), now;

        if (o->mode != LG_MODE_TARGETED && k >= o->messages)
            break;
        if (o->rate > 0) {
            uint64_t when = run->t0 + (uint64_t)((double)k * NS / o->rate);

            if (when >= run->deadline || (o->mode == LG_MODE_TARGETED && when >= run->stop_at))
                break;
            lg_util_sleep_until(when);
        }
        /* A paced publish keeps its slot even if it woke late; others check the clock. */
        now = lg_util_now_ns();
        if (now >= run->deadline ||
            (o->rate <= 0 && o->mode == LG_MODE_TARGETED && now >= run->stop_at))
            break;
        if (publish_one(pb, k) != 0)
            break;
    }
    /* Close now: a kept FastCGI connection holds one of the server's API threads. */
    pb->connects = lg_pub_connects(pb->pub);
    lg_pub_free(pb->pub);
    pb->pub = NULL;
    atomic_fetch_add(&run->done, 1);
    return NULL;
}

int lg_run_start(struct lg_run *run, char **cause)
{
    const struct lg_opts *o = run->o;

    run->pubs = lg_util_calloc((size_t)o->publishers, sizeof *run->pubs);
    run->t0 = lg_util_now_ns();
    run->stop_at = run->t0 + (uint64_t)(o->duration * NS);
    for (int i = 0; i < o->publishers; i++) {
        struct lg_publisher *pb = &run->pubs[i];
        int r;

        pb->run = run;
        pb->pub = lg_pub_new(&run->pubcfg);
        pb->rng = lg_util_seed();
        r = pthread_create(&pb->thread, NULL, publisher_main, pb);
        if (r != 0) {
            if (asprintf(cause, "pthread_create: %s", strerror(r)) < 0)
                *cause = NULL;
            /* The threads already started end at once; join them. */
            atomic_store(&run->stop, 1);
            for (int j = 0; j < i; j++) {
                int rj = pthread_join(run->pubs[j].thread, NULL);

                if (rj != 0)
                    fprintf(stderr, "loadgen: pthread_join: %s\n", strerror(rj));
                free(run->pubs[j].body);
            }
            lg_pub_free(pb->pub);
            free(run->pubs);
            run->pubs = NULL;
            return -1;
        }
    }
    return 0;
}

void lg_run_join(struct lg_run *run, struct lg_hist *rtt)
{
    const char *err = NULL;

    atomic_store(&run->stop, 1);
    for (int i = 0; i < run->o->publishers; i++) {
        struct lg_publisher *pb = &run->pubs[i];
        int r = pthread_join(pb->thread, NULL);

        if (r != 0) {
            fprintf(stderr, "loadgen: pthread_join: %s\n", strerror(r));
            continue;
        }
        lg_hist_merge(rtt, &pb->rtt);
        run->pub_conns += pb->connects;
        if (err == NULL && pb->first_error[0] != '\0')
            err = pb->first_error;
    }
    if (err != NULL)
        fprintf(stderr, "loadgen: %llu publish errors; the first: %s\n",
                (unsigned long long)atomic_load(&run->errors), err);
    for (int i = 0; i < run->o->publishers; i++)
        free(run->pubs[i].body);
    free(run->pubs);
    run->pubs = NULL;
}
