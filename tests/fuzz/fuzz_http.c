/*
 * fuzz_http.c -- libFuzzer target for the request head parser (http.c) and
 * the handshake decision on top of it (handshake.c).
 *
 * Owns:       nothing; the input is read only.
 * Checks:     http_parse_request returns one of its documented values; a
 *             complete head gives views that lie inside the head, and every
 *             shorter prefix of it is HTTP_NEED_MORE; then the site match
 *             (agreeing with hs_check on the path), hs_check with a fixed
 *             policy, and every accessor on the result: header lookup,
 *             token lists, query parameters, the path, percent-decoding of
 *             the token, and the 101 or refusal answer.
 * Build:      make fuzz (links -lcrypto for the accept key), or see
 *             tests/fuzz/run.sh.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "handshake.h"
#include "http.h"

/* Abort (a crash libFuzzer reports) when an invariant does not hold. */
#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            __builtin_trap();                                                                      \
    } while (0)

static const char *const origins[] = {"https://example.com", "http://localhost:8080"};
static const struct hs_policy policy = {"/ws", origins, 2};

/* Is the view s inside buf[0..len)? */
static int inside(struct http_str s, const char *buf, size_t len)
{
    return s.len == 0 || (s.p >= buf && s.p + s.len <= buf + len);
}

/* Call every accessor on a parsed head and check what the views point at. */
static void check_accessors(const struct http_request *req, const char *buf, size_t len)
{
    static const char *const names[] = {"Upgrade", "Connection", "Sec-WebSocket-Protocol", "Origin",
                                        "X"};
    struct http_str v, path, elem, list;
    char out[256];
    int n;

    CHECK(inside(req->method, buf, len) && inside(req->target, buf, len));
    CHECK(req->method.len > 0 && req->target.len > 0);
    CHECK(req->nheaders <= HTTP_MAX_HEADERS);
    for (size_t i = 0; i < req->nheaders; i++) {
        const struct http_header *h = &req->headers[i];

        CHECK(h->name.len > 0 && inside(h->name, buf, len) && inside(h->value, buf, len));
        CHECK(http_find_header(req, "") == NULL);
        list = h->value;
        while (http_list_next(&list, &elem))
            CHECK(elem.len > 0 && inside(elem, buf, len) && elem.p[0] != ',');
    }
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        const struct http_header *h = http_find_header(req, names[i]);

        CHECK(h == NULL || http_str_eq(h->name, names[i]));
        http_header_has_token(req, names[i], "upgrade");
    }
    path = http_target_path(req->target);
    CHECK(path.p == req->target.p && path.len <= req->target.len);
    if (http_query_param(req->target, "token", &v)) {
        CHECK(inside(v, buf, len));
        n = http_percent_decode(v, out, sizeof(out));
        CHECK(n >= -1 && n <= (int)sizeof(out) && (n < 0 || (size_t)n <= v.len));
    }
}

/* Run the handshake on a parsed head and write the answer it leads to. */
static void check_handshake(const struct http_request *req, const char *buf, size_t len)
{
    struct hs_result res;
    enum hs_reason r = hs_check(req, &policy, &res);
    int any = hs_site_match(req, "/ws", NULL), named = hs_site_match(req, "/ws", "example.com");
    char out[1024];
    size_t n;

    /* Which site: a named host answers only where a host-less site would too. */
    CHECK(any == 0 || any == 1);
    CHECK(named == 0 || named == 2);
    CHECK(!named || any);
    CHECK(r == HS_NOT_FOUND || r == HS_BAD_METHOD || r == HS_BAD_REQUEST || any);
    CHECK(r >= HS_OK && r < HS_REASON_COUNT);
    CHECK(hs_reason_name(r) != NULL && hs_status(r) >= 101);
    if (r != HS_OK) {
        n = hs_write_refusal(out, sizeof(out), r);
        CHECK(n > 0 && n < sizeof(out));
        return;
    }
    CHECK(res.key.len == 24 && inside(res.key, buf, len));
    CHECK(inside(res.token, buf, len) && inside(res.origin, buf, len));
    n = hs_write_accept(out, sizeof(out), &res);
    CHECK(n > 0 && memcmp(out, "HTTP/1.1 101 ", 13) == 0);
}

/* Parse, then look at a complete head every way the daemon does. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *buf = (const char *)data;
    struct http_request req;
    int r = http_parse_request(buf, size, &req);

    CHECK(r == HTTP_NEED_MORE || r == HTTP_INVALID || r == HTTP_TOO_MANY_HEADERS ||
          (r > 0 && (size_t)r <= size));
    if (r <= 0)
        return 0;
    check_accessors(&req, buf, (size_t)r);
    check_handshake(&req, buf, (size_t)r);
    /* a shorter prefix of a complete head is never complete, nor refused */
    for (size_t k = (size_t)r > 64 ? (size_t)r - 64 : 0; k < (size_t)r; k++)
        CHECK(http_parse_request(buf, k, &req) == HTTP_NEED_MORE);
    return 0;
}
