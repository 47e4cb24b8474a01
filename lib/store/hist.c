/*
 * hist.c -- message history per stream (see hist.h).
 *
 * Owns:       struct hist_stream, struct hist_entry and struct hist_body
 *             allocations; each site's counters and dropped floors.
 * Called by:  API threads and worker threads (engine_memory.c), the main
 *             thread (sweep, file), /stats readers.
 * Invariants: a stripe's streams, their entries and the dropped floors of
 *             its buckets are touched only under that stripe's mutex. A
 *             body is shared by entries in several stripes, so what is
 *             counted for it (kept, and its size in its site's bytes) is
 *             atomic; it is counted when kept goes 0 -> 1 and uncounted when
 *             it goes 1 -> 0. Lock order: a hist stripe, then the directory,
 *             then a command queue; several stripes are only ever taken in
 *             increasing order (engine_memory.c).
 *
 * The sweep keeps each site under its budget oldest first across its
 * streams without a global list (which would need a global lock on the
 * publish path): one pass weighs the site's entries by age into
 * HIST_SWEEP_BINS bins of the age of its oldest, from which it picks the age
 * to cut at, and a second pass drops every entry at least that old. Entries of one
 * publish share a timestamp, so a shared body goes at once.
 */
#include "hist.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "log.h"
#include "stripe.h"
#include "xmalloc.h"

#define HIST_SWEEP_BINS 1024 /* the sweep's age resolution: 1/1024 of the oldest entry's age */
#define HIST_SWEEP_ROUNDS 4  /* weigh-and-cut rounds at most per sweep */

_Static_assert(HIST_BUCKETS % HIST_STRIPES == 0, "a bucket must lie in one stripe");

double hist_clock(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

void hist_init(struct hist *h, size_t size, double ttl, int nsites, const char *const *names,
               const size_t *max_bytes)
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
    h->nsites = nsites;
    h->sites = xcalloc((size_t)nsites, sizeof *h->sites);
    for (int i = 0; i < nsites; i++) {
        struct hist_site *hs = &h->sites[i];

        hs->name = xstrdup(names[i]);
        hs->max_bytes = max_bytes[i];
        atomic_init(&hs->bytes, 0);
        atomic_init(&hs->messages, 0);
        atomic_init(&hs->streams, 0);
        atomic_init(&hs->evicted, 0);
        atomic_init(&hs->not_kept, 0);
        hs->weights = xcalloc(HIST_SWEEP_BINS, sizeof *hs->weights);
    }
}

struct hist_body *hist_body_new(char *text, size_t len)
{
    struct hist_body *b = xmalloc(sizeof *b);

    atomic_init(&b->refs, 1);
    atomic_init(&b->kept, 0);
    b->len = len;
    b->text = text;
    return b;
}

void hist_body_unref(struct hist_body *b)
{
    if (b == NULL)
        return;
    if (atomic_fetch_sub_explicit(&b->refs, 1, memory_order_release) == 1) {
        atomic_thread_fence(memory_order_acquire);
        free(b->text);
        free(b);
    }
}

/* The key's bucket among a site's dropped floors; its stripe is bucket % HIST_STRIPES. */
static unsigned hist_bucket_of(const char *key)
{
    return stripe_of(key, strlen(key), HIST_BUCKETS);
}

unsigned hist_stripe_of(const char *key)
{
    return hist_bucket_of(key) % HIST_STRIPES;
}

void hist_lock(struct hist *h, unsigned stripe)
{
    pthread_mutex_lock(&h->lock[stripe]);
}

void hist_unlock(struct hist *h, unsigned stripe)
{
    pthread_mutex_unlock(&h->lock[stripe]);
}

/* Copy n bytes of p to buf at `at`, as far as size leaves room (and one for the NUL). */
static size_t hist_key_put(char *buf, size_t size, size_t at, const char *p, size_t n)
{
    if (n > size - 1 - at)
        n = size - 1 - at;
    memcpy(buf + at, p, n);
    return at + n;
}

