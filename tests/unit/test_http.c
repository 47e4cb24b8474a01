/*
 * test_http.c -- unit tests for the HTTP/1.x request head parser and its
 * helpers (http.c).
 *
 * Covers:     valid heads (CRLF, bare LF, OWS trimming, obs-text, a body
 *             after the head, a leading empty line), every refusal the
 *             parser makes (request line, header names, values, obs-fold,
 *             stray CR), HTTP_NEED_MORE at every prefix of every valid head,
 *             the HTTP_MAX_HEADERS limit, and the accessors: header lookup,
 *             comma lists, query parameters, the path, percent-decoding.
 * Invariants: every parser input sits at the end of a page followed by a
 *             PROT_NONE page (guard.h), so an overread faults.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "guard.h"
#include "http.h"

#define ALL 100000 /* the expected return is the whole input's length */

/* One http_parse_request case and what must come out of it. */
struct parse_case {
    const char *what;
    const char *in;
    size_t len; /* of in, NULs included */
    int ret;
    const char *method, *target;
    int minor;
    size_t nheaders;
    const char *name0, *value0; /* the first header, when there is one */
};

#define OK(what, in, ...)                                                                          \
    {                                                                                              \
        what, in, sizeof(in) - 1, ALL, __VA_ARGS__                                                 \
    }
#define NOT_A_HEAD(what, in, ret)                                                                  \
    {                                                                                              \
        what, in, sizeof(in) - 1, ret, NULL, NULL, 0, 0, NULL, NULL                                \
    }

