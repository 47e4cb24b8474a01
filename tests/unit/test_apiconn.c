/*
 * test_apiconn.c -- one API connection over a socketpair: a request whole
 * or a byte at a time, what is kept and what is dropped (a refused caller,
 * params and bodies over their limits, a flood past the drain cap), bytes
 * that are not FastCGI, management records, pipelined requests on a kept
 * connection, an answer the caller reads late, and a passed deadline.
 */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <fcgiapp.h>

#include "apiconn.h"
#include "cfg.h"
#include "gate.h"
#include "relay.h"

#define TIMEOUT 5.0

static struct relay relay;
static uint8_t rbuf[64 << 10];

/* The handler: answer 200 with the body it was given. */
static void echo(void *arg, FCGX_Request *req, struct relay_buf *out)
{
    struct apiconn *c = arg;
    char head[64];
    int n = snprintf(head, sizeof head, "Status: %d\r\n\r\n", c->refuse ? c->refuse : 200);

    relay_put(out, head, (size_t)n);
    relay_put(out, c->body.p != NULL ? c->body.p : (uint8_t *)"", c->body.len);
}

/* One record into out; returns its length. */
static size_t rec(uint8_t *out, int type, unsigned id, const void *content, size_t clen)
{
    gate_header(out, type, id, clen, 0);
    if (clen > 0)
        memcpy(out + GATE_HEADER, content, clen);
    return GATE_HEADER + clen;
}

/* A request as the PHP helper sends it, with body; keep sets FCGI_KEEP_CONN. */
static size_t request(uint8_t *out, unsigned id, int keep, const char *body)
{
    static const char params[] = "\x0e\x04REQUEST_METHODPOST\x0b\x08SCRIPT_NAME/publish";
    uint8_t begin[8] = {0, GATE_RESPONDER, (uint8_t)(keep ? GATE_KEEP_CONN : 0)};
    size_t n = rec(out, GATE_BEGIN_REQUEST, id, begin, sizeof begin);

    n += rec(out + n, GATE_PARAMS, id, params, sizeof params - 1);
    n += rec(out + n, GATE_PARAMS, id, NULL, 0);
    for (size_t off = 0, len = strlen(body); off < len; off += GATE_MAX_CONTENT)
        n += rec(out + n, GATE_STDIN, id, body + off,
                 len - off < GATE_MAX_CONTENT ? len - off : GATE_MAX_CONTENT);
    n += rec(out + n, GATE_STDIN, id, NULL, 0);
    return n;
}

/* The site's settings an API connection reads. */
static struct cfg_site site_cfg(size_t max_body, uid_t *uids, size_t nuids)
{
    struct cfg_site s;

    memset(&s, 0, sizeof s);
    s.site = "test";
    s.api_max_body = max_body;
    s.uids = uids;
    s.nuids = nuids;
    return s;
}

/* A connection on one end of a socketpair; *peer is the caller's end. */
static struct apiconn *pair_conn(int *peer, long uid)
{
    int sv[2];

    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    assert_int_equal(fcntl(sv[0], F_SETFL, O_NONBLOCK), 0);
    *peer = sv[1];
    return apiconn_new(sv[0], 0, uid, 0, TIMEOUT);
}

/* Read the caller's end until END_REQUEST; returns the STDOUT bytes (static, NUL-ended). */
static const char *read_answer(int peer, unsigned *id)
{
    static char out[1 << 16];
    static uint8_t in[1 << 17];
    size_t n = 0, got = 0, off = 0;

    for (;;) {
        ssize_t r = read(peer, in + n, sizeof in - n);

        assert_true(r > 0);
        n += (size_t)r;
        while (n - off >= 8) {
            size_t clen = (size_t)in[off + 4] << 8 | in[off + 5];

            if (n - off < 8 + clen + in[off + 6])
                break;
            *id = (unsigned)(in[off + 2] << 8 | in[off + 3]);
            if (in[off + 1] == GATE_END_REQUEST) {
                out[got] = '\0';
                return out;
            }
            memcpy(out + got, in + off + 8, clen);
            got += clen;
            off += 8 + clen + in[off + 6];
        }
    }
}

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

