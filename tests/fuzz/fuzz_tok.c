/*
 * fuzz_tok.c -- libFuzzer target for tok_verify (and tok_sign on what it accepts).
 *
 * Input, two modes:
 *   "secret|token"    verify token with secret (no '|': the whole input is the
 *                     token, verified with FUZZ_SECRET). Reaches the splitter,
 *                     the base64url decoder, the header and the MAC check.
 *   "#header\nclaims" the target encodes and signs the two JSON texts itself
 *                     with FUZZ_SECRET, so mutations reach the claims checks
 *                     that an unsigned input never gets past (no '\n': the
 *                     rest is the claims, under the HS256 header).
 * Checks: nothing crashes or reads outside the input (ASan, UBSan); accepted
 * claims hold a sane sub and one reference; re-signing accepted claims gives
 * a token that verifies to the same sub; and every jansson allocation is
 * released by the end of each input (a counting allocator, not just LSan at
 * exit).
 */
#include "tok.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#define FUZZ_SECRET "fuzz-secret"
#define FUZZ_NOW 1700000000
#define FUZZ_LEEWAY 30
#define FUZZ_HEADER "{\"alg\":\"HS256\",\"typ\":\"JWT\"}"

static long live_allocs; /* jansson blocks not yet freed */

static void *count_malloc(size_t size)
{
    void *p = malloc(size);

    if (p != NULL)
        live_allocs++;
    return p;
}

static void count_free(void *p)
{
    if (p != NULL)
        live_allocs--;
    free(p);
}

/* Unpadded base64url of in[0..len) into out (room for len * 4 / 3 + 4); returns the length. */
static size_t b64url(const uint8_t *in, size_t len, char *out)
{
    static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t n = 0;
    uint32_t acc = 0;
    int bits = 0;

    for (size_t i = 0; i < len; i++) {
        acc = (acc << 8 | in[i]) & 0xffff;
        bits += 8;
        while (bits >= 6) {
            bits -= 6;
            out[n++] = abc[(acc >> bits) & 63];
        }
    }
    if (bits > 0)
        out[n++] = abc[(acc << (6 - bits)) & 63];
    return n;
}

/* Build "B64(header).B64(claims).B64(mac)" signed with FUZZ_SECRET; malloc'd, length in *len. */
static char *sign_raw(const uint8_t *h, size_t hlen, const uint8_t *p, size_t plen, size_t *len)
{
    char *t = malloc((hlen + plen) * 4 / 3 + 64);
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    size_t n = b64url(h, hlen, t);

    t[n++] = '.';
    n += b64url(p, plen, t + n);
    HMAC(EVP_sha256(), FUZZ_SECRET, sizeof(FUZZ_SECRET) - 1, (unsigned char *)t, n, mac, &mac_len);
    t[n++] = '.';
    n += b64url(mac, mac_len, t + n);
    *len = n;
    return t;
}

/* What every accepted token must satisfy; aborts otherwise. */
static void check_accepted(const struct tok_claims *c, const unsigned char *secret,
                           size_t secret_len)
{
    size_t n = strnlen(c->sub, sizeof(c->sub));
    struct tok_claims again;
    char *token;
    int rc;

    if (n == 0 || n > TOK_MAX_SUB || c->payload == NULL || c->payload->refcount != 1)
        abort();
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)c->sub[i] < 0x20 || c->sub[i] == 0x7f)
            abort();
    token = tok_sign(c->payload, secret, secret_len);
    if (token == NULL)
        abort();
    rc = tok_verify(token, strlen(token), secret, secret_len, FUZZ_NOW, FUZZ_LEEWAY, &again);
    if (rc == 0 && strcmp(again.sub, c->sub) != 0)
        abort();
    if (rc != 0 && rc != TOK_E_TOO_LONG)
        abort();
    tok_claims_free(&again);
    free(token);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    json_set_alloc_funcs(count_malloc, count_free);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const unsigned char *secret = (const unsigned char *)FUZZ_SECRET;
    size_t secret_len = sizeof(FUZZ_SECRET) - 1;
    const char *token = (const char *)data;
    size_t len = size;
    char *built = NULL;
    struct tok_claims c;
    const uint8_t *bar;

    if (size > 0 && data[0] == '#') {
        const uint8_t *nl = memchr(data + 1, '\n', size - 1);

        if (nl != NULL)
            built = sign_raw(data + 1, (size_t)(nl - data - 1), nl + 1,
                             size - (size_t)(nl - data) - 1, &len);
        else
            built = sign_raw((const uint8_t *)FUZZ_HEADER, sizeof(FUZZ_HEADER) - 1, data + 1,
                             size - 1, &len);
        token = built;
    } else if ((bar = memchr(data, '|', size)) != NULL) {
        secret = data;
        secret_len = (size_t)(bar - data);
        token = (const char *)bar + 1;
        len = size - secret_len - 1;
    }
    if (tok_verify(token, len, secret, secret_len, FUZZ_NOW, FUZZ_LEEWAY, &c) == 0)
        check_accepted(&c, secret, secret_len);
    else if (c.payload != NULL || c.sub[0] != '\0')
        abort();
    tok_claims_free(&c);
    free(built);
    if (live_allocs != 0)
        abort();
    return 0;
}
