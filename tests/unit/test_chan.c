/*
 * test_chan.c -- unit tests for channel names and patterns (chan.c).
 *
 * Covers:     chan_name_valid on every allowed character, every byte value
 *             outside the set (alone, first, in the middle, last), the empty
 *             name, 128 vs 129 bytes, and NUL bytes counted by the length;
 *             chan_pattern_valid on "*", prefixes, names, and every misplaced
 *             '*'; chan_match for prefix and exact patterns, including
 *             patterns longer than the name; chan_match_any.
 * Invariants: every name sits at the end of a page followed by a PROT_NONE
 *             page (guard.h), so reading one byte past its length faults;
 *             patterns are placed the same way with their NUL.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "chan.h"
#include "guard.h"

#define ALLOWED "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-.:@/=+"

/* chan_name_valid on s[0..len), placed against a guard page. */
static int name_ok(const char *s, size_t len)
{
    char *p = guard_place(s, len);
    int r = chan_name_valid(p, len);

    guard_release(p, len);
    return r;
}

/* chan_pattern_valid on the NUL-terminated p, its NUL the last byte before the guard page. */
static int pattern_ok(const char *pat)
{
    size_t len = strlen(pat) + 1;
    char *p = guard_place(pat, len);
    int r = chan_pattern_valid(p);

    guard_release(p, len);
    return r;
}

/* chan_match(pat, name[0..len)) with both placed against guard pages. */
static int match(const char *pat, const char *name, size_t len)
{
    size_t plen = strlen(pat) + 1;
    char *pp = guard_place(pat, plen);
    char *np = guard_place(name, len);
    int r = chan_match(pp, np, len);

    guard_release(np, len);
    guard_release(pp, plen);
    return r;
}

/* One name case: the bytes (len 0: strlen) and the verdict. */
struct name_case {
    const char *what;
    const char *name;
    size_t len;
    int valid;
};

static const struct name_case name_cases[] = {
    /* the examples of docs/protocol.md */
    {"team:12", "team:12", 0, 1},
    {"orders/eu", "orders/eu", 0, 1},
    /* every allowed character at once (72 bytes) */
    {"all allowed", ALLOWED, 0, 1},
    /* one byte, each class */
    {"one letter", "a", 0, 1},
    {"one digit", "7", 0, 1},
    {"one punct", "@", 0, 1},
    /* punctuation-only names are names too */
    {"only punct", "_-.:@/=+", 0, 1},
    /* empty */
    {"empty", "", 0, 0},
    /* the pattern characters never appear in a name */
    {"star alone", "*", 0, 0},
    {"star suffix", "team:*", 0, 0},
    {"star middle", "a*b", 0, 0},
    /* common separators that are refused */
    {"space", "team 12", 0, 0},
    {"tab", "team\t12", 0, 0},
    {"newline", "team\n", 0, 0},
    {"comma", "a,b", 0, 0},
    {"semicolon", "a;b", 0, 0},
    {"hash", "a#b", 0, 0},
    {"question", "a?b", 0, 0},
    {"percent", "a%20", 0, 0},
    {"ampersand", "a&b", 0, 0},
    {"double quote", "a\"b", 0, 0},
    {"single quote", "a'b", 0, 0},
    {"backslash", "a\\b", 0, 0},
    {"angle", "<a>", 0, 0},
    {"braces", "{a}", 0, 0},
    {"brackets", "[a]", 0, 0},
    {"parens", "(a)", 0, 0},
    {"bang", "a!", 0, 0},
    {"dollar", "$a", 0, 0},
    {"caret", "a^b", 0, 0},
    {"backtick", "a`b", 0, 0},
    {"pipe", "a|b", 0, 0},
    {"tilde", "~a", 0, 0},
    /* control characters and DEL */
    {"control 0x01", "a\x01", 0, 0},
    {"control 0x1f", "\037a", 0, 0},
    {"del", "a\x7f", 0, 0},
    /* non-ASCII: UTF-8 letters and raw high bytes */
    {"utf-8 e-acute", "caf\xc3\xa9", 0, 0},
    {"utf-8 emoji", "\xf0\x9f\x98\x80", 0, 0},
    {"high byte 0x80", "a\x80", 0, 0},
    {"high byte 0xff", "\xff", 0, 0},
    /* NUL counted by the length: never a terminator */
    {"nul middle", "ab\0cd", 5, 0},
    {"nul last", "ab\0", 3, 0},
    {"nul first", "\0ab", 3, 0},
    {"nul only", "\0", 1, 0},
    /* a length shorter than the text: only the prefix is looked at */
    {"prefix before bad byte", "team 12", 4, 1},
};

