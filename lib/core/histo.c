/*
 * histo.c -- latency histograms with fixed buckets (histo.h).
 *
 * Owns:       the bucket bounds.
 * Called by:  any thread: struct histo by its one writer, struct
 *             histo_shared by any.
 * Invariants: the shared counters are bumped with relaxed atomics: a
 *             scrape may see a bucket one ahead of the sum, never a torn
 *             value, and nothing orders other memory by them.
 */
#include "histo.h"

#include <time.h>

const uint64_t histo_bounds_ns[HISTO_NBOUNDS] = {
    100000ull,     250000ull,     500000ull,     1000000ull,     2500000ull,   5000000ull,
    10000000ull,   25000000ull,   50000000ull,   100000000ull,   250000000ull, 500000000ull,
    1000000000ull, 2500000000ull, 5000000000ull, 10000000000ull,
};

void histo_observe_shared(struct histo_shared *h, uint64_t ns)
{
    atomic_fetch_add_explicit(&h->bucket[histo_index(ns)], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->sum_ns, ns, memory_order_relaxed);
}

void histo_add(struct histo *dst, const struct histo *src)
{
    for (unsigned i = 0; i < HISTO_NBUCKETS; i++)
        dst->bucket[i] += src->bucket[i];
    dst->sum_ns += src->sum_ns;
}

void histo_add_shared(struct histo *dst, const struct histo_shared *src)
{
    for (unsigned i = 0; i < HISTO_NBUCKETS; i++)
        dst->bucket[i] += atomic_load_explicit(&src->bucket[i], memory_order_relaxed);
    dst->sum_ns += atomic_load_explicit(&src->sum_ns, memory_order_relaxed);
}

uint64_t histo_now_ns(void)
{
    struct timespec ts;
    uint64_t ns;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    ns = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
    return ns != 0 ? ns : 1;
}
