/*
 * test_utf8.c -- unit tests for the incremental UTF-8 validator (utf8.c).
 *
 * Covers:     Markus Kuhn's UTF-8 decoder stress test, section by section
 *             (boundaries, continuation bytes, truncated sequences,
 *             impossible bytes, overlongs, surrogates, noncharacters), each
 *             vector fed whole, byte by byte and split in two at every
 *             position; the ASCII fast path at every alignment and length;
 *             the sticky reject state; and every 2-byte string, every
 *             3-byte string with a multibyte lead, and a sample of 4-byte
 *             strings against a straightforward reference decoder.
 * Invariants: every input sits at the end of a page followed by a
 *             PROT_NONE page (guard.h), so an overread faults.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "guard.h"
#include "utf8.h"

#include "../lib/utf8_reference.h"

/* What a vector is: valid, refused outright, or a valid prefix cut short. */
enum expect { VALID, INVALID, TRUNCATED };

struct vector {
    const char *what;
    const char *bytes;
    size_t len;
    enum expect expect;
};

#define V(what, s, e)                                                                              \
    {                                                                                              \
        what, s, sizeof(s) - 1, e                                                                  \
    }

static const struct vector vectors[] = {
    /* 1: some correct text */
    V("kosme", "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5", VALID),
    V("empty", "", VALID),
    V("ascii", "Hello, world! {\"event\":\"x\"}", VALID),
    /* 2.1: first code point of each length */
    V("U+0000", "\x00", VALID),
    V("U+0080", "\xc2\x80", VALID),
    V("U+0800", "\xe0\xa0\x80", VALID),
    V("U+10000", "\xf0\x90\x80\x80", VALID),
    V("5-byte U+200000", "\xf8\x88\x80\x80\x80", INVALID),
    V("6-byte U+4000000", "\xfc\x84\x80\x80\x80\x80", INVALID),
    /* 2.2: last code point of each length */
    V("U+007F", "\x7f", VALID),
    V("U+07FF", "\xdf\xbf", VALID),
    V("U+FFFF", "\xef\xbf\xbf", VALID),
    V("4-byte U+1FFFFF", "\xf7\xbf\xbf\xbf", INVALID),
    V("5-byte U+3FFFFFF", "\xfb\xbf\xbf\xbf\xbf", INVALID),
    V("6-byte U+7FFFFFFF", "\xfd\xbf\xbf\xbf\xbf\xbf", INVALID),
    /* 2.3: other boundaries */
    V("U+D7FF", "\xed\x9f\xbf", VALID),
    V("U+E000", "\xee\x80\x80", VALID),
    V("U+FFFD", "\xef\xbf\xbd", VALID),
    V("U+10FFFF", "\xf4\x8f\xbf\xbf", VALID),
    V("U+110000", "\xf4\x90\x80\x80", INVALID),
    V("U+13FFFF", "\xf4\xbf\xbf\xbf", INVALID),
    V("U+140000", "\xf5\x80\x80\x80", INVALID),
    /* 3.1: unexpected continuation bytes */
    V("lone 80", "\x80", INVALID),
    V("lone bf", "\xbf", INVALID),
    V("80 bf", "\x80\xbf", INVALID),
    V("80 bf 80 bf", "\x80\xbf\x80\xbf", INVALID),
    V("continuation after ascii", "abc\x80", INVALID),
    V("one too many continuations", "\xc2\x80\x80", INVALID),
    /* 3.2: lonely start bytes followed by a space */
    V("c2 space", "\xc2 ", INVALID),
    V("df space", "\xdf ", INVALID),
    V("e1 space", "\xe1 ", INVALID),
    V("ef 80 space", "\xef\x80 ", INVALID),
    V("f1 space", "\xf1 ", INVALID),
    V("f3 80 80 space", "\xf3\x80\x80 ", INVALID),
    V("f8 space", "\xf8 ", INVALID),
    V("fc space", "\xfc ", INVALID),
    /* 3.3: sequences with the last byte missing (valid so far, not complete) */
    V("c2 alone", "\xc2", TRUNCATED),
    V("df alone", "\xdf", TRUNCATED),
    V("e0 a0", "\xe0\xa0", TRUNCATED),
    V("ef bf", "\xef\xbf", TRUNCATED),
    V("f0 90 80", "\xf0\x90\x80", TRUNCATED),
    V("f4 8f bf", "\xf4\x8f\xbf", TRUNCATED),
    V("text then e2 82", "price: \xe2\x82", TRUNCATED),
    /* 3.4: truncated sequences followed by more text */
    V("e0 a0 then ascii",
      "\xe0\xa0"
      "a",
      INVALID),
    V("f0 90 80 then c2 80", "\xf0\x90\x80\xc2\x80", INVALID),
    /* 3.5: impossible bytes */
    V("fe", "\xfe", INVALID),
    V("ff", "\xff", INVALID),
    V("fe fe ff ff", "\xfe\xfe\xff\xff", INVALID),
    V("c0 alone", "\xc0", INVALID),
    V("c1 alone", "\xc1", INVALID),
    V("f5 alone", "\xf5", INVALID),
    /* 4.1: overlong slash */
    V("overlong / 2", "\xc0\xaf", INVALID),
    V("overlong / 3", "\xe0\x80\xaf", INVALID),
    V("overlong / 4", "\xf0\x80\x80\xaf", INVALID),
    V("overlong / 5", "\xf8\x80\x80\x80\xaf", INVALID),
    V("overlong / 6", "\xfc\x80\x80\x80\x80\xaf", INVALID),
    /* 4.2: largest overlongs */
    V("overlong U+007F", "\xc1\xbf", INVALID),
    V("overlong U+07FF", "\xe0\x9f\xbf", INVALID),
    V("overlong U+FFFF", "\xf0\x8f\xbf\xbf", INVALID),
    /* 4.3: overlong NUL */
    V("overlong NUL 2", "\xc0\x80", INVALID),
    V("overlong NUL 3", "\xe0\x80\x80", INVALID),
    V("overlong NUL 4", "\xf0\x80\x80\x80", INVALID),
    /* 5.1: single UTF-16 surrogates */
    V("U+D800", "\xed\xa0\x80", INVALID),
    V("U+DB7F", "\xed\xad\xbf", INVALID),
    V("U+DB80", "\xed\xae\x80", INVALID),
    V("U+DBFF", "\xed\xaf\xbf", INVALID),
    V("U+DC00", "\xed\xb0\x80", INVALID),
    V("U+DF80", "\xed\xbe\x80", INVALID),
    V("U+DFFF", "\xed\xbf\xbf", INVALID),
    /* 5.2: paired surrogates */
    V("U+D800 U+DC00", "\xed\xa0\x80\xed\xb0\x80", INVALID),
    V("U+DBFF U+DFFF", "\xed\xaf\xbf\xed\xbf\xbf", INVALID),
    /* 5.3: noncharacters are valid UTF-8 */
    V("U+FFFE", "\xef\xbf\xbe", VALID),
    V("U+FDD0", "\xef\xb7\x90", VALID),
    V("U+10FFFE", "\xf4\x8f\xbf\xbe", VALID),
    /* long runs, so the fast path and the DFA take turns */
    V("ascii run then 4-byte",
      "0123456789abcdef0123456789abcdef\xf0\x9f\x98\x80"
      "tail",
      VALID),
    V("ascii run then bad", "0123456789abcdef0123456789abcdef0123456789\xc0\xaf", INVALID),
    V("mixed", "caf\xc3\xa9 \xe2\x82\xac 10 \xf0\x9f\x8d\x95 pizza, \xe6\x97\xa5\xe6\x9c\xac",
      VALID),
};

