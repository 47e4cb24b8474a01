/*
 * test_handshake.c -- unit tests for the WebSocket opening handshake
 * (handshake.c), on heads parsed by http.c.
 *
 * Covers:     every refusal of hs_check and the order the checks run in,
 *             the Origin allow-list (exact, "*", empty), where the token
 *             comes from (query or subprotocol) and when "herald" is echoed,
 *             the RFC 6455 1.3 accept key example, the exact bytes of the
 *             101 answer and of every refusal, and the status and name of
 *             every reason.
 * Invariants: every request head sits at the end of a page followed by a
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
#include "handshake.h"

#define HOST "Host: example.com\r\n"
#define UPGRADE "Upgrade: websocket\r\n"
#define CONNECTION "Connection: Upgrade\r\n"
#define KEY "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
#define VERSION "Sec-WebSocket-Version: 13\r\n"
#define GOOD HOST UPGRADE CONNECTION KEY VERSION
#define GET "GET /ws HTTP/1.1\r\n"

/* The policies the cases run against. */
enum { LIST, ANY, STAR };

static const char *const list_origins[] = {"https://example.com", "http://localhost:8080"};
static const char *const star_origins[] = {"https://example.com", "*"};

static const struct hs_policy policies[] = {
    [LIST] = {"/ws", list_origins, 2},
    [ANY] = {"/ws", NULL, 0},
    [STAR] = {"/ws", star_origins, 2},
};

/* One hs_check case: a head, a policy, and what must come out. */
struct check_case {
    const char *what;
    const char *head;
    int policy;
    enum hs_reason want;
    const char *token; /* NULL: none */
    int token_in_query;
    int select_protocol;
};

/* A refusal under the LIST policy; an acceptance with no token; one with a token or protocol. */
#define REFUSED(what, head, reason)                                                                \
    {                                                                                              \
        what, head, LIST, reason, NULL, 0, 0                                                       \
    }
#define ACCEPTED(what, head, policy)                                                               \
    {                                                                                              \
        what, head, policy, HS_OK, NULL, 0, 0                                                      \
    }
#define TOKEN(what, head, token, in_query, sel)                                                    \
    {                                                                                              \
        what, head, LIST, HS_OK, token, in_query, sel                                              \
    }
#define KEY_IS(k) GET HOST UPGRADE CONNECTION "Sec-WebSocket-Key: " k "\r\n" VERSION "\r\n"
#define VERSION_IS(v) GET HOST UPGRADE CONNECTION KEY "Sec-WebSocket-Version:" v "\r\n\r\n"
#define ORIGIN_IS(o) GET GOOD "Origin:" o "\r\n\r\n"
#define PROTOCOL_IS(p) GET GOOD "Sec-WebSocket-Protocol: " p "\r\n\r\n"

