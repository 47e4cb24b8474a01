/*
 * rate.c -- events over the last RATE_WINDOW seconds (rate.h).
 *
 * Owns:       nothing beyond the caller's struct rate.
 * Called by:  routes.c and worker.c (add), routes.c (sum), on any thread.
 * Invariants: see rate.h. A slot's word is (second << 32) | count: one
 *             compare-and-swap moves both, so a reader never pairs a new
 *             second with an old count.
 */
#include "rate.h"

#include <time.h>

#define RATE_COUNT_MAX UINT32_MAX

void rate_init(struct rate *r)
{
    for (int i = 0; i < RATE_WINDOW; i++)
        atomic_init(&r->slot[i], 0);
}

void rate_add(struct rate *r, uint64_t n, uint32_t now)
{
    atomic_uint_fast64_t *s = &r->slot[now % RATE_WINDOW];
    uint64_t old = atomic_load_explicit(s, memory_order_relaxed), next, count;

    do {
        uint32_t sec = (uint32_t)(old >> 32);

        if (sec > now)
            return; /* the slot already holds a later second: this one left the window */
        count = sec == now ? (old & RATE_COUNT_MAX) : 0;
        count = n > RATE_COUNT_MAX - count ? RATE_COUNT_MAX : count + n;
        next = ((uint64_t)now << 32) | count;
    } while (!atomic_compare_exchange_weak_explicit(s, &old, next, memory_order_relaxed,
                                                    memory_order_relaxed));
}

uint64_t rate_sum(const struct rate *r, uint32_t now)
{
    uint64_t sum = 0;

    for (int i = 0; i < RATE_WINDOW; i++) {
        uint64_t v = atomic_load_explicit(&r->slot[i], memory_order_relaxed);
        uint32_t sec = (uint32_t)(v >> 32);

        if (sec <= now && now - sec < RATE_WINDOW)
            sum += v & RATE_COUNT_MAX;
    }
    return sum;
}

uint32_t rate_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint32_t)ts.tv_sec;
}
