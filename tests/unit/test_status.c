/*
 * test_status.c -- `herald status` (src/status.c, src/status_table.c)
 * without a daemon: the options, the checks on an answer (CGI, status,
 * JSON), the figures read from a /stats answer and what is refused, the
 * table and the JSON printed, and the exchange over a socketpair: an
 * answer in pieces, a peer that says nothing (the deadline), one that
 * hangs up, one that sends garbage, and a socket that is not there.
 *
 * Both files are included, so their static functions can be called.
 */
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

#include "../../src/status.c"
#include "../../src/status_table.c"

/* A /stats answer with every figure the table reads; %s is put in its "last_minute" place. */
#define ANSWER                                                                                     \
    "{\"ok\":true,\"uptime\":3725,\"connections\":3,\"users\":2,\"published\":7,"                  \
    "\"delivered\":21,\"slow_consumers\":1,"                                                       \
    "\"handshakes_refused\":{\"origin\":0,\"bad_token\":2},"                                       \
    "\"protocol_errors\":{\"1002\":1,\"1007\":0},"                                                 \
    "\"api_errors\":{\"400\":0,\"404\":4},"                                                        \
    "\"site\":\"a\",%s\"channels\":5,\"subscriptions\":6,"                                         \
    "\"rpc\":{\"calls\":9,\"failed\":2,\"dropped\":0}}"
#define MINUTE "\"last_minute\":{\"published\":7,\"delivered\":21,\"seconds\":60},"

/* ANSWER with `minute` in place (MINUTE, or "" for a daemon without it), parsed. */
static json_t *answer(const char *minute)
{
    char text[1024];
    json_t *o;

    snprintf(text, sizeof text, ANSWER, minute);
    o = json_loads(text, 0, NULL);
    assert_non_null(o);
    return o;
}

/* Uptimes are one word each, for the table. */
static void test_status_uptime_is_one_word(void **state)
{
    static const struct {
        long long s;
        const char *want;
    } cases[] = {
        {0, "0s"},        {59, "59s"},      {60, "1m00s"},
        {3599, "59m59s"}, {3600, "1h00m"},  {86399, "23h59m"},
        {86400, "1d00h"}, {90061, "1d01h"}, {8640000, "100d00h"},
    };
    char buf[32];

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        format_uptime(buf, sizeof buf, cases[i].s);
        assert_string_equal(buf, cases[i].want);
    }
}

/* Every figure is read, the errors added up, and their kinds told in order. */
static void test_status_figures_of_an_answer(void **state)
{
    json_t *o = answer(MINUTE);
    struct figures f;
    char *error = NULL;

    assert_int_equal(read_figures(o, &f, &error), 0);
    assert_null(error);
    assert_int_equal(f.uptime, 3725);
    assert_int_equal(f.connections, 3);
    assert_int_equal(f.users, 2);
    assert_int_equal(f.channels, 5);
    assert_int_equal(f.subscriptions, 6);
    assert_int_equal(f.published, 7);
    assert_int_equal(f.delivered, 21);
    assert_int_equal(f.minute_published, 7);
    assert_int_equal(f.minute_delivered, 21);
    assert_int_equal(f.minute_seconds, 60);
    assert_int_equal(f.errors, 4 + 2 + 1 + 1 + 2);
    assert_string_equal(f.details, "api errors 404: 4; handshakes refused bad_token: 2; "
                                   "protocol closes 1002: 1; slow consumers 1; rpc failed 2");
    free(f.details);
    json_decref(o);
}

/* A daemon without "last_minute" still gets a row, its rates "-". */
static void test_status_figures_without_the_last_minute(void **state)
{
    json_t *o = answer("");
    struct figures f;
    char *error = NULL, *rate;

    assert_int_equal(read_figures(o, &f, &error), 0);
    assert_int_equal(f.minute_seconds, 0);
    rate = format_rate(f.minute_published, f.minute_seconds);
    assert_string_equal(rate, "-");
    free(rate);
    rate = format_rate(7, 60);
    assert_string_equal(rate, "0.12");
    free(rate);
    free(f.details);
    json_decref(o);
}

/* A figure that is missing or not a count makes the answer malformed, said with the field. */
static void test_status_figures_refused(void **state)
{
    static const struct {
        const char *text;
        const char *error;
    } cases[] = {
        {"{\"ok\":true}", "malformed answer: \"uptime\" is not a count"},
        {"{\"ok\":true,\"uptime\":1,\"connections\":-1}",
         "malformed answer: \"connections\" is not a count"},
        {"{\"ok\":true,\"uptime\":1,\"connections\":1,\"users\":1.5}",
         "malformed answer: \"users\" is not a count"},
        {"{\"ok\":true,\"uptime\":1,\"connections\":1,\"users\":1,\"channels\":1,"
         "\"subscriptions\":1,\"published\":1,\"delivered\":\"1\"}",
         "malformed answer: \"delivered\" is not a count"},
    };
    struct figures f;

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *o = json_loads(cases[i].text, 0, NULL);
        char *error = NULL;

        assert_int_equal(read_figures(o, &f, &error), -1);
        assert_string_equal(error, cases[i].error);
        free(error);
        json_decref(o);
    }
}