static const struct check_case check_cases[] = {
    /* the plain upgrade request */
    ACCEPTED("good", GET GOOD "\r\n", LIST),
    /* tokens are case-insensitive, lists are lists, values are trimmed */
    ACCEPTED("mixed case tokens",
             GET HOST "upgrade: WebSocket\r\nconnection: keep-alive, UPGRADE\r\n" KEY VERSION
                      "\r\n",
             LIST),
    ACCEPTED("connection over two lines",
             GET HOST UPGRADE "Connection: keep-alive\r\nConnection: upgrade\r\n" KEY VERSION
                              "\r\n",
             LIST),
    ACCEPTED("version with blanks", VERSION_IS("  13 "), LIST),
    ACCEPTED("query on the path", "GET /ws?x=1 HTTP/1.1\r\n" GOOD "\r\n", LIST),

    /* 405: not GET (methods are case-sensitive) */
    REFUSED("post", "POST /ws HTTP/1.1\r\n" GOOD "\r\n", HS_BAD_METHOD),
    REFUSED("lower-case get", "get /ws HTTP/1.1\r\n" GOOD "\r\n", HS_BAD_METHOD),
    REFUSED("head", "HEAD /ws HTTP/1.1\r\n" GOOD "\r\n", HS_BAD_METHOD),
    REFUSED("gets", "GETS /ws HTTP/1.1\r\n" GOOD "\r\n", HS_BAD_METHOD),
    /* 400: not HTTP/1.1 */
    REFUSED("http/1.0", "GET /ws HTTP/1.0\r\n" GOOD "\r\n", HS_BAD_REQUEST),
    REFUSED("http/1.2", "GET /ws HTTP/1.2\r\n" GOOD "\r\n", HS_BAD_REQUEST),
    /* 404: another path (exact, case-sensitive) */
    REFUSED("root", "GET / HTTP/1.1\r\n" GOOD "\r\n", HS_NOT_FOUND),
    REFUSED("trailing slash", "GET /ws/ HTTP/1.1\r\n" GOOD "\r\n", HS_NOT_FOUND),
    REFUSED("path case", "GET /WS HTTP/1.1\r\n" GOOD "\r\n", HS_NOT_FOUND),
    REFUSED("longer path", "GET /wsx HTTP/1.1\r\n" GOOD "\r\n", HS_NOT_FOUND),
    /* absolute form (RFC 9112 3.2.2): the path inside decides */
    ACCEPTED("absolute form", "GET http://example.com/ws HTTP/1.1\r\n" GOOD "\r\n", LIST),
    ACCEPTED("absolute form with port and query",
             "GET https://example.com:8443/ws?x=1 HTTP/1.1\r\n" GOOD "\r\n", LIST),
    REFUSED("absolute form, other path", "GET http://example.com/wsx HTTP/1.1\r\n" GOOD "\r\n",
            HS_NOT_FOUND),
    REFUSED("absolute form, no path", "GET http://example.com HTTP/1.1\r\n" GOOD "\r\n",
            HS_NOT_FOUND),
    /* 400: HTTP/1.1 without Host (RFC 9112 3.2) */
    REFUSED("no host", "GET /ws HTTP/1.1\r\n" UPGRADE CONNECTION KEY VERSION "\r\n",
            HS_BAD_REQUEST),
    /* 400 no_upgrade: Upgrade or Connection missing or without the token */
    REFUSED("no upgrade", GET HOST CONNECTION KEY VERSION "\r\n", HS_NO_UPGRADE),
    REFUSED("upgrade h2c", GET HOST "Upgrade: h2c\r\n" CONNECTION KEY VERSION "\r\n",
            HS_NO_UPGRADE),
    REFUSED("upgrade lookalike", GET HOST "Upgrade: websocket2\r\n" CONNECTION KEY VERSION "\r\n",
            HS_NO_UPGRADE),
    REFUSED("no connection", GET HOST UPGRADE KEY VERSION "\r\n", HS_NO_UPGRADE),
    REFUSED("keep-alive only", GET HOST UPGRADE "Connection: keep-alive\r\n" KEY VERSION "\r\n",
            HS_NO_UPGRADE),
    REFUSED("tokens swapped",
            GET HOST "Upgrade: upgrade\r\nConnection: websocket\r\n" KEY VERSION "\r\n",
            HS_NO_UPGRADE),
    /* 426: Sec-WebSocket-Version not exactly 13 */
    REFUSED("no version", GET HOST UPGRADE CONNECTION KEY "\r\n", HS_BAD_VERSION),
    REFUSED("version 8", VERSION_IS(" 8"), HS_BAD_VERSION),
    REFUSED("version list", VERSION_IS(" 13, 8"), HS_BAD_VERSION),
    REFUSED("version 013", VERSION_IS(" 013"), HS_BAD_VERSION),
    REFUSED("empty version", VERSION_IS(""), HS_BAD_VERSION),
    /* 400 bad_key: not 24 characters of base64 for 16 bytes */
    REFUSED("no key", GET HOST UPGRADE CONNECTION VERSION "\r\n", HS_BAD_KEY),
    REFUSED("empty key", KEY_IS(""), HS_BAD_KEY),
    REFUSED("key 23 chars", KEY_IS("GhlIHNhbXBsZSBub25jZQ=="), HS_BAD_KEY),
    REFUSED("key 25 chars", KEY_IS("dGhlIHNhbXBsZSBub25jZQ==A"), HS_BAD_KEY),
    REFUSED("key of 17 bytes", KEY_IS("dGhlIHNhbXBsZSBub25jZQA="), HS_BAD_KEY),
    REFUSED("key of 18 bytes", KEY_IS("dGhlIHNhbXBsZSBub25jZQAA"), HS_BAD_KEY),
    REFUSED("url-safe key", KEY_IS("dGhlIHNhbXBsZSBub25jZ-=="), HS_BAD_KEY),
    REFUSED("padding inside", KEY_IS("dGhlIHNhbXB=ZSBub25jZQ=="), HS_BAD_KEY),
    REFUSED("space inside key", KEY_IS("dGhlIHNhbXB ZSBub25jZQ=="), HS_BAD_KEY),
    /* 403: Origin not in the list; exact match but for case */
    ACCEPTED("origin listed", ORIGIN_IS(" https://example.com"), LIST),
    ACCEPTED("second origin", ORIGIN_IS(" http://localhost:8080"), LIST),
    ACCEPTED("origin case", ORIGIN_IS(" HTTPS://Example.COM"), LIST),
    REFUSED("origin not listed", ORIGIN_IS(" https://evil.example"), HS_ORIGIN),
    REFUSED("origin suffix", ORIGIN_IS(" https://example.com.evil.org"), HS_ORIGIN),
    REFUSED("origin slash", ORIGIN_IS(" https://example.com/"), HS_ORIGIN),
    REFUSED("origin other port", ORIGIN_IS(" http://localhost:8081"), HS_ORIGIN),
    REFUSED("origin null", ORIGIN_IS(" null"), HS_ORIGIN),
    REFUSED("origin empty", ORIGIN_IS(""), HS_ORIGIN),
    /* no Origin: a program, not a browser page */
    ACCEPTED("no origin with a list", GET GOOD "\r\n", LIST),
    /* no list, or "*" in it: any origin */
    ACCEPTED("any origin", ORIGIN_IS(" https://evil.example"), ANY),
    ACCEPTED("star origin", ORIGIN_IS(" https://evil.example"), STAR),

    /* the order of the checks: method, version, path, upgrade, ws version, key, origin */
    REFUSED("method before version", "POST /ws HTTP/1.0\r\n\r\n", HS_BAD_METHOD),
    REFUSED("version before path", "GET /x HTTP/1.0\r\n\r\n", HS_BAD_REQUEST),
    REFUSED("host before path", "GET /x HTTP/1.1\r\n\r\n", HS_BAD_REQUEST),
    REFUSED("path before upgrade", "GET /x HTTP/1.1\r\n" HOST "\r\n", HS_NOT_FOUND),
    REFUSED("upgrade before ws version", GET HOST "\r\n", HS_NO_UPGRADE),
    REFUSED("ws version before key", GET HOST UPGRADE CONNECTION "\r\n", HS_BAD_VERSION),
    REFUSED("key before origin",
            GET HOST UPGRADE CONNECTION VERSION "Origin: https://evil.example\r\n\r\n", HS_BAD_KEY),

    /* tokens: in the query */
    TOKEN("query token", "GET /ws?token=abc.def.ghi HTTP/1.1\r\n" GOOD "\r\n", "abc.def.ghi", 1, 0),
    TOKEN("query token kept encoded", "GET /ws?a=1&token=a%2Eb HTTP/1.1\r\n" GOOD "\r\n", "a%2Eb",
          1, 0),
    TOKEN("empty query token", "GET /ws?token= HTTP/1.1\r\n" GOOD "\r\n", NULL, 0, 0),
    TOKEN("lookalike query key", "GET /ws?xtoken=abc HTTP/1.1\r\n" GOOD "\r\n", NULL, 0, 0),
    /* tokens: as a subprotocol, with "herald" echoed when offered */
    TOKEN("protocol token", PROTOCOL_IS("herald, herald.token.eyJ.x.y"), "eyJ.x.y", 0, 1),
    TOKEN("protocol token first", PROTOCOL_IS("herald.token.T,herald"), "T", 0, 1),
    TOKEN("protocol over two lines",
          PROTOCOL_IS("herald\r\nSec-WebSocket-Protocol: herald.token.T2"), "T2", 0, 1),
    TOKEN("herald only", PROTOCOL_IS("chat, herald"), NULL, 0, 1),
    TOKEN("token protocol only", PROTOCOL_IS("herald.token.T"), "T", 0, 0),
    TOKEN("protocol case", PROTOCOL_IS("Herald, HERALD.TOKEN.T"), NULL, 0, 0),
    TOKEN("empty protocol token", PROTOCOL_IS("herald, herald.token."), NULL, 0, 1),
    TOKEN("other protocols", PROTOCOL_IS("chat, heraldx"), NULL, 0, 0),
    /* both: the query wins, the protocol is still echoed */
    TOKEN("query and protocol",
          "GET /ws?token=Q HTTP/1.1\r\n" GOOD
          "Sec-WebSocket-Protocol: herald, herald.token.P\r\n\r\n",
          "Q", 1, 1),
    /* an empty query token falls back to the protocol */
    TOKEN("empty query then protocol",
          "GET /ws?token= HTTP/1.1\r\n" GOOD "Sec-WebSocket-Protocol: herald.token.P\r\n\r\n", "P",
          0, 0),
};

