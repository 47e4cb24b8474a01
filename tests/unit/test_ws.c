/*
 * test_ws.c -- unit tests for the WebSocket frame codec (ws.c).
 *
 * Covers:     the RFC 6455 5.7 examples (masked "Hello", fragments, ping and
 *             pong, 256-byte and 64 KiB lengths), every refusal of
 *             ws_parse_header with its close code, WS_NEED_MORE at every
 *             split point of every valid header, the fragmentation rules,
 *             ws_unmask at every payload offset, buffer alignment and split
 *             point, header encoding (and its round trip through the
 *             parser), and close payload validation.
 * Invariants: every parser input sits at the end of a page followed by a
 *             PROT_NONE page (guard.h), so an overread faults.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "guard.h"
#include "ws.h"

#define NONE 0 /* no close code expected */
#define BIG UINT64_MAX

/* One ws_parse_header case: input bytes and what must come out. */
struct header_case {
    const char *what;
    uint8_t bytes[16];
    size_t len;
    uint64_t max_payload;
    int ret;         /* header length, WS_NEED_MORE or WS_INVALID */
    int close_code;  /* for WS_INVALID */
    int fin, opcode; /* for a header length */
    uint64_t payload_len;
};

#define MASK 0x37, 0xfa, 0x21, 0x3d

