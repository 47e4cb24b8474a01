/*
 * lg_tok.c -- HS256 connection tokens for the load generator's subscribers.
 *
 * Owns:       nothing.
 * Called by:  lg_recv.c, once per connection (19,000 HMACs cost ~20 ms).
 * Invariants: pure; no I/O; safe on any thread. The secret is never logged.
 * Errors:     -1 when the caller's buffer is too small.
 * Spec notes: RFC 7515 compact serialisation, base64url without padding,
 *             header {"alg":"HS256","typ":"JWT"}: the spelling lib/proto/tok.c
 *             and the PHP client produce, so Herald verifies it unchanged.
 * Tests:      every handshake against Herald verifies one.
 *
 *   token = B64URL(header) "." B64URL(claims) "." B64URL(HMAC-SHA256(secret, first two))
 */
#include "lg_tok.h"

#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

size_t lg_tok_b64url(const unsigned char *in, size_t n, char *out)
{
    size_t o = 0, i;

    for (i = 0; i + 2 < n; i += 3) {
        unsigned v = (unsigned)in[i] << 16 | (unsigned)in[i + 1] << 8 | in[i + 2];

        out[o++] = b64url[v >> 18 & 63];
        out[o++] = b64url[v >> 12 & 63];
        out[o++] = b64url[v >> 6 & 63];
        out[o++] = b64url[v & 63];
    }
    if (n - i == 1) {
        unsigned v = (unsigned)in[i] << 16;

        out[o++] = b64url[v >> 18 & 63];
        out[o++] = b64url[v >> 12 & 63];
    } else if (n - i == 2) {
        unsigned v = (unsigned)in[i] << 16 | (unsigned)in[i + 1] << 8;

        out[o++] = b64url[v >> 18 & 63];
        out[o++] = b64url[v >> 12 & 63];
        out[o++] = b64url[v >> 6 & 63];
    }
    out[o] = '\0';
    return o;
}

int lg_tok_sign(const char *secret, const char *sub, long long exp, char *out, size_t cap)
{
    static const char header[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
    char claims[128];
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;
    size_t n;
    int c;

    c = snprintf(claims, sizeof claims, "{\"sub\":\"%s\",\"exp\":%lld}", sub, exp);
    if (c < 0 || (size_t)c >= sizeof claims)
        return -1;
    /* Worst case: both parts base64url-encoded, two dots, 43 MAC chars, NUL. */
    if (cap < (sizeof header + (size_t)c) * 4 / 3 + 4 + 2 + 43 + 1)
        return -1;
    n = lg_tok_b64url((const unsigned char *)header, sizeof header - 1, out);
    out[n++] = '.';
    n += lg_tok_b64url((const unsigned char *)claims, (size_t)c, out + n);
    if (HMAC(EVP_sha256(), secret, (int)strlen(secret), (const unsigned char *)out, n, mac,
             &maclen) == NULL)
        return -1;
    out[n++] = '.';
    n += lg_tok_b64url(mac, maclen, out + n);
    return (int)n;
}