/* Fail with the case name and the two values. */
static void fail_case(const char *what, const char *field, long long got, long long want)
{
    print_error("case \"%s\": %s: got %lld, want %lld\n", what, field, got, want);
    fail();
}

/* Does a view equal a C string exactly? */
static int view_is(struct http_str s, const char *c)
{
    return s.len == strlen(c) && memcmp(s.p, c, s.len) == 0;
}

/* Every row of check_cases, with the token, protocol, key and origin it yields. */
static void test_handshake_check_table(void **state)
{
    for (size_t i = 0; i < sizeof(check_cases) / sizeof(check_cases[0]); i++) {
        const struct check_case *c = &check_cases[i];
        size_t len = strlen(c->head);
        char *p = guard_place(c->head, len);
        struct http_request req;
        struct hs_result res;
        const struct http_header *origin;
        enum hs_reason got;
        int r = http_parse_request(p, len, &req);

        if (r != (int)len)
            fail_case(c->what, "parse", r, (long long)len);
        got = hs_check(&req, &policies[c->policy], &res);
        if (got != c->want) {
            print_error("got %s, want %s\n", hs_reason_name(got), hs_reason_name(c->want));
            fail_case(c->what, "reason", got, c->want);
        }
        if (got == HS_OK) {
            if (c->token ? !view_is(res.token, c->token) : res.token.len != 0)
                fail_case(c->what, "token length", (long long)res.token.len,
                          c->token ? (long long)strlen(c->token) : 0);
            if (res.token_in_query != c->token_in_query)
                fail_case(c->what, "token_in_query", res.token_in_query, c->token_in_query);
            if (res.select_protocol != c->select_protocol)
                fail_case(c->what, "select_protocol", res.select_protocol, c->select_protocol);
            if (!view_is(res.key, "dGhlIHNhbXBsZSBub25jZQ=="))
                fail_case(c->what, "key", 0, 1);
            origin = http_find_header(&req, "Origin");
            if (origin ? res.origin.p != origin->value.p || res.origin.len != origin->value.len
                       : res.origin.len != 0)
                fail_case(c->what, "origin", (long long)res.origin.len, origin != NULL);
        }
        guard_release(p, len);
    }
}

