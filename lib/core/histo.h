/*
 * histo.h -- latency histograms with fixed buckets, for /metrics.
 *
 * Owns:       struct histo (plain counters: written by one thread only,
 *             a worker's) and struct histo_shared (atomic: written by any
 *             thread), both over the same fixed bucket bounds.
 * Called by:  lib/event (a worker's delivery lag), lib/api (publish
 *             latency), lib/store/rlink.c (Redis round trips); lib/api/
 *             metrics.c reads them into Prometheus histograms.
 * Invariants: a bucket counts the observations above the previous bound
 *             and up to its own (not cumulative: the exposition adds them
 *             up); the last bucket, past every bound, is +Inf. Sums are
 *             kept in nanoseconds, so adding copies together loses nothing.
 */
#ifndef HERALD_HISTO_H
#define HERALD_HISTO_H

#include <stdatomic.h>
#include <stdint.h>

/* The bounds: 100 us to 10 s, 1-2.5-5 steps. */
#define HISTO_NBOUNDS 16
#define HISTO_NBUCKETS (HISTO_NBOUNDS + 1)
extern const uint64_t histo_bounds_ns[HISTO_NBOUNDS];

/* No count of its own in either: the buckets' total is it, so +Inf and _count agree. */
struct histo {
    uint64_t bucket[HISTO_NBUCKETS];
    uint64_t sum_ns;
};

struct histo_shared {
    atomic_uint_fast64_t bucket[HISTO_NBUCKETS];
    atomic_uint_fast64_t sum_ns;
};

/* The bucket an observation of ns nanoseconds falls in. */
static inline unsigned histo_index(uint64_t ns)
{
    unsigned i = 0;

    /* Most observations are short: scanning from the smallest bound ends soonest. */
    while (i < HISTO_NBOUNDS && ns > histo_bounds_ns[i])
        i++;
    return i;
}

/* Count one observation of ns nanoseconds (h's own thread only). */
static inline void histo_observe(struct histo *h, uint64_t ns)
{
    h->bucket[histo_index(ns)]++;
    h->sum_ns += ns;
}

/* How many observations h holds. */
static inline uint64_t histo_count(const struct histo *h)
{
    uint64_t n = 0;

    for (unsigned i = 0; i < HISTO_NBUCKETS; i++)
        n += h->bucket[i];
    return n;
}

/* Count one observation of ns nanoseconds, from any thread. */
void histo_observe_shared(struct histo_shared *h, uint64_t ns);

/* Add src's counts to dst. */
void histo_add(struct histo *dst, const struct histo *src);

/* Add what src holds now to dst (each counter read once: a scrape's view, not a snapshot). */
void histo_add_shared(struct histo *dst, const struct histo_shared *src);

/* Nanoseconds on the monotonic clock; 0 never comes back (0 means "not stamped"). */
uint64_t histo_now_ns(void);

#endif
