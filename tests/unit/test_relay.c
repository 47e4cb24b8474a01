/*
 * test_relay.c -- libfcgi fed from memory: it parses exactly the params it
 * is given, request after request on one relay (libfcgi's offset is
 * guessed right past every read size and rewind, and a wrong guess fails
 * rather than answers an old request), and the handler's CGI response comes
 * back in FastCGI records for the caller's request id.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <fcgiapp.h>

#include "gate.h"
#include "relay.h"

/* What the handler saw. */
struct seen {
    int nparams; /* envp entries, FCGI_ROLE included */
    char method[32];
    char big[8]; /* the first bytes of BIG, when given */
    size_t big_len;
    const char *reply; /* CGI response to write */
    size_t reply_len;
};

static void handler(void *arg, FCGX_Request *req, struct relay_buf *out)
{
    struct seen *s = arg;
    const char *m = FCGX_GetParam("REQUEST_METHOD", req->envp);
    const char *big = FCGX_GetParam("BIG", req->envp);

    s->nparams = 0;
    for (char **e = req->envp; *e != NULL; e++)
        s->nparams++;
    snprintf(s->method, sizeof s->method, "%s", m != NULL ? m : "");
    s->big_len = big != NULL ? strlen(big) : 0;
    if (big != NULL)
        memcpy(s->big, big, sizeof s->big);
    relay_put(out, s->reply, s->reply_len);
}

/* Append one name-value pair to p; returns bytes written. */
static size_t pair(uint8_t *p, const char *name, const char *value, size_t vlen)
{
    size_t nlen = strlen(name), n = 0;

    p[n++] = (uint8_t)nlen;
    if (vlen < 128) {
        p[n++] = (uint8_t)vlen;
    } else {
        p[n++] = (uint8_t)(0x80 | vlen >> 24);
        p[n++] = (uint8_t)(vlen >> 16);
        p[n++] = (uint8_t)(vlen >> 8);
        p[n++] = (uint8_t)vlen;
    }
    memcpy(p + n, name, nlen);
    memcpy(p + n + nlen, value, vlen);
    return n + nlen + vlen;
}

/* Walk an answer: its STDOUT content into out, and check every record's id and the end. */
static size_t unframe(const uint8_t *p, size_t n, unsigned id, uint8_t *out)
{
    size_t off = 0, got = 0;
    int ended = 0, empty_stdout = 0;

    while (off < n) {
        size_t clen = (size_t)p[off + 4] << 8 | p[off + 5];

        assert_int_equal(p[off], 1);
        assert_int_equal((unsigned)(p[off + 2] << 8 | p[off + 3]), id);
        assert_false(ended);
        if (p[off + 1] == GATE_STDOUT && clen == 0) {
            empty_stdout = 1;
        } else if (p[off + 1] == GATE_STDOUT) {
            assert_false(empty_stdout);
            memcpy(out + got, p + off + 8, clen);
            got += clen;
        } else {
            assert_int_equal(p[off + 1], GATE_END_REQUEST);
            assert_int_equal(clen, 8);
            /* appStatus 0, protocolStatus FCGI_REQUEST_COMPLETE */
            for (int i = 0; i < 8; i++)
                assert_int_equal(p[off + 8 + i], 0);
            ended = 1;
        }
        off += 8 + clen + p[off + 6];
    }
    assert_true(ended && empty_stdout);
    assert_int_equal(off, n);
    return got;
}

static struct relay relay;

static int setup(void **state)
{
    char *cause = NULL;

    assert_int_equal(FCGX_Init(), 0);
    return relay_init(&relay, &cause);
}

static int teardown(void **state)
{
    relay_free(&relay);
    return 0;
}