/* The score of a site (path, host) for one request head; -1 when it does not parse. */
static int site_score(const char *head, const char *path, const char *host)
{
    size_t len = strlen(head);
    char *p = guard_place(head, len);
    struct http_request req;
    int r = http_parse_request(p, len, &req) == (int)len ? hs_site_match(&req, path, host) : -1;

    guard_release(p, len);
    return r;
}

/* Which site answers: its path, then its host (any case, port ignored); no host takes any. */
static void test_handshake_site_match(void **state)
{
    static const struct {
        const char *head, *path, *host;
        int want;
    } cases[] = {
        {GET GOOD "\r\n", "/ws", NULL, 1},
        {GET GOOD "\r\n", "/ws", "example.com", 2},
        {GET GOOD "\r\n", "/ws", "EXAMPLE.com", 2},
        {GET GOOD "\r\n", "/live", NULL, 0},
        {GET GOOD "\r\n", "/ws", "example.org", 0},
        {GET GOOD "\r\n", "/ws", "example.co", 0},
        {GET GOOD "\r\n", "/w", NULL, 0},
        {"GET /ws?token=x HTTP/1.1\r\n" GOOD "\r\n", "/ws", "example.com", 2},
        {"GET http://example.com/ws HTTP/1.1\r\n" GOOD "\r\n", "/ws", NULL, 1},
        {"GET /ws HTTP/1.1\r\nHost: Example.Com:8443\r\n\r\n", "/ws", "example.com", 2},
        {"GET /ws HTTP/1.1\r\nHost: example.com.evil:80\r\n\r\n", "/ws", "example.com", 0},
        {"GET /ws HTTP/1.1\r\nHost: [::1]:80\r\n\r\n", "/ws", "[::1]", 2},
        {"GET /ws HTTP/1.1\r\nHost: [::1]:80\r\n\r\n", "/ws", NULL, 1},
        {"GET /ws HTTP/1.1\r\n\r\n", "/ws", "example.com", 0},
        {"GET /ws HTTP/1.1\r\n\r\n", "/ws", NULL, 1},
    };

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int got = site_score(cases[i].head, cases[i].path, cases[i].host);

        if (got != cases[i].want)
            fail_msg("case %zu (%s, %s): got %d, want %d", i, cases[i].path,
                     cases[i].host ? cases[i].host : "any", got, cases[i].want);
    }
}

