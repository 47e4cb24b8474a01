/*
 * bench_ws.c -- micro-benchmarks of the frame codec (ws.c) and of the
 * shared outgoing frame (msg.c): the per-frame work of a read and the
 * once-per-publish work of a send.
 *
 * Owns:       its cases and their buffers; nothing outlives main.
 * Called by:  make bench (build/bench/bench_ws); run it by hand as well.
 * Invariants: each case repeats one call on the same input, as
 *             picohttpparser's bench.c parses one request N times, so the
 *             figures are warm-cache costs: a lower bound for a real read,
 *             whose bytes come cold from the socket. Results go into the
 *             volatile sink (bench.h).
 * Errors:     a frame that does not parse as expected aborts the program
 *             before any timing (bench_fail).
 *
 * Cases:
 *   ws_parse_header   a masked client TEXT header with a 7-bit (100 B),
 *                     16-bit (1000 B) and 64-bit (100000 B) length: 6, 8
 *                     and 14 header bytes.
 *   ws_unmask         a payload of 100 B, 4 KiB and 64 KiB, 8-byte aligned,
 *                     from offset 0 (the mask is applied in place, so every
 *                     other call restores the input).
 *   ws_encode_header  the unmasked server header for 100 B, 1000 B and
 *                     100000 B (2, 4 and 10 bytes).
 *   msg_new           one publish: header plus a copy of a 100 B and a
 *                     1 KiB JSON text payload into a fresh msg, then the
 *                     last msg_unref, which frees it.
 */
#include "bench.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "msg.h"
#include "ws.h"

#define MAX_PAYLOAD (16u << 20) /* above every case, as max_message_size would be */

/* One encoded client frame header and what it should parse to. */
struct parse_case {
    const char *name; /* static */
    uint8_t buf[64];  /* header, then the start of the payload */
    size_t hlen;
    uint64_t plen;
};

/* Fill c->buf with a masked, FIN TEXT header for plen bytes. */
static void build_client_header(struct parse_case *c, uint64_t plen)
{
    static const uint8_t mask[4] = {0x37, 0xfa, 0x21, 0x3d};
    size_t h = 2;

    c->buf[0] = 0x80 | WS_OP_TEXT;
    if (plen < 126) {
        c->buf[1] = 0x80 | (uint8_t)plen;
    } else if (plen <= 0xFFFF) {
        c->buf[1] = 0x80 | 126;
        c->buf[2] = (uint8_t)(plen >> 8);
        c->buf[3] = (uint8_t)plen;
        h = 4;
    } else {
        c->buf[1] = 0x80 | 127;
        for (int i = 0; i < 8; i++)
            c->buf[2 + i] = (uint8_t)(plen >> (56 - 8 * i));
        h = 10;
    }
    memcpy(c->buf + h, mask, 4);
    memset(c->buf + h + 4, 'x', sizeof c->buf - h - 4);
    c->hlen = h + 4;
    c->plen = plen;
}

static void run_parse(void *ctx, uint64_t n)
{
    const struct parse_case *c = ctx;
    struct ws_frame f;
    uint64_t acc = 0;
    int code = 0;

    for (uint64_t i = 0; i < n; i++) {
        int r = ws_parse_header(c->buf, sizeof c->buf, MAX_PAYLOAD, &f, &code);

        acc += (uint64_t)r + f.payload_len + f.mask[0];
    }
    bench_sink += acc;
}

struct unmask_case {
    uint8_t *buf; /* owned */
    size_t len;
};

static void run_unmask(void *ctx, uint64_t n)
{
    static const uint8_t mask[4] = {0x37, 0xfa, 0x21, 0x3d};
    const struct unmask_case *c = ctx;
    uint64_t acc = 0;

    for (uint64_t i = 0; i < n; i++) {
        ws_unmask(c->buf, c->len, mask, 0);
        acc += c->buf[c->len - 1];
    }
    bench_sink += acc;
}

