/*
 * http.c -- zero-copy HTTP/1.x request head parser and the small helpers
 * the handshake needs on top of it (header lookup, comma lists, query
 * parameters, percent-decoding).
 *
 * Owns:       nothing. Every http_str it produces points into the caller's
 *             buffer, which it never writes to.
 * Called by:  handshake.c, and conn.c through it.
 * Invariants: pure functions; no allocation, no I/O; safe on any thread.
 *             Never reads buf[len] or beyond, so a head may end right at a
 *             page boundary (the tests put a PROT_NONE page there).
 * Errors:     http_parse_request returns the head length (through the blank
 *             line), HTTP_NEED_MORE when the bytes so far are a valid prefix
 *             of a head, HTTP_INVALID as soon as a byte proves they are not,
 *             and HTTP_TOO_MANY_HEADERS when header number 65 starts. The
 *             parser keeps no state: after HTTP_NEED_MORE the caller calls it
 *             again from the start with more bytes, which costs little for
 *             a head of a few hundred bytes.
 * Spec notes: RFC 9112. Deliberately strict where leniency has bitten
 *             others: exactly one SP between the parts of the request line,
 *             no blank before the colon, obs-fold refused (RFC 9112 5.2
 *             allows that), a header value may hold obs-text (80-FF) but no
 *             control character other than HTAB. Lenient where RFC 9112
 *             allows: a bare LF ends a line (2.2), and one empty line before
 *             the request line is skipped (2.2).
 * Tests:      tests/unit/test_http.c, tests/fuzz/fuzz_http.c.
 */
#include "http.h"

#include <limits.h>
#include <string.h>

/* Is c a tchar (RFC 9110 5.6.2), the characters of a method or header name? */
static int is_tchar(unsigned char c)
{
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
        return 1;
    return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* May c appear in a request target? Anything but blanks and controls. */
static int is_target_char(unsigned char c)
{
    return c > 0x20 && c != 0x7F;
}

/* May c appear in a header value? HTAB, printable ASCII and obs-text. */
static int is_value_char(unsigned char c)
{
    return c == '\t' || (c >= 0x20 && c != 0x7F);
}

/* ASCII lower case, independent of the locale. */
static unsigned char to_lower(unsigned char c)
{
    return c >= 'A' && c <= 'Z' ? (unsigned char)(c + ('a' - 'A')) : c;
}

/* Case-insensitive comparison of n bytes. */
static int mem_case_eq(const char *a, const char *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (to_lower((unsigned char)a[i]) != to_lower((unsigned char)b[i]))
            return 0;
    }
    return 1;
}

/* Consume a CRLF or a bare LF at *pp. */
static int parse_eol(const char **pp, const char *end)
{
    const char *p = *pp;

    if (p == end)
        return HTTP_NEED_MORE;
    if (*p == '\r') {
        if (++p == end)
            return HTTP_NEED_MORE;
        if (*p != '\n')
            return HTTP_INVALID;
    } else if (*p != '\n') {
        return HTTP_INVALID;
    }
    *pp = p + 1;
    return 0;
}

/* Consume a run of tchars ending in `stop`; the run (not empty) goes to *out. */
static int parse_token(const char **pp, const char *end, char stop, struct http_str *out)
{
    const char *p = *pp;

    while (p < end && is_tchar((unsigned char)*p))
        p++;
    if (p == end)
        return HTTP_NEED_MORE;
    if (p == *pp || *p != stop)
        return HTTP_INVALID;
    out->p = *pp;
    out->len = (size_t)(p - *pp);
    *pp = p + 1;
    return 0;
}

/* Parse "METHOD SP target SP HTTP/1.x" and its line end. */
static int parse_request_line(const char **pp, const char *end, struct http_request *req)
{
    static const char version[] = "HTTP/1.";
    const char *p = *pp;
    const char *start;
    int r;

    if ((r = parse_token(&p, end, ' ', &req->method)) != 0)
        return r;
    for (start = p; p < end && is_target_char((unsigned char)*p); p++)
        ;
    if (p == end)
        return HTTP_NEED_MORE;
    if (p == start || *p != ' ')
        return HTTP_INVALID;
    req->target.p = start;
    req->target.len = (size_t)(p - start);
    p++;
    for (size_t i = 0; i < sizeof(version) - 1; i++, p++) {
        if (p == end)
            return HTTP_NEED_MORE;
        if (*p != version[i])
            return HTTP_INVALID;
    }
    if (p == end)
        return HTTP_NEED_MORE;
    if (*p < '0' || *p > '9')
        return HTTP_INVALID;
    req->minor_version = *p++ - '0';
    if ((r = parse_eol(&p, end)) != 0)
        return r;
    *pp = p;
    return 0;
}

/* Parse one "name: value" line into *h. */
static int parse_header(const char **pp, const char *end, struct http_header *h)
{
    const char *p = *pp;
    const char *start, *last;
    int r;

    if ((r = parse_token(&p, end, ':', &h->name)) != 0)
        return r;
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    for (start = p; p < end && is_value_char((unsigned char)*p); p++)
        ;
    if (p == end)
        return HTTP_NEED_MORE;
    if (*p != '\r' && *p != '\n')
        return HTTP_INVALID;
    for (last = p; last > start && (last[-1] == ' ' || last[-1] == '\t'); last--)
        ;
    h->value.p = start;
    h->value.len = (size_t)(last - start);
    if ((r = parse_eol(&p, end)) != 0)
        return r;
    *pp = p;
    return 0;
}