static void test_relay_parses_the_params_and_frames_the_answer(void **state)
{
    static const char reply[] = "Status: 200 OK\r\n\r\n{\"ok\":true}\n";
    uint8_t params[256], *answer, out[256];
    size_t plen = 0, len;
    struct seen s = {.reply = reply, .reply_len = sizeof reply - 1};

    plen += pair(params + plen, "REQUEST_METHOD", "POST", 4);
    plen += pair(params + plen, "SCRIPT_NAME", "/publish", 8);
    assert_int_equal(relay_run(&relay, 513, params, plen, handler, &s, &answer, &len), 0);
    assert_int_equal(s.nparams, 3);
    assert_string_equal(s.method, "POST");
    assert_int_equal(unframe(answer, len, 513, out), sizeof reply - 1);
    assert_memory_equal(out, reply, sizeof reply - 1);
}

static void test_relay_serves_request_after_request(void **state)
{
    uint8_t params[64], *answer, out[64];
    size_t len;
    struct seen s = {.reply = "Status: 204\r\n\r\n", .reply_len = 15};

    /* Enough requests to pass the point where the memory file is emptied (1 MiB). */
    for (unsigned i = 1; i <= 40000; i++) {
        size_t plen = pair(params, "REQUEST_METHOD", i % 2 ? "GET" : "POST", i % 2 ? 3 : 4);

        assert_int_equal(relay_run(&relay, i % 65535 + 1, params, plen, handler, &s, &answer, &len),
                         0);
        assert_string_equal(s.method, i % 2 ? "GET" : "POST");
        assert_int_equal(s.nparams, 2);
        assert_int_equal(unframe(answer, len, i % 65535 + 1, out), 15);
    }
    /* Past the rewind libfcgi was where the relay expected: it still makes no extra call. */
    assert_int_not_equal(relay.chunk, 0);
}

static void test_relay_requests_of_every_length_around_libfcgi_reads(void **state)
{
    static uint8_t params[40000];
    static char value[40000];
    uint8_t *answer;
    size_t len;
    struct seen s = {.reply = "Status: 204\r\n\r\n", .reply_len = 15};
    unsigned id = 1;

    memset(value, 'x', sizeof value);
    /* Lengths on both sides of one, two and four of libfcgi's reads, past the rewind. */
    for (int round = 0; round < 40; round++) {
        for (size_t k = 1; k <= 4; k *= 2) {
            for (size_t d = 0; d < 40; d++) {
                size_t vlen = k * relay.chunk + d - 20 - 40; /* the request is 40 + vlen */
                size_t plen = pair(params, "BIG", value, vlen);

                assert_int_equal(relay_run(&relay, id, params, plen, handler, &s, &answer, &len),
                                 0);
                assert_int_equal(s.big_len, vlen);
                id = id % 65535 + 1;
            }
        }
    }
    assert_int_not_equal(relay.chunk, 0);
}

static void test_relay_a_wrong_guess_fails_and_never_answers_an_old_request(void **state)
{
    uint8_t params[64], *answer;
    size_t len, plen, at;
    struct seen s = {.reply = "Status: 204\r\n\r\n", .reply_len = 15};

    plen = pair(params, "REQUEST_METHOD", "DELETE", 6);
    at = relay.in_at;
    assert_int_equal(relay_run(&relay, 7, params, plen, handler, &s, &answer, &len), 0);
    assert_string_equal(s.method, "DELETE");
    /* libfcgi's offset moved back onto the request it has just read. */
    assert_int_equal(lseek(relay.in_fd, (off_t)at, SEEK_SET), (off_t)at);
    memset(&s.method, 0, sizeof s.method);
    plen = pair(params, "REQUEST_METHOD", "GET", 3);
    assert_int_equal(relay_run(&relay, 8, params, plen, handler, &s, &answer, &len), -1);
    assert_string_equal(s.method, "");
    /* The next request gets a new memory file and is answered. */
    assert_int_equal(relay_run(&relay, 9, params, plen, handler, &s, &answer, &len), 0);
    assert_string_equal(s.method, "GET");
    assert_int_not_equal(relay.chunk, 0);
}