static void test_apiconn_whole_request_then_close(void **state)
{
    struct cfg_site site = site_cfg(1024, NULL, 0);
    uint8_t req[512];
    size_t n = request(req, 7, 0, "{\"x\":1}");
    unsigned id = 0;
    int peer;
    struct apiconn *c = pair_conn(&peer, 0);

    assert_int_equal(write(peer, req, n), (ssize_t)n);
    assert_int_equal(apiconn_read(c, &site, rbuf, sizeof rbuf, 0, TIMEOUT), APICONN_READY);
    assert_int_equal(c->refuse, 0);
    assert_int_equal(c->params.len, 41);
    assert_int_equal(c->body.len, 7);
    /* Without FCGI_KEEP_CONN, the answer is written and the connection is done. */
    assert_int_equal(apiconn_serve(c, &site, &relay, echo, c, 0, TIMEOUT), APICONN_CLOSE);
    assert_string_equal(read_answer(peer, &id), "Status: 200\r\n\r\n{\"x\":1}");
    assert_int_equal(id, 7);
    apiconn_free(c);
    close(peer);
}

static void test_apiconn_a_byte_at_a_time(void **state)
{
    struct cfg_site site = site_cfg(1024, NULL, 0);
    uint8_t req[512];
    size_t n = request(req, 1, 0, "{}");
    int peer;
    struct apiconn *c = pair_conn(&peer, 0);

    for (size_t i = 0; i < n; i++) {
        assert_int_equal(write(peer, req + i, 1), 1);
        assert_int_equal(apiconn_read(c, &site, rbuf, sizeof rbuf, 0, TIMEOUT),
                         i + 1 < n ? APICONN_READ : APICONN_READY);
        /* A request in progress has a deadline from its first byte. */
        assert_true(c->deadline == TIMEOUT);
    }
    assert_int_equal(c->body.len, 2);
    apiconn_free(c);
    close(peer);
}

static void test_apiconn_keeps_nothing_of_a_refused_caller(void **state)
{
    uid_t only = 4242;
    struct cfg_site site = site_cfg(1024, &only, 1);
    uint8_t req[512];
    size_t n = request(req, 1, 0, "{\"a\":\"b\"}");
    unsigned id;
    int peer;
    struct apiconn *c = pair_conn(&peer, 1000);

    assert_int_equal(write(peer, req, n), (ssize_t)n);
    assert_int_equal(apiconn_read(c, &site, rbuf, sizeof rbuf, 0, TIMEOUT), APICONN_READY);
    assert_int_equal(c->refuse, 403);
    assert_int_equal(c->read_only, 0);
    assert_int_equal(c->params.len + c->body.len, 0);
    assert_int_equal(apiconn_serve(c, &site, &relay, echo, c, 0, TIMEOUT), APICONN_CLOSE);
    assert_string_equal(read_answer(peer, &id), "Status: 403\r\n\r\n");
    apiconn_free(c);
    close(peer);
}

/* root outside publish_uids is not refused but kept read-only: api.c lets it read only. */
static void test_apiconn_root_outside_the_list_is_read_only(void **state)
{
    uid_t only = 4242;
    struct cfg_site site = site_cfg(1024, &only, 1);
    uint8_t req[512];
    size_t n = request(req, 1, 0, "{\"a\":\"b\"}");
    int peer;
    struct apiconn *c = pair_conn(&peer, 0);

    assert_int_equal(write(peer, req, n), (ssize_t)n);
    assert_int_equal(apiconn_read(c, &site, rbuf, sizeof rbuf, 0, TIMEOUT), APICONN_READY);
    assert_int_equal(c->refuse, 0);
    assert_int_equal(c->read_only, 1);
    assert_true(c->params.len > 0);
    apiconn_free(c);
    close(peer);

    /* Listed, root is an ordinary publisher. */
    only = 0;
    c = pair_conn(&peer, 0);
    assert_int_equal(write(peer, req, n), (ssize_t)n);
    assert_int_equal(apiconn_read(c, &site, rbuf, sizeof rbuf, 0, TIMEOUT), APICONN_READY);
    assert_int_equal(c->refuse + c->read_only, 0);
    apiconn_free(c);
    close(peer);
}