/* Feed v in pieces cut at the given points; returns the expectation it met. */
static enum expect feed_pieces(const uint8_t *p, size_t len, const size_t *cuts, size_t ncuts)
{
    struct utf8_state s;
    size_t from = 0;

    utf8_init(&s);
    for (size_t i = 0; i <= ncuts; i++) {
        size_t to = i < ncuts ? cuts[i] : len;

        if (utf8_feed(&s, p + from, to - from) != 0)
            return INVALID;
        from = to;
    }
    return utf8_complete(&s) ? VALID : TRUNCATED;
}

/* Report a table case that failed, then fail the test. */
static void fail_case(const char *what, const char *how, int got, int want)
{
    print_error("case \"%s\" (%s): got %d, want %d\n", what, how, got, want);
    fail();
}

/* Every vector fed in one piece, and through utf8_valid. */
static void test_utf8_vectors_whole(void **state)
{
    for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
        const struct vector *v = &vectors[i];
        uint8_t *p = guard_place(v->bytes, v->len);
        enum expect got = feed_pieces(p, v->len, NULL, 0);

        if (got != v->expect)
            fail_case(v->what, "whole", got, v->expect);
        if (utf8_valid(p, v->len) != (v->expect == VALID))
            fail_case(v->what, "utf8_valid", !utf8_valid(p, v->len), v->expect == VALID);
        guard_release(p, v->len);
    }
}

