/*
 * lg_util.h -- the load generator's small shared helpers: clock, allocation,
 * a fast PRNG and URL template expansion.
 *
 * Owns:       nothing; every function is a leaf.
 * Called by:  every loadgen file.
 * Invariants: safe on any thread (the PRNG state is the caller's).
 * Errors:     allocation failure aborts with one line on stderr, as the
 *             daemon's xmalloc does; lg_util_expand returns -1.
 */
#ifndef HERALD_LG_UTIL_H
#define HERALD_LG_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* CLOCK_MONOTONIC in nanoseconds: the clock every timestamp uses. */
uint64_t lg_util_now_ns(void);

/* Sleep until the CLOCK_MONOTONIC instant ns (returns at once if past). */
void lg_util_sleep_until(uint64_t ns);

/* malloc/calloc/realloc that abort on failure. */
void *lg_util_malloc(size_t n);
void *lg_util_calloc(size_t n, size_t size);
void *lg_util_realloc(void *p, size_t n);

/* Seed for lg_util_rand, from getrandom(2); never 0. */
uint64_t lg_util_seed(void);

/* xorshift64*: fast, not cryptographic; *state must not be 0. */
uint64_t lg_util_rand(uint64_t *state);

/* The values a URL template's placeholders stand for; NULL = not available. */
struct lg_vars {
    long long id;        /* {id}, or -1 when there is none */
    const char *user;    /* borrowed: {user} */
    const char *token;   /* borrowed: {token} */
    const char *channel; /* borrowed: {channel} */
};

/*
 * Expand {id} {user} {token} {channel} in tmpl into out (cap bytes, always
 * NUL-terminated). Returns the length, or -1 when the result does not fit,
 * a placeholder is unknown, or its value is not available (what names the
 * failing placeholder in *bad when bad is not NULL).
 */
int lg_util_expand(char *out, size_t cap, const char *tmpl, const struct lg_vars *v,
                   const char **bad);

#endif