static const struct header_case header_cases[] = {
    /* RFC 6455 5.7: a single-frame masked text message "Hello" */
    {"rfc masked Hello", {0x81, 0x85, MASK}, 6, BIG, 6, NONE, 1, WS_OP_TEXT, 5},
    /* RFC 6455 5.7: first fragment of "Hel" + "lo" (masked, as a client sends it) */
    {"rfc fragment 1", {0x01, 0x83, MASK}, 6, BIG, 6, NONE, 0, WS_OP_TEXT, 3},
    /* ... and its continuation */
    {"rfc fragment 2", {0x80, 0x82, MASK}, 6, BIG, 6, NONE, 1, WS_OP_CONT, 2},
    /* RFC 6455 5.7: ping with body "Hello" */
    {"rfc ping", {0x89, 0x85, MASK}, 6, BIG, 6, NONE, 1, WS_OP_PING, 5},
    /* RFC 6455 5.7: masked pong "Hello" */
    {"rfc masked pong", {0x8a, 0x85, MASK}, 6, BIG, 6, NONE, 1, WS_OP_PONG, 5},
    /* RFC 6455 5.7: 256 bytes binary in a single frame (16-bit length) */
    {"rfc 256 bytes", {0x82, 0xfe, 0x01, 0x00, MASK}, 8, BIG, 8, NONE, 1, WS_OP_BINARY, 256},
    /* RFC 6455 5.7: 64 KiB binary in a single frame (64-bit length) */
    {"rfc 64 KiB",
     {0x82, 0xff, 0, 0, 0, 0, 0, 1, 0, 0, MASK},
     14,
     BIG,
     14,
     NONE,
     1,
     WS_OP_BINARY,
     65536},
    /* empty text frame */
    {"empty text", {0x81, 0x80, MASK}, 6, BIG, 6, NONE, 1, WS_OP_TEXT, 0},
    /* largest 7-bit length */
    {"len 125", {0x82, 0xfd, MASK}, 6, BIG, 6, NONE, 1, WS_OP_BINARY, 125},
    /* smallest 16-bit length */
    {"len 126", {0x82, 0xfe, 0x00, 0x7e, MASK}, 8, BIG, 8, NONE, 1, WS_OP_BINARY, 126},
    /* largest 16-bit length */
    {"len 65535", {0x82, 0xfe, 0xff, 0xff, MASK}, 8, BIG, 8, NONE, 1, WS_OP_BINARY, 65535},
    /* largest 64-bit length */
    {"len 2^63-1",
     {0x82, 0xff, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, MASK},
     14,
     BIG,
     14,
     NONE,
     1,
     WS_OP_BINARY,
     0x7fffffffffffffffULL},
    /* payload exactly at the limit */
    {"at max_payload", {0x81, 0x85, MASK}, 6, 5, 6, NONE, 1, WS_OP_TEXT, 5},
    /* control frames are exempt from max_payload (capped at 125 anyway) */
    {"ping over max_payload", {0x89, 0xfd, MASK}, 6, 10, 6, NONE, 1, WS_OP_PING, 125},
    /* close with a 125-byte payload */
    {"close 125", {0x88, 0xfd, MASK}, 6, BIG, 6, NONE, 1, WS_OP_CLOSE, 125},
    /* empty close */
    {"close empty", {0x88, 0x80, MASK}, 6, BIG, 6, NONE, 1, WS_OP_CLOSE, 0},
    /* trailing payload bytes are not part of the header */
    {"header then payload",
     {0x81, 0x85, MASK, 0x7f, 0x9f, 0x4d, 0x51, 0x58},
     11,
     BIG,
     6,
     NONE,
     1,
     WS_OP_TEXT,
     5},

    /* RFC 6455 5.7: the unmasked "Hello" a server sends is refused from a client */
    {"unmasked", {0x81, 0x05}, 2, BIG, WS_INVALID, 1002, 0, 0, 0},
    /* RSV1, RSV2, RSV3: no extension is negotiated; seen from the first byte */
    {"rsv1", {0xc1}, 1, BIG, WS_INVALID, 1002, 0, 0, 0},
    {"rsv2", {0xa1}, 1, BIG, WS_INVALID, 1002, 0, 0, 0},
    {"rsv3", {0x91}, 1, BIG, WS_INVALID, 1002, 0, 0, 0},
    {"rsv1 on ping", {0xc9, 0x80, MASK}, 6, BIG, WS_INVALID, 1002, 0, 0, 0},
    /* fragmented control frames */
    {"ping without fin", {0x09, 0x80, MASK}, 6, BIG, WS_INVALID, 1002, 0, 0, 0},
    {"close without fin", {0x08, 0x80}, 2, BIG, WS_INVALID, 1002, 0, 0, 0},
    {"pong without fin", {0x0a, 0x85}, 2, BIG, WS_INVALID, 1002, 0, 0, 0},
    /* control frames over 125 bytes, in each length form */
    {"ping 126", {0x89, 0xfe}, 2, BIG, WS_INVALID, 1002, 0, 0, 0},
    {"close 127 form", {0x88, 0xff}, 2, BIG, WS_INVALID, 1002, 0, 0, 0},
    /* non-minimal 16-bit lengths */
    {"16-bit 125", {0x82, 0xfe, 0x00, 0x7d}, 4, BIG, WS_INVALID, 1002, 0, 0, 0},
    {"16-bit 0", {0x82, 0xfe, 0x00, 0x00}, 4, BIG, WS_INVALID, 1002, 0, 0, 0},
    /* non-minimal 64-bit lengths */
    {"64-bit 65535",
     {0x82, 0xff, 0, 0, 0, 0, 0, 0, 0xff, 0xff},
     10,
     BIG,
     WS_INVALID,
     1002,
     0,
     0,
     0},
    {"64-bit 5", {0x82, 0xff, 0, 0, 0, 0, 0, 0, 0, 5}, 10, BIG, WS_INVALID, 1002, 0, 0, 0},
    /* 64-bit length with the top bit set */
    {"64-bit top bit", {0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0}, 10, BIG, WS_INVALID, 1002, 0, 0, 0},
    {"64-bit all ones",
     {0x82, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
     10,
     BIG,
     WS_INVALID,
     1002,
     0,
     0,
     0},
    /* data frames over max_payload, in each length form; seen before the mask */
    {"7-bit over max", {0x81, 0x86}, 2, 5, WS_INVALID, 1009, 0, 0, 0},
    {"16-bit over max", {0x82, 0xfe, 0x01, 0x00}, 4, 255, WS_INVALID, 1009, 0, 0, 0},
    {"64-bit over max", {0x82, 0xff, 0, 0, 0, 0, 0, 1, 0, 0}, 10, 65535, WS_INVALID, 1009, 0, 0, 0},
    {"continuation over max", {0x80, 0x86, MASK}, 6, 5, WS_INVALID, 1009, 0, 0, 0},
    /* a protocol error wins over a size error */
    {"unmasked and over max", {0x81, 0x06}, 2, 5, WS_INVALID, 1002, 0, 0, 0},
    {"rsv and over max", {0xc1, 0x86}, 2, 5, WS_INVALID, 1002, 0, 0, 0},
};

/* Opcodes RFC 6455 reserves: 3-7 (data) and B-F (control). */
static const int reserved_opcodes[] = {3, 4, 5, 6, 7, 0xb, 0xc, 0xd, 0xe, 0xf};

/* Fail with the case name and the two values. */
static void fail_case(const char *what, const char *field, long long got, long long want)
{
    print_error("case \"%s\": %s: got %lld, want %lld\n", what, field, got, want);
    fail();
}

/* Run one header case on len bytes of it, placed against a guard page. */
static int parse_guarded(const struct header_case *c, size_t len, struct ws_frame *f, int *code)
{
    uint8_t *p = guard_place(c->bytes, len);
    int r = ws_parse_header(p, len, c->max_payload, f, code);

    guard_release(p, len);
    return r;
}

/* Every row of header_cases, with all its bytes. */
static void test_ws_parse_header_table(void **state)
{
    for (size_t i = 0; i < sizeof(header_cases) / sizeof(header_cases[0]); i++) {
        const struct header_case *c = &header_cases[i];
        struct ws_frame f;
        int code = NONE;
        int r = parse_guarded(c, c->len, &f, &code);

        if (r != c->ret)
            fail_case(c->what, "return", r, c->ret);
        if (r == WS_INVALID && code != c->close_code)
            fail_case(c->what, "close code", code, c->close_code);
        if (r > 0) {
            if (f.fin != c->fin)
                fail_case(c->what, "fin", f.fin, c->fin);
            if (f.opcode != c->opcode)
                fail_case(c->what, "opcode", f.opcode, c->opcode);
            if (f.payload_len != c->payload_len)
                fail_case(c->what, "payload_len", (long long)f.payload_len,
                          (long long)c->payload_len);
            if (!f.masked || memcmp(f.mask, c->bytes + r - 4, 4) != 0)
                fail_case(c->what, "mask", f.masked, 1);
        }
    }
}

/* Every prefix of every valid header is WS_NEED_MORE, and changes nothing. */
static void test_ws_parse_header_need_more_at_every_split(void **state)
{
    for (size_t i = 0; i < sizeof(header_cases) / sizeof(header_cases[0]); i++) {
        const struct header_case *c = &header_cases[i];

        if (c->ret <= 0)
            continue;
        for (size_t k = 0; k < (size_t)c->ret; k++) {
            struct ws_frame f, before;
            int code = NONE;
            int r;

            memset(&f, 0xa5, sizeof(f));
            before = f;
            r = parse_guarded(c, k, &f, &code);
            if (r != WS_NEED_MORE)
                fail_case(c->what, "prefix return", r, WS_NEED_MORE);
            if (code != NONE || memcmp(&f, &before, sizeof(f)) != 0)
                fail_case(c->what, "prefix touched outputs", code, NONE);
        }
    }
}

/* Once a header is refused, more bytes do not change the verdict. */
static void test_ws_parse_header_refusal_stable_with_more_bytes(void **state)
{
    for (size_t i = 0; i < sizeof(header_cases) / sizeof(header_cases[0]); i++) {
        const struct header_case *c = &header_cases[i];

        if (c->ret != WS_INVALID)
            continue;
        for (size_t k = c->len; k <= sizeof(c->bytes); k++) {
            struct ws_frame f;
            int code = NONE;
            int r = parse_guarded(c, k, &f, &code);

            if (r != WS_INVALID || code != c->close_code)
                fail_case(c->what, "with more bytes", code, c->close_code);
        }
    }
}

/* Opcodes 3-7 and B-F are refused with 1002, with or without FIN. */
static void test_ws_parse_header_reserved_opcodes(void **state)
{
    for (size_t i = 0; i < sizeof(reserved_opcodes) / sizeof(reserved_opcodes[0]); i++) {
        for (int fin = 0; fin <= 1; fin++) {
            uint8_t b[6] = {(uint8_t)((fin ? 0x80 : 0) | reserved_opcodes[i]), 0x80, MASK};
            struct ws_frame f;
            int code = NONE;

            for (size_t len = 1; len <= sizeof(b); len++) {
                uint8_t *p = guard_place(b, len);

                assert_int_equal(ws_parse_header(p, len, BIG, &f, &code), WS_INVALID);
                assert_int_equal(code, WS_CLOSE_PROTOCOL);
                guard_release(p, len);
            }
        }
    }
}

/* Every first byte and every length byte, against a direct reading of RFC 6455 5.2. */
static void test_ws_parse_header_all_first_two_bytes(void **state)
{
    uint8_t b[14] = {0};

    for (unsigned b0 = 0; b0 < 256; b0++) {
        for (unsigned b1 = 0; b1 < 256; b1++) {
            unsigned op = b0 & 0xf, len7 = b1 & 0x7f;
            int control = op >= 8;
            int known = op <= 2 || (op >= 8 && op <= 10);
            int bad =
                (b0 & 0x70) || !known || !(b1 & 0x80) || (control && (!(b0 & 0x80) || len7 > 125));
            struct ws_frame f;
            int code = NONE;
            int r;

            b[0] = (uint8_t)b0;
            b[1] = (uint8_t)b1;
            /* a minimal extended length, where one is needed */
            memset(b + 2, 0, sizeof(b) - 2);
            if (len7 == 126)
                b[2] = 0x01;
            if (len7 == 127)
                b[7] = 0x01;
            r = ws_parse_header(b, sizeof(b), BIG, &f, &code);
            if (bad) {
                assert_int_equal(r, WS_INVALID);
                assert_int_equal(code, WS_CLOSE_PROTOCOL);
            } else {
                assert_int_equal(r, len7 == 126 ? 8 : len7 == 127 ? 14 : 6);
                assert_int_equal(f.opcode, op);
                assert_int_equal(f.fin, b0 >> 7);
            }
        }
    }
}

/* One step of a fragmentation sequence: a frame and the verdict on it. */
struct seq_step {
    int fin, opcode;
    int ret;        /* 0 or WS_INVALID (always with 1002) */
    int in_message; /* state after the step */
};

struct seq_case {
    const char *what;
    struct seq_step steps[6];
    size_t n;
};

static const struct seq_case seq_cases[] = {
    /* a whole text message */
    {"single text", {{1, WS_OP_TEXT, 0, 0}}, 1},
    /* RFC 6455 5.7: "Hel" + "lo" */
    {"rfc fragments", {{0, WS_OP_TEXT, 0, 1}, {1, WS_OP_CONT, 0, 0}}, 2},
    /* three fragments, then a new message */
    {"three fragments then text",
     {{0, WS_OP_BINARY, 0, 1}, {0, WS_OP_CONT, 0, 1}, {1, WS_OP_CONT, 0, 0}, {1, WS_OP_TEXT, 0, 0}},
     4},
    /* control frames may come between fragments (RFC 6455 5.4) */
    {"ping inside a message",
     {{0, WS_OP_TEXT, 0, 1}, {1, WS_OP_PING, 0, 1}, {1, WS_OP_PONG, 0, 1}, {1, WS_OP_CONT, 0, 0}},
     4},
    /* a close inside a message is a control frame too */
    {"close inside a message", {{0, WS_OP_TEXT, 0, 1}, {1, WS_OP_CLOSE, 0, 1}}, 2},
    /* a continuation with no message open */
    {"cont first", {{1, WS_OP_CONT, WS_INVALID, 0}}, 1},
    {"cont without fin first", {{0, WS_OP_CONT, WS_INVALID, 0}}, 1},
    /* a continuation after the message ended */
    {"cont after end",
     {{0, WS_OP_TEXT, 0, 1}, {1, WS_OP_CONT, 0, 0}, {1, WS_OP_CONT, WS_INVALID, 0}},
     3},
    /* a new data frame while a message is open */
    {"text inside text", {{0, WS_OP_TEXT, 0, 1}, {1, WS_OP_TEXT, WS_INVALID, 1}}, 2},
    {"binary inside text", {{0, WS_OP_TEXT, 0, 1}, {0, WS_OP_BINARY, WS_INVALID, 1}}, 2},
    /* an opcode that never passes ws_parse_header */
    {"reserved opcode", {{1, 3, WS_INVALID, 0}}, 1},
};

/* Every row of seq_cases, step by step, including the state left behind. */
static void test_ws_seq_next_table(void **state)
{
    for (size_t i = 0; i < sizeof(seq_cases) / sizeof(seq_cases[0]); i++) {
        const struct seq_case *c = &seq_cases[i];
        struct ws_seq seq = {0, 0};
        int first_opcode = 0;

        for (size_t k = 0; k < c->n; k++) {
            const struct seq_step *s = &c->steps[k];
            struct ws_frame f = {.fin = (unsigned)s->fin, .opcode = (unsigned)s->opcode};
            int code = NONE;
            int r;

            if (!seq.in_message && !s->fin && s->opcode != WS_OP_CONT)
                first_opcode = s->opcode;
            f.masked = 1;
            r = ws_seq_next(&seq, &f, &code);
            if (r != s->ret)
                fail_case(c->what, "return", r, s->ret);
            if (r == WS_INVALID && code != WS_CLOSE_PROTOCOL)
                fail_case(c->what, "close code", code, WS_CLOSE_PROTOCOL);
            if (seq.in_message != s->in_message)
                fail_case(c->what, "in_message", seq.in_message, s->in_message);
            if (seq.in_message && seq.opcode != first_opcode)
                fail_case(c->what, "opcode", seq.opcode, first_opcode);
        }
    }
}

/* The obvious byte-at-a-time unmask, to check the fast one against. */
static void unmask_slow(uint8_t *p, size_t n, const uint8_t mask[4], uint64_t offset)
{
    for (size_t i = 0; i < n; i++)
        p[i] ^= mask[(offset + i) % 4];
}

/* RFC 6455 5.7: the masked "Hello" unmasks to "Hello". */
static void test_ws_unmask_rfc_hello(void **state)
{
    static const uint8_t frame[] = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d,
                                    0x7f, 0x9f, 0x4d, 0x51, 0x58};
    uint8_t *p = guard_place(frame, sizeof(frame));
    struct ws_frame f;
    int code = NONE;

    assert_int_equal(ws_parse_header(p, sizeof(frame), BIG, &f, &code), 6);
    ws_unmask(p + 6, 5, f.mask, 0);
    assert_memory_equal(p + 6, "Hello", 5);
    guard_release(p, sizeof(frame));
}

