/*
 * lg_util.c -- the load generator's small shared helpers: clock, allocation,
 * a fast PRNG and URL template expansion.
 *
 * Owns:       nothing.
 * Called by:  every loadgen file.
 * Invariants: no globals; safe on any thread. Timestamps are always
 *             CLOCK_MONOTONIC nanoseconds, the clock the payload's "t" uses,
 *             so publisher and receiver stamps compare directly.
 * Errors:     allocation failure aborts (a load generator that cannot
 *             allocate has nothing useful left to measure).
 * Spec notes: the PRNG is xorshift64* (Vigna): it picks targets and masking
 *             keys, where speed matters and unpredictability does not.
 * Tests:      exercised by every loadgen run; bench/run.py checks results.
 */
#include "lg_util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

uint64_t lg_util_now_ns(void)
{
    struct timespec ts;

    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0) {
        perror("loadgen: clock_gettime");
        abort();
    }
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void lg_util_sleep_until(uint64_t ns)
{
    struct timespec ts = {.tv_sec = (time_t)(ns / 1000000000u),
                          .tv_nsec = (long)(ns % 1000000000u)};
    int r;

    /* clock_nanosleep returns the error number rather than setting errno. */
    while ((r = clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL)) == EINTR)
        ;
    if (r != 0) {
        fprintf(stderr, "loadgen: clock_nanosleep: %s\n", strerror(r));
        abort();
    }
}

/* Report an allocation failure and stop. */
static void oom(size_t n)
{
    fprintf(stderr, "loadgen: out of memory allocating %zu bytes\n", n);
    abort();
}

void *lg_util_malloc(size_t n)
{
    void *p = malloc(n ? n : 1);

    if (p == NULL)
        oom(n);
    return p;
}

void *lg_util_calloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);

    if (p == NULL)
        oom(n * size);
    return p;
}

void *lg_util_realloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);

    if (q == NULL)
        oom(n);
    return q;
}

uint64_t lg_util_seed(void)
{
    uint64_t s = 0;
    ssize_t r;

    while ((r = getrandom(&s, sizeof s, 0)) < 0 && errno == EINTR)
        ;
    if (r != (ssize_t)sizeof s) {
        perror("loadgen: getrandom");
        abort();
    }
    return s ? s : 0x9e3779b97f4a7c15u;
}

uint64_t lg_util_rand(uint64_t *state)
{
    uint64_t x = *state;

    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * 0x2545f4914f6cdd1du;
}

/* Append len bytes of s at out+*n; 0, or -1 when they do not fit. */
static int put(char *out, size_t cap, size_t *n, const char *s, size_t len)
{
    if (*n + len >= cap)
        return -1;
    memcpy(out + *n, s, len);
    *n += len;
    return 0;
}

/* The value of placeholder name (without braces), or NULL if unknown/unset. */
static const char *lookup(const char *name, size_t len, const struct lg_vars *v, char *idbuf,
                          size_t idcap)
{
    if (len == 2 && memcmp(name, "id", 2) == 0) {
        if (v->id < 0)
            return NULL;
        snprintf(idbuf, idcap, "%lld", v->id);
        return idbuf;
    }
    if (len == 4 && memcmp(name, "user", 4) == 0)
        return v->user;
    if (len == 5 && memcmp(name, "token", 5) == 0)
        return v->token;
    if (len == 7 && memcmp(name, "channel", 7) == 0)
        return v->channel;
    return NULL;
}

int lg_util_expand(char *out, size_t cap, const char *tmpl, const struct lg_vars *v,
                   const char **bad)
{
    size_t n = 0;
    char idbuf[24];

    if (cap == 0)
        return -1;
    for (const char *p = tmpl; *p != '\0';) {
        const char *end = p[0] == '{' ? strchr(p, '}') : NULL;
        const char *val;

        if (end == NULL) {
            if (put(out, cap, &n, p, 1) != 0)
                return -1;
            p++;
            continue;
        }
        val = lookup(p + 1, (size_t)(end - p - 1), v, idbuf, sizeof idbuf);
        if (val == NULL) {
            if (bad != NULL)
                *bad = p;
            return -1;
        }
        if (put(out, cap, &n, val, strlen(val)) != 0)
            return -1;
        p = end + 1;
    }
    out[n] = '\0';
    return (int)n;
}