/* Copied piece by piece, as snprintf would cut it: every target of every publish makes one. */
char *hist_key(char *buf, size_t size, const char *site, char kind, const char *name)
{
    const char mid[3] = {'/', kind, ':'};
    size_t at = 0;

    if (size == 0)
        return buf;
    at = hist_key_put(buf, size, at, site, strlen(site));
    at = hist_key_put(buf, size, at, mid, sizeof mid);
    at = hist_key_put(buf, size, at, name, strlen(name));
    buf[at] = '\0';
    return buf;
}

char *hist_id(const struct hist *h, uint64_t off, char *id)
{
    snprintf(id, HIST_ID_MAX, "%s:%" PRIu64, h->epoch, off);
    return id;
}

/* Free one entry and its hold on its body, in its site's figures. */
static void hist_entry_free(struct hist_site *hs, struct hist_entry *e)
{
    size_t cost = hist_entry_cost();

    if (atomic_fetch_sub(&e->body->kept, 1) == 1)
        cost += hist_body_cost(e->body->len);
    atomic_fetch_sub(&hs->bytes, cost);
    atomic_fetch_sub(&hs->messages, 1);
    hist_body_unref(e->body);
    free(e);
}

/* Drop the stream's oldest entry, raising its floor. */
static void hist_drop_head(struct hist *h, struct hist_stream *s)
{
    struct hist_site *hs = &h->sites[s->site];
    struct hist_entry *e = s->head;

    s->head = e->next;
    if (s->head == NULL)
        s->tail = NULL;
    s->count--;
    s->floor = e->offset;
    atomic_fetch_add(&hs->evicted, 1);
    hist_entry_free(hs, e);
}

/* Drop what s holds and free it: its bucket rises to the newest offset it had. */
static void hist_stream_drop(struct hist *h, struct hist_stream *s)
{
    struct hist_site *hs = &h->sites[s->site];
    uint64_t *floor = &hs->floors[s->bucket];

    while (s->head != NULL)
        hist_drop_head(h, s);
    if (*floor < s->last)
        *floor = s->last;
    HASH_DEL(h->table[s->bucket % HIST_STRIPES], s);
    atomic_fetch_sub(&hs->streams, 1);
    atomic_fetch_sub(&hs->bytes, hist_stream_cost(strlen(s->key)));
    free(s);
}

void hist_free(struct hist *h)
{
    struct hist_stream *s, *tmp;

    for (int i = 0; i < HIST_STRIPES; i++) {
        HASH_ITER (hh, h->table[i], s, tmp) {
            hist_stream_drop(h, s);
        }
        pthread_mutex_destroy(&h->lock[i]);
    }
    for (int i = 0; i < h->nsites; i++) {
        free(h->sites[i].name);
        free(h->sites[i].weights);
    }
    free(h->sites);
    h->sites = NULL;
}

/* key's stream, or NULL; its stripe is locked. */
static struct hist_stream *hist_find(struct hist *h, unsigned bucket, const char *key)
{
    struct hist_stream *s;

    HASH_FIND_STR(h->table[bucket % HIST_STRIPES], key, s);
    return s;
}

/* Drop s's entries stamped before cut; returns s, or NULL when that emptied and freed it. */
static struct hist_stream *hist_trim_age(struct hist *h, struct hist_stream *s, double cut)
{
    while (s->head != NULL && s->head->time < cut)
        hist_drop_head(h, s);
    if (s->head != NULL)
        return s;
    hist_stream_drop(h, s);
    return NULL;
}

/* Count need more bytes in hs unless that passes twice its budget: 0, or -1. */
static int hist_reserve(struct hist_site *hs, size_t need)
{
    size_t hard = 2 * hs->max_bytes, cur = atomic_load(&hs->bytes);

    do {
        if (need > hard || cur > hard - need)
            return -1;
    } while (!atomic_compare_exchange_weak(&hs->bytes, &cur, cur + need));
    return 0;
}

