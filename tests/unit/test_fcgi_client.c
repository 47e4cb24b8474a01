/*
 * test_fcgi_client.c -- unit tests for the FastCGI client codec
 * (fcgi_client.c).
 *
 * Covers:     fcgic_encode: known-answer bytes; a round trip through a
 *             test-side decoder that checks every record's framing (version,
 *             id, padding, order, pairs whole within one PARAMS record); 1-
 *             and 4-byte lengths at 127/128; params over several records and
 *             the longest pair; a body over 65535 bytes in several STDIN
 *             records; refusals. fcgic_parser_feed: an answer whole, byte by
 *             byte, cut at every offset, in pieces; padding 0..255; the
 *             stderr and stdout caps; a wrong version; other ids and
 *             management records skipped; other types for us; END_REQUEST
 *             lengths; bytes after DONE; sticky errors; taking p->out.
 *             fcgic_parse_response: a table of CGI answers (Status,
 *             Location, LF-only, no blank line, bad Status, bad names) and
 *             the 8 KiB header limit at its edge.
 * Invariants: every parser input ends against a PROT_NONE page (guard.h), so
 *             an overread faults; each piece fed to the stream parser is
 *             unmapped after the call, so a pointer kept into it faults too.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fcgi_client.h"
#include "guard.h"

#define T_BEGIN 1
#define T_END 3
#define T_PARAMS 4
#define T_STDIN 5
#define T_STDOUT 6
#define T_STDERR 7
#define T_GET_VALUES_RESULT 10
#define T_UNKNOWN_TYPE 11
#define ID 1 /* our request id in the parser tests */
#define BIG ((size_t)1 << 30)
#define MAX_PARAMS 64

/* Piece sizes an answer is fed in: whole, one byte at a time, and pieces that straddle headers. */
static const size_t pieces[] = {BIG, 1, 7};
#define NPIECES (sizeof(pieces) / sizeof(pieces[0]))

/* ---- a test-side request decoder ---- */

/* What decode_request found in an encoded request; pointers into it. */
struct req_view {
    struct fcgic_param params[MAX_PARAMS];
    size_t nparams;
    char *body; /* owned: STDIN content, concatenated */
    size_t body_len;
    size_t params_records, stdin_records; /* non-empty ones */
};

/* Read one pair length at c[*off], checking the short form is used up to 127. */
static size_t read_nv_len(const uint8_t *c, size_t clen, size_t *off)
{
    size_t n;

    assert_true(*off < clen);
    if ((c[*off] & 0x80) == 0)
        return c[(*off)++];
    assert_true(*off + 4 <= clen);
    n = (size_t)(c[*off] & 0x7f) << 24 | (size_t)c[*off + 1] << 16 | (size_t)c[*off + 2] << 8 |
        c[*off + 3];
    *off += 4;
    assert_true(n > 127);
    return n;
}

/* Decode the whole pairs of one PARAMS record into v. */
static void decode_pairs(const uint8_t *c, size_t clen, struct req_view *v)
{
    size_t off = 0;

    while (off < clen) {
        struct fcgic_param *pm = &v->params[v->nparams];

        assert_true(v->nparams < MAX_PARAMS);
        pm->name_len = read_nv_len(c, clen, &off);
        pm->value_len = read_nv_len(c, clen, &off);
        assert_true(pm->name_len + pm->value_len <= clen - off); /* whole in this record */
        pm->name = (const char *)c + off;
        pm->value = (const char *)c + off + pm->name_len;
        off += pm->name_len + pm->value_len;
        v->nparams++;
    }
}

/* Check one record's framing; returns its content length and sets *type. */
static size_t check_record(const uint8_t *b, size_t left, uint16_t id, int *type)
{
    size_t clen, pad;

    assert_true(left >= FCGIC_HEADER_LEN);
    assert_int_equal(b[0], 1);
    assert_int_equal(b[2] << 8 | b[3], id);
    clen = (size_t)b[4] << 8 | b[5];
    pad = b[6];
    assert_int_equal(b[7], 0);
    assert_true(clen <= FCGIC_MAX_CONTENT);
    assert_int_equal((clen + pad) % 8, 0);
    assert_true(pad < 8 && clen + pad <= 65535);
    assert_true(FCGIC_HEADER_LEN + clen + pad <= left);
    for (size_t i = 0; i < pad; i++)
        assert_int_equal(b[FCGIC_HEADER_LEN + clen + i], 0);
    *type = b[1];
    return clen;
}

/* Walk a request: BEGIN_REQUEST, PARAMS..., empty PARAMS, STDIN..., empty STDIN; nothing else. */
static void decode_request(const char *req, size_t len, uint16_t id, struct req_view *v)
{
    const uint8_t *b = (const uint8_t *)req, *end = b + len;
    int stage = 0; /* 0 begin, 1 params, 2 stdin, 3 after the empty STDIN */

    memset(v, 0, sizeof(*v));
    v->body = malloc(len + 1);
    assert_non_null(v->body);
    while (b < end) {
        int type;
        size_t clen = check_record(b, (size_t)(end - b), id, &type);
        const uint8_t *c = b + FCGIC_HEADER_LEN;

        if (stage == 0) {
            assert_int_equal(type, T_BEGIN);
            assert_int_equal(clen, 8);
            assert_memory_equal(c, "\0\1\0\0\0\0\0\0", 8); /* RESPONDER, flags 0 */
            stage = 1;
        } else if (stage == 1) {
            assert_int_equal(type, T_PARAMS);
            stage += clen == 0;
            v->params_records += clen > 0;
            decode_pairs(c, clen, v);
        } else {
            assert_int_equal(stage, 2);
            assert_int_equal(type, T_STDIN);
            stage += clen == 0;
            v->stdin_records += clen > 0;
            memcpy(v->body + v->body_len, c, clen);
            v->body_len += clen;
        }
        b += FCGIC_HEADER_LEN + clen + b[6];
    }
    assert_int_equal(stage, 3);
}