static const struct parse_case parse_cases[] = {
    /* the smallest request */
    OK("minimal", "GET / HTTP/1.1\r\n\r\n", "GET", "/", 1, 0, NULL, NULL),
    /* a browser's upgrade request */
    OK("upgrade",
       "GET /ws?token=abc HTTP/1.1\r\n"
       "Host: example.com:9601\r\n"
       "Upgrade: websocket\r\n"
       "Connection: Upgrade\r\n"
       "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
       "Sec-WebSocket-Version: 13\r\n"
       "Origin: https://example.com\r\n"
       "\r\n",
       "GET", "/ws?token=abc", 1, 6, "Host", "example.com:9601"),
    /* HTTP/1.0 parses; the handshake refuses it later */
    OK("http/1.0", "GET / HTTP/1.0\r\n\r\n", "GET", "/", 0, 0, NULL, NULL),
    /* bare LF line ends, as picohttpparser accepts */
    OK("bare lf", "GET /ws HTTP/1.1\nHost: a\n\n", "GET", "/ws", 1, 1, "Host", "a"),
    /* CRLF and LF mixed */
    OK("mixed eol", "GET /ws HTTP/1.1\r\nHost: a\n\r\n", "GET", "/ws", 1, 1, "Host", "a"),
    /* blanks around a value are trimmed, blanks inside kept */
    OK("ows trimmed", "GET / HTTP/1.1\r\nX:  \t a b \t \r\n\r\n", "GET", "/", 1, 1, "X", "a b"),
    /* HTAB inside a value */
    OK("htab in value", "GET / HTTP/1.1\r\nX: a\tb\r\n\r\n", "GET", "/", 1, 1, "X", "a\tb"),
    /* empty values */
    OK("empty value", "GET / HTTP/1.1\r\nX:\r\nY: \r\n\r\n", "GET", "/", 1, 2, "X", ""),
    /* obs-text (UTF-8 here) in a value */
    OK("obs-text", "GET / HTTP/1.1\r\nX: caf\xc3\xa9\r\n\r\n", "GET", "/", 1, 1, "X",
       "caf\xc3\xa9"),
    /* a colon inside a value */
    OK("colon in value", "GET / HTTP/1.1\r\nHost: a:80\r\n\r\n", "GET", "/", 1, 1, "Host", "a:80"),
    /* every tchar in a header name */
    OK("tchars in name", "GET / HTTP/1.1\r\nX-a_!#$%&'*+.^`|~9: v\r\n\r\n", "GET", "/", 1, 1,
       "X-a_!#$%&'*+.^`|~9", "v"),
    /* bytes after the head are not part of it */
    {"head then body", "GET / HTTP/1.1\r\nA: b\r\n\r\nBODY", 28, 24, "GET", "/", 1, 1, "A", "b"},
    /* one empty line before the request line is skipped (RFC 9112 2.2) */
    OK("leading crlf", "\r\nGET / HTTP/1.1\r\n\r\n", "GET", "/", 1, 0, NULL, NULL),
    /* any token is a method; the handshake refuses what is not GET */
    OK("other method", "M-SEARCH * HTTP/1.1\r\n\r\n", "M-SEARCH", "*", 1, 0, NULL, NULL),
    OK("lower-case method", "get / HTTP/1.1\r\n\r\n", "get", "/", 1, 0, NULL, NULL),
    /* an absolute-form target */
    OK("absolute target", "GET http://a/ws HTTP/1.1\r\n\r\n", "GET", "http://a/ws", 1, 0, NULL,
       NULL),
    /* high bytes in the target are not controls */
    OK("utf-8 target", "GET /caf\xc3\xa9 HTTP/1.1\r\n\r\n", "GET", "/caf\xc3\xa9", 1, 0, NULL,
       NULL),

    /* nothing yet, or a head cut short */
    NOT_A_HEAD("empty", "", HTTP_NEED_MORE),
    NOT_A_HEAD("method only", "GET", HTTP_NEED_MORE),
    NOT_A_HEAD("no blank line", "GET / HTTP/1.1\r\nHost: a\r\n", HTTP_NEED_MORE),
    NOT_A_HEAD("half of the last crlf", "GET / HTTP/1.1\r\n\r", HTTP_NEED_MORE),

    /* request line */
    NOT_A_HEAD("leading space", " GET / HTTP/1.1\r\n\r\n", HTTP_INVALID),
    NOT_A_HEAD("two empty lines first", "\r\n\r\nGET / HTTP/1.1\r\n\r\n", HTTP_INVALID),
    NOT_A_HEAD("double space", "GET  / HTTP/1.1\r\n\r\n", HTTP_INVALID),
    NOT_A_HEAD("tab separator", "GET\t/ HTTP/1.1\r\n\r\n", HTTP_INVALID),
    NOT_A_HEAD("no target", "GET HTTP/1.1\r\n\r\n", HTTP_INVALID),
    NOT_A_HEAD("space in target", "GET /a b HTTP/1.1\r\n\r\n", HTTP_INVALID),
    NOT_A_HEAD("control in target", "GET /\x01 HTTP/1.1\r\n\r\n", HTTP_INVALID),
    NOT_A_HEAD("del in target", "GET /\x7f HTTP/1.1\r\n\r\n", HTTP_INVALID),
    NOT_A_HEAD("separator in method", "G(T / HTTP/1.1\r\n\r\n", HTTP_INVALID),
    NOT_A_HEAD("nul in method", "G\0T / HTTP/1.1\r\n\r\n", HTTP_INVALID),
    NOT_A_HEAD("http/2", "GET / HTTP/2.0\r\n\r\n", HTTP_INVALID),
    NOT_A_HEAD("lower-case version", "GET / http/1.1\r\n\r\n", HTTP_INVALID),
    NOT_A_HEAD("minor not a digit", "GET / HTTP/1.x\r\n\r\n", HTTP_INVALID),
    NOT_A_HEAD("two-digit minor", "GET / HTTP/1.10\r\n\r\n", HTTP_INVALID),
    NOT_A_HEAD("no version", "GET /\r\n\r\n", HTTP_INVALID),
    NOT_A_HEAD("space after version", "GET / HTTP/1.1 \r\n\r\n", HTTP_INVALID),
    NOT_A_HEAD("cr without lf", "GET / HTTP/1.1\rX\r\n\r\n", HTTP_INVALID),

    /* header names */
    NOT_A_HEAD("missing colon", "GET / HTTP/1.1\r\nHost a\r\n\r\n", HTTP_INVALID),
    NOT_A_HEAD("missing colon at eol", "GET / HTTP/1.1\r\nHost\r\n\r\n", HTTP_INVALID),
    NOT_A_HEAD("space before colon", "GET / HTTP/1.1\r\nHost : a\r\n\r\n", HTTP_INVALID),
    NOT_A_HEAD("space in name", "GET / HTTP/1.1\r\nHo st: a\r\n\r\n", HTTP_INVALID),
    NOT_A_HEAD("empty name", "GET / HTTP/1.1\r\n: a\r\n\r\n", HTTP_INVALID),
    NOT_A_HEAD("separator in name", "GET / HTTP/1.1\r\nX-(: a\r\n\r\n", HTTP_INVALID),
    NOT_A_HEAD("high byte in name", "GET / HTTP/1.1\r\nX\xc3\xa9: a\r\n\r\n", HTTP_INVALID),
    /* obs-fold, and any line starting with a blank */
    NOT_A_HEAD("obs-fold", "GET / HTTP/1.1\r\nX: a\r\n b\r\n\r\n", HTTP_INVALID),
    NOT_A_HEAD("obs-fold tab", "GET / HTTP/1.1\r\nX: a\r\n\tb\r\n\r\n", HTTP_INVALID),
    NOT_A_HEAD("blank first header", "GET / HTTP/1.1\r\n X: a\r\n\r\n", HTTP_INVALID),
    /* header values */
    NOT_A_HEAD("control in value",
               "GET / HTTP/1.1\r\nX: a\x01"
               "b\r\n\r\n",
               HTTP_INVALID),
    NOT_A_HEAD("del in value", "GET / HTTP/1.1\r\nX: a\x7f\r\n\r\n", HTTP_INVALID),
    NOT_A_HEAD("nul in value", "GET / HTTP/1.1\r\nX: a\0b\r\n\r\n", HTTP_INVALID),
    NOT_A_HEAD("bare cr in value", "GET / HTTP/1.1\r\nX: a\rb\r\n\r\n", HTTP_INVALID),
    NOT_A_HEAD("cr cr at the end", "GET / HTTP/1.1\r\n\r\r\n", HTTP_INVALID),
    /* the refusal comes before the head is complete */
    NOT_A_HEAD("early refusal", "GET / HTTP/1.1\r\nBad Name", HTTP_INVALID),
};

