/*
 * handshake.c -- the WebSocket opening handshake (RFC 6455 4.2): decides
 * from a parsed request head whether to upgrade, finds the token, and
 * writes the 101 answer or the refusal.
 *
 * Owns:       the table that maps each enum hs_reason to its HTTP status and
 *             its /stats name; this is the one place a handshake refusal is
 *             turned into what the client sees (STYLE 3.5.3).
 * Called by:  conn.c, once http_parse_request has a whole head (or has
 *             given up on one, for 400, 408 and 431).
 * Invariants: no I/O, no locks; safe on any thread. hs_check allocates
 *             nothing and its results are views into the request buffer.
 *             hs_accept_key calls OpenSSL, whose digest context is the only
 *             allocation here.
 * Errors:     hs_check returns HS_OK or the first failed check, in this
 *             order: method, HTTP version and Host, path, Upgrade/Connection,
 *             Sec-WebSocket-Version, Sec-WebSocket-Key, Origin. The writers
 *             return 0 when out is too small.
 * Spec notes: the key must be 22 base64 characters and "==", which is every
 *             encoding of 16 bytes; the 4 unused bits of the last character
 *             are not checked (RFC 4648 3.5 lets decoders skip that check,
 *             and Python's websockets does too). A request without Origin is
 *             allowed even with an allow-list: only browsers send Origin,
 *             and the list exists to stop other sites' pages, not programs.
 *             Origin is compared case-insensitively as a whole (scheme and
 *             host are case-insensitive; a port has no case). Host must be
 *             present (RFC 6455 4.1, RFC 9112 3.2) but its value is not
 *             checked: the path and the token decide. An absolute-form
 *             target ("http://host/ws") is read by its path (RFC 9112 3.2.2).
 * Tests:      tests/unit/test_handshake.c, tests/fuzz/fuzz_http.c.
 */
#include "handshake.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>

#define HS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define HS_KEY_LEN 24

/* The status, status text and /stats name of each reason. */
static const struct {
    int status;
    const char *text;
    const char *name;
} reasons[HS_REASON_COUNT] = {
    [HS_OK] = {101, "Switching Protocols", "ok"},
    [HS_BAD_REQUEST] = {400, "Bad Request", "bad_request"},
    [HS_NOT_FOUND] = {404, "Not Found", "not_found"},
    [HS_BAD_METHOD] = {405, "Method Not Allowed", "bad_method"},
    [HS_TIMEOUT] = {408, "Request Timeout", "timeout"},
    [HS_NO_UPGRADE] = {400, "Bad Request", "no_upgrade"},
    [HS_BAD_KEY] = {400, "Bad Request", "bad_key"},
    [HS_BAD_VERSION] = {426, "Upgrade Required", "bad_version"},
    [HS_ORIGIN] = {403, "Forbidden", "origin"},
    [HS_TOO_LARGE] = {431, "Request Header Fields Too Large", "too_large"},
    [HS_NO_TOKEN] = {401, "Unauthorized", "no_token"},
    [HS_BAD_TOKEN] = {401, "Unauthorized", "bad_token"},
    [HS_TOO_MANY] = {503, "Service Unavailable", "too_many_connections"},
    [HS_ADDR_LIMIT] = {429, "Too Many Requests", "too_many_from_address"},
    [HS_TOO_FAST] = {429, "Too Many Requests", "too_fast"},
};

/* Is r one of the reasons in the table? */
static int reason_known(enum hs_reason r)
{
    return (int)r >= 0 && r < HS_REASON_COUNT;
}

/* Is c in the base64 alphabet (RFC 4648 4, not the URL-safe one)? */
static int is_base64_char(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
           c == '/';
}

/* Is the key 24 characters of base64 that decode to exactly 16 bytes? */
static int key_valid(struct http_str key)
{
    if (key.len != HS_KEY_LEN || key.p[22] != '=' || key.p[23] != '=')
        return 0;
    for (size_t i = 0; i < 22; i++) {
        if (!is_base64_char((unsigned char)key.p[i]))
            return 0;
    }
    return 1;
}