/* Encode, decode, and check the params and body came back the same. */
static void round_trip(uint16_t id, const struct fcgic_param *params, size_t n, const char *body,
                       size_t body_len, struct req_view *v)
{
    char *req;
    size_t len;

    assert_int_equal(fcgic_encode(id, params, n, body, body_len, &req, &len), 0);
    decode_request(req, len, id, v);
    assert_int_equal(v->nparams, n);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(v->params[i].name_len, params[i].name_len);
        assert_int_equal(v->params[i].value_len, params[i].value_len);
        assert_memory_equal(v->params[i].name, params[i].name, params[i].name_len);
        assert_memory_equal(v->params[i].value, params[i].value, params[i].value_len);
    }
    assert_int_equal(v->body_len, body_len);
    if (body_len > 0)
        assert_memory_equal(v->body, body, body_len);
    free(req);
    free(v->body);
    v->body = NULL;
}

/* A param from two C strings. */
static struct fcgic_param param(const char *name, const char *value)
{
    struct fcgic_param pm = {name, strlen(name), value, strlen(value)};

    return pm;
}

/* A malloc'd buffer of n bytes, each set by position (so misplaced bytes show). */
static char *pattern(size_t n, unsigned seed)
{
    char *s = malloc(n ? n : 1);

    assert_non_null(s);
    for (size_t i = 0; i < n; i++)
        s[i] = (char)('a' + (i * 7 + seed + i / 251) % 26);
    return s;
}

/* ---- fcgic_encode ---- */

/* One small request, and an empty one, byte for byte. */
static void test_fcgi_client_encode_known_answer(void **state)
{
    static const uint8_t want[] = {/* BEGIN_REQUEST id 0x0102: role RESPONDER, flags 0 */
                                   1, T_BEGIN, 1, 2, 0, 8, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0,
                                   /* PARAMS: A=bc, 5 bytes, 3 of padding */
                                   1, T_PARAMS, 1, 2, 0, 5, 3, 0, 1, 2, 'A', 'b', 'c', 0, 0, 0,
                                   /* empty PARAMS */
                                   1, T_PARAMS, 1, 2, 0, 0, 0, 0,
                                   /* STDIN "hi", 6 bytes of padding */
                                   1, T_STDIN, 1, 2, 0, 2, 6, 0, 'h', 'i', 0, 0, 0, 0, 0, 0,
                                   /* empty STDIN */
                                   1, T_STDIN, 1, 2, 0, 0, 0, 0};
    struct fcgic_param pm = param("A", "bc");
    char *req;
    size_t len;

    assert_int_equal(fcgic_encode(0x0102, &pm, 1, "hi", 2, &req, &len), 0);
    assert_int_equal(len, sizeof(want));
    assert_memory_equal(req, want, sizeof(want));
    free(req);
    /* no params, no body: BEGIN_REQUEST and the two empty records */
    assert_int_equal(fcgic_encode(0x0102, NULL, 0, NULL, 0, &req, &len), 0);
    assert_int_equal(len, 32);
    assert_memory_equal(req, want, 16);
    assert_memory_equal(req + 16, want + 32, 8);
    assert_memory_equal(req + 24, want + 56, 8);
    free(req);
}

/* The parameters rpc.c sends (docs/protocol.md 3), and a JSON body. */
static void test_fcgi_client_encode_round_trip(void **state)
{
    static const char body[] = "{\"type\":\"rpc\",\"method\":\"tasks.list\",\"user\":\"42\"}";
    const struct fcgic_param params[] = {
        param("SCRIPT_FILENAME", "/srv/app/rpc.php"),
        param("REQUEST_METHOD", "POST"),
        param("CONTENT_TYPE", "application/json"),
        param("CONTENT_LENGTH", "48"),
        param("REQUEST_URI", "/herald/rpc"),
        param("SERVER_SOFTWARE", "herald/1.0"),
        param("GATEWAY_INTERFACE", "CGI/1.1"),
        param("SERVER_PROTOCOL", "HTTP/1.1"),
        param("REMOTE_ADDR", "127.0.0.1"),
        param("HERALD_SIGNATURE", "00ff"),
        param("EMPTY", ""),
    };
    struct req_view v;

    round_trip(0xffff, params, sizeof(params) / sizeof(params[0]), body, sizeof(body) - 1, &v);
    assert_int_equal(v.params_records, 1);
    assert_int_equal(v.stdin_records, 1);
}

/* Lengths of 127 take one byte, 128 and more four, with the top bit set. */
static void test_fcgi_client_encode_long_params(void **state)
{
    char *b = pattern(70000, 1); /* names and values are slices of it */
    const struct fcgic_param params[] = {
        {b, 127, "x", 1},
        {"N", 1, b + 1, 128},
        {b + 2, 200, b + 3, 65300},
        {b + 4, 128, b + 5, 127},
    };
    static const uint8_t pair2[] = {1, 0x80, 0, 0, 128, 'N'};
    struct req_view v;
    char *req;
    size_t len;

    round_trip(ID, params, 4, NULL, 0, &v);
    /* pairs 1 and 2 share the first record; 3 fills a second; 4 no longer fits in it */
    assert_int_equal(v.params_records, 3);
    assert_int_equal(fcgic_encode(ID, params + 1, 1, NULL, 0, &req, &len), 0);
    assert_memory_equal(req + 16 + 8, pair2, sizeof(pair2));
    free(req);
    free(b);
}

