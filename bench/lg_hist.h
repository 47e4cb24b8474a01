/*
 * lg_hist.h -- latency histogram, HDR-style log-linear buckets in microseconds.
 *
 * Owns:       struct lg_hist (fixed size, no pointers: embed it or copy it).
 * Called by:  lg_conn.c (delivery latency), lg_run.c (publish round trips),
 *             loadgen.c (merging and printing).
 * Invariants: one writer per histogram; merge after the writers stopped.
 * Errors:     none; values past the last bucket land in it (max stays exact).
 */
#ifndef HERALD_LG_HIST_H
#define HERALD_LG_HIST_H

#include <stddef.h>
#include <stdint.h>

#define LG_HIST_LINEAR 1024 /* exact 1 us buckets for 0..1023 us */
#define LG_HIST_SUB_BITS 7  /* 128 sub-buckets per power of two above: < 0.8% wide */
#define LG_HIST_SUB (1 << LG_HIST_SUB_BITS)
#define LG_HIST_TOP_EXP 40 /* 2^40 us (12 days): the last bucket */
#define LG_HIST_BUCKETS (LG_HIST_LINEAR + (LG_HIST_TOP_EXP - 10) * LG_HIST_SUB)

struct lg_hist {
    uint64_t count;                   /* values recorded */
    uint64_t max_us;                  /* largest value, exact */
    uint64_t bucket[LG_HIST_BUCKETS]; /* counts per bucket */
};

/* Record one latency of ns nanoseconds (negative clamped to 0 by the caller). */
void lg_hist_record(struct lg_hist *h, uint64_t ns);

/* Add src's counts into dst. */
void lg_hist_merge(struct lg_hist *dst, const struct lg_hist *src);

/*
 * The value in microseconds at quantile q (0 < q <= 1): exact below 1 ms,
 * the middle of its bucket above, never more than the recorded max; 0 when
 * the histogram is empty.
 */
uint64_t lg_hist_quantile(const struct lg_hist *h, double q);

/* The value in microseconds bucket idx stands for (for printing a histogram whole). */
uint64_t lg_hist_bucket_value(size_t idx);

#endif