/* Every row of name_cases. */
static void test_chan_name_table(void **state)
{
    for (size_t i = 0; i < sizeof(name_cases) / sizeof(name_cases[0]); i++) {
        const struct name_case *c = &name_cases[i];
        size_t len = c->len ? c->len : strlen(c->name);

        if (name_ok(c->name, len) != c->valid) {
            print_error("case \"%s\": got %d, want %d\n", c->what, !c->valid, c->valid);
            fail();
        }
    }
}

/* Every byte value, alone and first, middle and last in a valid name. */
static void test_chan_name_every_byte(void **state)
{
    for (int b = 0; b < 256; b++) {
        int want = b != 0 && strchr(ALLOWED, b) != NULL;
        char one[1] = {(char)b};
        char buf[5] = {'a', 'b', 'c', 'd', 'e'};

        if (name_ok(one, 1) != want) {
            print_error("byte 0x%02x alone: got %d, want %d\n", b, !want, want);
            fail();
        }
        for (int at = 0; at < 5; at += 2) {
            buf[at] = (char)b;
            if (name_ok(buf, 5) != want) {
                print_error("byte 0x%02x at %d: got %d, want %d\n", b, at, !want, want);
                fail();
            }
            buf[at] = 'a';
        }
    }
}

/* CHAN_MAX_NAME bytes pass, one more fails, whatever the characters. */
static void test_chan_name_length_limit(void **state)
{
    char name[CHAN_MAX_NAME + 2];

    assert_int_equal(CHAN_MAX_NAME, 128);
    memset(name, 'c', sizeof name);
    assert_true(name_ok(name, 128));
    assert_false(name_ok(name, 129));
    assert_false(name_ok(name, 130));
    /* the docs' longest example: "public:" + 121 bytes */
    memcpy(name, "public:", 7);
    assert_true(name_ok(name, 128));
    assert_false(name_ok(name, 129));
    /* the limit is in bytes: a bad byte past 128 does not matter when len is 128 */
    name[128] = ' ';
    assert_true(name_ok(name, 128));
    /* NULL is never a name */
    assert_false(chan_name_valid(NULL, 0));
    assert_false(chan_name_valid(NULL, 3));
}

/* One pattern case. */
struct pattern_case {
    const char *what;
    const char *pattern;
    int valid;
};

static const struct pattern_case pattern_cases[] = {
    /* "*" alone matches every channel */
    {"star", "*", 1},
    /* a prefix ending in '*' */
    {"prefix", "team:*", 1},
    {"one-char prefix", "a*", 1},
    {"punct prefix", "@*", 1},
    /* a plain name is a pattern (exact match) */
    {"name", "team:", 1},
    {"name 2", "team:12", 1},
    {"all allowed", ALLOWED, 1},
    /* '*' anywhere but last, or more than one */
    {"leading star", "*x", 0},
    {"middle star", "a*b", 0},
    {"double star", "**", 0},
    {"prefix double star", "team:**", 0},
    {"two stars", "a*b*", 0},
    {"star in middle and end", "*a*", 0},
    /* empty */
    {"empty", "", 0},
    /* the prefix follows the name rules */
    {"bad char prefix", "team 1*", 0},
    {"bad char name", "team#1", 0},
    {"utf-8 prefix", "caf\xc3\xa9*", 0},
    {"control prefix", "\x01*", 0},
    {"trailing space", "team:* ", 0},
    {"question", "team:?", 0},
};

/* Every row of pattern_cases. */
static void test_chan_pattern_table(void **state)
{
    for (size_t i = 0; i < sizeof(pattern_cases) / sizeof(pattern_cases[0]); i++) {
        const struct pattern_case *c = &pattern_cases[i];

        if (pattern_ok(c->pattern) != c->valid) {
            print_error("case \"%s\": got %d, want %d\n", c->what, !c->valid, c->valid);
            fail();
        }
    }
}

/* The prefix of a pattern may be 128 bytes (129 with the '*'), a name 128. */
static void test_chan_pattern_length_limit(void **state)
{
    char p[CHAN_MAX_NAME + 3];

    memset(p, 'p', sizeof p);
    p[128] = '\0';
    assert_true(pattern_ok(p));
    p[128] = 'p';
    p[129] = '\0';
    assert_false(pattern_ok(p));
    p[128] = '*';
    p[129] = '\0';
    assert_true(pattern_ok(p));
    p[129] = '*';
    p[128] = 'p';
    p[130] = '\0';
    assert_false(pattern_ok(p));
}