/* Many params spill into several PARAMS records, each pair whole in one. */
static void test_fcgi_client_encode_params_over_records(void **state)
{
    char *val = pattern(30000, 5);
    struct fcgic_param params[7];
    struct req_view v;

    for (size_t i = 0; i < 7; i++)
        params[i] = (struct fcgic_param){"NAME", 4, val + i, 30000 - i};
    round_trip(ID, params, 7, "b", 1, &v);
    assert_int_equal(v.params_records, 4); /* two pairs per record */
    free(val);
}

/* The longest pair that fits one record and one byte more; pairs filling a record to its edge. */
static void test_fcgi_client_encode_pair_limit(void **state)
{
    size_t vlen = FCGIC_MAX_CONTENT - 1 - 1 - 4; /* name "A", 1-byte and 4-byte lengths */
    char *val = pattern(vlen + 1, 6);
    struct fcgic_param pm = {"A", 1, val, vlen}, params[2];
    struct req_view v;
    char *req = (char *)&v;
    size_t len = 1;

    round_trip(ID, &pm, 1, NULL, 0, &v);
    assert_int_equal(v.params_records, 1);
    pm.value_len = vlen + 1;
    assert_int_equal(fcgic_encode(ID, &pm, 1, NULL, 0, &req, &len), -1);
    assert_null(req);
    assert_int_equal(len, 0);
    pm.value_len = (size_t)1 << 40;
    assert_int_equal(fcgic_encode(ID, &pm, 1, NULL, 0, &req, &len), -1);
    /* pairs of 65000 and 530 bytes: 65530 is under 65535 but over FCGIC_MAX_CONTENT */
    params[0] = (struct fcgic_param){"A", 1, val, 65000 - 6};
    params[1] = (struct fcgic_param){"B", 1, val, 530 - 6};
    round_trip(ID, params, 2, NULL, 0, &v);
    assert_int_equal(v.params_records, 2);
    params[1].value_len = 528 - 6; /* 65528: one record, exactly full */
    round_trip(ID, params, 2, NULL, 0, &v);
    assert_int_equal(v.params_records, 1);
    free(val);
}

/* What fcgic_encode refuses: id 0, NULL with a length, no output pointers. */
static void test_fcgi_client_encode_refusals(void **state)
{
    struct fcgic_param pm = param("A", "b");
    struct fcgic_param null_value = {"A", 1, NULL, 3};
    char *req;
    size_t len;

    assert_int_equal(fcgic_encode(0, &pm, 1, "x", 1, &req, &len), -1);
    assert_int_equal(fcgic_encode(ID, NULL, 1, "x", 1, &req, &len), -1);
    assert_int_equal(fcgic_encode(ID, &pm, 1, NULL, 1, &req, &len), -1);
    assert_int_equal(fcgic_encode(ID, &null_value, 1, NULL, 0, &req, &len), -1);
    assert_int_equal(fcgic_encode(ID, &pm, 1, "x", 1, NULL, &len), -1);
    assert_int_equal(fcgic_encode(ID, &pm, 1, "x", 1, &req, NULL), -1);
    assert_int_equal(fcgic_encode(ID, &pm, 1, "x", SIZE_MAX, &req, &len), -1);
}

/* A body over 65535 bytes goes out in several STDIN records, at every size near the edge. */
static void test_fcgi_client_encode_big_body(void **state)
{
    static const struct {
        size_t len, records;
    } cases[] = {
        {FCGIC_MAX_CONTENT - 1, 1},
        {FCGIC_MAX_CONTENT, 1},
        {FCGIC_MAX_CONTENT + 1, 2},
        {65535, 2},
        {65536, 2},
        {200000, 4},
        {3 * FCGIC_MAX_CONTENT, 3},
    };
    char *body = pattern(200000, 7);
    struct fcgic_param pm = param("CONTENT_LENGTH", "200000");

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct req_view v;

        round_trip(ID, &pm, 1, body, cases[i].len, &v);
        assert_int_equal(v.stdin_records, cases[i].records);
    }
    free(body);
}

/* ---- fcgic_parser_feed ---- */

/* A growing byte buffer for building answers. */
struct stream {
    uint8_t *b;
    size_t len, cap;
};

/* Append n bytes to s. */
static void s_put(struct stream *s, const void *p, size_t n)
{
    if (s->len + n > s->cap) {
        s->cap = (s->len + n) * 2;
        s->b = realloc(s->b, s->cap);
        assert_non_null(s->b);
    }
    if (n > 0)
        memcpy(s->b + s->len, p, n);
    s->len += n;
}

/* Append a record with any version, and pad bytes of 0xAA padding. */
static void s_record_v(struct stream *s, int version, int type, uint16_t id, const void *c,
                       size_t clen, size_t pad)
{
    uint8_t h[8] = {(uint8_t)version,     (uint8_t)type, (uint8_t)(id >> 8), (uint8_t)id,
                    (uint8_t)(clen >> 8), (uint8_t)clen, (uint8_t)pad,       0};
    uint8_t padding[255];

    memset(padding, 0xaa, sizeof(padding));
    s_put(s, h, 8);
    s_put(s, c, clen);
    s_put(s, padding, pad);
}