/* A new, empty stream for key: anything of it up to its bucket may be gone. */
static struct hist_stream *hist_stream_new(struct hist *h, int site, unsigned bucket,
                                           const char *key)
{
    size_t len = strlen(key);
    struct hist_stream *s = xcalloc(1, sizeof *s + len + 1);
    struct hist_site *hs = &h->sites[site];

    memcpy(s->key, key, len + 1);
    s->bucket = bucket;
    s->site = site;
    s->floor = s->last = hs->floors[bucket];
    HASH_ADD_KEYPTR(hh, h->table[bucket % HIST_STRIPES], s->key, len, s);
    atomic_fetch_add(&hs->streams, 1);
    return s;
}

/*
 * Append body at off to s, whose bytes are reserved (the body's too when
 * counted says so; if the last entry holding it went meanwhile, it is
 * counted again here, replacing what that drop uncounted).
 */
static void hist_append(struct hist *h, struct hist_stream *s, uint64_t off, struct hist_body *body,
                        double now, int counted)
{
    struct hist_site *hs = &h->sites[s->site];
    struct hist_entry *e = xmalloc(sizeof *e);
    unsigned was = atomic_fetch_add(&body->kept, 1);

    if (was == 0 && !counted)
        atomic_fetch_add(&hs->bytes, hist_body_cost(body->len));
    else if (was > 0 && counted)
        atomic_fetch_sub(&hs->bytes, hist_body_cost(body->len));
    e->next = NULL;
    e->offset = off;
    e->time = now;
    e->body = hist_body_ref(body);
    if (s->tail != NULL)
        s->tail->next = e;
    else
        s->head = e;
    s->tail = e;
    s->count++;
    s->last = off;
    atomic_fetch_add(&hs->messages, 1);
    while (s->count > h->size)
        hist_drop_head(h, s);
}

uint64_t hist_publish(struct hist *h, int site, const char *key, struct hist_body *body, double now,
                      char *id)
{
    unsigned bucket = hist_bucket_of(key);
    struct hist_site *hs = &h->sites[site];
    struct hist_stream *s = hist_find(h, bucket, key);
    uint64_t off = atomic_fetch_add(&h->next_offset, 1) + 1;
    int counted = atomic_load(&body->kept) == 0;
    size_t need = hist_entry_cost() + (counted ? hist_body_cost(body->len) : 0);

    hist_id(h, off, id);
    if (s != NULL)
        s = hist_trim_age(h, s, now - h->ttl);
    if (s == NULL)
        need += hist_stream_cost(strlen(key));
    if (hist_reserve(hs, need) == 0) {
        if (s == NULL)
            s = hist_stream_new(h, site, bucket, key);
        hist_append(h, s, off, body, now, counted);
        return off;
    }
    /* Over twice the budget before the sweep could run: delivered, not kept. What
     * the stream held is below its new floor, of no use to anyone: it goes too. */
    atomic_fetch_add(&hs->not_kept, 1);
    if (s != NULL) {
        s->last = off;
        hist_stream_drop(h, s);
    } else if (hs->floors[bucket] < off) {
        hs->floors[bucket] = off;
    }
    return off;
}

