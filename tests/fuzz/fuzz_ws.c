/*
 * fuzz_ws.c -- libFuzzer target for the frame codec (ws.c): the input is a
 * stream of client frames, decoded the way conn.c decodes a read buffer.
 *
 * Owns:       one malloc'd copy of the input per run (ws_unmask writes).
 * Checks:     for each frame: ws_parse_header agrees with itself on every
 *             shorter prefix (WS_NEED_MORE, or the same refusal), refusals
 *             carry 1002 or 1009, a header re-encoded by ws_encode_header
 *             parses back the same, ws_seq_next only refuses with 1002,
 *             ws_unmask in two pieces equals ws_unmask whole, and a close
 *             payload gets 1005, a sendable code, or 1002/1007.
 * Build:      make fuzz, or see tests/fuzz/run.sh.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ws.h"

/* Abort (a crash libFuzzer reports) when an invariant does not hold. */
#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            __builtin_trap();                                                                      \
    } while (0)

/* Every prefix of a parsed or refused header must say "need more", or the same refusal. */
static void check_prefixes(const uint8_t *p, size_t n, uint64_t max, int ret, int code)
{
    struct ws_frame f;
    size_t upto = ret > 0 ? (size_t)ret : n;

    for (size_t k = 0; k < upto && k < WS_MAX_CLIENT_HEADER; k++) {
        int c = 0;
        int r = ws_parse_header(p, k, max, &f, &c);

        CHECK(r == WS_NEED_MORE || (ret == WS_INVALID && r == WS_INVALID && c == code));
    }
}

/* Re-encode a parsed header, add the mask, and check that it parses back the same. */
static void check_round_trip(const struct ws_frame *f, int hlen)
{
    uint8_t b[WS_MAX_CLIENT_HEADER];
    size_t n = ws_encode_header(b, f->fin, f->opcode, f->payload_len);
    struct ws_frame g;
    int code = 0;

    CHECK(n + 4 == (size_t)hlen);
    b[1] |= 0x80;
    memcpy(b + n, f->mask, 4);
    CHECK(ws_parse_header(b, n + 4, UINT64_MAX, &g, &code) == hlen);
    CHECK(g.fin == f->fin && g.opcode == f->opcode && g.payload_len == f->payload_len);
}

/*
 * Unmask a payload whole and, in a copy, in two pieces cut at `cut`; both
 * must equal the byte-at-a-time definition (RFC 6455 5.3).
 */
static void check_unmask(uint8_t *p, size_t n, const uint8_t mask[4], size_t cut)
{
    uint8_t *orig = malloc(n ? n : 1);
    uint8_t *pieces = malloc(n ? n : 1);

    CHECK(orig != NULL && pieces != NULL);
    memcpy(orig, p, n);
    memcpy(pieces, p, n);
    ws_unmask(p, n, mask, 0);
    cut = cut % (n + 1);
    ws_unmask(pieces, cut, mask, 0);
    ws_unmask(pieces + cut, n - cut, mask, cut);
    for (size_t i = 0; i < n; i++)
        CHECK(p[i] == (orig[i] ^ mask[i % 4]) && pieces[i] == p[i]);
    free(orig);
    free(pieces);
}

/* Decode frames until the input runs out or a frame is refused. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct ws_seq seq = {0, 0};
    uint8_t *buf, *p, *end;
    uint64_t max;

    if (size < 1)
        return 0;
    /* the first byte picks the size limit: small ones reach 1009 often */
    max = data[0] < 128 ? data[0] : (uint64_t)1 << (data[0] - 128) % 64;
    buf = malloc(size);
    CHECK(buf != NULL);
    memcpy(buf, data + 1, size - 1);
    p = buf;
    end = buf + size - 1;
    for (;;) {
        struct ws_frame f;
        int code = 0, cc = 0, close;
        int r = ws_parse_header(p, (size_t)(end - p), max, &f, &code);
        size_t plen;

        check_prefixes(p, (size_t)(end - p), max, r, code);
        if (r == WS_NEED_MORE)
            break;
        if (r == WS_INVALID) {
            CHECK(code == WS_CLOSE_PROTOCOL || code == WS_CLOSE_TOO_BIG);
            break;
        }
        CHECK(r >= 6 && r <= WS_MAX_CLIENT_HEADER && f.masked);
        CHECK((f.opcode & 8) == 0 || (f.fin && f.payload_len <= 125));
        CHECK((f.opcode & 8) != 0 || f.payload_len <= max);
        check_round_trip(&f, r);
        if (ws_seq_next(&seq, &f, &code) != 0) {
            CHECK(code == WS_CLOSE_PROTOCOL);
            break;
        }
        p += r;
        if (f.payload_len > (uint64_t)(end - p))
            break;
        plen = (size_t)f.payload_len;
        check_unmask(p, plen, f.mask, data[size / 2]);
        if (f.opcode == WS_OP_CLOSE) {
            if (ws_parse_close(p, plen, &close, &cc) == 0)
                CHECK(plen == 0 ? close == WS_CLOSE_NO_STATUS : ws_close_code_valid(close));
            else
                CHECK(cc == WS_CLOSE_PROTOCOL || cc == WS_CLOSE_BAD_DATA);
            break;
        }
        p += plen;
    }
    free(buf);
    return 0;
}