/* Every payload offset, buffer alignment and length up to 100 against the slow unmask. */
static void test_ws_unmask_every_offset_and_alignment(void **state)
{
    static const uint8_t mask[4] = {0x12, 0x34, 0xab, 0xcd};
    uint8_t src[128], want[128], buf[128 + 16];

    for (size_t i = 0; i < sizeof(src); i++)
        src[i] = (uint8_t)(i * 7 + 3);
    for (uint64_t offset = 0; offset < 12; offset++) {
        for (size_t align = 0; align < 16; align++) {
            for (size_t n = 0; n <= 100; n++) {
                uint8_t *p = buf + align;
                uint8_t *g;

                memcpy(want, src, n);
                unmask_slow(want, n, mask, offset);
                memcpy(p, src, n);
                ws_unmask(p, n, mask, offset);
                assert_memory_equal(p, want, n);
                /* and against a guard page on the right */
                g = guard_place(src, n);
                ws_unmask(g, n, mask, offset);
                assert_memory_equal(g, want, n);
                guard_release(g, n);
            }
        }
    }
}

/* A payload unmasked in two pieces, cut at every point, equals one whole unmask. */
static void test_ws_unmask_in_pieces(void **state)
{
    static const uint8_t mask[4] = {0xde, 0xad, 0xbe, 0xef};
    uint8_t src[67], want[67], buf[67];

    for (size_t i = 0; i < sizeof(src); i++)
        src[i] = (uint8_t)(255 - i);
    memcpy(want, src, sizeof(src));
    unmask_slow(want, sizeof(want), mask, 0);
    for (size_t cut = 0; cut <= sizeof(src); cut++) {
        memcpy(buf, src, sizeof(src));
        ws_unmask(buf, cut, mask, 0);
        ws_unmask(buf + cut, sizeof(buf) - cut, mask, cut);
        assert_memory_equal(buf, want, sizeof(buf));
    }
}