void hist_restore(struct hist *h, int site, const char *key, uint64_t floor, uint64_t last,
                  size_t n, const struct hist_item *items, const double *times)
{
    unsigned bucket = hist_bucket_of(key);
    struct hist_site *hs = &h->sites[site];
    double cut = hist_clock() - h->ttl;
    struct hist_stream *s = NULL;

    hist_lock(h, bucket % HIST_STRIPES);
    for (size_t i = 0; i < n; i++) {
        int counted = atomic_load(&items[i].body->kept) == 0;

        if (times[i] < cut) {
            floor = items[i].offset;
            continue;
        }
        if (s == NULL) {
            s = hist_stream_new(h, site, bucket, key);
            s->floor = floor;
            atomic_fetch_add(&hs->bytes, hist_stream_cost(strlen(key)));
        }
        atomic_fetch_add(&hs->bytes,
                         hist_entry_cost() + (counted ? hist_body_cost(items[i].body->len) : 0));
        hist_append(h, s, items[i].offset, items[i].body, times[i], counted);
    }
    if (s == NULL && hs->floors[bucket] < last)
        hs->floors[bucket] = last;
    hist_unlock(h, bucket % HIST_STRIPES);
}

/* Read "<epoch>:<offset>"; 0 with *off set when it is of this epoch, else -1. */
static int hist_parse_id(const struct hist *h, const char *id, uint64_t *off)
{
    char *end;

    if (strlen(id) < 10 || memcmp(id, h->epoch, 8) != 0 || id[8] != ':' || id[9] < '0' ||
        id[9] > '9')
        return -1;
    *off = strtoull(id + 9, &end, 10);
    return *end == '\0' ? 0 : -1;
}

/* References to the entries after off, oldest first. */
static void hist_collect(const struct hist_stream *s, uint64_t off, struct hist_item **out,
                         size_t *n)
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
            (*out)[k++] = (struct hist_item){e->offset, hist_body_ref(e->body)};
}

int hist_since(struct hist *h, int site, const char *key, const char *since, struct hist_item **out,
               size_t *n, uint64_t *last, char *id)
{
    unsigned bucket = hist_bucket_of(key), stripe = bucket % HIST_STRIPES;
    uint64_t off = 0, floor, pos;
    struct hist_stream *s;
    int ok = 1;

    *out = NULL;
    *n = 0;
    hist_lock(h, stripe);
    s = hist_find(h, bucket, key);
    if (s != NULL)
        s = hist_trim_age(h, s, hist_clock() - h->ttl);
    /* No stream: nothing of key is above its bucket, and every offset handed out to
     * it from now on will be above the counter as read under this lock. */
    floor = s != NULL ? s->floor : h->sites[site].floors[bucket];
    pos = s != NULL ? s->last : atomic_load(&h->next_offset);
    if (since[0] != '\0') {
        ok = hist_parse_id(h, since, &off) == 0 && off >= floor && off <= pos;
        if (ok && s != NULL)
            hist_collect(s, off, out, n);
    }
    *last = pos;
    hist_id(h, pos, id);
    hist_unlock(h, stripe);
    return ok;
}

void hist_stats(struct hist *h, int site, struct hist_stats *out)
{
    struct hist_site *hs = &h->sites[site];

    out->streams = atomic_load(&hs->streams);
    out->messages = atomic_load(&hs->messages);
    out->bytes = atomic_load(&hs->bytes);
    out->max_bytes = hs->max_bytes;
    out->evicted = atomic_load(&hs->evicted);
    out->not_kept = atomic_load(&hs->not_kept);
}

/*
 * Drop, in every stream, the entries stamped before now - ttl (and the
 * streams they empty); note each site's oldest age left, its span.
 */
static void hist_sweep_age(struct hist *h, double now)
{
    struct hist_stream *s, *tmp;

    for (int i = 0; i < h->nsites; i++)
        h->sites[i].span = 0;
    for (int i = 0; i < HIST_STRIPES; i++) {
        hist_lock(h, i);
        HASH_ITER (hh, h->table[i], s, tmp) {
            double *span = &h->sites[s->site].span;

            s = hist_trim_age(h, s, now - h->ttl);
            if (s != NULL && now - s->head->time > *span)
                *span = now - s->head->time;
        }
        hist_unlock(h, i);
    }
}

