/*
 * rate.h -- how many events happened in the last RATE_WINDOW seconds: a
 * ring of one slot per second, each slot holding its second and that
 * second's count in one atomic word.
 *
 * Owns:       struct rate (embedded by its user: lib/route/site.h keeps one
 *             for the messages each site published and one for the frames
 *             it delivered, for GET /stats "last_minute").
 * Called by:  any thread: lib/api/routes.c adds publishes, worker.c adds
 *             delivered frames, routes.c sums them for /stats.
 * Invariants: lock-free and exact: a slot is updated by compare-and-swap,
 *             so an add is never lost, and a slot is reset only by an add
 *             for a later second. An add for a second older than its slot
 *             already holds is dropped: it fell out of the window. A count
 *             saturates at UINT32_MAX per second. Time is passed in (a
 *             second of the monotonic clock, rate_now()), so tests step it.
 * Tests:      tests/unit/test_rate.c.
 */
#ifndef HERALD_RATE_H
#define HERALD_RATE_H

#include <stdatomic.h>
#include <stdint.h>

#define RATE_WINDOW 60 /* seconds summed by rate_sum */

struct rate {
    atomic_uint_fast64_t slot[RATE_WINDOW]; /* (second << 32) | count, at second % RATE_WINDOW */
};

/* An empty ring: every slot counts nothing. */
void rate_init(struct rate *r);

/* Count n events at second now. */
void rate_add(struct rate *r, uint64_t n, uint32_t now);

/* The events counted in the window that ends at now: seconds now - 59 to now. */
uint64_t rate_sum(const struct rate *r, uint32_t now);

/* The current second of the monotonic clock (it never goes back). */
uint32_t rate_now(void);

#endif