/* Does the request's Origin pass the policy's allow-list? */
static int origin_allowed(struct http_str origin, const struct hs_policy *pol)
{
    for (size_t i = 0; i < pol->norigins; i++) {
        if (strcmp(pol->origins[i], "*") == 0 || http_str_eq(origin, pol->origins[i]))
            return 1;
    }
    return pol->norigins == 0;
}

/* Look for "herald" and "herald.token.<JWT>" among the offered subprotocols. */
static void scan_protocols(const struct http_request *req, struct hs_result *res)
{
    static const char prefix[] = HS_TOKEN_PROTOCOL_PREFIX;
    const size_t plen = sizeof(prefix) - 1;
    struct http_str list, elem;

    for (size_t i = 0; i < req->nheaders; i++) {
        if (!http_str_eq(req->headers[i].name, "Sec-WebSocket-Protocol"))
            continue;
        list = req->headers[i].value;
        while (http_list_next(&list, &elem)) {
            if (elem.len == strlen(HS_PROTOCOL) && memcmp(elem.p, HS_PROTOCOL, elem.len) == 0) {
                res->select_protocol = 1;
            } else if (elem.len > plen && memcmp(elem.p, prefix, plen) == 0 &&
                       res->token.len == 0) {
                res->token.p = elem.p + plen;
                res->token.len = elem.len - plen;
            }
        }
    }
}

/* The path of a target, skipping "scheme://authority" in the absolute form. */
static struct http_str target_path(struct http_str target)
{
    struct http_str path = http_target_path(target);
    const char *p = memchr(path.p, ':', path.len);
    const char *end = path.p + path.len;

    if (path.len == 0 || path.p[0] == '/' || p == NULL || end - p < 3 || p[1] != '/' || p[2] != '/')
        return path;
    for (p += 3; p < end && *p != '/';)
        p++;
    path.len = (size_t)(end - p);
    path.p = p;
    return path;
}

/* The Host header's name without its port ("[::1]:80" -> "[::1]"); len 0 if none. */
static struct http_str host_name(const struct http_request *req)
{
    const struct http_header *h = http_find_header(req, "Host");
    struct http_str v = {0};
    const char *colon;

    if (h == NULL)
        return v;
    v = h->value;
    if (v.len > 0 && v.p[0] == '[') {
        colon = memchr(v.p, ']', v.len);
        if (colon != NULL)
            v.len = (size_t)(colon - v.p) + 1;
        return v;
    }
    colon = memchr(v.p, ':', v.len);
    if (colon != NULL)
        v.len = (size_t)(colon - v.p);
    return v;
}

int hs_site_match(const struct http_request *req, const char *path, const char *host)
{
    struct http_str p = target_path(req->target), h;

    if (p.len != strlen(path) || memcmp(p.p, path, p.len) != 0)
        return 0;
    if (host == NULL)
        return 1;
    h = host_name(req);
    return h.len == strlen(host) && strncasecmp(h.p, host, h.len) == 0 ? 2 : 0;
}

/* Run the checks in their fixed order, then find the token and subprotocol. */
enum hs_reason hs_check(const struct http_request *req, const struct hs_policy *pol,
                        struct hs_result *res)
{
    const struct http_header *h;
    struct http_str path, token;