/* Fail with the case name and the two values. */
static void fail_case(const char *what, const char *field, long long got, long long want)
{
    print_error("case \"%s\": %s: got %lld, want %lld\n", what, field, got, want);
    fail();
}

/* Does a view equal a C string exactly (case-sensitive)? */
static int view_is(struct http_str s, const char *c)
{
    return s.len == strlen(c) && memcmp(s.p, c, s.len) == 0;
}

/* Parse len bytes of in, placed against a guard page. */
static int parse_guarded(const char *in, size_t len, struct http_request *req)
{
    char *p = guard_place(in, len);
    int r = http_parse_request(p, len, req);

    guard_release(p, len);
    return r;
}

/* Parse with the guard page kept, so the caller can look at the views. */
static char *place_and_parse(const char *in, size_t len, struct http_request *req, int *r)
{
    char *p = guard_place(in, len);

    *r = http_parse_request(p, len, req);
    return p;
}

/* Every row of parse_cases, with its outputs. */
static void test_http_parse_table(void **state)
{
    for (size_t i = 0; i < sizeof(parse_cases) / sizeof(parse_cases[0]); i++) {
        const struct parse_case *c = &parse_cases[i];
        size_t len = c->len;
        int want = c->ret == ALL ? (int)len : c->ret;
        struct http_request req;
        int r;
        char *p = place_and_parse(c->in, len, &req, &r);

        if (r != want)
            fail_case(c->what, "return", r, want);
        if (r > 0) {
            if (!view_is(req.method, c->method))
                fail_case(c->what, "method", 0, 1);
            if (!view_is(req.target, c->target))
                fail_case(c->what, "target", 0, 1);
            if (req.minor_version != c->minor)
                fail_case(c->what, "minor", req.minor_version, c->minor);
            if (req.nheaders != c->nheaders)
                fail_case(c->what, "nheaders", (long long)req.nheaders, (long long)c->nheaders);
            if (c->name0 && !view_is(req.headers[0].name, c->name0))
                fail_case(c->what, "name0", 0, 1);
            if (c->value0 && !view_is(req.headers[0].value, c->value0))
                fail_case(c->what, "value0", 0, 1);
        }
        guard_release(p, len);
    }
}

/* Every proper prefix of every complete head is HTTP_NEED_MORE. */
static void test_http_parse_need_more_at_every_prefix(void **state)
{
    for (size_t i = 0; i < sizeof(parse_cases) / sizeof(parse_cases[0]); i++) {
        const struct parse_case *c = &parse_cases[i];
        size_t len = c->len;
        int want = c->ret == ALL ? (int)len : c->ret;
        struct http_request req;

        if (want <= 0)
            continue;
        for (size_t k = 0; k < (size_t)want; k++) {
            int r = parse_guarded(c->in, k, &req);

            if (r != HTTP_NEED_MORE) {
                print_error("prefix of %zu bytes\n", k);
                fail_case(c->what, "prefix return", r, HTTP_NEED_MORE);
            }
        }
    }
}

