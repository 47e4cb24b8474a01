/*
 * bench.h -- timing helpers shared by the micro-benchmarks in bench/.
 *
 * Owns:       the measuring loop (warm-up, then one timed run of at least
 *             BENCH_MIN_NS), the report line, and the volatile sink that
 *             keeps the compiler from dropping the measured work.
 * Called by:  bench/bench_<thing>.c, each a standalone program of one
 *             translation unit, so the static sink is per program.
 * Invariants: times come from clock_gettime(CLOCK_MONOTONIC). A case runs
 *             its warm-up batches (doubling the count until one batch lasts
 *             BENCH_WARMUP_NS) before the timed batch, so caches, branch
 *             predictors, malloc's free lists and the CPU clock have settled.
 *             The count of the timed batch is derived from the last warm-up
 *             batch; if it still ends under BENCH_MIN_NS (a frequency change,
 *             a noisy neighbour), a further batch tops the total up.
 * Errors:     none: a case that cannot set itself up prints why and exits 1
 *             before any measurement (bench_fail).
 *
 * Each case prints one line:
 *
 *   name: N ns/op               (work that has no natural byte count)
 *   name: N ns/op (M MB/s)      (M = bytes per op / ns per op, 1 MB = 10^6 B)
 */
#ifndef HERALD_BENCH_H
#define HERALD_BENCH_H

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define BENCH_MIN_NS 500000000ull   /* the timed batch lasts at least 0.5 s */
#define BENCH_WARMUP_NS 50000000ull /* the last warm-up batch lasts 50 ms */

/* Results of the measured work are added here, so none of it is dead code. */
static volatile uint64_t bench_sink;

/* Run a case n times; the harness times the call. */
typedef void bench_fn(void *ctx, uint64_t n);

/*
 * Run a case n times and return the nanoseconds spent in its measured part,
 * for cases that must keep per-iteration set-up (I/O to feed the next
 * iteration, say) out of the figure.
 */
typedef uint64_t bench_timed_fn(void *ctx, uint64_t n);

/* Now, in nanoseconds of CLOCK_MONOTONIC. */
static inline uint64_t bench_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Print one line to stderr and exit 1: a case's set-up went wrong. */
static inline void bench_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static inline void bench_fail(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    fprintf(stderr, "bench: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(1);
}

/*
 * Cost of one bench_now_ns() call, averaged over a million, for cases that
 * time each iteration themselves and subtract what the clock adds.
 */
static inline double bench_clock_cost_ns(void)
{
    const int n = 1000000;
    uint64_t t0 = bench_now_ns(), acc = 0;

    for (int i = 0; i < n; i++)
        acc += bench_now_ns();
    bench_sink += acc;
    return (double)(bench_now_ns() - t0) / n;
}

/*
 * Warm up, then time batches until together they last BENCH_MIN_NS; ns per
 * op over the timed batches. Each batch's count comes from the rate of the
 * one before, so one batch usually suffices.
 */
static inline double bench_measure(bench_timed_fn *fn, void *ctx)
{
    uint64_t n = 1, ns, total_n = 0, total_ns = 0;

    while ((ns = fn(ctx, n)) < BENCH_WARMUP_NS)
        n *= 2;
    while (total_ns < BENCH_MIN_NS) {
        double rate = (double)n / (double)(ns ? ns : 1);

        n = (uint64_t)(rate * (double)(BENCH_MIN_NS - total_ns) * 1.05) + 1;
        ns = fn(ctx, n);
        total_n += n;
        total_ns += ns;
    }
    return (double)total_ns / (double)total_n;
}

/* Print a case's line; bytes 0 leaves out the throughput. */
static inline void bench_report(const char *name, double ns_per_op, size_t bytes)
{
    if (bytes > 0)
        printf("%s: %.1f ns/op (%.0f MB/s)\n", name, ns_per_op, (double)bytes * 1e3 / ns_per_op);
    else
        printf("%s: %.1f ns/op\n", name, ns_per_op);
    fflush(stdout);
}

/* A bench_fn and its context, timed whole by bench_time_plain. */
struct bench_plain {
    bench_fn *fn; /* static */
    void *ctx;    /* borrowed: the case's state */
};

/* A bench_timed_fn that times a whole bench_fn call. */
static inline uint64_t bench_time_plain(void *arg, uint64_t n)
{
    struct bench_plain *p = arg;
    uint64_t t0 = bench_now_ns();

    p->fn(p->ctx, n);
    return bench_now_ns() - t0;
}

/* Measure a case and print its line. bytes is per op, 0 when it does not apply. */
static inline void bench_run(const char *name, bench_fn *fn, void *ctx, size_t bytes)
{
    struct bench_plain p = {.fn = fn, .ctx = ctx};

    bench_report(name, bench_measure(bench_time_plain, &p), bytes);
}

/* The same for a case that times its own measured part. */
static inline void bench_run_timed(const char *name, bench_timed_fn *fn, void *ctx, size_t bytes)
{
    bench_report(name, bench_measure(fn, ctx), bytes);
}

#endif