/* Append a version 1 record. */
static void s_record(struct stream *s, int type, uint16_t id, const void *c, size_t clen,
                     size_t pad)
{
    s_record_v(s, 1, type, id, c, clen, pad);
}

/* Append a C string as one STDOUT or STDERR record, unpadded. */
static void s_text(struct stream *s, int type, uint16_t id, const char *text)
{
    s_record(s, type, id, text, strlen(text), 0);
}

/* Append END_REQUEST with its 8-byte body. */
static void s_end(struct stream *s, uint16_t id, uint32_t app, int proto, size_t pad)
{
    uint8_t b[8] = {0};

    for (int i = 0; i < 4; i++)
        b[i] = (uint8_t)(app >> (24 - 8 * i));
    b[4] = (uint8_t)proto;
    s_record(s, T_END, id, b, 8, pad);
}

/* Feed one piece, placed against a guard page and unmapped right after. */
static int feed_guarded(struct fcgic_parser *p, const uint8_t *data, size_t n)
{
    char *q = guard_place(data, n);
    int r = fcgic_parser_feed(p, q, n);

    guard_release(q, n);
    return r;
}

/*
 * Feed b[0..len) in pieces of `step` bytes. Returns the first result that
 * is not FCGIC_MORE (or FCGIC_MORE), with *at the offset just past the piece
 * that gave it; checks every later piece gives the same result.
 */
static int feed_steps(struct fcgic_parser *p, const uint8_t *b, size_t len, size_t step, size_t *at)
{
    int first = FCGIC_MORE;

    *at = len;
    for (size_t off = 0; off < len; off += step) {
        size_t n = len - off < step ? len - off : step;
        int r = feed_guarded(p, b + off, n);

        if (first == FCGIC_MORE && r != FCGIC_MORE) {
            first = r;
            *at = off + n;
        } else if (first != FCGIC_MORE) {
            assert_int_equal(r, first);
        }
    }
    return first;
}

/* Start p on our id with max_stdout, and feed it s in pieces of step bytes (see feed_steps). */
static int run(struct fcgic_parser *p, size_t max_stdout, const struct stream *s, size_t step,
               size_t *at)
{
    fcgic_parser_init(p, ID, max_stdout);
    return feed_steps(p, s->b, s->len, step, at);
}

/* A typical answer: headers and body over two STDOUT records, a warning on STDERR. */
static void typical_answer(struct stream *s)
{
    s_record(s, T_STDOUT, ID, "Content-type: application/json\r\n\r\n", 34, 6);
    s_text(s, T_STDERR, ID, "PHP Warning: x");
    s_record(s, T_STDOUT, ID, "{\"ok\":true}", 11, 5);
    s_record(s, T_STDOUT, ID, NULL, 0, 0);
    s_record(s, T_STDERR, ID, NULL, 0, 0);
    s_end(s, ID, 0, FCGIC_REQUEST_COMPLETE, 0);
}

/* Check the parser holds typical_answer's output. */
static void check_typical(const struct fcgic_parser *p)
{
    static const char out[] = "Content-type: application/json\r\n\r\n{\"ok\":true}";

    assert_int_equal(p->out_len, sizeof(out) - 1);
    assert_memory_equal(p->out, out, sizeof(out));
    assert_int_equal(p->err_len, 14);
    assert_string_equal(p->err, "PHP Warning: x");
    assert_int_equal(p->app_status, 0);
    assert_int_equal(p->protocol_status, FCGIC_REQUEST_COMPLETE);
}

/* The whole answer in one piece, one byte at a time, and in 7-byte pieces. */
static void test_fcgi_client_feed_pieces(void **state)
{
    struct stream s = {NULL, 0, 0};

    typical_answer(&s);
    for (size_t i = 0; i < NPIECES; i++) {
        struct fcgic_parser p;
        size_t at;

        assert_int_equal(run(&p, 1024, &s, pieces[i], &at), FCGIC_DONE);
        assert_int_equal(at, s.len);
        check_typical(&p);
        fcgic_parser_free(&p);
    }
    free(s.b);
}

/* Cut in two at every offset: MORE until the last byte, then the same output. */
static void test_fcgi_client_feed_every_split(void **state)
{
    struct stream s = {NULL, 0, 0};

    typical_answer(&s);
    for (size_t cut = 0; cut <= s.len; cut++) {
        struct fcgic_parser p;
        int r1, r2;

        fcgic_parser_init(&p, ID, 1024);
        r1 = feed_guarded(&p, s.b, cut);
        r2 = feed_guarded(&p, s.b + cut, s.len - cut);
        assert_int_equal(r1, cut == s.len ? FCGIC_DONE : FCGIC_MORE);
        assert_int_equal(r2, FCGIC_DONE);
        check_typical(&p);
        fcgic_parser_free(&p);
    }
    free(s.b);
}

