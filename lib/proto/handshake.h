/*
 * handshake.h -- the WebSocket opening handshake: decides, from a parsed
 * request head, whether to upgrade, and with which HTTP status to refuse.
 *
 * Owns:       enum hs_reason (one value per way a handshake can fail, each
 *             mapped to one HTTP status and one /stats counter name).
 * Called by:  conn.c, once the head is complete (or the buffer is full).
 * Invariants: pure apart from the SHA-1 in hs_accept_key; no allocation;
 *             results are views into the request buffer.
 * Tests:      tests/unit/test_handshake.c, tests/fuzz/fuzz_http.c.
 *
 * The token may come in the query (?token=JWT) or as a subprotocol: the
 * client offers "herald" and "herald.token.<JWT>" in Sec-WebSocket-Protocol
 * and the server selects "herald". Browsers can set that header, and it
 * never reaches an access log.
 */
#ifndef HERALD_HANDSHAKE_H
#define HERALD_HANDSHAKE_H

#include <stddef.h>

#include "http.h"

#define HS_PROTOCOL "herald"
#define HS_TOKEN_PROTOCOL_PREFIX "herald.token."
#define HS_ACCEPT_LEN 28

enum hs_reason {
    HS_OK = 0,
    HS_BAD_REQUEST, /* 400: malformed head, not HTTP/1.1 */
    HS_NOT_FOUND,   /* 404: path is not the WebSocket path */
    HS_BAD_METHOD,  /* 405: not GET */
    HS_TIMEOUT,     /* 408: head not complete in time */
    HS_NO_UPGRADE,  /* 400: Upgrade/Connection tokens missing */
    HS_BAD_KEY,     /* 400: Sec-WebSocket-Key not 16 bytes of base64 */
    HS_BAD_VERSION, /* 426: Sec-WebSocket-Version not 13 */
    HS_ORIGIN,      /* 403: Origin not in the allow-list */
    HS_TOO_LARGE,   /* 431: head over the size or header-count limit */
    HS_NO_TOKEN,    /* 401: no token and anonymous not allowed */
    HS_BAD_TOKEN,   /* 401: token failed verification */
    HS_TOO_MANY,    /* 503: max_connections reached */
    HS_ADDR_LIMIT,  /* 429: max_connections_per_ip reached for this client address */
    HS_TOO_FAST,    /* 429: over connect_rate new connections for this client address */
    HS_REASON_COUNT
};

struct hs_policy {
    const char *path;           /* borrowed: e.g. "/ws"; NULL: no site answers (404) */
    const char *const *origins; /* borrowed: allowed Origin values; "*" = any */
    size_t norigins;            /* 0 = any origin */
};

struct hs_result {
    struct http_str key;    /* Sec-WebSocket-Key as sent */
    struct http_str token;  /* raw token (query: still percent-encoded), len 0 if none */
    int token_in_query;     /* 1 when token came from ?token= */
    int select_protocol;    /* 1 when "herald" was offered: echo it back */
    struct http_str origin; /* len 0 if none */
    struct http_str since;  /* ?since= as sent (percent-encoded), when has_since */
    int has_since;          /* 1 when the query has since (even empty) */
};

/*
 * Check an upgrade request against the policy. Fills *res and returns HS_OK,
 * or the reason to refuse it. Does not look at the token beyond finding it.
 */
enum hs_reason hs_check(const struct http_request *req, const struct hs_policy *pol,
                        struct hs_result *res);

/*
 * Does a site with this WebSocket path and host (NULL: any host) answer
 * req? Returns 2 when host is req's Host header (any case, port ignored),
 * 1 when the path matches and the site takes any host, else 0. A request
 * goes to a site answering 2, else to one answering 1 (conn.c).
 */
int hs_site_match(const struct http_request *req, const char *path, const char *host);

/* The HTTP status for a reason (101 for HS_OK). */
int hs_status(enum hs_reason r);

/* A short snake_case name for /stats and logs ("bad_key", "origin", ...). */
const char *hs_reason_name(enum hs_reason r);

/*
 * Sec-WebSocket-Accept for a key: base64(SHA-1(key + GUID)), written to out
 * as HS_ACCEPT_LEN characters plus a NUL.
 */
void hs_accept_key(const char *key, size_t keylen, char out[HS_ACCEPT_LEN + 1]);

/*
 * Write the 101 response into out (outlen >= 256). Returns its length.
 */
size_t hs_write_accept(char *out, size_t outlen, const struct hs_result *res);

/*
 * Write a complete refusal: status line, Content-Type application/json,
 * Content-Length, Connection: close, Sec-WebSocket-Version: 13 on 426, and
 * a body {"ok":false,"error":"<reason name>"}. Returns its length.
 */
size_t hs_write_refusal(char *out, size_t outlen, enum hs_reason r);

#endif