static void test_relay_no_params_and_params_over_one_record(void **state)
{
    static uint8_t params[70000], out[200000];
    static char value[69000];
    uint8_t *answer;
    size_t plen, len;
    struct seen s = {.reply = "Status: 403\r\n\r\n", .reply_len = 15};

    /* A refused request: no params at all. */
    assert_int_equal(relay_run(&relay, 1, NULL, 0, handler, &s, &answer, &len), 0);
    assert_int_equal(s.nparams, 1);
    assert_string_equal(s.method, "");
    /* 69,000 bytes of params: two PARAMS records, one pair across them. */
    memset(value, 'v', sizeof value);
    plen = pair(params, "BIG", value, sizeof value);
    assert_int_equal(relay_run(&relay, 2, params, plen, handler, &s, &answer, &len), 0);
    assert_int_equal(s.big_len, sizeof value);
    assert_memory_equal(s.big, "vvvvvvvv", 8);
    /* An answer over one STDOUT record comes back in several. */
    s.reply = value;
    s.reply_len = sizeof value;
    assert_int_equal(relay_run(&relay, 3, NULL, 0, handler, &s, &answer, &len), 0);
    assert_int_equal(unframe(answer, len, 3, out), sizeof value);
    assert_memory_equal(out, value, sizeof value);
}

static void test_relay_a_misplaced_offset_at_the_rewind_falls_back_to_seeking(void **state)
{
    uint8_t params[64], *answer;
    size_t len, plen = pair(params, "REQUEST_METHOD", "PUT", 3);
    struct seen s = {.reply = "Status: 204\r\n\r\n", .reply_len = 15};

    assert_int_not_equal(relay.chunk, 0);
    /* The relay believes libfcgi is past the rewind point; libfcgi is not there. */
    relay.in_at = RELAY_REWIND + relay.chunk;
    assert_int_equal(relay_run(&relay, 11, params, plen, handler, &s, &answer, &len), 0);
    assert_string_equal(s.method, "PUT");
    /* It noticed, and now sets the offset itself for every request, across rewinds. */
    assert_int_equal(relay.chunk, 0);
    for (unsigned i = 1; i <= 6000; i++) {
        plen = pair(params, "REQUEST_METHOD", i % 2 ? "GET" : "POST", i % 2 ? 3 : 4);
        assert_int_equal(relay_run(&relay, i, params, plen, handler, &s, &answer, &len), 0);
        assert_string_equal(s.method, i % 2 ? "GET" : "POST");
    }
    assert_true(relay.in_at < RELAY_REWIND);
}

static void test_relay_memory_file_stays_within_its_budget(void **state)
{
    static uint8_t params[66000];
    static char value[65000];
    uint8_t *answer;
    size_t len, plen;
    struct seen s = {.reply = "Status: 204\r\n\r\n", .reply_len = 15};
    struct stat st;

    /* The largest params a caller may send (64 KiB), over and over: 75 MiB through the file. */
    memset(value, 'v', sizeof value);
    plen = pair(params, "BIG", value, sizeof value);
    for (unsigned i = 1; i <= 1200; i++)
        assert_int_equal(relay_run(&relay, i, params, plen, handler, &s, &answer, &len), 0);
    assert_int_equal(s.big_len, sizeof value);
    /* What the file holds in memory: the rewind point and one request past it. */
    assert_int_equal(fstat(relay.in_fd, &st), 0);
    assert_true((size_t)st.st_blocks * 512 <= RELAY_REWIND + plen + 65536);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_relay_parses_the_params_and_frames_the_answer),
        cmocka_unit_test(test_relay_serves_request_after_request),
        cmocka_unit_test(test_relay_no_params_and_params_over_one_record),
        cmocka_unit_test(test_relay_requests_of_every_length_around_libfcgi_reads),
        cmocka_unit_test(test_relay_a_wrong_guess_fails_and_never_answers_an_old_request),
        cmocka_unit_test(test_relay_a_misplaced_offset_at_the_rewind_falls_back_to_seeking),
        cmocka_unit_test(test_relay_memory_file_stays_within_its_budget),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
