/*
 * test_gate.c -- the FastCGI record reader in front of libfcgi: requests
 * as nginx and the PHP helper send them, split at every byte; every record
 * out of place; management records; the PARAMS check that stands between a
 * caller's length fields and libfcgi's allocations. Every input sits at
 * the end of mapped memory (guard.h).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "gate.h"
#include "guard.h"

/* Append one record (version 1, request id id) with content and pad bytes of padding. */
static size_t rec(uint8_t *out, uint8_t type, unsigned id, const void *content, size_t clen,
                  uint8_t pad)
{
    gate_header(out, type, id, clen, pad);
    if (clen > 0 && content != NULL)
        memcpy(out + GATE_HEADER, content, clen);
    else
        memset(out + GATE_HEADER, 'x', clen);
    memset(out + GATE_HEADER + clen, 0, pad);
    return GATE_HEADER + clen + pad;
}

/* A BEGIN_REQUEST record for id with role and flags. */
static size_t begin(uint8_t *out, unsigned id, int role, int flags)
{
    uint8_t body[8] = {(uint8_t)(role >> 8), (uint8_t)role, (uint8_t)flags};

    return rec(out, GATE_BEGIN_REQUEST, id, body, sizeof body, 0);
}

/* What feeding a buffer through the gate produced. */
struct fed {
    int err;     /* 0, or the gate_error */
    size_t used; /* bytes consumed until STDIN_END (or all) */
    uint8_t params[4096];
    size_t nparams;
    uint8_t body[70000];
    size_t nbody;
    int events[64]; /* enum gate_event, GATE_NONE left out */
    size_t nevents;
    struct gate g;
};

/* Feed p[0..n) (a guarded copy) through a fresh gate, step bytes at a time, until STDIN_END. */
static void feed(const uint8_t *p, size_t n, size_t step, struct fed *f)
{
    uint8_t *copy = guard_place(p, n);
    size_t off = 0;

    memset(f, 0, sizeof *f);
    gate_init(&f->g);
    while (off < n) {
        size_t give = n - off < step ? n - off : step;
        struct gate_chunk ch;
        enum gate_event ev;
        ssize_t r = gate_next(&f->g, copy + off, give, &ev, &ch, &f->err);

        if (r < 0)
            break;
        assert_true(r > 0 && (size_t)r <= give);
        off += (size_t)r;
        if (ev == GATE_PARAMS_DATA) {
            memcpy(f->params + f->nparams, ch.p, ch.len);
            f->nparams += ch.len;
        } else if (ev == GATE_STDIN_DATA) {
            memcpy(f->body + f->nbody, ch.p, ch.len);
            f->nbody += ch.len;
        }
        if (ev != GATE_NONE && f->nevents < 64 &&
            (f->nevents == 0 || f->events[f->nevents - 1] != (int)ev))
            f->events[f->nevents++] = ev;
        if (ev == GATE_STDIN_END)
            break;
    }
    f->used = off;
    guard_release(copy, n);
}

/* A PHP helper's request: BEGIN, PARAMS, empty PARAMS, STDIN, empty STDIN. */
static size_t php_request(uint8_t *buf, unsigned id, int flags)
{
    static const char params[] = "\x0e\x04REQUEST_METHODPOST\x0b\x08SCRIPT_NAME/publish";
    static const char body[] = "{\"users\":[\"42\"],\"event\":\"e\"}";
    size_t n = begin(buf, id, GATE_RESPONDER, flags);

    n += rec(buf + n, GATE_PARAMS, id, params, sizeof params - 1, 3);
    n += rec(buf + n, GATE_PARAMS, id, NULL, 0, 0);
    n += rec(buf + n, GATE_STDIN, id, body, sizeof body - 1, 5);
    n += rec(buf + n, GATE_STDIN, id, NULL, 0, 0);
    return n;
}

static void test_gate_whole_request_split_at_every_byte(void **state)
{
    static const int want[] = {GATE_BEGIN, GATE_PARAMS_DATA, GATE_PARAMS_END, GATE_STDIN_DATA,
                               GATE_STDIN_END};
    uint8_t buf[512];
    size_t n = php_request(buf, 1, 0);
    struct fed f;

    for (size_t step = 1; step <= n; step++) {
        feed(buf, n, step, &f);
        assert_int_equal(f.err, 0);
        assert_int_equal(f.used, n);
        assert_int_equal(f.nevents, 5);
        assert_memory_equal(f.events, want, sizeof want);
        assert_int_equal(f.nparams, 41);
        assert_int_equal(gate_params_check(f.params, f.nparams), 2);
        assert_int_equal(f.nbody, 28);
        assert_memory_equal(f.body, "{\"users\":[\"42\"],\"event\":\"e\"}", 28);
        assert_true(gate_idle(&f.g));
        assert_int_equal(f.g.request_id, 1);
        assert_int_equal(f.g.keep_conn, 0);
    }
}

