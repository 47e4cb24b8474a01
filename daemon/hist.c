/*
 * hist.c -- message history per stream (see hist.h).
 *
 * Owns:       struct hist_stream and struct hist_entry allocations, and
 *             one msg reference per entry.
 * Called by:  API threads, worker threads and the main thread (sweep).
 * Invariants: a stripe's streams and their entries are touched only under
 *             that stripe's mutex. Lock order: a hist stripe, then the
 *             directory, then a command queue; several stripes are only
 *             ever taken in increasing order (routes.c).
 */
#include "hist.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "log.h"
#include "msg.h"
#include "stripe.h"
#include "xmalloc.h"

double hist_clock(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

void hist_init(struct hist *h, size_t size, double ttl, size_t max_bytes)
{
    uint32_t r;

    memset(h, 0, sizeof *h);
    for (int i = 0; i < HIST_STRIPES; i++)
        pthread_mutex_init(&h->lock[i], NULL);
    if (getrandom(&r, sizeof r, 0) != (ssize_t)sizeof r) {
        log_msg(LOG_WARN, "hist", "getrandom failed; the epoch comes from the clock");
        r = (uint32_t)time(NULL) ^ (uint32_t)clock();
    }
    snprintf(h->epoch, sizeof h->epoch, "%08" PRIx32, r);
    atomic_init(&h->next_offset, 0);
    h->size = size;
    h->ttl = ttl;
    h->max_bytes = max_bytes;
}

/* Drop the stream's oldest entry, raising its floor. */
static void hist_drop_head(struct hist *h, struct hist_stream *s)
{
    struct hist_entry *e = s->head;

    s->head = e->next;
    if (s->head == NULL)
        s->tail = NULL;
    s->count--;
    s->floor = e->offset;
    atomic_fetch_sub(&h->bytes, e->msg->len);
    atomic_fetch_sub(&h->messages, 1);
    atomic_fetch_add(&h->evicted, 1);
    msg_unref(e->msg);
    free(e);
}

/* Free a stream and its entries (its stripe is locked or being torn down). */
static void hist_stream_free(struct hist *h, struct hist_stream *s)
{
    while (s->head != NULL)
        hist_drop_head(h, s);
    atomic_fetch_sub(&h->streams, 1);
    free(s->key);
    free(s);
}

void hist_free(struct hist *h)
{
    struct hist_stream *s, *tmp;

    for (int i = 0; i < HIST_STRIPES; i++) {
        HASH_ITER(hh, h->table[i], s, tmp) {
            HASH_DEL(h->table[i], s);
            hist_stream_free(h, s);
        }
        pthread_mutex_destroy(&h->lock[i]);
    }
}

char *hist_key(char *buf, size_t size, const char *site, char kind, const char *name)
{
    snprintf(buf, size, "%s/%c:%s", site, kind, name);
    return buf;
}

unsigned hist_stripe_of(const char *key)
{
    return stripe_of(key, strlen(key), HIST_STRIPES);
}

void hist_lock(struct hist *h, unsigned stripe)
{
    pthread_mutex_lock(&h->lock[stripe]);
}

void hist_unlock(struct hist *h, unsigned stripe)
{
    pthread_mutex_unlock(&h->lock[stripe]);
}

struct hist_stream *hist_begin(struct hist *h, const char *key)
{
    hist_lock(h, hist_stripe_of(key));
    return hist_get(h, key);
}

struct hist_stream *hist_get(struct hist *h, const char *key)
{
    unsigned stripe = hist_stripe_of(key);
    struct hist_stream *s;

    HASH_FIND_STR(h->table[stripe], key, s);
    if (s == NULL) {
        s = xcalloc(1, sizeof *s);
        s->key = xstrdup(key);
        s->stripe = stripe;
        /* Anything numbered before now belonged to an earlier life of this stream. */
        s->floor = s->last = atomic_load(&h->next_offset);
        HASH_ADD_KEYPTR(hh, h->table[stripe], s->key, strlen(s->key), s);
        atomic_fetch_add(&h->streams, 1);
    }
    return s;
}

char *hist_id(const struct hist *h, uint64_t off, char *id)
{
    snprintf(id, HIST_ID_MAX, "%s:%" PRIu64, h->epoch, off);
    return id;
}

uint64_t hist_next(struct hist *h, struct hist_stream *s, char *id)
{
    uint64_t off = atomic_fetch_add(&h->next_offset, 1) + 1;

    s->last = off;
    hist_id(h, off, id);
    return off;
}

/* Drop entries older than age seconds. */
static void hist_trim_age(struct hist *h, struct hist_stream *s, double now, double age)
{
    while (s->head != NULL && now - s->head->time > age)
        hist_drop_head(h, s);
}

void hist_push(struct hist *h, struct hist_stream *s, uint64_t off, struct msg *m)
{
    struct hist_entry *e = xmalloc(sizeof *e);
    double now = hist_clock();

    e->next = NULL;
    e->offset = off;
    e->time = now;
    e->msg = msg_ref(m);
    if (s->tail != NULL)
        s->tail->next = e;
    else
        s->head = e;
    s->tail = e;
    s->count++;
    s->touched = now;
    atomic_fetch_add(&h->bytes, m->len);
    atomic_fetch_add(&h->messages, 1);
    while (s->count > h->size)
        hist_drop_head(h, s);
    hist_trim_age(h, s, now, h->ttl);
    /* hist_sweep keeps the budget, oldest first, once a second; a burst that
     * doubles it before then is cut short here, from this stream's oldest. */
    while (atomic_load(&h->bytes) > 2 * h->max_bytes && s->head != s->tail)
        hist_drop_head(h, s);
}

void hist_end(struct hist *h, struct hist_stream *s)
{
    pthread_mutex_unlock(&h->lock[s->stripe]);
}

/* Read "<epoch>:<offset>"; 0 with *off set when it is of this epoch, else -1. */
static int hist_parse_id(const struct hist *h, const char *id, uint64_t *off)
{
    char *end;

    if (strlen(id) < 10 || memcmp(id, h->epoch, 8) != 0 || id[8] != ':' ||
        id[9] < '0' || id[9] > '9')
        return -1;
    *off = strtoull(id + 9, &end, 10);
    return *end == '\0' ? 0 : -1;
}

/* References to the entries after off, oldest first. */
static void hist_collect(const struct hist_stream *s, uint64_t off, struct msg ***out, size_t *n)
{
    const struct hist_entry *e;
    size_t k = 0;

    for (e = s->head; e != NULL; e = e->next)
        k += e->offset > off;
    *out = k > 0 ? xcalloc(k, sizeof **out) : NULL;
    *n = k;
    k = 0;
    for (e = s->head; e != NULL; e = e->next)
        if (e->offset > off)
            (*out)[k++] = msg_ref(e->msg);
}

int hist_since(struct hist *h, const char *key, const char *since, struct msg ***out,
               size_t *n, uint64_t *last, char *id)
{
    struct hist_stream *s = hist_begin(h, key);
    double now = hist_clock();
    uint64_t off = 0;
    int ok = 1;

    *out = NULL;
    *n = 0;
    hist_trim_age(h, s, now, h->ttl);
    s->touched = now;
    if (since[0] != '\0') {
        ok = hist_parse_id(h, since, &off) == 0 && off >= s->floor && off <= s->last;
        if (ok)
            hist_collect(s, off, out, n);
    }
    *last = s->last;
    hist_id(h, s->last, id);
    hist_end(h, s);
    return ok;
}

/* One pass over every stream: drop entries older than age, and idle empty streams. */
static void hist_sweep_pass(struct hist *h, double now, double age)
{
    struct hist_stream *s, *tmp;

    for (int i = 0; i < HIST_STRIPES; i++) {
        pthread_mutex_lock(&h->lock[i]);
        HASH_ITER(hh, h->table[i], s, tmp) {
            hist_trim_age(h, s, now, age);
            if (s->head == NULL && now - s->touched > h->ttl) {
                HASH_DEL(h->table[i], s);
                hist_stream_free(h, s);
            }
        }
        pthread_mutex_unlock(&h->lock[i]);
    }
}

void hist_sweep(struct hist *h)
{
    double now = hist_clock();
    double age = h->ttl;

    hist_sweep_pass(h, now, age);
    /* Over the byte budget: the oldest go first, whatever their stream, in
     * small steps so that only as much as needed goes. */
    while (atomic_load(&h->bytes) > h->max_bytes && age > 0.01) {
        age *= 0.75;
        hist_sweep_pass(h, now, age);
    }
}
