/*
 * bench_http.c -- micro-benchmarks of the opening handshake: the request
 * head parser (http.c), the upgrade checks (handshake.c) and the
 * Sec-WebSocket-Accept key, paid once per WebSocket connection.
 *
 * Owns:       its request head; nothing outlives main.
 * Called by:  make bench (build/bench/bench_http); run it by hand as well.
 * Invariants: the head is what Chrome sends when a page on a PHP site opens
 *             new WebSocket(url, ["herald", "herald.token." + jwt]): Origin,
 *             a session cookie, permessage-deflate offered, the token as a
 *             subprotocol. Each case repeats one call on the same bytes
 *             (picohttpparser's bench.c), so the figures are warm-cache
 *             costs. Results go into the volatile sink (bench.h).
 * Errors:     a head that does not parse or pass hs_check aborts the
 *             program before any timing (bench_fail).
 *
 * Cases:
 *   http_parse_request  the whole head, 14 headers.
 *   hs_check            on the parsed head: method, version, Host, path,
 *                       Upgrade/Connection tokens, version, key, Origin
 *                       against a one-entry allow-list, the token.
 *   hs_accept_key       SHA-1 and base64 of the key (OpenSSL EVP).
 */
#include "bench.h"

#include <stdint.h>
#include <string.h>

#include "handshake.h"
#include "http.h"

/* The 153-byte HS256 token bench_tok.c signs for user "user-48213". */
#define JWT                                                                                        \
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"                                                         \
    ".eyJzdWIiOiJ1c2VyLTQ4MjEzIiwiaWF0IjoxNzAwMDAwMDAwLCJleHAiOjE3MDAwMDM2MDB9"                    \
    ".bYdNLIhSpdJacBDZESN3okXZD_2NWdlmsCWEmZVTFT4"

static const char head[] =
    "GET /ws HTTP/1.1\r\n"
    "Host: shop.example.com\r\n"
    "Connection: Upgrade\r\n"
    "Pragma: no-cache\r\n"
    "Cache-Control: no-cache\r\n"
    "User-Agent: Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like "
    "Gecko) Chrome/124.0.0.0 Safari/537.36\r\n"
    "Upgrade: websocket\r\n"
    "Origin: https://shop.example.com\r\n"
    "Sec-WebSocket-Version: 13\r\n"
    "Accept-Encoding: gzip, deflate, br, zstd\r\n"
    "Accept-Language: en-GB,en;q=0.9\r\n"
    "Cookie: PHPSESSID=9f1c2b7a8e4d3c6b5a0f; cart=3\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
    "Sec-WebSocket-Protocol: herald, herald.token." JWT "\r\n"
    "\r\n";

static const char *const origins[] = {"https://shop.example.com"};
static const struct hs_policy policy = {.path = "/ws", .origins = origins, .norigins = 1};

static void run_parse(void *ctx, uint64_t n)
{
    struct http_request req;
    uint64_t acc = 0;

    for (uint64_t i = 0; i < n; i++) {
        int r = http_parse_request(head, sizeof head - 1, &req);

        acc += (uint64_t)r + req.nheaders + req.headers[req.nheaders - 1].value.len;
    }
    bench_sink += acc;
}

static void run_check(void *ctx, uint64_t n)
{
    const struct http_request *req = ctx;
    struct hs_result res;
    uint64_t acc = 0;

    for (uint64_t i = 0; i < n; i++) {
        enum hs_reason r = hs_check(req, &policy, &res);

        acc += (uint64_t)r + res.token.len + res.key.len;
    }
    bench_sink += acc;
}

static void run_accept_key(void *ctx, uint64_t n)
{
    const struct hs_result *res = ctx;
    char out[HS_ACCEPT_LEN + 1];
    uint64_t acc = 0;

    for (uint64_t i = 0; i < n; i++) {
        hs_accept_key(res->key.p, res->key.len, out);
        acc += (unsigned char)out[0] + (unsigned char)out[HS_ACCEPT_LEN - 2];
    }
    bench_sink += acc;
}

int main(void)
{
    struct http_request req;
    struct hs_result res;
    char name[96];
    char accept[HS_ACCEPT_LEN + 1];
    int r = http_parse_request(head, sizeof head - 1, &req);
    enum hs_reason why;

    if (r != (int)(sizeof head - 1) || req.nheaders != 14)
        bench_fail("http_parse_request returned %d with %zu headers", r, req.nheaders);
    why = hs_check(&req, &policy, &res);
    if (why != HS_OK || !res.select_protocol || res.token_in_query ||
        res.token.len != sizeof JWT - 1 || memcmp(res.token.p, JWT, res.token.len) != 0)
        bench_fail("hs_check: %s, or the token was not found", hs_reason_name(why));
    /* The key and its answer are the example of RFC 6455 1.3. */
    hs_accept_key(res.key.p, res.key.len, accept);
    if (strcmp(accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=") != 0)
        bench_fail("hs_accept_key gave %s", accept);

    snprintf(name, sizeof name, "http_parse_request (Chrome upgrade, %zu B, %zu headers)",
             sizeof head - 1, req.nheaders);
    bench_run(name, run_parse, NULL, sizeof head - 1);
    bench_run("hs_check (same head, 1 allowed origin, token in subprotocol)", run_check, &req, 0);
    bench_run("hs_accept_key", run_accept_key, &res, 0);
    return 0;
}