/* The same answer with one part broken: last_minute, then each error count. */
static void test_status_figures_refused_parts(void **state)
{
    static const struct {
        const char *key;
        const char *value;
        const char *error;
    } cases[] = {
        {"last_minute", "{\"published\":1,\"delivered\":1,\"seconds\":0}",
         "malformed answer: \"last_minute\" is not three counts"},
        {"last_minute", "[]", "malformed answer: \"last_minute\" is not three counts"},
        {"api_errors", "[1]", "malformed answer: the error counts are not counts"},
        {"api_errors", "{\"404\":\"x\"}", "malformed answer: the error counts are not counts"},
        {"protocol_errors", "{\"1002\":-3}", "malformed answer: the error counts are not counts"},
        {"rpc", "{\"failed\":1}", "malformed answer: the error counts are not counts"},
        {"slow_consumers", "null", "malformed answer: the error counts are not counts"},
    };
    struct figures f;

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *o = answer(MINUTE);
        char *error = NULL;

        json_object_set_new(o, cases[i].key, json_loads(cases[i].value, JSON_DECODE_ANY, NULL));
        assert_int_equal(read_figures(o, &f, &error), -1);
        assert_string_equal(error, cases[i].error);
        free(error);
        json_decref(o);
    }
}

/* What a FastCGI answer's stdout may be, and what each is called when it is wrong. */
static void test_status_check_answer(void **state)
{
    static const struct {
        const char *out;
        int protocol_status;
        const char *error; /* NULL: accepted */
    } cases[] = {
        {"Status: 200 OK\r\nContent-Type: application/json\r\n\r\n{\"ok\":true}", 0, NULL},
        {"Content-Type: application/json\r\n\r\n{\"ok\":true,\"n\":1}", 0, NULL},
        {"{\"ok\":true}", 0, "malformed answer: not a CGI answer (no headers, blank line, body)"},
        {"Status: 200 OK\r\n\r\n{\"ok\":true}", 2, "the request was not served (FastCGI status 2)"},
        {"Status: 403 Forbidden\r\n\r\n{\"ok\":false,\"error\":\"uid 0 may not\"}", 0,
         "refused (403): uid 0 may not: run as root or as a user the site's publish_uids lists"},
        {"Status: 503 Service Unavailable\r\n\r\noverloaded\r\nmore", 0,
         "herald answered 503: overloaded"},
        {"Status: 200 OK\r\n\r\n{nope", 0, "malformed answer: not JSON ("},
        {"Status: 200 OK\r\n\r\n[1,2]", 0, "malformed answer: not a JSON object with \"ok\": true"},
        {"Status: 200 OK\r\n\r\n{\"ok\":false}", 0,
         "malformed answer: not a JSON object with \"ok\": true"},
        {"Status: 200 OK\r\n\r\n{\"ok\":true,\"ok\":true}", 0, "malformed answer: not JSON ("},
    };

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *error = NULL;
        json_t *o = status_check_answer(cases[i].out, strlen(cases[i].out),
                                        cases[i].protocol_status, &error);

        if (cases[i].error == NULL) {
            assert_non_null(o);
            assert_null(error);
        } else {
            assert_null(o);
            assert_non_null(error);
            assert_true(strncmp(error, cases[i].error, strlen(cases[i].error)) == 0);
        }
        json_decref(o);
        free(error);
    }
}

/* The options, and every way to get them wrong (usage errors, 2). */
static void test_status_parse_args(void **state)
{
    static const struct {
        const char *argv[8];
        int want;
    } cases[] = {
        {{"status"}, 0},
        {{"status", "--help"}, 1},
        {{"status", "-c", "x.ini", "--site", "a", "--json", "--timeout", "0.5"}, 0},
        {{"status", "--config=x.ini", "--site=a", "--timeout=2"}, 0},
        {{"status", "--bogus"}, STATUS_USAGE},
        {{"status", "extra"}, STATUS_USAGE},
        {{"status", "-c"}, STATUS_USAGE},
        {{"status", "-c", ""}, STATUS_USAGE},
        {{"status", "--timeout", "0"}, STATUS_USAGE},
        {{"status", "--timeout", "3601"}, STATUS_USAGE},
        {{"status", "--timeout", "nan"}, STATUS_USAGE},
        {{"status", "--timeout", "1s"}, STATUS_USAGE},
        {{"status", "--sites", "a"}, STATUS_USAGE},
        {{"status", "--json=1"}, STATUS_USAGE},
    };
    struct status_opts o;

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int argc = 0;

        while (argc < 8 && cases[i].argv[argc] != NULL)
            argc++;
        assert_int_equal(status_parse_args(argc, (char **)cases[i].argv, &o), cases[i].want);
    }
    status_parse_args(8, (char **)cases[2].argv, &o);
    assert_string_equal(o.file, "x.ini");
    assert_string_equal(o.site, "a");
    assert_true(o.json);
    assert_true(o.timeout == 0.5);
    status_parse_args(4, (char **)cases[3].argv, &o);
    assert_string_equal(o.file, "x.ini");
    assert_true(o.timeout == 2.0);
    assert_false(o.json);
    status_parse_args(1, (char **)cases[0].argv, &o);
    assert_null(o.file);
    assert_null(o.site);
    assert_true(o.timeout == STATUS_TIMEOUT);
}