/* 200 KB of stdout in four records, fed whole and in 1000-byte pieces. */
static void test_fcgi_client_feed_big_stdout(void **state)
{
    size_t total = 200000, off = 0;
    char *out = pattern(total, 8);
    struct stream s = {NULL, 0, 0};

    while (off < total) {
        size_t n = total - off < 65535 ? total - off : 65535;

        s_record(&s, T_STDOUT, ID, out + off, n, (8 - n % 8) % 8);
        off += n;
    }
    s_end(&s, ID, 0, 0, 0);
    for (size_t i = 0; i < 2; i++) {
        struct fcgic_parser p;
        size_t at;

        assert_int_equal(run(&p, total, &s, i == 0 ? BIG : 1000, &at), FCGIC_DONE);
        assert_int_equal(p.out_len, total);
        assert_memory_equal(p.out, out, total);
        assert_int_equal(p.out[total], '\0');
        fcgic_parser_free(&p);
    }
    free(out);
    free(s.b);
}

/* Padding of every length 0..255 is skipped, byte by byte too, on every record type. */
static void test_fcgi_client_feed_padding(void **state)
{
    for (size_t pad = 0; pad <= 255; pad++) {
        struct stream s = {NULL, 0, 0};
        struct fcgic_parser p;
        size_t at;

        s_record(&s, T_STDOUT, ID, "ab", 2, pad);
        s_record(&s, T_STDERR, ID, "e", 1, pad);
        s_record(&s, T_STDOUT, 9, "zz", 2, pad); /* skipped, padding too */
        s_record(&s, T_STDOUT, ID, NULL, 0, pad);
        s_record(&s, T_STDOUT, ID, "c", 1, 255 - pad);
        s_end(&s, ID, 3, 0, pad);
        assert_int_equal(run(&p, 1024, &s, pad % 2 ? 1 : BIG, &at), FCGIC_DONE);
        /* DONE comes with END_REQUEST's content: its padding is not waited for */
        assert_int_equal(at, pad % 2 ? s.len - pad : s.len);
        assert_int_equal(p.out_len, 3);
        assert_string_equal(p.out, "abc");
        assert_string_equal(p.err, "e");
        assert_int_equal(p.app_status, 3);
        fcgic_parser_free(&p);
        free(s.b);
    }
}

/* stderr is counted whole but kept to its first FCGIC_ERR_KEEP bytes, NUL-terminated. */
static void test_fcgi_client_feed_stderr_cap(void **state)
{
    char *err = pattern(3000, 9);
    struct stream s = {NULL, 0, 0};
    struct fcgic_parser p;
    size_t at;

    s_record(&s, T_STDERR, ID, err, 1000, 0);
    s_record(&s, T_STDERR, ID, err + 1000, 1000, 0); /* crosses the cap */
    s_record(&s, T_STDERR, ID, err + 2000, 1000, 0); /* wholly past it */
    s_end(&s, ID, 0, 0, 0);
    for (size_t i = 0; i < NPIECES; i++) {
        assert_int_equal(run(&p, 1024, &s, pieces[i], &at), FCGIC_DONE);
        assert_int_equal(p.err_len, 3000);
        assert_memory_equal(p.err, err, FCGIC_ERR_KEEP);
        assert_int_equal(p.err[FCGIC_ERR_KEEP], '\0');
        assert_null(p.out);
        assert_int_equal(p.out_len, 0);
        fcgic_parser_free(&p);
    }
    free(err);
    free(s.b);
}

/* stdout at the cap is fine; one byte more is FCGIC_E_TOO_LARGE, at that record's header. */
static void test_fcgi_client_feed_stdout_cap(void **state)
{
    char *out = pattern(101, 10);
    struct stream ok = {NULL, 0, 0}, over = {NULL, 0, 0};
    struct fcgic_parser p;
    size_t at, second;

    s_record(&ok, T_STDOUT, ID, out, 60, 4);
    s_record(&ok, T_STDOUT, 2, out, 101, 0); /* another id: not counted */
    s_record(&ok, T_STDOUT, ID, out + 60, 40, 0);
    s_end(&ok, ID, 0, 0, 0);
    assert_int_equal(run(&p, 100, &ok, BIG, &at), FCGIC_DONE);
    assert_int_equal(p.out_len, 100);
    assert_memory_equal(p.out, out, 100);
    fcgic_parser_free(&p);

    s_record(&over, T_STDOUT, ID, out, 60, 4);
    second = over.len;
    s_record(&over, T_STDOUT, ID, out + 60, 41, 0);
    s_end(&over, ID, 0, 0, 0);
    assert_int_equal(run(&p, 100, &over, 1, &at), FCGIC_E_TOO_LARGE);
    assert_int_equal(at, second + FCGIC_HEADER_LEN);
    assert_int_equal(p.out_len, 60);
    assert_int_equal(fcgic_parser_feed(&p, NULL, 0), FCGIC_E_TOO_LARGE);
    fcgic_parser_free(&p);

    over.len = 0; /* max_stdout 0: an empty STDOUT record is fine, one byte is not */
    s_record(&over, T_STDOUT, ID, NULL, 0, 0);
    s_record(&over, T_STDOUT, ID, "x", 1, 0);
    assert_int_equal(run(&p, 0, &over, 1, &at), FCGIC_E_TOO_LARGE);
    assert_int_equal(at, 16);
    assert_null(p.out);
    fcgic_parser_free(&p);
    free(out);
    free(ok.b);
    free(over.b);
}