/* Build a head with n headers "H<i>: v<i>" into buf; returns its length. */
static size_t build_many(char *buf, size_t size, size_t n, int complete)
{
    size_t len = (size_t)snprintf(buf, size, "GET /ws HTTP/1.1\r\n");

    for (size_t i = 0; i < n; i++)
        len += (size_t)snprintf(buf + len, size - len, "H%zu: v%zu\r\n", i, i);
    if (complete)
        len += (size_t)snprintf(buf + len, size - len, "\r\n");
    return len;
}

/* HTTP_MAX_HEADERS headers parse; one more is HTTP_TOO_MANY_HEADERS, even unfinished. */
static void test_http_parse_many_headers(void **state)
{
    static char buf[8192];
    struct http_request req;
    size_t len;
    char *p;
    int r;

    /* exactly the limit */
    len = build_many(buf, sizeof(buf), HTTP_MAX_HEADERS, 1);
    p = place_and_parse(buf, len, &req, &r);
    assert_int_equal(r, (int)len);
    assert_int_equal(req.nheaders, HTTP_MAX_HEADERS);
    assert_true(view_is(req.headers[HTTP_MAX_HEADERS - 1].name, "H63"));
    assert_true(view_is(req.headers[HTTP_MAX_HEADERS - 1].value, "v63"));
    guard_release(p, len);
    /* the limit, not finished yet */
    len = build_many(buf, sizeof(buf), HTTP_MAX_HEADERS, 0);
    assert_int_equal(parse_guarded(buf, len, &req), HTTP_NEED_MORE);
    /* one over */
    len = build_many(buf, sizeof(buf), HTTP_MAX_HEADERS + 1, 1);
    assert_int_equal(parse_guarded(buf, len, &req), HTTP_TOO_MANY_HEADERS);
    /* one over, refused as soon as the extra header starts */
    len = build_many(buf, sizeof(buf), HTTP_MAX_HEADERS, 0);
    buf[len++] = 'X';
    assert_int_equal(parse_guarded(buf, len, &req), HTTP_TOO_MANY_HEADERS);
    /* far over */
    len = build_many(buf, sizeof(buf), 200, 1);
    assert_int_equal(parse_guarded(buf, len, &req), HTTP_TOO_MANY_HEADERS);
}

static const char many_lists[] = "GET /ws?token=abc HTTP/1.1\r\n"
                                 "Host: a\r\n"
                                 "connection: keep-alive\r\n"
                                 "Upgrade: WebSocket\r\n"
                                 "CONNECTION: ,,  Upgrade ,\r\n"
                                 "X-Empty:\r\n"
                                 "X-List: a, b,,c ,\t \r\n"
                                 "X-Upgrade-Lookalike: upgrade\r\n"
                                 "\r\n";

/* Parse many_lists against a guard page; release with guard_release(p, strlen). */
static char *parse_lists(struct http_request *req)
{
    int r;
    char *p = place_and_parse(many_lists, strlen(many_lists), req, &r);

    assert_int_equal(r, (int)strlen(many_lists));
    return p;
}

/* Lookup by name: case-insensitive, first match, exact length. */
static void test_http_find_header(void **state)
{
    struct http_request req;
    char *p = parse_lists(&req);
    const struct http_header *h;

    h = http_find_header(&req, "HOST");
    assert_non_null(h);
    assert_true(view_is(h->value, "a"));
    /* the first of two */
    h = http_find_header(&req, "Connection");
    assert_non_null(h);
    assert_true(view_is(h->value, "keep-alive"));
    /* an empty value is still a header */
    h = http_find_header(&req, "x-empty");
    assert_non_null(h);
    assert_int_equal(h->value.len, 0);
    /* no prefix or suffix matches */
    assert_null(http_find_header(&req, "Hos"));
    assert_null(http_find_header(&req, "Host2"));
    assert_null(http_find_header(&req, "Origin"));
    assert_null(http_find_header(&req, ""));
    guard_release(p, strlen(many_lists));
}

/* One http_str_eq case. */
struct eq_case {
    const char *view;
    const char *cstr;
    int want;
};

static const struct eq_case eq_cases[] = {
    {"websocket", "websocket", 1},  /* same */
    {"WebSocket", "websocket", 1},  /* case differs */
    {"websocket", "websockets", 0}, /* longer C string */
    {"websockets", "websocket", 0}, /* longer view */
    {"", "", 1},                    /* both empty */
    {"", "a", 0},                   /* empty view */
    {"[", "{", 0},                  /* 0x5b and 0x7b are not a case pair */
    {"@", "`", 0},                  /* nor are 0x40 and 0x60 */
};