/* What f printed, NUL-terminated (malloc'd), f closed. */
static char *printed(FILE *f, char **buf)
{
    assert_int_equal(fclose(f), 0);
    return *buf;
}

/* A site that answered and one that did not: the rows, the legend, the kinds of errors. */
static void test_status_table(void **state)
{
    json_t *o = answer(MINUTE);
    struct status_table_site sites[] = {
        {"shop", o, NULL},
        {"blog", NULL, xstrdup("no such socket /run/herald/blog.sock: is herald running?")},
    };
    char *buf = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&buf, &size);

    assert_int_equal(status_table_print(f, sites, 2), 1);
    assert_string_equal(
        printed(f, &buf),
        "SITE  UPTIME  CONNS  USERS  CHANNELS  SUBS  PUBLISH/S  PUBLISHED  DELIVER/S  DELIVERED  "
        "ERRORS\n"
        "shop   1h02m      3      2         5     6       0.12          7       0.35         21  "
        "    10\n"
        "blog  error: no such socket /run/herald/blog.sock: is herald running?\n"
        "\n"
        "PUBLISH/S, DELIVER/S: messages published, frames delivered a second, over the last "
        "minute.\n"
        "PUBLISHED, DELIVERED: since start. ERRORS: API errors, refused handshakes, protocol\n"
        "closes, slow consumers, RPC failures; by kind below.\n"
        "shop errors: api errors 404: 4; handshakes refused bad_token: 2; protocol closes 1002: "
        "1; slow consumers 1; rpc failed 2\n");
    free(buf);
    free(sites[1].error);
    json_decref(o);
}

/* An answer without a figure becomes that site's error; with no row of figures, no legend. */
static void test_status_table_malformed_answer(void **state)
{
    json_t *o = json_loads("{\"ok\":true,\"uptime\":1}", 0, NULL);
    struct status_table_site site = {"a", o, NULL};
    char *buf = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&buf, &size);

    assert_int_equal(status_table_print(f, &site, 1), 1);
    assert_string_equal(printed(f, &buf),
                        "SITE  UPTIME  CONNS  USERS  CHANNELS  SUBS  PUBLISH/S  PUBLISHED  "
                        "DELIVER/S  DELIVERED  ERRORS\n"
                        "a     error: malformed answer: \"connections\" is not a count\n");
    free(buf);
    free(site.error);
    json_decref(o);
}

/* --json: each answer as it came, or ok false with the reason. */
static void test_status_json(void **state)
{
    json_t *o = answer(MINUTE), *all;
    struct status_table_site sites[] = {{"shop", o, NULL}, {"blog", NULL, "timed out"}};
    char *buf = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&buf, &size);

    assert_int_equal(status_table_print_json(f, sites, 2), 1);
    all = json_loads(printed(f, &buf), 0, NULL);
    assert_non_null(all);
    assert_true(json_equal(json_object_get(all, "shop"), o));
    assert_string_equal(json_string_value(json_object_get(json_object_get(all, "blog"), "error")),
                        "timed out");
    assert_true(json_is_false(json_object_get(json_object_get(all, "blog"), "ok")));
    json_decref(all);
    free(buf);
    buf = NULL;
    f = open_memstream(&buf, &size);
    assert_int_equal(status_table_print_json(f, sites, 1), 0);
    all = json_loads(printed(f, &buf), 0, NULL);
    assert_int_equal(json_object_size(all), 1);
    json_decref(all);
    json_decref(o);
    free(buf);
}

/* A site reading from one end of a socketpair; the test writes to the other. */
static void pair_site(struct status_site *s, int *peer)
{
    static struct cfg_site cfg = {.site = "t", .api_socket = "/nonexistent/t.sock"};
    int sv[2];

    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
    memset(s, 0, sizeof *s);
    s->cfg = &cfg;
    s->fd = sv[0];
    s->phase = STATUS_RECEIVING;
    fcgic_parser_init(&s->parser, STATUS_REQUEST_ID, STATUS_MAX_ANSWER);
    *peer = sv[1];
}