/* Feed a request whose PARAMS or STDIN carry n bytes; returns the step once it ends. */
static enum apiconn_step oversized(struct apiconn *c, const struct cfg_site *site, int peer,
                                   int type, size_t total)
{
    static uint8_t chunk[GATE_HEADER + 60000];
    uint8_t head[64], begin[8] = {0, GATE_RESPONDER, 0};
    size_t n = rec(head, GATE_BEGIN_REQUEST, 1, begin, sizeof begin);
    enum apiconn_step st;

    if (type == GATE_STDIN)
        n += rec(head + n, GATE_PARAMS, 1, NULL, 0);
    assert_int_equal(write(peer, head, n), (ssize_t)n);
    memset(chunk + GATE_HEADER, 'p', 60000);
    /* One pair whose value is the rest, for PARAMS: well formed, just too big. */
    chunk[GATE_HEADER] = 1;
    chunk[GATE_HEADER + 1] = 0xff;
    for (size_t sent = 0; sent < total; sent += 60000) {
        gate_header(chunk, type, 1, 60000, 0);
        assert_int_equal(write(peer, chunk, sizeof chunk), (ssize_t)sizeof chunk);
        st = apiconn_read(c, site, rbuf, sizeof rbuf, 0, TIMEOUT);
        if (st != APICONN_READ)
            return st;
    }
    n = 0;
    if (type == GATE_PARAMS)
        n += rec(head + n, GATE_PARAMS, 1, NULL, 0);
    n += rec(head + n, GATE_STDIN, 1, NULL, 0);
    assert_int_equal(write(peer, head, n), (ssize_t)n);
    return apiconn_read(c, site, rbuf, sizeof rbuf, 0, TIMEOUT);
}

static void test_apiconn_params_and_body_over_their_limits(void **state)
{
    struct cfg_site site = site_cfg(1024, NULL, 0);
    int peer;
    struct apiconn *c = pair_conn(&peer, 0);

    assert_int_equal(oversized(c, &site, peer, GATE_PARAMS, 200000), APICONN_READY);
    assert_int_equal(c->refuse, 431);
    assert_int_equal(c->params.len, 0);
    assert_true(c->dropped >= 200000);
    apiconn_free(c);
    close(peer);
    c = pair_conn(&peer, 0);
    assert_int_equal(oversized(c, &site, peer, GATE_STDIN, 120000), APICONN_READY);
    assert_int_equal(c->refuse, 413);
    assert_int_equal(c->body.len, 0);
    apiconn_free(c);
    close(peer);
}

static void test_apiconn_a_body_of_exactly_the_limit_allocates_no_more(void **state)
{
    static char body[3001];
    static uint8_t req[4096];
    struct cfg_site site = site_cfg(3000, NULL, 0);
    int peer;
    struct apiconn *c = pair_conn(&peer, 0);
    size_t n;

    /* Grown by doubling (1024, 2048, ...), but never past the budget and its NUL. */
    memset(body, 'b', 3000);
    n = request(req, 1, 0, body);
    assert_int_equal(write(peer, req, n), (ssize_t)n);
    assert_int_equal(apiconn_read(c, &site, rbuf, sizeof rbuf, 0, TIMEOUT), APICONN_READY);
    assert_int_equal(c->refuse, 0);
    assert_int_equal(c->body.len, 3000);
    assert_true(c->body.cap <= 3001);
    apiconn_free(c);
    close(peer);
}

static void test_apiconn_closes_past_the_drain_cap(void **state)
{
    struct cfg_site site = site_cfg(1024, NULL, 0);
    int peer;
    struct apiconn *c = pair_conn(&peer, 0);

    assert_int_equal(oversized(c, &site, peer, GATE_STDIN, APICONN_DRAIN_MAX + 200000),
                     APICONN_CLOSE);
    assert_int_equal(c->fail, 413);
    apiconn_free(c);
    close(peer);
}

static void test_apiconn_bytes_that_are_not_fastcgi(void **state)
{
    struct cfg_site site = site_cfg(1024, NULL, 0);
    int peer;
    struct apiconn *c = pair_conn(&peer, 0);

    assert_int_equal(write(peer, "GET / HTTP/1.1\r\n\r\n", 18), 18);
    assert_int_equal(apiconn_read(c, &site, rbuf, sizeof rbuf, 0, TIMEOUT), APICONN_CLOSE);
    assert_int_equal(c->fail, 400);
    assert_non_null(c->fail_why);
    apiconn_free(c);
    close(peer);
}

static void test_apiconn_answers_management_records_and_goes_on(void **state)
{
    struct cfg_site site = site_cfg(1024, NULL, 0);
    uint8_t buf[64];
    size_t n = rec(buf, GATE_GET_VALUES, 0, NULL, 0);
    int peer;
    struct apiconn *c = pair_conn(&peer, 0);

    assert_int_equal(write(peer, buf, n), (ssize_t)n);
    assert_int_equal(apiconn_read(c, &site, rbuf, sizeof rbuf, 0, TIMEOUT), APICONN_READ);
    assert_int_equal(read(peer, buf, sizeof buf), 8);
    assert_int_equal(buf[1], GATE_GET_VALUES_RESULT);
    assert_int_equal(buf[2] << 8 | buf[3], 0);
    apiconn_free(c);
    close(peer);
}