/* A version other than 1 is refused from its first byte, in any record. */
static void test_fcgi_client_feed_wrong_version(void **state)
{
    static const int versions[] = {0, 2, 255};

    for (size_t i = 0; i < sizeof(versions) / sizeof(versions[0]); i++) {
        struct stream s = {NULL, 0, 0};
        struct fcgic_parser p;
        size_t at, second;

        s_text(&s, T_STDOUT, ID, "\r\nok");
        second = s.len;
        s_record_v(&s, versions[i], T_STDOUT, ID, "x", 1, 7);
        s_end(&s, ID, 0, 0, 0);
        assert_int_equal(run(&p, 1024, &s, 1, &at), FCGIC_E_PROTOCOL);
        assert_int_equal(at, second + 1);
        fcgic_parser_free(&p);

        /* skipped records are checked too: framing cannot be trusted otherwise */
        s.len = 0;
        s_record_v(&s, versions[i], T_STDOUT, 0, "x", 1, 7);
        assert_int_equal(run(&p, 1024, &s, BIG, &at), FCGIC_E_PROTOCOL);
        fcgic_parser_free(&p);
        free(s.b);
    }
}

/* Records for another id, and management records (id 0), are skipped whatever their type. */
static void test_fcgi_client_feed_other_ids_skipped(void **state)
{
    static const char values_result[] = "\x0e\x01"
                                        "FCGI_MPXS_CONNS0";
    static const uint8_t unknown_type[8] = {42, 0, 0, 0, 0, 0, 0, 0};
    struct stream s = {NULL, 0, 0};
    struct fcgic_parser p;
    size_t at;

    s_record(&s, T_GET_VALUES_RESULT, 0, values_result, sizeof(values_result) - 1, 6);
    s_record(&s, T_UNKNOWN_TYPE, 0, unknown_type, 8, 0);
    s_text(&s, T_STDOUT, 2, "not ours");
    s_text(&s, T_STDOUT, ID, "\r\nours");
    s_text(&s, T_STDERR, 0x0100 | ID, "not ours either");
    s_record(&s, 200, 2, "??", 2, 6); /* an unknown type, but not ours */
    s_end(&s, 2, 0, 0, 0);            /* does not end our request */
    s_end(&s, 0, 0, 0, 0);
    s_record(&s, T_STDOUT, 0, "mgmt", 4, 4);
    s_end(&s, ID, 0, 0, 0);
    for (size_t i = 0; i < NPIECES; i++) {
        assert_int_equal(run(&p, 1024, &s, pieces[i], &at), FCGIC_DONE);
        assert_int_equal(at, s.len);
        assert_string_equal(p.out, "\r\nours");
        assert_int_equal(p.err_len, 0);
        assert_string_equal(p.err, "");
        fcgic_parser_free(&p);
    }
    /* id 0 is never a request's: a parser for it sees only management records */
    fcgic_parser_init(&p, 0, 1024);
    assert_int_equal(feed_steps(&p, s.b, s.len, BIG, &at), FCGIC_MORE);
    assert_null(p.out);
    fcgic_parser_free(&p);
    free(s.b);
}

/* Any type but STDOUT, STDERR and END_REQUEST for our id is a protocol error. */
static void test_fcgi_client_feed_bad_type_for_us(void **state)
{
    /* no type, BEGIN, ABORT, PARAMS, STDIN, DATA, GET_VALUES(_RESULT), UNKNOWN_TYPE, unknown */
    static const int types[] = {0, 1, 2, 4, 5, 8, 9, 10, 11, 12, 255};

    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
        struct stream s = {NULL, 0, 0};
        struct fcgic_parser p;
        size_t at;

        s_text(&s, T_STDOUT, ID, "\r\n");
        s_record(&s, types[i], ID, "12345678", 8, 0);
        s_end(&s, ID, 0, 0, 0);
        assert_int_equal(run(&p, 1024, &s, 3, &at), FCGIC_E_PROTOCOL);
        assert_true(at >= 10 + 8 && at < 10 + 8 + 3); /* at that record's header */
        fcgic_parser_free(&p);
        free(s.b);
    }
}

/* END_REQUEST under 8 bytes is refused; over 8, the rest is ignored. */
static void test_fcgi_client_feed_end_request_length(void **state)
{
    static const uint8_t body16[16] = {
        0x01, 0x02, 0x03, 0x04, FCGIC_OVERLOADED, 0, 0, 0, 9, 9, 9, 9, 9, 9, 9, 9};
    struct stream s = {NULL, 0, 0};
    struct fcgic_parser p;
    size_t at;

    for (size_t clen = 0; clen <= 16; clen++) {
        s.len = 0;
        s_record(&s, T_END, ID, body16, clen, 0);
        assert_int_equal(run(&p, 1024, &s, clen % 2 ? 1 : BIG, &at),
                         clen < 8 ? FCGIC_E_PROTOCOL : FCGIC_DONE);
        /* a short one is refused at its header */
        assert_int_equal(at, clen < 8 && clen % 2 ? FCGIC_HEADER_LEN : s.len);
        if (clen >= 8) {
            assert_int_equal(p.app_status, 0x01020304);
            assert_int_equal(p.protocol_status, FCGIC_OVERLOADED);
        }
        fcgic_parser_free(&p);
    }
    free(s.b);
}

/* After DONE every byte is ignored, even garbage; a later call still says DONE. Taking p->out. */
static void test_fcgi_client_feed_after_done(void **state)
{
    struct stream s = {NULL, 0, 0};
    struct fcgic_parser p;
    size_t at, end;
    char *mine;

    typical_answer(&s);
    end = s.len;
    s_put(&s, "\x07garbage", 8);
    s_text(&s, T_STDOUT, ID, "more");
    assert_int_equal(run(&p, 1024, &s, BIG, &at), FCGIC_DONE);
    check_typical(&p);
    fcgic_parser_free(&p);
    assert_int_equal(run(&p, 1024, &s, 1, &at), FCGIC_DONE);
    assert_int_equal(at, end);
    assert_int_equal(fcgic_parser_feed(&p, "x", 1), FCGIC_DONE);
    check_typical(&p);
    /* the caller may take p->out; free then leaves it alone, and may be called twice */
    mine = p.out;
    p.out = NULL;
    fcgic_parser_free(&p);
    fcgic_parser_free(&p);
    assert_memory_equal(mine, "Content-type", 12);
    free(mine);
    free(s.b);
}

