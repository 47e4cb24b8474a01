/*
 * bench_utf8.c -- micro-benchmarks of the incremental UTF-8 validator
 * (utf8.c), which every received text message goes through.
 *
 * Owns:       its cases and their buffers; nothing outlives main.
 * Called by:  make bench (build/bench/bench_utf8); run it by hand as well.
 * Invariants: each op is one whole message: utf8_init, one utf8_feed over
 *             the buffer, and utf8_complete, as conn.c does for an
 *             unfragmented text message. The same buffer is validated N
 *             times, so it is warm in cache. Results go into the volatile
 *             sink (bench.h).
 * Errors:     an input the validator refuses aborts the program before any
 *             timing (bench_fail): a case must measure the accepting path.
 *
 * Cases:
 *   1 KiB ASCII        JSON-like ASCII, the common chat message; utf8.c skips
 *                      runs of ASCII 16 and 8 bytes at a time.
 *   1 KiB 2/3-byte     text with no ASCII at all, alternating 2-byte
 *                      (Cyrillic, Greek) and 3-byte (CJK, the euro sign)
 *                      code points, so every byte goes through the DFA.
 *   64 KiB ASCII       the ASCII fast path on a large message.
 */
#include "bench.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "utf8.h"

struct utf8_case {
    uint8_t *buf; /* owned */
    size_t len;
};

static void run_feed(void *ctx, uint64_t n)
{
    const struct utf8_case *c = ctx;
    struct utf8_state st;
    uint64_t acc = 0;

    for (uint64_t i = 0; i < n; i++) {
        utf8_init(&st);
        acc += (uint64_t)(utf8_feed(&st, c->buf, c->len) + 1) + (uint64_t)utf8_complete(&st);
    }
    bench_sink += acc;
}

/* len bytes of printable ASCII shaped like a JSON message. */
static uint8_t *make_ascii(size_t len)
{
    static const char text[] = "{\"event\":\"chat.message\",\"data\":{\"from\":\"alice\","
                               "\"text\":\"See you at the station at 7, bring the tickets.\"}}";
    uint8_t *p = malloc(len);

    if (p == NULL)
        bench_fail("out of memory");
    for (size_t i = 0; i < len; i++)
        p[i] = (uint8_t)text[i % (sizeof text - 1)];
    return p;
}

/* Exactly len bytes (len >= 2) of whole 2- and 3-byte code points, no ASCII. */
static uint8_t *make_mixed(size_t len)
{
    /* д λ 中 € ж 日: 2, 2, 3, 3, 2, 3 bytes */
    static const char *const cps[] = {"\xd0\xb4",     "\xce\xbb", "\xe4\xb8\xad",
                                      "\xe2\x82\xac", "\xd0\xb6", "\xe6\x97\xa5"};
    uint8_t *p = malloc(len);
    size_t at = 0;

    if (p == NULL || len < 2)
        bench_fail("make_mixed(%zu)", len);
    for (size_t i = 0; len - at >= 8; i++) {
        size_t n = strlen(cps[i % 6]);

        memcpy(p + at, cps[i % 6], n);
        at += n;
    }
    /* 2..7 bytes left: an odd count takes one 3-byte code point first. */
    while (at < len) {
        const char *cp = (len - at) % 2 ? "\xe4\xb8\xad" : "\xd0\xb4";
        size_t n = strlen(cp);

        memcpy(p + at, cp, n);
        at += n;
    }
    return p;
}

int main(void)
{
    struct {
        const char *name;
        struct utf8_case c;
    } cases[] = {
        {"utf8_feed (1 KiB ASCII)", {make_ascii(1024), 1024}},
        {"utf8_feed (1 KiB 2/3-byte text)", {make_mixed(1024), 1024}},
        {"utf8_feed (64 KiB ASCII)", {make_ascii(65536), 65536}},
    };

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct utf8_case *c = &cases[i].c;

        if (!utf8_valid(c->buf, c->len))
            bench_fail("%s: input is not valid UTF-8", cases[i].name);
        bench_run(cases[i].name, run_feed, c, c->len);
    }
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        free(cases[i].c.buf);
    return 0;
}
