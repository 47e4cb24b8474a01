/*
 * fmt.h -- decimal numbers written without printf, for the texts every
 * publish makes (the envelope, the API's answer and its head).
 *
 * Owns:       nothing: one inline function, safe on any thread.
 * Called by:  lib/proto/proto.c, lib/api/api.c, lib/api/routes.c.
 * Invariants: writes exactly what printf("%llu") would, without a NUL.
 */
#ifndef HERALD_FMT_H
#define HERALD_FMT_H

#include <stddef.h>
#include <stdint.h>

/* Room for any uint64_t in decimal. */
#define FMT_U64_MAX 20

/* Write v in decimal to out (FMT_U64_MAX bytes of room); returns the length. */
static inline size_t fmt_u64(char *out, uint64_t v)
{
    char digits[FMT_U64_MAX];
    size_t at = sizeof digits, n;

    do {
        digits[--at] = (char)('0' + v % 10);
        v /= 10;
    } while (v > 0);
    n = sizeof digits - at;
    for (size_t i = 0; i < n; i++)
        out[i] = digits[at + i];
    return n;
}

#endif
