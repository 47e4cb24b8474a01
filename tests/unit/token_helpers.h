/*
 * token_helpers.h -- HS256 tokens for tests, made with OpenSSL's own base64
 * and HMAC rather than with Herald's code, so what verifies them is checked
 * against an independent encoder.
 *
 * Owns:       the strings it returns (malloc'd; the caller frees).
 * Called by:  tests/unit/test_tok.c, tests/unit/test_conn.c.
 * Invariants: header-only, static functions: each test binary has its own.
 */
#ifndef HERALD_TEST_TOKEN_HELPERS_H
#define HERALD_TEST_TOKEN_HELPERS_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#define HS256 "{\"alg\":\"HS256\",\"typ\":\"JWT\"}"

/* base64url without padding, through OpenSSL's standard base64 encoder. */
static char *b64url(const void *data, size_t len)
{
    char *out = malloc(len / 3 * 4 + 5);
    int n = EVP_EncodeBlock((unsigned char *)out, data, (int)len);

    while (n > 0 && out[n - 1] == '=')
        n--;
    out[n] = '\0';
    for (int i = 0; i < n; i++) {
        if (out[i] == '+')
            out[i] = '-';
        else if (out[i] == '/')
            out[i] = '_';
    }
    return out;
}

/* "h.p." plus the base64url HMAC-SHA256 of "h.p" with secret. */
static char *sign_parts(const char *h, const char *p, const char *secret)
{
    size_t n = strlen(h) + strlen(p) + 1;
    char *input = malloc(n + 1);
    unsigned char mac[32];
    unsigned int mac_len = 0;
    char *sig, *token;

    snprintf(input, n + 1, "%s.%s", h, p);
    HMAC(EVP_sha256(), secret, (int)strlen(secret), (unsigned char *)input, n, mac, &mac_len);
    if (mac_len != 32)
        abort();
    sig = b64url(mac, mac_len);
    token = malloc(n + strlen(sig) + 2);
    sprintf(token, "%s.%s", input, sig);
    free(input);
    free(sig);
    return token;
}

/* A token with the given header and claims JSON text, signed with secret. */
static char *make_token(const char *header, const char *claims, const char *secret)
{
    char *h = b64url(header, strlen(header));
    char *p = b64url(claims, strlen(claims));
    char *token = sign_parts(h, p, secret);

    free(h);
    free(p);
    return token;
}

#endif
