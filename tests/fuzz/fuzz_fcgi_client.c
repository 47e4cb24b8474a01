/*
 * fuzz_fcgi_client.c -- libFuzzer target for the FastCGI client codec
 * (fcgi_client.c): the answer decoder, the CGI response splitter, and the
 * request encoder.
 *
 * Input:      byte 0 picks max_stdout, byte 1 the piece size, byte 2 our
 *             request id (1..3, so records for other ids and for id 0 occur);
 *             the rest is the record stream php-fpm would send.
 * Owns:       three parsers per run, each freed before returning (ASan
 *             reports a leak otherwise), and the encoded request.
 * Checks:     the stream fed whole, in pieces and one byte at a time gives
 *             the same result and the same output; results are one of the
 *             four documented values and stay put once reached; stdout stays
 *             within max_stdout and NUL-terminated, stderr within its cap;
 *             fcgic_parse_response, on the decoded stdout and on the raw
 *             bytes, returns views inside its input, a status in 100..999,
 *             and the same answer for the head alone; the same bytes cut
 *             into params and a body encode into well-framed records that
 *             decode back to them.
 * Build:      make build-fuzz/fuzz_fcgi_client, or see tests/fuzz/run.sh.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fcgi_client.h"

/* Abort (a crash libFuzzer reports) when an invariant does not hold. */
#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            __builtin_trap();                                                                      \
    } while (0)

#define MAX_PARAMS 64

/* Feed s[0..n) in pieces of step bytes; return the last result. */
static int feed_pieces(struct fcgic_parser *p, const uint8_t *s, size_t n, size_t step)
{
    int r = fcgic_parser_feed(p, NULL, 0);

    CHECK(r == FCGIC_MORE);
    for (size_t off = 0; off < n; off += step) {
        size_t k = n - off < step ? n - off : step;
        int prev = r;

        r = fcgic_parser_feed(p, (const char *)s + off, k);
        CHECK(r == FCGIC_MORE || r == FCGIC_DONE || r == FCGIC_E_PROTOCOL ||
              r == FCGIC_E_TOO_LARGE);
        CHECK(prev == FCGIC_MORE || r == prev); /* DONE and errors are for good */
    }
    return r;
}

/* The parser's outputs are within their bounds. */
static void check_bounds(const struct fcgic_parser *p, size_t max_stdout)
{
    size_t kept = p->err_len < FCGIC_ERR_KEEP ? p->err_len : FCGIC_ERR_KEEP;

    CHECK(p->out_len <= max_stdout);
    CHECK((p->out == NULL) == (p->out_len == 0));
    CHECK(p->out == NULL || p->out[p->out_len] == '\0');
    CHECK(p->err[kept] == '\0');
}

/* Two parsers that read the same bytes hold the same outputs. */
static void check_same(const struct fcgic_parser *a, const struct fcgic_parser *b)
{
    size_t kept = a->err_len < FCGIC_ERR_KEEP ? a->err_len : FCGIC_ERR_KEEP;

    CHECK(a->out_len == b->out_len && a->err_len == b->err_len);
    CHECK(a->out_len == 0 || memcmp(a->out, b->out, a->out_len) == 0);
    CHECK(memcmp(a->err, b->err, kept) == 0);
    CHECK(a->app_status == b->app_status && a->protocol_status == b->protocol_status);
}

/* fcgic_parse_response keeps its views inside buf, and the head alone parses the same. */
static void check_response(const char *buf, size_t len)
{
    struct fcgic_response r, h;
    size_t head;

    if (fcgic_parse_response(buf, len, &r) != 0) {
        CHECK(r.status == 0 && r.body == NULL && r.content_type == NULL);
        return;
    }
    CHECK(r.status >= 100 && r.status <= 999);
    CHECK(r.body >= buf && r.body + r.body_len == buf + len);
    head = (size_t)(r.body - buf);
    CHECK(head >= 1 && head <= FCGIC_MAX_HEAD);
    CHECK(r.content_type == NULL ||
          (r.content_type > buf && r.content_type + r.content_type_len <= buf + head));
    CHECK(fcgic_parse_response(buf, head, &h) == 0);
    CHECK(h.status == r.status && h.body_len == 0 && h.content_type == r.content_type);
}

/* Read one pair length at c[*off] (the short form must be used up to 127). */
static size_t read_nv_len(const uint8_t *c, size_t clen, size_t *off)
{
    size_t n;

    CHECK(*off < clen);
    if ((c[*off] & 0x80) == 0)
        return c[(*off)++];
    CHECK(*off + 4 <= clen);
    n = (size_t)(c[*off] & 0x7f) << 24 | (size_t)c[*off + 1] << 16 | (size_t)c[*off + 2] << 8 |
        c[*off + 3];
    *off += 4;
    CHECK(n > 127);
    return n;
}