/*
 * The sweep bin of an entry age seconds old in hs, whose oldest is span
 * seconds old: the bins divide the span, so however fast the history came
 * in, the cut falls within 1/HIST_SWEEP_BINS of it. -1 for an entry stamped
 * after the sweep began.
 */
static int hist_bin(const struct hist_site *hs, double age)
{
    double b = hs->span > 0 ? age / hs->span * HIST_SWEEP_BINS : 0;

    if (age < 0)
        return -1;
    return b >= HIST_SWEEP_BINS - 1 ? HIST_SWEEP_BINS - 1 : (int)b;
}

/* Mark the sites over budget (cut 0, weights cleared) and the others (cut past every bin). */
static int hist_sweep_mark(struct hist *h)
{
    int over = 0;

    for (int i = 0; i < h->nsites; i++) {
        struct hist_site *hs = &h->sites[i];

        hs->cut = HIST_SWEEP_BINS;
        if (atomic_load(&hs->bytes) > hs->max_bytes) {
            hs->cut = 0;
            memset(hs->weights, 0, HIST_SWEEP_BINS * sizeof *hs->weights);
            over = 1;
        }
    }
    return over;
}

/* Add one stream's bytes to its site's weights by age: a shared body is split among its entries. */
static void hist_weigh_stream(struct hist *h, const struct hist_stream *s, double now)
{
    const struct hist_site *hs = &h->sites[s->site];
    double *w = hs->weights;
    int bin = 0;

    for (const struct hist_entry *e = s->head; e != NULL; e = e->next) {
        unsigned kept = atomic_load(&e->body->kept);

        bin = hist_bin(hs, now - e->time);
        if (bin < 0)
            return;
        w[bin] += hist_entry_cost() + (double)hist_body_cost(e->body->len) / (kept > 0 ? kept : 1);
    }
    /* The stream itself goes with its newest entry. */
    w[bin] += hist_stream_cost(strlen(s->key));
}

/* Pick each marked site's cut: the youngest age bin whose dropping, with all older, fits it. */
static void hist_sweep_pick(struct hist *h)
{
    for (int i = 0; i < h->nsites; i++) {
        struct hist_site *hs = &h->sites[i];
        double excess = (double)atomic_load(&hs->bytes) - (double)hs->max_bytes, acc = 0;

        if (hs->cut != 0)
            continue;
        hs->cut = HIST_SWEEP_BINS;
        if (excess <= 0)
            continue;
        /* Short of the excess (publishes since the weighing): everything weighed goes. */
        hs->cut = 0;
        for (int b = HIST_SWEEP_BINS - 1; b >= 0; b--) {
            acc += hs->weights[b];
            if (acc >= excess) {
                hs->cut = b;
                break;
            }
        }
    }
}

/* One weigh-and-cut round over the sites marked by hist_sweep_mark. */
static void hist_sweep_budget(struct hist *h, double now)
{
    struct hist_stream *s, *tmp;

    for (int i = 0; i < HIST_STRIPES; i++) {
        hist_lock(h, i);
        for (s = h->table[i]; s != NULL; s = s->hh.next)
            if (h->sites[s->site].cut == 0)
                hist_weigh_stream(h, s, now);
        hist_unlock(h, i);
    }
    hist_sweep_pick(h);
    for (int i = 0; i < HIST_STRIPES; i++) {
        hist_lock(h, i);
        HASH_ITER (hh, h->table[i], s, tmp) {
            const struct hist_site *hs = &h->sites[s->site];

            while (s->head != NULL && hist_bin(hs, now - s->head->time) >= hs->cut)
                hist_drop_head(h, s);
            if (s->head == NULL)
                hist_stream_drop(h, s);
        }
        hist_unlock(h, i);
    }
}

void hist_sweep(struct hist *h)
{
    double now = hist_clock();

    hist_sweep_age(h, now);
    for (int round = 0; round < HIST_SWEEP_ROUNDS && hist_sweep_mark(h); round++)
        hist_sweep_budget(h, now);
}