    memset(res, 0, sizeof(*res));
    if (req->method.len != 3 || memcmp(req->method.p, "GET", 3) != 0)
        return HS_BAD_METHOD;
    if (req->minor_version != 1 || http_find_header(req, "Host") == NULL)
        return HS_BAD_REQUEST;
    path = target_path(req->target);
    if (pol->path == NULL || path.len != strlen(pol->path) ||
        memcmp(path.p, pol->path, path.len) != 0)
        return HS_NOT_FOUND;
    if (!http_header_has_token(req, "Upgrade", "websocket") ||
        !http_header_has_token(req, "Connection", "upgrade"))
        return HS_NO_UPGRADE;
    h = http_find_header(req, "Sec-WebSocket-Version");
    if (!h || h->value.len != 2 || memcmp(h->value.p, "13", 2) != 0)
        return HS_BAD_VERSION;
    h = http_find_header(req, "Sec-WebSocket-Key");
    if (!h || !key_valid(h->value))
        return HS_BAD_KEY;
    res->key = h->value;
    h = http_find_header(req, "Origin");
    if (h) {
        if (!origin_allowed(h->value, pol))
            return HS_ORIGIN;
        res->origin = h->value;
    }
    if (http_query_param(req->target, "token", &token) && token.len > 0) {
        res->token = token;
        res->token_in_query = 1;
    }
    res->has_since = http_query_param(req->target, "since", &res->since);
    scan_protocols(req, res);
    return HS_OK;
}

/* From the reasons table; 500 for a value outside the enum. */
int hs_status(enum hs_reason r)
{
    return reason_known(r) ? reasons[r].status : 500;
}

/* From the reasons table; "unknown" for a value outside the enum. */
const char *hs_reason_name(enum hs_reason r)
{
    return reason_known(r) ? reasons[r].name : "unknown";
}

/* SHA-1 through an EVP context, so the key needs no copy next to the GUID. */
void hs_accept_key(const char *key, size_t keylen, char out[HS_ACCEPT_LEN + 1])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();

    if (!ctx || !EVP_DigestInit_ex(ctx, EVP_sha1(), NULL) || !EVP_DigestUpdate(ctx, key, keylen) ||
        !EVP_DigestUpdate(ctx, HS_GUID, sizeof(HS_GUID) - 1) ||
        !EVP_DigestFinal_ex(ctx, md, &mdlen) || mdlen != 20)
        abort(); /* out of memory, or no SHA-1 in libcrypto: nothing to recover */
    EVP_MD_CTX_free(ctx);
    EVP_EncodeBlock((unsigned char *)out, md, 20);
}

/* The 101 answer, with the subprotocol line when "herald" was offered. */
size_t hs_write_accept(char *out, size_t outlen, const struct hs_result *res)
{
    char accept[HS_ACCEPT_LEN + 1];
    int n;

    hs_accept_key(res->key.p, res->key.len, accept);
    n = snprintf(out, outlen,
                 "HTTP/1.1 101 Switching Protocols\r\n"
                 "Upgrade: websocket\r\n"
                 "Connection: Upgrade\r\n"
                 "Sec-WebSocket-Accept: %s\r\n"
                 "%s"
                 "\r\n",
                 accept, res->select_protocol ? "Sec-WebSocket-Protocol: " HS_PROTOCOL "\r\n" : "");
    if (n < 0 || (size_t)n >= outlen)
        return 0;
    return (size_t)n;
}

/* Status line, fixed headers, the per-status extra header, JSON body. */
size_t hs_write_refusal(char *out, size_t outlen, enum hs_reason r)
{
    const char *name;
    const char *extra = "";
    int n;

    if (r == HS_OK || !reason_known(r))
        return 0;
    name = reasons[r].name;
    if (r == HS_BAD_VERSION)
        extra = "Sec-WebSocket-Version: 13\r\n";
    else if (r == HS_BAD_METHOD)
        extra = "Allow: GET\r\n";
    n = snprintf(out, outlen,
                 "HTTP/1.1 %d %s\r\n"
                 "Content-Type: application/json\r\n"
                 "Content-Length: %zu\r\n"
                 "Connection: close\r\n"
                 "%s"
                 "\r\n"
                 "{\"ok\":false,\"error\":\"%s\"}",
                 reasons[r].status, reasons[r].text,
                 strlen("{\"ok\":false,\"error\":\"\"}") + strlen(name), extra, name);
    if (n < 0 || (size_t)n >= outlen)
        return 0;
    return (size_t)n;
}
