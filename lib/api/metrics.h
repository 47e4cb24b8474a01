/*
 * metrics.h -- the Prometheus text exposition format (version 0.0.4):
 * families with their HELP and TYPE lines, samples with escaped label
 * values, and histograms with cumulative buckets.
 *
 * Owns:       struct metrics_buf, the text being written (grows as needed).
 * Called by:  scrape.c, which writes Herald's series through it; any thread,
 *             one buffer per caller.
 * Invariants: what it writes is valid exposition text whatever the label
 *             values hold (backslash, double quote and newline escaped);
 *             names and label names are the caller's constants.
 */
#ifndef HERALD_METRICS_H
#define HERALD_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "histo.h"

/* The Content-Type of what this module writes. */
#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

struct metrics_buf {
    char *p; /* owned: NUL-terminated text */
    size_t len;
    size_t cap;
};

/* One label: its name (a constant) and its value (escaped when written). */
struct metrics_label {
    const char *name;
    const char *value;
};

/* An empty buffer. */
void metrics_buf_init(struct metrics_buf *b);

/* Free what b holds. */
void metrics_buf_free(struct metrics_buf *b);

/* Start a family: "# HELP name help" and "# TYPE name type" (counter, gauge, histogram). */
void metrics_family(struct metrics_buf *b, const char *name, const char *type, const char *help);

/* One sample "name{labels} value" of an integer value. */
void metrics_sample(struct metrics_buf *b, const char *name, const struct metrics_label *labels,
                    size_t nlabels, uint64_t value);

/* One sample of a value in seconds, given in nanoseconds (written exactly). */
void metrics_sample_ns(struct metrics_buf *b, const char *name, const struct metrics_label *labels,
                       size_t nlabels, uint64_t ns);

/*
 * A histogram's samples (its family started): name_bucket for each bound
 * and +Inf, cumulative, then name_sum (seconds) and name_count. At most 7
 * labels besides le.
 */
void metrics_histogram(struct metrics_buf *b, const char *name, const struct metrics_label *labels,
                       size_t nlabels, const struct histo *h);

#endif