/* Request line, then header lines until the empty line; see the file header. */
int http_parse_request(const char *buf, size_t len, struct http_request *req)
{
    const char *p = buf;
    const char *end;
    int r;

    req->nheaders = 0;
    if (len == 0)
        return HTTP_NEED_MORE;
    end = buf + len;
    if (p < end && (*p == '\r' || *p == '\n')) {
        if ((r = parse_eol(&p, end)) != 0)
            return r;
    }
    if ((r = parse_request_line(&p, end, req)) != 0)
        return r;
    for (;;) {
        if (p == end)
            return HTTP_NEED_MORE;
        if (*p == '\r' || *p == '\n')
            break;
        if (*p == ' ' || *p == '\t')
            return HTTP_INVALID; /* obs-fold */
        if (req->nheaders == HTTP_MAX_HEADERS)
            return HTTP_TOO_MANY_HEADERS;
        if ((r = parse_header(&p, end, &req->headers[req->nheaders])) != 0)
            return r;
        req->nheaders++;
    }
    if ((r = parse_eol(&p, end)) != 0)
        return r;
    if (p - buf > INT_MAX)
        return HTTP_INVALID;
    return (int)(p - buf);
}

/* Linear scan: a handshake head has a dozen headers. */
const struct http_header *http_find_header(const struct http_request *req, const char *name)
{
    for (size_t i = 0; i < req->nheaders; i++) {
        if (http_str_eq(req->headers[i].name, name))
            return &req->headers[i];
    }
    return NULL;
}

/* Length first, then an ASCII case-insensitive compare. */
int http_str_eq(struct http_str s, const char *cstr)
{
    return strlen(cstr) == s.len && mem_case_eq(s.p, cstr, s.len);
}

/* Split on commas; quoted strings are not special (no token we look for has one). */
int http_list_next(struct http_str *list, struct http_str *elem)
{
    const char *p, *end, *start, *last;

    if (list->len == 0)
        return 0;
    p = list->p;
    end = list->p + list->len;
    while (p < end) {
        while (p < end && (*p == ',' || *p == ' ' || *p == '\t'))
            p++;
        for (start = p; p < end && *p != ','; p++)
            ;
        for (last = p; last > start && (last[-1] == ' ' || last[-1] == '\t'); last--)
            ;
        if (last > start) {
            elem->p = start;
            elem->len = (size_t)(last - start);
            list->p = p;
            list->len = (size_t)(end - p);
            return 1;
        }
    }
    list->p = end;
    list->len = 0;
    return 0;
}

/* Walk every header of that name, element by element. */
int http_header_has_token(const struct http_request *req, const char *name, const char *token)
{
    struct http_str list, elem;

    for (size_t i = 0; i < req->nheaders; i++) {
        if (!http_str_eq(req->headers[i].name, name))
            continue;
        list = req->headers[i].value;
        while (http_list_next(&list, &elem)) {
            if (http_str_eq(elem, token))
                return 1;
        }
    }
    return 0;
}

/* The path part of an origin-form target. */
struct http_str http_target_path(struct http_str target)
{
    const char *q = target.len ? memchr(target.p, '?', target.len) : NULL;
    struct http_str path = {target.p, q ? (size_t)(q - target.p) : target.len};

    return path;
}

/* Split the query on '&', compare each key byte for byte with name. */
int http_query_param(struct http_str target, const char *name, struct http_str *value)
{
    struct http_str path = http_target_path(target);
    size_t nlen = strlen(name);
    const char *p, *end, *amp, *eq;

    if (path.len == target.len)
        return 0;
    p = target.p + path.len + 1;
    end = target.p + target.len;
    for (;;) {
        amp = memchr(p, '&', (size_t)(end - p));
        if (!amp)
            amp = end;
        eq = memchr(p, '=', (size_t)(amp - p));
        if (!eq)
            eq = amp;
        if ((size_t)(eq - p) == nlen && memcmp(p, name, nlen) == 0) {
            value->p = eq < amp ? eq + 1 : amp;
            value->len = (size_t)(amp - value->p);
            return 1;
        }
        if (amp == end)
            return 0;
        p = amp + 1;
    }
}

/* The value of a hex digit, or -1. */
static int hex_value(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = to_lower(c);
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* Decode %XX escapes (either case); no NUL is written after the output. */
int http_percent_decode(struct http_str in, char *out, size_t outlen)
{
    size_t n = 0;
    int hi, lo;

    for (size_t i = 0; i < in.len; i++) {
        unsigned char c = (unsigned char)in.p[i];

        if (c == '%') {
            if (in.len - i < 3)
                return -1;
            hi = hex_value((unsigned char)in.p[i + 1]);
            lo = hex_value((unsigned char)in.p[i + 2]);
            if (hi < 0 || lo < 0)
                return -1;
            c = (unsigned char)(hi << 4 | lo);
            i += 2;
        }
        if (n == outlen || n == INT_MAX)
            return -1;
        out[n++] = (char)c;
    }
    return (int)n;
}
