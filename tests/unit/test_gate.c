/*
 * test_gate.c -- the API's gate: whether the bytes a caller has sent so far
 * hold a whole FastCGI request (every input checked at the end of mapped
 * memory), and the list of connections waiting for the rest.
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

/* Append one record (version 1) of type with clen content bytes and pad padding. */
static size_t rec(uint8_t *out, uint8_t type, size_t clen, uint8_t pad)
{
    out[0] = 1;
    out[1] = type;
    out[2] = 0;
    out[3] = 1;
    out[4] = (uint8_t)(clen >> 8);
    out[5] = (uint8_t)clen;
    out[6] = pad;
    out[7] = 0;
    memset(out + 8, 'x', clen + pad);
    return 8 + clen + pad;
}

/* gate_scan on a guarded copy of p[0..n). */
static enum gate_result scan(const uint8_t *p, size_t n)
{
    uint8_t *copy = guard_place(p, n);
    enum gate_result r = gate_scan(copy, n);

    guard_release(copy, n);
    return r;
}

/* A PHP helper's request: BEGIN, PARAMS, empty PARAMS, STDIN, empty STDIN. */
static size_t whole_request(uint8_t *buf)
{
    size_t n = 0;

    n += rec(buf + n, 1, 8, 0);
    n += rec(buf + n, 4, 300, 4);
    n += rec(buf + n, 4, 0, 0);
    n += rec(buf + n, 5, 70, 2);
    n += rec(buf + n, 5, 0, 0);
    return n;
}

static void test_gate_whole_request_and_every_prefix(void **state)
{
    uint8_t buf[1024];
    size_t n = whole_request(buf);

    assert_int_equal(scan(buf, n), GATE_COMPLETE);
    /* Every shorter prefix is still arriving; bytes after the end change nothing. */
    for (size_t i = 0; i < n; i++)
        assert_int_equal(scan(buf, i), GATE_PARTIAL);
    buf[n] = 0xff;
    assert_int_equal(scan(buf, n + 1), GATE_COMPLETE);
}

static void test_gate_records_libfcgi_answers_alone(void **state)
{
    uint8_t buf[64];

    assert_int_equal(scan(buf, rec(buf, 9, 0, 0)), GATE_COMPLETE);  /* GET_VALUES */
    assert_int_equal(scan(buf, rec(buf, 2, 0, 0)), GATE_COMPLETE);  /* ABORT_REQUEST */
    assert_int_equal(scan(buf, rec(buf, 9, 10, 0) - 1), GATE_PARTIAL);
}

static void test_gate_not_fastcgi(void **state)
{
    static const struct {
        const char *bytes;
        size_t len;
    } bad[] = {
        {"GET / HTTP/1.1\r\n\r\n", 18},
        {"\x02\x01\x00\x01\x00\x08\x00\x00", 8},  /* version 2 */
        {"\x01\x00\x00\x01\x00\x00\x00\x00", 8},  /* type 0 */
        {"\x01\x06\x00\x01\x00\x00\x00\x00", 8},  /* STDOUT, a response record */
        {"\x01\x0b\x00\x01\x00\x00\x00\x00", 8},  /* UNKNOWN_TYPE */
        {"\x01\xff\x00\x01\x00\x00\x00\x00", 8},
    };
    uint8_t buf[64];
    size_t n;

    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(scan((const uint8_t *)bad[i].bytes, bad[i].len), GATE_BAD);
    /* A bad record after good ones is found too. */
    n = rec(buf, 1, 8, 0);
    memcpy(buf + n, "garbage!", 8);
    assert_int_equal(scan(buf, n + 8), GATE_BAD);
    /* Too short to tell: wait. */
    assert_int_equal(scan((const uint8_t *)"\x02", 1), GATE_PARTIAL);
    assert_int_equal(scan((const uint8_t *)"", 0), GATE_PARTIAL);
}

static void test_gate_largest_records(void **state)
{
    static uint8_t buf[2 * (8 + 65535 + 255) + 8];
    size_t n = rec(buf, 4, 65535, 255);

    assert_int_equal(scan(buf, n), GATE_PARTIAL);
    n += rec(buf + n, 5, 0, 255);
    assert_int_equal(scan(buf, n), GATE_COMPLETE);
    assert_int_equal(scan(buf, n - 1), GATE_PARTIAL);
}

static void test_gate_waiting_list(void **state)
{
    struct gate g;
    struct gate_wait *w;
    size_t n;

    gate_init(&g);
    for (int i = 0; i < 40; i++)
        gate_park(&g, 1000 + i, 0, i * 0.5);
    w = gate_take(&g, &n);
    assert_int_equal(n, 40);
    for (int i = 0; i < 40; i++) {
        assert_int_equal(w[i].fd, 1000 + i);
        assert_true(w[i].since == i * 0.5);
    }
    free(w);
    w = gate_take(&g, &n);
    assert_int_equal(n, 0);
    assert_null(w);
    /* gate_free closes what still waits. */
    gate_park(&g, dup(STDIN_FILENO), 0, 0);
    gate_free(&g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gate_whole_request_and_every_prefix),
        cmocka_unit_test(test_gate_records_libfcgi_answers_alone),
        cmocka_unit_test(test_gate_not_fastcgi),
        cmocka_unit_test(test_gate_largest_records),
        cmocka_unit_test(test_gate_waiting_list),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
