/*
 * tok.h -- connection tokens: compact JWS, HS256 only.
 *
 * Owns:       struct tok_claims (the verified user id and claims).
 * Called by:  conn.c after the handshake, on the worker's thread.
 * Invariants: no I/O; safe on any thread (OpenSSL HMAC one-shot, jansson).
 *             The signature is compared in constant time (CRYPTO_memcmp).
 *             Tokens are never logged, by this module or its callers.
 * Errors:     tok_verify returns 0 or a negative TOK_E_* code; tok_strerror
 *             names it for logs and /stats.
 * Tests:      tests/unit/test_tok.c, tests/fuzz/fuzz_tok.c.
 */
#ifndef HERALD_TOK_H
#define HERALD_TOK_H

#include <stddef.h>
#include <time.h>

#include <jansson.h>

#define TOK_MAX_LEN 8192 /* longer tokens are refused unread */
#define TOK_MAX_SUB 128  /* bytes in a user id */

#define TOK_E_FORMAT (-1) /* not three base64url parts, or not JSON objects */
#define TOK_E_ALG (-2)    /* header alg is not "HS256" (includes "none") */
#define TOK_E_SIGNATURE (-3)
#define TOK_E_EXPIRED (-4) /* exp + leeway <= now */
#define TOK_E_NOT_YET (-5) /* nbf - leeway > now */
#define TOK_E_SUBJECT (-6) /* sub missing, empty, too long, not string/integer, control chars */
#define TOK_E_TOO_LONG (-7)

struct tok_claims {
    char sub[TOK_MAX_SUB + 1]; /* user id, NUL-terminated; an integer sub in decimal */
    long long exp;             /* 0 when absent */
    json_t *payload;           /* owned: the whole claims object, for later features */
};

/*
 * Verify token[0..len) with the secret at time `now`, allowing `leeway`
 * seconds on exp and nbf. On success returns 0 and fills *out (release it
 * with tok_claims_free); on failure returns TOK_E_* and leaves *out empty.
 * "exp" is optional; when present it must be a number, as must "nbf".
 */
int tok_verify(const char *token, size_t len, const unsigned char *secret, size_t secret_len,
               time_t now, int leeway, struct tok_claims *out);

/* Release what tok_verify stored in *c; safe on an empty or freed struct. */
void tok_claims_free(struct tok_claims *c);

/*
 * The one rule for a user id, for tokens and the API alike: 1 to
 * TOK_MAX_SUB bytes without control characters. tok_user_valid checks
 * bytes; tok_user_id reads a JSON value (such a string, or an integer,
 * written in decimal) into out, returning 0, or -1 when it is neither.
 */
int tok_user_valid(const char *s, size_t n);
int tok_user_id(const json_t *v, char out[TOK_MAX_SUB + 1]);

/* A short name for a TOK_E_* code: "format", "alg", "signature", ... */
const char *tok_strerror(int err);

/*
 * Sign claims (HS256) into a token, for tests and tools. Returns a malloc'd
 * NUL-terminated string the caller frees, or NULL on error.
 */
char *tok_sign(const json_t *claims, const unsigned char *secret, size_t secret_len);

#endif
