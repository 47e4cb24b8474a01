/*
 * http.h -- zero-copy HTTP/1.x request head parser (picohttpparser's
 * contract, our own code).
 *
 * Owns:       nothing. struct http_request holds views into the caller's
 *             buffer, valid until that buffer is changed.
 * Called by:  handshake.c via conn.c.
 * Invariants: pure, no allocation, safe on any thread.
 * Errors:     http_parse_request returns the head length (through the blank
 *             line), HTTP_NEED_MORE, HTTP_INVALID, or HTTP_TOO_MANY_HEADERS.
 * Tests:      tests/unit/test_http.c, tests/fuzz/fuzz_http.c.
 */
#ifndef HERALD_HTTP_H
#define HERALD_HTTP_H

#include <stddef.h>

#define HTTP_NEED_MORE (-2)
#define HTTP_INVALID (-1)
#define HTTP_TOO_MANY_HEADERS (-3)

#define HTTP_MAX_HEADERS 64

/* A view into the request buffer; not NUL-terminated. */
struct http_str {
    const char *p;
    size_t len;
};

struct http_header {
    struct http_str name;
    struct http_str value; /* leading and trailing blanks trimmed */
};

struct http_request {
    struct http_str method;
    struct http_str target; /* as sent: path plus "?query" */
    int minor_version;      /* 0 or 1 of HTTP/1.x */
    size_t nheaders;
    struct http_header headers[HTTP_MAX_HEADERS];
};

/*
 * Parse a request head from buf[0..len). Lines end in CRLF (a bare LF is
 * accepted too, as picohttpparser does). Header names are tokens, values
 * have no control characters but HTAB; obs-fold is refused.
 */
int http_parse_request(const char *buf, size_t len, struct http_request *req);

/* The first header named `name` (case-insensitive), or NULL. */
const struct http_header *http_find_header(const struct http_request *req, const char *name);

/* Case-insensitive equality of a view and a C string. */
int http_str_eq(struct http_str s, const char *cstr);

/*
 * Does a comma-separated header value contain `token` as one element
 * (case-insensitive, blanks around elements ignored)? Checks every header
 * of that name, since a list may be split over several lines.
 */
int http_header_has_token(const struct http_request *req, const char *name, const char *token);

/*
 * Take the next element of a comma-separated list: skips empty elements,
 * trims blanks, stores the element in *elem and advances *list past it.
 * Returns 1, or 0 when the list has no element left.
 */
int http_list_next(struct http_str *list, struct http_str *elem);

/*
 * Find query parameter `name` in the target's query string. Returns 1 and
 * a view of the raw (still percent-encoded) value, or 0.
 */
int http_query_param(struct http_str target, const char *name, struct http_str *value);

/* The target's path: everything before '?'. */
struct http_str http_target_path(struct http_str target);

/*
 * Percent-decode `in` into out[0..outlen) ('+' stays '+'). Returns the
 * decoded length, or -1 for a bad escape or when it does not fit.
 */
int http_percent_decode(struct http_str in, char *out, size_t outlen);

#endif