/* A 64 KiB payload (RFC 6455 5.7's size), in uneven reads, unmasks like the slow loop. */
static void test_ws_unmask_64k_uneven_reads(void **state)
{
    static const uint8_t mask[4] = {0x01, 0x80, 0x7f, 0xff};
    const size_t n = 65536;
    uint8_t *want = malloc(n);
    uint8_t *got;
    size_t off = 0, step = 1;

    assert_non_null(want);
    for (size_t i = 0; i < n; i++)
        want[i] = (uint8_t)(i ^ (i >> 8));
    got = guard_place(want, n);
    unmask_slow(want, n, mask, 0);
    while (off < n) {
        size_t k = step < n - off ? step : n - off;

        ws_unmask(got + off, k, mask, off);
        off += k;
        step = step * 3 + 1;
        if (step > 9000)
            step = 5;
    }
    assert_memory_equal(got, want, n);
    guard_release(got, n);
    free(want);
}

/* One ws_encode_header case. */
struct encode_case {
    const char *what;
    int fin, opcode;
    uint64_t len;
    uint8_t bytes[10];
    size_t n;
};

static const struct encode_case encode_cases[] = {
    /* RFC 6455 5.7: unmasked "Hello" */
    {"rfc Hello", 1, WS_OP_TEXT, 5, {0x81, 0x05}, 2},
    /* RFC 6455 5.7: first fragment of an unmasked "Hel" */
    {"rfc fragment", 0, WS_OP_TEXT, 3, {0x01, 0x03}, 2},
    /* RFC 6455 5.7: unmasked ping "Hello" */
    {"rfc ping", 1, WS_OP_PING, 5, {0x89, 0x05}, 2},
    /* RFC 6455 5.7: 256 bytes binary */
    {"rfc 256", 1, WS_OP_BINARY, 256, {0x82, 0x7e, 0x01, 0x00}, 4},
    /* RFC 6455 5.7: 64 KiB binary */
    {"rfc 64 KiB", 1, WS_OP_BINARY, 65536, {0x82, 0x7f, 0, 0, 0, 0, 0, 1, 0, 0}, 10},
    /* the edges of each length form */
    {"empty", 1, WS_OP_TEXT, 0, {0x81, 0x00}, 2},
    {"125", 1, WS_OP_TEXT, 125, {0x81, 0x7d}, 2},
    {"126", 1, WS_OP_TEXT, 126, {0x81, 0x7e, 0x00, 0x7e}, 4},
    {"65535", 1, WS_OP_TEXT, 65535, {0x81, 0x7e, 0xff, 0xff}, 4},
    {"2^63-1",
     1,
     WS_OP_BINARY,
     0x7fffffffffffffffULL,
     {0x82, 0x7f, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
     10},
    /* close 1000 */
    {"close", 1, WS_OP_CLOSE, 2, {0x88, 0x02}, 2},
    /* a continuation without fin */
    {"cont", 0, WS_OP_CONT, 1, {0x00, 0x01}, 2},
};

/* Every row of encode_cases, byte for byte. */
static void test_ws_encode_header_table(void **state)
{
    for (size_t i = 0; i < sizeof(encode_cases) / sizeof(encode_cases[0]); i++) {
        const struct encode_case *c = &encode_cases[i];
        uint8_t out[WS_MAX_SERVER_HEADER + 4];

        memset(out, 0xee, sizeof(out));
        if (ws_encode_header(out, c->fin, c->opcode, c->len) != c->n)
            fail_case(c->what, "length",
                      (long long)ws_encode_header(out, c->fin, c->opcode, c->len), (long long)c->n);
        assert_memory_equal(out, c->bytes, c->n);
        assert_int_equal(out[WS_MAX_SERVER_HEADER], 0xee);
    }
}

/* An encoded header with a mask added parses back to the same frame. */
static void test_ws_encode_header_round_trip(void **state)
{
    static const uint64_t lens[] = {
        0, 1, 125, 126, 127, 65535, 65536, 1u << 20, 0x7fffffffffffffffULL};

    for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
        for (int fin = 0; fin <= 1; fin++) {
            uint8_t b[WS_MAX_CLIENT_HEADER];
            size_t n = ws_encode_header(b, fin, WS_OP_BINARY, lens[i]);
            struct ws_frame f;
            int code = NONE;

            b[1] |= 0x80;
            memcpy(b + n, "\x01\x02\x03\x04", 4);
            assert_int_equal(ws_parse_header(b, n + 4, BIG, &f, &code), (int)n + 4);
            assert_true(f.payload_len == lens[i]);
            assert_int_equal(f.fin, fin);
        }
    }
}

