/*
 * utf8.c -- incremental UTF-8 validator (RFC 3629), used for text messages
 * and close reasons.
 *
 * Owns:       the meaning of struct utf8_state: one DFA state, so a code
 *             point may be split across any number of feeds (frames, reads).
 * Called by:  conn.c (text messages, fragment by fragment), ws.c (close
 *             reasons, through utf8_valid).
 * Invariants: pure functions; no allocation, no I/O; safe on any thread.
 *             The reject state is sticky: once a feed returns -1, every
 *             later feed does too, until utf8_init.
 * Errors:     utf8_feed returns -1 as soon as the bytes so far cannot be a
 *             prefix of valid UTF-8, so a bad message is refused at the
 *             first bad byte rather than at its end.
 * Spec notes: the DFA follows the well-formed byte sequences table of
 *             Unicode 15 section 3.9 (table 3-7): overlongs (C0, C1, E0
 *             80-9F, F0 80-8F), surrogates (ED A0-BF), code points above
 *             U+10FFFF (F4 90-BF, F5-FF) and the old 5- and 6-byte forms
 *             are all refused at the first byte that makes them so.
 *             Between code points, runs of ASCII are skipped 16 and 8 bytes
 *             at a time; most text messages are mostly ASCII JSON.
 * Tests:      tests/unit/test_utf8.c, tests/fuzz/fuzz_utf8.c.
 */
#include "utf8.h"

#include <string.h>

/* DFA states. S_OK must equal UTF8_ACCEPT. */
enum {
    S_OK = UTF8_ACCEPT, /* between code points */
    S_BAD,              /* rejected; sticky */
    S_C1,               /* one more 80-BF, then a code point ends */
    S_C2,               /* two more 80-BF */
    S_C3,               /* three more 80-BF */
    S_E0,               /* after E0: A0-BF (80-9F would be overlong) */
    S_ED,               /* after ED: 80-9F (A0-BF would be a surrogate) */
    S_F0,               /* after F0: 90-BF (80-8F would be overlong) */
    S_F4,               /* after F4: 80-8F (90-BF would be above U+10FFFF) */
    S_COUNT
};

/* Byte classes: the bytes the DFA does not need to tell apart share one. */
enum {
    C_ASCII, /* 00-7F */
    C_80,    /* 80-8F continuation */
    C_90,    /* 90-9F continuation */
    C_A0,    /* A0-BF continuation */
    C_NEVER, /* C0, C1, F5-FF: never valid */
    C_LEAD2, /* C2-DF: lead of 2 */
    C_E0,    /* E0: lead of 3, restricted */
    C_LEAD3, /* E1-EC, EE, EF: lead of 3 */
    C_ED,    /* ED: lead of 3, restricted */
    C_F0,    /* F0: lead of 4, restricted */
    C_LEAD4, /* F1-F3: lead of 4 */
    C_F4,    /* F4: lead of 4, restricted */
    C_COUNT
};

/* The class of every byte value, 16 to a row. */
/* clang-format off */
static const uint8_t byte_class[256] = {
    /* 00-7F */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    /* 80-BF */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,
    /* C0-DF */
    4, 4, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5,
    5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5,
    /* E0-EF */
    6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 7,
    /* F0-FF */
    9, 10, 10, 10, 11, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4,
};

/* next_state[state][class]; X marks a byte that cannot come next in that state. */
#define X S_BAD
static const uint8_t next_state[S_COUNT][C_COUNT] = {
    /*         ASCII 80    90    A0    NEVER LEAD2 E0    LEAD3 ED    F0    LEAD4 F4 */
    [S_OK]  = {S_OK, X,    X,    X,    X,    S_C1, S_E0, S_C2, S_ED, S_F0, S_C3, S_F4},
    [S_BAD] = {X,    X,    X,    X,    X,    X,    X,    X,    X,    X,    X,    X},
    [S_C1]  = {X,    S_OK, S_OK, S_OK, X,    X,    X,    X,    X,    X,    X,    X},
    [S_C2]  = {X,    S_C1, S_C1, S_C1, X,    X,    X,    X,    X,    X,    X,    X},
    [S_C3]  = {X,    S_C2, S_C2, S_C2, X,    X,    X,    X,    X,    X,    X,    X},
    [S_E0]  = {X,    X,    X,    S_C1, X,    X,    X,    X,    X,    X,    X,    X},
    [S_ED]  = {X,    S_C1, S_C1, X,    X,    X,    X,    X,    X,    X,    X,    X},
    [S_F0]  = {X,    X,    S_C2, S_C2, X,    X,    X,    X,    X,    X,    X,    X},
    [S_F4]  = {X,    S_C2, X,    X,    X,    X,    X,    X,    X,    X,    X,    X},
};
#undef X
/* clang-format on */

#define HIGH_BITS 0x8080808080808080ULL

/* Skip the ASCII bytes at p, a word at a time while a whole word is ASCII. */
static const uint8_t *skip_ascii(const uint8_t *p, const uint8_t *end)
{
    uint64_t a, b;

    while (end - p >= 16) {
        memcpy(&a, p, 8);
        memcpy(&b, p + 8, 8);
        if ((a | b) & HIGH_BITS)
            break;
        p += 16;
    }
    while (end - p >= 8) {
        memcpy(&a, p, 8);
        if (a & HIGH_BITS)
            break;
        p += 8;
    }
    while (p < end && *p < 0x80)
        p++;
    return p;
}

/* Start a new message: no bytes seen, so on a code point boundary. */
void utf8_init(struct utf8_state *s)
{
    s->state = S_OK;
}

/* Run the DFA over p[0..n), skipping ASCII runs while between code points. */
int utf8_feed(struct utf8_state *s, const uint8_t *p, size_t n)
{
    const uint8_t *end;
    uint32_t st = s->state;

    if (st >= S_COUNT)
        st = S_BAD;
    if (n == 0)
        return st == S_BAD ? -1 : 0;
    end = p + n;
    while (st != S_BAD && p < end) {
        if (st == S_OK) {
            p = skip_ascii(p, end);
            if (p == end)
                break;
        }
        st = next_state[st][byte_class[*p++]];
    }
    s->state = st;
    return st == S_BAD ? -1 : 0;
}

/* A message may only end between code points. */
int utf8_complete(const struct utf8_state *s)
{
    return s->state == S_OK;
}

/* One-shot check of a whole buffer (close reasons, tests). */
int utf8_valid(const uint8_t *p, size_t n)
{
    struct utf8_state s;

    utf8_init(&s);
    return utf8_feed(&s, p, n) == 0 && utf8_complete(&s);
}