/* Every row of eq_cases. */
static void test_http_str_eq(void **state)
{
    for (size_t i = 0; i < sizeof(eq_cases) / sizeof(eq_cases[0]); i++) {
        char *p = guard_place(eq_cases[i].view, strlen(eq_cases[i].view));
        struct http_str s = {p, strlen(eq_cases[i].view)};

        if (http_str_eq(s, eq_cases[i].cstr) != eq_cases[i].want)
            fail_case(eq_cases[i].view, eq_cases[i].cstr, !eq_cases[i].want, eq_cases[i].want);
        guard_release(p, s.len);
    }
}

/* One http_header_has_token case against many_lists. */
struct token_case {
    const char *what;
    const char *name, *token;
    int want;
};

static const struct token_case token_cases[] = {
    /* found in the second Connection line, with blanks and empty elements around it */
    {"split over two lines", "Connection", "upgrade", 1},
    {"first line", "connection", "keep-alive", 1},
    /* case-insensitive on the value */
    {"value case", "Upgrade", "websocket", 1},
    /* a token of another header does not count */
    {"other header", "Connection", "websocket", 0},
    {"lookalike header", "X-Upgrade", "upgrade", 0},
    /* whole elements only */
    {"prefix of element", "X-List", "a,", 0},
    {"part of element", "Connection", "keep", 0},
    {"middle element", "X-List", "b", 1},
    {"element after empty one", "X-List", "c", 1},
    /* an empty value has no elements */
    {"empty header", "X-Empty", "", 0},
    /* no such header */
    {"absent header", "Sec-WebSocket-Protocol", "herald", 0},
};

/* Every row of token_cases. */
static void test_http_header_has_token(void **state)
{
    struct http_request req;
    char *p = parse_lists(&req);

    for (size_t i = 0; i < sizeof(token_cases) / sizeof(token_cases[0]); i++) {
        const struct token_case *c = &token_cases[i];
        int got = http_header_has_token(&req, c->name, c->token);

        if (got != c->want)
            fail_case(c->what, "has_token", got, c->want);
    }
    guard_release(p, strlen(many_lists));
}

/* Walking a list yields its non-empty, trimmed elements in order. */
static void test_http_list_next(void **state)
{
    static const char value[] = " a, b,,c , \t, d d ,";
    static const char *const want[] = {"a", "b", "c", "d d"};
    char *p = guard_place(value, strlen(value));
    struct http_str list = {p, strlen(value)}, elem;
    size_t n = 0;

    while (http_list_next(&list, &elem)) {
        assert_true(n < 4);
        assert_true(view_is(elem, want[n]));
        n++;
    }
    assert_int_equal(n, 4);
    assert_int_equal(list.len, 0);
    /* an exhausted or empty list stays that way */
    assert_int_equal(http_list_next(&list, &elem), 0);
    guard_release(p, strlen(value));
}

/* One http_query_param case. */
struct query_case {
    const char *what;
    const char *target, *name;
    int found;
    const char *value;
};

static const struct query_case query_cases[] = {
    {"only param", "/ws?token=abc", "token", 1, "abc"},
    {"middle param", "/ws?x=1&token=abc&y=2", "token", 1, "abc"},
    {"last param", "/ws?x=1&token=abc", "token", 1, "abc"},
    /* the name must match a whole key */
    {"longer key before", "/ws?xtoken=abc", "token", 0, NULL},
    {"longer key after", "/ws?tokenx=abc", "token", 0, NULL},
    {"key case", "/ws?Token=abc", "token", 0, NULL},
    {"name in a value", "/ws?a=token=x", "token", 0, NULL},
    /* a key without a value, or with an empty one */
    {"no equals", "/ws?token", "token", 1, ""},
    {"empty value", "/ws?token=&x=1", "token", 1, ""},
    /* raw value, not decoded; '=' inside a value is kept */
    {"percent kept", "/ws?token=a%2Bb", "token", 1, "a%2Bb"},
    {"equals in value", "/ws?token=a=b", "token", 1, "a=b"},
    /* the first of two */
    {"first wins", "/ws?token=1&token=2", "token", 1, "1"},
    /* empty pieces are skipped */
    {"empty pieces", "/ws?&&token=z&", "token", 1, "z"},
    /* no query at all */
    {"no query", "/ws", "token", 0, NULL},
    {"empty query", "/ws?", "token", 0, NULL},
    {"token in path", "/ws/token=abc", "token", 0, NULL},
    {"empty target", "", "token", 0, NULL},
};