/* Every short vector fed one byte per call. */
static void test_utf8_vectors_byte_by_byte(void **state)
{
    size_t cuts[16];

    for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
        const struct vector *v = &vectors[i];
        uint8_t *p;
        size_t n = 0;

        if (v->len > sizeof(cuts) / sizeof(cuts[0]))
            continue;
        for (size_t k = 1; k < v->len; k++)
            cuts[n++] = k;
        p = guard_place(v->bytes, v->len);
        if (feed_pieces(p, v->len, cuts, n) != v->expect)
            fail_case(v->what, "byte by byte", feed_pieces(p, v->len, cuts, n), v->expect);
        guard_release(p, v->len);
    }
}

/* Every vector split in two at every position. */
static void test_utf8_vectors_split_everywhere(void **state)
{
    for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
        const struct vector *v = &vectors[i];
        uint8_t *p = guard_place(v->bytes, v->len);

        for (size_t cut = 0; cut <= v->len; cut++) {
            char how[32];

            snprintf(how, sizeof(how), "split at %zu", cut);
            if (feed_pieces(p, v->len, &cut, 1) != v->expect)
                fail_case(v->what, how, feed_pieces(p, v->len, &cut, 1), v->expect);
        }
        guard_release(p, v->len);
    }
}

/* Bad input is refused before the sequence is complete. */
static void test_utf8_invalid_refused_at_first_bad_byte(void **state)
{
    /* A surrogate is refused at its second byte, before the third arrives. */
    static const uint8_t surrogate[] = {0xed, 0xa0};
    /* A 4-byte lead above F4 is refused at once. */
    static const uint8_t f5[] = {0xf5};
    /* An overlong 3-byte form is refused at its second byte. */
    static const uint8_t overlong[] = {0xe0, 0x9f};
    struct utf8_state s;

    utf8_init(&s);
    assert_int_equal(utf8_feed(&s, surrogate, sizeof(surrogate)), -1);
    utf8_init(&s);
    assert_int_equal(utf8_feed(&s, f5, sizeof(f5)), -1);
    utf8_init(&s);
    assert_int_equal(utf8_feed(&s, overlong, sizeof(overlong)), -1);
}

/* After -1, utf8_feed keeps returning -1 until utf8_init. */
static void test_utf8_reject_is_sticky(void **state)
{
    struct utf8_state s;

    utf8_init(&s);
    assert_int_equal(utf8_feed(&s, (const uint8_t *)"\xff", 1), -1);
    /* Good bytes after a bad one do not revive the message. */
    assert_int_equal(utf8_feed(&s, (const uint8_t *)"abc", 3), -1);
    assert_int_equal(utf8_feed(&s, (const uint8_t *)"", 0), -1);
    assert_int_equal(utf8_complete(&s), 0);
    /* utf8_init starts a new message. */
    utf8_init(&s);
    assert_int_equal(utf8_feed(&s, (const uint8_t *)"abc", 3), 0);
    assert_int_equal(utf8_complete(&s), 1);
}

/* An empty feed inside a code point changes nothing. */
static void test_utf8_empty_feed_keeps_state(void **state)
{
    struct utf8_state s;

    utf8_init(&s);
    assert_int_equal(utf8_feed(&s, (const uint8_t *)"\xe2\x82", 2), 0);
    assert_int_equal(utf8_feed(&s, NULL, 0), 0);
    assert_int_equal(utf8_complete(&s), 0);
    assert_int_equal(utf8_feed(&s, (const uint8_t *)"\xac", 1), 0);
    assert_int_equal(utf8_complete(&s), 1);
}

