/*
 * stripe.h -- which stripe of a striped table a key lives in.
 *
 * Owns:       nothing.
 * Called by:  the tables shared between threads and split into stripes,
 *             each with its own mutex: dir.c, pres.c, hist.c, lim.c.
 * Invariants: FNV-1a, so a key always lands in the same stripe; uthash
 *             hashes again inside the stripe.
 */
#ifndef HERALD_STRIPE_H
#define HERALD_STRIPE_H

#include <stddef.h>
#include <stdint.h>

/* The stripe, of n, for key[0..len). */
static inline unsigned stripe_of(const char *key, size_t len, unsigned n)
{
    uint32_t h = 2166136261u;

    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)key[i]) * 16777619u;
    return h % n;
}

#endif