/* One chan_match case: pattern, name (len 0: strlen) and verdict. */
struct match_case {
    const char *what;
    const char *pattern;
    const char *name;
    size_t len;
    int match;
};

static const struct match_case match_cases[] = {
    /* "*" matches every channel */
    {"star any", "*", "team:12", 0, 1},
    {"star one byte", "*", "x", 0, 1},
    /* a prefix matches the prefix itself and anything after it */
    {"prefix longer", "team:*", "team:12", 0, 1},
    {"prefix exact", "team:*", "team:", 0, 1},
    {"prefix long tail", "team:*", "team:12:sub/x", 0, 1},
    /* ... and nothing shorter or different */
    {"prefix shorter name", "team:*", "team", 0, 0},
    {"prefix different", "team:*", "teams:1", 0, 0},
    {"prefix case", "team:*", "Team:12", 0, 0},
    {"prefix one byte", "team:*", "t", 0, 0},
    /* the pattern much longer than the name: must not read past the name */
    {"long prefix short name", "team:12345*", "te", 0, 0},
    {"long exact short name", "team:12345", "te", 0, 0},
    /* exact patterns match the whole name only */
    {"exact", "team:12", "team:12", 0, 1},
    {"exact shorter name", "team:12", "team:1", 0, 0},
    {"exact longer name", "team:12", "team:123", 0, 0},
    {"exact differs last", "team:12", "team:13", 0, 0},
    {"exact prefix-looking", "team:", "team:12", 0, 0},
    /* the length is the name's length, not strlen */
    {"name with nul exact", "ab", "ab\0", 3, 0},
    {"length cuts name", "team:1", "team:12", 6, 1},
};

/* Every row of match_cases. */
static void test_chan_match_table(void **state)
{
    for (size_t i = 0; i < sizeof(match_cases) / sizeof(match_cases[0]); i++) {
        const struct match_case *c = &match_cases[i];
        size_t len = c->len ? c->len : strlen(c->name);

        if (match(c->pattern, c->name, len) != c->match) {
            print_error("case \"%s\": got %d, want %d\n", c->what, !c->match, c->match);
            fail();
        }
    }
}

/* A prefix pattern one byte longer than the name, at every length. */
static void test_chan_match_pattern_longer_than_name(void **state)
{
    char pat[CHAN_MAX_NAME + 2];
    char name[CHAN_MAX_NAME + 1];

    memset(name, 'n', sizeof name);
    for (size_t n = 1; n < CHAN_MAX_NAME; n++) {
        /* "nnn...n*" with n+1 bytes before the star vs an n-byte name */
        memset(pat, 'n', n + 1);
        pat[n + 1] = '*';
        pat[n + 2] = '\0';
        assert_false(match(pat, name, n));
        pat[n + 1] = '\0';
        assert_false(match(pat, name, n));
        /* the n-byte prefix matches */
        pat[n] = '*';
        pat[n + 1] = '\0';
        assert_true(match(pat, name, n));
    }
}

/* chan_match_any: none, first, last, and an empty list. */
static void test_chan_match_any(void **state)
{
    char *pats[] = {"news", "team:*", "orders/eu"};
    char *star[] = {"*"};

    assert_true(chan_match_any(pats, 3, "news", 4));
    assert_true(chan_match_any(pats, 3, "team:9", 6));
    assert_true(chan_match_any(pats, 3, "orders/eu", 9));
    assert_false(chan_match_any(pats, 3, "orders/us", 9));
    assert_false(chan_match_any(pats, 3, "newsletter", 10));
    assert_false(chan_match_any(pats, 3, "team", 4));
    /* only the first n patterns are looked at */
    assert_false(chan_match_any(pats, 2, "orders/eu", 9));
    assert_false(chan_match_any(pats, 0, "news", 4));
    assert_false(chan_match_any(NULL, 0, "news", 4));
    assert_true(chan_match_any(star, 1, "anything", 8));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_chan_name_table),
        cmocka_unit_test(test_chan_name_every_byte),
        cmocka_unit_test(test_chan_name_length_limit),
        cmocka_unit_test(test_chan_pattern_table),
        cmocka_unit_test(test_chan_pattern_length_limit),
        cmocka_unit_test(test_chan_match_table),
        cmocka_unit_test(test_chan_match_pattern_longer_than_name),
        cmocka_unit_test(test_chan_match_any),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
