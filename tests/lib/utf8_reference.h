/*
 * utf8_reference.h -- a UTF-8 check written the slow, obvious way (RFC 3629:
 * decode each sequence, then refuse overlongs, surrogates and anything above
 * U+10FFFF), against which tests/unit/test_utf8.c and tests/fuzz/fuzz_utf8.c
 * compare the fast validator in lib/proto/utf8.c.
 */
#ifndef HERALD_TESTS_UTF8_REFERENCE_H
#define HERALD_TESTS_UTF8_REFERENCE_H

#include <stddef.h>
#include <stdint.h>

/*
 * Reference: decode s[0..n) by the RFC 3629 rules, written the slow and
 * obvious way. Returns 1 when it is complete, valid UTF-8.
 */
static inline int reference_valid(const uint8_t *s, size_t n)
{
    size_t i = 0;

    while (i < n) {
        uint32_t c = s[i], min;
        size_t need;

        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xe0) == 0xc0) {
            need = 1, min = 0x80, c &= 0x1f;
        } else if ((c & 0xf0) == 0xe0) {
            need = 2, min = 0x800, c &= 0x0f;
        } else if ((c & 0xf8) == 0xf0) {
            need = 3, min = 0x10000, c &= 0x07;
        } else {
            return 0;
        }
        if (n - i - 1 < need)
            return 0;
        for (size_t k = 1; k <= need; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return 0;
            c = c << 6 | (s[i + k] & 0x3f);
        }
        if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
            return 0;
        i += need + 1;
    }
    return 1;
}

#endif