/* Check one buffer of ASCII with `ins` written at `pos`, at every alignment. */
static void check_ascii_with(size_t len, size_t pos, const char *ins, size_t inslen, int want)
{
    uint8_t buf[128 + 8];

    for (size_t align = 0; align < 8; align++) {
        uint8_t *b = buf + align;
        uint8_t *p;

        memset(b, 'a', len);
        memcpy(b + pos, ins, inslen);
        p = guard_place(b, len);
        if (utf8_valid(p, len) != want) {
            print_error("len %zu pos %zu align %zu: want %d\n", len, pos, align, want);
            fail();
        }
        guard_release(p, len);
        if (utf8_valid(b, len) != want) {
            print_error("unguarded len %zu pos %zu align %zu: want %d\n", len, pos, align, want);
            fail();
        }
    }
}

/* A non-ASCII byte or character at every position, length and alignment. */
static void test_utf8_ascii_fast_path_every_position(void **state)
{
    for (size_t len = 1; len <= 72; len++) {
        for (size_t pos = 0; pos < len; pos++) {
            /* One high byte anywhere in an ASCII run. */
            check_ascii_with(len, pos, "\x80", 1, 0);
            check_ascii_with(len, pos, "\xff", 1, 0);
            /* A 2-, 3- and 4-byte character anywhere, across word edges. */
            if (pos + 2 <= len)
                check_ascii_with(len, pos, "\xc3\xa9", 2, 1);
            if (pos + 3 <= len)
                check_ascii_with(len, pos, "\xe2\x82\xac", 3, 1);
            if (pos + 4 <= len)
                check_ascii_with(len, pos, "\xf0\x9f\x98\x80", 4, 1);
            /* A lead byte cut off by the end of the buffer. */
            if (pos + 1 == len)
                check_ascii_with(len, pos, "\xe2", 1, 0);
        }
    }
}

/* All 2-byte strings, 3-byte ones with a lead >= C0, and a 4-byte sample. */
static void test_utf8_exhaustive_against_reference(void **state)
{
    static const uint8_t tails[] = {0x00, 0x41, 0x7f, 0x80, 0x8f, 0x90,
                                    0x9f, 0xa0, 0xbf, 0xc0, 0xff};
    uint8_t b[4];

    for (unsigned x = 0; x < 0x10000; x++) {
        b[0] = (uint8_t)(x >> 8);
        b[1] = (uint8_t)x;
        assert_int_equal(utf8_valid(b, 2), reference_valid(b, 2));
    }
    for (unsigned x = 0xc00000; x < 0x1000000; x++) {
        b[0] = (uint8_t)(x >> 16);
        b[1] = (uint8_t)(x >> 8);
        b[2] = (uint8_t)x;
        if (utf8_valid(b, 3) != reference_valid(b, 3)) {
            print_error("%02x %02x %02x\n", b[0], b[1], b[2]);
            fail();
        }
    }
    for (unsigned lead = 0xf0; lead <= 0xff; lead++) {
        for (unsigned second = 0; second < 0x100; second++) {
            for (size_t t3 = 0; t3 < sizeof(tails); t3++) {
                for (size_t t4 = 0; t4 < sizeof(tails); t4++) {
                    b[0] = (uint8_t)lead;
                    b[1] = (uint8_t)second;
                    b[2] = tails[t3];
                    b[3] = tails[t4];
                    assert_int_equal(utf8_valid(b, 4), reference_valid(b, 4));
                }
            }
        }
    }
}

/* Run the utf8 suite. */
int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_utf8_vectors_whole),
        cmocka_unit_test(test_utf8_vectors_byte_by_byte),
        cmocka_unit_test(test_utf8_vectors_split_everywhere),
        cmocka_unit_test(test_utf8_invalid_refused_at_first_bad_byte),
        cmocka_unit_test(test_utf8_reject_is_sticky),
        cmocka_unit_test(test_utf8_empty_feed_keeps_state),
        cmocka_unit_test(test_utf8_ascii_fast_path_every_position),
        cmocka_unit_test(test_utf8_exhaustive_against_reference),
    };

    return cmocka_run_group_tests_name("utf8", tests, NULL, NULL);
}