/* ---- fcgic_parse_response ---- */

/* One fcgic_parse_response case. */
struct resp_case {
    const char *what;
    const char *in;
    int ret;
    int status;
    const char *content_type; /* NULL: absent */
    const char *body;         /* the body: the input's tail */
};

#define OK(what, in, status, ct, body)                                                             \
    {                                                                                              \
        what, in, 0, status, ct, body                                                              \
    }
#define BAD(what, in)                                                                              \
    {                                                                                              \
        what, in, -1, 0, NULL, NULL                                                                \
    }

static const struct resp_case resp_cases[] = {
    /* what herald_rpc_reply() prints through php-fpm */
    OK("php reply", "X-Powered-By: PHP/8.2\r\nContent-type: application/json\r\n\r\n{\"a\":1}", 200,
       "application/json", "{\"a\":1}"),
    /* herald_rpc_error(): Status first */
    OK("status 403", "Status: 403 Forbidden\r\nContent-Type: application/json\r\n\r\n{}", 403,
       "application/json", "{}"),
    /* a Status with no reason phrase */
    OK("status no reason", "Status: 404\r\n\r\n", 404, NULL, ""),
    /* names are case-insensitive */
    OK("status upper case", "STATUS: 500 Oops\r\ncontent-TYPE: text/plain\r\n\r\nx", 500,
       "text/plain", "x"),
    /* the edges of the range */
    OK("status 100", "Status: 100 Continue\r\n\r\n", 100, NULL, ""),
    OK("status 999", "Status: 999\t whatever \r\n\r\n", 999, NULL, ""),
    /* Location without Status: a redirect */
    OK("location", "Location: https://example.com/\r\n\r\n", 302, NULL, ""),
    /* Location with a Status, before or after it: the Status wins */
    OK("location and status", "Location: /x\r\nStatus: 301 Moved\r\n\r\n", 301, NULL, ""),
    OK("status and location", "Status: 201 Created\r\nLocation: /x\r\n\r\n", 201, NULL, ""),
    /* LF-only line ends */
    OK("lf only", "Status: 201 Created\nContent-Type: text/plain\n\nbody\n", 201, "text/plain",
       "body\n"),
    /* mixed line ends */
    OK("mixed", "Content-Type: a\n\r\nb", 200, "a", "b"),
    /* no headers, a blank line first */
    OK("blank first crlf", "\r\nbody", 200, NULL, "body"),
    OK("blank first lf", "\nbody", 200, NULL, "body"),
    OK("only a blank line", "\n", 200, NULL, ""),
    /* values are trimmed of blanks; none are needed after the colon */
    OK("trimmed", "Content-Type: \t text/html; charset=utf-8 \t\r\n\r\n", 200,
       "text/html; charset=utf-8", ""),
    OK("no space", "Content-Type:text/html\r\n\r\n", 200, "text/html", ""),
    OK("empty value", "Content-Type:\r\n\r\n", 200, "", ""),
    /* the body is anything after the first blank line, blank lines included */
    OK("body with blank lines", "A: b\r\n\r\n\r\n\r\nx: y\r\n", 200, NULL, "\r\n\r\nx: y\r\n"),
    /* names that only start or end like the ones we read are other headers */
    OK("name prefixes",
       "Stat: 1\r\nStatusx: 2\r\nContent-Type-Options: nosniff\r\nXLocation: /\r\n\r\n", 200, NULL,
       ""),
    /* a colon in the value */
    OK("colon in value", "X-Url: http://a:1/\r\n\r\n", 200, NULL, ""),

    /* no blank line */
    BAD("empty", ""),
    BAD("no line end", "Status: 200 OK"),
    BAD("no blank line", "Status: 200 OK\r\nContent-Type: a\r\n"),
    BAD("no blank line, lf", "Content-Type: a\nbody"),
    /* header lines that are not headers */
    BAD("no colon", "Garbage\r\n\r\n"),
    BAD("empty name", ": x\r\n\r\n"),
    BAD("blank in name", "Bad Name: x\r\n\r\n"),
    BAD("blank before colon", "Status : 200\r\n\r\n"),
    BAD("obs-fold", "A: b\r\n c\r\n\r\n"),
    BAD("control in name", "A\x01: b\r\n\r\n"),
    BAD("cr only", "A: b\rC: d\r\r"),
    /* bad Status values */
    BAD("status letters", "Status: abc\r\n\r\n"),
    BAD("status 99", "Status: 99 Low\r\n\r\n"),
    BAD("status 099", "Status: 099 Low\r\n\r\n"),
    BAD("status 1000", "Status: 1000\r\n\r\n"),
    BAD("status 20x", "Status: 20x\r\n\r\n"),
    BAD("status empty", "Status:\r\n\r\n"),
    BAD("status glued reason", "Status: 200OK\r\n\r\n"),
    BAD("status negative", "Status: -20\r\n\r\n"),
    BAD("status stray cr", "Status: 200\r\r\n\r\n"),
};

