/*
 * ws.c -- WebSocket (RFC 6455) frame codec, server side: decode client
 * frame headers, check fragmentation, unmask payloads, encode server frame
 * headers, validate close payloads.
 *
 * Owns:       nothing beyond the ws_frame and ws_seq the caller passes in.
 *             No I/O, no allocation.
 * Called by:  conn.c (decode on read), msg.c (encode once per publish).
 * Invariants: pure functions; safe on any thread; input is caller-owned and
 *             read-only (ws_unmask excepted, which rewrites its buffer in
 *             place). The parser is resumable in the simplest way: it keeps
 *             no state, and the caller calls it again on the same bytes plus
 *             more after WS_NEED_MORE.
 * Errors:     ws_parse_header returns the header length (2..14),
 *             WS_NEED_MORE, or WS_INVALID with *close_code 1002 (protocol)
 *             or 1009 (too big); ws_seq_next and ws_parse_close return
 *             0 or WS_INVALID with 1002 (or 1007 for a bad close reason).
 *             A header is refused as soon as the bytes seen prove it bad,
 *             even when more bytes are still missing: an unknown opcode is
 *             refused after one byte, a too-big length before the mask.
 * Spec notes: we are always the server, so every client frame must be
 *             masked (RFC 6455 5.1) and no extension is negotiated, so every
 *             RSV bit must be 0 (5.2). Lengths must use the shortest form
 *             (5.2 "the minimal number of bytes MUST be used"); we enforce
 *             it, as Autobahn expects. Close codes 1012-1014, registered
 *             with IANA after RFC 6455, are refused like other unassigned
 *             codes below 3000 (ws.h contract).
 * Tests:      tests/unit/test_ws.c, tests/fuzz/fuzz_ws.c.
 *
 * Frame header as read here (see ws.h for the full diagram):
 *
 *   byte 0: FIN RSV1 RSV2 RSV3 opcode(4)
 *   byte 1: MASK len7
 *   len7 < 126  -> payload_len = len7
 *   len7 == 126 -> 2 more bytes, big-endian, 126..65535
 *   len7 == 127 -> 8 more bytes, big-endian, 65536..2^63-1
 *   then 4 bytes of masking key
 */
#include "ws.h"

#include <string.h>

#include "utf8.h"

#define WS_FIN 0x80
#define WS_RSV 0x70
#define WS_OPCODE 0x0F
#define WS_MASK 0x80
#define WS_LEN7 0x7F
#define WS_OP_CONTROL 0x8 /* opcodes 8-15 are control frames */
#define WS_MAX_CONTROL 125

/* Is this an opcode RFC 6455 defines (0-2, 8-10)? */
static int opcode_known(unsigned op)
{
    return op <= WS_OP_BINARY || (op >= WS_OP_CLOSE && op <= WS_OP_PONG);
}