/* Every row of query_cases. */
static void test_http_query_param(void **state)
{
    for (size_t i = 0; i < sizeof(query_cases) / sizeof(query_cases[0]); i++) {
        const struct query_case *c = &query_cases[i];
        size_t len = strlen(c->target);
        char *p = guard_place(c->target, len);
        struct http_str target = {p, len}, value = {NULL, 12345};
        int got = http_query_param(target, c->name, &value);

        if (got != c->found)
            fail_case(c->what, "found", got, c->found);
        if (got && !view_is(value, c->value))
            fail_case(c->what, "value", (long long)value.len, (long long)strlen(c->value));
        guard_release(p, len);
    }
}

/* The path is everything before the first '?'. */
static void test_http_target_path(void **state)
{
    static const char *const cases[][2] = {
        {"/ws?token=x", "/ws"}, /* with a query */
        {"/ws", "/ws"},         /* without */
        {"/ws?", "/ws"},        /* empty query */
        {"?x", ""},             /* nothing before it */
        {"/a?b?c", "/a"},       /* the first '?' */
        {"", ""},               /* empty target */
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t len = strlen(cases[i][0]);
        char *p = guard_place(cases[i][0], len);
        struct http_str t = {p, len};

        if (!view_is(http_target_path(t), cases[i][1]))
            fail_case(cases[i][0], "path", 0, 1);
        guard_release(p, len);
    }
}

/* One http_percent_decode case. */
struct decode_case {
    const char *what;
    const char *in;
    size_t outlen;
    int ret;
    const char *out;
    size_t outn; /* bytes of out to compare (for a decoded NUL) */
};

static const struct decode_case decode_cases[] = {
    {"plain", "abc", 16, 3, "abc", 3},
    {"space", "a%20b", 16, 3, "a b", 3},
    {"both cases", "%2b%2B", 16, 2, "++", 2},
    {"plus stays", "a+b", 16, 3, "a+b", 3},
    {"jwt", "eyJ.eyJ.sig-_", 16, 13, "eyJ.eyJ.sig-_", 13},
    {"nul", "%00x", 16, 2, "\0x", 2},
    {"high byte", "%C3%a9", 16, 2, "\xc3\xa9", 2},
    {"empty", "", 16, 0, "", 0},
    {"exact fit", "ab%21", 3, 3, "ab!", 3},
    /* bad escapes */
    {"lone percent", "%", 16, -1, NULL, 0},
    {"one digit", "ab%2", 16, -1, NULL, 0},
    {"not hex", "%zz", 16, -1, NULL, 0},
    {"g", "%g0", 16, -1, NULL, 0},
    {"second not hex", "%0g", 16, -1, NULL, 0},
    /* does not fit */
    {"too small", "abcd", 3, -1, NULL, 0},
    {"no room", "a", 0, -1, NULL, 0},
};

/* Every row of decode_cases. */
static void test_http_percent_decode(void **state)
{
    for (size_t i = 0; i < sizeof(decode_cases) / sizeof(decode_cases[0]); i++) {
        const struct decode_case *c = &decode_cases[i];
        size_t len = strlen(c->in);
        char *p = guard_place(c->in, len);
        char *out = guard_place("", 0);
        struct http_str in = {p, len};
        int got;

        /* the output sits against a guard page too, c->outlen bytes before it */
        out -= c->outlen;
        got = http_percent_decode(in, out, c->outlen);
        if (got != c->ret)
            fail_case(c->what, "return", got, c->ret);
        if (got >= 0 && memcmp(out, c->out, c->outn) != 0)
            fail_case(c->what, "output", 0, 1);
        guard_release(out + c->outlen, 0);
        guard_release(p, len);
    }
}

/* Run the http suite. */
int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_http_parse_table),
        cmocka_unit_test(test_http_parse_need_more_at_every_prefix),
        cmocka_unit_test(test_http_parse_many_headers),
        cmocka_unit_test(test_http_find_header),
        cmocka_unit_test(test_http_str_eq),
        cmocka_unit_test(test_http_header_has_token),
        cmocka_unit_test(test_http_list_next),
        cmocka_unit_test(test_http_query_param),
        cmocka_unit_test(test_http_target_path),
        cmocka_unit_test(test_http_percent_decode),
    };

    return cmocka_run_group_tests_name("http", tests, NULL, NULL);
}