/* One ws_parse_close case. */
struct close_case {
    const char *what;
    const char *payload;
    size_t len;
    int ret;
    int code; /* *code on success, *close_code on failure */
};

#define C(what, s, ret, code)                                                                      \
    {                                                                                              \
        what, s, sizeof(s) - 1, ret, code                                                          \
    }

static const struct close_case close_cases[] = {
    /* no payload: "no status received" */
    C("empty", "", 0, 1005),
    /* a code cut in half */
    C("one byte", "\x03", WS_INVALID, 1002),
    /* the codes a peer may send */
    C("1000", "\x03\xe8", 0, 1000),
    C("1001", "\x03\xe9", 0, 1001),
    C("1002", "\x03\xea", 0, 1002),
    C("1003", "\x03\xeb", 0, 1003),
    C("1007", "\x03\xef", 0, 1007),
    C("1008", "\x03\xf0", 0, 1008),
    C("1009", "\x03\xf1", 0, 1009),
    C("1010", "\x03\xf2", 0, 1010),
    C("1011", "\x03\xf3", 0, 1011),
    C("3000", "\x0b\xb8", 0, 3000),
    C("3999", "\x0f\x9f", 0, 3999),
    C("4000", "\x0f\xa0", 0, 4000),
    C("4999", "\x13\x87", 0, 4999),
    /* codes that may not be sent (RFC 6455 7.4), or are unassigned */
    C("0", "\x00\x00", WS_INVALID, 1002),
    C("999", "\x03\xe7", WS_INVALID, 1002),
    C("1004 reserved", "\x03\xec", WS_INVALID, 1002),
    C("1005 no status", "\x03\xed", WS_INVALID, 1002),
    C("1006 abnormal", "\x03\xee", WS_INVALID, 1002),
    C("1012", "\x03\xf4", WS_INVALID, 1002),
    C("1014", "\x03\xf6", WS_INVALID, 1002),
    C("1015 tls", "\x03\xf7", WS_INVALID, 1002),
    C("1016", "\x03\xf8", WS_INVALID, 1002),
    C("2000", "\x07\xd0", WS_INVALID, 1002),
    C("2999", "\x0b\xb7", WS_INVALID, 1002),
    C("5000", "\x13\x88", WS_INVALID, 1002),
    C("65535", "\xff\xff", WS_INVALID, 1002),
    /* reasons */
    C("ascii reason",
      "\x03\xe8"
      "bye",
      0, 1000),
    C("utf-8 reason",
      "\x03\xe8"
      "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5",
      0, 1000),
    C("bad byte in reason",
      "\x03\xe8"
      "ok\xff",
      WS_INVALID, 1007),
    C("truncated reason",
      "\x03\xe8"
      "\xce",
      WS_INVALID, 1007),
    C("surrogate in reason",
      "\x0f\xa0"
      "\xed\xa0\x80",
      WS_INVALID, 1007),
    C("overlong in reason",
      "\x03\xe9"
      "\xc0\xaf",
      WS_INVALID, 1007),
    /* a bad code is reported before a bad reason */
    C("bad code and reason",
      "\x03\xec"
      "\xff",
      WS_INVALID, 1002),
};