/* Read a big-endian 64-bit integer. */
static uint64_t read_be64(const uint8_t *p)
{
    uint64_t v = 0;

    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

/* Decode one client frame header; refuse as early as the bytes allow. */
int ws_parse_header(const uint8_t *buf, size_t len, uint64_t max_payload, struct ws_frame *f,
                    int *close_code)
{
    size_t hlen = 2;
    uint64_t plen;
    unsigned op;
    int code = WS_CLOSE_PROTOCOL;

    if (len < 1)
        return WS_NEED_MORE;
    op = buf[0] & WS_OPCODE;
    if ((buf[0] & WS_RSV) || !opcode_known(op))
        goto fail;
    if (len < 2)
        return WS_NEED_MORE;
    if (!(buf[1] & WS_MASK))
        goto fail;
    plen = buf[1] & WS_LEN7;
    if ((op & WS_OP_CONTROL) && (!(buf[0] & WS_FIN) || plen > WS_MAX_CONTROL))
        goto fail;
    if (plen == 126) {
        hlen = 4;
        if (len < hlen)
            return WS_NEED_MORE;
        plen = (uint64_t)buf[2] << 8 | buf[3];
        if (plen < 126)
            goto fail;
    } else if (plen == 127) {
        hlen = 10;
        if (len < hlen)
            return WS_NEED_MORE;
        plen = read_be64(buf + 2);
        if ((plen >> 63) || plen <= 0xFFFF)
            goto fail;
    }
    if (plen > max_payload && !(op & WS_OP_CONTROL)) {
        code = WS_CLOSE_TOO_BIG;
        goto fail;
    }
    if (len < hlen + 4)
        return WS_NEED_MORE;
    f->fin = (buf[0] & WS_FIN) != 0;
    f->masked = 1;
    f->opcode = op;
    memcpy(f->mask, buf + hlen, 4);
    f->payload_len = plen;
    return (int)(hlen + 4);
fail:
    *close_code = code;
    return WS_INVALID;
}

/* Apply RFC 6455 5.4: data frames start or continue messages, controls pass. */
int ws_seq_next(struct ws_seq *seq, const struct ws_frame *f, int *close_code)
{
    if (f->opcode & WS_OP_CONTROL)
        return 0;
    switch (f->opcode) {
    case WS_OP_CONT:
        if (!seq->in_message)
            goto fail;
        if (f->fin) {
            seq->in_message = 0;
            seq->opcode = 0;
        }
        return 0;
    case WS_OP_TEXT:
    case WS_OP_BINARY:
        if (seq->in_message)
            goto fail;
        if (!f->fin) {
            seq->in_message = 1;
            seq->opcode = f->opcode;
        }
        return 0;
    default: break;
    }
fail:
    *close_code = WS_CLOSE_PROTOCOL;
    return WS_INVALID;
}

/*
 * Bytes one at a time up to an 8-byte boundary, then 32 and 8 bytes at a
 * time with the mask spread over a word (a multiple of 4 bytes, so the
 * phase does not change inside the word loop), then the tail.
 */
void ws_unmask(uint8_t *p, size_t n, const uint8_t mask[4], uint64_t offset)
{
    unsigned k = offset & 3;
    uint8_t m8[8];
    uint64_t m, w0, w1, w2, w3;

    while (n > 0 && ((uintptr_t)p & 7)) {
        *p++ ^= mask[k];
        k = (k + 1) & 3;
        n--;
    }
    if (n >= 8) {
        for (int i = 0; i < 8; i++)
            m8[i] = mask[(k + i) & 3];
        memcpy(&m, m8, 8);
        for (; n >= 32; p += 32, n -= 32) {
            memcpy(&w0, p, 8);
            memcpy(&w1, p + 8, 8);
            memcpy(&w2, p + 16, 8);
            memcpy(&w3, p + 24, 8);
            w0 ^= m;
            w1 ^= m;
            w2 ^= m;
            w3 ^= m;
            memcpy(p, &w0, 8);
            memcpy(p + 8, &w1, 8);
            memcpy(p + 16, &w2, 8);
            memcpy(p + 24, &w3, 8);
        }
        for (; n >= 8; p += 8, n -= 8) {
            memcpy(&w0, p, 8);
            w0 ^= m;
            memcpy(p, &w0, 8);
        }
    }
    while (n > 0) {
        *p++ ^= mask[k];
        k = (k + 1) & 3;
        n--;
    }
}

/* Write the shortest header for len (RFC 6455 5.2), never masked. */
size_t ws_encode_header(uint8_t *out, int fin, int opcode, uint64_t len)
{
    out[0] = (uint8_t)((fin ? WS_FIN : 0) | (opcode & WS_OPCODE));
    if (len < 126) {
        out[1] = (uint8_t)len;
        return 2;
    }
    if (len <= 0xFFFF) {
        out[1] = 126;
        out[2] = (uint8_t)(len >> 8);
        out[3] = (uint8_t)len;
        return 4;
    }
    out[1] = 127;
    for (int i = 0; i < 8; i++)
        out[2 + i] = (uint8_t)(len >> (56 - 8 * i));
    return 10;
}

/* Check a close payload: empty, or a sendable code plus a UTF-8 reason. */
int ws_parse_close(const uint8_t *payload, size_t len, int *code, int *close_code)
{
    int c;
    int cc = WS_CLOSE_PROTOCOL;

    if (len == 0) {
        *code = WS_CLOSE_NO_STATUS;
        return 0;
    }
    if (len == 1)
        goto fail;
    c = payload[0] << 8 | payload[1];
    if (!ws_close_code_valid(c))
        goto fail;
    if (!utf8_valid(payload + 2, len - 2)) {
        cc = WS_CLOSE_BAD_DATA;
        goto fail;
    }
    *code = c;
    return 0;
fail:
    *close_code = cc;
    return WS_INVALID;
}

/* The codes RFC 6455 7.4 lets an endpoint put on the wire (ws.h list). */
int ws_close_code_valid(int code)
{
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1011) ||
           (code >= 3000 && code <= 4999);
}
