/*
 * utf8.h -- incremental UTF-8 validator (RFC 3629: no overlongs, no
 * surrogates, nothing above U+10FFFF).
 *
 * Owns:       struct utf8_state, a few bytes of DFA state per message.
 * Called by:  conn.c (text messages, across fragments), ws.c (close reasons).
 * Invariants: pure, no allocation, safe on any thread.
 * Tests:      tests/unit/test_utf8.c, tests/fuzz/fuzz_utf8.c.
 */
#ifndef HERALD_UTF8_H
#define HERALD_UTF8_H

#include <stddef.h>
#include <stdint.h>

#define UTF8_ACCEPT 0

struct utf8_state {
    uint32_t state; /* UTF8_ACCEPT between whole code points */
};

/* Reset to the start of a message. */
void utf8_init(struct utf8_state *s);

/*
 * Feed n more bytes. Returns 0 while the input so far is a valid prefix of
 * UTF-8 text (it may end inside a code point), -1 as soon as it cannot be.
 */
int utf8_feed(struct utf8_state *s, const uint8_t *p, size_t n);

/* Does the input so far end on a code point boundary? (1 yes, 0 no) */
int utf8_complete(const struct utf8_state *s);

/* Whole-buffer check: 1 when p[0..n) is complete, valid UTF-8. */
int utf8_valid(const uint8_t *p, size_t n);

#endif