/* Check one PARAMS record's pairs, whole within it, against params from *next on. */
static void check_pairs(const uint8_t *c, size_t clen, const struct fcgic_param *params,
                        size_t *next)
{
    size_t off = 0;

    while (off < clen) {
        const struct fcgic_param *pm = &params[(*next)++];
        size_t nlen = read_nv_len(c, clen, &off);
        size_t vlen = read_nv_len(c, clen, &off);

        CHECK(nlen == pm->name_len && vlen == pm->value_len && nlen + vlen <= clen - off);
        CHECK(memcmp(c + off, pm->name, nlen) == 0);
        CHECK(memcmp(c + off + nlen, pm->value, vlen) == 0);
        off += nlen + vlen;
    }
}

/* Walk an encoded request: framing, record order, params and body as given. */
static void check_request(const uint8_t *b, size_t len, uint16_t id,
                          const struct fcgic_param *params, size_t n, const char *body,
                          size_t body_len)
{
    const uint8_t *end = b + len;
    size_t next = 0, seen = 0;
    int stage = 0; /* 0 begin, 1 params, 2 stdin, 3 done */

    while (b < end) {
        size_t clen, pad;

        CHECK((size_t)(end - b) >= FCGIC_HEADER_LEN && b[0] == 1 && (b[2] << 8 | b[3]) == id);
        clen = (size_t)b[4] << 8 | b[5];
        pad = b[6];
        CHECK(clen <= FCGIC_MAX_CONTENT && (clen + pad) % 8 == 0 && pad < 8);
        CHECK(FCGIC_HEADER_LEN + clen + pad <= (size_t)(end - b));
        if (stage == 0) {
            CHECK(b[1] == 1 && clen == 8 && b[9] == 1 && b[10] == 0);
            stage = 1;
        } else if (stage == 1) {
            CHECK(b[1] == 4);
            check_pairs(b + FCGIC_HEADER_LEN, clen, params, &next);
            stage += clen == 0;
        } else {
            CHECK(stage == 2 && b[1] == 5 && seen + clen <= body_len);
            CHECK(clen == 0 || memcmp(b + FCGIC_HEADER_LEN, body + seen, clen) == 0);
            seen += clen;
            stage += clen == 0;
        }
        b += FCGIC_HEADER_LEN + clen + pad;
    }
    CHECK(stage == 3 && next == n && seen == body_len);
}

/* Cut s into name/value pairs at NUL bytes (up to MAX_PARAMS), the rest being the body. */
static void check_encode(const uint8_t *s, size_t n, uint16_t id)
{
    struct fcgic_param params[MAX_PARAMS];
    const char *p = (const char *)s, *end = p + n;
    size_t np = 0;
    char *req;
    size_t len;

    while (np < MAX_PARAMS) {
        const char *a = memchr(p, '\0', (size_t)(end - p));
        const char *b = a ? memchr(a + 1, '\0', (size_t)(end - a - 1)) : NULL;

        if (b == NULL)
            break;
        params[np++] = (struct fcgic_param){p, (size_t)(a - p), a + 1, (size_t)(b - a - 1)};
        p = b + 1;
    }
    CHECK(fcgic_encode(id, params, np, p, (size_t)(end - p), &req, &len) == 0);
    check_request((const uint8_t *)req, len, id, params, np, p, (size_t)(end - p));
    free(req);
}

/* Decode the stream three ways, compare, then split what came out; encode the same bytes. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fcgic_parser whole, pieces, bytes;
    size_t max_stdout, step;
    uint16_t id;
    int r;

    if (size < 3)
        return 0;
    max_stdout = data[0] < 128 ? data[0] : (size_t)1 << (data[0] % 24);
    step = 1 + data[1] % 32;
    id = (uint16_t)(1 + data[2] % 3);
    data += 3;
    size -= 3;

    fcgic_parser_init(&whole, id, max_stdout);
    fcgic_parser_init(&pieces, id, max_stdout);
    fcgic_parser_init(&bytes, id, max_stdout);
    r = feed_pieces(&whole, data, size, size ? size : 1);
    CHECK(feed_pieces(&pieces, data, size, step) == r);
    CHECK(feed_pieces(&bytes, data, size, 1) == r);
    if (r != FCGIC_MORE)
        CHECK(fcgic_parser_feed(&whole, "\x02x", 2) == r); /* ignored, or the same error */
    check_bounds(&whole, max_stdout);
    check_same(&whole, &pieces);
    check_same(&whole, &bytes);
    if (r == FCGIC_DONE)
        check_response(whole.out, whole.out_len);
    fcgic_parser_free(&whole);
    fcgic_parser_free(&pieces);
    fcgic_parser_free(&bytes);

    check_response((const char *)data, size);
    check_encode(data, size, id);
    return 0;
}