/* No site answers (policy path NULL): 404, after the checks that come before the path. */
static void test_handshake_no_site(void **state)
{
    static const struct hs_policy none = {NULL, NULL, 0};
    static const char *const heads[] = {GET GOOD "\r\n", "POST /ws HTTP/1.1\r\n" GOOD "\r\n"};
    static const enum hs_reason want[] = {HS_NOT_FOUND, HS_BAD_METHOD};

    for (size_t i = 0; i < 2; i++) {
        size_t len = strlen(heads[i]);
        char *p = guard_place(heads[i], len);
        struct http_request req;
        struct hs_result res;

        assert_int_equal(http_parse_request(p, len, &req), (int)len);
        assert_int_equal(hs_check(&req, &none, &res), want[i]);
        guard_release(p, len);
    }
}

/* RFC 6455 1.3: the sample nonce and its accept value. */
static void test_handshake_accept_key_rfc_example(void **state)
{
    static const char key[] = "dGhlIHNhbXBsZSBub25jZQ==";
    char out[HS_ACCEPT_LEN + 1];
    char *p = guard_place(key, strlen(key));

    memset(out, 'x', sizeof(out));
    hs_accept_key(p, strlen(key), out);
    assert_string_equal(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    guard_release(p, strlen(key));
}

/* The 101 answer, byte for byte, with and without the subprotocol. */
static void test_handshake_write_accept_exact(void **state)
{
    static const char key[] = "dGhlIHNhbXBsZSBub25jZQ==";
    static const char plain[] = "HTTP/1.1 101 Switching Protocols\r\n"
                                "Upgrade: websocket\r\n"
                                "Connection: Upgrade\r\n"
                                "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
                                "\r\n";
    static const char proto[] = "HTTP/1.1 101 Switching Protocols\r\n"
                                "Upgrade: websocket\r\n"
                                "Connection: Upgrade\r\n"
                                "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
                                "Sec-WebSocket-Protocol: herald\r\n"
                                "\r\n";
    struct hs_result res = {.key = {key, strlen(key)}};
    char out[256];
    size_t n;

    n = hs_write_accept(out, sizeof(out), &res);
    assert_int_equal(n, strlen(plain));
    assert_memory_equal(out, plain, n);
    res.select_protocol = 1;
    n = hs_write_accept(out, sizeof(out), &res);
    assert_int_equal(n, strlen(proto));
    assert_memory_equal(out, proto, n);
    /* too small a buffer gives 0, never a cut answer */
    assert_int_equal(hs_write_accept(out, strlen(proto), &res), 0);
}

/* The status, text, extra header and name of each refusal. */
struct refusal_case {
    enum hs_reason r;
    const char *status_line;
    const char *extra; /* a header only this status has, or NULL */
    const char *name;
};

static const struct refusal_case refusal_cases[] = {
    {HS_BAD_REQUEST, "HTTP/1.1 400 Bad Request", NULL, "bad_request"},
    {HS_NOT_FOUND, "HTTP/1.1 404 Not Found", NULL, "not_found"},
    {HS_BAD_METHOD, "HTTP/1.1 405 Method Not Allowed", "Allow: GET", "bad_method"},
    {HS_TIMEOUT, "HTTP/1.1 408 Request Timeout", NULL, "timeout"},
    {HS_NO_UPGRADE, "HTTP/1.1 400 Bad Request", NULL, "no_upgrade"},
    {HS_BAD_KEY, "HTTP/1.1 400 Bad Request", NULL, "bad_key"},
    {HS_BAD_VERSION, "HTTP/1.1 426 Upgrade Required", "Sec-WebSocket-Version: 13", "bad_version"},
    {HS_ORIGIN, "HTTP/1.1 403 Forbidden", NULL, "origin"},
    {HS_TOO_LARGE, "HTTP/1.1 431 Request Header Fields Too Large", NULL, "too_large"},
    {HS_NO_TOKEN, "HTTP/1.1 401 Unauthorized", NULL, "no_token"},
    {HS_BAD_TOKEN, "HTTP/1.1 401 Unauthorized", NULL, "bad_token"},
    {HS_TOO_MANY, "HTTP/1.1 503 Service Unavailable", NULL, "too_many_connections"},
    {HS_ADDR_LIMIT, "HTTP/1.1 429 Too Many Requests", NULL, "too_many_from_address"},
    {HS_TOO_FAST, "HTTP/1.1 429 Too Many Requests", NULL, "too_fast"},
};

/* Every refusal, rebuilt from its parts and compared byte for byte. */
static void test_handshake_write_refusal_every_reason(void **state)
{
    assert_int_equal(sizeof(refusal_cases) / sizeof(refusal_cases[0]), HS_REASON_COUNT - 1);
    for (size_t i = 0; i < sizeof(refusal_cases) / sizeof(refusal_cases[0]); i++) {
        const struct refusal_case *c = &refusal_cases[i];
        char body[128], want[512], out[512];
        size_t n;
        int blen = snprintf(body, sizeof(body), "{\"ok\":false,\"error\":\"%s\"}", c->name);

        snprintf(want, sizeof(want),
                 "%s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
                 "Connection: close\r\n%s%s\r\n%s",
                 c->status_line, blen, c->extra ? c->extra : "", c->extra ? "\r\n" : "", body);
        n = hs_write_refusal(out, sizeof(out), c->r);
        if (n != strlen(want) || memcmp(out, want, n) != 0) {
            print_error("got:\n%.*s\nwant:\n%s\n", (int)n, out, want);
            fail_case(c->name, "refusal", (long long)n, (long long)strlen(want));
        }
        /* too small a buffer gives 0 */
        assert_int_equal(hs_write_refusal(out, n, c->r), 0);
    }
    /* HS_OK and unknown values are not refusals */
    assert_int_equal(hs_write_refusal((char[512]){0}, 512, HS_OK), 0);
    assert_int_equal(hs_write_refusal((char[512]){0}, 512, HS_REASON_COUNT), 0);
}

/* One exact refusal, written out in full, so the format is visible here. */
static void test_handshake_write_refusal_bad_version_exact(void **state)
{
    static const char want[] = "HTTP/1.1 426 Upgrade Required\r\n"
                               "Content-Type: application/json\r\n"
                               "Content-Length: 34\r\n"
                               "Connection: close\r\n"
                               "Sec-WebSocket-Version: 13\r\n"
                               "\r\n"
                               "{\"ok\":false,\"error\":\"bad_version\"}";
    char out[512];
    size_t n = hs_write_refusal(out, sizeof(out), HS_BAD_VERSION);

    assert_int_equal(n, strlen(want));
    assert_memory_equal(out, want, n);
}

/* hs_status and hs_reason_name for every reason, and for values out of range. */
static void test_handshake_status_and_names(void **state)
{
    static const struct {
        enum hs_reason r;
        int status;
        const char *name;
    } cases[] = {
        {HS_OK, 101, "ok"},
        {HS_BAD_REQUEST, 400, "bad_request"},
        {HS_NOT_FOUND, 404, "not_found"},
        {HS_BAD_METHOD, 405, "bad_method"},
        {HS_TIMEOUT, 408, "timeout"},
        {HS_NO_UPGRADE, 400, "no_upgrade"},
        {HS_BAD_KEY, 400, "bad_key"},
        {HS_BAD_VERSION, 426, "bad_version"},
        {HS_ORIGIN, 403, "origin"},
        {HS_TOO_LARGE, 431, "too_large"},
        {HS_NO_TOKEN, 401, "no_token"},
        {HS_BAD_TOKEN, 401, "bad_token"},
        {HS_TOO_MANY, 503, "too_many_connections"},
        {HS_ADDR_LIMIT, 429, "too_many_from_address"},
        {HS_TOO_FAST, 429, "too_fast"},
    };

    assert_int_equal(sizeof(cases) / sizeof(cases[0]), HS_REASON_COUNT);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        assert_int_equal(hs_status(cases[i].r), cases[i].status);
        assert_string_equal(hs_reason_name(cases[i].r), cases[i].name);
    }
    assert_int_equal(hs_status(HS_REASON_COUNT), 500);
    assert_string_equal(hs_reason_name(HS_REASON_COUNT), "unknown");
    assert_string_equal(hs_reason_name((enum hs_reason) - 1), "unknown");
}

/* Run the handshake suite. */
int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_handshake_check_table),
        cmocka_unit_test(test_handshake_accept_key_rfc_example),
        cmocka_unit_test(test_handshake_write_accept_exact),
        cmocka_unit_test(test_handshake_write_refusal_every_reason),
        cmocka_unit_test(test_handshake_write_refusal_bad_version_exact),
        cmocka_unit_test(test_handshake_status_and_names),
        cmocka_unit_test(test_handshake_site_match),
        cmocka_unit_test(test_handshake_no_site),
    };

    return cmocka_run_group_tests_name("handshake", tests, NULL, NULL);
}