/* Fail with the case name and what differs. */
static void fail_resp(const struct resp_case *c, const char *field)
{
    print_error("case \"%s\": %s\n", c->what, field);
    fail();
}

/* Check one case's views: the right bytes, inside the input. */
static void check_resp_views(const struct resp_case *c, const char *p, size_t len,
                             const struct fcgic_response *r)
{
    size_t blen = strlen(c->body);

    if (r->status != c->status)
        fail_resp(c, "status");
    if (r->body != p + len - blen || r->body_len != blen)
        fail_resp(c, "body");
    if (c->content_type == NULL) {
        if (r->content_type != NULL || r->content_type_len != 0)
            fail_resp(c, "content type present");
        return;
    }
    if (r->content_type == NULL || r->content_type < p || r->content_type >= p + len ||
        r->content_type_len != strlen(c->content_type) ||
        memcmp(r->content_type, c->content_type, r->content_type_len) != 0)
        fail_resp(c, "content type");
}

/* Every row of resp_cases, against a guard page. */
static void test_fcgi_client_parse_response_table(void **state)
{
    for (size_t i = 0; i < sizeof(resp_cases) / sizeof(resp_cases[0]); i++) {
        const struct resp_case *c = &resp_cases[i];
        size_t len = strlen(c->in);
        char *p = guard_place(c->in, len);
        struct fcgic_response r;

        memset(&r, 0xa5, sizeof(r));
        if (fcgic_parse_response(p, len, &r) != c->ret)
            fail_resp(c, "return");
        if (c->ret == 0)
            check_resp_views(c, p, len, &r);
        else if (r.status != 0 || r.content_type != NULL || r.body != NULL)
            fail_resp(c, "not zeroed on error");
        guard_release(p, len);
    }
}

/* A header section of exactly FCGIC_MAX_HEAD bytes parses; one byte more, or 100 KB, does not. */
static void test_fcgi_client_parse_response_head_limit(void **state)
{
    static const size_t heads[] = {FCGIC_MAX_HEAD - 1, FCGIC_MAX_HEAD, FCGIC_MAX_HEAD + 1, 100000};

    for (size_t i = 0; i < sizeof(heads) / sizeof(heads[0]); i++) {
        size_t head = heads[i];
        size_t len = head + 100; /* and a body: the limit is on the head only */
        char *buf = malloc(len);
        char *p;
        struct fcgic_response r;
        int ret;

        assert_non_null(buf);
        memcpy(buf, "X-Big: ", 7);
        memset(buf + 7, 'v', head - 7 - 4);
        memcpy(buf + head - 4, "\r\n\r\n", 4);
        memset(buf + head, 'b', 100);
        p = guard_place(buf, len);
        ret = fcgic_parse_response(p, len, &r);
        assert_int_equal(ret, head <= FCGIC_MAX_HEAD ? 0 : -1);
        if (ret == 0) {
            assert_ptr_equal(r.body, p + head);
            assert_int_equal(r.body_len, 100);
        }
        guard_release(p, len);
        free(buf);
    }
}

/* Decode a whole answer, then split the CGI response it carries. */
static void test_fcgi_client_feed_then_parse(void **state)
{
    struct stream s = {NULL, 0, 0};
    struct fcgic_parser p;
    struct fcgic_response r;
    size_t at;

    typical_answer(&s); /* the head in one STDOUT record, the body in another */
    assert_int_equal(run(&p, 1024, &s, 2, &at), FCGIC_DONE);
    assert_int_equal(fcgic_parse_response(p.out, p.out_len, &r), 0);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.content_type_len, 16);
    assert_memory_equal(r.content_type, "application/json", 16);
    assert_ptr_equal(r.body, p.out + 34);
    assert_int_equal(r.body_len, 11);
    fcgic_parser_free(&p);
    free(s.b);
}

/* Run the fcgi_client suite. */
int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fcgi_client_encode_known_answer),
        cmocka_unit_test(test_fcgi_client_encode_round_trip),
        cmocka_unit_test(test_fcgi_client_encode_long_params),
        cmocka_unit_test(test_fcgi_client_encode_params_over_records),
        cmocka_unit_test(test_fcgi_client_encode_pair_limit),
        cmocka_unit_test(test_fcgi_client_encode_refusals),
        cmocka_unit_test(test_fcgi_client_encode_big_body),
        cmocka_unit_test(test_fcgi_client_feed_pieces),
        cmocka_unit_test(test_fcgi_client_feed_every_split),
        cmocka_unit_test(test_fcgi_client_feed_big_stdout),
        cmocka_unit_test(test_fcgi_client_feed_padding),
        cmocka_unit_test(test_fcgi_client_feed_stderr_cap),
        cmocka_unit_test(test_fcgi_client_feed_stdout_cap),
        cmocka_unit_test(test_fcgi_client_feed_wrong_version),
        cmocka_unit_test(test_fcgi_client_feed_other_ids_skipped),
        cmocka_unit_test(test_fcgi_client_feed_bad_type_for_us),
        cmocka_unit_test(test_fcgi_client_feed_end_request_length),
        cmocka_unit_test(test_fcgi_client_feed_after_done),
        cmocka_unit_test(test_fcgi_client_feed_then_parse),
        cmocka_unit_test(test_fcgi_client_parse_response_table),
        cmocka_unit_test(test_fcgi_client_parse_response_head_limit),
    };

    return cmocka_run_group_tests_name("fcgi_client", tests, NULL, NULL);
}