static void run_encode(void *ctx, uint64_t n)
{
    uint64_t len = *(const uint64_t *)ctx, acc = 0;
    uint8_t out[WS_MAX_SERVER_HEADER];

    for (uint64_t i = 0; i < n; i++) {
        size_t h = ws_encode_header(out, 1, WS_OP_TEXT, len);

        acc += h + out[h - 1];
    }
    bench_sink += acc;
}

struct msg_case {
    char *payload; /* owned */
    size_t len;
};

static void run_msg_new(void *ctx, uint64_t n)
{
    const struct msg_case *c = ctx;
    uint64_t acc = 0;

    for (uint64_t i = 0; i < n; i++) {
        struct msg *m = msg_new(WS_OP_TEXT, c->payload, c->len);

        acc += m->len + m->data[m->len - 1];
        msg_unref(m);
    }
    bench_sink += acc;
}

/* A JSON envelope of exactly len bytes, as routes.c would produce. */
static char *make_envelope(size_t len)
{
    static const char head[] = "{\"event\":\"chat.message\",\"data\":{\"text\":\"";
    static const char tail[] = "\"}}";
    char *p = malloc(len + 1);

    if (p == NULL || len < sizeof head + sizeof tail)
        bench_fail("make_envelope(%zu)", len);
    memcpy(p, head, sizeof head - 1);
    for (size_t i = sizeof head - 1; i < len - (sizeof tail - 1); i++)
        p[i] = (char)('a' + i % 26);
    memcpy(p + len - (sizeof tail - 1), tail, sizeof tail - 1);
    p[len] = '\0';
    return p;
}

static void bench_parse(void)
{
    static const struct {
        const char *name;
        uint64_t plen;
    } sizes[] = {
        {"ws_parse_header (masked, 7-bit len, 100 B)", 100},
        {"ws_parse_header (masked, 16-bit len, 1000 B)", 1000},
        {"ws_parse_header (masked, 64-bit len, 100000 B)", 100000},
    };

    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        struct parse_case c = {.name = sizes[i].name};
        struct ws_frame f;
        int code = 0, r;

        build_client_header(&c, sizes[i].plen);
        r = ws_parse_header(c.buf, sizeof c.buf, MAX_PAYLOAD, &f, &code);
        if (r != (int)c.hlen || f.payload_len != c.plen || !f.fin || f.opcode != WS_OP_TEXT)
            bench_fail("%s: parsed %d (want %zu), len %llu", c.name, r, c.hlen,
                       (unsigned long long)f.payload_len);
        bench_run(c.name, run_parse, &c, 0);
    }
}

static void bench_unmask(void)
{
    static const struct {
        const char *name;
        size_t len;
    } sizes[] = {
        {"ws_unmask (100 B)", 100},
        {"ws_unmask (4 KiB)", 4096},
        {"ws_unmask (64 KiB)", 65536},
    };

    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        struct unmask_case c = {.buf = aligned_alloc(64, 65536), .len = sizes[i].len};

        if (c.buf == NULL)
            bench_fail("out of memory");
        for (size_t j = 0; j < c.len; j++)
            c.buf[j] = (uint8_t)j;
        bench_run(sizes[i].name, run_unmask, &c, c.len);
        free(c.buf);
    }
}

static void bench_encode(void)
{
    static const struct {
        const char *name;
        uint64_t len;
    } sizes[] = {
        {"ws_encode_header (100 B)", 100},
        {"ws_encode_header (1000 B)", 1000},
        {"ws_encode_header (100000 B)", 100000},
    };

    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        uint64_t len = sizes[i].len;

        bench_run(sizes[i].name, run_encode, &len, 0);
    }
}

static void bench_msg_new(void)
{
    static const struct {
        const char *name;
        size_t len;
    } sizes[] = {
        {"msg_new + msg_unref (100 B text)", 100},
        {"msg_new + msg_unref (1 KiB text)", 1024},
    };

    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        struct msg_case c = {.payload = make_envelope(sizes[i].len), .len = sizes[i].len};

        bench_run(sizes[i].name, run_msg_new, &c, c.len);
        free(c.payload);
    }
}

int main(void)
{
    bench_parse();
    bench_unmask();
    bench_encode();
    bench_msg_new();
    return 0;
}