static void test_gate_stops_at_the_end_of_a_request(void **state)
{
    uint8_t buf[1024];
    size_t one = php_request(buf, 7, GATE_KEEP_CONN);
    size_t n = one + php_request(buf + one, 8, 0);
    struct fed f;

    /* A pipelined second request is left for the next round. */
    feed(buf, n, n, &f);
    assert_int_equal(f.err, 0);
    assert_int_equal(f.used, one);
    assert_int_equal(f.g.request_id, 7);
    assert_int_equal(f.g.keep_conn, 1);
    feed(buf + one, n - one, 3, &f);
    assert_int_equal(f.used, n - one);
    assert_int_equal(f.g.request_id, 8);
    assert_int_equal(f.g.keep_conn, 0);
}

static void test_gate_padding_after_the_last_record_is_still_its_own(void **state)
{
    uint8_t buf[512];
    size_t n = begin(buf, 1, GATE_RESPONDER, 0);
    struct fed f;

    n += rec(buf + n, GATE_PARAMS, 1, NULL, 0, 7);
    n += rec(buf + n, GATE_STDIN, 1, NULL, 0, 255);
    /* The request is whole at STDIN's header; its padding is read before the next request. */
    feed(buf, n, n, &f);
    assert_int_equal(f.err, 0);
    assert_int_equal(f.used, n - 255);
    assert_false(gate_idle(&f.g));
}

static void test_gate_records_out_of_place(void **state)
{
    uint8_t req[64], buf[256];
    size_t b = begin(req, 1, GATE_RESPONDER, 0);
    size_t bp = b + rec(req + b, GATE_PARAMS, 1, NULL, 0, 0);
    static const struct {
        const char *name;
        int err;
    } cases[] = {
        {"HTTP text", GATE_E_VERSION},
        {"version 2", GATE_E_VERSION},
        {"type 0 of a request", GATE_E_TYPE},
        {"STDOUT, a response record", GATE_E_TYPE},
        {"DATA (filter role only)", GATE_E_TYPE},
        {"a BEGIN_REQUEST body of 7 bytes", GATE_E_BEGIN},
        {"the authorizer role", GATE_E_ROLE},
        {"PARAMS before any BEGIN_REQUEST", GATE_E_ORDER},
        {"STDIN before the PARAMS end", GATE_E_ORDER},
        {"PARAMS after their end", GATE_E_ORDER},
        {"a second BEGIN_REQUEST (multiplexing)", GATE_E_ORDER},
        {"PARAMS of another request id", GATE_E_REQUEST_ID},
        {"a request's type with request id 0", GATE_E_TYPE},
        {"GET_VALUES in the middle of a request", GATE_E_ORDER},
    };
    size_t lens[sizeof cases / sizeof cases[0]];
    uint8_t inputs[sizeof cases / sizeof cases[0]][128];
    struct fed f;
    size_t i = 0;

    lens[i] = 18, memcpy(inputs[i++], "GET / HTTP/1.1\r\n\r\n", 18);
    lens[i] = begin(inputs[i], 1, GATE_RESPONDER, 0), inputs[i++][0] = 2;
    lens[i] = rec(inputs[i], 0, 1, NULL, 0, 0), i++;
    lens[i] = rec(inputs[i], GATE_STDOUT, 1, NULL, 0, 0), i++;
    lens[i] = b + rec(inputs[i] + b, 8, 1, NULL, 4, 0), memcpy(inputs[i++], req, b);
    lens[i] = rec(inputs[i], GATE_BEGIN_REQUEST, 1, "\0\1\0\0\0\0\0", 7, 0), i++;
    lens[i] = begin(inputs[i], 1, 2, 0), i++;
    lens[i] = rec(inputs[i], GATE_PARAMS, 1, NULL, 0, 0), i++;
    lens[i] = b + rec(inputs[i] + b, GATE_STDIN, 1, NULL, 0, 0), memcpy(inputs[i++], req, b);
    lens[i] = bp + rec(inputs[i] + bp, GATE_PARAMS, 1, "ab", 2, 0), memcpy(inputs[i++], req, bp);
    lens[i] = b + begin(inputs[i] + b, 2, GATE_RESPONDER, 0), memcpy(inputs[i++], req, b);
    lens[i] = b + rec(inputs[i] + b, GATE_PARAMS, 2, NULL, 0, 0), memcpy(inputs[i++], req, b);
    lens[i] = rec(inputs[i], GATE_STDIN, 0, NULL, 0, 0), i++;
    lens[i] = b + rec(inputs[i] + b, GATE_GET_VALUES, 0, NULL, 0, 0), memcpy(inputs[i++], req, b);
    assert_int_equal(i, sizeof cases / sizeof cases[0]);
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        memcpy(buf, inputs[i], lens[i]);
        feed(buf, lens[i], 1, &f);
        if (f.err != cases[i].err)
            fail_msg("%s: error %d (%s), expected %d", cases[i].name, f.err, gate_strerror(f.err),
                     cases[i].err);
    }
}