static void test_apiconn_pipelined_requests_on_a_kept_connection(void **state)
{
    struct cfg_site site = site_cfg(1024, NULL, 0);
    uint8_t req[1024];
    size_t n = request(req, 1, 1, "first");
    unsigned id;
    int peer;
    struct apiconn *c = pair_conn(&peer, 0);

    n += request(req + n, 2, 1, "second");
    assert_int_equal(write(peer, req, n), (ssize_t)n);
    assert_int_equal(apiconn_read(c, &site, rbuf, sizeof rbuf, 0, TIMEOUT), APICONN_READY);
    /* The second was read with the first: once the first is answered, it is whole too. */
    assert_int_equal(apiconn_serve(c, &site, &relay, echo, c, 0, TIMEOUT), APICONN_READY);
    assert_string_equal(read_answer(peer, &id), "Status: 200\r\n\r\nfirst");
    assert_int_equal(id, 1);
    assert_int_equal(apiconn_serve(c, &site, &relay, echo, c, 0, TIMEOUT), APICONN_READ);
    assert_string_equal(read_answer(peer, &id), "Status: 200\r\n\r\nsecond");
    assert_int_equal(id, 2);
    /* Idle between requests: no deadline. */
    assert_true(c->deadline == 0);
    apiconn_free(c);
    close(peer);
}

static void test_apiconn_an_answer_read_late(void **state)
{
    static char body[200000];
    struct cfg_site site = site_cfg(sizeof body, NULL, 0);
    static uint8_t req[sizeof body + 4096];
    size_t n;
    unsigned id;
    int peer, small = 4096;
    struct apiconn *c = pair_conn(&peer, 0);

    memset(body, 'b', sizeof body - 1);
    n = request(req, 3, 1, body);
    setsockopt(c->fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
    for (size_t off = 0; off < n;) {
        ssize_t w = write(peer, req + off, n - off);

        assert_true(w > 0);
        off += (size_t)w;
        if (off < n)
            assert_int_equal(apiconn_read(c, &site, rbuf, sizeof rbuf, 0, TIMEOUT), APICONN_READ);
    }
    assert_int_equal(apiconn_read(c, &site, rbuf, sizeof rbuf, 0, TIMEOUT), APICONN_READY);
    /* The socket takes part of the answer: the rest waits, and the caller is not read. */
    assert_int_equal(apiconn_serve(c, &site, &relay, echo, c, 0, TIMEOUT), APICONN_WRITE);
    assert_true(c->out_len > c->out_off);
    assert_true(c->deadline == TIMEOUT);
    assert_int_equal(fcntl(peer, F_SETFL, O_NONBLOCK), 0);
    for (int i = 0; i < 1000 && c->out_off < c->out_len; i++) {
        static uint8_t sink[1 << 16];
        ssize_t r = read(peer, sink, sizeof sink);

        (void)r;
        apiconn_write(c, &site, 0, TIMEOUT);
    }
    assert_true(c->out == NULL);
    (void)id;
    apiconn_free(c);
    close(peer);
}

static void test_apiconn_a_passed_deadline_closes(void **state)
{
    struct cfg_site site = site_cfg(1024, NULL, 0);
    int peer;
    struct apiconn *c = pair_conn(&peer, 0);

    assert_int_equal(write(peer, "\x01\x01", 2), 2);
    assert_int_equal(apiconn_read(c, &site, rbuf, sizeof rbuf, 0, TIMEOUT), APICONN_READ);
    assert_true(apiconn_mid_request(c));
    atomic_store(&c->expired, 1);
    assert_int_equal(apiconn_read(c, &site, rbuf, sizeof rbuf, 0, TIMEOUT), APICONN_CLOSE);
    apiconn_free(c);
    close(peer);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_apiconn_whole_request_then_close),
        cmocka_unit_test(test_apiconn_a_byte_at_a_time),
        cmocka_unit_test(test_apiconn_keeps_nothing_of_a_refused_caller),
        cmocka_unit_test(test_apiconn_root_outside_the_list_is_read_only),
        cmocka_unit_test(test_apiconn_params_and_body_over_their_limits),
        cmocka_unit_test(test_apiconn_a_body_of_exactly_the_limit_allocates_no_more),
        cmocka_unit_test(test_apiconn_closes_past_the_drain_cap),
        cmocka_unit_test(test_apiconn_bytes_that_are_not_fastcgi),
        cmocka_unit_test(test_apiconn_answers_management_records_and_goes_on),
        cmocka_unit_test(test_apiconn_pipelined_requests_on_a_kept_connection),
        cmocka_unit_test(test_apiconn_an_answer_read_late),
        cmocka_unit_test(test_apiconn_a_passed_deadline_closes),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