/* Every row of close_cases. */
static void test_ws_parse_close_table(void **state)
{
    for (size_t i = 0; i < sizeof(close_cases) / sizeof(close_cases[0]); i++) {
        const struct close_case *c = &close_cases[i];
        uint8_t *p = guard_place(c->payload, c->len);
        int code = -1, close_code = -1;
        int r = ws_parse_close(p, c->len, &code, &close_code);

        if (r != c->ret)
            fail_case(c->what, "return", r, c->ret);
        if (r == 0 && code != c->code)
            fail_case(c->what, "code", code, c->code);
        if (r != 0 && close_code != c->code)
            fail_case(c->what, "close code", close_code, c->code);
        guard_release(p, c->len);
    }
}

/* The ranges of sendable close codes, checked at every value. */
static void test_ws_close_code_valid_ranges(void **state)
{
    for (int code = -1; code <= 70000; code++) {
        int want = (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1011) ||
                   (code >= 3000 && code <= 4999);

        if (ws_close_code_valid(code) != want)
            fail_case("close code", "valid", code, want);
    }
}

/* Run the ws suite. */
int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ws_parse_header_table),
        cmocka_unit_test(test_ws_parse_header_need_more_at_every_split),
        cmocka_unit_test(test_ws_parse_header_refusal_stable_with_more_bytes),
        cmocka_unit_test(test_ws_parse_header_reserved_opcodes),
        cmocka_unit_test(test_ws_parse_header_all_first_two_bytes),
        cmocka_unit_test(test_ws_seq_next_table),
        cmocka_unit_test(test_ws_unmask_rfc_hello),
        cmocka_unit_test(test_ws_unmask_every_offset_and_alignment),
        cmocka_unit_test(test_ws_unmask_in_pieces),
        cmocka_unit_test(test_ws_unmask_64k_uneven_reads),
        cmocka_unit_test(test_ws_encode_header_table),
        cmocka_unit_test(test_ws_encode_header_round_trip),
        cmocka_unit_test(test_ws_parse_close_table),
        cmocka_unit_test(test_ws_close_code_valid_ranges),
    };

    return cmocka_run_group_tests_name("ws", tests, NULL, NULL);
}