static void test_gate_management_records_between_requests(void **state)
{
    uint8_t buf[256];
    size_t n = rec(buf, GATE_GET_VALUES, 0,
                   "\x0e\x00"
                   "FCGI_MAX_CONNS",
                   16, 0);
    struct fed f;

    n += rec(buf + n, 200, 0, NULL, 3, 5);
    n += php_request(buf + n, 1, 0);
    feed(buf, n, 2, &f);
    assert_int_equal(f.err, 0);
    assert_int_equal(f.events[0], GATE_MANAGEMENT);
    assert_int_equal(f.events[1], GATE_BEGIN);
    assert_int_equal(f.used, n);
    /* The last management type read is the unknown one, answered UNKNOWN_TYPE by the caller. */
    assert_int_equal(f.g.mgmt_type, 200);
}

static void test_gate_abort_ends_the_request(void **state)
{
    uint8_t buf[512];
    size_t n = begin(buf, 3, GATE_RESPONDER, GATE_KEEP_CONN);
    struct fed f;

    n += rec(buf + n, GATE_PARAMS, 3,
             "\x01\x01"
             "ab",
             4, 4);
    n += rec(buf + n, GATE_ABORT_REQUEST, 3, NULL, 0, 0);
    n += php_request(buf + n, 4, 0);
    feed(buf, n, 5, &f);
    assert_int_equal(f.err, 0);
    assert_int_equal(f.used, n);
    assert_int_equal(f.events[2], GATE_ABORT);
    assert_int_equal(f.events[3], GATE_BEGIN);
    assert_int_equal(f.g.request_id, 4);
}

static void test_gate_largest_records(void **state)
{
    static uint8_t buf[2 * (8 + 65535 + 255) + 64];
    size_t n = begin(buf, 0xffff, GATE_RESPONDER, 0);
    struct fed f;

    n += rec(buf + n, GATE_PARAMS, 0xffff, NULL, 0, 255);
    n += rec(buf + n, GATE_STDIN, 0xffff, NULL, 65535, 255);
    n += rec(buf + n, GATE_STDIN, 0xffff, NULL, 0, 0);
    feed(buf, n, 4096, &f);
    assert_int_equal(f.err, 0);
    assert_int_equal(f.used, n);
    assert_int_equal(f.g.request_id, 0xffff);
}

static void test_gate_params_check(void **state)
{
    static const struct {
        const char *name;
        const char *bytes;
        size_t len;
        int pairs;
    } cases[] = {
        {"nothing", "", 0, 0},
        {"one short pair",
         "\x01\x02"
         "abc",
         5, 1},
        {"empty name and value", "\x00\x00", 2, 1},
        {"a four-byte value length",
         "\x01\x80\x00\x00\x02"
         "abc",
         8, 1},
        {"a four-byte name length",
         "\x80\x00\x00\x01\x00"
         "a",
         6, 1},
        /* The bomb: a value length of 0x7ffffffe in a stream that then ends. */
        {"value length 0x7ffffffe",
         "\x01\xff\xff\xff\xfe"
         "a",
         6, -1},
        {"name length 0x7fffffff", "\xff\xff\xff\xff\x00", 5, -1},
        {"value one byte past the end",
         "\x01\x03"
         "abc",
         5, -1},
        {"a four-byte length cut short", "\x01\x80\x00", 3, -1},
        {"a name length and no value length", "\x01", 1, -1},
        {"a good pair, then one past the end",
         "\x01\x01"
         "ab\x7f\x7f"
         "ab",
         8, -1},
    };

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint8_t *copy = guard_place(cases[i].bytes, cases[i].len);
        int r = gate_params_check(copy, cases[i].len);

        guard_release(copy, cases[i].len);
        if (r != cases[i].pairs)
            fail_msg("%s: %d pairs, expected %d", cases[i].name, r, cases[i].pairs);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gate_whole_request_split_at_every_byte),
        cmocka_unit_test(test_gate_stops_at_the_end_of_a_request),
        cmocka_unit_test(test_gate_padding_after_the_last_record_is_still_its_own),
        cmocka_unit_test(test_gate_records_out_of_place),
        cmocka_unit_test(test_gate_management_records_between_requests),
        cmocka_unit_test(test_gate_abort_ends_the_request),
        cmocka_unit_test(test_gate_largest_records),
        cmocka_unit_test(test_gate_params_check),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
