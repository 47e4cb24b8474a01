/*
 * fuzz_utf8.c -- libFuzzer target for the UTF-8 validator (utf8.c).
 *
 * Owns:       nothing; the input is read only.
 * Checks:     the input, fed to utf8_feed in chunks whose sizes come from
 *             its first bytes, gets the same verdict as utf8_valid on the
 *             whole, and both agree with a slow reference decoder written
 *             from RFC 3629. A rejected state stays rejected.
 * Build:      make fuzz, or see tests/fuzz/run.sh.
 */
#include <stddef.h>
#include <stdint.h>

#include "utf8.h"

#include "../lib/utf8_reference.h"

/* Abort (a crash libFuzzer reports) when an invariant does not hold. */
#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            __builtin_trap();                                                                      \
    } while (0)

/* Feed the text in fuzzer-chosen chunks and compare the three verdicts. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct utf8_state s;
    const uint8_t *sizes, *text;
    size_t nsizes, ntext, off = 0, k = 0;
    int failed = 0, whole;

    if (size < 1)
        return 0;
    /* first byte: how many chunk sizes follow (0-7); the rest is the text */
    nsizes = data[0] & 7;
    if (nsizes > size - 1)
        nsizes = size - 1;
    sizes = data + 1;
    text = data + 1 + nsizes;
    ntext = size - 1 - nsizes;
    utf8_init(&s);
    while (off < ntext) {
        size_t chunk = nsizes ? sizes[k++ % nsizes] : ntext;
        int r;

        if (chunk == 0) {
            /* an empty feed changes nothing; then take one byte, to move on */
            CHECK(utf8_feed(&s, text + off, 0) == (failed ? -1 : 0));
            chunk = 1;
        }
        if (chunk > ntext - off)
            chunk = ntext - off;
        r = utf8_feed(&s, text + off, chunk);
        CHECK(r == 0 || r == -1);
        if (failed)
            CHECK(r == -1);
        failed = r != 0;
        off += chunk;
    }
    whole = utf8_valid(text, ntext);
    CHECK(whole == (!failed && utf8_complete(&s)));
    CHECK(whole == reference_valid(text, ntext));
    return 0;
}
