/*
 * lg_hist.c -- latency histogram, HDR-style log-linear buckets in microseconds.
 *
 * Owns:       nothing beyond the caller's struct lg_hist.
 * Called by:  lg_conn.c (delivery latency), lg_run.c (publish round trips),
 *             loadgen.c (merging and printing).
 * Invariants: no allocation, no I/O; a histogram has one writer at a time.
 * Errors:     none: out-of-range values go to the last bucket.
 * Spec notes: the layout is HdrHistogram's with one significant binary
 *             digit count fixed at 7: below 1024 us each microsecond has its
 *             own bucket; from 2^e to 2^(e+1) us (e >= 10) there are 128
 *             equal buckets, so a reported percentile is within 0.4% of a
 *             recorded value. 4,864 buckets, 38 KB per histogram.
 * Tests:      exercised by every loadgen run.
 *
 *   us:     0 1 2 ... 1023 | 1024 .. 2047 (8 us steps) | 2048 .. 4095 (16) | ...
 *   bucket: 0 1 2 ... 1023 | 1024 ..  1151             | 1152 ..  1279     | ...
 */
#include "lg_hist.h"

#include <stddef.h>

/* The bucket index of a value in microseconds. */
static size_t bucket_of(uint64_t us)
{
    int e;
    size_t idx;

    if (us < LG_HIST_LINEAR)
        return (size_t)us;
    e = 63 - __builtin_clzll(us);
    idx = LG_HIST_LINEAR + (size_t)(e - 10) * LG_HIST_SUB +
          (size_t)((us >> (e - LG_HIST_SUB_BITS)) & (LG_HIST_SUB - 1));
    return idx < LG_HIST_BUCKETS ? idx : LG_HIST_BUCKETS - 1;
}

/* The value a bucket stands for: itself when exact, else its middle. */
static uint64_t value_of(size_t idx)
{
    size_t e, sub;
    uint64_t width;

    if (idx < LG_HIST_LINEAR)
        return idx;
    e = 10 + (idx - LG_HIST_LINEAR) / LG_HIST_SUB;
    sub = (idx - LG_HIST_LINEAR) % LG_HIST_SUB;
    width = (uint64_t)1 << (e - LG_HIST_SUB_BITS);
    return ((uint64_t)1 << e) + sub * width + width / 2;
}

void lg_hist_record(struct lg_hist *h, uint64_t ns)
{
    uint64_t us = ns / 1000;

    h->bucket[bucket_of(us)]++;
    h->count++;
    if (us > h->max_us)
        h->max_us = us;
}

void lg_hist_merge(struct lg_hist *dst, const struct lg_hist *src)
{
    for (size_t i = 0; i < LG_HIST_BUCKETS; i++)
        dst->bucket[i] += src->bucket[i];
    dst->count += src->count;
    if (src->max_us > dst->max_us)
        dst->max_us = src->max_us;
}

uint64_t lg_hist_quantile(const struct lg_hist *h, double q)
{
    uint64_t want, seen = 0;

    if (h->count == 0)
        return 0;
    want = (uint64_t)(q * (double)h->count + 0.999999);
    if (want == 0)
        want = 1;
    if (want > h->count)
        want = h->count;
    for (size_t i = 0; i < LG_HIST_BUCKETS; i++) {
        seen += h->bucket[i];
        if (seen >= want) {
            uint64_t v = value_of(i);

            return v < h->max_us ? v : h->max_us;
        }
    }
    return h->max_us;
}

uint64_t lg_hist_bucket_value(size_t idx)
{
    return value_of(idx);
}
