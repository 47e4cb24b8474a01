/*
 * bench_tok.c -- micro-benchmarks of connection token verification
 * (tok.c), paid once per WebSocket connection after the handshake.
 *
 * Owns:       its two tokens and the secret; nothing outlives main.
 * Called by:  make bench (build/bench/bench_tok); run it by hand as well.
 * Invariants: each op is one tok_verify call on the same token, with "now"
 *             fixed inside the token's lifetime; a successful verify is
 *             followed by tok_claims_free, as conn.c does once it has
 *             copied the user id, so the jansson claims object is built and
 *             freed in every op. Results go into the volatile sink (bench.h).
 * Errors:     a token that does not verify as the case expects aborts the
 *             program before any timing (bench_fail).
 *
 * Cases:
 *   valid       {"sub":"user-48213","iat":...,"exp":...} signed with a
 *               32-byte secret, as a PHP site's Token::sign issues it: shape,
 *               header, HMAC-SHA256 of ~120 bytes, claims JSON, exp, sub.
 *   bad sig     the same token with one signature character changed: the
 *               work up to and including the HMAC and the constant-time
 *               compare, then the refusal (no claims are decoded).
 */
#include "bench.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "tok.h"

#define SECRET "0123456789abcdef0123456789abcdef" /* 32 bytes, as from random_bytes(32) */
#define IAT 1700000000
#define NOW (IAT + 60)
#define LEEWAY 30

struct tok_case {
    const char *token; /* borrowed */
    size_t len;
};

static void run_verify(void *ctx, uint64_t n)
{
    const struct tok_case *c = ctx;
    struct tok_claims claims;
    uint64_t acc = 0;

    for (uint64_t i = 0; i < n; i++) {
        int r = tok_verify(c->token, c->len, (const unsigned char *)SECRET, sizeof SECRET - 1, NOW,
                           LEEWAY, &claims);

        acc += (uint64_t)(r + 8) + (unsigned char)claims.sub[0];
        tok_claims_free(&claims);
    }
    bench_sink += acc;
}

/* Verify once outside the timing and check the result is the one wanted. */
static void check(const char *name, const struct tok_case *c, int want)
{
    struct tok_claims claims;
    int r = tok_verify(c->token, c->len, (const unsigned char *)SECRET, sizeof SECRET - 1, NOW,
                       LEEWAY, &claims);

    if (r != want || (r == 0 && strcmp(claims.sub, "user-48213") != 0))
        bench_fail("%s: tok_verify returned %s, want %s", name, tok_strerror(r),
                   tok_strerror(want));
    tok_claims_free(&claims);
}

int main(void)
{
    json_t *claims = json_pack("{s:s, s:I, s:I}", "sub", "user-48213", "iat", (json_int_t)IAT,
                               "exp", (json_int_t)(IAT + 3600));
    char *good = tok_sign(claims, (const unsigned char *)SECRET, sizeof SECRET - 1);
    char *bad;
    struct tok_case c;
    size_t len;
    char name[96];

    if (good == NULL)
        bench_fail("tok_sign failed");
    len = strlen(good);
    bad = strdup(good);
    if (bad == NULL)
        bench_fail("out of memory");
    /* A middle character of the 43-character signature: any change decodes. */
    bad[len - 20] = bad[len - 20] == 'A' ? 'B' : 'A';

    c = (struct tok_case){.token = good, .len = len};
    check("valid", &c, 0);
    snprintf(name, sizeof name, "tok_verify (HS256, sub+iat+exp, %zu B, valid)", len);
    bench_run(name, run_verify, &c, 0);

    c = (struct tok_case){.token = bad, .len = len};
    check("bad signature", &c, TOK_E_SIGNATURE);
    snprintf(name, sizeof name, "tok_verify (HS256, sub+iat+exp, %zu B, bad signature)", len);
    bench_run(name, run_verify, &c, 0);

    free(bad);
    free(good);
    json_decref(claims);
    return 0;
}