/* A FastCGI record of type t for request 1 with content c of len bytes. */
static size_t record(char *out, int t, const char *c, size_t len)
{
    const unsigned char h[8] = {
        1, (unsigned char)t, 0, 1, (unsigned char)(len >> 8), (unsigned char)len, 0, 0};

    memcpy(out, h, 8);
    memcpy(out + 8, c, len);
    return 8 + len;
}

/* An answer that comes whole is taken; the exchange ends as soon as it is in. */
static void test_status_exchange_takes_an_answer(void **state)
{
    static const char body[] = "Status: 200 OK\r\n\r\n{\"ok\":true,\"site\":\"t\"}";
    char wire[256];
    size_t n = record(wire, 6, body, sizeof body - 1);
    struct status_site s;
    int peer;
    double t0;

    n += record(wire + n, 3, "\0\0\0\0\0\0\0\0", 8);
    pair_site(&s, &peer);
    assert_int_equal(write(peer, wire, n), (ssize_t)n);
    t0 = status_now();
    status_exchange(&s, 1, 5.0);
    assert_true(status_now() - t0 < 4.0);
    assert_null(s.error);
    assert_string_equal(json_string_value(json_object_get(s.answer, "site")), "t");
    assert_int_equal(s.fd, -1);
    status_site_free(&s);
    close(peer);
}

/* A peer that says nothing: the deadline ends it; one that hangs up or sends garbage: said. */
static void test_status_exchange_failures(void **state)
{
    struct status_site s;
    int peer;

    pair_site(&s, &peer);
    status_exchange(&s, 1, 0.2);
    assert_string_equal(s.error, "no answer within 0.2 s: is herald stuck?");
    status_site_free(&s);
    close(peer);

    pair_site(&s, &peer);
    close(peer);
    status_exchange(&s, 1, 5.0);
    assert_string_equal(s.error, "the connection closed before the answer was complete");
    status_site_free(&s);

    pair_site(&s, &peer);
    assert_int_equal(write(peer, "HTTP/1.1 200 OK\r\n\r\n\x01\x02", 21), 21);
    status_exchange(&s, 1, 5.0);
    assert_string_equal(s.error, "malformed answer: not FastCGI");
    status_site_free(&s);
    close(peer);
}

/* A socket that is not there, and a path too long for one, fail before any exchange. */
static void test_status_open_failures(void **state)
{
    struct cfg_site missing = {.site = "m", .api_socket = "/nonexistent/herald-test/m.sock"};
    struct cfg_site longer = {.site = "l"};
    char path[200];
    struct status_site s = {.cfg = &missing, .fd = -1};

    status_open(&s);
    assert_int_equal(s.phase, STATUS_FINISHED);
    assert_string_equal(s.error,
                        "no such socket /nonexistent/herald-test/m.sock: is herald running?");
    status_site_free(&s);

    memset(path, 'x', sizeof path - 1);
    path[0] = '/';
    path[sizeof path - 1] = '\0';
    longer.api_socket = path;
    s = (struct status_site){.cfg = &longer, .fd = -1};
    status_open(&s);
    assert_int_equal(s.phase, STATUS_FINISHED);
    assert_true(strstr(s.error, "is too long") != NULL);
    status_site_free(&s);
}

/* A peer's text in a message is made printable and cut short. */
static void test_status_printable(void **state)
{
    char *m = xstrdup("bad\x01\x1b[31mred\x7f");
    char *longer = xcalloc(1, 1000);

    assert_string_equal(status_printable(m), "bad??[31mred?");
    memset(longer, 'a', 999);
    status_printable(longer);
    assert_int_equal(strlen(longer), STATUS_MAX_MESSAGE);
    assert_string_equal(longer + STATUS_MAX_MESSAGE - 3, "...");
    free(m);
    free(longer);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_status_uptime_is_one_word),
        cmocka_unit_test(test_status_figures_of_an_answer),
        cmocka_unit_test(test_status_figures_without_the_last_minute),
        cmocka_unit_test(test_status_figures_refused),
        cmocka_unit_test(test_status_figures_refused_parts),
        cmocka_unit_test(test_status_check_answer),
        cmocka_unit_test(test_status_parse_args),
        cmocka_unit_test(test_status_table),
        cmocka_unit_test(test_status_table_malformed_answer),
        cmocka_unit_test(test_status_json),
        cmocka_unit_test(test_status_exchange_takes_an_answer),
        cmocka_unit_test(test_status_exchange_failures),
        cmocka_unit_test(test_status_open_failures),
        cmocka_unit_test(test_status_printable),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
